//! Accounts and devices: register, login, logout, devices, profiles, search.

use actix_web::{web, HttpResponse};
use schema::db::models::{NewDevice, NewUser, User};
use schema::db::users::{ProfileUpdate, RegisterConflict};
use schema::db::{devices, users};
use schema::{DeviceId, UserId};
use serde::{Deserialize, Serialize};

use super::{PageParams, Paged};
use crate::auth::{self, Authed};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Name of the friend category every user starts with.
pub const DEFAULT_CATEGORY_NAME: &str = "Friends";
/// Username length bounds.
pub const USERNAME_LEN: std::ops::RangeInclusive<usize> = 3..=32;
/// Password length bounds (characters).
pub const PASSWORD_LEN: std::ops::RangeInclusive<usize> = 8..=128;
/// Nickname length bounds (characters).
pub const NICKNAME_LEN: std::ops::RangeInclusive<usize> = 1..=64;
/// Longest bio (characters).
pub const BIO_MAX: usize = 500;
/// Longest avatar URL (bytes).
pub const AVATAR_URL_MAX: usize = 1024;
/// Longest device name (characters).
pub const DEVICE_NAME_MAX: usize = 64;

/// Routes of this module under `/api/v1`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/auth/register", web::post().to(register))
        .route("/auth/login", web::post().to(login))
        .route("/auth/logout", web::post().to(logout))
        .route("/auth/devices", web::get().to(list_devices))
        .route("/auth/devices/{id}", web::delete().to(revoke_device))
        .route("/users/me", web::get().to(me))
        .route("/users/me", web::patch().to(update_me))
        .route("/users/{id}", web::get().to(profile))
        .route("/user/search", web::get().to(search));
}

/// A user as others see them: no phone, no password data.
#[derive(Debug, Serialize)]
pub struct PublicUser {
    pub id: i64,
    pub username: String,
    pub nickname: String,
    pub avatar_url: Option<String>,
    pub bio: Option<String>,
}

impl From<&User> for PublicUser {
    fn from(u: &User) -> Self {
        PublicUser {
            id: u.id,
            username: u.username.clone(),
            nickname: u.nickname.clone(),
            avatar_url: u.avatar_url.clone(),
            bio: u.bio.clone(),
        }
    }
}

/// A user as they see themselves (with phone and creation time).
#[derive(Debug, Serialize)]
pub struct OwnUser {
    #[serde(flatten)]
    pub public: PublicUser,
    pub phone: Option<String>,
    pub created_at: i64,
}

impl From<&User> for OwnUser {
    fn from(u: &User) -> Self {
        OwnUser { public: u.into(), phone: u.phone.clone(), created_at: u.created_at }
    }
}

/// True for 3–32 characters of `[A-Za-z0-9_]`.
pub fn valid_username(s: &str) -> bool {
    USERNAME_LEN.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// True for an E.164 number: `+`, a non-zero digit, then up to 14 digits.
pub fn valid_phone(s: &str) -> bool {
    let Some(digits) = s.strip_prefix('+') else { return false };
    (2..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0')
}

fn check_nickname(n: &str) -> ApiResult<String> {
    let n = n.trim();
    if !NICKNAME_LEN.contains(&n.chars().count()) || n.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "invalid_nickname",
            "nickname must be 1-64 characters without control characters",
        ));
    }
    Ok(n.to_owned())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterBody {
    username: String,
    password: String,
    phone: Option<String>,
    nickname: Option<String>,
}

/// `POST /auth/register`.
async fn register(state: web::Data<AppState>, body: web::Json<RegisterBody>) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    if !valid_username(&body.username) {
        return Err(ApiError::invalid("invalid_username", "username must be 3-32 characters of A-Z, a-z, 0-9 and _"));
    }
    if !PASSWORD_LEN.contains(&body.password.chars().count()) {
        return Err(ApiError::invalid("invalid_password", "password must be 8-128 characters"));
    }
    if let Some(p) = &body.phone {
        if !valid_phone(p) {
            return Err(ApiError::invalid("invalid_phone", "phone must be in E.164 form, such as +4915112345678"));
        }
    }
    let nickname = match &body.nickname {
        Some(n) => check_nickname(n)?,
        None => body.username.clone(),
    };
    let hash = auth::hash_password(body.password, state.settings.auth.bcrypt_cost).await?;
    let now = state.clock.now_ms();
    let new = NewUser {
        username_lower: body.username.to_lowercase(),
        username: body.username,
        password_hash: hash,
        phone: body.phone,
        nickname_lower: nickname.to_lowercase(),
        nickname,
        created_at: now,
        updated_at: now,
    };
    let res = state.db.write(move |c| users::register(c, &new, DEFAULT_CATEGORY_NAME)).await?;
    match res {
        Ok(user) => Ok(HttpResponse::Created().json(OwnUser::from(&user))),
        Err(RegisterConflict::Username) => Err(ApiError::conflict("username_taken", "that username is taken")),
        Err(RegisterConflict::Phone) => {
            Err(ApiError::conflict("phone_taken", "that phone number belongs to another account"))
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    username: Option<String>,
    phone: Option<String>,
    password: String,
    device_name: Option<String>,
}

#[derive(Debug, Serialize)]
struct LoginResponse {
    token: String,
    device_id: i64,
    expires_at: i64,
    user: OwnUser,
}

/// `POST /auth/login`: a new device with its own token.
async fn login(state: web::Data<AppState>, body: web::Json<LoginBody>) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    let login = match (body.username, body.phone) {
        (Some(u), None) => u,
        (None, Some(p)) => p,
        _ => return Err(ApiError::bad_request("invalid_login", "give exactly one of username and phone")),
    };
    let device_name = body.device_name.unwrap_or_else(|| "unnamed device".into());
    if device_name.chars().count() > DEVICE_NAME_MAX {
        return Err(ApiError::invalid("invalid_device_name", "device_name must be at most 64 characters"));
    }
    let user = state.db.read(move |c| users::find_by_login(c, &login)).await?;
    let ok =
        auth::verify_password(body.password, user.as_ref().map(|u| u.password_hash.clone()), &state.dummy_hash).await?;
    let user = match user {
        Some(u) if ok => u,
        _ => {
            return Err(ApiError::new(
                actix_web::http::StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "wrong username, phone or password",
            ))
        }
    };
    if user.banned_at.is_some() {
        return Err(auth::banned());
    }
    let token = auth::new_token();
    let now = state.clock.now_ms();
    let new = NewDevice {
        user_id: user.id,
        name: device_name,
        token_hash: auth::hash_token(&token),
        created_at: now,
        last_seen_at: now,
        expires_at: now + state.settings.auth.token_ttl_secs * 1000,
    };
    let device = state.db.write(move |c| devices::insert(c, &new)).await?;
    Ok(HttpResponse::Ok().json(LoginResponse {
        token,
        device_id: device.id,
        expires_at: device.expires_at,
        user: OwnUser::from(&user),
    }))
}

/// `POST /auth/logout`: revokes the calling device's token.
async fn logout(state: web::Data<AppState>, me: Authed) -> ApiResult<HttpResponse> {
    let now = state.clock.now_ms();
    let (uid, did) = (me.user.id, me.device.0);
    state.db.write(move |c| devices::revoke(c, uid, did, now)).await?;
    kick_device(&state, me.id(), me.device);
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Serialize)]
struct DeviceView {
    id: i64,
    name: String,
    created_at: i64,
    last_seen_at: i64,
    expires_at: i64,
    current: bool,
}

/// Closes the WebSocket of a revoked device on whichever node it is connected.
fn kick_device(state: &AppState, user: UserId, device: DeviceId) {
    use actors::delivery::{KickReason, KickUser};
    state.hub.sessions.do_send(KickUser { user, device: Some(device), reason: KickReason::Revoked, cluster: true });
}

/// `GET /auth/devices`: my live devices.
async fn list_devices(state: web::Data<AppState>, me: Authed) -> ApiResult<HttpResponse> {
    let now = state.clock.now_ms();
    let uid = me.user.id;
    let list = state.db.read(move |c| devices::list(c, uid, now)).await?;
    let items: Vec<DeviceView> = list
        .into_iter()
        .map(|d| DeviceView {
            current: d.id == me.device.0,
            id: d.id,
            name: d.name,
            created_at: d.created_at,
            last_seen_at: d.last_seen_at,
            expires_at: d.expires_at,
        })
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": items })))
}

/// `DELETE /auth/devices/{id}`: revokes one of my devices (404 if it is not mine or not live).
async fn revoke_device(state: web::Data<AppState>, me: Authed, path: web::Path<i64>) -> ApiResult<HttpResponse> {
    let now = state.clock.now_ms();
    let (uid, did) = (me.user.id, path.into_inner());
    if state.db.write(move |c| devices::revoke(c, uid, did, now)).await? {
        kick_device(&state, me.id(), DeviceId(did));
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::not_found("device_not_found", "no such live device of yours"))
    }
}

/// `GET /users/me`.
async fn me(me: Authed) -> HttpResponse {
    HttpResponse::Ok().json(OwnUser::from(&me.user))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateMeBody {
    nickname: Option<String>,
    #[serde(default, with = "double_option")]
    avatar_url: Option<Option<String>>,
    #[serde(default, with = "double_option")]
    bio: Option<Option<String>>,
}

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
mod double_option {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
        Option::<String>::deserialize(d).map(Some)
    }
}

/// `PATCH /users/me`: nickname, avatar_url, bio (null clears the last two).
async fn update_me(state: web::Data<AppState>, me: Authed, body: web::Json<UpdateMeBody>) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    let nickname = body.nickname.as_deref().map(check_nickname).transpose()?;
    if let Some(Some(a)) = &body.avatar_url {
        if a.len() > AVATAR_URL_MAX || !(a.starts_with("https://") || a.starts_with("http://")) {
            return Err(ApiError::invalid(
                "invalid_avatar_url",
                "avatar_url must be an http(s) URL of at most 1024 bytes",
            ));
        }
    }
    if let Some(Some(b)) = &body.bio {
        if b.chars().count() > BIO_MAX {
            return Err(ApiError::invalid("invalid_bio", "bio must be at most 500 characters"));
        }
    }
    let upd = ProfileUpdate { nickname, avatar_url: body.avatar_url, bio: body.bio };
    let now = state.clock.now_ms();
    let uid = me.user.id;
    let user = state
        .db
        .write(move |c| users::update_profile(c, uid, &upd, now))
        .await?
        .ok_or_else(|| ApiError::not_found("user_not_found", "no such user"))?;
    Ok(HttpResponse::Ok().json(OwnUser::from(&user)))
}

/// `GET /users/{id}`: a public profile.
async fn profile(state: web::Data<AppState>, _me: Authed, path: web::Path<i64>) -> ApiResult<HttpResponse> {
    let user = auth::load_user(&state, UserId(path.into_inner())).await?;
    Ok(HttpResponse::Ok().json(PublicUser::from(&user)))
}

#[derive(Debug, Deserialize)]
struct SearchParams {
    q: String,
    page: Option<i64>,
    size: Option<i64>,
}

/// A search hit: the public profile, plus the phone only when it was searched by exactly.
#[derive(Debug, Serialize)]
struct SearchHit {
    #[serde(flatten)]
    public: PublicUser,
    #[serde(skip_serializing_if = "Option::is_none")]
    phone: Option<String>,
}

/// `GET /user/search?q=&page=&size=`: exact username or phone, or nickname prefix.
async fn search(state: web::Data<AppState>, _me: Authed, params: web::Query<SearchParams>) -> ApiResult<HttpResponse> {
    let params = params.into_inner();
    let (page, size) = PageParams { page: params.page, size: params.size }.resolve()?;
    let q = params.q.trim().to_owned();
    if q.is_empty() || q.chars().count() > 64 {
        return Err(ApiError::bad_request("invalid_query", "q must be 1-64 characters"));
    }
    let by_phone = valid_phone(&q);
    if q.starts_with('+') && !by_phone {
        return Err(ApiError::bad_request("invalid_query", "a query starting with + must be an E.164 phone number"));
    }
    let rows = {
        let q = q.clone();
        state.db.read(move |c| users::search(c, &q, (page - 1) * size, size + 1)).await?
    };
    let hits: Vec<SearchHit> = rows
        .iter()
        .map(|u| SearchHit { public: u.into(), phone: by_phone.then(|| u.phone.clone()).flatten() })
        .collect();
    Ok(HttpResponse::Ok().json(Paged::from_rows(hits, page, size)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert!(valid_username("abc") && valid_username("A_b_9") && valid_username(&"x".repeat(32)));
        assert!(
            !valid_username("ab")
                && !valid_username(&"x".repeat(33))
                && !valid_username("a-b")
                && !valid_username("ä12")
        );
    }

    #[test]
    fn phones() {
        assert!(valid_phone("+4915112345678") && valid_phone("+12"));
        assert!(
            !valid_phone("4915112345678")
                && !valid_phone("+0123")
                && !valid_phone("+1")
                && !valid_phone("+1234567890123456")
                && !valid_phone("+12a")
        );
    }
}
