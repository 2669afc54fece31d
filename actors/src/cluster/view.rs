//! What this node believes about the cluster: which nodes are alive (and which of them drain),
//! and whether its own lease still holds.
//!
//! Both are written by the heartbeat (`cluster::presence`) and read everywhere else without a
//! round trip: placement, routing and the owners' self-fencing.
//!
//! - [`NodeView`]: the live nodes as of the last heartbeat (this node always counts as alive).
//! - [`Lease`]: this node's lease on everything it owns. Every conversation owner holds its
//!   ownership under the node's lease: the node's liveness key in Redis, refreshed every
//!   heartbeat with a TTL. Another node takes a conversation over only once that key is gone,
//!   so a node whose last successful refresh is older than the TTL (less a margin for clock
//!   drift) must assume another node may own its conversations by now, and stop acting for them.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

/// How much of the TTL a lease is trusted for: a node stops acting for its conversations at 80 %
/// of the TTL after its last successful refresh began, so that a clock running up to 20 % slow
/// here, or a refresh that took long to reach Redis, still stops it before another node can see
/// its liveness key expire.
pub const LEASE_TRUST: f64 = 0.8;

/// The nodes this node believes alive.
#[derive(Debug)]
pub struct NodeView {
    me: String,
    nodes: RwLock<Nodes>,
}

#[derive(Debug, Default, Clone)]
struct Nodes {
    alive: HashSet<String>,
    draining: HashSet<String>,
}

impl NodeView {
    /// A view with only this node in it.
    pub fn new(me: &str) -> Self {
        let mut n = Nodes::default();
        n.alive.insert(me.to_owned());
        NodeView { me: me.to_owned(), nodes: RwLock::new(n) }
    }

    /// Replaces the view (heartbeat): `nodes` maps each live node to whether it drains.
    pub fn set(&self, nodes: HashMap<String, bool>) {
        let mut n = Nodes::default();
        for (id, draining) in nodes {
            if draining {
                n.draining.insert(id.clone());
            }
            n.alive.insert(id);
        }
        n.alive.insert(self.me.clone());
        if let Ok(mut w) = self.nodes.write() {
            let keep_me_draining = w.draining.contains(&self.me);
            *w = n;
            if keep_me_draining {
                w.draining.insert(self.me.clone());
            }
        }
    }

    /// True for this node and for nodes alive at the last heartbeat.
    pub fn alive(&self, node: &str) -> bool {
        node == self.me || self.nodes.read().map(|n| n.alive.contains(node)).unwrap_or(false)
    }

    /// Marks `node` draining now (it said so, or this node started draining).
    pub fn mark_draining(&self, node: &str) {
        if let Ok(mut w) = self.nodes.write() {
            w.draining.insert(node.to_owned());
        }
    }

    /// True when `node` drains (as far as this node knows).
    pub fn draining(&self, node: &str) -> bool {
        self.nodes.read().map(|n| n.draining.contains(node)).unwrap_or(false)
    }

    /// Live nodes that take new conversations (alive and not draining), sorted.
    pub fn candidates(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .nodes
            .read()
            .map(|n| n.alive.iter().filter(|id| !n.draining.contains(*id)).cloned().collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Every live node, this one included, sorted.
    pub fn live(&self) -> Vec<String> {
        let mut v: Vec<String> = self.nodes.read().map(|n| n.alive.iter().cloned().collect()).unwrap_or_default();
        v.sort();
        v
    }
}

/// This node's lease (see the module documentation).
#[derive(Debug)]
pub struct Lease {
    ttl: Duration,
    /// Until when the lease is trusted; `None` before the first successful refresh.
    until: Mutex<Option<Instant>>,
    created: Instant,
}

impl Lease {
    /// A lease of `ttl` (the node TTL), not yet held.
    pub fn new(ttl: Duration) -> Self {
        Lease { ttl, until: Mutex::new(None), created: Instant::now() }
    }

    /// True once the lease is lost: it was held and is no longer trusted, or a TTL went by
    /// since start without it ever being held (Redis was unreachable from the start). A node
    /// that has just started and not heard from Redis yet is neither valid nor lapsed.
    pub fn lapsed_at(&self, now: Instant) -> bool {
        match self.until.lock().map(|u| *u) {
            Ok(Some(t)) => now >= t,
            Ok(None) => now.saturating_duration_since(self.created) >= self.ttl,
            Err(_) => true,
        }
    }

    /// [`Lease::lapsed_at`] now.
    pub fn lapsed(&self) -> bool {
        self.lapsed_at(Instant::now())
    }

    /// A refresh that began at `sent` succeeded: trusted until `sent` + [`LEASE_TRUST`] × TTL.
    pub fn renewed(&self, sent: Instant) {
        let until = sent + self.ttl.mul_f64(LEASE_TRUST);
        if let Ok(mut u) = self.until.lock() {
            if u.is_none_or(|t| t < until) {
                *u = Some(until);
            }
        }
    }

    /// True while the lease is trusted (at `now`).
    pub fn valid_at(&self, now: Instant) -> bool {
        self.until.lock().map(|u| u.is_some_and(|t| now < t)).unwrap_or(false)
    }

    /// True while the lease is trusted.
    pub fn valid(&self) -> bool {
        self.valid_at(Instant::now())
    }

    /// The node TTL.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_trusted_for_part_of_the_ttl_after_the_refresh_began() {
        let lease = Lease::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert!(!lease.valid_at(t0), "not held before the first refresh");
        assert!(!lease.lapsed_at(t0), "nor lost: Redis has not answered yet");
        assert!(lease.lapsed_at(t0 + Duration::from_secs(11)), "never held within a TTL: lost");
        lease.renewed(t0);
        assert!(lease.valid_at(t0 + Duration::from_millis(7_999)));
        assert!(!lease.valid_at(t0 + Duration::from_millis(8_000)), "stops acting before the TTL can run out");
        assert!(lease.lapsed_at(t0 + Duration::from_millis(8_000)));
        // An older refresh that answers late does not shorten a newer one.
        lease.renewed(t0 + Duration::from_secs(5));
        lease.renewed(t0);
        assert!(lease.valid_at(t0 + Duration::from_millis(12_999)));
    }

    #[test]
    fn the_view_keeps_this_node_alive_and_its_own_draining_flag() {
        let v = NodeView::new("me");
        assert!(v.alive("me"));
        v.mark_draining("me");
        v.set(HashMap::from([("a".to_owned(), false), ("b".to_owned(), true)]));
        assert!(v.alive("me") && v.alive("a") && v.alive("b") && !v.alive("c"));
        assert_eq!(v.candidates(), vec!["a".to_owned()], "draining nodes take no new conversations");
        assert_eq!(v.live(), vec!["a".to_owned(), "b".to_owned(), "me".to_owned()]);
    }
}
