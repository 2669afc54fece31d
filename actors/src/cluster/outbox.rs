//! [`Outbox`]: how a node's actors publish envelopes for other nodes.
//!
//! Not an actor: a queue in front of one publisher task, which sends whatever has accumulated
//! (up to [`MAX_PIPELINE`] envelopes) as one pipeline of `PUBLISH` commands on a pooled
//! connection, so a burst costs one round trip, not one per envelope. One queue and one task
//! keep a node's envelopes in the order its actors published them, and Redis delivers one
//! connection's publishes to each subscriber in that order: a conversation's owner publishes its
//! frames in seq order, and every node receives them in seq order.
//!
//! On a single node the outbox is empty ([`Outbox::none`]) and every publish is a no-op.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use deadpool_redis::redis;
use schema::{DeviceId, UserId};
use tokio::sync::mpsc;

use super::envelope::{encode, Envelope};
use super::NodeSelf;
use crate::delivery::KickReason;
use crate::metrics::Metrics;

/// Most envelopes sent in one pipeline.
pub const MAX_PIPELINE: usize = 512;

struct Inner {
    tx: mpsc::UnboundedSender<(String, Vec<u8>)>,
    me: Arc<NodeSelf>,
}

/// The publishing side of the cluster bus; cheap to clone.
#[derive(Clone, Default)]
pub struct Outbox {
    inner: Option<Arc<Inner>>,
}

impl Outbox {
    /// The outbox of a single node: publishes nothing.
    pub fn none() -> Self {
        Outbox { inner: None }
    }

    /// Starts the publisher task on the current arbiter.
    pub fn start(pool: deadpool_redis::Pool, me: Arc<NodeSelf>, metrics: Arc<Metrics>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        actix::spawn(publisher(pool, rx, metrics));
        Outbox { inner: Some(Arc::new(Inner { tx, me })) }
    }

    /// True in a cluster.
    pub fn is_cluster(&self) -> bool {
        self.inner.is_some()
    }

    fn publish(&self, channel: impl FnOnce(&NodeSelf) -> String, e: &Envelope, frames: &[&str]) {
        if let Some(i) = &self.inner {
            let raw = encode(&i.me.id, e, frames);
            let _ = i.tx.send((channel(&i.me), raw));
        }
    }

    /// A frame for the sessions of `user` on other nodes (but device `except`).
    pub fn to_user(&self, user: UserId, frame: &str, except: Option<DeviceId>) {
        self.publish(|me| me.keys.user_channel(user), &Envelope::Frame { user, except }, &[frame]);
    }

    /// Closes sessions of `user` on other nodes.
    pub fn kick(&self, user: UserId, device: Option<DeviceId>, reason: KickReason) {
        self.publish(|me| me.keys.user_channel(user), &Envelope::Kick { user, device, reason }, &[]);
    }

    /// An envelope for node `node`.
    pub fn to_node(&self, node: &str, e: &Envelope, frames: &[&str]) {
        self.publish(|me| me.keys.node_channel(node), e, frames);
    }

    /// A frame for every session (`users: None`) or those of `users`, on every other node.
    pub fn broadcast(&self, users: Option<Vec<UserId>>, frame: &str) {
        self.publish(|me| me.keys.all(), &Envelope::Broadcast { users }, &[frame]);
    }
}

/// Sends queued envelopes, a pipeline per burst. While Redis is unreachable the envelopes of a
/// failed pipeline are dropped (counted): everything they carried is durable, or a hint.
async fn publisher(
    pool: deadpool_redis::Pool,
    mut rx: mpsc::UnboundedReceiver<(String, Vec<u8>)>,
    metrics: Arc<Metrics>,
) {
    let mut batch: Vec<(String, Vec<u8>)> = Vec::with_capacity(MAX_PIPELINE);
    let mut failing = false;
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_PIPELINE {
            match rx.try_recv() {
                Ok(x) => batch.push(x),
                Err(_) => break,
            }
        }
        let n = batch.len() as u64;
        let mut pipe = redis::pipe();
        for (channel, payload) in batch.drain(..) {
            pipe.cmd("PUBLISH").arg(channel).arg(payload).ignore();
        }
        let res = match pool.get().await {
            Ok(mut conn) => pipe.query_async::<()>(&mut conn).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match res {
            Ok(()) => {
                metrics.bus_published.fetch_add(n, Ordering::Relaxed);
                if failing {
                    log::info!("bus: publishing to Redis again");
                    failing = false;
                }
            }
            Err(e) => {
                metrics.bus_publish_errors.fetch_add(n, Ordering::Relaxed);
                if !failing {
                    log::warn!("bus: publish to Redis failed ({e}); {n} envelope(s) not sent");
                    failing = true;
                }
            }
        }
    }
}
