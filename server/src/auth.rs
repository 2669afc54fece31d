//! Passwords, tokens and the extractor that authenticates protected routes.
//!
//! Tokens are 256-bit random values shown once at login; the database keeps only their SHA-256.
//! Each device has its own token. bcrypt runs on the blocking pool, never on an event loop.

use std::future::Future;
use std::pin::Pin;

use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use base64::Engine;
use rand::RngCore;
use schema::db::models::User;
use schema::db::{devices, users};
use schema::{DeviceId, UserId};
use sha2::{Digest, Sha256};

use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;

/// A fresh random token (256 bits, URL-safe base64 without padding).
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The stored form of a token.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// What bcrypt actually hashes: the base64 of the password's SHA-256. bcrypt reads at most 72
/// bytes, so hashing the raw password would ignore the rest of a long one; the digest keeps every
/// byte significant (44 characters, no NUL bytes).
fn prehash(password: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(password.as_bytes()))
}

/// Hashes a password with bcrypt at `cost` on the blocking pool.
pub async fn hash_password(password: String, cost: u32) -> Result<String, ApiError> {
    web::block(move || bcrypt::hash(prehash(&password), cost)).await?.map_err(ApiError::internal)
}

/// Verifies `password` against `hash` on the blocking pool. For an unknown user pass `None`:
/// the password is checked against `dummy` (a hash at the configured cost) so that a wrong
/// username takes as long as a wrong password.
pub async fn verify_password(password: String, hash: Option<String>, dummy: &str) -> Result<bool, ApiError> {
    let known = hash.is_some();
    let hash = hash.unwrap_or_else(|| dummy.to_owned());
    let ok = web::block(move || bcrypt::verify(prehash(&password), &hash)).await?;
    Ok(known && ok.unwrap_or(false))
}

/// The bearer token of a request: `Authorization: Bearer <t>` or, for browsers' WebSockets,
/// `?token=<t>`.
pub fn bearer_token(req: &HttpRequest, allow_query: bool) -> Option<String> {
    if let Some(h) = req.headers().get(actix_web::http::header::AUTHORIZATION) {
        let v = h.to_str().ok()?;
        let (scheme, token) = v.split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned());
    }
    if allow_query {
        let q = web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string()).ok()?;
        return q.get("token").cloned();
    }
    None
}

/// An authenticated caller: the user and the device whose token was presented.
#[derive(Debug, Clone)]
pub struct Authed {
    /// The user.
    pub user: User,
    /// The device (one token per device).
    pub device: DeviceId,
}

impl Authed {
    /// The caller's user id.
    pub fn id(&self) -> UserId {
        UserId(self.user.id)
    }
}

/// Looks a token up; `None` when unknown, revoked or expired. A live token of a banned user is
/// refused with 403 `user_banned` (a ban blocks the user's tokens without revoking them, so
/// lifting it restores them; see [`banned`]).
pub async fn authenticate(state: &AppState, token: &str) -> Result<Option<Authed>, ApiError> {
    let hash = hash_token(token);
    let now = state.clock.now_ms();
    let found = state.db.read(move |c| devices::authenticate(c, &hash, now)).await?;
    // Record the device as seen at most once a minute: a write, so it goes through `write`
    // (which serialises writers on SQLite), and only when it is due.
    if let Some((d, _)) = found.as_ref().filter(|(d, _)| d.last_seen_at < now - devices::TOUCH_EVERY_MS) {
        let id = d.id;
        state.db.write(move |c| devices::touch(c, id, now)).await?;
    }
    match found {
        Some((_, u)) if u.banned_at.is_some() => Err(banned()),
        Some((d, u)) => Ok(Some(Authed { user: u, device: DeviceId(d.id) })),
        None => Ok(None),
    }
}

/// 403 `user_banned`: what a banned user gets at login and with any of their tokens.
pub fn banned() -> ApiError {
    ApiError::new(ErrorCode::UserBanned, "this account is banned")
}

impl FromRequest for Authed {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let token = bearer_token(req, false);
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::internal("application state missing"))?;
            let token = token.ok_or_else(|| ApiError::unauthorized("missing bearer token"))?;
            authenticate(&state, &token)
                .await?
                .ok_or_else(|| ApiError::unauthorized("invalid, expired or revoked token"))
        })
    }
}

/// Loads a user that must exist (the caller's own row, re-read after a change).
pub async fn load_user(state: &AppState, id: UserId) -> Result<User, ApiError> {
    state
        .db
        .read(move |c| users::find(c, id.0))
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::UserNotFound, "no such user"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_hashed() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(hash_token(&a).len(), 64);
        assert_eq!(hash_token(&a), hash_token(&a));
    }

    #[test]
    fn long_passwords_count_past_72_bytes() -> Result<(), bcrypt::BcryptError> {
        let a = format!("{}{}", "x".repeat(72), "tail-one");
        let b = format!("{}{}", "x".repeat(72), "tail-two");
        let h = bcrypt::hash(prehash(&a), 4)?;
        assert!(bcrypt::verify(prehash(&a), &h)?);
        assert!(!bcrypt::verify(prehash(&b), &h)?);
        Ok(())
    }
}
