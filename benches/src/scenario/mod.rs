//! Scenarios, one module each. A scenario parses its own flags (with [`Common`] flattened in),
//! builds its population with [`crate::setup`], drives the server and returns an [`Outcome`]:
//! the JSON summary, the human one, and the failures that make the run exit non-zero.
//!
//! - `login`: logins per second and login latency;
//! - `direct`, `group`: open-loop message load on connected users, one measured window, or a
//!   rising series of windows with `--step` ([`StepSpec`], [`run_steps`]);
//! - `idle`: many authenticated, idle WebSocket sessions: connect latency, server memory per
//!   session and idle CPU;
//! - `search`: message search latency over a history filled through the server.
//!
//! The multi-threaded scenarios run their sockets on generator threads ([`spawn_fleet`]): each
//! thread connects its share, reports ready, then runs one measured window per [`Fleet::run`]
//! on its already connected sockets and sends back its results.
//!
//! To add one: a module here with an `Args` struct deriving `clap::Args` and a
//! `run(args) -> anyhow::Result<Outcome>`, and a variant in the binary's `Command` enum.

pub mod direct;
pub mod group;
pub mod idle;
pub mod login;
pub mod search;

use std::future::Future;
use std::str::FromStr;
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::progress::Progress;
use crate::report::{Percentiles, Text};
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
    /// resident memory (VmRSS, VmHWM) at the end are reported. With several nodes, give every
    /// node's pid (repeated or comma-separated): CPU and memory are added up.
    #[arg(long, value_delimiter = ',')]
    pub pid: Vec<u32>,
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

/// Watches the server processes (every `--pid`) and this process over the measured window.
pub struct Watch {
    pids: Vec<u32>,
    server: Vec<CpuSnapshot>,
    me: Option<CpuSnapshot>,
    server_cpu: Option<CpuUsage>,
    my_cpu: Option<CpuUsage>,
}

impl Watch {
    /// Nothing measured yet.
    pub fn new(pids: &[u32]) -> Self {
        Watch { pids: pids.to_vec(), server: Vec::new(), me: None, server_cpu: None, my_cpu: None }
    }

    /// The measured window starts.
    pub fn start(&mut self) {
        self.server = self.pids.iter().map(|p| CpuSnapshot::take(&p.to_string())).collect();
        self.me = Some(CpuSnapshot::take("self"));
    }

    /// The measured window ends.
    pub fn stop(&mut self) {
        let parts: Option<Vec<CpuUsage>> = self.server.iter().map(|s| s.usage_since(8)).collect();
        self.server_cpu = parts.and_then(|p| CpuUsage::sum(&p, 8));
        self.my_cpu = self.me.as_ref().and_then(|s| s.usage_since(4));
    }

    /// The server's CPU over the window, percent of one core (all pids together).
    pub fn server_cpu_pct(&self) -> Option<f64> {
        self.server_cpu.as_ref().map(|c| c.cpu_pct)
    }

    /// The generator's CPU over the window, percent of one core.
    pub fn generator_cpu_pct(&self) -> Option<f64> {
        self.my_cpu.as_ref().map(|c| c.cpu_pct)
    }

    /// `server` and `generator` JSON objects; memory is read now. `pid` is the first pid, `pids`
    /// all of them; memory and CPU are summed over them.
    pub fn json(&self) -> (Value, Value) {
        let server = match self.pids.first() {
            None => Value::Null,
            Some(pid) => {
                let mem = sys::memory_sum(&self.pids).ok();
                json!({
                    "pid": pid,
                    "pids": self.pids,
                    "rss_kib": mem.map(|m| m.rss_kib),
                    "peak_rss_kib": mem.map(|m| m.peak_rss_kib),
                    "cpu_pct": self.server_cpu_pct(),
                    "threads": self.server_cpu.as_ref().map(|c| c.threads.clone()),
                })
            }
        };
        let me = json!({
            "cpu_pct": self.generator_cpu_pct(),
            "threads": self.my_cpu.as_ref().map(|c| c.threads.clone()),
        });
        (server, me)
    }

    /// The same as lines of the human summary.
    pub fn text(&self, t: &mut Text) {
        if !self.pids.is_empty() {
            let of = if self.pids.len() > 1 { format!(" ({} processes)", self.pids.len()) } else { String::new() };
            match sys::memory_sum(&self.pids) {
                Ok(m) => {
                    t.kv("server RSS", format!("{:.1} MiB (peak {:.1} MiB){of}", mib(m.rss_kib), mib(m.peak_rss_kib)))
                }
                Err(e) => t.kv("server RSS", format!("unreadable: {e}")),
            };
            if let Some(c) = &self.server_cpu {
                t.kv("server CPU", format!("{:.0}% of one core{of}", c.cpu_pct));
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

/// KiB as MiB.
pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The timing of a measured run: warm-up and window lengths (seconds), how far ahead of
/// "everyone connected" the common start is, and the most a thread may take after the window
/// to report (its drain plus the counting).
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub warmup: u64,
    pub duration: u64,
    pub lead: Duration,
    pub report_within: Duration,
}

/// What a generator thread gets to talk to the main thread: `ready` once connected (or not),
/// then one run description per measured window on `runs` (closed: stop), one result per run on
/// `results`.
pub struct Link<R, T> {
    pub index: usize,
    pub ready: std_mpsc::Sender<anyhow::Result<()>>,
    pub runs: mpsc::UnboundedReceiver<R>,
    pub results: std_mpsc::Sender<(usize, anyhow::Result<T>)>,
}

impl<R, T> Link<R, T> {
    /// Tells the main thread that connecting failed, and returns the error.
    pub fn not_ready(&self, e: anyhow::Error) -> anyhow::Error {
        let _ = self.ready.send(Err(anyhow!("thread {}: {e:#}", self.index)));
        e
    }

    /// Runs `one` for every run the main thread sends, reporting each result, until the main
    /// thread stops sending or a run fails.
    pub async fn serve<F, Fut>(&mut self, mut one: F)
    where
        F: FnMut(R) -> Fut,
        Fut: Future<Output = anyhow::Result<T>>,
    {
        while let Some(run) = self.runs.recv().await {
            let res = one(run).await;
            let failed = res.is_err();
            let _ = self.results.send((self.index, res));
            if failed {
                break;
            }
        }
    }
}

/// Generator threads, each with its own actix system, connected once and then driven through
/// one or more measured windows.
pub struct Fleet<R, T> {
    ready: std_mpsc::Receiver<anyhow::Result<()>>,
    runs: Vec<mpsc::UnboundedSender<R>>,
    results: std_mpsc::Receiver<(usize, anyhow::Result<T>)>,
    handles: Vec<JoinHandle<anyhow::Result<()>>>,
}

/// Starts one generator thread per plan, running `body(plan, link)` on an actix system of its
/// own (named `loadgen-<index>`).
pub fn spawn_fleet<P, R, T, F, Fut>(plans: Vec<P>, body: F) -> anyhow::Result<Fleet<R, T>>
where
    P: Send + 'static,
    R: Send + 'static,
    T: Send + 'static,
    F: Fn(P, Link<R, T>) -> Fut + Send + Clone + 'static,
    Fut: Future<Output = anyhow::Result<()>> + 'static,
{
    let (ready_tx, ready) = std_mpsc::channel();
    let (results_tx, results) = std_mpsc::channel();
    let mut fleet = Fleet { ready, runs: Vec::new(), results, handles: Vec::new() };
    for (index, plan) in plans.into_iter().enumerate() {
        let (runs_tx, runs) = mpsc::unbounded_channel();
        let link = Link { index, ready: ready_tx.clone(), runs, results: results_tx.clone() };
        let body = body.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("loadgen-{index}"))
            .spawn(move || actix_rt::System::new().block_on(body(plan, link)));
        match spawned {
            Ok(h) => {
                fleet.runs.push(runs_tx);
                fleet.handles.push(h);
            }
            Err(e) => {
                let _ = fleet.finish();
                return Err(anyhow!(e).context("spawning a generator thread"));
            }
        }
    }
    Ok(fleet)
}

impl<R, T> Fleet<R, T> {
    /// Waits until every thread has connected; on a failed connect, stops them all and fails.
    pub fn connected(self) -> anyhow::Result<Self> {
        let mut failed = None;
        for _ in 0..self.handles.len() {
            match self.ready.recv() {
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
        match failed {
            None => Ok(self),
            Some(e) => {
                let _ = self.finish();
                Err(e.context("connecting WebSockets"))
            }
        }
    }

    /// One measured run: a common start `window.lead` from now, `make(start)` sent to every
    /// thread, the warm-up and window watched from this thread (CPU of `pids` and of this
    /// process), then one result per thread, in thread order.
    pub fn run(
        &self,
        progress: &Progress,
        window: Window,
        pids: &[u32],
        make: impl Fn(Instant) -> R,
    ) -> anyhow::Result<(Instant, Watch, Vec<T>)> {
        let t0 = Instant::now() + window.lead;
        progress.phase("start");
        progress.reset();
        for tx in &self.runs {
            tx.send(make(t0)).map_err(|_| anyhow!("a generator thread has stopped"))?;
        }
        progress.phase(if window.warmup > 0 { "warmup" } else { "run" });
        let window_start = t0 + Duration::from_secs(window.warmup);
        let window_end = window_start + Duration::from_secs(window.duration);
        let mut watch = Watch::new(pids);
        sleep_until(window_start);
        progress.phase("run");
        watch.start();
        sleep_until(window_end);
        watch.stop();
        progress.phase("drain");
        let deadline = window_end + window.report_within;
        let mut out: Vec<Option<T>> = (0..self.runs.len()).map(|_| None).collect();
        for _ in 0..self.runs.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.results.recv_timeout(left) {
                Ok((i, Ok(r))) => {
                    if let Some(slot) = out.get_mut(i) {
                        *slot = Some(r);
                    }
                }
                Ok((i, Err(e))) => return Err(e.context(format!("generator thread {i}"))),
                Err(_) => bail!("a generator thread did not report within {:?} of the window", window.report_within),
            }
        }
        let out: Vec<T> = out.into_iter().flatten().collect();
        if out.len() != self.runs.len() {
            bail!("a generator thread reported twice, another not at all");
        }
        Ok((t0, watch, out))
    }

    /// Tells the threads to stop (they close their sockets) and joins them.
    pub fn finish(self) -> anyhow::Result<()> {
        let Fleet { runs, handles, .. } = self;
        drop(runs);
        let mut first_err = None;
        for h in handles {
            let res = h.join().map_err(|_| anyhow!("a generator thread panicked")).and_then(|r| r);
            if let (Err(e), None) = (res, &first_err) {
                first_err = Some(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        std::thread::sleep(t - now);
    }
}

// ---------------------------------------------------------------------------------------------
// Step mode
// ---------------------------------------------------------------------------------------------

/// Most steps one `--step` may ask for.
pub const MAX_STEPS: usize = 100;

/// The pause between two steps (the previous step has drained; the server settles).
pub const STEP_PAUSE: Duration = Duration::from_secs(1);

/// How the rate grows from one step to the next.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Growth {
    /// `+N`: add N msg/s.
    Add(f64),
    /// `xF`: multiply by F.
    Times(f64),
}

/// `--step FROM:STEP:TO`: rates FROM, then grown by STEP (`+N` or plain `N` adds N msg/s, `xF` or
/// `*F` multiplies by F) while at most TO; TO itself is the last step when the series steps over
/// it. `1000:+1000:5000` is 1000, 2000, 3000, 4000, 5000; `1000:x2:5000` is 1000, 2000, 4000, 5000.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepSpec {
    pub from: f64,
    pub growth: Growth,
    pub to: f64,
}

impl FromStr for StepSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split(':').map(str::trim).collect();
        let [from, step, to] = parts.as_slice() else {
            return Err(format!("expected FROM:STEP:TO (such as 1000:+1000:20000 or 500:x2:16000), got {s:?}"));
        };
        let num = |what: &str, v: &str| -> Result<f64, String> {
            match v.parse::<f64>() {
                Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
                _ => Err(format!("{what} must be a positive number, got {v:?}")),
            }
        };
        let (from, to) = (num("FROM", from)?, num("TO", to)?);
        let growth = if let Some(f) = step.strip_prefix(['x', 'X', '*']) {
            let f = num("the factor", f)?;
            if f <= 1.0 {
                return Err(format!("the factor must be above 1, got {f}"));
            }
            Growth::Times(f)
        } else {
            Growth::Add(num("STEP", step.strip_prefix('+').unwrap_or(step))?)
        };
        if to < from {
            return Err(format!("TO ({to}) is below FROM ({from})"));
        }
        let spec = StepSpec { from, growth, to };
        let n = spec.rates().len();
        if n > MAX_STEPS {
            return Err(format!("{s} makes {n} steps; at most {MAX_STEPS}"));
        }
        Ok(spec)
    }
}

impl std::fmt::Display for StepSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.growth {
            Growth::Add(n) => write!(f, "{}:+{}:{}", self.from, n, self.to),
            Growth::Times(x) => write!(f, "{}:x{}:{}", self.from, x, self.to),
        }
    }
}

impl StepSpec {
    /// The rates of the steps, in order (at most `MAX_STEPS + 1`, so a too long series shows).
    pub fn rates(&self) -> Vec<f64> {
        // Rates within a millionth of TO count as TO (float steps such as 0.1 + 0.2).
        let eps = self.to * 1e-9;
        let mut out = Vec::new();
        let mut r = self.from;
        while r <= self.to + eps && out.len() <= MAX_STEPS {
            out.push(r.min(self.to));
            r = match self.growth {
                Growth::Add(n) => self.from + n * out.len() as f64,
                Growth::Times(x) => r * x,
            };
        }
        if out.last().is_some_and(|l| *l < self.to - eps) && out.len() <= MAX_STEPS {
            out.push(self.to);
        }
        out
    }
}

/// One step of a step run, as reported.
#[derive(Debug, Clone, Default)]
pub struct StepRow {
    pub step: usize,
    pub target_per_sec: f64,
    pub sent_per_sec: f64,
    pub acked_per_sec: f64,
    /// Deliveries per second (`msg` frames of our messages received by recipients).
    pub delivered_per_sec: f64,
    /// The latency the bound applies to, and its name (`ack`, `delivered_last`).
    pub bounded: (&'static str, Percentiles),
    /// Another latency shown alongside.
    pub other: (&'static str, Percentiles),
    pub lost: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
    pub unacked: u64,
    pub refused: u64,
    pub disconnects: u64,
    /// `error` frames by code (`rate_limited` refusals carry no message id, so their messages
    /// count as unacked: this says why).
    pub errors: crate::report::Counts,
    pub server_cpu_pct: Option<f64>,
    pub generator_cpu_pct: Option<f64>,
    /// Why the step did not hold (empty: it held). Set by [`StepRow::judge`].
    pub reasons: Vec<String>,
}

impl StepRow {
    /// Decides whether the step held: p99 of the bounded latency within `p99_ms`, latencies
    /// measured at all, and no lost, duplicated, out-of-order, unanswered or refused message, no
    /// `error` frame and no disconnect.
    pub fn judge(&mut self, p99_ms: f64) {
        let mut r = Vec::new();
        let (name, p) = self.bounded;
        if p.count == 0 {
            r.push(format!("no {name} latency measured"));
        } else if p.p99 > p99_ms {
            r.push(format!("{name} p99 {:.2} ms > {p99_ms} ms", p.p99));
        }
        for (n, what) in [
            (self.lost, "lost"),
            (self.duplicated, "duplicated"),
            (self.out_of_order, "out of order"),
            (self.unacked, "unacked"),
            (self.refused, "refused"),
            (self.disconnects, "disconnects"),
        ] {
            if n > 0 {
                r.push(format!("{what} {n}"));
            }
        }
        if !self.errors.is_empty() {
            r.push(format!("errors {}", crate::report::counts_inline(&self.errors)));
        }
        self.reasons = r;
    }

    /// True when [`StepRow::judge`] found nothing wrong.
    pub fn held(&self) -> bool {
        self.reasons.is_empty()
    }

    fn json(&self) -> Value {
        json!({
            "step": self.step,
            "target_per_sec": self.target_per_sec,
            "sent_per_sec": self.sent_per_sec,
            "acked_per_sec": self.acked_per_sec,
            "delivered_per_sec": self.delivered_per_sec,
            "latency_ms": {self.bounded.0: self.bounded.1, self.other.0: self.other.1},
            "lost": self.lost, "duplicated": self.duplicated, "out_of_order": self.out_of_order,
            "unacked": self.unacked, "refused": self.refused, "disconnects": self.disconnects,
            "errors": self.errors,
            "server_cpu_pct": self.server_cpu_pct,
            "generator_cpu_pct": self.generator_cpu_pct,
            "held": self.held(),
            "reasons": self.reasons,
        })
    }
}

/// Runs `one(step, rate)` for each rate of `spec`, judging each row against `p99_ms`, until a
/// step does not hold (that step is the last row), pausing `pause` between steps. A progress
/// note per step goes to stderr unless `quiet`.
pub fn run_steps(
    spec: &StepSpec,
    p99_ms: f64,
    pause: Duration,
    quiet: bool,
    mut one: impl FnMut(usize, f64) -> anyhow::Result<StepRow>,
) -> anyhow::Result<Vec<StepRow>> {
    let mut rows: Vec<StepRow> = Vec::new();
    for (i, rate) in spec.rates().into_iter().enumerate() {
        if i > 0 {
            std::thread::sleep(pause);
        }
        let mut row = one(i, rate).with_context(|| format!("step {i} ({rate} msg/s)"))?;
        row.step = i;
        row.target_per_sec = rate;
        row.judge(p99_ms);
        if !quiet {
            eprintln!(
                "step {i}: {rate} msg/s -> {} p99 {:.2} ms: {}",
                row.bounded.0,
                row.bounded.1.p99,
                if row.held() { "held".to_owned() } else { format!("did not hold ({})", row.reasons.join(", ")) }
            );
        }
        let held = row.held();
        rows.push(row);
        if !held {
            break;
        }
    }
    Ok(rows)
}

/// The highest rate of the steps that held (they hold in a row from the first: the run stops at
/// the first that does not).
pub fn highest_held(rows: &[StepRow]) -> Option<f64> {
    rows.iter().take_while(|r| r.held()).map(|r| r.target_per_sec).last()
}

/// The outcome of a step run: a table of the steps, the highest rate that held, and failures for
/// lost, duplicated or out-of-order messages (correctness, not capacity). `base` is the JSON
/// summary to extend (scenario, config, ...); `watch` is the last step's.
pub fn step_outcome(
    title: &str,
    mut base: Value,
    spec: &StepSpec,
    p99_ms: f64,
    rows: &[StepRow],
    watch: Option<&Watch>,
    mut warnings: Vec<String>,
) -> Outcome {
    let best = highest_held(rows);
    let stopped = match rows.last() {
        Some(r) if !r.held() => format!("step {} ({} msg/s): {}", r.step, r.target_per_sec, r.reasons.join(", ")),
        Some(_) => "every step held".to_owned(),
        None => "no step ran".to_owned(),
    };
    let (server, generator) = watch.map(Watch::json).unwrap_or((Value::Null, Value::Null));
    if let Some(obj) = base.as_object_mut() {
        obj.insert("mode".into(), "step".into());
        obj.insert("step".into(), json!({"spec": spec.to_string(), "p99_bound_ms": p99_ms}));
        obj.insert("steps".into(), rows.iter().map(StepRow::json).collect::<Vec<_>>().into());
        obj.insert("highest_held_rate".into(), best.into());
        obj.insert("stopped".into(), stopped.clone().into());
        obj.insert("setup_retries".into(), json!(crate::api::retries()));
        obj.insert("server".into(), server);
        obj.insert("generator".into(), generator);
    }
    let mut t = Text::new(title);
    let bounded = rows.first().map_or("latency", |r| r.bounded.0);
    let other = rows.first().map_or("other", |r| r.other.0);
    t.kv("steps", format!("{spec} msg/s, bound: {bounded} p99 <= {p99_ms} ms"));
    t.line(format!(
        "{:>4} {:>10} {:>10} {:>10} {:>12} {:>9} {:>9} {:>9} {:>9} {:>7} {:>5} {:>7}  result",
        "step",
        "target/s",
        "sent/s",
        "acked/s",
        "delivered/s",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "p99 oth",
        "lost",
        "dup",
        "cpu %"
    ));
    for r in rows {
        let p = r.bounded.1;
        t.line(format!(
            "{:>4} {:>10} {:>10} {:>10} {:>12} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>7} {:>5} {:>7}  {}",
            r.step,
            r.target_per_sec,
            r.sent_per_sec,
            r.acked_per_sec,
            r.delivered_per_sec,
            p.p50,
            p.p99,
            p.p999,
            r.other.1.p99,
            r.lost,
            r.duplicated,
            r.server_cpu_pct.map_or("-".to_owned(), |c| format!("{c:.0}")),
            if r.held() { "held".to_owned() } else { r.reasons.join(", ") }
        ));
    }
    t.line(format!("(p50/p99/p99.9: {bounded}; p99 oth: {other}; cpu: server, % of one core)"));
    t.kv("highest rate held", best.map_or("none".to_owned(), |b| format!("{b} msg/s")));
    t.kv("stopped", &stopped);
    if let Some(w) = watch {
        w.text(&mut t);
    }
    let mut failures = Vec::new();
    for r in rows {
        let at = format!("at step {} ({} msg/s)", r.step, r.target_per_sec);
        if r.lost > 0 {
            failures.push(format!("LOST: {} message(s) acked but not delivered to every recipient {at}", r.lost));
        }
        if r.duplicated > 0 {
            failures.push(format!("DUPLICATED: {} message(s) delivered more than once {at}", r.duplicated));
        }
        if r.out_of_order > 0 {
            failures.push(format!("OUT OF ORDER: {} message(s) {at}", r.out_of_order));
        }
    }
    let retries = crate::api::retries();
    if !retries.is_empty() {
        warnings
            .push(format!("SETUP RETRIES (server errors during set-up): {}", crate::report::counts_inline(&retries)));
    }
    Outcome { json: base, text: t.render(), failures, warnings }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rates(s: &str) -> Vec<f64> {
        match s.parse::<StepSpec>() {
            Ok(spec) => spec.rates(),
            Err(e) => panic!("{s}: {e}"),
        }
    }

    #[test]
    fn step_specs_parse_into_rates() {
        assert_eq!(rates("1000:+1000:5000"), vec![1000.0, 2000.0, 3000.0, 4000.0, 5000.0]);
        assert_eq!(rates("1000:1000:4500"), vec![1000.0, 2000.0, 3000.0, 4000.0, 4500.0]);
        assert_eq!(rates("1000:x2:5000"), vec![1000.0, 2000.0, 4000.0, 5000.0]);
        assert_eq!(rates("500:*2:4000"), vec![500.0, 1000.0, 2000.0, 4000.0]);
        assert_eq!(rates("100:x1.5:100"), vec![100.0]);
        assert_eq!(rates(" 0.5 : +0.5 : 1.5 "), vec![0.5, 1.0, 1.5]);
        // Float steps do not add a near-duplicate last step.
        assert_eq!(rates("0.1:+0.1:0.3").len(), 3);
        let Ok(spec) = "1000:x1.5:20000".parse::<StepSpec>() else { panic!("valid spec") };
        assert_eq!(spec.to_string(), "1000:x1.5:20000");
        assert_eq!(spec.rates().last(), Some(&20000.0));
    }

    #[test]
    fn bad_step_specs_are_refused() {
        for bad in [
            "1000",
            "1000:2000",
            "1:2:3:4",
            "a:+1:3",
            "0:+1:3",
            "-5:+1:3",
            "10:+0:30",
            "10:x1:30",
            "10:x0.5:30",
            "30:+1:10",
            "1:+1:1000",
            "10:+1:inf",
            "10:y2:30",
        ] {
            assert!(bad.parse::<StepSpec>().is_err(), "{bad} should be refused");
        }
        assert!("1:+1:100".parse::<StepSpec>().is_ok());
    }

    fn row(p99: f64, count: u64) -> StepRow {
        StepRow {
            bounded: ("ack", Percentiles { count, p99, ..Percentiles::default() }),
            other: ("delivered", Percentiles::default()),
            ..StepRow::default()
        }
    }

    #[test]
    fn steps_hold_within_the_bound_and_without_anomalies() {
        let mut r = row(9.5, 100);
        r.judge(10.0);
        assert!(r.held(), "{:?}", r.reasons);
        let mut r = row(10.5, 100);
        r.judge(10.0);
        assert_eq!(r.reasons, vec!["ack p99 10.50 ms > 10 ms".to_owned()]);
        let mut r = row(1.0, 0);
        r.judge(10.0);
        assert!(!r.held());
        let mut r = StepRow { lost: 2, duplicated: 1, disconnects: 3, ..row(1.0, 10) };
        crate::report::bump(&mut r.errors, "rate_limited", 4);
        r.judge(10.0);
        assert_eq!(r.reasons, vec!["lost 2", "duplicated 1", "disconnects 3", "errors rate_limited=4"]);
    }

    #[test]
    fn steps_stop_at_the_first_that_does_not_hold() -> anyhow::Result<()> {
        let spec: StepSpec = "100:+100:500".parse().map_err(|e: String| anyhow!(e))?;
        // p99 grows with the rate: 2 ms per 100 msg/s; bound 7 ms: 100..300 hold, 400 does not.
        let mut calls = Vec::new();
        let rows = run_steps(&spec, 7.0, Duration::ZERO, true, |i, rate| {
            calls.push((i, rate));
            Ok(row(rate / 50.0, 10))
        })?;
        assert_eq!(calls, vec![(0, 100.0), (1, 200.0), (2, 300.0), (3, 400.0)]);
        assert_eq!(rows.len(), 4);
        assert_eq!(highest_held(&rows), Some(300.0));
        let o = step_outcome("t", json!({}), &spec, 7.0, &rows, None, Vec::new());
        assert_eq!(o.json["highest_held_rate"], json!(300.0));
        assert_eq!(o.json["steps"][3]["held"], json!(false));
        assert!(o.failures.is_empty());
        assert!(o.text.contains("highest rate held") && o.text.contains("300 msg/s"), "{}", o.text);
        let none = [row(20.0, 10)].map(|mut r| {
            r.judge(7.0);
            r
        });
        assert_eq!(highest_held(&none), None);
        Ok(())
    }
}
