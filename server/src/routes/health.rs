//! Liveness and readiness.

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::state::AppState;

/// `GET /healthz`: the process is up.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// `GET /readyz`: the database and the message store answer and the node is not draining; 503
/// with the failing part if not. Redis down does not fail it (the node still serves its own
/// clients and persists): it reports `"status": "degraded"` with `"redis": "down"`.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let db = state.db.ping();
    let (db, store) = futures_util::future::join(db, state.store.ping()).await;
    let db_ok = db.is_ok();
    let store_ok = store.is_ok();
    if let Err(e) = &db {
        log::warn!("readyz: database: {e}");
    }
    if let Err(e) = &store {
        log::warn!("readyz: message store: {e}");
    }
    let draining = state.hub.me.draining();
    let redis = state.hub.redis_state();
    let ready = db_ok && store_ok && !draining;
    let status = if draining {
        "draining"
    } else if !ready {
        "unavailable"
    } else if redis == actors::cluster::RedisState::Down {
        "degraded"
    } else {
        "ready"
    };
    let body = json!({
        "status": status,
        "node": state.hub.me.id,
        "database": if db_ok { "ok" } else { "down" },
        "message_store": if store_ok { "ok" } else { "down" },
        "redis": redis,
    });
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
