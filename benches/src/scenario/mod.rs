//! Scenarios, one module each. A scenario parses its own flags (with [`Common`] flattened in),
//! builds its population with [`crate::setup`], drives the server and returns an [`Outcome`]:
//! the JSON summary, the human one, and the failures that make the run exit non-zero.
//!
//! To add one (idle, multi-node...): a module here with an `Args` struct deriving
//! `clap::Args` and a `run(args) -> anyhow::Result<Outcome>`, and a variant in the binary's
//! `Command` enum.

pub mod direct;
pub mod group;
pub mod login;

use std::sync::mpsc::Receiver;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use serde_json::{json, Value};
use tokio::sync::oneshot;

use crate::progress::Progress;
use crate::report::Text;
use crate::sys::{self, CpuSnapshot, CpuUsage};

/// Flags every scenario takes.
#[derive(Debug, Clone, clap::Args)]
pub struct Common {
    /// Base URL of the server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Nodes to spread WebSocket sessions over (comma-separated base URLs; default: `--url`).
    /// Set-up requests go to `--url`. Against a cluster, each session picks its node by the
    /// scenario's placement rule, so cross-node delivery can be measured.
    #[arg(long, value_delimiter = ',')]
    pub nodes: Vec<String>,
    /// Print the summary as JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// The server's process id: its CPU use during the measured window (per thread too) and its
    /// resident memory (VmRSS, VmHWM) at the end are reported.
    #[arg(long)]
    pub pid: Option<u32>,
    /// A label copied into the summary (such as the server's storage).
    #[arg(long)]
    pub label: Option<String>,
    /// Concurrent HTTP requests during set-up (register, login, friends).
    #[arg(long, default_value_t = 16)]
    pub setup_concurrency: usize,
    /// Username prefix (default: `lg` + base-36 time, so runs never collide).
    #[arg(long)]
    pub prefix: Option<String>,
    /// HTTP request timeout, seconds.
    #[arg(long, default_value_t = 60)]
    pub http_timeout: u64,
    /// No progress line on stderr.
    #[arg(long)]
    pub quiet: bool,
}

impl Common {
    /// The username prefix for this run.
    pub fn prefix(&self) -> String {
        self.prefix.clone().unwrap_or_else(crate::setup::run_prefix)
    }

    /// The nodes sessions connect to (at least one).
    pub fn node_urls(&self) -> Vec<String> {
        if self.nodes.is_empty() {
            vec![self.url.clone()]
        } else {
            self.nodes.clone()
        }
    }

    /// The HTTP timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.http_timeout.max(1))
    }
}

/// What a scenario reports.
#[derive(Debug)]
pub struct Outcome {
    /// The summary as JSON.
    pub json: Value,
    /// The summary for people.
    pub text: String,
    /// Lines such as `LOST: 3 messages ...`; non-empty makes the run fail.
    pub failures: Vec<String>,
    /// Lines such as `UNACKED: ...`: printed loudly, but the run still passes.
    pub warnings: Vec<String>,
}

/// Watches the server process (when `--pid` is given) and this process over the measured window.
pub struct Watch {
    pid: Option<u32>,
    server: Option<CpuSnapshot>,
    me: Option<CpuSnapshot>,
    server_cpu: Option<CpuUsage>,
    my_cpu: Option<CpuUsage>,
}

impl Watch {
    /// Nothing measured yet.
    pub fn new(pid: Option<u32>) -> Self {
        Watch { pid, server: None, me: None, server_cpu: None, my_cpu: None }
    }

    /// The measured window starts.
    pub fn start(&mut self) {
        self.server = self.pid.map(|p| CpuSnapshot::take(&p.to_string()));
        self.me = Some(CpuSnapshot::take("self"));
    }

    /// The measured window ends.
    pub fn stop(&mut self) {
        self.server_cpu = self.server.as_ref().and_then(|s| s.usage_since(8));
        self.my_cpu = self.me.as_ref().and_then(|s| s.usage_since(4));
    }

    /// `server` and `generator` JSON objects; memory is read now.
    pub fn json(&self) -> (Value, Value) {
        let server = match self.pid {
            None => Value::Null,
            Some(pid) => {
                let mem = sys::memory(pid).ok();
                json!({
                    "pid": pid,
                    "rss_kib": mem.map(|m| m.rss_kib),
                    "peak_rss_kib": mem.map(|m| m.peak_rss_kib),
                    "cpu_pct": self.server_cpu.as_ref().map(|c| c.cpu_pct),
                    "threads": self.server_cpu.as_ref().map(|c| c.threads.clone()),
                })
            }
        };
        let me = json!({
            "cpu_pct": self.my_cpu.as_ref().map(|c| c.cpu_pct),
            "threads": self.my_cpu.as_ref().map(|c| c.threads.clone()),
        });
        (server, me)
    }

    /// The same as lines of the human summary.
    pub fn text(&self, t: &mut Text) {
        if let Some(pid) = self.pid {
            match sys::memory(pid) {
                Ok(m) => t.kv("server RSS", format!("{:.1} MiB (peak {:.1} MiB)", mib(m.rss_kib), mib(m.peak_rss_kib))),
                Err(e) => t.kv("server RSS", format!("unreadable: {e}")),
            };
            if let Some(c) = &self.server_cpu {
                t.kv("server CPU", format!("{:.0}% of one core", c.cpu_pct));
                let top: Vec<String> = c.threads.iter().map(|th| format!("{} {:.0}%", th.name, th.cpu_pct)).collect();
                t.kv("server threads", top.join(", "));
            }
        }
        if let Some(c) = &self.my_cpu {
            let top: Vec<String> = c.threads.iter().map(|th| format!("{} {:.0}%", th.name, th.cpu_pct)).collect();
            t.kv("generator CPU", format!("{:.0}% of one core ({})", c.cpu_pct, top.join(", ")));
        }
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The timing of a measured run: warm-up and window lengths (seconds), and how far ahead of
/// "everyone connected" the common start is.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub warmup: u64,
    pub duration: u64,
    pub lead: Duration,
}

/// The part of a multi-threaded run every scenario shares: waits until each generator thread has
/// connected (one message per thread on `ready`), sends them all a common start time, and
/// watches the warm-up and measured window from this thread. On a failed connect it joins the
/// threads and fails. Returns the start time, the window's CPU watch and the threads to join.
pub fn run_window<T>(
    ready: &Receiver<anyhow::Result<()>>,
    starts: Vec<oneshot::Sender<Instant>>,
    handles: Vec<JoinHandle<T>>,
    progress: &Progress,
    window: Window,
    pid: Option<u32>,
) -> anyhow::Result<(Instant, Watch, Vec<JoinHandle<T>>)> {
    let mut failed = None;
    for _ in 0..handles.len() {
        match ready.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                failed = Some(e);
                break;
            }
            Err(_) => {
                failed = Some(anyhow!("a generator thread ended during connect"));
                break;
            }
        }
    }
    if let Some(e) = failed {
        drop(starts);
        for h in handles {
            let _ = h.join();
        }
        return Err(e.context("connecting WebSockets"));
    }

    // All connected: a common start a little ahead, then watch the window from this thread.
    let t0 = Instant::now() + window.lead;
    progress.phase("start");
    progress.reset();
    for s in starts {
        let _ = s.send(t0);
    }
    progress.phase(if window.warmup > 0 { "warmup" } else { "run" });
    let window_start = t0 + Duration::from_secs(window.warmup);
    let window_end = window_start + Duration::from_secs(window.duration);
    let mut watch = Watch::new(pid);
    sleep_until(window_start);
    progress.phase("run");
    watch.start();
    sleep_until(window_end);
    watch.stop();
    progress.phase("drain");
    Ok((t0, watch, handles))
}

fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        std::thread::sleep(t - now);
    }
}
