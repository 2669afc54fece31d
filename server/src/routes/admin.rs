//! The admin API under `/admin/v1`, and `GET /metrics`: cluster nodes and totals, a user's
//! sessions, kick, ban and unban, broadcast notices, draining a node, the owner of a
//! conversation, Prometheus metrics.
//!
//! Every route needs `Authorization: Bearer <admin.token>`, checked by [`require_admin`] before
//! anything else (body, path) is looked at. With `admin.token` empty the admin API does not exist:
//! every route of it answers `404 not_found` like an unknown route. A missing or wrong token
//! answers `401 unauthorized` (the two are not told apart).

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::middleware::{from_fn, Next};
use actix_web::{get, post, web, HttpRequest, HttpResponse, ResponseError};
use actors::delivery::KickReason;
use schema::db::users;
use schema::protocol::ServerFrame;
use schema::{DeviceId, UserId};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::auth;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::state::AppState;

/// Longest ban reason (characters).
pub const BAN_REASON_MAX: usize = 500;
/// Most users one broadcast may name.
pub const MAX_BROADCAST_USERS: usize = 10_000;
/// Content type of `/metrics` (Prometheus text exposition format 0.0.4).
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Routes of the admin API (mounted under `/admin/v1`), behind [`require_admin`].
pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(
        utoipa_actix_web::scope("/admin/v1")
            .wrap(from_fn(require_admin))
            .service(nodes)
            .service(drain)
            .service(stats)
            .service(user_sessions)
            .service(kick)
            .service(ban)
            .service(unban)
            .service(broadcast)
            .service(owner),
    )
    .service(metrics);
}

/// True when `a` and `b` are equal, in time that does not depend on where they differ: both are
/// hashed first, so the comparison runs over two 32-byte digests whatever the lengths.
pub fn token_matches(given: &str, expected: &str) -> bool {
    let (a, b) = (Sha256::digest(given.as_bytes()), Sha256::digest(expected.as_bytes()));
    a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Checks the admin bearer token of a request: `404 not_found` when the admin API is off (no
/// token configured), `401 unauthorized` when the token is missing or wrong.
pub fn check_admin(req: &HttpRequest) -> Result<(), ApiError> {
    let state = req.app_data::<web::Data<AppState>>().ok_or_else(|| ApiError::internal("application state missing"))?;
    let expected = &state.settings.admin.token;
    if expected.is_empty() {
        return Err(ApiError::no_route());
    }
    let given = auth::bearer_token(req, false).ok_or_else(|| ApiError::unauthorized("missing admin bearer token"))?;
    if token_matches(&given, expected) {
        Ok(())
    } else {
        Err(ApiError::unauthorized("invalid admin token"))
    }
}

/// Middleware of the admin routes: runs [`check_admin`] before any extractor.
pub async fn require_admin(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    if let Err(e) = check_admin(req.request()) {
        let mut resp = e.error_response();
        if e.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        return Ok(req.into_response(resp).map_into_right_body());
    }
    next.call(req).await.map(ServiceResponse::map_into_left_body)
}

/// Reads and parses an optional JSON body: empty means `T::default()`; otherwise it must be JSON
/// (`415 unsupported_media_type` for another declared content type, `400 invalid_json` when it
/// does not parse or has unknown fields) of at most `server.max_body_bytes`
/// (`413 payload_too_large`, in the JSON shape like every other body's).
async fn optional_body<T: DeserializeOwned + Default>(
    state: &AppState,
    req: &HttpRequest,
    payload: web::Payload,
) -> ApiResult<T> {
    let limit = state.settings.server.max_body_bytes;
    let body = match payload.to_bytes_limited(limit).await {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => return Err(ApiError::new(ErrorCode::InvalidJson, format!("cannot read the body: {e}"))),
        Err(_) => {
            return Err(ApiError::new(ErrorCode::PayloadTooLarge, format!("the body is larger than {limit} bytes")))
        }
    };
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    if let Some(ct) = req.headers().get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or_default().to_ascii_lowercase();
        let essence = ct.split(';').next().unwrap_or_default().trim();
        if essence != "application/json" && !essence.ends_with("+json") {
            return Err(ApiError::new(ErrorCode::UnsupportedMediaType, "expected Content-Type: application/json"));
        }
    }
    serde_json::from_slice(&body).map_err(|e| ApiError::new(ErrorCode::InvalidJson, e.to_string()))
}

/// A user of the path that must exist (`404 user_not_found`).
async fn existing_user(state: &AppState, id: i64) -> ApiResult<schema::db::models::User> {
    auth::load_user(state, UserId(id)).await
}

/// The nodes of the cluster.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Nodes {
    nodes: Vec<actors::cluster::NodeInfo>,
}

/// `GET /admin/v1/nodes`: every node of the cluster (this one only on a single node).
#[utoipa::path(tag = "admin", security(("admin" = [])), responses(
    (status = 200, description = "The nodes", body = Nodes)))]
#[get("/nodes")]
async fn nodes(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(Nodes { nodes: state.hub.nodes().await })
}

/// Cluster totals.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Stats {
    /// Live nodes.
    nodes: usize,
    /// Live nodes that are draining.
    draining: usize,
    /// Open WebSocket sessions, summed over live nodes.
    sessions: u64,
    /// Users with a session, summed over live nodes (a user on two nodes counts twice).
    users: u64,
    /// Messages persisted per second, summed over live nodes.
    messages_per_sec: f64,
    /// The Redis link of the answering node.
    redis: actors::cluster::RedisState,
    /// The answering node.
    node: String,
}

/// `GET /admin/v1/stats`: totals over the live nodes.
#[utoipa::path(tag = "admin", security(("admin" = [])), responses(
    (status = 200, description = "Totals", body = Stats)))]
#[get("/stats")]
async fn stats(state: web::Data<AppState>) -> HttpResponse {
    let alive: Vec<_> = state.hub.nodes().await.into_iter().filter(|n| n.alive).collect();
    HttpResponse::Ok().json(Stats {
        nodes: alive.len(),
        draining: alive.iter().filter(|n| n.draining).count(),
        sessions: alive.iter().map(|n| n.sessions).sum(),
        users: alive.iter().map(|n| n.users).sum(),
        messages_per_sec: alive.iter().map(|n| n.messages_per_sec).sum(),
        redis: state.hub.redis_state(),
        node: state.hub.me.id.clone(),
    })
}

/// A user's sessions.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserSessions {
    user_id: i64,
    banned_at: Option<i64>,
    sessions: Vec<actors::cluster::SessionInfo>,
}

crate::errors!(
    /// Errors of the admin routes about one user.
    AdminUserErrors: UserNotFound
);

/// `GET /admin/v1/users/{id}/sessions`: the user's online devices and their nodes.
#[utoipa::path(tag = "admin", security(("admin" = [])), responses(
    (status = 200, description = "The sessions", body = UserSessions), AdminUserErrors))]
#[get("/users/{id}/sessions")]
async fn user_sessions(state: web::Data<AppState>, path: web::Path<i64>) -> ApiResult<HttpResponse> {
    let user = existing_user(&state, path.into_inner()).await?;
    let sessions = state.hub.user_sessions(UserId(user.id)).await;
    Ok(HttpResponse::Ok().json(UserSessions { user_id: user.id, banned_at: user.banned_at, sessions }))
}

crate::errors!(
    /// Errors of `GET /admin/v1/conversations/{conv}/owner`.
    OwnerErrors: UnknownConversation
);

/// `GET /admin/v1/conversations/{conv}/owner`: the node that owns a conversation (1:1 or
/// group) now and its fencing epoch, or `node: null` when no owner runs.
#[utoipa::path(tag = "admin", security(("admin" = [])), responses(
    (status = 200, description = "The owner", body = actors::hub::OwnerInfo), OwnerErrors))]
#[get("/conversations/{conv}/owner")]
async fn owner(state: web::Data<AppState>, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let conv = schema::ConvId(path.into_inner());
    if conv.kind().is_none() {
        return Err(ApiError::new(ErrorCode::UnknownConversation, "not a conversation id"));
    }
    let info = state.hub.owner_of(conv).await.map_err(ApiError::unavailable)?;
    Ok(HttpResponse::Ok().json(info))
}

/// Body of `kick` (optional).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KickBody {
    /// Only this device; all of them when absent.
    device_id: Option<i64>,
}

/// `POST /admin/v1/users/{id}/kick`: closes the user's sessions (one device or all) on every
/// What a kick did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Kicked {
    user_id: i64,
    /// Sessions closed on the answering node (the other nodes close theirs too).
    kicked_here: usize,
}

/// node with close code 4004 `kicked`. The user may reconnect right away: a kick is not a ban.
#[utoipa::path(tag = "admin", security(("admin" = [])),
    request_body(content = Option<KickBody>, description = "Optional", content_type = "application/json"),
    responses((status = 200, description = "Kicked", body = Kicked), AdminUserErrors))]
#[post("/users/{id}/kick")]
async fn kick(
    state: web::Data<AppState>,
    path: web::Path<i64>,
    req: HttpRequest,
    body: web::Payload,
) -> ApiResult<HttpResponse> {
    let body: KickBody = optional_body(&state, &req, body).await?;
    let user = existing_user(&state, path.into_inner()).await?;
    let kicked = state.hub.kick(UserId(user.id), body.device_id.map(DeviceId), KickReason::Admin).await;
    log::warn!("admin: kicked user {} (device {:?}): {kicked} session(s) here", user.id, body.device_id);
    Ok(HttpResponse::Ok().json(Kicked { user_id: user.id, kicked_here: kicked }))
}

/// Body of `ban` (optional).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BanBody {
    /// At most 500 characters (trimmed).
    reason: Option<String>,
}

/// A user's ban state.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BanView {
    user_id: i64,
    banned: bool,
    banned_at: Option<i64>,
    reason: Option<String>,
    /// Sessions closed on this node (ban only).
    #[serde(skip_serializing_if = "Option::is_none")]
    kicked_here: Option<usize>,
}

/// `POST /admin/v1/users/{id}/ban`: the user can no longer log in and none of their tokens work
/// (`403 user_banned`); their sessions on every node are closed with 4003 `revoked`. Tokens are
/// blocked, not revoked: [`unban`] makes them work again. Banning again keeps the first time and
/// replaces the reason.
#[utoipa::path(tag = "admin", security(("admin" = [])),
    request_body(content = Option<BanBody>, description = "Optional", content_type = "application/json"),
    responses((status = 200, description = "Banned", body = BanView), BanErrors))]
#[post("/users/{id}/ban")]
async fn ban(
    state: web::Data<AppState>,
    path: web::Path<i64>,
    req: HttpRequest,
    body: web::Payload,
) -> ApiResult<HttpResponse> {
    let body: BanBody = optional_body(&state, &req, body).await?;
    let reason = body.reason.map(|r| r.trim().to_owned()).filter(|r| !r.is_empty());
    if reason.as_ref().is_some_and(|r| r.chars().count() > BAN_REASON_MAX) {
        return Err(ApiError::new(
            ErrorCode::InvalidReason,
            format!("reason must be at most {BAN_REASON_MAX} characters"),
        ));
    }
    let id = path.into_inner();
    let now = state.clock.now_ms();
    let user = state
        .db
        .write(move |c| users::set_banned(c, id, Some(now), reason.as_deref()))
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::UserNotFound, "no such user"))?;
    // After the ban is stored: a session that connects from now on is refused at the upgrade.
    let kicked = state.hub.kick(UserId(user.id), None, KickReason::Revoked).await;
    log::warn!("admin: banned user {} ({:?}); {kicked} session(s) closed here", user.id, user.ban_reason);
    Ok(HttpResponse::Ok().json(BanView {
        user_id: user.id,
        banned: true,
        banned_at: user.banned_at,
        reason: user.ban_reason,
        kicked_here: Some(kicked),
    }))
}

/// `POST /admin/v1/users/{id}/unban`: lifts a ban (idempotent): login and the user's unexpired,
/// unrevoked tokens work again.
#[utoipa::path(tag = "admin", security(("admin" = [])), responses(
    (status = 200, description = "Not banned", body = BanView), AdminUserErrors))]
#[post("/users/{id}/unban")]
async fn unban(state: web::Data<AppState>, path: web::Path<i64>) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    let user = state
        .db
        .write(move |c| users::set_banned(c, id, None, None))
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::UserNotFound, "no such user"))?;
    log::warn!("admin: unbanned user {}", user.id);
    Ok(HttpResponse::Ok().json(BanView {
        user_id: user.id,
        banned: false,
        banned_at: None,
        reason: None,
        kicked_here: None,
    }))
}

/// Body of `broadcast`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BroadcastBody {
    /// 1 to `chat.max_message_chars` characters (trimmed).
    text: String,
    /// Only these users; everyone online when absent.
    user_ids: Option<Vec<i64>>,
}

/// `POST /admin/v1/broadcast`: a `notice` frame to everyone online, or to the listed users, on
/// What a broadcast reached.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Broadcast {
    /// Sessions of the answering node that got the notice.
    delivered_here: usize,
}

crate::errors!(
    /// Errors of `POST /admin/v1/broadcast`.
    BroadcastErrors: InvalidText, InvalidUserIds
);

crate::errors!(
    /// Errors of `POST /admin/v1/users/{id}/ban`.
    BanErrors: InvalidReason, UserNotFound
);

/// every node. Not stored: users offline now never see it.
#[utoipa::path(tag = "admin", security(("admin" = [])), responses(
    (status = 200, description = "Sent", body = Broadcast), BroadcastErrors))]
#[post("/broadcast")]
async fn broadcast(state: web::Data<AppState>, body: web::Json<BroadcastBody>) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    let max = state.settings.chat.max_message_chars;
    let text = body.text.trim();
    if text.is_empty() || text.chars().count() > max {
        return Err(ApiError::new(ErrorCode::InvalidText, format!("text must be 1 to {max} characters")));
    }
    let users = match body.user_ids {
        Some(ids) if ids.is_empty() || ids.len() > MAX_BROADCAST_USERS => {
            return Err(ApiError::new(
                ErrorCode::InvalidUserIds,
                format!("user_ids must list 1 to {MAX_BROADCAST_USERS} users (leave it out to reach everyone)"),
            ))
        }
        Some(mut ids) => {
            ids.sort_unstable();
            ids.dedup();
            Some(ids.into_iter().map(UserId).collect())
        }
        None => None,
    };
    let frame = ServerFrame::Notice { text: text.to_owned(), ts: state.clock.now_ms() };
    let delivered = state.hub.broadcast(frame.encode().into(), users).await;
    log::info!("admin: broadcast notice, {delivered} session(s) here");
    Ok(HttpResponse::Ok().json(Broadcast { delivered_here: delivered }))
}

/// `POST /admin/v1/nodes/{id}/drain`: the node reports not ready (`/readyz` 503 `draining`),
/// refuses new WebSockets (503 `draining`) and closes its open ones with 1012 so that clients
/// A drain asked for.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Draining {
    node: String,
    /// Always true.
    draining: bool,
}

crate::errors!(
    /// Errors of `POST /admin/v1/nodes/{id}/drain`.
    DrainErrors: NodeNotFound
);

/// reconnect through the load balancer to another node. There is no undrain: restart the node.
#[utoipa::path(tag = "admin", security(("admin" = [])), responses(
    (status = 202, description = "Draining", body = Draining), DrainErrors))]
#[post("/nodes/{id}/drain")]
async fn drain(state: web::Data<AppState>, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let node = path.into_inner();
    if !state.hub.drain(&node).await {
        return Err(ApiError::new(ErrorCode::NodeNotFound, "no such live node"));
    }
    log::warn!("admin: drain of node {node} requested");
    Ok(HttpResponse::Accepted().json(Draining { node, draining: true }))
}

/// `GET /metrics`: this node's metrics in the Prometheus text format.
#[utoipa::path(tag = "admin", security(("admin" = [])), responses(
    (status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain", body = String)))]
#[get("/metrics", wrap = "from_fn(require_admin)")]
async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let body = state.hub.metrics.render(state.hub.gauges().await);
    HttpResponse::Ok().content_type(METRICS_CONTENT_TYPE).body(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_by_digest() {
        assert!(token_matches("s3cret-token", "s3cret-token"));
        assert!(!token_matches("s3cret-tokem", "s3cret-token"));
        assert!(!token_matches("s3cret", "s3cret-token"));
        assert!(!token_matches("", "s3cret-token"));
    }
}
