//! Cluster presence in Redis, node liveness and the reaping of dead nodes.
//!
//! - `im:p:{user}`: a hash per user, field = device id, value = `node|since`. A user is online
//!   while one of its fields names a live node.
//! - `im:alive:{node}`: set with a TTL and refreshed by the node's heartbeat; `im:nodes` lists the
//!   nodes ever seen, `im:node:{node}` their published facts, `im:nu:{node}` their users.
//! - Online/offline transitions are decided by atomic scripts (set-and-read, delete-if-mine-and-
//!   read), so two nodes never both announce the same user's first device.
//! - A node whose liveness key expired is reaped by one live node (a lock key): its users'
//!   fields are removed and those left without a live device are announced offline. Until then
//!   its fields simply stop counting, so a dead node's sessions stop being online within the TTL.
//!
//! Operations run in order on one task; while Redis is unreachable the node falls back to its
//! own view (first/last local device) and re-registers its sessions once Redis is back.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use deadpool_redis::redis;
use schema::db::groups as gq;
use schema::{ConvId, UserId};
use tokio::sync::mpsc;

use super::directory::Directory;
use super::outbox::Outbox;
use super::subscriber::Interest;
use super::view::{Lease, NodeView};
use super::{NodeInfo, NodeSelf, RedisState, SessionInfo};
use crate::command::Command;
use crate::db::Db;
use crate::delivery::{GetStats, KickReason, ListAllSessions, PresenceChanged, SessionChange};
use crate::entity::Entities;
use crate::metrics::Metrics;

const UP: &str = r"
local prev = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
return {prev or '', redis.call('HVALS', KEYS[1])}
";

const DOWN: &str = r"
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then redis.call('HDEL', KEYS[1], ARGV[1]) end
if ARGV[4] == '1' then redis.call('SREM', KEYS[2], ARGV[3]) end
return redis.call('HVALS', KEYS[1])
";

const REAP: &str = r"
local prefix = ARGV[1]
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if string.sub(all[i + 1], 1, #prefix) == prefix then redis.call('HDEL', KEYS[1], all[i]) end
end
return redis.call('HVALS', KEYS[1])
";

/// Queue of session changes (run in order by the presence task).
#[derive(Clone)]
pub struct PresenceTracker {
    tx: mpsc::UnboundedSender<SessionChange>,
}

impl PresenceTracker {
    /// Queues a change.
    pub fn push(&self, op: SessionChange) {
        let _ = self.tx.send(op);
    }
}

/// What the presence task acts on besides Redis.
#[derive(Clone)]
pub struct Links {
    /// Kicks of a device replaced on another node.
    pub outbox: Outbox,
    /// The user channels this node subscribes to.
    pub interest: Interest,
    /// Owners of a user's groups are told where the user is online.
    pub entities: Entities,
    pub directory: Directory,
    pub db: Db,
}

/// Reads and maintains cluster presence, and keeps the node's lease.
#[derive(Clone)]
pub struct ClusterPresence {
    pool: deadpool_redis::Pool,
    me: Arc<NodeSelf>,
    view: Arc<NodeView>,
    lease: Arc<Lease>,
    announce: Recipient<PresenceChanged>,
    metrics: Arc<Metrics>,
    heartbeat: Duration,
}

fn value_of(node: &str, since: i64) -> String {
    format!("{node}|{since}")
}

fn node_of(value: &str) -> &str {
    value.split_once('|').map_or(value, |(n, _)| n)
}

impl ClusterPresence {
    /// Presence over `pool` for node `me`; online/offline decisions go to `announce`.
    pub fn new(
        pool: deadpool_redis::Pool,
        me: Arc<NodeSelf>,
        view: Arc<NodeView>,
        lease: Arc<Lease>,
        announce: Recipient<PresenceChanged>,
        metrics: Arc<Metrics>,
        heartbeat: Duration,
    ) -> Self {
        ClusterPresence { pool, me, view, lease, announce, metrics, heartbeat }
    }

    fn live_count(&self, values: &[String]) -> usize {
        values.iter().filter(|v| self.view.alive(node_of(v))).count()
    }

    async fn conn(&self) -> Result<deadpool_redis::Connection, String> {
        self.pool.get().await.map_err(|e| e.to_string())
    }

    fn announce(&self, user: UserId, online: bool) {
        self.announce.do_send(PresenceChanged { user, online });
    }

    /// Starts the task that runs session changes in order; returns its queue.
    pub fn start(&self, links: Links) -> PresenceTracker {
        let (tx, mut rx) = mpsc::unbounded_channel::<SessionChange>();
        let this = self.clone();
        actix::spawn(async move {
            while let Some(op) = rx.recv().await {
                this.apply(op, &links).await;
            }
        });
        PresenceTracker { tx }
    }

    async fn apply(&self, op: SessionChange, links: &Links) {
        match op {
            SessionChange::Up { user, device, since, first_local } => {
                if first_local {
                    links.interest.add(&self.me.keys.user_channel(user));
                }
                let mine = value_of(&self.me.id, since);
                let res: Result<(String, Vec<String>), String> = async {
                    let mut c = self.conn().await?;
                    redis::Script::new(UP)
                        .key(self.me.keys.presence(user))
                        .key(self.me.keys.node_users(&self.me.id))
                        .arg(device.0)
                        .arg(&mine)
                        .arg(user.0)
                        .invoke_async(&mut c)
                        .await
                        .map_err(|e| e.to_string())
                }
                .await;
                match res {
                    Ok((prev, values)) => {
                        if !prev.is_empty() && node_of(&prev) != self.me.id && self.view.alive(node_of(&prev)) {
                            // The same device is still connected on another node: replace it there.
                            links.outbox.kick(user, Some(device), KickReason::Replaced);
                        }
                        if self.live_count(&values) == 1 {
                            self.announce(user, true);
                        }
                        if first_local {
                            // After the presence write: an owner of one of the user's groups that
                            // starts now either reads this device's presence or is found here.
                            if let Err(e) = self.register_groups(user, links).await {
                                log::warn!("presence: owners of user {user}'s groups not told: {e}");
                            }
                        }
                    }
                    Err(e) => {
                        log::warn!(
                            "presence: Redis unavailable ({e}); announcing user {user} online from this node's view"
                        );
                        self.announce(user, true);
                    }
                }
            }
            SessionChange::Down { user, device, since, last_local } => {
                if last_local {
                    links.interest.remove(&self.me.keys.user_channel(user));
                }
                let res: Result<Vec<String>, String> = async {
                    let mut c = self.conn().await?;
                    redis::Script::new(DOWN)
                        .key(self.me.keys.presence(user))
                        .key(self.me.keys.node_users(&self.me.id))
                        .arg(device.0)
                        .arg(value_of(&self.me.id, since))
                        .arg(user.0)
                        .arg(if last_local { "1" } else { "0" })
                        .invoke_async(&mut c)
                        .await
                        .map_err(|e| e.to_string())
                }
                .await;
                match res {
                    Ok(values) if self.live_count(&values) == 0 => self.announce(user, false),
                    Ok(_) => {}
                    Err(e) => {
                        if last_local {
                            log::warn!("presence: Redis unavailable ({e}); announcing user {user} offline from this node's view");
                            self.announce(user, false);
                        }
                    }
                }
            }
        }
    }

    /// Tells the running owners of `user`'s groups on other nodes that the user is online here.
    async fn register_groups(&self, user: UserId, links: &Links) -> Result<(), String> {
        let uid = user.0;
        let groups = links.db.read(move |c| gq::of_user(c, uid)).await.map_err(|e| e.to_string())?;
        let convs: Vec<ConvId> =
            groups.iter().filter(|(g, _)| g.dissolved_at.is_none()).map(|(g, _)| ConvId(gq::conv_id(g.id))).collect();
        let holders = links.directory.holders(&convs).await?;
        for (conv, h) in convs.into_iter().zip(holders) {
            if let Some(h) = h.filter(|h| h.node != self.me.id) {
                links.entities.notify(&h.node, conv, Command::Online { node: self.me.id.clone(), users: vec![user] });
            }
        }
        Ok(())
    }

    /// The live nodes other than this one where each of `users` has a session: (user, node).
    /// A node this node's view does not know yet (it joined since the last heartbeat) counts
    /// when its liveness key exists.
    pub async fn nodes_of(&self, users: &[UserId]) -> Result<Vec<(UserId, String)>, String> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let mut c = self.conn().await?;
        let mut found: Vec<(UserId, String)> = Vec::new();
        for chunk in users.chunks(1000) {
            let mut pipe = redis::pipe();
            for u in chunk {
                pipe.cmd("HVALS").arg(self.me.keys.presence(*u));
            }
            let vals: Vec<Vec<String>> = pipe.query_async(&mut c).await.map_err(|e| e.to_string())?;
            for (u, vs) in chunk.iter().zip(vals) {
                let nodes: HashSet<&str> = vs.iter().map(|v| node_of(v)).collect();
                found.extend(nodes.into_iter().filter(|n| *n != self.me.id).map(|n| (*u, n.to_owned())));
            }
        }
        let unknown: Vec<String> = found
            .iter()
            .map(|(_, n)| n.clone())
            .filter(|n| !self.view.alive(n))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let mut alive_too = HashSet::new();
        if !unknown.is_empty() {
            let mut pipe = redis::pipe();
            for n in &unknown {
                pipe.cmd("EXISTS").arg(self.me.keys.node_alive(n));
            }
            let flags: Vec<bool> = pipe.query_async(&mut c).await.map_err(|e| e.to_string())?;
            alive_too.extend(unknown.into_iter().zip(flags).filter(|(_, a)| *a).map(|(n, _)| n));
        }
        found.retain(|(_, n)| self.view.alive(n) || alive_too.contains(n));
        Ok(found)
    }

    /// Which of `users` have a device on a live node. Falls back to `None` when Redis fails
    /// (the caller then answers from the local registry).
    pub async fn online(&self, users: &[UserId]) -> Option<Vec<UserId>> {
        if users.is_empty() {
            return Some(Vec::new());
        }
        let mut c = self.conn().await.ok()?;
        let mut pipe = redis::pipe();
        for u in users {
            pipe.cmd("HVALS").arg(self.me.keys.presence(*u));
        }
        let vals: Vec<Vec<String>> = pipe.query_async(&mut c).await.ok()?;
        Some(users.iter().zip(vals).filter(|(_, v)| self.live_count(v) > 0).map(|(u, _)| *u).collect())
    }

    /// Claims push delivery `notification` to `target` for `ttl` (Redis `SET NX PX`): true for
    /// the first claim, false while one holds; `Err` when Redis cannot be reached.
    pub async fn claim_push(&self, target: i64, notification: &str, ttl: Duration) -> Result<bool, String> {
        let mut c = self.conn().await?;
        let set: Option<String> = redis::cmd("SET")
            .arg(self.me.keys.push_claim(target, notification))
            .arg(&self.me.id)
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64)
            .query_async(&mut c)
            .await
            .map_err(|e| e.to_string())?;
        Ok(set.is_some())
    }

    /// The devices of `user` online on live nodes.
    pub async fn sessions(&self, user: UserId) -> Option<Vec<SessionInfo>> {
        let mut c = self.conn().await.ok()?;
        let all: HashMap<String, String> =
            redis::cmd("HGETALL").arg(self.me.keys.presence(user)).query_async(&mut c).await.ok()?;
        let mut out: Vec<SessionInfo> = all
            .into_iter()
            .filter_map(|(d, v)| {
                let (node, since) = v.split_once('|')?;
                self.view.alive(node).then(|| SessionInfo {
                    device_id: d.parse().unwrap_or(0),
                    node: node.to_owned(),
                    since: since.parse().unwrap_or(0),
                })
            })
            .collect();
        out.sort_by_key(|s| s.device_id);
        Some(out)
    }

    /// Every node Redis knows (live or not yet reaped), with its published facts.
    pub async fn nodes(&self) -> Option<Vec<NodeInfo>> {
        let mut c = self.conn().await.ok()?;
        let ids: Vec<String> = redis::cmd("SMEMBERS").arg(self.me.keys.nodes()).query_async(&mut c).await.ok()?;
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.cmd("HGETALL").arg(self.me.keys.node_info(id));
            pipe.cmd("EXISTS").arg(self.me.keys.node_alive(id));
        }
        let raw: Vec<redis::Value> = pipe.query_async(&mut c).await.ok()?;
        let mut out = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            let info: HashMap<String, String> =
                raw.get(2 * i).and_then(|v| redis::from_redis_value(v.clone()).ok()).unwrap_or_default();
            let alive: bool = raw.get(2 * i + 1).and_then(|v| redis::from_redis_value(v.clone()).ok()).unwrap_or(false);
            let num = |k: &str| info.get(k).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
            out.push(NodeInfo {
                id: id.clone(),
                address: info.get("address").cloned().unwrap_or_default(),
                version: info.get("version").cloned().unwrap_or_default(),
                started_at: num("started_at") as i64,
                sessions: num("sessions") as u64,
                users: num("users") as u64,
                messages_per_sec: num("messages_per_sec"),
                alive,
                draining: info.get("draining").is_some_and(|v| v == "1"),
            });
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Some(out)
    }

    /// Starts the heartbeat: the liveness key (the node's lease), published facts, the view of
    /// live nodes, reaping dead nodes, and re-registering local sessions after Redis came back.
    /// A second task watches the lease and tells `entities` when it is lost or back.
    pub fn start_heartbeat(&self, stats: Recipient<GetStats>, all: Recipient<ListAllSessions>, entities: Entities) {
        let this = self.clone();
        let ents = entities.clone();
        actix::spawn(async move {
            let mut tick = tokio::time::interval(this.heartbeat);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last = (Instant::now(), this.metrics.messages_persisted.load(Ordering::Relaxed));
            let mut healthy = false;
            loop {
                tick.tick().await;
                let now = (Instant::now(), this.metrics.messages_persisted.load(Ordering::Relaxed));
                let dt = now.0.duration_since(last.0).as_secs_f64();
                if dt > 0.0 {
                    this.me.set_rate((now.1 - last.1) as f64 / dt);
                }
                last = now;
                let s = stats.send(GetStats).await.unwrap_or_default();
                let before: HashSet<String> = this.view.live().into_iter().collect();
                let sent = Instant::now();
                // Bounded by the lease: a refresh that answers later than that is worth nothing.
                let limit = (this.heartbeat * 3).min(this.lease.ttl());
                let beat = tokio::time::timeout(limit, this.beat(s.sessions as u64, s.users as u64));
                match beat.await.unwrap_or_else(|_| Err("timed out".into())) {
                    Ok(rejoined) => {
                        this.lease.renewed(sent);
                        let gone: Vec<String> = before.into_iter().filter(|n| !this.view.alive(n)).collect();
                        if !gone.is_empty() {
                            log::warn!("cluster: node(s) {gone:?} no longer alive");
                            ents.nodes_changed(gone);
                        }
                        if !healthy || rejoined {
                            // First beat, Redis came back, or it lost its data (restarted empty):
                            // this node's sessions go back in.
                            if let Err(e) = this.reregister(&all).await {
                                log::warn!("presence: local sessions not re-registered: {e}");
                                continue;
                            }
                            healthy = true;
                        }
                        if let Err(e) = this.reap().await {
                            log::warn!("presence: reaping dead nodes failed: {e}");
                        }
                    }
                    Err(e) => {
                        if healthy {
                            log::warn!("presence: heartbeat to Redis failed: {e}");
                        }
                        healthy = false;
                    }
                }
            }
        });
        let lease = self.lease.clone();
        let period = (self.heartbeat / 4).max(Duration::from_millis(50));
        actix::spawn(async move {
            let mut held = false;
            let mut tick = tokio::time::interval(period);
            loop {
                tick.tick().await;
                let now = lease.valid();
                if now != held {
                    held = now;
                    if held {
                        log::info!("cluster: this node holds its lease");
                    } else {
                        log::warn!("cluster: this node lost its lease; its conversations stop here");
                    }
                    entities.lease_changed(held);
                }
            }
        });
    }

    /// Refreshes liveness and facts and reads the view of live nodes; true when this node was
    /// missing from the node set (a first beat, a Redis that lost its data, or this node reaped
    /// as dead after a long pause).
    async fn beat(&self, sessions: u64, users: u64) -> Result<bool, String> {
        let mut c = self.conn().await?;
        let id = &self.me.id;
        let ttl_ms = self.lease.ttl().as_millis() as u64;
        let mut pipe = redis::pipe();
        pipe.cmd("SET").arg(self.me.keys.node_alive(id)).arg(1).arg("PX").arg(ttl_ms).ignore();
        pipe.cmd("SADD").arg(self.me.keys.nodes()).arg(id);
        pipe.cmd("HSET")
            .arg(self.me.keys.node_info(id))
            .arg("address")
            .arg(self.me.address())
            .arg("version")
            .arg(&self.me.version)
            .arg("started_at")
            .arg(self.me.started_at)
            .arg("sessions")
            .arg(sessions)
            .arg("users")
            .arg(users)
            .arg("messages_per_sec")
            .arg(format!("{:.1}", self.me.rate()))
            .arg("draining")
            .arg(if self.me.draining() { "1" } else { "0" })
            .ignore();
        pipe.cmd("SMEMBERS").arg(self.me.keys.nodes());
        let (added, ids): (i64, Vec<String>) = pipe.query_async(&mut c).await.map_err(|e| e.to_string())?;
        let mut pipe = redis::pipe();
        for n in &ids {
            pipe.cmd("EXISTS").arg(self.me.keys.node_alive(n));
            pipe.cmd("HGET").arg(self.me.keys.node_info(n)).arg("draining");
        }
        let flags: Vec<(bool, Option<String>)> = pipe.query_async(&mut c).await.map_err(|e| e.to_string())?;
        let view: HashMap<String, bool> = ids
            .into_iter()
            .zip(flags)
            .filter(|(_, (alive, _))| *alive)
            .map(|(n, (_, draining))| (n, draining.as_deref() == Some("1")))
            .collect();
        self.view.set(view);
        Ok(added == 1)
    }

    /// Writes every local session into Redis again (after a Redis restart it is empty), and
    /// removes this node's entries of sessions that closed while Redis was unreachable.
    async fn reregister(&self, sessions: &Recipient<ListAllSessions>) -> Result<(), String> {
        let all = sessions.send(ListAllSessions).await.map_err(|e| e.to_string())?;
        let mut c = self.conn().await?;
        for chunk in all.chunks(1000) {
            let mut pipe = redis::pipe();
            for (user, device, since) in chunk {
                pipe.cmd("HSET")
                    .arg(self.me.keys.presence(*user))
                    .arg(device.0)
                    .arg(value_of(&self.me.id, *since))
                    .ignore();
                pipe.cmd("SADD").arg(self.me.keys.node_users(&self.me.id)).arg(user.0).ignore();
            }
            pipe.query_async::<()>(&mut c).await.map_err(|e| e.to_string())?;
        }
        let local: HashSet<i64> = all.iter().map(|(u, _, _)| u.0).collect();
        let listed: Vec<i64> = redis::cmd("SMEMBERS")
            .arg(self.me.keys.node_users(&self.me.id))
            .query_async(&mut c)
            .await
            .map_err(|e| e.to_string())?;
        let prefix = format!("{}|", self.me.id);
        for u in listed.into_iter().filter(|u| !local.contains(u)) {
            self.drop_node_fields(&mut c, UserId(u), &prefix).await?;
            redis::cmd("SREM")
                .arg(self.me.keys.node_users(&self.me.id))
                .arg(u)
                .query_async::<()>(&mut c)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Removes the fields of `user`'s presence hash that name the node of `prefix` (`node|`), and
    /// announces the user offline when no device on a live node is left.
    async fn drop_node_fields(
        &self,
        c: &mut deadpool_redis::Connection,
        user: UserId,
        prefix: &str,
    ) -> Result<(), String> {
        let left: Vec<String> = redis::Script::new(REAP)
            .key(self.me.keys.presence(user))
            .arg(prefix)
            .invoke_async(c)
            .await
            .map_err(|e| e.to_string())?;
        if self.live_count(&left) == 0 {
            self.announce(user, false);
        }
        Ok(())
    }

    /// Cleans up after nodes whose liveness key expired (one node does it, under a lock).
    async fn reap(&self) -> Result<(), String> {
        let mut c = self.conn().await?;
        let ids: Vec<String> =
            redis::cmd("SMEMBERS").arg(self.me.keys.nodes()).query_async(&mut c).await.map_err(|e| e.to_string())?;
        for dead in ids.iter().filter(|n| !self.view.alive(n)) {
            let locked: Option<String> = redis::cmd("SET")
                .arg(self.me.keys.reap_lock(dead))
                .arg(&self.me.id)
                .arg("NX")
                .arg("PX")
                .arg(30_000)
                .query_async(&mut c)
                .await
                .map_err(|e| e.to_string())?;
            if locked.is_none() {
                continue;
            }
            let users: Vec<i64> = redis::cmd("SMEMBERS")
                .arg(self.me.keys.node_users(dead))
                .query_async(&mut c)
                .await
                .map_err(|e| e.to_string())?;
            let prefix = format!("{dead}|");
            for u in &users {
                self.drop_node_fields(&mut c, UserId(*u), &prefix).await?;
            }
            let mut pipe = redis::pipe();
            pipe.cmd("DEL").arg(self.me.keys.node_users(dead)).ignore();
            pipe.cmd("DEL").arg(self.me.keys.node_info(dead)).ignore();
            pipe.cmd("SREM").arg(self.me.keys.nodes()).arg(dead).ignore();
            pipe.query_async::<()>(&mut c).await.map_err(|e| e.to_string())?;
            log::warn!("presence: node {dead} is gone; {} of its users cleaned up", users.len());
        }
        Ok(())
    }

    /// Removes this node's traces (graceful shutdown): its sessions, liveness and facts.
    pub async fn leave(&self, sessions: &Recipient<ListAllSessions>) -> Result<(), String> {
        let all = sessions.send(ListAllSessions).await.map_err(|e| e.to_string())?;
        let mut c = self.conn().await?;
        let mut pipe = redis::pipe();
        for (user, device, since) in &all {
            pipe.cmd("EVAL")
                .arg(DOWN)
                .arg(2)
                .arg(self.me.keys.presence(*user))
                .arg(self.me.keys.node_users(&self.me.id))
                .arg(device.0)
                .arg(value_of(&self.me.id, *since))
                .arg(user.0)
                .arg("1")
                .ignore();
        }
        pipe.cmd("DEL").arg(self.me.keys.node_alive(&self.me.id)).ignore();
        pipe.cmd("DEL").arg(self.me.keys.node_users(&self.me.id)).ignore();
        pipe.cmd("DEL").arg(self.me.keys.node_info(&self.me.id)).ignore();
        pipe.cmd("SREM").arg(self.me.keys.nodes()).arg(&self.me.id).ignore();
        pipe.query_async::<()>(&mut c).await.map_err(|e| e.to_string())
    }

    /// Publishes at once that this node drains (the heartbeat would, within an interval), so
    /// other nodes stop placing conversations here.
    pub async fn announce_draining(&self) -> Result<(), String> {
        let mut c = self.conn().await?;
        redis::cmd("HSET")
            .arg(self.me.keys.node_info(&self.me.id))
            .arg("draining")
            .arg("1")
            .query_async::<()>(&mut c)
            .await
            .map_err(|e| e.to_string())
    }

    /// The Redis state as this module sees it.
    pub fn state(&self) -> RedisState {
        super::redis_state(&self.metrics)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presence_values_name_their_node() {
        assert_eq!(value_of("node-2", 1700), "node-2|1700");
        assert_eq!(node_of("node-2|1700"), "node-2");
        assert_eq!(node_of("garbage"), "garbage");
    }
}
