//! The cluster: what one node knows about the others, and the Redis link between them.
//!
//! Without `cluster.redis_url` a node is alone: [`Cluster`] answers from the node's own registry
//! and nothing leaves the process. With it, the node joins the cluster through Redis:
//!
//! - [`bus`]: the `ClusterBus` — pub/sub envelopes between nodes (per user, per group, per node,
//!   and cluster-wide), with interest-based subscriptions and pipelined publishes;
//! - [`presence`]: who is online where (a hash per user, node liveness keys with a TTL), and the
//!   reaping of dead nodes' sessions;
//! - [`seq`]: conversation sequence numbers from Redis (`INCR` with a floor seeded from the store).
//!
//! Redis being unreachable degrades a node, it never stops it: local delivery and persistence go
//! on, the bus reconnects with backoff and re-subscribes, and clients catch up with `sync`.

pub mod bus;
pub mod presence;
pub mod seq;

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
}

/// One node as the admin API shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
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
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SessionInfo {
    pub device_id: i64,
    /// The node the device's session is on.
    pub node: String,
    /// When it connected (ms since the epoch).
    pub since: i64,
}

/// The Redis link's state, as `/readyz` and the metrics show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
    pub version: String,
    pub started_at: i64,
    address: Mutex<String>,
    draining: AtomicBool,
    /// Messages persisted per second (updated every heartbeat).
    rate_milli: AtomicU64,
}

impl NodeSelf {
    /// A node with `id`, started now (`now_ms`).
    pub fn new(id: String, version: String, now_ms: i64) -> Self {
        NodeSelf {
            id,
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

/// Redis key and channel names (one place, so every node agrees).
pub mod keys {
    use schema::UserId;

    /// Channel of a user's sessions (subscribed by the nodes holding one).
    pub fn user_channel(u: UserId) -> String {
        format!("im:u:{}", u.0)
    }
    /// Channel of a group (subscribed by the nodes with an online member).
    pub fn group_channel(conv: &str) -> String {
        format!("im:g:{conv}")
    }
    /// Control channel of one node.
    pub fn node_channel(node: &str) -> String {
        format!("im:n:{node}")
    }
    /// Cluster-wide channel (every node subscribes).
    pub const ALL: &str = "im:all";
    /// Hash of a user's online devices: field = device id, value = `node|since`.
    pub fn presence(u: UserId) -> String {
        format!("im:p:{}", u.0)
    }
    /// Set of users with a session on a node (to clean up after a dead node).
    pub fn node_users(node: &str) -> String {
        format!("im:nu:{node}")
    }
    /// Liveness key of a node (expires after the node TTL).
    pub fn node_alive(node: &str) -> String {
        format!("im:alive:{node}")
    }
    /// Hash of a node's published facts (address, version, sessions, ...).
    pub fn node_info(node: &str) -> String {
        format!("im:node:{node}")
    }
    /// Set of known node ids.
    pub const NODES: &str = "im:nodes";
    /// A conversation's last assigned seq.
    pub fn seq(conv: &str) -> String {
        format!("im:seq:{conv}")
    }
    /// Lock held by the node that reaps a dead node.
    pub fn reap_lock(node: &str) -> String {
        format!("im:reap:{node}")
    }
}
