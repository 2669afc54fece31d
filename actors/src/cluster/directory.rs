//! The directory of owners: which node owns each conversation (1:1 and group), in Redis, and
//! the fencing epochs that make an outdated owner harmless, in SQL.
//!
//! - `{ns}:own:{conv}` holds `node|epoch`: the conversation's owner and the epoch it writes
//!   under. It is valid while the node's liveness key `{ns}:alive:{node}` exists: ownership is
//!   held under the node's lease ([`super::view::Lease`]), so renewing it costs one key per node
//!   and heartbeat, not one per conversation. The record itself lives for a day
//!   ([`OWNER_RECORD_TTL`], refreshed by long-lived owners) and is deleted when its owner stops.
//! - [`Directory::claim`] takes the record atomically when it is absent, names a node whose
//!   liveness key is gone (it died, or it paused past its lease), or names this node; a record
//!   naming another live node wins. The claim is the tie-break when two nodes want the same
//!   conversation at once.
//! - [`Directory::take`] then raises the conversation's epoch in `entity_owners` (SQL), and
//!   every write of the new owner carries that epoch ([`schema::db::owners`]). Epochs live in
//!   the database, not in Redis, so they only ever grow, whatever happens to Redis.
//! - Placement (who should own a conversation nobody owns) is rendezvous hashing over the live
//!   nodes that do not drain ([`crate::placement`]).

use std::sync::Arc;
use std::time::Duration;

use deadpool_redis::redis;
use schema::db::owners;
use schema::{Clock, ConvId};

use super::view::NodeView;
use super::NodeSelf;
use crate::db::Db;

/// How long an owner record lives without being refreshed: longer than any owner stays idle
/// (an idle owner stops and deletes its record); owners running longer refresh it every
/// [`OWNER_RECORD_REFRESH`].
pub const OWNER_RECORD_TTL: Duration = Duration::from_secs(24 * 3600);
/// How often a long-lived owner refreshes its record.
pub const OWNER_RECORD_REFRESH: Duration = Duration::from_secs(3600);

const CLAIM: &str = r"
local cur = redis.call('GET', KEYS[1])
if cur then
  local node = string.match(cur, '^([^|]*)')
  if node ~= ARGV[1] and redis.call('EXISTS', ARGV[2] .. node) == 1 then
    return {0, cur}
  end
end
redis.call('SET', KEYS[1], ARGV[1] .. '|0', 'PX', ARGV[3])
return {1, cur or ''}
";

const PUBLISH: &str = r"
local cur = redis.call('GET', KEYS[1])
if cur and string.match(cur, '^([^|]*)') == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
";

const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
";

const REFRESH: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
";

/// The owner a record names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub node: String,
    /// 0 while the owner is still taking its epoch.
    pub epoch: i64,
}

impl Holder {
    fn parse(v: &str) -> Option<Self> {
        let (node, epoch) = v.split_once('|')?;
        Some(Holder { node: node.to_owned(), epoch: epoch.parse().ok()? })
    }
}

/// The result of a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The record is this node's now; `previous` is what it named before (a dead node, or this
    /// node's own record from before a restart), if anything.
    Won { previous: Option<Holder> },
    /// Another live node holds it.
    Held(Holder),
}

/// Owner records in Redis and epochs in SQL.
#[derive(Clone)]
pub struct Directory {
    pool: deadpool_redis::Pool,
    me: Arc<NodeSelf>,
    view: Arc<NodeView>,
    db: Db,
    clock: Clock,
}

fn value(node: &str, epoch: i64) -> String {
    format!("{node}|{epoch}")
}

impl Directory {
    /// The directory of the cluster behind `pool`.
    pub fn new(pool: deadpool_redis::Pool, me: Arc<NodeSelf>, view: Arc<NodeView>, db: Db, clock: Clock) -> Self {
        Directory { pool, me, view, db, clock }
    }

    async fn conn(&self) -> Result<deadpool_redis::Connection, String> {
        self.pool.get().await.map_err(|e| e.to_string())
    }

    /// Who holds `conv` now, by its record (alive or not: see [`NodeView::alive`]).
    pub async fn holder(&self, conv: &ConvId) -> Result<Option<Holder>, String> {
        let mut c = self.conn().await?;
        let v: Option<String> = redis::cmd("GET")
            .arg(self.me.keys.owner(conv.as_str()))
            .query_async(&mut c)
            .await
            .map_err(|e| e.to_string())?;
        Ok(v.as_deref().and_then(Holder::parse))
    }

    /// The holders of several conversations (one round trip).
    pub async fn holders(&self, convs: &[ConvId]) -> Result<Vec<Option<Holder>>, String> {
        if convs.is_empty() {
            return Ok(Vec::new());
        }
        let mut c = self.conn().await?;
        let mut pipe = redis::pipe();
        for conv in convs {
            pipe.cmd("GET").arg(self.me.keys.owner(conv.as_str()));
        }
        let vals: Vec<Option<String>> = pipe.query_async(&mut c).await.map_err(|e| e.to_string())?;
        Ok(vals.iter().map(|v| v.as_deref().and_then(Holder::parse)).collect())
    }

    /// Claims the record of `conv` for this node (see the module documentation).
    pub async fn claim(&self, conv: &ConvId) -> Result<Claim, String> {
        let mut c = self.conn().await?;
        let (won, previous): (i64, String) = redis::Script::new(CLAIM)
            .key(self.me.keys.owner(conv.as_str()))
            .arg(&self.me.id)
            .arg(self.me.keys.node_alive(""))
            .arg(OWNER_RECORD_TTL.as_millis() as u64)
            .invoke_async(&mut c)
            .await
            .map_err(|e| e.to_string())?;
        let previous = Holder::parse(&previous);
        Ok(match (won, previous) {
            (1, previous) => Claim::Won { previous },
            (_, Some(h)) => Claim::Held(h),
            (_, None) => Claim::Won { previous: None },
        })
    }

    /// Raises `conv`'s epoch in SQL for this node and returns it: from now on every write of an
    /// older epoch is refused.
    pub async fn take(&self, conv: &ConvId) -> Result<i64, String> {
        let (conv, node, now) = (conv.0.clone(), self.me.id.clone(), self.clock.now_ms());
        self.db.write(move |c| owners::take(c, &conv, &node, now)).await.map_err(|e| e.to_string())
    }

    /// Writes the epoch into this node's record of `conv` (the claim left it at 0).
    pub async fn publish(&self, conv: &ConvId, epoch: i64) -> Result<bool, String> {
        let mut c = self.conn().await?;
        let set: i64 = redis::Script::new(PUBLISH)
            .key(self.me.keys.owner(conv.as_str()))
            .arg(&self.me.id)
            .arg(value(&self.me.id, epoch))
            .arg(OWNER_RECORD_TTL.as_millis() as u64)
            .invoke_async(&mut c)
            .await
            .map_err(|e| e.to_string())?;
        Ok(set == 1)
    }

    /// Deletes this node's record of `conv` at `epoch` (the owner stopped), unless it names
    /// someone else by now.
    pub async fn release(&self, conv: &ConvId, epoch: i64) -> Result<(), String> {
        let mut c = self.conn().await?;
        redis::Script::new(RELEASE)
            .key(self.me.keys.owner(conv.as_str()))
            .arg(value(&self.me.id, epoch))
            .invoke_async::<i64>(&mut c)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Extends this node's record of `conv` at `epoch` by [`OWNER_RECORD_TTL`]; false when the
    /// record names someone else (or nobody) now.
    pub async fn refresh(&self, conv: &ConvId, epoch: i64) -> Result<bool, String> {
        let mut c = self.conn().await?;
        let n: i64 = redis::Script::new(REFRESH)
            .key(self.me.keys.owner(conv.as_str()))
            .arg(value(&self.me.id, epoch))
            .arg(OWNER_RECORD_TTL.as_millis() as u64)
            .invoke_async(&mut c)
            .await
            .map_err(|e| e.to_string())?;
        Ok(n == 1)
    }

    /// The live, non-draining node that should own `conv` if nobody does.
    pub fn placement(&self, conv: &ConvId) -> Option<String> {
        let nodes = self.view.candidates();
        crate::placement::owner(conv.as_str(), nodes.iter().map(String::as_str)).map(str::to_owned)
    }

    /// True when `node` counts as alive.
    pub fn alive(&self, node: &str) -> bool {
        self.view.alive(node)
    }

    /// True when `node` is known to drain.
    pub fn draining(&self, node: &str) -> bool {
        node == self.me.id && self.me.draining() || self.view.draining(node)
    }

    /// Notes that `node` drains (it said so).
    pub fn mark_draining(&self, node: &str) {
        self.view.mark_draining(node);
    }

    /// This node's id.
    pub fn me(&self) -> &str {
        &self.me.id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_name_a_node_and_an_epoch() {
        assert_eq!(Holder::parse("node-2|7"), Some(Holder { node: "node-2".into(), epoch: 7 }));
        assert_eq!(Holder::parse("node-2|0"), Some(Holder { node: "node-2".into(), epoch: 0 }));
        assert_eq!(Holder::parse("garbage"), None);
        assert_eq!(Holder::parse("node|x"), None);
        assert_eq!(value("n", 3), "n|3");
    }
}
