//! Push targets and settings: `POST/GET/DELETE /api/v1/devices/{id}/push`, the VAPID key
//! `GET /api/v1/push/vapid`, and `GET/PUT /api/v1/push/settings` ([`crate::push`] sends).

use actix_web::{delete, get, post, put, web, HttpResponse};
use schema::db::push::{self as q, kind, NewPushTarget, PushSettings, PushTarget};
use serde::{Deserialize, Serialize};

use super::Items;
use crate::auth::Authed;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::push::webpush;
use crate::state::AppState;

/// Longest Web Push endpoint URL (bytes).
pub const ENDPOINT_MAX: usize = 2048;
/// Longest gateway pushkey (bytes).
pub const PUSHKEY_MAX: usize = 512;
/// Longest gateway app id (bytes).
pub const APP_ID_MAX: usize = 256;

/// Routes of this module under `/api/v1`.
pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(register_target)
        .service(list_targets)
        .service(remove_target)
        .service(remove_targets)
        .service(vapid_key)
        .service(get_settings)
        .service(put_settings);
}

/// A Web Push subscription's keys (`PushSubscription.toJSON().keys`).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionKeys {
    /// The user agent's P-256 public key, base64url (65 bytes uncompressed).
    pub p256dh: String,
    /// The authentication secret, base64url (16 bytes).
    pub auth: String,
}

/// Body of `POST /devices/{id}/push`: a `webpush` subscription (`endpoint`, `keys`) or a
/// `gateway` device (`app_id`, `pushkey`).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetBody {
    /// `webpush` or `gateway`.
    pub kind: String,
    /// `webpush`: the subscription's endpoint URL (https).
    pub endpoint: Option<String>,
    /// `webpush`: the subscription's keys.
    pub keys: Option<SubscriptionKeys>,
    /// `webpush`: the subscription's expiration time (ms since the epoch, or `null`), as the
    /// web client sends it (`PushSubscription.expirationTime`; `expirationTime` is accepted
    /// too). Accepted and not stored: a subscription that expires answers 404/410 and is removed.
    #[serde(alias = "expirationTime")]
    #[allow(dead_code)]
    pub expiration_time: Option<f64>,
    /// `gateway`: the app's id at the push gateway (such as `com.example.im.ios`).
    pub app_id: Option<String>,
    /// `gateway`: the device's token at the push provider (FCM token, APNs device token).
    pub pushkey: Option<String>,
    /// Whether pushes to this target carry message bodies (absent: my setting).
    pub previews: Option<bool>,
}

/// A registered push target.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PushTargetView {
    pub id: i64,
    pub device_id: i64,
    /// `webpush` or `gateway`.
    pub kind: String,
    /// `webpush`: the endpoint URL.
    pub endpoint: Option<String>,
    /// `gateway`: the app id.
    pub app_id: Option<String>,
    /// `gateway`: the pushkey.
    pub pushkey: Option<String>,
    /// Previews for this target (`null`: my setting).
    pub previews: Option<bool>,
    pub created_at: i64,
}

impl From<PushTarget> for PushTargetView {
    fn from(t: PushTarget) -> Self {
        let web = t.kind == kind::WEBPUSH;
        PushTargetView {
            id: t.id,
            device_id: t.device_id,
            endpoint: web.then(|| t.endpoint.clone()),
            pushkey: (!web).then_some(t.endpoint),
            kind: t.kind,
            app_id: t.app_id,
            previews: t.previews,
            created_at: t.created_at,
        }
    }
}

/// The device must be a live device of mine.
async fn my_device(state: &AppState, me: &Authed, device: i64) -> ApiResult<()> {
    let (uid, now) = (me.user.id, state.clock.now_ms());
    if state.db.read(move |c| schema::db::devices::is_live(c, uid, device, now)).await? {
        Ok(())
    } else {
        Err(ApiError::new(ErrorCode::DeviceNotFound, "no such live device of yours"))
    }
}

fn invalid(msg: &str) -> ApiError {
    ApiError::new(ErrorCode::InvalidPushTarget, msg)
}

/// Checks a body against its kind and the server's configuration.
fn validate(state: &AppState, b: TargetBody, user: i64, device: i64, now: i64) -> ApiResult<NewPushTarget> {
    let cfg = state.push.config();
    let new = |kind: &str, endpoint: String| NewPushTarget {
        user_id: user,
        device_id: device,
        kind: kind.to_owned(),
        endpoint,
        app_id: None,
        p256dh: None,
        auth: None,
        previews: b.previews,
        created_at: now,
    };
    match b.kind.as_str() {
        kind::WEBPUSH => {
            if b.app_id.is_some() || b.pushkey.is_some() {
                return Err(invalid("a webpush target has endpoint and keys, not app_id or pushkey"));
            }
            let (Some(endpoint), Some(keys)) = (b.endpoint.clone(), b.keys.as_ref()) else {
                return Err(invalid("a webpush target needs endpoint and keys"));
            };
            let http_ok = cfg.allow_http_endpoints && endpoint.starts_with("http://");
            if endpoint.len() > ENDPOINT_MAX
                || !(endpoint.starts_with("https://") || http_ok)
                || webpush::origin(&endpoint).is_none()
            {
                return Err(invalid("endpoint must be an https URL of at most 2048 bytes"));
            }
            if !webpush::valid_keys(&keys.p256dh, &keys.auth) {
                return Err(invalid("keys.p256dh must be a P-256 public key and keys.auth 16 bytes, base64url"));
            }
            if state.push.vapid_public_key().is_none() {
                return Err(ApiError::new(ErrorCode::PushNotConfigured, "this server does not send Web Push"));
            }
            Ok(NewPushTarget {
                p256dh: Some(keys.p256dh.clone()),
                auth: Some(keys.auth.clone()),
                ..new(kind::WEBPUSH, endpoint)
            })
        }
        kind::GATEWAY => {
            if b.endpoint.is_some() || b.keys.is_some() {
                return Err(invalid("a gateway target has app_id and pushkey, not endpoint or keys"));
            }
            let (Some(app_id), Some(pushkey)) = (b.app_id.clone(), b.pushkey.clone()) else {
                return Err(invalid("a gateway target needs app_id and pushkey"));
            };
            if app_id.trim().is_empty() || app_id.len() > APP_ID_MAX {
                return Err(invalid("app_id must be 1 to 256 bytes"));
            }
            if pushkey.trim().is_empty() || pushkey.len() > PUSHKEY_MAX {
                return Err(invalid("pushkey must be 1 to 512 bytes"));
            }
            if !state.push.gateway_configured() {
                return Err(ApiError::new(ErrorCode::PushNotConfigured, "this server has no push gateway"));
            }
            Ok(NewPushTarget { app_id: Some(app_id), ..new(kind::GATEWAY, pushkey) })
        }
        _ => Err(invalid("kind must be webpush or gateway")),
    }
}

crate::errors!(
    /// Errors of `POST /devices/{id}/push`.
    RegisterTargetErrors: DeviceNotFound, InvalidPushTarget, PushNotConfigured
);

/// `POST /devices/{id}/push`: registers a push target for one of my devices. The same
/// endpoint (or pushkey) registered again replaces the earlier registration.
#[utoipa::path(tag = "push", security(("bearer" = [])), request_body = TargetBody, responses(
    (status = 201, description = "Registered", body = PushTargetView), RegisterTargetErrors))]
#[post("/devices/{id}/push")]
async fn register_target(
    state: web::Data<AppState>,
    me: Authed,
    path: web::Path<i64>,
    body: web::Json<TargetBody>,
) -> ApiResult<HttpResponse> {
    let device = path.into_inner();
    my_device(&state, &me, device).await?;
    let new = validate(&state, body.into_inner(), me.user.id, device, state.clock.now_ms())?;
    let t = state.db.write_retrying(move |c| q::register(c, &new)).await?;
    Ok(HttpResponse::Created().json(PushTargetView::from(t)))
}

crate::errors!(
    /// Errors of `GET /devices/{id}/push` and `DELETE /devices/{id}/push`.
    DeviceTargetsErrors: DeviceNotFound
);

/// `GET /devices/{id}/push`: the push targets of one of my devices.
#[utoipa::path(tag = "push", security(("bearer" = [])), responses(
    (status = 200, description = "The device's targets", body = Items<PushTargetView>), DeviceTargetsErrors))]
#[get("/devices/{id}/push")]
async fn list_targets(state: web::Data<AppState>, me: Authed, path: web::Path<i64>) -> ApiResult<HttpResponse> {
    let device = path.into_inner();
    my_device(&state, &me, device).await?;
    let list = state.db.read(move |c| q::of_device(c, device)).await?;
    Ok(HttpResponse::Ok().json(Items { items: list.into_iter().map(PushTargetView::from).collect() }))
}

/// `DELETE /devices/{id}/push`: removes every push target of one of my devices.
#[utoipa::path(tag = "push", security(("bearer" = [])), responses(
    (status = 204, description = "Removed (or there were none)"), DeviceTargetsErrors))]
#[delete("/devices/{id}/push")]
async fn remove_targets(state: web::Data<AppState>, me: Authed, path: web::Path<i64>) -> ApiResult<HttpResponse> {
    let device = path.into_inner();
    my_device(&state, &me, device).await?;
    state
        .db
        .write(move |c| {
            for t in q::of_device(c, device)? {
                q::remove(c, device, t.id)?;
            }
            Ok(())
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

crate::errors!(
    /// Errors of `DELETE /devices/{id}/push/{target_id}`.
    RemoveTargetErrors: DeviceNotFound, PushTargetNotFound
);

/// `DELETE /devices/{id}/push/{target_id}`: removes one push target of one of my devices.
#[utoipa::path(tag = "push", security(("bearer" = [])), responses(
    (status = 204, description = "Removed"), RemoveTargetErrors))]
#[delete("/devices/{id}/push/{target_id}")]
async fn remove_target(state: web::Data<AppState>, me: Authed, path: web::Path<(i64, i64)>) -> ApiResult<HttpResponse> {
    let (device, target) = path.into_inner();
    my_device(&state, &me, device).await?;
    if state.db.write(move |c| q::remove(c, device, target)).await? {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::new(ErrorCode::PushTargetNotFound, "no such push target of this device"))
    }
}

/// The server's VAPID public key.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VapidView {
    /// base64url of the uncompressed P-256 public key: `applicationServerKey` of
    /// `PushManager.subscribe`.
    pub public_key: String,
}

crate::errors!(
    /// Errors of `GET /push/vapid`.
    VapidErrors: PushNotConfigured
);

/// `GET /push/vapid`: the key browsers subscribe with (the same on every node).
#[utoipa::path(tag = "push", security(("bearer" = [])), responses(
    (status = 200, description = "The VAPID public key", body = VapidView), VapidErrors))]
#[get("/push/vapid")]
async fn vapid_key(state: web::Data<AppState>, _me: Authed) -> ApiResult<HttpResponse> {
    match state.push.vapid_public_key() {
        Some(k) => Ok(HttpResponse::Ok().json(VapidView { public_key: k.to_owned() })),
        None => Err(ApiError::new(ErrorCode::PushNotConfigured, "this server does not send Web Push")),
    }
}

/// My push settings.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PushSettingsView {
    /// Whether pushes carry message bodies (default false; a target's own `previews` wins).
    pub previews: bool,
    /// Whether an `@` mention (or `@all`) pushes from a conversation I silenced (default true).
    pub mentions_break_mute: bool,
}

impl From<PushSettings> for PushSettingsView {
    fn from(s: PushSettings) -> Self {
        PushSettingsView { previews: s.previews, mentions_break_mute: s.mentions_break_mute }
    }
}

/// `GET /push/settings`.
#[utoipa::path(tag = "push", security(("bearer" = [])), responses(
    (status = 200, description = "My push settings", body = PushSettingsView)))]
#[get("/push/settings")]
async fn get_settings(state: web::Data<AppState>, me: Authed) -> ApiResult<HttpResponse> {
    let uid = me.user.id;
    let s = state.db.read(move |c| q::settings(c, uid)).await?;
    Ok(HttpResponse::Ok().json(PushSettingsView::from(s)))
}

/// `PUT /push/settings`: replaces my push settings.
#[utoipa::path(tag = "push", security(("bearer" = [])), request_body = PushSettingsView, responses(
    (status = 200, description = "My push settings", body = PushSettingsView)))]
#[put("/push/settings")]
async fn put_settings(
    state: web::Data<AppState>,
    me: Authed,
    body: web::Json<PushSettingsView>,
) -> ApiResult<HttpResponse> {
    let (uid, now) = (me.user.id, state.clock.now_ms());
    let s = PushSettings { previews: body.previews, mentions_break_mute: body.mentions_break_mute };
    state.db.write_retrying(move |c| q::set_settings(c, uid, s, now)).await?;
    Ok(HttpResponse::Ok().json(PushSettingsView::from(s)))
}
