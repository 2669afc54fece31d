//! Liveness and readiness.

use actix_web::{get, web, HttpResponse};
use serde::Serialize;
use serde_json::json;

use crate::state::AppState;

/// The answer of `/healthz`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// Always `ok`.
    #[schema(example = "ok")]
    pub status: String,
}

/// The answer of `/readyz`, ready or not.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// `ready`, `degraded` (Redis down), `draining` or `unavailable`.
    #[schema(pattern = "^(ready|degraded|draining|unavailable)$")]
    pub status: String,
    /// This node's id.
    pub node: String,
    /// `ok` or `down`.
    pub database: String,
    /// `ok` or `down`.
    pub message_store: String,
    /// The Redis link.
    pub redis: actors::cluster::RedisState,
}

/// `GET /healthz`: the process is up.
#[utoipa::path(tag = "health", responses((status = 200, description = "The process is up", body = Health)))]
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// `GET /readyz`: the database and the message store answer and the node is not draining; 503
/// with the failing part if not. Redis down does not fail it (the node still serves its own
/// clients and persists): it reports `"status": "degraded"` with `"redis": "down"`.
#[utoipa::path(tag = "health", responses(
    (status = 200, description = "Ready (or degraded: Redis down)", body = Readiness),
    (status = 503, description = "Not ready: draining, or the database or message store is down", body = Readiness),
))]
#[get("/readyz")]
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
    let body = Readiness {
        status: status.to_owned(),
        node: state.hub.me.id.clone(),
        database: if db_ok { "ok" } else { "down" }.to_owned(),
        message_store: if store_ok { "ok" } else { "down" }.to_owned(),
        redis,
    };
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
