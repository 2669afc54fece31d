//! A progress line on stderr once a second, from counters that any thread may bump.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Named counters shown on the progress line, plus the current phase.
#[derive(Debug)]
pub struct Progress {
    names: Vec<&'static str>,
    values: Vec<AtomicU64>,
    phase: Mutex<String>,
    /// During a set-up phase: how many steps it has (the line then shows `done/total`).
    setup_total: AtomicU64,
    stop: AtomicBool,
    started: Instant,
}

impl Progress {
    /// Counters with these names, all zero; phase `setup`.
    pub fn new(names: &[&'static str]) -> Arc<Self> {
        Arc::new(Progress {
            names: names.to_vec(),
            values: names.iter().map(|_| AtomicU64::new(0)).collect(),
            phase: Mutex::new("setup".to_owned()),
            setup_total: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            started: Instant::now(),
        })
    }

    /// Adds `n` to counter `i` (its index in the names given to [`Progress::new`]).
    pub fn add(&self, i: usize, n: u64) {
        if let Some(v) = self.values.get(i) {
            v.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Sets counter `i`.
    pub fn set(&self, i: usize, n: u64) {
        if let Some(v) = self.values.get(i) {
            v.store(n, Ordering::Relaxed);
        }
    }

    /// Resets every counter to zero (between phases).
    pub fn reset(&self) {
        for v in &self.values {
            v.store(0, Ordering::Relaxed);
        }
    }

    /// Names the current phase (`connect`, `warmup`, `run`, `drain`, ...).
    pub fn phase(&self, phase: &str) {
        self.setup_total.store(0, Ordering::Relaxed);
        if let Ok(mut p) = self.phase.lock() {
            phase.clone_into(&mut p);
        }
    }

    /// Starts a set-up phase of `total` steps, counted in counter 0 (which is reset).
    pub fn setup_phase(&self, phase: &str, total: usize) {
        self.reset();
        if let Ok(mut p) = self.phase.lock() {
            phase.clone_into(&mut p);
        }
        self.setup_total.store(total as u64, Ordering::Relaxed);
    }

    /// The progress line.
    pub fn line(&self) -> String {
        let phase = self.phase.lock().map(|p| p.clone()).unwrap_or_default();
        let mut s = format!("[{:>5.0}s] {phase:<8}", self.started.elapsed().as_secs_f64());
        let total = self.setup_total.load(Ordering::Relaxed);
        if total > 0 {
            let done = self.values.first().map(|v| v.load(Ordering::Relaxed)).unwrap_or(0);
            s.push_str(&format!(" {done}/{total}"));
            return s;
        }
        for (name, v) in self.names.iter().zip(&self.values) {
            s.push_str(&format!(" {name}={}", v.load(Ordering::Relaxed)));
        }
        s
    }

    /// Prints the line on stderr every second from a thread of its own until [`Progress::stop`].
    pub fn spawn_printer(self: &Arc<Self>, quiet: bool) -> Option<std::thread::JoinHandle<()>> {
        if quiet {
            return None;
        }
        let me = self.clone();
        std::thread::Builder::new()
            .name("progress".into())
            .spawn(move || {
                let mut next = Instant::now() + Duration::from_secs(1);
                while !me.stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(100));
                    if Instant::now() >= next {
                        next += Duration::from_secs(1);
                        eprintln!("{}", me.line());
                    }
                }
            })
            .ok()
    }

    /// Stops the printer.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_shows_phase_and_counters() {
        let p = Progress::new(&["sent", "acked"]);
        p.add(0, 3);
        p.add(1, 2);
        p.add(7, 1);
        p.phase("run");
        let line = p.line();
        assert!(line.contains("run") && line.contains("sent=3") && line.contains("acked=2"), "{line}");
        p.setup_phase("register", 10);
        p.add(0, 4);
        assert!(p.line().contains("register") && p.line().contains(" 4/10"), "{}", p.line());
        p.phase("run");
        assert!(p.line().contains("sent=4"));
    }
}
