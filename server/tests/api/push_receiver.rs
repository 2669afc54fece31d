//! A real local push endpoint for the push tests: an HTTP server on 127.0.0.1:0 that records
//! every request (path, headers, body) and answers as a push gateway (Matrix `rejected` for
//! pushkeys starting with `gone`) or a Web Push service (`410` on paths containing `/gone`),
//! failing the first `fail_next` requests with `503`. Shared by the API and cluster tests.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::{json, Value};

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Got {
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    /// Whether it was answered with success (not a scripted 503 or 410).
    pub accepted: bool,
}

impl Got {
    /// The body as JSON (gateway pushes).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

#[derive(Default)]
struct Shared {
    got: Mutex<Vec<Got>>,
    fail_next: AtomicUsize,
}

/// The receiving server.
pub struct Receiver {
    /// `http://127.0.0.1:port`.
    pub base: String,
    shared: Arc<Shared>,
    handle: actix_web::dev::ServerHandle,
}

async fn receive(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let path = req.path().to_owned();
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_ascii_lowercase(), v.to_str().unwrap_or_default().to_owned()))
        .collect();
    let failing = shared.fail_next.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
    let gone_path = path.contains("/gone");
    let mut got = Got { path: path.clone(), headers, body: body.to_vec(), accepted: !failing && !gone_path };
    let answer = if failing {
        HttpResponse::ServiceUnavailable().finish()
    } else if gone_path {
        HttpResponse::Gone().finish()
    } else if path.starts_with("/_matrix/") {
        let v = got.json();
        let rejected: Vec<Value> = v["notification"]["devices"]
            .as_array()
            .map(|d| {
                d.iter()
                    .filter(|d| d["pushkey"].as_str().is_some_and(|k| k.starts_with("gone")))
                    .map(|d| d["pushkey"].clone())
                    .collect()
            })
            .unwrap_or_default();
        got.accepted = rejected.is_empty();
        HttpResponse::Ok().json(json!({ "rejected": rejected }))
    } else {
        HttpResponse::Created().finish()
    };
    if let Ok(mut g) = shared.got.lock() {
        g.push(got);
    }
    answer
}

impl Receiver {
    /// Starts a receiver on a free port.
    pub async fn start() -> Result<Self, Box<dyn std::error::Error>> {
        let shared = Arc::new(Shared::default());
        let data = web::Data::from(shared.clone());
        let server = HttpServer::new(move || App::new().app_data(data.clone()).default_service(web::to(receive)))
            .workers(1)
            .disable_signals()
            .bind("127.0.0.1:0")?;
        let addr = server.addrs().first().copied().ok_or("no address")?;
        let server = server.run();
        let handle = server.handle();
        actix_rt::spawn(server);
        Ok(Receiver { base: format!("http://{addr}"), shared, handle })
    }

    /// The gateway URL to configure (`push.gateway_url`).
    pub fn gateway_url(&self) -> String {
        format!("{}/_matrix/push/v1/notify", self.base)
    }

    /// Fails the next `n` requests with 503.
    pub fn fail_next(&self, n: usize) {
        self.shared.fail_next.store(n, Ordering::SeqCst);
    }

    /// Everything received so far.
    pub fn got(&self) -> Vec<Got> {
        self.shared.got.lock().map(|g| g.clone()).unwrap_or_default()
    }

    /// The accepted requests whose `pred` holds.
    pub fn accepted(&self, pred: impl Fn(&Got) -> bool) -> Vec<Got> {
        self.got().into_iter().filter(|g| g.accepted && pred(g)).collect()
    }

    /// Waits until at least `n` requests satisfying `pred` arrived (accepted or not); returns
    /// them all. Fails after 20 s.
    pub async fn wait_for(
        &self,
        n: usize,
        pred: impl Fn(&Got) -> bool,
    ) -> Result<Vec<Got>, Box<dyn std::error::Error>> {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let got: Vec<Got> = self.got().into_iter().filter(|g| pred(g)).collect();
            if got.len() >= n {
                return Ok(got);
            }
            if std::time::Instant::now() > deadline {
                return Err(format!("{} of {n} pushes arrived: {got:?}", got.len()).into());
            }
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

/// The gateway pushes (`notification` JSON) received for `pushkey`.
pub fn gateway_pushes(r: &Receiver, pushkey: &str) -> Vec<Value> {
    r.accepted(|g| g.path.starts_with("/_matrix/"))
        .into_iter()
        .map(|g| g.json()["notification"].clone())
        .filter(|n| n["devices"][0]["pushkey"] == pushkey)
        .collect()
}

/// Whether `g` is a gateway push to `pushkey`.
pub fn to_pushkey(g: &Got, pushkey: &str) -> bool {
    g.path.starts_with("/_matrix/") && g.json()["notification"]["devices"][0]["pushkey"] == pushkey
}
