//! [`Hub`]: the addresses of a node's actors and its shared services, cloned into every session
//! and handler. [`Hub::start`] starts the actors of a node (and joins the cluster when Redis is
//! configured).

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use schema::{Clock, ConvId, ConvKind, DeviceId, UserId};

use crate::cluster::directory::{Directory, Holder};
use crate::cluster::envelope::Envelope;
use crate::cluster::outbox::Outbox;
use crate::cluster::presence::{ClusterPresence, Links};
use crate::cluster::subscriber::{self, Inbound, Interest};
use crate::cluster::view::{Lease, NodeView};
use crate::cluster::{redis_state, set_redis_state, ClusterSettings, NodeInfo, NodeSelf, RedisState, SessionInfo};
use crate::command::{Command, Outcome};
use crate::conversation::ConversationActor;
use crate::db::Db;
use crate::delivery::{BroadcastLocal, Frame, GetStats, KickAll, KickReason, KickUser, ListOnline, ListSessions};
use crate::entity::{ClusterEnv, Entities, Owner, OwnerCtx, Spawner};
use crate::group::GroupActor;
use crate::metrics::{Gauges, Metrics};
pub use crate::owner::ChatSettings;
use crate::owner::{OwnerCluster, OwnerDeps};
use crate::presence::Presence;
use crate::registry::SessionRegistry;
use crate::store::MessageStore;
use crate::writer::MessageWriter;

/// The node's link to the rest of the cluster.
#[derive(Clone)]
pub struct ClusterLink {
    pub presence: ClusterPresence,
    pub directory: Directory,
    pub outbox: Outbox,
    pub view: Arc<NodeView>,
    pub lease: Arc<Lease>,
}

/// Everything a session or handler needs to reach the node's actors.
#[derive(Clone)]
pub struct Hub {
    pub db: Db,
    pub store: Arc<dyn MessageStore>,
    pub clock: Clock,
    pub settings: Arc<ChatSettings>,
    pub sessions: Addr<SessionRegistry>,
    /// The owners of conversations: every command for a conversation goes through here.
    pub entities: Entities,
    pub writer: MessageWriter,
    pub metrics: Arc<Metrics>,
    /// This node.
    pub me: Arc<NodeSelf>,
    /// `None` on a single node.
    pub cluster: Option<ClusterLink>,
    /// Where owners hand push notifications (the server installs its service).
    pub push: crate::push::PushHook,
}

/// Who owns a conversation, as the admin API shows it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct OwnerInfo {
    pub conv: ConvId,
    /// The owning node (`None`: no owner runs now; the next command starts one).
    pub node: Option<String>,
    /// Its fencing epoch (0 while it is taking one; absent on a single node).
    pub epoch: Option<i64>,
    /// Whether the node counts as alive (a dead node's record stays until taken over).
    pub alive: bool,
}

impl Hub {
    /// Starts the node's actors on the current arbiter: the session registry, presence, one
    /// entity-registry shard per chat arbiter (one per core) and the writer. With
    /// `cluster.redis_url` set, the node also starts its outbox, subscriber, presence task and
    /// heartbeat; Redis being down does not stop it (it starts degraded and connects when Redis
    /// answers). Fails only on an invalid Redis URL.
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
        let view = Arc::new(NodeView::new(&me.id));
        let lease = Arc::new(Lease::new(cluster.node_ttl));
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
        let outbox = match &redis {
            Some((_, pool)) => Outbox::start(pool.clone(), me.clone(), metrics.clone()),
            None => Outbox::none(),
        };
        // Presence and the registry know each other: the registry reports sessions to presence,
        // presence delivers through the registry. Presence's address exists before it runs.
        let presence_ctx: Context<Presence> = Context::new();
        let presence_addr = presence_ctx.address();
        let sessions = SessionRegistry::new(presence_addr.clone().recipient(), outbox.clone()).start();
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
        let link = redis.as_ref().map(|(_, pool)| {
            let directory = Directory::new(pool.clone(), me.clone(), view.clone(), db.clone(), clock.clone());
            let presence = ClusterPresence::new(
                pool.clone(),
                me.clone(),
                view.clone(),
                lease.clone(),
                presence_addr.clone().recipient(),
                metrics.clone(),
                cluster.heartbeat,
            );
            ClusterLink { presence, directory, outbox: outbox.clone(), view: view.clone(), lease: lease.clone() }
        });
        let push = crate::push::PushHook::default();
        let deps = OwnerDeps {
            push: push.clone(),
            db: db.clone(),
            store: store.clone(),
            clock: clock.clone(),
            settings: settings.clone(),
            sessions: SessionRegistry::sessions(&sessions),
            writer: writer.clone(),
            metrics: metrics.clone(),
            cluster: link.as_ref().map(|l| OwnerCluster {
                me: me.id.clone(),
                outbox: l.outbox.clone(),
                presence: l.presence.clone(),
                directory: l.directory.clone(),
            }),
        };
        let spawner: Spawner = Arc::new(move |octx: OwnerCtx, arbiter: &ArbiterHandle| {
            let deps = deps.clone();
            let owner = match octx.conv.kind()? {
                ConvKind::Direct(a, b) => {
                    let addr =
                        ConversationActor::start_in_arbiter(arbiter, move |_| ConversationActor::new(a, b, octx, deps));
                    Owner { exec: addr.clone().recipient(), stop: addr.recipient() }
                }
                ConvKind::Group(g) => {
                    let addr = GroupActor::start_in_arbiter(arbiter, move |_| GroupActor::new(g, octx, deps));
                    Owner { exec: addr.clone().recipient(), stop: addr.recipient() }
                }
            };
            Some(owner)
        });
        // The threads conversation owners run on: one per core, chosen by a hash of the id.
        let n = std::thread::available_parallelism().map(usize::from).unwrap_or(2).max(1);
        let arbiters: Vec<ArbiterHandle> = (0..n).map(|_| Arbiter::new().handle()).collect();
        let me2 = me.clone();
        let entities = Entities::start(
            &arbiters,
            me.id.clone(),
            move || me2.draining(),
            spawner,
            link.as_ref().map(|l| ClusterEnv {
                directory: l.directory.clone(),
                outbox: l.outbox.clone(),
                lease: l.lease.clone(),
                request_timeout: cluster.request_timeout,
            }),
            metrics.clone(),
        );
        let tracker = match (&redis, &link) {
            (Some((client, _)), Some(l)) => {
                let (interest, interest_rx) = Interest::new();
                let tracker = l.presence.start(Links {
                    outbox: outbox.clone(),
                    interest: interest.clone(),
                    entities: entities.clone(),
                    directory: l.directory.clone(),
                    db: db.clone(),
                });
                subscriber::start(
                    client.clone(),
                    interest,
                    interest_rx,
                    Inbound {
                        me: me.clone(),
                        view: view.clone(),
                        local: sessions.clone().recipient(),
                        fanout: sessions.clone().recipient(),
                        kick: sessions.clone().recipient(),
                        broadcast: sessions.clone().recipient(),
                        kick_all: sessions.clone().recipient(),
                        entities: entities.clone(),
                        metrics: metrics.clone(),
                    },
                );
                l.presence.start_heartbeat(
                    sessions.clone().recipient(),
                    sessions.clone().recipient(),
                    entities.clone(),
                );
                Some(tracker)
            }
            _ => None,
        };
        presence_ctx.run(Presence::new(db.clone(), sessions.clone().recipient(), tracker));
        Ok(Hub { db, store, clock, settings, sessions, entities, writer, metrics, me, cluster: link, push })
    }

    /// Runs `cmd` at the owner of `conv`, wherever it runs (queued at once: see
    /// [`Entities::route`]).
    pub fn route(&self, conv: ConvId, cmd: Command) -> impl std::future::Future<Output = Outcome> + Send + 'static {
        self.entities.route(conv, cmd)
    }

    /// Who owns `conv` now.
    pub async fn owner_of(&self, conv: ConvId) -> Result<OwnerInfo, String> {
        let Some(c) = &self.cluster else {
            let here = self.entities.owned().await.into_iter().any(|(c, _)| c == conv);
            return Ok(OwnerInfo { conv, node: here.then(|| self.me.id.clone()), epoch: None, alive: true });
        };
        let h: Option<Holder> = c.directory.holder(&conv).await?;
        let alive = h.as_ref().is_some_and(|h| c.view.alive(&h.node));
        Ok(OwnerInfo { conv, node: h.as_ref().map(|h| h.node.clone()), epoch: h.map(|h| h.epoch), alive })
    }

    /// Closes sessions of `user` (one device or all) on every node; returns how many were on
    /// this node.
    pub async fn kick(&self, user: UserId, device: Option<DeviceId>, reason: KickReason) -> usize {
        self.sessions.send(KickUser { user, device, reason, cluster: true }).await.unwrap_or(0)
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
            c.outbox.broadcast(users.clone(), &frame);
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
            c.outbox.to_node(node, &Envelope::Drain, &[]);
            c.view.mark_draining(node);
        }
        known
    }

    /// Marks this node draining, closes its sessions with "restarting" (clients reconnect
    /// through the load balancer, which no longer routes here) and hands the conversations it
    /// owns over to other nodes (each owner finishes its writes and deletes its record, so the
    /// next command starts an owner elsewhere at once, not after a TTL). Returns how many
    /// sessions were closed.
    pub async fn drain_self(&self) -> usize {
        if self.me.start_draining() {
            log::warn!("node {} draining", self.me.id);
            if let Some(c) = &self.cluster {
                c.view.mark_draining(&self.me.id);
                if let Err(e) = c.presence.announce_draining().await {
                    log::warn!("draining not published ({e}); other nodes learn it at the next heartbeat");
                }
            }
        }
        let n = self.sessions.send(KickAll { reason: KickReason::Restarting }).await.unwrap_or(0);
        let started = std::time::Instant::now();
        self.entities.hand_over().await;
        log::info!("node {}: conversations handed over in {:?}", self.me.id, started.elapsed());
        n
    }

    /// Leaves the cluster cleanly (shutdown): removes this node's presence entries and keys.
    pub async fn leave_cluster(&self) {
        if let Some(c) = &self.cluster {
            if let Err(e) = c.presence.leave(&self.sessions.clone().recipient()).await {
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
        let conversations = self.entities.count().await;
        Gauges {
            sessions: stats.sessions as u64,
            users: stats.users as u64,
            dropped_slow: stats.dropped_slow,
            conversations: conversations as u64,
            draining: self.me.draining(),
        }
    }
}
