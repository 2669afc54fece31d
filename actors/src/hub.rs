//! [`Hub`]: the addresses of a node's actors and its shared services, cloned into every session
//! and handler. [`Hub::start`] starts the actors of a node (and joins the cluster when Redis is
//! configured).

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use schema::{Clock, DeviceId, UserId};

use crate::cluster::bus::{BusOut, ClusterBus};
use crate::cluster::presence::ClusterPresence;
use crate::cluster::seq::SeqSource;
use crate::cluster::{redis_state, set_redis_state, ClusterSettings, NodeInfo, NodeSelf, RedisState, SessionInfo};
use crate::conversation::{ConversationRegistry, CountConversations};
use crate::db::Db;
use crate::metrics::{Gauges, Metrics};
use crate::presence::{Presence, SetRegistry};
use crate::registry::{
    BroadcastLocal, Frame, GetStats, KickAll, KickReason, KickUser, ListOnline, ListSessions, SessionRegistry, SetBus,
};
use crate::store::MessageStore;
use crate::writer::MessageWriter;

/// Chat rules and timings.
#[derive(Debug, Clone)]
pub struct ChatSettings {
    /// How long after sending a message its sender may recall it.
    pub recall_window: Duration,
    /// A conversation actor with no traffic for this long stops.
    pub conversation_idle: Duration,
    /// Name of this node (in `hello` frames).
    pub node_id: String,
    /// Most members a group may have.
    pub max_group_members: usize,
    /// Writer lanes (batches in flight at once); 0: half the pool. SQLite always gets one.
    pub writer_lanes: usize,
}

/// The node's link to the rest of the cluster.
#[derive(Clone)]
pub struct ClusterLink {
    pub bus: Addr<ClusterBus>,
    pub presence: ClusterPresence,
}

/// Everything a session or handler needs to reach the node's actors.
#[derive(Clone)]
pub struct Hub {
    pub db: Db,
    pub store: Arc<dyn MessageStore>,
    pub clock: Clock,
    pub settings: Arc<ChatSettings>,
    pub sessions: Addr<SessionRegistry>,
    pub conversations: Addr<ConversationRegistry>,
    pub presence: Addr<Presence>,
    pub writer: MessageWriter,
    pub metrics: Arc<Metrics>,
    /// This node.
    pub me: Arc<NodeSelf>,
    /// `None` on a single node.
    pub cluster: Option<ClusterLink>,
}

impl Hub {
    /// Starts the node's actors on the current arbiter. With `cluster.redis_url` set, the node
    /// also starts its bus, presence and heartbeat; Redis being down does not stop it (it starts
    /// degraded and connects when Redis answers). Fails only on an invalid Redis URL.
    pub fn start(
        db: Db,
        store: Arc<dyn MessageStore>,
        clock: Clock,
        settings: ChatSettings,
        cluster: ClusterSettings,
        metrics: Arc<Metrics>,
    ) -> Result<Self, String> {
        let me = Arc::new(NodeSelf::new(
            cluster.node_id.clone(),
            cluster.version.clone(),
            &cluster.namespace,
            clock.now_ms(),
        ));
        let presence = Presence::new(db.clone()).start();
        let sessions = SessionRegistry::new(presence.clone()).start();
        presence.do_send(SetRegistry(sessions.clone()));
        // SQLite takes one writer at a time: one lane. Elsewhere lanes write in parallel, by
        // default on up to half the pool's connections (the rest stay free for reads).
        let sqlite_only = store.name() == "sql" && db.database().url().is_sqlite();
        let lanes = match settings.writer_lanes {
            _ if sqlite_only => 1,
            0 => (db.database().pool_size() as usize / 2).max(1),
            n => n,
        };
        let writer = MessageWriter::new(store.clone(), db.clone(), metrics.clone(), lanes);
        let settings = Arc::new(settings);
        let redis = if cluster.redis_url.is_empty() {
            None
        } else {
            let client = deadpool_redis::redis::Client::open(cluster.redis_url.as_str()).map_err(|e| e.to_string())?;
            let mut cfg = deadpool_redis::Config::from_url(cluster.redis_url.clone());
            let mut pool_cfg = deadpool_redis::PoolConfig::new(16);
            pool_cfg.timeouts.wait = Some(Duration::from_secs(2));
            pool_cfg.timeouts.create = Some(Duration::from_secs(2));
            pool_cfg.timeouts.recycle = Some(Duration::from_secs(2));
            cfg.pool = Some(pool_cfg);
            let pool = cfg.create_pool(Some(deadpool_redis::Runtime::Tokio1)).map_err(|e| e.to_string())?;
            set_redis_state(&metrics, RedisState::Down);
            Some((client, pool))
        };
        let mut deps = ConversationRegistry::deps(
            db.clone(),
            store.clone(),
            clock.clone(),
            settings.clone(),
            sessions.clone(),
            writer.clone(),
        );
        deps.metrics = metrics.clone();
        deps.seqs = redis.as_ref().map(|(_, pool)| SeqSource::new(pool.clone(), metrics.clone(), me.keys.clone()));
        let bus_slot = deps.bus.clone();
        let conversations = ConversationRegistry::new(deps).start();
        let cluster = redis.map(|(client, pool)| {
            let cp = ClusterPresence::new(
                pool.clone(),
                me.clone(),
                presence.clone(),
                metrics.clone(),
                cluster.heartbeat,
                cluster.node_ttl,
            );
            let (me2, db2, m2, cp2, s2, c2) =
                (me.clone(), db.clone(), metrics.clone(), cp.clone(), sessions.clone(), conversations.clone());
            let bus = ClusterBus::create(move |ctx| {
                let tracker = cp2.start(ctx.address());
                ClusterBus::new(me2, db2, m2, client, pool, tracker, s2, c2)
            });
            let _ = bus_slot.set(bus.clone());
            sessions.do_send(SetBus(bus.clone()));
            cp.start_heartbeat(sessions.clone());
            ClusterLink { bus, presence: cp }
        });
        Ok(Hub { db, store, clock, settings, sessions, conversations, presence, writer, metrics, me, cluster })
    }

    /// Closes sessions of `user` (one device or all) on every node; returns how many were on
    /// this node.
    pub async fn kick(&self, user: UserId, device: Option<DeviceId>, reason: KickReason) -> usize {
        self.sessions.send(KickUser { user, device, reason, cluster: true }).await.unwrap_or(0)
    }

    /// `users` became members of group conversation `conv` outside its actor (group creation):
    /// the nodes holding their sessions subscribe to its channel. Nothing to do on one node.
    pub fn joined_group(&self, users: Vec<UserId>, conv: schema::ConvId) {
        if let Some(c) = &self.cluster {
            for user in users {
                c.bus.do_send(BusOut::GroupInterest { user, conv: conv.clone(), add: true });
            }
        }
    }

    /// Which of `users` are online anywhere in the cluster.
    pub async fn online(&self, users: Vec<UserId>) -> Vec<UserId> {
        if let Some(c) = &self.cluster {
            if let Some(online) = c.presence.online(&users).await {
                return online;
            }
        }
        self.sessions.send(ListOnline { users }).await.unwrap_or_default()
    }

    /// The online devices of `user` and the node each is on.
    pub async fn user_sessions(&self, user: UserId) -> Vec<SessionInfo> {
        if let Some(c) = &self.cluster {
            if let Some(s) = c.presence.sessions(user).await {
                return s;
            }
        }
        let local = self.sessions.send(ListSessions { user }).await.unwrap_or_default();
        local.into_iter().map(|(d, since)| SessionInfo { device_id: d.0, node: self.me.id.clone(), since }).collect()
    }

    /// This node as the admin API shows it.
    pub async fn local_node(&self) -> NodeInfo {
        let stats = self.sessions.send(GetStats).await.unwrap_or_default();
        NodeInfo {
            id: self.me.id.clone(),
            address: self.me.address(),
            version: self.me.version.clone(),
            started_at: self.me.started_at,
            sessions: stats.sessions as u64,
            users: stats.users as u64,
            messages_per_sec: self.me.rate(),
            alive: true,
            draining: self.me.draining(),
        }
    }

    /// Every node of the cluster (this one only on a single node, or when Redis is down).
    pub async fn nodes(&self) -> Vec<NodeInfo> {
        let local = self.local_node().await;
        let mut nodes = match &self.cluster {
            Some(c) => c.presence.nodes().await.unwrap_or_default(),
            None => Vec::new(),
        };
        // This node's own figures are live; the published ones are up to a heartbeat old.
        nodes.retain(|n| n.id != local.id);
        nodes.push(local);
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        nodes
    }

    /// Delivers `frame` to everyone online (`users: None`) or to `users`, on every node.
    /// Returns how many sessions of this node got it.
    pub async fn broadcast(&self, frame: Frame, users: Option<Vec<UserId>>) -> usize {
        if let Some(c) = &self.cluster {
            c.bus.do_send(BusOut::Broadcast { users: users.clone(), frame: frame.clone() });
        }
        self.sessions.send(BroadcastLocal { users, frame }).await.unwrap_or(0)
    }

    /// Drains node `node`: it reports not ready and tells its clients to reconnect elsewhere.
    /// False when no such node is known.
    pub async fn drain(&self, node: &str) -> bool {
        if node == self.me.id {
            self.drain_self().await;
            return true;
        }
        let Some(c) = &self.cluster else { return false };
        let known = c.presence.nodes().await.unwrap_or_default().iter().any(|n| n.id == node && n.alive);
        if known {
            c.bus.do_send(BusOut::Drain { node: node.to_owned() });
        }
        known
    }

    /// Marks this node draining and closes its sessions with "restarting" (clients reconnect
    /// through the load balancer, which no longer routes here). Returns how many were closed.
    pub async fn drain_self(&self) -> usize {
        if self.me.start_draining() {
            log::warn!("node {} draining", self.me.id);
        }
        self.sessions.send(KickAll { reason: KickReason::Restarting }).await.unwrap_or(0)
    }

    /// Leaves the cluster cleanly (shutdown): removes this node's presence entries and keys.
    pub async fn leave_cluster(&self) {
        if let Some(c) = &self.cluster {
            if let Err(e) = c.presence.leave(&self.sessions).await {
                log::warn!("leaving the cluster: presence not cleared: {e}");
            }
        }
    }

    /// The Redis link's state.
    pub fn redis_state(&self) -> RedisState {
        redis_state(&self.metrics)
    }

    /// Gauges for `/metrics`.
    pub async fn gauges(&self) -> Gauges {
        let stats = self.sessions.send(GetStats).await.unwrap_or_default();
        let conversations = self.conversations.send(CountConversations).await.unwrap_or(0);
        Gauges {
            sessions: stats.sessions as u64,
            users: stats.users as u64,
            dropped_slow: stats.dropped_slow,
            conversations: conversations as u64,
            draining: self.me.draining(),
        }
    }
}
