//! Configuration: built-in defaults, then an optional TOML file (`--config PATH` or `IM_CONFIG`),
//! then `IM__SECTION__KEY` environment variables, read with the `config` crate.
//!
//! Unknown keys and invalid values stop start-up with a message naming the key. The defaults run
//! a single embedded node: SQLite under `./data/`, messages in SQLite, in-process bus,
//! 127.0.0.1:8080. Secrets (admin token, database passwords) have no defaults.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// Everything the server reads from configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub server: ServerSection,
    pub database: DatabaseSection,
    pub messages: MessagesSection,
    pub cluster: ClusterSection,
    pub auth: AuthSection,
    pub admin: AdminSection,
    pub friends: FriendsSection,
    pub ws: WsSection,
    pub chat: ChatSection,
    pub throttle: ThrottleSection,
    pub log: LogSection,
    pub uploads: UploadsSection,
    pub push: PushSection,
}

/// `[push]`: push notifications to devices with no online session ([`crate::push`]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PushSection {
    /// Whether the node sends pushes at all (targets can be registered either way).
    pub enabled: bool,
    /// The push gateway `gateway` targets are sent to (Matrix push-gateway model, e.g.
    /// `https://push.example.com/_matrix/push/v1/notify`); empty: no `gateway` targets.
    pub gateway_url: String,
    /// Whether `webpush` targets are accepted and sent.
    pub webpush: bool,
    /// The VAPID key pair (base64url: the raw 32-byte private key and the 65-byte uncompressed
    /// public key). Empty: a pair made once and stored in the database, which every node reads.
    pub vapid_private_key: String,
    pub vapid_public_key: String,
    /// The VAPID `sub` claim: a `mailto:` or `https:` contact of the operator (empty:
    /// `server.public_url`).
    pub vapid_subject: String,
    /// Pushes of one conversation to one device within this window are coalesced into one, ms
    /// (0: every message pushes at once).
    pub coalesce_ms: u64,
    /// Attempts after the first when a push service fails (5xx, 429, no answer).
    pub retries: u32,
    /// The first retry's delay, ms; each next one doubles it (capped at 60 s).
    pub retry_base_ms: u64,
    /// Timeout of one push request, ms.
    pub timeout_ms: u64,
    /// Web Push `TTL` header: how long the push service keeps an undelivered push, seconds.
    pub ttl_secs: u64,
    /// Whether Web Push endpoints may be plain `http://` URLs (tests and local set-ups only).
    pub allow_http_endpoints: bool,
    /// Most push requests in flight at once per node.
    pub concurrency: usize,
}

impl Default for PushSection {
    fn default() -> Self {
        PushSection {
            enabled: true,
            gateway_url: String::new(),
            webpush: true,
            vapid_private_key: String::new(),
            vapid_public_key: String::new(),
            vapid_subject: String::new(),
            coalesce_ms: 2000,
            retries: 5,
            retry_base_ms: 1000,
            timeout_ms: 10_000,
            ttl_secs: 24 * 3600,
            allow_http_endpoints: false,
            concurrency: 64,
        }
    }
}

/// `[throttle]`: rate limits of login and registration, per client address and per account
/// ([`crate::throttle`]). A rate of 0 turns that limit off.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ThrottleSection {
    /// `false` turns every limit below off (load generators logging thousands of users in from
    /// one address; tests).
    pub enabled: bool,
    /// Logins (attempts, right or wrong) one client address may make per minute, sustained.
    pub login_address_per_min: u32,
    /// Logins one client address may make at once before the sustained rate applies.
    pub login_address_burst: u32,
    /// Logins naming one account (username or phone, known or not) per minute, sustained, from
    /// every address together.
    pub login_account_per_min: u32,
    /// Logins naming one account at once before the sustained rate applies.
    pub login_account_burst: u32,
    /// Registrations one client address may make per hour, sustained.
    pub register_address_per_hour: u32,
    /// Registrations one client address may make at once before the sustained rate applies.
    pub register_address_burst: u32,
    /// Most addresses or accounts each limit tracks; past it, the ones not seen lately share one
    /// bucket until idle ones are evicted (memory stays bounded under a spread-out attack).
    pub max_tracked_keys: usize,
}

impl Default for ThrottleSection {
    fn default() -> Self {
        ThrottleSection {
            enabled: true,
            login_address_per_min: 30,
            login_address_burst: 30,
            login_account_per_min: 1,
            login_account_burst: 10,
            register_address_per_hour: 20,
            register_address_burst: 10,
            max_tracked_keys: 100_000,
        }
    }
}

/// Where upload bytes are kept (`uploads.backend`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum BlobBackend {
    /// Files under `uploads.dir` (one node, or a directory every node shares).
    #[default]
    Local,
    /// An S3-compatible bucket (`[uploads.s3]`), for a cluster.
    S3,
}

/// `[uploads]`: files, images and voice notes sent in messages ([`crate::uploads`]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct UploadsSection {
    /// `local` or `s3`.
    pub backend: BlobBackend,
    /// Backend `local`: the directory of the blobs.
    pub dir: String,
    /// Largest image (jpeg, png, gif, webp), bytes.
    pub max_image_bytes: u64,
    /// Largest voice note, bytes.
    pub max_voice_bytes: u64,
    /// Largest other file, bytes.
    pub max_file_bytes: u64,
    /// An upload no message carries is removed this long after it was made, seconds.
    pub unattached_grace_secs: u64,
    /// How often the sweeper of unattached uploads runs, seconds.
    pub sweep_interval_secs: u64,
    /// How long a client may cache a download, seconds (`Cache-Control: private, max-age`).
    pub cache_max_age_secs: u64,
    /// Backend `s3`: the bucket.
    pub s3: S3Section,
}

impl Default for UploadsSection {
    fn default() -> Self {
        UploadsSection {
            backend: BlobBackend::Local,
            dir: "data/uploads".into(),
            max_image_bytes: 10 << 20,
            max_voice_bytes: 5 << 20,
            max_file_bytes: 50 << 20,
            unattached_grace_secs: 86_400,
            sweep_interval_secs: 600,
            cache_max_age_secs: 300,
            s3: S3Section::default(),
        }
    }
}

/// `[uploads.s3]`: an S3-compatible bucket (AWS S3, MinIO, Ceph, ...).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct S3Section {
    /// The service's URL; empty: AWS's own for `region`.
    pub endpoint: String,
    /// The bucket (it must exist).
    pub bucket: String,
    /// The region.
    pub region: String,
    /// The access key id (empty: `AWS_ACCESS_KEY_ID` from the environment).
    pub access_key_id: String,
    /// The secret access key (empty: `AWS_SECRET_ACCESS_KEY` from the environment).
    pub secret_access_key: String,
    /// Allow an `http://` endpoint.
    pub allow_http: bool,
}

impl Default for S3Section {
    fn default() -> Self {
        S3Section {
            endpoint: String::new(),
            bucket: String::new(),
            region: "us-east-1".into(),
            access_key_id: String::new(),
            secret_access_key: String::new(),
            allow_http: false,
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per record, `key=value` fields after the message.
    #[default]
    Text,
    /// One JSON object per line (`ts`, `level`, `target`, `msg` and the record's fields).
    Json,
}

/// `[log]`: the log's format (its level comes from `RUST_LOG`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    /// `text` or `json`.
    pub format: LogFormat,
}

/// `[ws]`: WebSocket sessions: heartbeat and the per-session limits.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WsSection {
    /// How often the server pings each connection, seconds.
    pub heartbeat_interval_secs: u64,
    /// A connection silent (no frame, no pong) for this long is closed, seconds.
    pub client_timeout_secs: u64,
    /// Largest accepted frame, bytes (larger ones close the connection with 1009).
    pub max_frame_bytes: usize,
    /// Sustained frames per second a session may send (token bucket rate).
    pub frames_per_sec: u32,
    /// Burst size of the token bucket.
    pub burst: u32,
    /// Frames refused in a row for flooding before the connection is closed (1008).
    pub max_refusals: u32,
    /// Frames queued to a session's mailbox before it counts as a slow consumer.
    pub mailbox: usize,
    /// Encoded bytes waiting for a client that does not read before it is disconnected.
    pub max_outbound_bytes: usize,
    /// Sends of one session waiting for their ack; more are refused with `overloaded`.
    pub max_in_flight: usize,
}

impl Default for WsSection {
    fn default() -> Self {
        WsSection {
            heartbeat_interval_secs: 55,
            client_timeout_secs: 130,
            max_frame_bytes: 64 * 1024,
            frames_per_sec: 50,
            burst: 100,
            max_refusals: 50,
            mailbox: 1024,
            max_outbound_bytes: 4 * 1024 * 1024,
            max_in_flight: 256,
        }
    }
}

/// `[chat]`: message rules.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ChatSection {
    /// Longest message body, characters.
    pub max_message_chars: usize,
    /// How long after sending the sender may recall a message, seconds.
    pub recall_window_secs: u64,
    /// A conversation actor with no traffic for this long stops, seconds.
    pub conversation_idle_secs: u64,
    /// Most messages one `sync` or history page returns.
    pub max_page: i64,
    /// Most members a group may have.
    pub max_group_members: usize,
    /// How long after sending a text message its sender may edit it, seconds (0: no edits).
    pub edit_window_secs: u64,
    /// The emoji a reaction may be (one of these, exactly).
    pub reactions: Vec<String>,
    /// Most different emoji one message may carry.
    pub max_reactions_per_message: usize,
}

/// The reactions offered by default.
pub const DEFAULT_REACTIONS: &[&str] = &["👍", "👎", "❤️", "😂", "😮", "😢", "😡", "🎉", "🙏", "👀", "🔥", "✅"];

impl Default for ChatSection {
    fn default() -> Self {
        ChatSection {
            max_message_chars: 4000,
            recall_window_secs: 120,
            conversation_idle_secs: 300,
            max_page: 200,
            max_group_members: 2000,
            edit_window_secs: 900,
            reactions: DEFAULT_REACTIONS.iter().map(|r| (*r).to_owned()).collect(),
            max_reactions_per_message: 20,
        }
    }
}

/// `[server]`: listening address, public URL and request limits.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    /// Address to listen on (`host:port`; port 0 picks a free one).
    pub bind: String,
    /// The URL clients reach this service at (invite links use it).
    pub public_url: String,
    /// HTTP worker threads (0 = one per core).
    pub workers: usize,
    /// Largest accepted HTTP request body, bytes.
    pub max_body_bytes: usize,
    /// Seconds to let in-flight requests finish at shutdown.
    pub shutdown_timeout_secs: u64,
    /// Seconds a node keeps serving HTTP after SIGTERM, answering `/readyz` with 503
    /// `draining`, before it closes its listener: load balancers see it drain and take it out
    /// of rotation instead of meeting refused connections (0-300).
    pub drain_grace_secs: u64,
    /// Proxies (IP addresses or CIDR blocks) whose `client_ip_header` is believed. A request
    /// from any other peer is attributed to the peer's own address; empty: always the peer.
    #[serde(deserialize_with = "string_or_list")]
    pub trusted_proxies: Vec<String>,
    /// The header a trusted proxy puts the client's address in: `X-Forwarded-For` (a list, read
    /// from the right, skipping trusted proxies) or a one-address header such as `X-Real-IP`.
    pub client_ip_header: String,
    /// Origins (`https://app.example.com`, or `*`) allowed to call the API from a browser page
    /// of another origin (CORS); empty: no cross-origin access (the embedded client is
    /// same-origin and needs none).
    #[serde(deserialize_with = "string_or_list")]
    pub cors_allowed_origins: Vec<String>,
    /// `Strict-Transport-Security: max-age=<this>` on every response when more than 0 (only
    /// behind TLS: browsers then refuse plain HTTP to this host for that long).
    pub hsts_max_age_secs: u64,
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            bind: "127.0.0.1:8080".into(),
            public_url: "http://127.0.0.1:8080".into(),
            workers: 0,
            max_body_bytes: 64 * 1024,
            shutdown_timeout_secs: 10,
            drain_grace_secs: 5,
            trusted_proxies: Vec::new(),
            client_ip_header: "X-Forwarded-For".into(),
            cors_allowed_origins: Vec::new(),
            hsts_max_age_secs: 0,
        }
    }
}

/// `[database]`: the SQL database (users, friends, groups; messages in `sql` mode).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSection {
    /// `sqlite://PATH` or `postgres://user:pass@host/db`.
    pub url: String,
    /// Connections in the pool, which is also the number of Diesel worker threads.
    pub pool_size: u32,
    /// Seconds to wait for a pooled connection.
    pub connect_timeout_secs: u64,
    /// Apply pending migrations at start-up.
    pub run_migrations: bool,
    /// Message batches written at once (group-commit lanes); 0: half of `pool_size`. Ignored on
    /// SQLite, which writes one batch at a time.
    pub writer_lanes: u32,
    /// SQLite file only: MiB of write-ahead log in use before the writer rewinds it (each rewind
    /// stops writes for two `fsync`s; the log's file stays at about this size under load).
    pub sqlite_wal_max_mib: u64,
    /// SQLite file only: what an acked write survives. `full`: a power loss or kernel crash as
    /// well (the log is `fsync`ed at every commit); `normal`: a crash of this process, but the
    /// last commits before a power loss may be lost (the log is `fsync`ed at checkpoints only).
    pub sqlite_synchronous: SqliteSynchronous,
}

/// `database.sqlite_synchronous`: SQLite's `PRAGMA synchronous` in WAL mode.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSynchronous {
    /// `fsync` at checkpoints only: survives a process crash, not a power loss.
    Normal,
    /// `fsync` of the log at every commit: survives a power loss too.
    Full,
}

impl From<SqliteSynchronous> for schema::db::Synchronous {
    fn from(s: SqliteSynchronous) -> Self {
        match s {
            SqliteSynchronous::Normal => schema::db::Synchronous::Normal,
            SqliteSynchronous::Full => schema::db::Synchronous::Full,
        }
    }
}

impl Default for DatabaseSection {
    fn default() -> Self {
        DatabaseSection {
            url: "sqlite://data/im.db".into(),
            pool_size: 4,
            connect_timeout_secs: 10,
            run_migrations: true,
            writer_lanes: 0,
            sqlite_wal_max_mib: 256,
            sqlite_synchronous: SqliteSynchronous::Full,
        }
    }
}

/// Which message store to use.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MessageBackend {
    /// The `messages` table of the SQL database.
    Sql,
    /// A MongoDB collection.
    Mongodb,
}

/// `[messages]`: where chat messages are persisted.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MessagesSection {
    /// `sql` or `mongodb`.
    pub backend: MessageBackend,
    /// MongoDB connection string (backend `mongodb`).
    pub mongodb_url: String,
    /// MongoDB database name (backend `mongodb`).
    pub mongodb_database: String,
}

impl Default for MessagesSection {
    fn default() -> Self {
        MessagesSection {
            backend: MessageBackend::Sql,
            mongodb_url: "mongodb://127.0.0.1:27017".into(),
            mongodb_database: "im".into(),
        }
    }
}

/// `[cluster]`: Redis for cross-node delivery; unset means a single node with an in-process bus.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSection {
    /// `redis://host:port/db`; empty for a single node.
    pub redis_url: String,
    /// This node's id in the cluster (unique per node).
    pub node_id: String,
    /// How often the node refreshes its liveness key and published figures in Redis, seconds.
    pub heartbeat_secs: u64,
    /// A node that missed its heartbeats this long counts as dead: its sessions stop counting as
    /// online and one live node cleans up after it, seconds (more than `heartbeat_secs`).
    pub node_ttl_secs: u64,
    /// Prefix of every Redis key and pub/sub channel of this cluster, so that several clusters
    /// can share one Redis (`[A-Za-z0-9_-]`).
    pub namespace: String,
    /// How long a command waits for the owner of its conversation on another node before the
    /// client is told `unavailable` (and resends), milliseconds (100-60000).
    pub request_timeout_ms: u64,
}

impl Default for ClusterSection {
    fn default() -> Self {
        ClusterSection {
            redis_url: String::new(),
            node_id: "node-1".into(),
            heartbeat_secs: 2,
            node_ttl_secs: 10,
            namespace: "im".into(),
            request_timeout_ms: 5_000,
        }
    }
}

/// `[auth]`: password hashing and tokens.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSection {
    /// bcrypt cost for new password hashes (4–31; 12 by default).
    pub bcrypt_cost: u32,
    /// Lifetime of a device token, seconds.
    pub token_ttl_secs: i64,
}

impl Default for AuthSection {
    fn default() -> Self {
        AuthSection { bcrypt_cost: 12, token_ttl_secs: 30 * 24 * 3600 }
    }
}

/// `[admin]`: the admin API.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSection {
    /// Bearer token for `/admin/v1`; the admin API is off when empty.
    pub token: String,
}

/// `[friends]`: friend-request rules.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FriendsSection {
    /// A pending request older than this is expired, seconds.
    pub request_ttl_secs: i64,
    /// Minimum time between two requests from one user to the same user, seconds.
    pub request_cooldown_secs: i64,
    /// How often the sweeper marks expired requests in storage, seconds.
    pub sweep_interval_secs: u64,
}

impl Default for FriendsSection {
    fn default() -> Self {
        FriendsSection { request_ttl_secs: 7 * 24 * 3600, request_cooldown_secs: 24 * 3600, sweep_interval_secs: 60 }
    }
}

/// A configuration error, naming the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file, an environment variable or a key could not be read.
    #[error("configuration: {0}")]
    Read(#[from] config::ConfigError),
    /// A value is out of range.
    #[error("configuration: invalid value for `{key}`: {reason}")]
    Invalid {
        /// The dotted key, such as `auth.bcrypt_cost`.
        key: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

impl Settings {
    /// Loads defaults, then `file` if given, then `IM__SECTION__KEY` variables from `env`.
    pub fn load(file: Option<&Path>, env: HashMap<String, String>) -> Result<Self, ConfigError> {
        let mut b = config::Config::builder().add_source(config::Config::try_from(&Settings::default())?);
        if let Some(path) = file {
            b = b.add_source(config::File::from(path).format(config::FileFormat::Toml).required(true));
        }
        Self::finish(b, env)
    }

    /// [`Settings::load`] with the file's text given instead of its path (the fuzz targets and
    /// property tests feed it arbitrary TOML).
    pub fn from_toml(toml: &str, env: HashMap<String, String>) -> Result<Self, ConfigError> {
        let b = config::Config::builder()
            .add_source(config::Config::try_from(&Settings::default())?)
            .add_source(config::File::from_str(toml, config::FileFormat::Toml));
        Self::finish(b, env)
    }

    fn finish(
        mut b: config::ConfigBuilder<config::builder::DefaultState>,
        env: HashMap<String, String>,
    ) -> Result<Self, ConfigError> {
        b = b.add_source(
            config::Environment::with_prefix("IM")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .source(Some(env)),
        );
        let settings: Settings = b.build()?.try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    /// Loads from the process environment (`IM_CONFIG` names the file when `file` is `None`).
    pub fn from_env(file: Option<&Path>) -> Result<Self, ConfigError> {
        let env: HashMap<String, String> = std::env::vars().collect();
        let from_var = env.get("IM_CONFIG").filter(|s| !s.is_empty()).map(std::path::PathBuf::from);
        Self::load(file.or(from_var.as_deref()), env)
    }

    /// Checks ranges and formats that serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key, reason: &str| Err(ConfigError::Invalid { key, reason: reason.to_owned() });
        if self.server.bind.parse::<std::net::SocketAddr>().is_err() && !self.server.bind.contains(':') {
            return bad("server.bind", "expected host:port");
        }
        if self.server.drain_grace_secs > 300 {
            return bad("server.drain_grace_secs", "must be at most 300");
        }
        if !(100..=60_000).contains(&self.cluster.request_timeout_ms) {
            return bad("cluster.request_timeout_ms", "must be between 100 and 60000");
        }
        if self.server.max_body_bytes < 1024 {
            return bad("server.max_body_bytes", "must be at least 1024");
        }
        if schema::db::DbUrl::parse(&self.database.url).is_err() {
            return bad("database.url", "expected sqlite://PATH or postgres://...");
        }
        if self.database.pool_size == 0 || self.database.pool_size > 256 {
            return bad("database.pool_size", "must be between 1 and 256");
        }
        if !(1..=1 << 20).contains(&self.database.sqlite_wal_max_mib) {
            return bad("database.sqlite_wal_max_mib", "must be between 1 and 1048576");
        }
        if self.database.writer_lanes > self.database.pool_size {
            return bad("database.writer_lanes", "must be at most database.pool_size (0: half of it)");
        }
        if self.messages.backend == MessageBackend::Mongodb && !self.messages.mongodb_url.starts_with("mongodb") {
            return bad("messages.mongodb_url", "expected mongodb://... or mongodb+srv://...");
        }
        let p = &self.push;
        if !p.gateway_url.is_empty() && !p.gateway_url.starts_with("http://") && !p.gateway_url.starts_with("https://")
        {
            return bad("push.gateway_url", "expected http(s)://...");
        }
        if p.vapid_private_key.is_empty() != p.vapid_public_key.is_empty() {
            return bad(
                "push.vapid_private_key",
                "set both push.vapid_private_key and push.vapid_public_key, or neither",
            );
        }
        if !p.vapid_private_key.is_empty()
            && crate::push::webpush::Vapid::from_raw(&p.vapid_private_key, &p.vapid_public_key).is_err()
        {
            return bad("push.vapid_private_key", "not a P-256 key pair (base64url raw private key and public key)");
        }
        if p.coalesce_ms > 600_000 {
            return bad("push.coalesce_ms", "must be at most 600000");
        }
        if p.retries > 20 {
            return bad("push.retries", "must be at most 20");
        }
        if !(1..=600_000).contains(&p.timeout_ms) {
            return bad("push.timeout_ms", "must be between 1 and 600000");
        }
        if !(1..=10_000).contains(&p.concurrency) {
            return bad("push.concurrency", "must be between 1 and 10000");
        }
        if !self.cluster.redis_url.is_empty() && !self.cluster.redis_url.starts_with("redis") {
            return bad("cluster.redis_url", "expected redis://... or rediss://...");
        }
        if self.cluster.node_id.is_empty()
            || !self.cluster.node_id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return bad("cluster.node_id", "must be non-empty [A-Za-z0-9_-]");
        }
        if self.cluster.namespace.is_empty()
            || !self.cluster.namespace.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return bad("cluster.namespace", "must be non-empty [A-Za-z0-9_-]");
        }
        if self.cluster.heartbeat_secs == 0 {
            return bad("cluster.heartbeat_secs", "must be at least 1");
        }
        if self.cluster.node_ttl_secs <= self.cluster.heartbeat_secs {
            return bad("cluster.node_ttl_secs", "must be more than cluster.heartbeat_secs");
        }
        if !(4..=31).contains(&self.auth.bcrypt_cost) {
            return bad("auth.bcrypt_cost", "must be between 4 and 31");
        }
        if self.auth.token_ttl_secs < 60 {
            return bad("auth.token_ttl_secs", "must be at least 60");
        }
        if self.friends.request_ttl_secs < 1
            || self.friends.request_cooldown_secs < 0
            || self.friends.sweep_interval_secs == 0
        {
            return bad(
                "friends",
                "request_ttl_secs and sweep_interval_secs must be positive, request_cooldown_secs not negative",
            );
        }
        if self.ws.heartbeat_interval_secs == 0 || self.ws.client_timeout_secs <= self.ws.heartbeat_interval_secs {
            return bad("ws.client_timeout_secs", "must be greater than ws.heartbeat_interval_secs (> 0)");
        }
        if self.ws.max_frame_bytes < 1024 {
            return bad("ws.max_frame_bytes", "must be at least 1024");
        }
        if self.ws.frames_per_sec == 0 || self.ws.burst == 0 {
            return bad("ws.frames_per_sec", "frames_per_sec and burst must be positive");
        }
        if self.ws.max_in_flight == 0 {
            return bad("ws.max_in_flight", "must be at least 1");
        }
        if self.ws.max_refusals == 0 {
            return bad("ws.max_refusals", "must be at least 1");
        }
        if self.ws.max_outbound_bytes < 64 * 1024 {
            return bad("ws.max_outbound_bytes", "must be at least 65536");
        }
        if self.ws.mailbox < 16 {
            return bad("ws.mailbox", "must be at least 16");
        }
        if self.chat.max_group_members < 2 {
            return bad("chat.max_group_members", "must be at least 2");
        }
        if self.chat.reactions.is_empty()
            || self.chat.reactions.len() > 64
            || self.chat.reactions.iter().any(|r| r.is_empty() || r.len() > 32 || r.chars().any(char::is_whitespace))
        {
            return bad("chat.reactions", "1-64 emoji, each 1-32 bytes without spaces");
        }
        if !(1..=64).contains(&self.chat.max_reactions_per_message) {
            return bad("chat.max_reactions_per_message", "must be between 1 and 64");
        }
        if self.chat.max_message_chars == 0 || self.chat.max_page < 1 {
            return bad("chat.max_message_chars", "max_message_chars and max_page must be positive");
        }
        for p in &self.server.trusted_proxies {
            if crate::proxy::parse_net(p).is_none() {
                return Err(ConfigError::Invalid {
                    key: "server.trusted_proxies",
                    reason: format!("{p:?} is not an IP address or CIDR block (such as 10.0.0.0/8)"),
                });
            }
        }
        if actix_web::http::header::HeaderName::try_from(self.server.client_ip_header.as_str()).is_err() {
            return bad("server.client_ip_header", "must be a header name, such as X-Forwarded-For or X-Real-IP");
        }
        for o in &self.server.cors_allowed_origins {
            if !crate::middleware::valid_origin(o) {
                return Err(ConfigError::Invalid {
                    key: "server.cors_allowed_origins",
                    reason: format!("{o:?} is not an origin: expected scheme://host[:port] or *"),
                });
            }
        }
        if self.server.hsts_max_age_secs > 2 * 365 * 24 * 3600 {
            return bad("server.hsts_max_age_secs", "must be at most 63072000 (two years)");
        }
        let t = &self.throttle;
        for (key, rate, burst, max) in [
            ("throttle.login_address_burst", t.login_address_per_min, t.login_address_burst, 60_000),
            ("throttle.login_account_burst", t.login_account_per_min, t.login_account_burst, 60_000),
            ("throttle.register_address_burst", t.register_address_per_hour, t.register_address_burst, 3_600_000),
        ] {
            if rate > max {
                return Err(ConfigError::Invalid { key, reason: format!("its rate must be at most {max}") });
            }
            if rate > 0 && burst == 0 {
                return bad(key, "must be at least 1 while its rate is on (a rate of 0 turns the limit off)");
            }
        }
        if self.throttle.max_tracked_keys < 1000 {
            return bad("throttle.max_tracked_keys", "must be at least 1000");
        }
        let u = &self.uploads;
        if u.max_image_bytes == 0 || u.max_voice_bytes == 0 || u.max_file_bytes == 0 {
            return bad(
                "uploads.max_file_bytes",
                "max_image_bytes, max_voice_bytes and max_file_bytes must be positive",
            );
        }
        if u.sweep_interval_secs == 0 {
            return bad("uploads.sweep_interval_secs", "must be at least 1");
        }
        if u.backend == BlobBackend::Local && u.dir.is_empty() {
            return bad("uploads.dir", "must name a directory");
        }
        if u.backend == BlobBackend::S3 && u.s3.bucket.is_empty() {
            return bad("uploads.s3.bucket", "must name a bucket when uploads.backend is s3");
        }
        Ok(())
    }

    /// The settings as TOML-like lines with secrets masked, for the start-up log.
    pub fn masked(&self) -> String {
        let mut s = self.clone();
        s.database.url = mask_url(&s.database.url);
        s.messages.mongodb_url = mask_url(&s.messages.mongodb_url);
        s.cluster.redis_url = mask_url(&s.cluster.redis_url);
        if !s.admin.token.is_empty() {
            s.admin.token = "****".into();
        }
        if !s.uploads.s3.secret_access_key.is_empty() {
            s.uploads.s3.secret_access_key = "****".into();
        }
        if !s.push.vapid_private_key.is_empty() {
            s.push.vapid_private_key = "****".into();
        }
        serde_json::to_string(&s).unwrap_or_default()
    }
}

/// Replaces the password of a `scheme://user:password@host` URL with `****`.
pub fn mask_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:****@{host}"),
        None => url.to_owned(),
    }
}

/// A list, or one string with the items separated by commas (the form an `IM__...` variable
/// gives: `IM__SERVER__TRUSTED_PROXIES=10.0.0.0/8,192.168.0.0/16`).
fn string_or_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Either::deserialize(d)? {
        Either::One(s) => s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect(),
        Either::Many(v) => v,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_shipped_example_configs_load() {
        for f in ["single-node.toml", "cluster-node.toml"] {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/config").join(f);
            let s = Settings::load(Some(&path), HashMap::new());
            assert!(s.is_ok(), "deploy/config/{f}: {:?}", s.err());
        }
        let k8s = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/k8s/configmap.yaml"));
        let k8s = k8s.unwrap_or_default();
        // The ConfigMap embeds a TOML file, indented under `config.toml: |`.
        let toml: String = k8s
            .lines()
            .skip_while(|l| !l.trim_start().starts_with("config.toml:"))
            .skip(1)
            .take_while(|l| l.starts_with("    ") || l.trim().is_empty())
            .map(|l| format!("{}\n", l.strip_prefix("    ").unwrap_or(l)))
            .collect();
        assert!(toml.contains("[server]"), "no TOML found in deploy/k8s/configmap.yaml");
        let dir = std::env::temp_dir().join(format!("im-k8s-{}.toml", std::process::id()));
        assert!(std::fs::write(&dir, toml).is_ok());
        let s = Settings::load(Some(&dir), HashMap::new());
        let _ = std::fs::remove_file(&dir);
        assert!(s.is_ok(), "deploy/k8s/configmap.yaml: {:?}", s.err());
    }

    #[test]
    fn defaults_are_embedded_single_node() -> Result<(), ConfigError> {
        let s = Settings::load(None, env(&[]))?;
        assert_eq!(s.server.bind, "127.0.0.1:8080");
        assert_eq!(s.database.url, "sqlite://data/im.db");
        assert_eq!(s.messages.backend, MessageBackend::Sql);
        assert!(s.cluster.redis_url.is_empty());
        assert_eq!(s.auth.bcrypt_cost, 12);
        Ok(())
    }

    #[test]
    fn env_overrides_file_overrides_defaults() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("im.toml");
        std::fs::write(&path, "[server]\nbind = \"0.0.0.0:9000\"\n[auth]\nbcrypt_cost = 10\n")?;
        let s =
            Settings::load(Some(&path), env(&[("IM__AUTH__BCRYPT_COST", "6"), ("IM__MESSAGES__BACKEND", "mongodb")]))?;
        assert_eq!(s.server.bind, "0.0.0.0:9000");
        assert_eq!(s.auth.bcrypt_cost, 6);
        assert_eq!(s.messages.backend, MessageBackend::Mongodb);
        Ok(())
    }

    #[test]
    fn unknown_keys_are_named() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("im.toml");
        std::fs::write(&path, "[server]\nbindd = \"0.0.0.0:9000\"\n")?;
        let err = Settings::load(Some(&path), env(&[])).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("bindd"), "{err}");
        let err = Settings::load(None, env(&[("IM__NOPE__X", "1")])).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("nope"), "{err}");
        Ok(())
    }

    #[test]
    fn invalid_values_are_named() {
        for (k, v, key) in [
            ("IM__AUTH__BCRYPT_COST", "40", "auth.bcrypt_cost"),
            ("IM__AUTH__BCRYPT_COST", "many", "bcrypt_cost"),
            ("IM__DATABASE__URL", "mysql://x", "database.url"),
            ("IM__MESSAGES__BACKEND", "cassandra", "backend"),
            ("IM__CLUSTER__NODE_ID", "a b", "cluster.node_id"),
            ("IM__DATABASE__WRITER_LANES", "5", "database.writer_lanes"),
            ("IM__DATABASE__SQLITE_WAL_MAX_MIB", "0", "database.sqlite_wal_max_mib"),
            ("IM__DATABASE__SQLITE_SYNCHRONOUS", "off", "sqlite_synchronous"),
            ("IM__SERVER__TRUSTED_PROXIES", "10.0.0.0/8,nginx", "server.trusted_proxies"),
            ("IM__SERVER__CLIENT_IP_HEADER", "X Forwarded", "server.client_ip_header"),
            ("IM__SERVER__CORS_ALLOWED_ORIGINS", "https://a.example/path", "server.cors_allowed_origins"),
            ("IM__THROTTLE__LOGIN_ADDRESS_BURST", "0", "throttle.login_address_burst"),
            ("IM__THROTTLE__MAX_TRACKED_KEYS", "10", "throttle.max_tracked_keys"),
            ("IM__LOG__FORMAT", "xml", "format"),
        ] {
            let err = Settings::load(None, env(&[(k, v)])).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(err.contains(key), "{k}={v}: {err}");
        }
    }

    #[test]
    fn lists_come_from_a_file_or_from_one_variable() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("im.toml");
        std::fs::write(&path, "[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\"]\n")?;
        let s = Settings::load(Some(&path), env(&[]))?;
        assert_eq!(s.server.trusted_proxies, ["10.0.0.0/8", "::1"]);
        let s = Settings::load(
            None,
            env(&[
                ("IM__SERVER__TRUSTED_PROXIES", "10.0.0.0/8, 192.168.0.0/16"),
                ("IM__SERVER__CORS_ALLOWED_ORIGINS", "https://app.example.com"),
                ("IM__DATABASE__SQLITE_SYNCHRONOUS", "normal"),
                ("IM__LOG__FORMAT", "json"),
            ]),
        )?;
        assert_eq!(s.server.trusted_proxies, ["10.0.0.0/8", "192.168.0.0/16"]);
        assert_eq!(s.server.cors_allowed_origins, ["https://app.example.com"]);
        assert_eq!(s.database.sqlite_synchronous, SqliteSynchronous::Normal);
        assert_eq!(s.log.format, LogFormat::Json);
        // The defaults: durable against power loss, throttled, no proxy trusted, no CORS.
        let d = Settings::load(None, env(&[]))?;
        assert_eq!(d.database.sqlite_synchronous, SqliteSynchronous::Full);
        assert!(d.throttle.enabled && d.server.trusted_proxies.is_empty() && d.server.cors_allowed_origins.is_empty());
        Ok(())
    }

    #[test]
    fn secrets_are_masked() -> Result<(), ConfigError> {
        let s = Settings::load(
            None,
            env(&[("IM__DATABASE__URL", "postgres://im:hunter2@db/im"), ("IM__ADMIN__TOKEN", "s3cret")]),
        )?;
        let m = s.masked();
        assert!(!m.contains("hunter2") && !m.contains("s3cret"), "{m}");
        assert!(m.contains("postgres://im:****@db/im"), "{m}");
        Ok(())
    }
}
