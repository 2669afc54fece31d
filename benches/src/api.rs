//! The server's public HTTP API as the load generator uses it, over awc (one client per thread:
//! awc clients are not `Send`).

use actix_service::ServiceExt as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use awc::http::{Method, StatusCode};
use serde_json::{json, Value};

/// Password of every generated user.
pub const PASSWORD: &str = "loadgen-password";

/// A user the generator created and logged in.
#[derive(Debug, Clone)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub token: String,
}

/// An HTTP client for one server.
#[derive(Clone)]
pub struct Api {
    base: String,
    client: awc::Client,
}

/// How often a request is retried after a transport error or a 5xx answer.
const RETRIES: u32 = 4;

/// Requests retried after a 5xx answer or a transport error, process-wide (reported: a server
/// that needs retries during set-up has a problem worth knowing about).
static RETRIED: AtomicU64 = AtomicU64::new(0);

/// Retries so far, by cause (`http 500`, `transport`, ...).
pub fn retries() -> crate::report::Counts {
    RETRY_CAUSES.lock().map(|c| c.clone()).unwrap_or_default()
}

static RETRY_CAUSES: Mutex<crate::report::Counts> = Mutex::new(std::collections::BTreeMap::new());

fn note_retry(cause: &str) {
    RETRIED.fetch_add(1, Ordering::Relaxed);
    if let Ok(mut c) = RETRY_CAUSES.lock() {
        crate::report::bump(&mut c, cause, 1);
    }
}

impl Api {
    /// A client for `base` (`http://host:port`), with no limit on pooled connections.
    pub fn new(base: &str, timeout: Duration) -> Self {
        Self::with_source(base, timeout, None)
    }

    /// A client whose TCP connections are bound to the local address `source` before they
    /// connect (`None`: the kernel chooses). Each source address has its own ephemeral ports, so
    /// spreading connections over 127.0.0.2, 127.0.0.3, ... lifts the per-address port limit of
    /// a loopback load test.
    pub fn with_source(base: &str, timeout: Duration, source: Option<std::net::IpAddr>) -> Self {
        // Like browsers and mobile clients, no Nagle delay on small frames (TCP_NODELAY).
        let tcp = actix_tls::connect::Connector::new(actix_tls::connect::Resolver::default()).service().map(
            |conn: actix_tls::connect::Connection<awc::http::Uri, actix_rt::net::TcpStream>| {
                let _ = conn.io_ref().set_nodelay(true);
                conn
            },
        );
        let mut connector = awc::Connector::new().connector(tcp).limit(0);
        if let Some(ip) = source {
            connector = connector.local_address(ip);
        }
        let client = awc::Client::builder().connector(connector).timeout(timeout).disable_redirects().finish();
        Api { base: base.trim_end_matches('/').to_owned(), client }
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The WebSocket URL of the server (`ws://host:port/ws`).
    pub fn ws_url(&self) -> String {
        let rest = self.base.strip_prefix("http").unwrap_or(&self.base);
        format!("ws{rest}/ws")
    }

    /// The client (for WebSocket connections).
    pub fn client(&self) -> &awc::Client {
        &self.client
    }

    /// One request: the status and JSON body (`Null` when empty), without retries.
    pub async fn call_once(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let mut req = self.client.request(method, format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let mut resp = match body {
            Some(b) => req.send_json(b).await,
            None => req.send().await,
        }
        .map_err(|e| anyhow!("{path}: {e}"))?;
        let bytes = resp.body().limit(1 << 20).await.map_err(|e| anyhow!("{path}: body: {e}"))?;
        let value = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes)? };
        Ok((resp.status(), value))
    }

    /// One request, retried with back-off after transport errors and 5xx answers (each retry is
    /// counted, see [`retries`]).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let mut attempt = 0;
        loop {
            let res = self.call_once(method.clone(), path, token, body).await;
            let cause = match &res {
                Ok((s, v)) if s.is_server_error() => {
                    Some(format!("{method} {} -> {} {}", route(path), s.as_u16(), v["error"].as_str().unwrap_or("")))
                }
                Ok(_) => None,
                Err(e) => Some(format!("{method} {} -> transport: {e}", route(path))),
            };
            let Some(cause) = cause else { return res };
            if attempt >= RETRIES {
                return res;
            }
            note_retry(&cause);
            attempt += 1;
            actix_rt::time::sleep(Duration::from_millis(100 << attempt)).await;
        }
    }

    /// `POST /api/v1/auth/register`; returns the new user's id.
    pub async fn register(&self, username: &str) -> anyhow::Result<i64> {
        let body = json!({"username": username, "password": PASSWORD});
        let (s, v) = self.call(Method::POST, "/api/v1/auth/register", None, Some(&body)).await?;
        if s != StatusCode::CREATED {
            bail!("register {username}: {s} {v}");
        }
        v["id"].as_i64().ok_or_else(|| anyhow!("register {username}: no id in {v}"))
    }

    /// `POST /api/v1/auth/register`, where `409 username_taken` counts as done (the user exists
    /// from an earlier run with the same prefix, with the generator's password).
    pub async fn register_or_existing(&self, username: &str) -> anyhow::Result<()> {
        let body = json!({"username": username, "password": PASSWORD});
        let (s, v) = self.call(Method::POST, "/api/v1/auth/register", None, Some(&body)).await?;
        if s == StatusCode::CREATED || (s == StatusCode::CONFLICT && v["error"] == "username_taken") {
            return Ok(());
        }
        bail!("register {username}: {s} {v}")
    }

    /// `POST /api/v1/auth/login` as a new device, timed: the user and how long the call took.
    pub async fn login_timed(&self, username: &str) -> anyhow::Result<(Result<User, StatusCode>, Duration)> {
        let body = json!({"username": username, "password": PASSWORD, "device_name": "im-loadgen"});
        let t = Instant::now();
        let (s, v) = self.call_once(Method::POST, "/api/v1/auth/login", None, Some(&body)).await?;
        let took = t.elapsed();
        if s != StatusCode::OK {
            return Ok((Err(s), took));
        }
        let user = User {
            id: v["user"]["id"].as_i64().ok_or_else(|| anyhow!("login {username}: no user id in {v}"))?,
            username: username.to_owned(),
            token: v["token"].as_str().ok_or_else(|| anyhow!("login {username}: no token in {v}"))?.to_owned(),
        };
        Ok((Ok(user), took))
    }

    /// `POST /api/v1/auth/login` (retried like [`Api::call`]).
    pub async fn login(&self, username: &str) -> anyhow::Result<User> {
        let body = json!({"username": username, "password": PASSWORD, "device_name": "im-loadgen"});
        let (s, v) = self.call(Method::POST, "/api/v1/auth/login", None, Some(&body)).await?;
        if s != StatusCode::OK {
            bail!("login {username}: {s} {v}");
        }
        Ok(User {
            id: v["user"]["id"].as_i64().ok_or_else(|| anyhow!("login {username}: no user id in {v}"))?,
            username: username.to_owned(),
            token: v["token"].as_str().ok_or_else(|| anyhow!("login {username}: no token in {v}"))?.to_owned(),
        })
    }

    /// Makes `a` and `b` friends: `a` sends a request, `b` accepts it.
    pub async fn befriend(&self, a: &User, b: &User) -> anyhow::Result<()> {
        let body = json!({"to_user_id": b.id, "message": "load test"});
        let (s, v) = self.call(Method::POST, "/api/v1/friend/request", Some(&a.token), Some(&body)).await?;
        if s == StatusCode::OK && v["status"] == "accepted" {
            return Ok(());
        }
        if s != StatusCode::CREATED {
            bail!("friend request {} -> {}: {s} {v}", a.username, b.username);
        }
        let id = v["id"].as_i64().context("friend request without id")?;
        let body = json!({"action": "accept"});
        let (s, v) =
            self.call(Method::PUT, &format!("/api/v1/friend/request/{id}"), Some(&b.token), Some(&body)).await?;
        if s != StatusCode::OK {
            bail!("accept request {id} ({} -> {}): {s} {v}", a.username, b.username);
        }
        Ok(())
    }
}

/// A group the generator created: its id and conversation.
#[derive(Debug, Clone)]
pub struct Group {
    pub id: i64,
    pub conv: schema::ConvId,
}

impl Api {
    /// `POST /api/v1/groups` `{name}` by `owner`, with no other members.
    pub async fn create_group(&self, owner: &User, name: &str) -> anyhow::Result<Group> {
        let body = json!({"name": name, "member_ids": []});
        let (s, v) = self.call(Method::POST, "/api/v1/groups", Some(&owner.token), Some(&body)).await?;
        if s != StatusCode::CREATED {
            bail!("create group {name}: {s} {v}");
        }
        let id = v["id"].as_i64().ok_or_else(|| anyhow!("create group {name}: no id in {v}"))?;
        Ok(Group { id, conv: schema::ConvId::group(schema::GroupId(id)) })
    }

    /// `POST /api/v1/groups/{id}/invites` `{max_uses}` by `by`; returns the link's token.
    pub async fn create_invite(&self, by: &User, group: i64, max_uses: i64) -> anyhow::Result<String> {
        let body = json!({"max_uses": max_uses});
        let path = format!("/api/v1/groups/{group}/invites");
        let (s, v) = self.call(Method::POST, &path, Some(&by.token), Some(&body)).await?;
        if s != StatusCode::CREATED {
            bail!("invite link for group {group}: {s} {v}");
        }
        Ok(v["token"].as_str().ok_or_else(|| anyhow!("invite link for group {group}: no token in {v}"))?.to_owned())
    }

    /// `POST /api/v1/groups/join` `{token}` by `who`, for group `group`. `409 already_member`
    /// counts as joined (a retried join whose first attempt went through).
    pub async fn join_group(&self, who: &User, token: &str, group: i64) -> anyhow::Result<()> {
        let body = json!({"token": token});
        let (s, v) = self.call(Method::POST, "/api/v1/groups/join", Some(&who.token), Some(&body)).await?;
        if s == StatusCode::CONFLICT && v["error"] == "already_member" {
            return Ok(());
        }
        if s != StatusCode::OK {
            bail!("{} joining group {group} by link: {s} {v}", who.username);
        }
        match v["id"].as_i64() {
            Some(id) if id == group => Ok(()),
            _ => bail!("{} joining group {group} by link: answer {v}", who.username),
        }
    }
}

/// A path with its numeric segments replaced by `{id}` (for grouping retries).
fn route(path: &str) -> String {
    path.split('/')
        .map(|seg| if !seg.is_empty() && seg.chars().all(|c| c.is_ascii_digit()) { "{id}" } else { seg })
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_rt::test]
    async fn ws_url_from_base() {
        assert_eq!(Api::new("http://127.0.0.1:9/", Duration::from_secs(1)).ws_url(), "ws://127.0.0.1:9/ws");
        assert_eq!(Api::new("https://h", Duration::from_secs(1)).ws_url(), "wss://h/ws");
        assert_eq!(route("/api/v1/friend/request/17"), "/api/v1/friend/request/{id}");
    }
}
