//! Conversation sequence numbers from Redis, so that every node assigns unique, increasing seqs
//! to the same conversation.
//!
//! `im:seq:{conv}` holds the last seq given out. Each allocation is one atomic script: `INCRBY`,
//! raised to the caller's floor if Redis knows less than the caller (a fresh key, or Redis lost
//! its data in a restart) — the floor is the highest seq the calling actor has seen, which is at
//! least the store's highest when the actor started. The key expires after a day without traffic;
//! the store seeds it again.

use std::sync::Arc;
use std::time::Duration;

use deadpool_redis::redis;
use schema::ConvId;

use super::Keys;
use crate::metrics::{inc, Metrics};

const NEXT: &str = r"
local n = tonumber(ARGV[3])
local v = redis.call('INCRBY', KEYS[1], n)
local floor = tonumber(ARGV[1])
if v - n < floor then
  v = floor + n
  redis.call('SET', KEYS[1], v)
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return v
";

/// How long an allocation may take before the caller falls back to its local counter.
const TIMEOUT: Duration = Duration::from_secs(2);
/// Lifetime of an idle seq key.
const KEY_TTL_SECS: u64 = 86_400;

/// Hands out seqs from Redis.
#[derive(Clone)]
pub struct SeqSource {
    pool: deadpool_redis::Pool,
    script: Arc<redis::Script>,
    metrics: Arc<Metrics>,
    keys: Keys,
}

impl SeqSource {
    /// Seqs from the Redis behind `pool`.
    pub fn new(pool: deadpool_redis::Pool, metrics: Arc<Metrics>, keys: Keys) -> Self {
        SeqSource { pool, script: Arc::new(redis::Script::new(NEXT)), metrics, keys }
    }

    /// Takes `n` consecutive seqs of `conv`, all above `floor`; returns the last one (the range
    /// is `last - n + 1 ..= last`). `None` when Redis cannot answer in time (the caller then
    /// counts on from `floor` itself; the store's unique `(conv, seq)` key catches a collision).
    pub async fn next_n(&self, conv: &ConvId, floor: i64, n: i64) -> Option<i64> {
        if super::redis_state(&self.metrics) == super::RedisState::Down {
            // Known unreachable (the bus lost its connection): do not wait for a timeout per
            // allocation; the bus reconnects and later allocations use Redis again.
            inc(&self.metrics.seq_fallbacks);
            return None;
        }
        let work = async {
            let mut c = self.pool.get().await.ok()?;
            self.script
                .key(self.keys.seq(conv.as_str()))
                .arg(floor)
                .arg(KEY_TTL_SECS)
                .arg(n)
                .invoke_async::<i64>(&mut c)
                .await
                .ok()
        };
        let out = tokio::time::timeout(TIMEOUT, work).await.ok().flatten();
        match out {
            Some(_) => inc(&self.metrics.seq_allocations),
            None => inc(&self.metrics.seq_fallbacks),
        }
        out
    }
}
