//! [`Metrics`]: the counters, gauges and histograms of one node, rendered in the Prometheus text
//! format by `GET /metrics`. Plain atomics: recording never blocks and never allocates.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// A fixed-bucket histogram (cumulative on render, like Prometheus expects).
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    /// Sum of observations, in millionths of the unit (to keep an integer atomic).
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    /// A histogram with upper bounds `bounds` (ascending) plus `+Inf`.
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// Records one observation.
    pub fn observe(&self, v: f64) {
        let i = self.bounds.iter().position(|b| v <= *b).unwrap_or(self.bounds.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add((v.max(0.0) * 1e6) as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut acc = 0;
        for (i, c) in self.counts.iter().enumerate() {
            acc += c.load(Ordering::Relaxed);
            match self.bounds.get(i) {
                Some(b) => {
                    let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {acc}");
                }
                None => {
                    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {acc}");
                }
            }
        }
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {}", self.count());
    }
}

/// Latency buckets in seconds (100 µs .. 10 s).
pub const LATENCY_BUCKETS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];
/// Batch-size buckets (messages per store batch).
pub const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

/// Redis link state as a gauge value.
pub const REDIS_OFF: u64 = 0;
/// Connected.
pub const REDIS_UP: u64 = 1;
/// Configured but unreachable (degraded).
pub const REDIS_DOWN: u64 = 2;

/// Everything a node measures about itself.
#[derive(Debug)]
pub struct Metrics {
    /// WebSocket frames received from clients.
    pub frames_in: AtomicU64,
    /// WebSocket frames sent to clients.
    pub frames_out: AtomicU64,
    /// Messages made durable by this node's writer.
    pub messages_persisted: AtomicU64,
    /// Store batches that failed.
    pub store_failures: AtomicU64,
    /// Messages per store batch.
    pub store_batch_size: Histogram,
    /// Seconds per store batch.
    pub store_latency: Histogram,
    /// Seconds from a message's acceptance (its server timestamp, ms) to its hand-off to this
    /// node's sessions: once per message and node (the sequencing node, and each node a group
    /// message reaches through Redis; 1:1 messages crossing nodes are measured where sequenced).
    pub delivery_latency: Histogram,
    /// Envelopes published to Redis.
    pub bus_published: AtomicU64,
    /// Publishes that failed (Redis down).
    pub bus_publish_errors: AtomicU64,
    /// Envelopes received from other nodes.
    pub bus_received: AtomicU64,
    /// Redis link: [`REDIS_OFF`], [`REDIS_UP`] or [`REDIS_DOWN`].
    pub redis_state: AtomicU64,
    /// Times the bus reconnected to Redis.
    pub redis_reconnects: AtomicU64,
    /// Messages not written because their conversation had a newer owner (fenced).
    pub fenced_writes: AtomicU64,
    /// Conversations (1:1 and groups) this node started owning.
    pub activations: AtomicU64,
    /// Of those, conversations taken over from a node that died or lost its lease.
    pub takeovers: AtomicU64,
    /// Owners stopped on this node (idle, handed over while draining, lease lost, fenced).
    pub passivations: AtomicU64,
    /// Commands this node sent to another node's owner.
    pub routed_remote: AtomicU64,
    /// Of those, commands that got no answer (timeout, the node died) or were bounced too often.
    pub route_failures: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            frames_in: AtomicU64::new(0),
            frames_out: AtomicU64::new(0),
            messages_persisted: AtomicU64::new(0),
            store_failures: AtomicU64::new(0),
            store_batch_size: Histogram::new(BATCH_BUCKETS),
            store_latency: Histogram::new(LATENCY_BUCKETS),
            delivery_latency: Histogram::new(LATENCY_BUCKETS),
            bus_published: AtomicU64::new(0),
            bus_publish_errors: AtomicU64::new(0),
            bus_received: AtomicU64::new(0),
            redis_state: AtomicU64::new(REDIS_OFF),
            redis_reconnects: AtomicU64::new(0),
            fenced_writes: AtomicU64::new(0),
            activations: AtomicU64::new(0),
            takeovers: AtomicU64::new(0),
            passivations: AtomicU64::new(0),
            routed_remote: AtomicU64::new(0),
            route_failures: AtomicU64::new(0),
        }
    }
}

/// Adds one to a counter.
pub fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Gauges read at render time (not kept in [`Metrics`]).
#[derive(Debug, Default, Clone, Copy)]
pub struct Gauges {
    /// Open WebSocket sessions on this node.
    pub sessions: u64,
    /// Users with at least one session on this node.
    pub users: u64,
    /// Sessions dropped as slow consumers since start.
    pub dropped_slow: u64,
    /// Conversations (1:1 and groups) owned by this node: their running actors.
    pub conversations: u64,
    /// 1 while the node drains.
    pub draining: bool,
}

impl Metrics {
    /// The Prometheus text exposition of the node (`node` labels nothing: one scrape = one node).
    pub fn render(&self, g: Gauges) -> String {
        let mut out = String::with_capacity(4096);
        let mut line = |name: &str, kind: &str, help: &str, v: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
        };
        let c = |a: &AtomicU64| a.load(Ordering::Relaxed);
        line("im_sessions", "gauge", "Open WebSocket sessions on this node.", g.sessions);
        line("im_users_online", "gauge", "Users with a session on this node.", g.users);
        line(
            "im_conversation_actors",
            "gauge",
            "Conversations (1:1 and groups) this node owns: their running actors.",
            g.conversations,
        );
        line("im_draining", "gauge", "1 while the node drains.", u64::from(g.draining));
        line("im_sessions_dropped_slow_total", "counter", "Sessions dropped as slow consumers.", g.dropped_slow);
        line("im_frames_in_total", "counter", "WebSocket frames received.", c(&self.frames_in));
        line("im_frames_out_total", "counter", "WebSocket frames sent.", c(&self.frames_out));
        line("im_messages_persisted_total", "counter", "Messages made durable.", c(&self.messages_persisted));
        line("im_store_failures_total", "counter", "Store batches that failed.", c(&self.store_failures));
        line("im_bus_published_total", "counter", "Envelopes published to Redis.", c(&self.bus_published));
        line("im_bus_publish_errors_total", "counter", "Publishes to Redis that failed.", c(&self.bus_publish_errors));
        line("im_bus_received_total", "counter", "Envelopes received from other nodes.", c(&self.bus_received));
        line("im_redis_state", "gauge", "Redis link: 0 off (single node), 1 up, 2 down.", c(&self.redis_state));
        line("im_redis_reconnects_total", "counter", "Reconnections to Redis.", c(&self.redis_reconnects));
        line("im_owner_activations_total", "counter", "Conversations this node started owning.", c(&self.activations));
        line(
            "im_owner_takeovers_total",
            "counter",
            "Conversations taken over from a node that died or lost its lease.",
            c(&self.takeovers),
        );
        line("im_owner_passivations_total", "counter", "Owners stopped on this node.", c(&self.passivations));
        line(
            "im_fenced_writes_total",
            "counter",
            "Messages refused because a newer owner holds their conversation.",
            c(&self.fenced_writes),
        );
        line("im_routed_remote_total", "counter", "Commands sent to an owner on another node.", c(&self.routed_remote));
        line(
            "im_route_failures_total",
            "counter",
            "Commands to another node that got no answer.",
            c(&self.route_failures),
        );
        self.store_batch_size.render(&mut out, "im_store_batch_size", "Messages per store batch.");
        self.store_latency.render(&mut out, "im_store_batch_seconds", "Time to persist one store batch.");
        self.delivery_latency.render(
            &mut out,
            "im_delivery_latency_seconds",
            "From a message's acceptance to its hand-off to a recipient session on this node.",
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::new(&[1.0, 10.0]);
        h.observe(0.5);
        h.observe(5.0);
        h.observe(50.0);
        let mut s = String::new();
        h.render(&mut s, "x", "help");
        assert!(s.contains("x_bucket{le=\"1\"} 1\n"), "{s}");
        assert!(s.contains("x_bucket{le=\"10\"} 2\n"), "{s}");
        assert!(s.contains("x_bucket{le=\"+Inf\"} 3\n"), "{s}");
        assert!(s.contains("x_count 3\n"), "{s}");
        assert!(s.contains("x_sum 55.5\n"), "{s}");
    }

    #[test]
    fn render_has_every_family_once() {
        let m = Metrics::default();
        inc(&m.frames_in);
        let s = m.render(Gauges { sessions: 3, ..Gauges::default() });
        assert!(s.contains("\nim_sessions 3\n") || s.contains("im_sessions 3\n"));
        assert!(s.contains("im_frames_in_total 1\n"));
        assert_eq!(s.matches("# TYPE im_delivery_latency_seconds histogram").count(), 1);
    }
}
