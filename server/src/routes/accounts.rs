//! Accounts and devices: register, login, logout, devices, profiles, search.

use actix_web::{delete, get, patch, post, web, HttpResponse};
use schema::db::models::{NewDevice, NewUser, User};
use schema::db::users::{ProfileUpdate, RegisterConflict};
use schema::db::{devices, users};
use schema::{DeviceId, UserId};
use serde::{Deserialize, Serialize};

use super::{Items, PageParams, Paged};
use crate::auth::{self, Authed};
use crate::error::{ApiError, ApiResult, ErrorCode};
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
pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(register)
        .service(login)
        .service(logout)
        .service(list_devices)
        .service(revoke_device)
        .service(get_me)
        .service(update_me)
        .service(profile)
        .service(search);
}

/// A user as others see them: no phone, no password data.
#[derive(Debug, Serialize, utoipa::ToSchema)]
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
#[derive(Debug, Serialize, utoipa::ToSchema)]
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
        return Err(ApiError::new(
            ErrorCode::InvalidNickname,
            "nickname must be 1-64 characters without control characters",
        ));
    }
    Ok(n.to_owned())
}

/// Body of `POST /auth/register`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterBody {
    /// 3-32 characters of `A-Z`, `a-z`, `0-9` and `_`; unique ignoring case.
    username: String,
    /// 8-128 characters.
    password: String,
    /// E.164 (`+` and up to 15 digits); unique.
    phone: Option<String>,
    /// 1-64 characters (trimmed); the username when absent.
    nickname: Option<String>,
}

crate::errors!(
    /// Errors of `POST /auth/register`.
    RegisterErrors: InvalidUsername, InvalidPassword, InvalidPhone, InvalidNickname, UsernameTaken, PhoneTaken, RateLimited
);

/// `POST /auth/register`.
#[utoipa::path(tag = "accounts", responses(
    (status = 201, description = "The new account", body = OwnUser), RegisterErrors))]
#[post("/auth/register")]
async fn register(state: web::Data<AppState>, body: web::Json<RegisterBody>) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    if !valid_username(&body.username) {
        return Err(ApiError::new(
            ErrorCode::InvalidUsername,
            "username must be 3-32 characters of A-Z, a-z, 0-9 and _",
        ));
    }
    if !PASSWORD_LEN.contains(&body.password.chars().count()) {
        return Err(ApiError::new(ErrorCode::InvalidPassword, "password must be 8-128 characters"));
    }
    if let Some(p) = &body.phone {
        if !valid_phone(p) {
            return Err(ApiError::new(ErrorCode::InvalidPhone, "phone must be in E.164 form, such as +4915112345678"));
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
        Err(RegisterConflict::Username) => Err(ApiError::new(ErrorCode::UsernameTaken, "that username is taken")),
        Err(RegisterConflict::Phone) => {
            Err(ApiError::new(ErrorCode::PhoneTaken, "that phone number belongs to another account"))
        }
    }
}

/// Body of `POST /auth/login`: exactly one of `username` and `phone`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    username: Option<String>,
    phone: Option<String>,
    password: String,
    /// At most 64 characters (`unnamed device` when absent).
    device_name: Option<String>,
}

/// A new device's token.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LoginResponse {
    /// The bearer token of the new device (shown once).
    token: String,
    device_id: i64,
    expires_at: i64,
    user: OwnUser,
}

crate::errors!(
    /// Errors of `POST /auth/login`.
    LoginErrors: InvalidLogin, InvalidDeviceName, InvalidCredentials, UserBanned, RateLimited
);

/// `POST /auth/login`: a new device with its own token.
#[utoipa::path(tag = "accounts", responses(
    (status = 200, description = "Logged in on a new device", body = LoginResponse), LoginErrors))]
#[post("/auth/login")]
async fn login(state: web::Data<AppState>, body: web::Json<LoginBody>) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    let login = match (body.username, body.phone) {
        (Some(u), None) => u,
        (None, Some(p)) => p,
        _ => return Err(ApiError::new(ErrorCode::InvalidLogin, "give exactly one of username and phone")),
    };
    // Before the account is looked up, whether it exists or not (crate::throttle).
    state.throttle.login_account(&login)?;
    let device_name = body.device_name.unwrap_or_else(|| "unnamed device".into());
    if device_name.chars().count() > DEVICE_NAME_MAX {
        return Err(ApiError::new(ErrorCode::InvalidDeviceName, "device_name must be at most 64 characters"));
    }
    let user = state.db.read(move |c| users::find_by_login(c, &login)).await?;
    let ok =
        auth::verify_password(body.password, user.as_ref().map(|u| u.password_hash.clone()), &state.dummy_hash).await?;
    let user = match user {
        Some(u) if ok => u,
        _ => return Err(ApiError::new(ErrorCode::InvalidCredentials, "wrong username, phone or password")),
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
#[utoipa::path(tag = "accounts", security(("bearer" = [])), responses((status = 204, description = "Logged out")))]
#[post("/auth/logout")]
async fn logout(state: web::Data<AppState>, me: Authed) -> ApiResult<HttpResponse> {
    let now = state.clock.now_ms();
    let (uid, did) = (me.user.id, me.device.0);
    state.db.write(move |c| devices::revoke(c, uid, did, now)).await?;
    kick_device(&state, me.id(), me.device);
    Ok(HttpResponse::NoContent().finish())
}

/// One live device (token) of mine.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeviceView {
    id: i64,
    name: String,
    created_at: i64,
    last_seen_at: i64,
    expires_at: i64,
    /// The device of the token that asked.
    current: bool,
}

/// Closes the WebSocket of a revoked device on whichever node it is connected.
fn kick_device(state: &AppState, user: UserId, device: DeviceId) {
    use actors::delivery::{KickReason, KickUser};
    state.hub.sessions.do_send(KickUser { user, device: Some(device), reason: KickReason::Revoked, cluster: true });
}

/// `GET /auth/devices`: my live devices.
#[utoipa::path(tag = "accounts", security(("bearer" = [])), responses(
    (status = 200, description = "My live devices", body = Items<DeviceView>)))]
#[get("/auth/devices")]
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
    Ok(HttpResponse::Ok().json(Items { items }))
}

crate::errors!(
    /// Errors of `DELETE /auth/devices/{id}`.
    RevokeDeviceErrors: DeviceNotFound
);

/// `DELETE /auth/devices/{id}`: revokes one of my devices (404 if it is not mine or not live).
#[utoipa::path(tag = "accounts", security(("bearer" = [])), responses(
    (status = 204, description = "Revoked"), RevokeDeviceErrors))]
#[delete("/auth/devices/{id}")]
async fn revoke_device(state: web::Data<AppState>, me: Authed, path: web::Path<i64>) -> ApiResult<HttpResponse> {
    let now = state.clock.now_ms();
    let (uid, did) = (me.user.id, path.into_inner());
    if state.db.write(move |c| devices::revoke(c, uid, did, now)).await? {
        kick_device(&state, me.id(), DeviceId(did));
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::new(ErrorCode::DeviceNotFound, "no such live device of yours"))
    }
}

/// `GET /users/me`.
#[utoipa::path(tag = "users", security(("bearer" = [])), responses((status = 200, description = "Me", body = OwnUser)))]
#[get("/users/me")]
async fn get_me(me: Authed) -> HttpResponse {
    HttpResponse::Ok().json(OwnUser::from(&me.user))
}

/// Body of `PATCH /users/me`: the fields to change (`null` clears `avatar_url` and `bio`).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMeBody {
    /// 1-64 characters (trimmed).
    nickname: Option<String>,
    /// An http(s) URL of at most 1024 bytes, or `null`.
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<String>)]
    avatar_url: Option<Option<String>>,
    /// At most 500 characters, or `null`.
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<String>)]
    bio: Option<Option<String>>,
}

crate::errors!(
    /// Errors of `PATCH /users/me`.
    UpdateMeErrors: InvalidNickname, InvalidAvatarUrl, InvalidBio, UserNotFound
);

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
mod double_option {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
        Option::<String>::deserialize(d).map(Some)
    }
}

/// `PATCH /users/me`: nickname, avatar_url, bio (null clears the last two).
#[utoipa::path(tag = "users", security(("bearer" = [])), responses(
    (status = 200, description = "Me, updated", body = OwnUser), UpdateMeErrors))]
#[patch("/users/me")]
async fn update_me(state: web::Data<AppState>, me: Authed, body: web::Json<UpdateMeBody>) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    let nickname = body.nickname.as_deref().map(check_nickname).transpose()?;
    if let Some(Some(a)) = &body.avatar_url {
        if a.len() > AVATAR_URL_MAX || !(a.starts_with("https://") || a.starts_with("http://")) {
            return Err(ApiError::new(
                ErrorCode::InvalidAvatarUrl,
                "avatar_url must be an http(s) URL of at most 1024 bytes",
            ));
        }
    }
    if let Some(Some(b)) = &body.bio {
        if b.chars().count() > BIO_MAX {
            return Err(ApiError::new(ErrorCode::InvalidBio, "bio must be at most 500 characters"));
        }
    }
    let upd = ProfileUpdate { nickname, avatar_url: body.avatar_url, bio: body.bio };
    let now = state.clock.now_ms();
    let uid = me.user.id;
    let user = state
        .db
        .write(move |c| users::update_profile(c, uid, &upd, now))
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::UserNotFound, "no such user"))?;
    Ok(HttpResponse::Ok().json(OwnUser::from(&user)))
}

crate::errors!(
    /// Errors of `GET /users/{id}`.
    ProfileErrors: UserNotFound
);

/// `GET /users/{id}`: a public profile.
#[utoipa::path(tag = "users", security(("bearer" = [])), responses(
    (status = 200, description = "The profile", body = PublicUser), ProfileErrors))]
#[get("/users/{id}")]
async fn profile(state: web::Data<AppState>, _me: Authed, path: web::Path<i64>) -> ApiResult<HttpResponse> {
    let user = auth::load_user(&state, UserId(path.into_inner())).await?;
    Ok(HttpResponse::Ok().json(PublicUser::from(&user)))
}

/// `?q=&page=&size=` of the user search.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// 1-64 characters (trimmed): an exact username or E.164 phone, or a nickname prefix.
    q: String,
    /// Page number, from 1 (at most 1000000; default 1).
    page: Option<i64>,
    /// Page size, 1 to 100 (default 20).
    size: Option<i64>,
}

/// A search hit: the public profile, plus the phone only when it was searched by exactly.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SearchHit {
    #[serde(flatten)]
    public: PublicUser,
    #[serde(skip_serializing_if = "Option::is_none")]
    phone: Option<String>,
}

crate::errors!(
    /// Errors of `GET /user/search`.
    SearchErrors: InvalidPage, InvalidSize, InvalidQuery
);

/// `GET /user/search?q=&page=&size=`: exact username or phone, or nickname prefix.
#[utoipa::path(tag = "users", security(("bearer" = [])), params(SearchParams), responses(
    (status = 200, description = "A page of users", body = Paged<SearchHit>), SearchErrors))]
#[get("/user/search")]
async fn search(state: web::Data<AppState>, _me: Authed, params: web::Query<SearchParams>) -> ApiResult<HttpResponse> {
    let params = params.into_inner();
    let (page, size) = PageParams { page: params.page, size: params.size }.resolve()?;
    let q = params.q.trim().to_owned();
    if q.is_empty() || q.chars().count() > 64 {
        return Err(ApiError::new(ErrorCode::InvalidQuery, "q must be 1-64 characters"));
    }
    let by_phone = valid_phone(&q);
    if q.starts_with('+') && !by_phone {
        return Err(ApiError::new(ErrorCode::InvalidQuery, "a query starting with + must be an E.164 phone number"));
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
