//! The test harness: a running server per test, an HTTP client, and shorthands.

use std::time::Duration;

use actix_web::http::{Method, StatusCode};
use schema::db::scratch::ScratchDb;
use schema::Clock;
use serde_json::{json, Value};
use server::config::Settings;

pub type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

/// Generates one `#[actix_rt::test]` per backend for each named async test function taking a
/// `TestApp`: `mod sqlite { fn case() }` and `mod postgres { fn case() }`.
///
/// `backend_tests!(tune = f; case, ...)` starts each server with its settings adjusted by `f`, a
/// `fn(&mut Settings)` of the calling module (see [`TestApp::spawn_tuned`]).
#[macro_export]
macro_rules! backend_tests {
    (tune = $tune:ident; $($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[actix_rt::test]
                async fn $case() -> $crate::helpers::TestResult {
                    super::$case($crate::helpers::TestApp::spawn_tuned("sqlite", super::$tune).await?).await
                }
            )*
        }
        mod postgres {
            $(
                #[actix_rt::test]
                async fn $case() -> $crate::helpers::TestResult {
                    super::$case($crate::helpers::TestApp::spawn_tuned("postgres", super::$tune).await?).await
                }
            )*
        }
    };
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[actix_rt::test]
                async fn $case() -> $crate::helpers::TestResult {
                    super::$case($crate::helpers::TestApp::spawn("sqlite").await?).await
                }
            )*
        }
        mod postgres {
            $(
                #[actix_rt::test]
                async fn $case() -> $crate::helpers::TestResult {
                    super::$case($crate::helpers::TestApp::spawn("postgres").await?).await
                }
            )*
        }
    };
}

/// Generates one `#[actix_rt::test]` per message store for each named async test function
/// taking a `TestApp`: SQL on SQLite, SQL on PostgreSQL, and MongoDB (users on SQLite).
#[macro_export]
macro_rules! store_tests {
    ($($case:ident),* $(,)?) => {
        $crate::backend_tests!($($case),*);
        mod mongodb {
            $(
                #[actix_rt::test]
                async fn $case() -> $crate::helpers::TestResult {
                    super::$case($crate::helpers::TestApp::spawn("mongodb").await?).await
                }
            )*
        }
    };
}

/// A running server with its own database.
pub struct TestApp {
    pub base: String,
    pub clock: Clock,
    pub state: actix_web::web::Data<server::state::AppState>,
    pub settings: Settings,
    http: Http,
    handle: actix_web::dev::ServerHandle,
    _db: ScratchDb,
    _mongo: Option<ScratchMongo>,
    /// The test's upload directory (removed afterwards).
    _uploads: Option<tempfile::TempDir>,
}

/// A MongoDB database for one test, dropped afterwards.
pub struct ScratchMongo {
    pub url: String,
    pub name: String,
}

impl ScratchMongo {
    fn new() -> Self {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let url = std::env::var("IM_TEST_MONGODB_URL").unwrap_or_else(|_| "mongodb://127.0.0.1:27017".into());
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let name =
            format!("im_t_{}_{}_{}", std::process::id(), nanos, N.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        ScratchMongo { url, name }
    }
}

impl Drop for ScratchMongo {
    fn drop(&mut self) {
        let (url, name) = (self.url.clone(), self.name.clone());
        // Best effort, on a runtime of its own (the test's may be shutting down).
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
                rt.block_on(async move {
                    if let Ok(c) = mongodb::Client::with_uri_str(&url).await {
                        let _ = c.database(&name).drop().await;
                    }
                });
            }
        })
        .join();
    }
}

/// A logged-in user.
#[derive(Debug, Clone)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub token: String,
    pub device_id: i64,
}

/// Settings for a test node on `url`: port 0, fast bcrypt, one worker.
pub fn test_settings(url: &str) -> Settings {
    let mut s = Settings::default();
    s.server.bind = "127.0.0.1:0".into();
    s.server.workers = 1;
    s.database.url = url.into();
    s.database.pool_size = 4;
    s.auth.bcrypt_cost = 4;
    // Tests register and log in many users from 127.0.0.1; the throttle tests turn it on.
    s.throttle.enabled = false;
    // No pushes unless a test turns them on (the push tests point them at their receiver).
    s.push.enabled = false;
    s
}

impl TestApp {
    /// Starts a server on a fresh database of `backend`: `sqlite`, `postgres`, or `mongodb`
    /// (users on SQLite, messages in a fresh MongoDB database).
    pub async fn spawn(backend: &str) -> TestResult<Self> {
        Self::spawn_tuned(backend, |_| {}).await
    }

    /// Like [`TestApp::spawn`], with settings adjusted by `tune`.
    pub async fn spawn_tuned(backend: &str, tune: impl FnOnce(&mut Settings)) -> TestResult<Self> {
        let sql = if backend == "mongodb" { "sqlite" } else { backend }.to_owned();
        let db = tokio::task::spawn_blocking(move || ScratchDb::of(&sql)).await??;
        let mut settings = test_settings(&db.url);
        let uploads = tempfile::tempdir()?;
        settings.uploads.dir = uploads.path().to_string_lossy().into_owned();
        let mongo = (backend == "mongodb").then(ScratchMongo::new);
        if let Some(m) = &mongo {
            settings.messages.backend = server::config::MessageBackend::Mongodb;
            settings.messages.mongodb_url = m.url.clone();
            settings.messages.mongodb_database = m.name.clone();
        }
        tune(&mut settings);
        let clock = Clock::system();
        let mut app = Self::start(settings, clock, db).await?;
        app._mongo = mongo;
        app._uploads = Some(uploads);
        Ok(app)
    }

    async fn start(settings: Settings, clock: Clock, db: ScratchDb) -> TestResult<Self> {
        let running = server::app::start(settings.clone(), clock.clone()).await?;
        let base = format!("http://{}", running.addr);
        let handle = running.handle.clone();
        let state = running.state.clone();
        actix_rt::spawn(running.wait());
        let http = Http::checked(&base);
        Ok(TestApp { base, clock, state, settings, http, handle, _db: db, _mongo: None, _uploads: None })
    }

    /// Stops this server and starts a new one (new actors, empty memory) on the same databases
    /// and port-0 settings; the clock carries over.
    pub async fn restart(mut self) -> TestResult<Self> {
        self.handle.stop(true).await;
        let db = std::mem::replace(&mut self._db, ScratchDb::sqlite());
        let mongo = self._mongo.take();
        let uploads = self._uploads.take();
        let mut app = Self::start(self.settings.clone(), self.clock.clone(), db).await?;
        app._mongo = mongo;
        app._uploads = uploads;
        Ok(app)
    }
}

/// An HTTP client bound to one server's base URL, with shorthands for the API.
#[derive(Clone)]
pub struct Http {
    pub base: String,
    client: awc::Client,
    /// Whether answers are checked against the served spec ([`Http::checked`]).
    checked: bool,
}

impl Http {
    /// A client for the server at `base` (`http://host:port`).
    pub fn new(base: &str) -> Self {
        Http {
            base: base.to_owned(),
            client: awc::Client::builder().timeout(Duration::from_secs(30)).finish(),
            checked: false,
        }
    }

    /// A client whose every answer is checked against the server's OpenAPI document (what the
    /// API tests use; through a proxy in front of several nodes, answers may be the proxy's).
    pub fn checked(base: &str) -> Self {
        Http { checked: true, ..Self::new(base) }
    }

    /// GETs a JSON document without checking it against the spec (the spec itself).
    pub async fn get_unchecked(&self, path: &str) -> TestResult<Value> {
        let mut resp = self.client.get(format!("{}{}", self.base, path)).send().await?;
        let bytes = resp.body().limit(16 * 1024 * 1024).await?;
        if resp.status() != StatusCode::OK {
            return Err(format!("GET {path}: {}", resp.status()).into());
        }
        Ok(serde_json::from_slice(&bytes)?)
    }

    /// Fails unless the answer is documented in the served spec (status and body schema).
    async fn check(&self, method: &Method, path: &str, status: StatusCode, body: &Value) -> TestResult {
        if !self.checked {
            return Ok(());
        }
        let spec = crate::conformance::spec(self).await?;
        crate::conformance::check_response(spec, method, path, status, body)
    }

    /// Sends a request; returns the status and the JSON body (`Null` when empty). The answer is
    /// checked against the served OpenAPI document.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> TestResult<(StatusCode, Value)> {
        let mut req = self.client.request(method.clone(), format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.insert_header(("Authorization", format!("Bearer {t}")));
        }
        let mut resp = match body {
            Some(b) => req.send_json(&b).await?,
            None => req.send().await?,
        };
        let bytes = resp.body().limit(16 * 1024 * 1024).await?;
        let value = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes)? };
        self.check(&method, path, resp.status(), &value).await?;
        Ok((resp.status(), value))
    }

    /// Sends raw bytes with a content type (malformed-input tests).
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: Vec<u8>,
    ) -> TestResult<(StatusCode, Value)> {
        let mut req = self
            .client
            .request(method.clone(), format!("{}{}", self.base, path))
            .insert_header(("Content-Type", content_type));
        if let Some(t) = token {
            req = req.insert_header(("Authorization", format!("Bearer {t}")));
        }
        let mut resp = req.send_body(body).await?;
        let bytes = resp.body().limit(16 * 1024 * 1024).await?;
        let value = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes)? };
        self.check(&method, path, resp.status(), &value).await?;
        Ok((resp.status(), value))
    }

    /// GET returning raw bytes (images).
    pub async fn raw_get(&self, path: &str, token: &str) -> TestResult<(StatusCode, Vec<u8>)> {
        let mut resp = self
            .client
            .get(format!("{}{}", self.base, path))
            .insert_header(("Authorization", format!("Bearer {token}")))
            .send()
            .await?;
        let bytes = resp.body().limit(16 * 1024 * 1024).await?;
        self.check(&Method::GET, path, resp.status(), &Value::Null).await?;
        Ok((resp.status(), bytes.to_vec()))
    }

    pub async fn get(&self, path: &str, token: &str) -> TestResult<(StatusCode, Value)> {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> TestResult<(StatusCode, Value)> {
        self.call(Method::POST, path, token, Some(body)).await
    }

    pub async fn put(&self, path: &str, token: &str, body: Value) -> TestResult<(StatusCode, Value)> {
        self.call(Method::PUT, path, Some(token), Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> TestResult<(StatusCode, Value)> {
        self.call(Method::PATCH, path, Some(token), Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: &str) -> TestResult<(StatusCode, Value)> {
        self.call(Method::DELETE, path, Some(token), None).await
    }

    /// Registers `username` (password `password123`) and logs in.
    pub async fn user(&self, username: &str) -> TestResult<User> {
        let (s, body) =
            self.post("/api/v1/auth/register", None, json!({"username": username, "password": "password123"})).await?;
        assert_eq!(s, StatusCode::CREATED, "register {username}: {body}");
        self.login(username).await
    }

    /// Logs `username` in on a new device.
    pub async fn login(&self, username: &str) -> TestResult<User> {
        let (s, body) =
            self.post("/api/v1/auth/login", None, json!({"username": username, "password": "password123"})).await?;
        assert_eq!(s, StatusCode::OK, "login {username}: {body}");
        Ok(User {
            id: body["user"]["id"].as_i64().ok_or("no user id")?,
            username: username.to_owned(),
            token: body["token"].as_str().ok_or("no token")?.to_owned(),
            device_id: body["device_id"].as_i64().ok_or("no device id")?,
        })
    }

    /// Makes `a` and `b` friends through a request and its acceptance.
    pub async fn befriend(&self, a: &User, b: &User) -> TestResult {
        let (s, r) =
            self.post("/api/v1/friend/request", Some(&a.token), json!({"to_user_id": b.id, "message": "hi"})).await?;
        assert_eq!(s, StatusCode::CREATED, "{r}");
        let id = r["id"].as_i64().ok_or("no request id")?;
        let (s, r) = self.put(&format!("/api/v1/friend/request/{id}"), &b.token, json!({"action": "accept"})).await?;
        assert_eq!(s, StatusCode::OK, "{r}");
        Ok(())
    }
}

impl std::ops::Deref for TestApp {
    type Target = Http;

    fn deref(&self) -> &Http {
        &self.http
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Stop accepting; the runtime ends with the test.
        drop(self.handle.stop(false));
    }
}

/// Asserts an error response's status and code.
pub fn assert_error(got: &(StatusCode, Value), status: StatusCode, code: &str) {
    assert_eq!(got.0, status, "{}", got.1);
    assert_eq!(got.1["error"], code, "{}", got.1);
    assert!(got.1["message"].as_str().is_some_and(|m| !m.is_empty()), "{}", got.1);
}

/// The `items` array of a list response (the error names the body otherwise).
pub fn items(v: &Value) -> TestResult<&Vec<Value>> {
    v["items"].as_array().ok_or_else(|| format!("no items in {v}").into())
}

/// Whether the local blob store of `app` no longer has blob `key` (nor its thumbnail).
pub fn blob_gone(app: &TestApp, key: &str) -> bool {
    let dir = std::path::Path::new(&app.settings.uploads.dir).join(&key[..2.min(key.len())]);
    !dir.join(key).exists() && !dir.join(format!("{key}.thumb")).exists()
}
