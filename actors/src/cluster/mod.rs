//! The cluster: what one node knows about the others, and the Redis link between them.
//!
//! Without `cluster.redis_url` a node is alone and nothing here runs: the outbox publishes
//! nothing and every conversation is owned locally. With it, the node joins the cluster
//! through Redis:
//!
//! - [`envelope`]: the typed wire envelope of the bus (header line + frames);
//! - [`outbox`]: publishing envelopes (one queue, one pipelined publisher task);
//! - [`subscriber`]: the dedicated pub/sub connection: this node's channel, the cluster-wide
//!   channel and one channel per locally connected user; dispatches what arrives;
//! - [`presence`]: who is online where (a hash per user, node liveness keys with a TTL), the
//!   heartbeat that keeps this node's lease, and the reaping of dead nodes' sessions;
//! - [`directory`]: which node owns each conversation (records in Redis under the node leases)
//!   and the fencing epochs in SQL;
//! - [`view`]: the live nodes as this node sees them, and its own lease.
//!
//! Redis being unreachable degrades a node, it never stops it: the node stops acting as owner
//! under a lease it cannot renew, then owns what its own sessions need under SQL fencing alone;
//! the subscriber reconnects with backoff and re-subscribes, and clients catch up with `sync`.

pub mod directory;
pub mod envelope;
pub mod outbox;
pub mod presence;
pub mod subscriber;
pub mod view;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

use crate::metrics::{Metrics, REDIS_DOWN, REDIS_OFF, REDIS_UP};

/// How a node takes part in the cluster.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    /// `redis://...`; empty for a single node.
    pub redis_url: String,
    /// This node's id (unique in the cluster).
    pub node_id: String,
    /// How often the node refreshes its liveness key and published stats.
    pub heartbeat: Duration,
    /// How long a node counts as alive after its last heartbeat.
    pub node_ttl: Duration,
    /// The server's version (shown by the admin API).
    pub version: String,
    /// Prefix of every Redis key and channel of this cluster.
    pub namespace: String,
    /// How long a command waits for an owner on another node.
    pub request_timeout: Duration,
}

/// One node as the admin API shows it.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct NodeInfo {
    pub id: String,
    /// The address the node's HTTP server listens on.
    pub address: String,
    pub version: String,
    /// Start time (ms since the epoch).
    pub started_at: i64,
    pub sessions: u64,
    pub users: u64,
    /// Messages persisted per second over the last heartbeat interval.
    pub messages_per_sec: f64,
    /// False once the node missed its heartbeats for the TTL.
    pub alive: bool,
    pub draining: bool,
}

/// One online device of a user.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct SessionInfo {
    pub device_id: i64,
    /// The node the device's session is on.
    pub node: String,
    /// When it connected (ms since the epoch).
    pub since: i64,
}

/// The Redis link's state, as `/readyz` and the metrics show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RedisState {
    /// No Redis configured: a single node.
    Off,
    /// Connected and subscribed.
    Up,
    /// Configured but unreachable: the node is degraded.
    Down,
}

/// Static facts and live flags of this node, shared by every handle.
#[derive(Debug)]
pub struct NodeSelf {
    pub id: String,
    /// Redis names of this cluster.
    pub keys: Keys,
    pub version: String,
    pub started_at: i64,
    address: Mutex<String>,
    draining: AtomicBool,
    /// Messages persisted per second (updated every heartbeat).
    rate_milli: AtomicU64,
}

impl NodeSelf {
    /// A node with `id`, started now (`now_ms`).
    pub fn new(id: String, version: String, namespace: &str, now_ms: i64) -> Self {
        NodeSelf {
            id,
            keys: Keys::new(namespace),
            version,
            started_at: now_ms,
            address: Mutex::new(String::new()),
            draining: AtomicBool::new(false),
            rate_milli: AtomicU64::new(0),
        }
    }

    /// The HTTP address (set once the server is bound).
    pub fn address(&self) -> String {
        self.address.lock().map(|a| a.clone()).unwrap_or_default()
    }

    /// Records the bound HTTP address.
    pub fn set_address(&self, addr: String) {
        if let Ok(mut a) = self.address.lock() {
            *a = addr;
        }
    }

    /// True once the node was told to drain (or is shutting down).
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Marks the node draining; returns true the first time.
    pub fn start_draining(&self) -> bool {
        !self.draining.swap(true, Ordering::Relaxed)
    }

    /// Messages persisted per second over the last interval.
    pub fn rate(&self) -> f64 {
        self.rate_milli.load(Ordering::Relaxed) as f64 / 1000.0
    }

    /// Records the current message rate.
    pub fn set_rate(&self, per_sec: f64) {
        self.rate_milli.store((per_sec * 1000.0) as u64, Ordering::Relaxed);
    }
}

/// Reads the Redis state from the metrics gauge.
pub fn redis_state(m: &Metrics) -> RedisState {
    match m.redis_state.load(Ordering::Relaxed) {
        REDIS_OFF => RedisState::Off,
        REDIS_UP => RedisState::Up,
        REDIS_DOWN => RedisState::Down,
        _ => RedisState::Down,
    }
}

/// Sets the Redis state gauge.
pub fn set_redis_state(m: &Metrics, s: RedisState) {
    let v = match s {
        RedisState::Off => REDIS_OFF,
        RedisState::Up => REDIS_UP,
        RedisState::Down => REDIS_DOWN,
    };
    m.redis_state.store(v, Ordering::Relaxed);
}

/// Redis key and channel names (one place, so every node agrees). Every name starts with the
/// cluster's namespace (`cluster.namespace`, `im` by default), so several clusters (or test runs)
/// can share one Redis: keys are per database, but pub/sub channels are server-wide.
#[derive(Debug, Clone)]
pub struct Keys {
    ns: String,
}

impl Keys {
    /// Names under namespace `ns`.
    pub fn new(ns: &str) -> Self {
        Keys { ns: ns.to_owned() }
    }
    /// Channel of a user's sessions (subscribed by the nodes holding one).
    pub fn user_channel(&self, u: schema::UserId) -> String {
        format!("{}:u:{}", self.ns, u.0)
    }
    /// Control channel of one node.
    pub fn node_channel(&self, node: &str) -> String {
        format!("{}:n:{node}", self.ns)
    }
    /// Cluster-wide channel (every node subscribes).
    pub fn all(&self) -> String {
        format!("{}:all", self.ns)
    }
    /// Hash of a user's online devices: field = device id, value = `node|since`.
    pub fn presence(&self, u: schema::UserId) -> String {
        format!("{}:p:{}", self.ns, u.0)
    }
    /// Set of users with a session on a node (to clean up after a dead node).
    pub fn node_users(&self, node: &str) -> String {
        format!("{}:nu:{node}", self.ns)
    }
    /// Liveness key of a node (expires after the node TTL).
    pub fn node_alive(&self, node: &str) -> String {
        format!("{}:alive:{node}", self.ns)
    }
    /// Hash of a node's published facts (address, version, sessions, ...).
    pub fn node_info(&self, node: &str) -> String {
        format!("{}:node:{node}", self.ns)
    }
    /// Set of known node ids.
    pub fn nodes(&self) -> String {
        format!("{}:nodes", self.ns)
    }
    /// A conversation's owner record: `node|epoch` ([`directory`]).
    pub fn owner(&self, conv: &str) -> String {
        format!("{}:own:{conv}", self.ns)
    }
    /// Claim of one push delivery: target id and notification id (SET NX with a TTL), so that
    /// no two nodes (nor one node twice) send the same notification to the same target.
    pub fn push_claim(&self, target: i64, notification: &str) -> String {
        format!("{}:push:{target}:{notification}", self.ns)
    }
    /// Lock held by the node that reaps a dead node.
    pub fn reap_lock(&self, node: &str) -> String {
        format!("{}:reap:{node}", self.ns)
    }
}
