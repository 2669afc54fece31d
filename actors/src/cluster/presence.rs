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
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use actix::prelude::*;
use deadpool_redis::redis;
use schema::{DeviceId, UserId};
use tokio::sync::mpsc;

use super::bus::{BusOut, ClusterBus};
use super::{NodeInfo, NodeSelf, RedisState, SessionInfo};
use crate::metrics::Metrics;
use crate::presence::{Presence, PresenceChanged};
use crate::registry::{GetStats, KickReason, ListAllSessions, SessionRegistry};

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

/// A presence change of a local session.
#[derive(Debug)]
pub enum PresenceOp {
    Up { user: UserId, device: DeviceId, since: i64 },
    Down { user: UserId, device: DeviceId, since: i64, last_local: bool },
}

/// Queue of presence operations (run in order by the presence task).
#[derive(Clone)]
pub struct PresenceTracker {
    tx: mpsc::UnboundedSender<PresenceOp>,
}

impl PresenceTracker {
    /// Queues an operation.
    pub fn push(&self, op: PresenceOp) {
        let _ = self.tx.send(op);
    }
}

/// Reads and maintains cluster presence.
#[derive(Clone)]
pub struct ClusterPresence {
    pool: deadpool_redis::Pool,
    me: Arc<NodeSelf>,
    alive: Arc<RwLock<HashSet<String>>>,
    presence: Addr<Presence>,
    metrics: Arc<Metrics>,
    heartbeat: Duration,
    ttl: Duration,
}

fn value_of(node: &str, since: i64) -> String {
    format!("{node}|{since}")
}

fn node_of(value: &str) -> &str {
    value.split_once('|').map_or(value, |(n, _)| n)
}

impl ClusterPresence {
    /// Presence over `pool` for node `me`.
    pub fn new(
        pool: deadpool_redis::Pool,
        me: Arc<NodeSelf>,
        presence: Addr<Presence>,
        metrics: Arc<Metrics>,
        heartbeat: Duration,
        ttl: Duration,
    ) -> Self {
        let alive = Arc::new(RwLock::new(HashSet::from([me.id.clone()])));
        ClusterPresence { pool, me, alive, presence, metrics, heartbeat, ttl }
    }

    fn is_alive(&self, node: &str) -> bool {
        node == self.me.id || self.alive.read().map(|a| a.contains(node)).unwrap_or(false)
    }

    fn live_count(&self, values: &[String]) -> usize {
        values.iter().filter(|v| self.is_alive(node_of(v))).count()
    }

    async fn conn(&self) -> Result<deadpool_redis::Connection, String> {
        self.pool.get().await.map_err(|e| e.to_string())
    }

    /// Starts the task that runs presence operations in order; returns its queue.
    pub fn start(&self, bus: Addr<ClusterBus>) -> PresenceTracker {
        let (tx, mut rx) = mpsc::unbounded_channel::<PresenceOp>();
        let this = self.clone();
        actix::spawn(async move {
            while let Some(op) = rx.recv().await {
                this.apply(op, &bus).await;
            }
        });
        PresenceTracker { tx }
    }

    async fn apply(&self, op: PresenceOp, bus: &Addr<ClusterBus>) {
        match op {
            PresenceOp::Up { user, device, since } => {
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
                        if !prev.is_empty() && node_of(&prev) != self.me.id && self.is_alive(node_of(&prev)) {
                            // The same device is still connected on another node: replace it there.
                            bus.do_send(BusOut::Kick { user, device: Some(device), reason: KickReason::Replaced });
                        }
                        if self.live_count(&values) == 1 {
                            self.presence.do_send(PresenceChanged { user, online: true });
                        }
                    }
                    Err(e) => {
                        log::warn!(
                            "presence: Redis unavailable ({e}); announcing user {user} online from this node's view"
                        );
                        self.presence.do_send(PresenceChanged { user, online: true });
                    }
                }
            }
            PresenceOp::Down { user, device, since, last_local } => {
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
                    Ok(values) if self.live_count(&values) == 0 => {
                        self.presence.do_send(PresenceChanged { user, online: false });
                    }
                    Ok(_) => {}
                    Err(e) => {
                        if last_local {
                            log::warn!("presence: Redis unavailable ({e}); announcing user {user} offline from this node's view");
                            self.presence.do_send(PresenceChanged { user, online: false });
                        }
                    }
                }
            }
        }
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

    /// The devices of `user` online on live nodes.
    pub async fn sessions(&self, user: UserId) -> Option<Vec<SessionInfo>> {
        let mut c = self.conn().await.ok()?;
        let all: HashMap<String, String> =
            redis::cmd("HGETALL").arg(self.me.keys.presence(user)).query_async(&mut c).await.ok()?;
        let mut out: Vec<SessionInfo> = all
            .into_iter()
            .filter_map(|(d, v)| {
                let (node, since) = v.split_once('|')?;
                self.is_alive(node).then(|| SessionInfo {
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

    /// Starts the heartbeat: liveness key, published facts, the live-node cache, reaping dead
    /// nodes, and re-registering local sessions after Redis came back.
    pub fn start_heartbeat(&self, sessions: Addr<SessionRegistry>) {
        let this = self.clone();
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
                let stats = sessions.send(GetStats).await.unwrap_or_default();
                let beat =
                    tokio::time::timeout(this.heartbeat * 3, this.beat(stats.sessions as u64, stats.users as u64));
                match beat.await.unwrap_or_else(|_| Err("timed out".into())) {
                    Ok(rejoined) => {
                        if !healthy || rejoined {
                            // First beat, Redis came back, or it lost its data (restarted empty):
                            // this node's sessions go back in.
                            if let Err(e) = this.reregister(&sessions).await {
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
    }

    /// Refreshes liveness and facts; true when this node was missing from the node set (a first
    /// beat, a Redis that lost its data, or this node reaped as dead after a long pause).
    async fn beat(&self, sessions: u64, users: u64) -> Result<bool, String> {
        let mut c = self.conn().await?;
        let id = &self.me.id;
        let ttl_ms = self.ttl.as_millis() as u64;
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
        }
        let flags: Vec<bool> = pipe.query_async(&mut c).await.map_err(|e| e.to_string())?;
        let alive: HashSet<String> = ids.into_iter().zip(flags).filter(|(_, a)| *a).map(|(n, _)| n).collect();
        if let Ok(mut a) = self.alive.write() {
            *a = alive;
            a.insert(id.clone());
        }
        Ok(added == 1)
    }

    /// Writes every local session into Redis again (after a Redis restart it is empty), and
    /// removes this node's entries of sessions that closed while Redis was unreachable.
    async fn reregister(&self, sessions: &Addr<SessionRegistry>) -> Result<(), String> {
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
            self.presence.do_send(PresenceChanged { user, online: false });
        }
        Ok(())
    }

    /// Cleans up after nodes whose liveness key expired (one node does it, under a lock).
    async fn reap(&self) -> Result<(), String> {
        let mut c = self.conn().await?;
        let ids: Vec<String> =
            redis::cmd("SMEMBERS").arg(self.me.keys.nodes()).query_async(&mut c).await.map_err(|e| e.to_string())?;
        for dead in ids.iter().filter(|n| !self.is_alive(n)) {
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
    pub async fn leave(&self, sessions: &Addr<SessionRegistry>) -> Result<(), String> {
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
