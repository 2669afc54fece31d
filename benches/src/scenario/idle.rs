//! `idle`: many authenticated WebSocket sessions held open and quiet: what an idle connection
//! costs the server.
//!
//! `--sessions N` are spread over `--users U` accounts as devices: user j logs in N / U times
//! (the first N mod U users once more), one login per session since a device is a token. Set-up
//! registers the users and logs every session in over HTTP with `--setup-concurrency`; start the
//! server with a low bcrypt cost (`IM__AUTH__BCRYPT_COST=4`) so thousands of logins are quick.
//!
//! Then the ramp: every session connects to `/ws` (at most `--connect-concurrency` handshakes in
//! flight per thread, at most `--ramp-rate` per second), session i on node `i mod nodes`, bound
//! to the source address `--source-base + (i mod --source-ips)` so that ephemeral ports do not
//! cap one address. Connect latency runs from the start of the handshake to the `hello` frame.
//! After `--settle` seconds the sessions are held for `--hold` seconds doing only what an idle
//! client does: answer the server's WebSocket pings, and with `--app-ping-secs S` send an
//! application `{"type":"ping"}` every S seconds per session (spread over the period, `pong`
//! round trips timed). At the end every session must still be open.
//!
//! With `--pid` (one per node, repeated or comma-separated; figures are summed) the server's
//! resident memory is read before the ramp, after it (+ settle) and at the end; RSS per session
//! = (after ramp - before ramp) / sessions established. Server CPU is measured over the hold.
//!
//! One process may hold only as many sockets as its open-file limit allows (20,000 here), so
//! `--shard K/M` runs part K of M: shard K takes the users `K*U/M .. (K+1)*U/M` with their
//! sessions, registers only those, and keeps the global session numbers (for nodes and source
//! addresses), so M processes with the same flags never collide, whether or not they share
//! `--prefix`. Each process reports its own sessions; its RSS per session is right when the
//! shards ramp one after another (start the next once the previous one holds), and otherwise
//! compare the server's RSS before the first ramp and after the last.
//!
//! Failures (exit status 1): sessions not established (login or connect, by kind) and sessions
//! closed before the end of the hold (by close code and reason).

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::ops::Range;
use std::rc::Rc;
use std::str::FromStr;
use std::sync::{mpsc as std_mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use futures_util::stream::{self, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::oneshot;

use super::{mib, Common, Outcome, Watch};
use crate::api::{Api, User};
use crate::progress::Progress;
use crate::report::{bump, counts_inline, merge_counts, Counts, Latency, Text};
use crate::setup;
use crate::sys::{self, Memory};
use crate::ws::{self, Socket};

/// Progress counters.
const OPEN: usize = 0;
const FAILED: usize = 1;
const CLOSED: usize = 2;
const PONGS: usize = 3;

/// An app ping still unanswered this long before the end counts as unanswered.
const PONG_GRACE: Duration = Duration::from_secs(5);

/// Flags of `idle`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,
    /// WebSocket sessions, over all shards; session i connects to node i mod (number of
    /// `--nodes`).
    #[arg(long, default_value_t = 1000)]
    pub sessions: usize,
    /// Accounts the sessions belong to: each session is a login (device) of its user, user j
    /// holding sessions / users of them (the first sessions mod users users one more).
    #[arg(long, default_value_t = 100)]
    pub users: usize,
    /// Seconds to hold the sessions (server CPU is measured over this).
    #[arg(long, default_value_t = 30)]
    pub hold: u64,
    /// Seconds between the end of the ramp and the "after ramp" memory reading / the hold.
    #[arg(long, default_value_t = 2)]
    pub settle: u64,
    /// Send an application `{"type":"ping"}` on every session each N seconds (spread over the
    /// period) and time its `pong`; 0: never. WebSocket pings from the server are always
    /// answered.
    #[arg(long, default_value_t = 0)]
    pub app_ping_secs: u64,
    /// Loopback source addresses to connect from: session i binds `--source-base` + (i mod N)
    /// before it connects, so each address has its own ephemeral ports. 0: one address, the
    /// kernel's choice. The server must be on loopback.
    #[arg(long, default_value_t = 0)]
    pub source_ips: usize,
    /// The first source address of `--source-ips`.
    #[arg(long, default_value = "127.0.0.2")]
    pub source_base: Ipv4Addr,
    /// Run part K of M (`--shard K/M`, K from 0): the users K*U/M .. (K+1)*U/M and their
    /// sessions, for several generator processes against one server.
    #[arg(long)]
    pub shard: Option<ShardSpec>,
    /// Concurrent WebSocket handshakes per thread.
    #[arg(long, default_value_t = 64)]
    pub connect_concurrency: usize,
    /// Most sessions opened per second over all threads (0: as fast as the concurrency allows).
    #[arg(long, default_value_t = 0.0)]
    pub ramp_rate: f64,
    /// Generator threads (each an actix system with its share of the sessions).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
}

/// `--shard K/M`: part K (from 0) of M.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardSpec {
    pub index: usize,
    pub of: usize,
}

impl FromStr for ShardSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (k, m) = s.split_once('/').ok_or_else(|| format!("expected K/M (such as 0/4), got {s:?}"))?;
        let parse = |v: &str| v.trim().parse::<usize>().map_err(|_| format!("expected K/M with numbers, got {s:?}"));
        let (index, of) = (parse(k)?, parse(m)?);
        if of == 0 || index >= of {
            return Err(format!("K/M needs 0 <= K < M, got {s:?}"));
        }
        Ok(ShardSpec { index, of })
    }
}

impl std::fmt::Display for ShardSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.of)
    }
}

impl ShardSpec {
    /// The whole run.
    pub const ALL: ShardSpec = ShardSpec { index: 0, of: 1 };

    /// This shard's users among `users` (contiguous; the shards together cover each once).
    pub fn users(&self, users: usize) -> Range<usize> {
        self.index * users / self.of..(self.index + 1) * users / self.of
    }
}

/// Sessions of user `j` when `sessions` are spread over `users` (the first `sessions mod users`
/// users get one more).
pub fn sessions_of_user(sessions: usize, users: usize, j: usize) -> usize {
    if users == 0 {
        return 0;
    }
    sessions / users + usize::from(j < sessions % users)
}

/// Global number of user `j`'s first session (sessions are numbered user after user).
pub fn first_session(sessions: usize, users: usize, j: usize) -> usize {
    if users == 0 {
        return 0;
    }
    j * (sessions / users) + j.min(sessions % users)
}

/// The global session numbers of a shard's users, in order.
pub fn shard_sessions(sessions: usize, users: usize, shard: ShardSpec) -> Vec<(usize, usize)> {
    shard
        .users(users)
        .flat_map(|j| {
            let first = first_session(sessions, users, j);
            (first..first + sessions_of_user(sessions, users, j)).map(move |i| (i, j))
        })
        .collect()
}

/// Server memory per session in KiB: the growth from `before` to `after` over `sessions`
/// (negative when the server gave memory back; `None` without sessions).
pub fn per_session_kib(before_kib: u64, after_kib: u64, sessions: usize) -> Option<f64> {
    (sessions > 0).then(|| (after_kib as f64 - before_kib as f64) / sessions as f64)
}

/// The source address of session `i` (`None`: the kernel's choice).
fn source_of(sources: &[IpAddr], i: usize) -> Option<IpAddr> {
    (!sources.is_empty()).then(|| sources[i % sources.len()])
}

/// An error as a failure kind: its text without the username, cut short.
fn failure_kind(what: &str, e: &anyhow::Error, username: &str) -> String {
    let mut s = format!("{what}: {e:#}").replace(username, "<user>");
    if s.len() > 120 {
        let mut cut = 117;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("...");
    }
    s
}

/// The fields of a server frame this scenario reads.
#[derive(Debug, Deserialize)]
struct View<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    nonce: Option<Cow<'a, str>>,
}

/// One generator thread's frame accounting, shared by its socket readers and its ping loop.
struct State {
    /// When the unanswered app ping of each local session was sent.
    sent: Vec<Option<Instant>>,
    pings_sent: u64,
    pongs: u64,
    rtt: Latency,
    /// Frames other than matched pongs, by type.
    frames: Counts,
    undecodable: u64,
    progress: Arc<Progress>,
}

impl State {
    fn on_frame(&mut self, bytes: &[u8], at: Instant) {
        let Ok(v) = serde_json::from_slice::<View<'_>>(bytes) else {
            self.undecodable += 1;
            return;
        };
        if v.kind == "pong" {
            let slot = v.nonce.as_deref().and_then(|n| n.parse::<usize>().ok()).and_then(|j| self.sent.get_mut(j));
            if let Some(t) = slot.and_then(Option::take) {
                self.rtt.record(at.saturating_duration_since(t));
                self.pongs += 1;
                self.progress.add(PONGS, 1);
                return;
            }
            bump(&mut self.frames, "pong (unmatched)", 1);
            return;
        }
        bump(&mut self.frames, &v.kind, 1);
    }
}

/// What a generator thread is given.
struct Plan {
    /// (global session number, logged-in device of its user).
    sessions: Vec<(usize, User)>,
    nodes: Vec<String>,
    sources: Vec<IpAddr>,
    timeout: Duration,
    connect_concurrency: usize,
    /// Time between two connect starts on this thread.
    ramp_gap: Option<Duration>,
    app_ping: Option<Duration>,
    progress: Arc<Progress>,
    ramp: std_mpsc::Sender<Ramp>,
    /// Resolves (or is dropped) at the end of the hold.
    stop: oneshot::Receiver<()>,
}

/// A thread's ramp.
struct Ramp {
    established: usize,
    failed: Counts,
    connect: Latency,
    done: Instant,
}

/// A thread's end of the hold.
#[derive(Default)]
struct End {
    established: usize,
    closed: Counts,
    closed_examples: Vec<String>,
    frames: Counts,
    undecodable: u64,
    pings_sent: u64,
    pongs: u64,
    unanswered: u64,
    rtt: Latency,
}

/// Runs the scenario: set-up on this thread, the sessions on `--threads` threads.
pub fn run(args: Args) -> anyhow::Result<Outcome> {
    if args.sessions == 0 || args.users == 0 || args.sessions < args.users {
        bail!("--sessions and --users must be positive, with at least one session per user");
    }
    if args.hold == 0 {
        bail!("--hold must be positive");
    }
    if args.ramp_rate.is_nan() || args.ramp_rate < 0.0 {
        bail!("--ramp-rate must be 0 or positive");
    }
    let progress = Progress::new(&["open", "failed", "closed", "pongs"]);
    let printer = progress.spawn_printer(args.common.quiet);
    let res = run_inner(&args, &progress);
    progress.stop();
    if let Some(p) = printer {
        let _ = p.join();
    }
    res
}

/// The source addresses of `--source-ips`, all on loopback.
fn source_addresses(base: Ipv4Addr, n: usize) -> anyhow::Result<Vec<IpAddr>> {
    (0..n)
        .map(|k| {
            let ip = u32::from(base).checked_add(u32::try_from(k)?).map(Ipv4Addr::from);
            match ip {
                Some(ip) if ip.is_loopback() => Ok(IpAddr::V4(ip)),
                _ => Err(anyhow!("--source-base {base} + {k} is not a loopback address")),
            }
        })
        .collect()
}

fn read_memory(pids: &[u32]) -> Option<Memory> {
    if pids.is_empty() {
        None
    } else {
        sys::memory_sum(pids).ok()
    }
}

fn run_inner(args: &Args, progress: &Arc<Progress>) -> anyhow::Result<Outcome> {
    let c = &args.common;
    let shard = args.shard.unwrap_or(ShardSpec::ALL);
    let users = shard.users(args.users);
    if users.is_empty() {
        bail!("shard {shard} of {} users has no user", args.users);
    }
    let slots = shard_sessions(args.sessions, args.users, shard);
    let mut warnings = Vec::new();
    if let Some(limit) = sys::nofile_limit() {
        if slots.len() as u64 + 64 > limit {
            bail!(
                "{} sessions need more open files than this process may have ({limit}); split the run over \
                 several processes with --shard K/M",
                slots.len()
            );
        }
    }
    let sources = source_addresses(args.source_base, args.source_ips)?;
    if let Some(ports) = sys::ephemeral_ports() {
        let per_address = slots.len().div_ceil(sources.len().max(1));
        if per_address as u64 > ports {
            warnings.push(format!(
                "PORTS: {per_address} connections per source address, {ports} ephemeral ports: use more --source-ips"
            ));
        }
    }

    // Set-up: this shard's users, then one login (device) per session.
    let set_up = Instant::now();
    let prefix = c.prefix();
    let mut login_failed = Counts::new();
    let logged: Vec<(usize, User)> = actix_rt::System::new().block_on(async {
        let api = Api::new(&c.url, c.timeout());
        let names: Vec<String> = users.clone().map(|j| format!("{prefix}_{j}")).collect();
        progress.setup_phase("register", names.len());
        setup::bounded(names, c.setup_concurrency, |name| {
            let api = &api;
            async move {
                api.register_or_existing(&name).await?;
                progress.add(0, 1);
                Ok(())
            }
        })
        .await
        .context("registering users")?;
        progress.setup_phase("login", slots.len());
        let results: Vec<(usize, String, anyhow::Result<User>)> = stream::iter(slots.iter().copied())
            .map(|(i, j)| {
                let (api, name) = (&api, format!("{prefix}_{j}"));
                async move {
                    let res = api.login(&name).await;
                    progress.add(0, 1);
                    (i, name, res)
                }
            })
            .buffered(c.setup_concurrency.max(1))
            .collect()
            .await;
        let mut ok = Vec::with_capacity(results.len());
        for (i, name, res) in results {
            match res {
                Ok(u) => ok.push((i, u)),
                Err(e) => bump(&mut login_failed, &failure_kind("login", &e, &name), 1),
            }
        }
        anyhow::Ok(ok)
    })?;
    let setup_secs = set_up.elapsed().as_secs_f64();

    // The ramp.
    let before = read_memory(&c.pid);
    let threads = args.threads.clamp(1, logged.len().max(1));
    let mut per_thread: Vec<Vec<(usize, User)>> = vec![Vec::new(); threads];
    for (p, s) in logged.into_iter().enumerate() {
        per_thread[p % threads].push(s);
    }
    let ramp_gap = (args.ramp_rate > 0.0).then(|| Duration::from_secs_f64(threads as f64 / args.ramp_rate));
    let app_ping = (args.app_ping_secs > 0).then(|| Duration::from_secs(args.app_ping_secs));
    progress.setup_phase("connect", per_thread.iter().map(Vec::len).sum());
    let (ramp_tx, ramp_rx) = std_mpsc::channel();
    let mut stops = Vec::new();
    let mut handles = Vec::new();
    let ramp_start = Instant::now();
    for (index, sessions) in per_thread.into_iter().enumerate() {
        let (stop_tx, stop) = oneshot::channel();
        let plan = Plan {
            sessions,
            nodes: c.node_urls(),
            sources: sources.clone(),
            timeout: c.timeout(),
            connect_concurrency: args.connect_concurrency,
            ramp_gap,
            app_ping,
            progress: progress.clone(),
            ramp: ramp_tx.clone(),
            stop,
        };
        let spawned = std::thread::Builder::new()
            .name(format!("loadgen-{index}"))
            .spawn(move || actix_rt::System::new().block_on(hold_sessions(plan)));
        match spawned {
            Ok(h) => {
                stops.push(stop_tx);
                handles.push(h);
            }
            Err(e) => {
                drop(stops);
                for h in handles {
                    let _ = h.join();
                }
                return Err(anyhow!(e).context("spawning a generator thread"));
            }
        }
    }
    drop(ramp_tx);
    let mut ramp = Ramp { established: 0, failed: Counts::new(), connect: Latency::new(), done: ramp_start };
    let mut ramp_ok = true;
    for _ in 0..handles.len() {
        match ramp_rx.recv() {
            Ok(r) => {
                ramp.established += r.established;
                merge_counts(&mut ramp.failed, &r.failed);
                ramp.connect.merge(&r.connect);
                ramp.done = ramp.done.max(r.done);
            }
            Err(_) => {
                ramp_ok = false;
                break;
            }
        }
    }
    if !ramp_ok {
        drop(stops);
        let mut why = anyhow!("a generator thread ended during the ramp");
        for h in handles {
            if let Ok(Err(e)) = h.join() {
                why = e;
            }
        }
        return Err(why);
    }
    let ramp_secs = ramp.done.duration_since(ramp_start).as_secs_f64();

    // Settle, then hold.
    progress.phase("settle");
    std::thread::sleep(Duration::from_secs(args.settle));
    let after = read_memory(&c.pid);
    progress.phase("hold");
    let mut watch = Watch::new(&c.pid);
    watch.start();
    std::thread::sleep(Duration::from_secs(args.hold));
    watch.stop();
    let end_mem = read_memory(&c.pid);
    progress.phase("close");
    for s in stops {
        let _ = s.send(());
    }
    let mut end = End::default();
    for h in handles {
        let e = h.join().map_err(|_| anyhow!("a generator thread panicked"))??;
        end.established += e.established;
        merge_counts(&mut end.closed, &e.closed);
        end.closed_examples.extend(e.closed_examples);
        merge_counts(&mut end.frames, &e.frames);
        end.undecodable += e.undecodable;
        end.pings_sent += e.pings_sent;
        end.pongs += e.pongs;
        end.unanswered += e.unanswered;
        end.rtt.merge(&e.rtt);
    }
    end.closed_examples.truncate(5);
    let memory = Mem { before, after, end: end_mem };
    let run = Measured { slots: slots.len(), login_failed, setup_secs, ramp, ramp_secs, end, memory, watch };
    Ok(summarize(args, shard, users, sources.len(), &run, warnings))
}

/// One generator thread: connect its sessions, report the ramp, hold until told to stop,
/// report what is still open, close.
async fn hold_sessions(plan: Plan) -> anyhow::Result<End> {
    let Plan { sessions, nodes, sources, timeout, connect_concurrency, ramp_gap, app_ping, progress, .. } = plan;
    let mut apis: HashMap<(usize, Option<IpAddr>), Api> = HashMap::new();
    for (i, _) in &sessions {
        let key = (i % nodes.len().max(1), source_of(&sources, *i));
        if let std::collections::hash_map::Entry::Vacant(e) = apis.entry(key) {
            let base = nodes.get(key.0).ok_or_else(|| anyhow!("no node to connect to"))?;
            e.insert(Api::with_source(base, timeout, key.1));
        }
    }
    let state = Rc::new(RefCell::new(State {
        sent: vec![None; sessions.len()],
        pings_sent: 0,
        pongs: 0,
        rtt: Latency::new(),
        frames: Counts::new(),
        undecodable: 0,
        progress: progress.clone(),
    }));

    let start = Instant::now();
    let attempts: Vec<Result<(Socket, Duration), String>> = stream::iter(sessions.iter().enumerate())
        .map(|(j, (i, u))| {
            let api = apis.get(&(i % nodes.len().max(1), source_of(&sources, *i)));
            let (state, progress) = (state.clone(), progress.clone());
            async move {
                let Some(api) = api else { return Err("no client for its node".to_owned()) };
                if let Some(gap) = ramp_gap {
                    actix_rt::time::sleep_until((start + gap.saturating_mul(j as u32)).into()).await;
                }
                let t = Instant::now();
                let res = ws::connect(api, &u.token, timeout, move |b, at| state.borrow_mut().on_frame(b, at)).await;
                match res {
                    Ok((sock, id)) if id == u.id => {
                        progress.add(OPEN, 1);
                        Ok((sock, t.elapsed()))
                    }
                    Ok((sock, id)) => {
                        sock.close();
                        progress.add(FAILED, 1);
                        Err(format!("hello for user {id}, not the session's"))
                    }
                    Err(e) => {
                        progress.add(FAILED, 1);
                        Err(failure_kind("connect", &e, &u.username))
                    }
                }
            }
        })
        .buffered(connect_concurrency.max(1))
        .collect()
        .await;
    let mut ramp = Ramp { established: 0, failed: Counts::new(), connect: Latency::new(), done: Instant::now() };
    let mut sockets: Vec<Option<Socket>> = Vec::with_capacity(attempts.len());
    for a in attempts {
        match a {
            Ok((sock, took)) => {
                ramp.established += 1;
                ramp.connect.record(took);
                sockets.push(Some(sock));
            }
            Err(kind) => {
                bump(&mut ramp.failed, &kind, 1);
                sockets.push(None);
            }
        }
    }
    let established = ramp.established;
    let _ = plan.ramp.send(ramp);

    // Hold: only pongs (answered by the socket's reader) and, if asked, app pings.
    let sockets = Rc::new(sockets);
    let pinger = app_ping.map(|period| actix_rt::spawn(ping_loop(sockets.clone(), state.clone(), period)));
    let mut stop = plan.stop;
    let mut seen_closed = 0usize;
    loop {
        tokio::select! {
            _ = &mut stop => break,
            () = actix_rt::time::sleep(Duration::from_millis(500)) => {
                let closed = sockets.iter().flatten().filter(|s| s.closed().is_some()).count();
                progress.add(CLOSED, closed.saturating_sub(seen_closed) as u64);
                seen_closed = seen_closed.max(closed);
            }
        }
    }
    if let Some(p) = pinger {
        p.abort();
    }
    let now = Instant::now();
    let mut end = End { established, ..End::default() };
    for (j, s) in sockets.iter().enumerate() {
        let Some(closed) = s.as_ref().and_then(Socket::closed) else { continue };
        bump(&mut end.closed, &closed.label(), 1);
        if end.closed_examples.len() < 5 {
            let (i, u) = &sessions[j];
            let ago = now.saturating_duration_since(closed.at).as_secs_f64();
            end.closed_examples.push(format!(
                "session {i} (user {}): {} {ago:.1} s before the end",
                u.id,
                closed.label()
            ));
        }
    }
    for s in sockets.iter().flatten() {
        s.close();
    }
    {
        let mut st = state.borrow_mut();
        end.unanswered =
            st.sent.iter().flatten().filter(|t| now.saturating_duration_since(**t) > PONG_GRACE).count() as u64;
        end.pings_sent = st.pings_sent;
        end.pongs = st.pongs;
        end.rtt = std::mem::take(&mut st.rtt);
        end.frames = std::mem::take(&mut st.frames);
        end.undecodable = st.undecodable;
    }
    actix_rt::time::sleep(Duration::from_millis(200)).await;
    Ok(end)
}

/// Sends an app ping on each open session once per `period`, the sessions spread evenly over
/// the period (nonce: the session's local index).
async fn ping_loop(sockets: Rc<Vec<Option<Socket>>>, state: Rc<RefCell<State>>, period: Duration) {
    let live: Vec<usize> = sockets.iter().enumerate().filter(|(_, s)| s.is_some()).map(|(j, _)| j).collect();
    if live.is_empty() {
        return;
    }
    let gap_ns = (period.as_nanos() / live.len() as u128).max(1) as u64;
    let start = Instant::now();
    let mut k: u64 = 0;
    loop {
        actix_rt::time::sleep_until((start + Duration::from_nanos(gap_ns.saturating_mul(k))).into()).await;
        let j = live[(k % live.len() as u64) as usize];
        k += 1;
        let Some(Some(sock)) = sockets.get(j) else { continue };
        if sock.closed().is_some() {
            continue;
        }
        if sock.send_text(format!(r#"{{"type":"ping","nonce":"{j}"}}"#)) {
            let mut st = state.borrow_mut();
            st.sent[j] = Some(Instant::now());
            st.pings_sent += 1;
        }
    }
}

/// Server memory readings (summed over `--pid`s).
struct Mem {
    before: Option<Memory>,
    after: Option<Memory>,
    end: Option<Memory>,
}

/// Everything measured, for the summary.
struct Measured {
    slots: usize,
    login_failed: Counts,
    setup_secs: f64,
    ramp: Ramp,
    ramp_secs: f64,
    end: End,
    memory: Mem,
    watch: Watch,
}

fn round1(v: f64) -> f64 {
    sys::round1(v)
}

fn summarize(
    args: &Args,
    shard: ShardSpec,
    users: Range<usize>,
    sources: usize,
    m: &Measured,
    mut warnings: Vec<String>,
) -> Outcome {
    let c = &args.common;
    let established = m.ramp.established;
    let mut failed = m.login_failed.clone();
    merge_counts(&mut failed, &m.ramp.failed);
    let failed_n: u64 = failed.values().sum();
    let closed_n: u64 = m.end.closed.values().sum();
    let open_at_end = (established as u64).saturating_sub(closed_n);
    let rss = |x: &Option<Memory>| x.map(|x| x.rss_kib);
    let per_session = |to: &Option<Memory>| match (&m.memory.before, to) {
        (Some(b), Some(a)) => per_session_kib(b.rss_kib, a.rss_kib, established).map(round1),
        _ => None,
    };
    let (per_session_ramp, per_session_end) = (per_session(&m.memory.after), per_session(&m.memory.end));
    let connect = m.ramp.connect.summary();
    let rtt = m.end.rtt.summary();
    let rate = if m.ramp_secs > 0.0 { round1(established as f64 / m.ramp_secs) } else { 0.0 };
    let (server, generator) = m.watch.json();
    let json: Value = json!({
        "scenario": "idle",
        "label": c.label,
        "url": c.url,
        "nodes": c.node_urls(),
        "config": {
            "sessions": args.sessions, "users": args.users, "hold_secs": args.hold, "settle_secs": args.settle,
            "app_ping_secs": args.app_ping_secs, "source_ips": sources, "source_base": args.source_base.to_string(),
            "shard": shard.to_string(), "threads": args.threads, "connect_concurrency": args.connect_concurrency,
            "ramp_rate": args.ramp_rate,
        },
        "shard": {"index": shard.index, "of": shard.of, "users": [users.start, users.end], "sessions": m.slots},
        "setup_secs": round1(m.setup_secs),
        "counts": {
            "sessions": m.slots, "established": established, "failed": failed_n,
            "closed_during_hold": closed_n, "open_at_end": open_at_end,
        },
        "failed_by_kind": failed,
        "closed_by_reason": m.end.closed,
        "closed_examples": m.end.closed_examples,
        "ramp": {"secs": round1(m.ramp_secs), "sessions_per_sec": rate},
        "latency_ms": {"connect": connect, "app_ping": rtt},
        "app_pings": {"sent": m.end.pings_sent, "answered": m.end.pongs, "unanswered": m.end.unanswered},
        "frames_received": m.end.frames,
        "undecodable": m.end.undecodable,
        "memory_kib": {
            "before_ramp": rss(&m.memory.before),
            "after_ramp": rss(&m.memory.after),
            "end": rss(&m.memory.end),
            "peak": m.memory.end.map(|x| x.peak_rss_kib),
            "per_session_after_ramp": per_session_ramp,
            "per_session_end": per_session_end,
        },
        "hold_cpu_pct": m.watch.server_cpu_pct(),
        "setup_retries": crate::api::retries(),
        "server": server,
        "generator": generator,
    });

    let mut t = Text::new(&format!("idle{}", c.label.as_deref().map(|l| format!(" [{l}]")).unwrap_or_default()));
    t.kv("url", &c.url);
    if c.node_urls().len() > 1 {
        t.kv("nodes", c.node_urls().join(", "));
    }
    t.kv(
        "sessions",
        format!(
            "{} of {} (users {}..{} of {}), shard {shard}, {} thread(s), {} source address(es)",
            m.slots,
            args.sessions,
            users.start,
            users.end,
            args.users,
            args.threads.max(1),
            if sources == 0 { "kernel's".to_owned() } else { sources.to_string() }
        ),
    )
    .kv("set-up", format!("{:.1} s (register + {} logins)", m.setup_secs, m.slots))
    .kv("established", format!("{established} of {}", m.slots))
    .kv("failed", counts_inline(&failed))
    .kv("ramp", format!("{:.1} s ({rate} sessions/s)", m.ramp_secs))
    .kv("held", format!("{} s (after {} s settle)", args.hold, args.settle))
    .kv("closed during hold", format!("{closed_n} ({})", counts_inline(&m.end.closed)))
    .kv("open at end", open_at_end);
    let mut rows = vec![("connect (to hello)", connect)];
    if args.app_ping_secs > 0 {
        t.kv(
            "app pings",
            format!("{} sent, {} answered, {} unanswered", m.end.pings_sent, m.end.pongs, m.end.unanswered),
        );
        rows.push(("app ping -> pong", rtt));
    }
    t.kv("frames received", counts_inline(&m.end.frames));
    t.latencies(&rows);
    if !c.pid.is_empty() {
        let show = |x: &Option<Memory>| x.map_or("?".to_owned(), |x| format!("{:.1} MiB", mib(x.rss_kib)));
        t.kv(
            "server RSS",
            format!(
                "before ramp {}, after ramp {}, end {} (peak {})",
                show(&m.memory.before),
                show(&m.memory.after),
                show(&m.memory.end),
                m.memory.end.map_or("?".to_owned(), |x| format!("{:.1} MiB", mib(x.peak_rss_kib)))
            ),
        );
        let kib = |v: Option<f64>| v.map_or("?".to_owned(), |v| format!("{v:.1} KiB"));
        t.kv("RSS per session", format!("{} after ramp, {} at end", kib(per_session_ramp), kib(per_session_end)));
        t.kv("server CPU (hold)", m.watch.server_cpu_pct().map_or("?".to_owned(), |p| format!("{p:.1}% of one core")));
    }
    if let Some(g) = m.watch.generator_cpu_pct() {
        t.kv("generator CPU (hold)", format!("{g:.1}% of one core"));
    }

    let mut failures = Vec::new();
    if failed_n > 0 {
        failures.push(format!("NOT ESTABLISHED: {failed_n} of {} session(s): {}", m.slots, counts_inline(&failed)));
    }
    if closed_n > 0 {
        failures.push(format!(
            "CLOSED: {closed_n} session(s) closed before the end of the hold: {}; e.g. {}",
            counts_inline(&m.end.closed),
            m.end.closed_examples.join("; ")
        ));
    }
    let retries = crate::api::retries();
    if !retries.is_empty() {
        warnings.push(format!("SETUP RETRIES (server errors during set-up): {}", counts_inline(&retries)));
    }
    if m.end.unanswered > 0 {
        warnings.push(format!(
            "UNANSWERED: {} app ping(s) without a pong after {} s",
            m.end.unanswered,
            PONG_GRACE.as_secs()
        ));
    }
    if m.end.undecodable > 0 {
        warnings.push(format!("ODD: {} undecodable frame(s)", m.end.undecodable));
    }
    Outcome { json, text: t.render(), failures, warnings }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(s: &str) -> ShardSpec {
        match s.parse() {
            Ok(x) => x,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    #[test]
    fn shard_specs_parse() {
        assert_eq!(shard("0/1"), ShardSpec::ALL);
        assert_eq!(shard(" 2 / 4 "), ShardSpec { index: 2, of: 4 });
        assert_eq!(shard("3/4").to_string(), "3/4");
        for bad in ["", "1", "4/4", "5/4", "0/0", "a/2", "1/b", "-1/2", "1/2/3"] {
            assert!(bad.parse::<ShardSpec>().is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn sessions_spread_over_users() {
        // 10 sessions over 4 users: 3, 3, 2, 2, numbered user after user.
        let per: Vec<usize> = (0..4).map(|j| sessions_of_user(10, 4, j)).collect();
        assert_eq!(per, vec![3, 3, 2, 2]);
        let first: Vec<usize> = (0..4).map(|j| first_session(10, 4, j)).collect();
        assert_eq!(first, vec![0, 3, 6, 8]);
        assert_eq!(sessions_of_user(5000, 500, 499), 10);
        assert_eq!(first_session(5000, 500, 499), 4990);
        assert_eq!((sessions_of_user(1, 0, 0), first_session(1, 0, 0)), (0, 0));
    }

    #[test]
    fn shards_cover_every_session_once() {
        for (sessions, users, m) in [(10, 4, 3), (5000, 500, 4), (7, 7, 7), (100, 3, 2), (20000, 1000, 3)] {
            let mut all: Vec<usize> = Vec::new();
            let mut all_users: Vec<usize> = Vec::new();
            for k in 0..m {
                let s = ShardSpec { index: k, of: m };
                let part = shard_sessions(sessions, users, s);
                // Every session of a shard belongs to one of the shard's users.
                assert!(part.iter().all(|(_, j)| s.users(users).contains(j)));
                all.extend(part.iter().map(|(i, _)| *i));
                all_users.extend(s.users(users));
            }
            assert_eq!(all, (0..sessions).collect::<Vec<_>>(), "{sessions}/{users}/{m}");
            assert_eq!(all_users, (0..users).collect::<Vec<_>>());
        }
        // More shards than users: some are empty.
        assert!(ShardSpec { index: 0, of: 3 }.users(2).is_empty());
        assert_eq!(shard_sessions(4, 2, shard("1/2")), vec![(2, 1), (3, 1)]);
    }

    #[test]
    fn rss_per_session() {
        assert_eq!(per_session_kib(100_000, 150_000, 5000), Some(10.0));
        assert_eq!(per_session_kib(100_000, 100_000, 10), Some(0.0));
        assert_eq!(per_session_kib(100_000, 99_000, 100), Some(-10.0));
        assert_eq!(per_session_kib(1, 2, 0), None);
    }

    #[test]
    fn source_addresses_stay_on_loopback() -> anyhow::Result<()> {
        let v = source_addresses(Ipv4Addr::new(127, 0, 0, 2), 3)?;
        assert_eq!(v, ["127.0.0.2", "127.0.0.3", "127.0.0.4"].map(|s| s.parse::<IpAddr>().unwrap_or(v[0])));
        assert_eq!(source_of(&v, 4), Some(v[1]));
        assert_eq!(source_of(&[], 4), None);
        assert!(source_addresses(Ipv4Addr::new(127, 255, 255, 254), 3).is_err());
        assert!(source_addresses(Ipv4Addr::new(10, 0, 0, 1), 1).is_err());
        assert!(source_addresses(Ipv4Addr::new(10, 0, 0, 1), 0)?.is_empty());
        Ok(())
    }

    #[test]
    fn pongs_are_matched_by_nonce() {
        let mut st = State {
            sent: vec![None; 3],
            pings_sent: 0,
            pongs: 0,
            rtt: Latency::new(),
            frames: Counts::new(),
            undecodable: 0,
            progress: Progress::new(&["open", "failed", "closed", "pongs"]),
        };
        let t = Instant::now();
        st.sent[1] = Some(t);
        st.on_frame(br#"{"type":"pong","nonce":"1"}"#, t + Duration::from_millis(3));
        st.on_frame(br#"{"type":"pong","nonce":"1"}"#, t + Duration::from_millis(4));
        st.on_frame(br#"{"type":"pong"}"#, t);
        st.on_frame(br#"{"type":"presence","user_id":1,"online":true}"#, t);
        st.on_frame(b"not json", t);
        assert_eq!((st.pongs, st.rtt.count(), st.undecodable), (1, 1, 1));
        assert_eq!(counts_inline(&st.frames), "pong (unmatched)=2 presence=1");
        assert!(st.sent[1].is_none());
    }

    #[test]
    fn failure_kinds_hide_the_user() {
        let e = anyhow!("login lgx_12: 401 Unauthorized {{\"error\":\"bad_credentials\"}}");
        assert_eq!(
            failure_kind("login", &e, "lgx_12"),
            "login: login <user>: 401 Unauthorized {\"error\":\"bad_credentials\"}"
        );
        let long = anyhow!("{}", "é".repeat(200));
        assert!(failure_kind("connect", &long, "u").len() <= 120);
    }
}
