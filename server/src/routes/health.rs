//! Liveness and readiness.

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::state::AppState;

/// `GET /healthz`: the process is up.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// `GET /readyz`: the database and the message store answer. 503 with the failing part if not.
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
    let body = json!({
        "status": if db_ok && store_ok { "ready" } else { "unavailable" },
        "database": if db_ok { "ok" } else { "down" },
        "message_store": if store_ok { "ok" } else { "down" },
    });
    if db_ok && store_ok {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
