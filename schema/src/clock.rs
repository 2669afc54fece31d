//! Wall-clock time in milliseconds, with an offset that tests can move.
//!
//! Every rule that depends on time (token expiry, the 24-hour friend-request rule, request expiry,
//! the recall window) reads the time from a [`Clock`], so tests move time forward instead of
//! sleeping. In production the offset stays zero.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// A shared clock: system time plus an adjustable offset.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    /// A clock that reads system time.
    pub fn system() -> Self {
        Self::default()
    }

    /// Milliseconds since the Unix epoch, plus the offset.
    pub fn now_ms(&self) -> i64 {
        let sys = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
        sys + self.offset_ms.load(Ordering::Relaxed)
    }

    /// Moves this clock (and every clone of it) forward by `ms`.
    pub fn advance(&self, ms: i64) {
        self.offset_ms.fetch_add(ms, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_moves_every_clone() {
        let c = Clock::system();
        let d = c.clone();
        let before = d.now_ms();
        c.advance(86_400_000);
        assert!(d.now_ms() >= before + 86_400_000);
    }
}
