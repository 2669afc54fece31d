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
        ] {
            let err = Settings::load(None, env(&[(k, v)])).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(err.contains(key), "{k}={v}: {err}");
        }
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
