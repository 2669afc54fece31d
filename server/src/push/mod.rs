//! Push notifications to the devices of users with no online session (docs/ARCHITECTURE.md,
//! "Push notifications").
//!
//! Who may be pushed is decided where each message is decided: at the conversation's owner,
//! the one activation in the cluster, which hands a [`PushNotice`] to its node's service
//! through [`actors::push::PushHook`] (friend requests and group invites come from their HTTP
//! handler, which runs once). The service then:
//!
//! 1. drops recipients who silenced the conversation, unless `@`-mentioned and their settings
//!    let mentions break through;
//! 2. drops recipients online anywhere (cluster presence in Redis; one node: its registry);
//! 3. loads the push targets of the rest's live devices, and for each target coalesces: the
//!    first notice of a conversation opens a window of `push.coalesce_ms`, later ones replace
//!    it and count; when the window closes one push goes out, with the latest message, the
//!    count and the unread badge;
//! 4. claims the delivery (target, notification id) with `SET NX PX` in Redis (in memory on a
//!    single node): a notification is sent to a target once, even if a handed-over owner
//!    decides it again;
//! 5. sends: a `gateway` target to `push.gateway_url` (Matrix push-gateway JSON), a `webpush`
//!    target to its endpoint (RFC 8291 encrypted, RFC 8292 VAPID); a 5xx, a 429 or no answer
//!    is retried with doubling delays (`push.retries`, `push.retry_base_ms`); a gateway's
//!    `rejected` pushkey or a Web Push 404/410 removes the target.

pub mod webpush;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actors::db::Db;
use actors::hub::Hub;
use actors::push::{NoticeKind, PushNotice, PushRecipient, PushSink};
use schema::db::push::{self as q, kind, PushSettings, PushTarget};
use schema::db::{groups, users};
use schema::{Clock, UserId};
use serde_json::{json, Value};
use tokio::sync::{mpsc, Semaphore};

use self::webpush::Vapid;
use crate::config::PushSection;

/// How long a delivery claim holds (longer than every retry of it).
pub const CLAIM_TTL: Duration = Duration::from_secs(3600);
/// Longest body a push carries (characters).
pub const BODY_MAX_CHARS: usize = 500;
/// Longest delay between two attempts.
pub const RETRY_CAP: Duration = Duration::from_secs(60);

/// Counters of the service (for tests and the bench).
#[derive(Debug, Default)]
pub struct PushStats {
    /// Pushes a push service accepted.
    pub sent: AtomicU64,
    /// Attempts that failed and were retried.
    pub retried: AtomicU64,
    /// Pushes given up (after every retry, or refused).
    pub failed: AtomicU64,
    /// Targets removed as gone.
    pub gone: AtomicU64,
    /// Deliveries skipped because another claim held.
    pub duplicates: AtomicU64,
}

/// One push waiting in its coalescing window.
struct Pending {
    item: Item,
    count: u32,
}

/// What one target gets for one notice.
#[derive(Clone)]
struct Item {
    target: PushTarget,
    notice: Arc<Described>,
    mentioned: bool,
    previews: bool,
}

/// A notice with the names it shows.
struct Described {
    notice: PushNotice,
    sender_name: String,
    group_name: Option<String>,
}

/// How one attempt ended.
enum Outcome {
    Sent,
    Retry(String),
    Gone,
    Failed(String),
}

struct Inner {
    cfg: PushSection,
    subject: String,
    db: Db,
    hub: Hub,
    clock: Clock,
    http: reqwest::Client,
    vapid: Option<Vapid>,
    tx: mpsc::UnboundedSender<PushNotice>,
    pending: Mutex<HashMap<(i64, String), Pending>>,
    local_claims: Mutex<HashMap<String, Instant>>,
    permits: Semaphore,
    stats: PushStats,
}

/// The node's push service (cheap to clone).
#[derive(Clone)]
pub struct PushService(Arc<Inner>);

struct Sink(mpsc::UnboundedSender<PushNotice>);

impl PushSink for Sink {
    fn notify(&self, notice: PushNotice) {
        let _ = self.0.send(notice);
    }
}

impl PushService {
    /// Starts the service on the current arbiter and installs it in `hub`'s owners. `vapid`:
    /// the key pair (`None`: Web Push off).
    pub fn start(
        cfg: PushSection,
        public_url: &str,
        db: Db,
        hub: Hub,
        clock: Clock,
        vapid: Option<Vapid>,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(cfg.timeout_ms))
            .user_agent(concat!("im-server/", env!("CARGO_PKG_VERSION")))
            // A push service answers; it does not send the (encrypted, signed) push elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let (tx, mut rx) = mpsc::unbounded_channel::<PushNotice>();
        let subject = if cfg.vapid_subject.is_empty() { public_url.to_owned() } else { cfg.vapid_subject.clone() };
        let permits = Semaphore::new(cfg.concurrency);
        let svc = PushService(Arc::new(Inner {
            cfg,
            subject,
            db,
            hub: hub.clone(),
            clock,
            http,
            vapid,
            tx: tx.clone(),
            pending: Mutex::new(HashMap::new()),
            local_claims: Mutex::new(HashMap::new()),
            permits,
            stats: PushStats::default(),
        }));
        if svc.0.cfg.enabled {
            hub.push.install(Arc::new(Sink(tx)));
        }
        let me = svc.clone();
        actix_rt::spawn(async move {
            while let Some(n) = rx.recv().await {
                let me = me.clone();
                actix_rt::spawn(async move { me.process(n).await });
            }
        });
        Ok(svc)
    }

    /// The VAPID public key (base64url), when Web Push is on.
    pub fn vapid_public_key(&self) -> Option<&str> {
        self.0.vapid.as_ref().map(Vapid::public_key)
    }

    /// Whether `gateway` targets can be sent.
    pub fn gateway_configured(&self) -> bool {
        !self.0.cfg.gateway_url.is_empty()
    }

    /// The configuration.
    pub fn config(&self) -> &PushSection {
        &self.0.cfg
    }

    /// The counters.
    pub fn stats(&self) -> &PushStats {
        &self.0.stats
    }

    /// Queues a notice (friend requests and group invites, from their handlers).
    pub fn notify(&self, notice: PushNotice) {
        if self.0.cfg.enabled && !notice.recipients.is_empty() {
            let _ = self.0.tx.send(notice);
        }
    }

    /// A notice of `kind` from `sender` to one user.
    pub fn notify_one(&self, kind: NoticeKind, id: String, sender: UserId, to: UserId, group: Option<i64>, ts: i64) {
        self.notify(PushNotice {
            kind,
            id,
            conv: None,
            sender,
            body: None,
            group,
            seq: 0,
            recipients: vec![PushRecipient { user: to, quiet: false, mentioned: false }],
            ts,
        });
    }

    async fn process(&self, notice: PushNotice) {
        if let Err(e) = self.try_process(notice).await {
            log::warn!(target: "im::push", "push not sent: {e}");
        }
    }

    async fn try_process(&self, notice: PushNotice) -> Result<(), String> {
        // A silenced conversation pushes only a mention (and only if the user lets mentions
        // through, read below with the targets); presence first, so that a message to users
        // who are online costs no store read.
        let maybe: Vec<PushRecipient> = notice.recipients.iter().copied().filter(|r| !r.quiet || r.mentioned).collect();
        if maybe.is_empty() {
            return Ok(());
        }
        let online: std::collections::HashSet<UserId> =
            self.0.hub.online(maybe.iter().map(|r| r.user).collect()).await.into_iter().collect();
        let offline: Vec<PushRecipient> = maybe.into_iter().filter(|r| !online.contains(&r.user)).collect();
        if offline.is_empty() {
            return Ok(());
        }
        let ids: Vec<i64> = offline.iter().map(|r| r.user.0).collect();
        let now = self.0.clock.now_ms();
        let (sender, group) = (notice.sender.0, notice.group);
        let (found, targets, sender_name, group_name) = self
            .0
            .db
            .read(move |c| {
                let settings = q::settings_of(c, &ids)?;
                let targets = q::of_users(c, &ids, now)?;
                let name = users::find(c, sender)?.map(|u| u.nickname).unwrap_or_default();
                let group = match group {
                    Some(g) => groups::find(c, g)?.map(|g| g.name),
                    None => None,
                };
                Ok((settings, targets, name, group))
            })
            .await
            .map_err(|e| e.to_string())?;
        let settings: HashMap<i64, PushSettings> = found.into_iter().collect();
        let of = |u: UserId| settings.get(&u.0).copied().unwrap_or_default();
        let offline: Vec<PushRecipient> =
            offline.into_iter().filter(|r| !r.quiet || (r.mentioned && of(r.user).mentions_break_mute)).collect();
        let by_user: HashMap<UserId, PushRecipient> = offline.iter().map(|r| (r.user, *r)).collect();
        let described = Arc::new(Described { notice, sender_name, group_name });
        for target in targets {
            let Some(r) = by_user.get(&UserId(target.user_id)) else { continue };
            if !self.sendable(&target) {
                continue;
            }
            let previews = target.previews.unwrap_or(of(r.user).previews);
            self.coalesce(Item { target, notice: described.clone(), mentioned: r.mentioned, previews });
        }
        Ok(())
    }

    fn sendable(&self, t: &PushTarget) -> bool {
        match t.kind.as_str() {
            kind::GATEWAY => self.gateway_configured(),
            kind::WEBPUSH => self.0.vapid.is_some(),
            _ => false,
        }
    }

    /// Opens or joins the coalescing window of (target, conversation).
    fn coalesce(&self, item: Item) {
        let window = Duration::from_millis(self.0.cfg.coalesce_ms);
        let Some(conv) = item.notice.notice.conv.clone().filter(|_| !window.is_zero()) else {
            let me = self.clone();
            actix_rt::spawn(async move { me.deliver(item, 1).await });
            return;
        };
        let key = (item.target.id, conv.0);
        {
            let Ok(mut pending) = self.0.pending.lock() else { return };
            if let Some(p) = pending.get_mut(&key) {
                p.count += 1;
                let mentioned = p.item.mentioned || item.mentioned;
                // Notices are processed concurrently, so they may come out of order: the window
                // keeps the newest (by sequence number), whichever arrived last.
                if newer(&item.notice.notice, &p.item.notice.notice) {
                    p.item = Item { mentioned, ..item };
                } else {
                    p.item.mentioned = mentioned;
                }
                return;
            }
            pending.insert(key.clone(), Pending { item, count: 1 });
        }
        let me = self.clone();
        actix_rt::spawn(async move {
            tokio::time::sleep(window).await;
            let taken = me.0.pending.lock().ok().and_then(|mut p| p.remove(&key));
            if let Some(p) = taken {
                // The user may have come online during the window (and seen the messages).
                let user = UserId(p.item.target.user_id);
                if me.0.hub.online(vec![user]).await.contains(&user) {
                    return;
                }
                me.deliver(p.item, p.count).await;
            }
        });
    }

    /// Claims delivery `id` to `target`: true when no one else did.
    async fn claim(&self, target: i64, id: &str) -> bool {
        if let Some(c) = &self.0.hub.cluster {
            match c.presence.claim_push(target, id, CLAIM_TTL).await {
                Ok(first) => return first,
                Err(e) => log::warn!(target: "im::push", "push claim not made in Redis ({e}); claiming on this node"),
            }
        }
        let key = format!("{target}:{id}");
        let Ok(mut claims) = self.0.local_claims.lock() else { return true };
        let now = Instant::now();
        if claims.len() > 100_000 {
            claims.retain(|_, at| now.duration_since(*at) < CLAIM_TTL);
        }
        match claims.get(&key) {
            Some(at) if now.duration_since(*at) < CLAIM_TTL => false,
            _ => {
                claims.insert(key, now);
                true
            }
        }
    }

    async fn deliver(&self, item: Item, count: u32) {
        let n = &item.notice.notice;
        if !self.claim(item.target.id, &n.id).await {
            self.0.stats.duplicates.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let user = item.target.user_id;
        let badge = self.0.db.read(move |c| q::badge(c, user)).await.unwrap_or(0);
        let payload = payload(&item, count, badge);
        let mut delay = Duration::from_millis(self.0.cfg.retry_base_ms);
        for attempt in 0..=self.0.cfg.retries {
            let outcome = {
                let _permit = self.0.permits.acquire().await;
                self.attempt(&item.target, &payload, &item).await
            };
            match outcome {
                Outcome::Sent => {
                    self.0.stats.sent.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Outcome::Gone => {
                    self.0.stats.gone.fetch_add(1, Ordering::Relaxed);
                    let (id, endpoint) = (item.target.id, item.target.endpoint.clone());
                    log::info!(target: "im::push", "push target {id} is gone: removed");
                    if let Err(e) = self.0.db.write(move |c| q::remove_gone(c, id, &endpoint)).await {
                        log::warn!(target: "im::push", "gone push target {id} not removed: {e}");
                    }
                    return;
                }
                Outcome::Failed(e) => {
                    self.0.stats.failed.fetch_add(1, Ordering::Relaxed);
                    log::warn!(target: "im::push", "push to target {} refused: {e}", item.target.id);
                    return;
                }
                Outcome::Retry(e) if attempt < self.0.cfg.retries => {
                    self.0.stats.retried.fetch_add(1, Ordering::Relaxed);
                    log::debug!(target: "im::push", "push to target {} failed ({e}); retry in {delay:?}", item.target.id);
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(RETRY_CAP);
                }
                Outcome::Retry(e) => {
                    self.0.stats.failed.fetch_add(1, Ordering::Relaxed);
                    log::warn!(target: "im::push", "push to target {} given up: {e}", item.target.id);
                }
            }
        }
    }

    async fn attempt(&self, t: &PushTarget, payload: &Value, item: &Item) -> Outcome {
        match t.kind.as_str() {
            kind::GATEWAY => self.to_gateway(t, payload, item).await,
            kind::WEBPUSH => self.to_webpush(t, payload, item).await,
            other => Outcome::Failed(format!("unknown kind {other}")),
        }
    }

    async fn to_gateway(&self, t: &PushTarget, payload: &Value, item: &Item) -> Outcome {
        let body = gateway_body(t, payload, item);
        let resp = match self.0.http.post(&self.0.cfg.gateway_url).json(&body).send().await {
            Ok(r) => r,
            Err(e) => return Outcome::Retry(e.to_string()),
        };
        let status = resp.status();
        if status.is_success() {
            let answer: Value = resp.json().await.unwrap_or(Value::Null);
            let rejected = answer["rejected"].as_array().is_some_and(|r| r.iter().any(|k| k == t.endpoint.as_str()));
            return if rejected { Outcome::Gone } else { Outcome::Sent };
        }
        classify(status)
    }

    async fn to_webpush(&self, t: &PushTarget, payload: &Value, item: &Item) -> Outcome {
        let Some(vapid) = &self.0.vapid else { return Outcome::Failed("web push is off".into()) };
        let (Some(p256dh), Some(auth)) = (&t.p256dh, &t.auth) else {
            return Outcome::Failed("no subscription keys".into());
        };
        let bytes = fit_webpush(payload);
        let body = match webpush::encrypt(p256dh, auth, &bytes) {
            Ok(b) => b,
            Err(e) => return Outcome::Failed(e.to_string()),
        };
        let exp = self.0.clock.now_ms() / 1000 + 12 * 3600;
        let authz = match vapid.authorization(&t.endpoint, &self.0.subject, exp) {
            Ok(a) => a,
            Err(e) => return Outcome::Failed(e.to_string()),
        };
        let urgent = item.mentioned || item.notice.notice.group.is_none();
        let mut req = self
            .0
            .http
            .post(&t.endpoint)
            .header("TTL", self.0.cfg.ttl_secs.to_string())
            .header("Urgency", if urgent { "high" } else { "normal" })
            .header("Content-Encoding", "aes128gcm")
            .header("Content-Type", "application/octet-stream")
            .header("Authorization", authz)
            .body(body);
        if let Some(conv) = &item.notice.notice.conv {
            // A newer push of the same conversation replaces an undelivered one at the service.
            req = req.header("Topic", topic(conv.as_str()));
        }
        match req.send().await {
            Ok(r) if r.status().is_success() => Outcome::Sent,
            Ok(r) if matches!(r.status().as_u16(), 404 | 410) => Outcome::Gone,
            Ok(r) => classify(r.status()),
            Err(e) => Outcome::Retry(e.to_string()),
        }
    }
}

/// The Web Push plaintext of `payload`, within [`webpush::MAX_PAYLOAD`] (the 4096-byte limit
/// of a push message): a body that does not fit is shortened, and dropped if nothing else fits.
fn fit_webpush(payload: &Value) -> Vec<u8> {
    let mut v = payload.clone();
    loop {
        let bytes = v.to_string().into_bytes();
        if bytes.len() <= webpush::MAX_PAYLOAD {
            return bytes;
        }
        let Some(body) = v.get("body").and_then(Value::as_str).filter(|b| !b.is_empty()) else {
            // Nothing left to cut: the message goes out too large and the encryption refuses it.
            return bytes;
        };
        let n = body.chars().count();
        let cut: String = body.chars().take(n * 3 / 4).collect();
        v["body"] = if cut.is_empty() { Value::Null } else { Value::String(cut) };
        if v["body"].is_null() {
            v.as_object_mut().map(|o| o.remove("body"));
        }
    }
}

/// 5xx and 429 are worth retrying; other failures are not.
fn classify(status: reqwest::StatusCode) -> Outcome {
    if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
        Outcome::Retry(format!("answered {status}"))
    } else {
        Outcome::Failed(format!("answered {status}"))
    }
}

/// Whether notice `a` is newer than `b` of the same conversation.
fn newer(a: &PushNotice, b: &PushNotice) -> bool {
    (a.seq, a.ts) >= (b.seq, b.ts)
}

/// A Web Push `Topic` (at most 32 base64url characters) for a conversation.
fn topic(conv: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, conv.as_bytes());
    webpush::b64e(&digest.as_ref()[..24])
}

/// The JSON every push carries (Web Push: the whole encrypted payload; gateway: in `im`).
fn payload(item: &Item, count: u32, badge: i64) -> Value {
    let d = &item.notice;
    let n = &d.notice;
    let mut v = json!({
        "id": n.id,
        "type": n.kind.as_str(),
        "conv": n.conv,
        "sender": {"id": n.sender.0, "name": d.sender_name},
        "mentioned": item.mentioned,
        "count": count,
        "unread": badge,
        "ts": n.ts,
    });
    if let (Some(g), Some(name)) = (n.group, &d.group_name) {
        v["group"] = json!({"id": g, "name": name});
    }
    if item.previews {
        if let Some(body) = &n.body {
            v["body"] = Value::String(body.chars().take(BODY_MAX_CHARS).collect());
        }
    }
    v
}

/// The Matrix push-gateway request (`POST /_matrix/push/v1/notify`) for one device.
fn gateway_body(t: &PushTarget, payload: &Value, item: &Item) -> Value {
    let d = &item.notice;
    let n = &d.notice;
    let mut notification = json!({
        "event_id": n.id,
        "room_id": n.conv,
        "type": n.kind.as_str(),
        "sender": n.sender.0.to_string(),
        "sender_display_name": d.sender_name,
        "prio": if item.mentioned || n.group.is_none() { "high" } else { "low" },
        "counts": {"unread": payload["unread"]},
        "devices": [{
            "app_id": t.app_id,
            "pushkey": t.endpoint,
            "pushkey_ts": t.created_at / 1000,
            "data": {},
        }],
        "im": payload,
    });
    if let Some(name) = &d.group_name {
        notification["room_name"] = Value::String(name.clone());
    }
    if let Some(body) = payload.get("body") {
        notification["content"] = json!({"msgtype": "m.text", "body": body});
    }
    json!({ "notification": notification })
}

/// The VAPID key pair: from `push.vapid_*`, else the one stored in the database (made by the
/// first node that needed it). `None` when Web Push is off.
pub async fn load_vapid(cfg: &PushSection, db: &Db, now: i64) -> anyhow::Result<Option<Vapid>> {
    if !cfg.webpush {
        return Ok(None);
    }
    if !cfg.vapid_private_key.is_empty() {
        return Ok(Some(Vapid::from_raw(&cfg.vapid_private_key, &cfg.vapid_public_key)?));
    }
    let doc = db
        .write(move |c| q::server_key(c, "vapid_pkcs8", || webpush::Vapid::generate_pkcs8().unwrap_or_default(), now))
        .await?;
    Ok(Some(Vapid::from_pkcs8(&doc)?))
}
