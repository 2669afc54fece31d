//! `group`: group chat fan-out under an open-loop load.
//!
//! G groups of S members each (the first member creates the group and an invite link, the others
//! join through the link), one WebSocket per member; a member is in one group only. The first K
//! members of each group are its senders. A scheduler sends message k at its intended time
//! `t0 + k / R` to group `k mod G`, from its sender `(k / G) mod K`, whether or not earlier
//! messages were answered (no coordinated omission); latencies are measured from the intended time.
//!
//! Every message should reach the S - 1 other members (one device each; the sending device gets
//! the `ack` only). Memory stays bounded with many members: per message the generator keeps a
//! received count and the first and last arrival times, not per-member lists; per member it keeps
//! the last seq seen plus a 64-seq bitmap below it (a member receives a group's messages in seq
//! order), which tells a duplicate (seq seen before) from a late, out-of-order delivery (a seq
//! below the last one, not seen before). A copy that comes back more than 64 seqs late cannot be
//! told from a duplicate by the bitmap; it then shows up as a message received more than S - 1
//! times, which is counted as duplicated too.
//!
//! Counted: send->ack latency (sender's socket) and send->delivered-to-the-last-recipient latency
//! (messages that reached every member), deliveries/s (`msg` frames of our messages received by
//! all members during the window), lost = acked but not delivered to every member by the end of
//! the drain (with the number of missing (message, member) deliveries), duplicated, out of order.
//! System messages (`kind: "system"`) are ignored.
//!
//! With `--threads T` the members are spread over T generator threads (member i on thread
//! i mod T), each with its own actix system, sockets and share of the senders; per-message counts
//! are summed at the end and arrival times combined (min first, max last).
//!
//! With `--step FROM:STEP:TO` the same connected members run one window per rate (warm-up,
//! window and drain each, message ids unique per step) until a step does not hold: p99 of
//! send->delivered to the last member above `--step-p99-ms`, or any lost, duplicated,
//! out-of-order, refused or unanswered message, an `error` frame, or a closed socket. The
//! summary is a table of the steps and the highest rate that held; lost, duplicated or
//! out-of-order messages still fail the run. Each sender socket sends rate / (groups x senders)
//! msg/s: mind the server's per-session frame limit (`ws.frames_per_sec`).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use schema::protocol::ClientFrame;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{
    run_steps, spawn_fleet, step_outcome, Common, Link, Outcome, StepRow, StepSpec, Watch, Window, STEP_PAUSE,
};
use crate::api::{Api, Group, User};
use crate::progress::Progress;
use crate::report::{bump, counts_inline, merge_counts, per_sec, Counts, Latency, Text};
use crate::setup;
use crate::ws::{self, Socket};

/// Placeholder for the client id in a pre-encoded `send` frame.
const ID_SLOT: &str = "@ID@";

/// Progress counters.
const SENT: usize = 0;
const ACKED: usize = 1;
const DELIVERED: usize = 2;
const ERRORS: usize = 3;

/// Message status bits, shared by all generator threads.
const ST_SENT: u8 = 1;
const ST_NOT_SENT: u8 = 2;
const ST_ACKED: u8 = 4;
const ST_ERRORED: u8 = 8;

/// Per-message anomaly flags (per thread, or-ed together at the end).
const FL_DUP: u8 = 1;
const FL_LATE: u8 = 2;

/// Flags of `group`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,
    /// Groups.
    #[arg(long, default_value_t = 1)]
    pub groups: usize,
    /// Members per group (owner included), one WebSocket each.
    #[arg(long, default_value_t = 100)]
    pub members: usize,
    /// Senders per group (its first K members).
    #[arg(long, default_value_t = 1)]
    pub senders: usize,
    /// Target total send rate, messages per second, over all groups (each message is delivered
    /// to members - 1 sockets).
    #[arg(long, default_value_t = 50.0)]
    pub rate: f64,
    /// Measured seconds.
    #[arg(long, default_value_t = 15)]
    pub duration: u64,
    /// Seconds of sending at the same rate before the measured window (checked for loss, not
    /// measured).
    #[arg(long, default_value_t = 2)]
    pub warmup: u64,
    /// Most seconds to wait after the last send for outstanding acks and deliveries.
    #[arg(long, default_value_t = 15)]
    pub drain: u64,
    /// Generator threads (each an actix system with its share of the members).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Message body length in bytes.
    #[arg(long, default_value_t = 64)]
    pub body_bytes: usize,
    /// Concurrent WebSocket handshakes per thread.
    #[arg(long, default_value_t = 32)]
    pub connect_concurrency: usize,
    /// Step mode: successive windows at rising total send rates on the same connected members,
    /// `FROM:STEP:TO` msg/s (`10:+10:200` adds 10 a step, `10:x2:640` doubles; TO is the last
    /// step), each `--warmup` + `--duration` s, until the p99 of send->delivered to the last
    /// member exceeds `--step-p99-ms` or a message is lost, duplicated, out of order, refused or
    /// unanswered, an `error` frame comes back, or a socket is closed. `--rate` is then unused.
    #[arg(long)]
    pub step: Option<StepSpec>,
    /// Step mode: the bound on the p99 of send->delivered to the last member, milliseconds.
    #[arg(long, default_value_t = 50.0)]
    pub step_p99_ms: f64,
}

/// Who is where: members, senders, messages, threads.
#[derive(Debug, Clone, Copy)]
struct Layout {
    groups: usize,
    members: usize,
    senders: usize,
    threads: usize,
    rate: f64,
    /// Messages in the whole run (warm-up included).
    total: usize,
}

impl Layout {
    fn group_of_msg(&self, k: usize) -> usize {
        k % self.groups
    }

    /// Global member index of message `k`'s sender.
    fn sender(&self, k: usize) -> usize {
        let g = self.group_of_msg(k);
        g * self.members + (k / self.groups) % self.senders
    }

    fn group_of_member(&self, i: usize) -> usize {
        i / self.members
    }

    fn thread_of(&self, i: usize) -> usize {
        i % self.threads
    }

    /// Deliveries each message should get.
    fn expected(&self) -> u32 {
        (self.members - 1) as u32
    }

    /// Intended send time of message `k` after `t0`.
    fn due(&self, k: usize) -> Duration {
        Duration::from_nanos((k as f64 * 1e9 / self.rate) as u64)
    }
}

/// The fields of a server frame this scenario reads.
#[derive(Debug, Deserialize)]
struct View<'a> {
    #[serde(rename = "type", borrow)]
    frame: std::borrow::Cow<'a, str>,
    #[serde(default, borrow)]
    id: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    seq: Option<i64>,
    /// The message kind of a `msg` frame (`text`, `system`).
    #[serde(default, borrow)]
    kind: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    code: Option<std::borrow::Cow<'a, str>>,
}

/// Where a seq falls for a member: the last seq seen and a bitmap of the 64 seqs up to it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct SeqWindow {
    last: i64,
    /// Bit d set: seq `last - d` was received.
    seen: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SeqCheck {
    /// Above every seq seen so far.
    InOrder,
    /// Seen before.
    Duplicate,
    /// Below the last seq, not seen before (within the window), or too old to tell.
    Late,
}

impl SeqWindow {
    fn check(&mut self, seq: i64) -> SeqCheck {
        if seq > self.last {
            let shift = seq - self.last;
            self.seen = if shift >= 64 { 0 } else { self.seen << shift };
            self.seen |= 1;
            self.last = seq;
            return SeqCheck::InOrder;
        }
        let d = self.last - seq;
        if d >= 64 {
            return SeqCheck::Late;
        }
        let bit = 1u64 << d;
        if self.seen & bit != 0 {
            SeqCheck::Duplicate
        } else {
            self.seen |= bit;
            SeqCheck::Late
        }
    }
}

/// One member socket on a generator thread.
#[derive(Debug, Clone)]
struct Member {
    /// Global member index.
    index: usize,
    user_id: i64,
    seqs: SeqWindow,
    /// Our messages received (first copies, including late ones).
    received: u32,
    duplicates: u32,
    late: u32,
    last_frame: Option<Instant>,
}

/// One generator thread's state, shared by its scheduler and socket readers.
struct Shard {
    prefix: String,
    layout: Layout,
    index: usize,
    t0: Instant,
    warmup_us: u64,
    window: (Instant, Instant),
    status: Arc<Vec<AtomicU8>>,
    /// Per message (global): deliveries on this thread's sockets, first and last arrival
    /// (microseconds after `t0`), anomaly flags.
    count: Vec<u32>,
    first_us: Vec<u32>,
    last_us: Vec<u32>,
    flags: Vec<u8>,
    members: Vec<Member>,
    /// Members of each group on this thread.
    local_members: Vec<u32>,
    ack: Latency,
    acks_in_window: u64,
    deliveries_in_window: u64,
    dup_acks: u64,
    misrouted: u64,
    foreign: u64,
    self_copies: u64,
    system: u64,
    undecodable: u64,
    errors: Counts,
    progress: Arc<Progress>,
}

impl Shard {
    fn msg_index(&self, id: Option<&str>) -> Option<usize> {
        let k: usize = id?.strip_prefix(self.prefix.as_str())?.parse().ok()?;
        (k < self.layout.total).then_some(k)
    }

    fn in_window(&self, at: Instant) -> bool {
        at >= self.window.0 && at < self.window.1
    }

    fn since_t0_us(&self, at: Instant) -> u32 {
        u32::try_from(at.saturating_duration_since(self.t0).as_micros()).unwrap_or(u32::MAX)
    }

    /// A text frame arrived on local member socket `j` at `at`.
    fn on_frame(&mut self, j: usize, bytes: &[u8], at: Instant) {
        if let Some(m) = self.members.get_mut(j) {
            m.last_frame = Some(at);
        }
        let Ok(v) = serde_json::from_slice::<View<'_>>(bytes) else {
            self.undecodable += 1;
            return;
        };
        match v.frame.as_ref() {
            "ack" => self.on_ack(j, v.id.as_deref(), at),
            "msg" => self.on_msg(j, &v, at),
            "error" => {
                bump(&mut self.errors, v.code.as_deref().unwrap_or("?"), 1);
                self.progress.add(ERRORS, 1);
                if let Some(k) = self.msg_index(v.id.as_deref()) {
                    self.status[k].fetch_or(ST_ERRORED, Ordering::Relaxed);
                }
            }
            // hello, presence, pong, read marks, events: not measured.
            _ => {}
        }
    }

    fn on_ack(&mut self, j: usize, id: Option<&str>, at: Instant) {
        let Some(k) = self.msg_index(id) else {
            self.misrouted += 1;
            return;
        };
        if self.layout.sender(k) != self.members[j].index {
            self.misrouted += 1;
            return;
        }
        if self.status[k].fetch_or(ST_ACKED, Ordering::Relaxed) & ST_ACKED != 0 {
            self.dup_acks += 1;
            return;
        }
        let due = self.layout.due(k);
        if due.as_micros() as u64 >= self.warmup_us {
            self.ack.record(at.saturating_duration_since(self.t0 + due));
        }
        if self.in_window(at) {
            self.acks_in_window += 1;
        }
        self.progress.add(ACKED, 1);
    }

    fn on_msg(&mut self, j: usize, v: &View<'_>, at: Instant) {
        let check = v.seq.map(|s| self.members[j].seqs.check(s));
        if v.kind.as_deref() == Some("system") {
            self.system += 1;
            return;
        }
        let Some(k) = self.msg_index(v.id.as_deref()) else {
            self.foreign += 1;
            return;
        };
        let me = self.members[j].index;
        if self.layout.group_of_msg(k) != self.layout.group_of_member(me) {
            self.misrouted += 1;
            return;
        }
        if self.layout.sender(k) == me {
            self.self_copies += 1;
            return;
        }
        match check {
            Some(SeqCheck::Duplicate) => {
                self.members[j].duplicates += 1;
                self.flags[k] |= FL_DUP;
                return;
            }
            Some(SeqCheck::Late) => {
                self.members[j].late += 1;
                self.flags[k] |= FL_LATE;
            }
            Some(SeqCheck::InOrder) => {}
            None => self.undecodable += 1,
        }
        self.members[j].received += 1;
        let us = self.since_t0_us(at);
        if self.count[k] == 0 {
            self.first_us[k] = us;
        }
        self.first_us[k] = self.first_us[k].min(us);
        self.last_us[k] = self.last_us[k].max(us);
        self.count[k] += 1;
        if self.in_window(at) {
            self.deliveries_in_window += 1;
        }
        self.progress.add(DELIVERED, 1);
    }

    /// Deliveries message `k` should get on this thread.
    fn local_expected(&self, k: usize) -> u32 {
        let l = &self.layout;
        let own = u32::from(l.thread_of(l.sender(k)) == self.index);
        self.local_members[l.group_of_msg(k)].saturating_sub(own)
    }

    /// Starts a run: message ids `{prefix}{k}` for the messages of `layout`, common start `t0`;
    /// per-message state and per-run counts are reset (each member's seq window carries over).
    fn begin(
        &mut self,
        prefix: &str,
        layout: Layout,
        status: Arc<Vec<AtomicU8>>,
        t0: Instant,
        warmup: Duration,
        duration: Duration,
    ) {
        prefix.clone_into(&mut self.prefix);
        self.layout = layout;
        self.status = status;
        self.t0 = t0;
        self.warmup_us = warmup.as_micros() as u64;
        self.window = (t0 + warmup, t0 + warmup + duration);
        self.count = vec![0; layout.total];
        self.first_us = vec![0; layout.total];
        self.last_us = vec![0; layout.total];
        self.flags = vec![0; layout.total];
        for m in &mut self.members {
            m.received = 0;
            m.duplicates = 0;
            m.late = 0;
        }
        self.ack = Latency::new();
        self.acks_in_window = 0;
        self.deliveries_in_window = 0;
        self.dup_acks = 0;
        self.misrouted = 0;
        self.foreign = 0;
        self.self_copies = 0;
        self.system = 0;
        self.undecodable = 0;
        self.errors.clear();
    }

    /// Advances `from` past every settled message (refused, not sent, or acked and delivered to
    /// every member on this thread); true when all are.
    fn settle(&self, from: &mut usize) -> bool {
        while *from < self.layout.total {
            let k = *from;
            let st = self.status[k].load(Ordering::Relaxed);
            let done =
                st & (ST_ERRORED | ST_NOT_SENT) != 0 || (st & ST_ACKED != 0 && self.count[k] >= self.local_expected(k));
            if !done {
                return false;
            }
            *from += 1;
        }
        true
    }
}

/// What one member ended up with.
#[derive(Debug, Clone)]
struct MemberEnd {
    index: usize,
    user_id: i64,
    received: u32,
    duplicates: u32,
    late: u32,
    last_frame: Option<Instant>,
    closed: Option<String>,
}

/// One thread's results, merged by the main thread.
#[derive(Debug, Default)]
struct ShardResult {
    count: Vec<u32>,
    first_us: Vec<u32>,
    last_us: Vec<u32>,
    flags: Vec<u8>,
    members: Vec<MemberEnd>,
    ack: Latency,
    acks_in_window: u64,
    deliveries_in_window: u64,
    sent_in_window: u64,
    dup_acks: u64,
    misrouted: u64,
    foreign: u64,
    self_copies: u64,
    system: u64,
    undecodable: u64,
    errors: Counts,
    disconnects: Counts,
    max_lag: Duration,
    drain: Duration,
}

impl ShardResult {
    fn merge(&mut self, o: ShardResult) {
        if self.count.is_empty() {
            self.count = o.count;
            self.first_us = o.first_us;
            self.last_us = o.last_us;
            self.flags = o.flags;
        } else {
            for k in 0..self.count.len().min(o.count.len()) {
                match (self.count[k], o.count[k]) {
                    (_, 0) => {}
                    (0, _) => {
                        self.first_us[k] = o.first_us[k];
                        self.last_us[k] = o.last_us[k];
                    }
                    _ => {
                        self.first_us[k] = self.first_us[k].min(o.first_us[k]);
                        self.last_us[k] = self.last_us[k].max(o.last_us[k]);
                    }
                }
                self.count[k] += o.count[k];
                self.flags[k] |= o.flags[k];
            }
        }
        self.members.extend(o.members);
        self.ack.merge(&o.ack);
        self.acks_in_window += o.acks_in_window;
        self.deliveries_in_window += o.deliveries_in_window;
        self.sent_in_window += o.sent_in_window;
        self.dup_acks += o.dup_acks;
        self.misrouted += o.misrouted;
        self.foreign += o.foreign;
        self.self_copies += o.self_copies;
        self.system += o.system;
        self.undecodable += o.undecodable;
        merge_counts(&mut self.errors, &o.errors);
        merge_counts(&mut self.disconnects, &o.disconnects);
        self.max_lag = self.max_lag.max(o.max_lag);
        self.drain = self.drain.max(o.drain);
    }
}

/// Everything a generator thread needs.
struct Plan {
    /// Members connect to `nodes[global index % nodes.len()]`.
    nodes: Vec<String>,
    timeout: Duration,
    /// This thread's members: (global index, user).
    members: Vec<(usize, User)>,
    /// The conversation of each group.
    convs: Vec<schema::ConvId>,
    /// Who is where (the rate and message count come with each [`Run`]).
    layout: Layout,
    warmup: Duration,
    duration: Duration,
    drain: Duration,
    body: String,
    connect_concurrency: usize,
    progress: Arc<Progress>,
}

/// One measured run, sent to every generator thread.
#[derive(Clone)]
struct Run {
    /// The common start.
    t0: Instant,
    /// Step number (0 in the single-run mode); message ids are `gl-<k>`, `gl<s>-<k>` in step s > 0.
    step: usize,
    /// The layout with this run's rate and message count.
    layout: Layout,
    /// Status of each message of the run, shared by all threads.
    status: Arc<Vec<AtomicU8>>,
}

/// Runs the scenario: set-up on this thread, the load on `--threads` threads.
pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let c = args.common.clone();
    if args.groups == 0 || args.members < 2 || args.rate.is_nan() || args.rate <= 0.0 || args.duration == 0 {
        return Err(anyhow!("--groups, --rate and --duration must be positive and --members at least 2"));
    }
    if args.senders == 0 || args.senders > args.members {
        return Err(anyhow!("--senders must be 1..=--members"));
    }
    let progress = Progress::new(&["sent", "acked", "delivered", "errors"]);
    let printer = progress.spawn_printer(c.quiet);
    let res = run_inner(&args, &progress);
    progress.stop();
    if let Some(p) = printer {
        let _ = p.join();
    }
    res
}

fn run_inner(args: &Args, progress: &Arc<Progress>) -> anyhow::Result<Outcome> {
    let c = &args.common;
    let n = args.groups * args.members;
    let set_up = Instant::now();
    let prefix = c.prefix();
    let groups: Vec<(Group, Vec<User>)> = actix_rt::System::new().block_on(async {
        let api = Api::new(&c.url, c.timeout());
        let users = setup::users(&api, &prefix, n, c.setup_concurrency, progress).await?;
        setup::groups_by_invite(&api, &prefix, users, args.members, c.setup_concurrency, progress).await
    })?;
    let setup_secs = set_up.elapsed().as_secs_f64();

    let threads = args.threads.clamp(1, n);
    let base = Layout {
        groups: args.groups,
        members: args.members,
        senders: args.senders,
        threads,
        rate: args.rate,
        total: 0,
    };
    let layout_at =
        |rate: f64| Layout { rate, total: ((args.warmup + args.duration) as f64 * rate).round() as usize, ..base };
    let new_status = |total: usize| -> Arc<Vec<AtomicU8>> { Arc::new((0..total).map(|_| AtomicU8::new(0)).collect()) };
    let convs: Vec<schema::ConvId> = groups.iter().map(|(g, _)| g.conv.clone()).collect();
    let mut shards: Vec<Vec<(usize, User)>> = vec![Vec::new(); threads];
    for (i, u) in groups.into_iter().flat_map(|(_, us)| us).enumerate() {
        shards[base.thread_of(i)].push((i, u));
    }
    progress.setup_phase("connect", n);
    let body: String = "x".repeat(args.body_bytes.max(1));
    let plans: Vec<Plan> = shards
        .into_iter()
        .map(|members| Plan {
            nodes: c.node_urls(),
            timeout: c.timeout(),
            members,
            convs: convs.clone(),
            layout: base,
            warmup: Duration::from_secs(args.warmup),
            duration: Duration::from_secs(args.duration),
            drain: Duration::from_secs(args.drain),
            body: body.clone(),
            connect_concurrency: args.connect_concurrency,
            progress: progress.clone(),
        })
        .collect();
    let fleet = spawn_fleet(plans, shard)?.connected()?;
    let window = Window {
        warmup: args.warmup,
        duration: args.duration,
        lead: Duration::from_millis(300),
        report_within: Duration::from_secs(args.drain + 30),
    };
    let merged = |results: Vec<ShardResult>| {
        let mut total = ShardResult::default();
        for r in results {
            total.merge(r);
        }
        total
    };
    match args.step {
        None => {
            let layout = layout_at(args.rate);
            let status = new_status(layout.total);
            let res = fleet.run(progress, window, &c.pid, |t0| Run { t0, step: 0, layout, status: status.clone() });
            let finished = fleet.finish();
            let (t0, watch, results) = res?;
            finished?;
            let total = merged(results);
            let tally = tally(&layout, &status, &total, args.warmup, t0);
            Ok(summarize(args, &layout, &total, &tally, &watch, setup_secs))
        }
        Some(spec) => {
            let mut last_watch = None;
            let rows = run_steps(&spec, args.step_p99_ms, STEP_PAUSE, c.quiet, |step, rate| {
                let layout = layout_at(rate);
                if layout.total == 0 {
                    return Err(anyhow!("{rate} msg/s sends no message in {} s", args.warmup + args.duration));
                }
                let status = new_status(layout.total);
                let (t0, watch, results) =
                    fleet.run(progress, window, &c.pid, |t0| Run { t0, step, layout, status: status.clone() })?;
                let total = merged(results);
                let tally = tally(&layout, &status, &total, args.warmup, t0);
                let row = step_row(&total, &tally, args.duration as f64, &watch);
                last_watch = Some(watch);
                Ok(row)
            });
            let finished = fleet.finish();
            let rows = rows?;
            finished?;
            let base = json!({
                "scenario": "group",
                "label": c.label,
                "url": c.url,
                "nodes": c.node_urls(),
                "config": config_json(args, threads),
                "setup_secs": (setup_secs * 10.0).round() / 10.0,
            });
            let title = format!("group steps{}", c.label.as_deref().map(|l| format!(" [{l}]")).unwrap_or_default());
            Ok(step_outcome(&title, base, &spec, args.step_p99_ms, &rows, last_watch.as_ref(), Vec::new()))
        }
    }
}

/// One step's row of the step table: the bound is on send->delivered to the last member.
fn step_row(r: &ShardResult, t: &Tally, secs: f64, watch: &Watch) -> StepRow {
    StepRow {
        sent_per_sec: per_sec(r.sent_in_window, secs),
        acked_per_sec: per_sec(r.acks_in_window, secs),
        delivered_per_sec: per_sec(r.deliveries_in_window, secs),
        bounded: ("delivered_last", t.last.summary()),
        other: ("ack", r.ack.summary()),
        lost: t.lost.max(u64::from(t.short_members > 0)),
        duplicated: t.duplicated.max(u64::from(t.duplicate_deliveries > 0)),
        out_of_order: t.late,
        unacked: t.unacked,
        refused: t.refused,
        disconnects: r.disconnects.values().sum(),
        errors: r.errors.clone(),
        server_cpu_pct: watch.server_cpu_pct(),
        generator_cpu_pct: watch.generator_cpu_pct(),
        ..StepRow::default()
    }
}

/// What every run of a thread works on.
struct Ctx<'a> {
    index: usize,
    state: &'a Rc<RefCell<Shard>>,
    sockets: &'a [Socket],
    /// Global member index -> local socket, for this thread's senders.
    local: &'a std::collections::HashMap<usize, usize>,
    frames: &'a [(String, String)],
    warmup: Duration,
    duration: Duration,
    drain: Duration,
}

/// One generator thread: connect, then one measured run per [`Run`] received on the same
/// sockets, then close.
async fn shard(plan: Plan, mut link: Link<Run, ShardResult>) -> anyhow::Result<()> {
    let index = link.index;
    let Plan { timeout, layout, members, convs, warmup, duration, drain, body, .. } = plan;
    let node_apis: Vec<Api> = plan.nodes.iter().map(|u| Api::new(u, timeout)).collect();
    let mut local_members = vec![0u32; layout.groups];
    for (i, _) in &members {
        local_members[layout.group_of_member(*i)] += 1;
    }
    let state = Rc::new(RefCell::new(Shard {
        prefix: "gl-".to_owned(),
        layout,
        index,
        t0: Instant::now(),
        warmup_us: warmup.as_micros() as u64,
        window: (Instant::now(), Instant::now()),
        status: Arc::new(Vec::new()),
        count: Vec::new(),
        first_us: Vec::new(),
        last_us: Vec::new(),
        flags: Vec::new(),
        members: members
            .iter()
            .map(|(i, u)| Member {
                index: *i,
                user_id: u.id,
                seqs: SeqWindow::default(),
                received: 0,
                duplicates: 0,
                late: 0,
                last_frame: None,
            })
            .collect(),
        local_members,
        ack: Latency::new(),
        acks_in_window: 0,
        deliveries_in_window: 0,
        dup_acks: 0,
        misrouted: 0,
        foreign: 0,
        self_copies: 0,
        system: 0,
        undecodable: 0,
        errors: Counts::new(),
        progress: plan.progress.clone(),
    }));

    // The `send` frame of each group, encoded once and split around the id.
    let frames: anyhow::Result<Vec<(String, String)>> = convs
        .iter()
        .map(|conv| {
            let frame = ClientFrame::Send {
                id: ID_SLOT.into(),
                conv: conv.clone(),
                body: body.clone(),
                mentions: vec![],
                mention_all: false,
                reply_to: None,
                attachment: None,
                forward: None,
            };
            let text = serde_json::to_string(&frame)?;
            let (head, tail) = text.split_once(ID_SLOT).ok_or_else(|| anyhow!("no id slot in {text}"))?;
            Ok((head.to_owned(), tail.to_owned()))
        })
        .collect();
    let frames = frames.map_err(|e| link.not_ready(e))?;

    let indexed: Vec<(usize, usize, User)> =
        members.iter().map(|(g, u)| (*g, u.clone())).enumerate().map(|(j, (g, u))| (j, g, u)).collect();
    let connected = setup::bounded(indexed, plan.connect_concurrency, |(j, g, u)| {
        let api = &node_apis[g % node_apis.len()];
        let (state, progress) = (state.clone(), &plan.progress);
        async move {
            let (sock, id) =
                ws::connect(api, &u.token, timeout, move |b, at| state.borrow_mut().on_frame(j, b, at)).await?;
            if id != u.id {
                return Err(anyhow!("hello for user {id}, expected {}", u.id));
            }
            progress.add(0, 1);
            Ok(sock)
        }
    })
    .await;
    let sockets: Vec<Socket> = connected.map_err(|e| link.not_ready(e))?;
    let local: std::collections::HashMap<usize, usize> =
        members.iter().enumerate().map(|(j, (i, _))| (*i, j)).collect();
    let _ = link.ready.send(Ok(()));

    let ctx = Ctx { index, state: &state, sockets: &sockets, local: &local, frames: &frames, warmup, duration, drain };
    link.serve(|run| one_run(&ctx, run)).await;

    for s in &sockets {
        s.close();
    }
    actix_rt::time::sleep(Duration::from_millis(100)).await;
    Ok(())
}

/// One measured run on connected sockets: send on schedule, drain, count.
async fn one_run(ctx: &Ctx<'_>, run: Run) -> anyhow::Result<ShardResult> {
    let Ctx { index, state, sockets, local, frames, warmup, duration, drain } = *ctx;
    let Run { t0, step, layout, status } = run;
    let prefix = if step == 0 { "gl-".to_owned() } else { format!("gl{step}-") };
    state.borrow_mut().begin(&prefix, layout, status.clone(), t0, warmup, duration);
    let progress = state.borrow().progress.clone();

    let mine = |k: usize| layout.thread_of(layout.sender(k)) == index;
    let next_mine = |mut k: usize| {
        while k < layout.total && !mine(k) {
            k += 1;
        }
        k
    };
    let warmup_us = warmup.as_micros() as u64;
    let mut k = next_mine(0);
    let mut max_lag = Duration::ZERO;
    let mut sent_in_window = 0u64;
    while k < layout.total {
        let now = Instant::now();
        let next = t0 + layout.due(k);
        if next > now {
            actix_rt::time::sleep_until(next.into()).await;
            continue;
        }
        max_lag = max_lag.max(now - next);
        let mut batch = 0;
        while k < layout.total && batch < 2000 {
            let d = layout.due(k);
            if t0 + d > now {
                break;
            }
            let (head, tail) = &frames[layout.group_of_msg(k)];
            let text = format!("{head}{prefix}{k}{tail}");
            if d.as_micros() as u64 >= warmup_us {
                sent_in_window += 1;
            }
            let ok = local.get(&layout.sender(k)).is_some_and(|j| sockets[*j].send_text(text));
            status[k].fetch_or(if ok { ST_SENT } else { ST_NOT_SENT }, Ordering::Relaxed);
            progress.add(SENT, 1);
            k = next_mine(k + 1);
            batch += 1;
        }
        tokio::task::yield_now().await;
    }

    // Drain: wait for outstanding acks and deliveries, at most `drain` after the last send.
    let drain_start = Instant::now().max(t0 + warmup + duration);
    let deadline = drain_start + drain;
    let mut settled_upto = 0;
    while Instant::now() < deadline && !state.borrow().settle(&mut settled_upto) {
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    let drained = Instant::now().saturating_duration_since(drain_start);
    // Unexpected closes so far (ours come after the last run).
    let mut disconnects = Counts::new();
    let closes: Vec<Option<ws::Closed>> = sockets.iter().map(Socket::closed).collect();
    for c in closes.iter().flatten() {
        bump(&mut disconnects, &c.label(), 1);
    }

    let mut st = state.borrow_mut();
    let members = st
        .members
        .iter()
        .zip(&closes)
        .map(|(m, c)| MemberEnd {
            index: m.index,
            user_id: m.user_id,
            received: m.received,
            duplicates: m.duplicates,
            late: m.late,
            last_frame: m.last_frame,
            closed: c.as_ref().map(ws::Closed::label),
        })
        .collect();
    Ok(ShardResult {
        count: std::mem::take(&mut st.count),
        first_us: std::mem::take(&mut st.first_us),
        last_us: std::mem::take(&mut st.last_us),
        flags: std::mem::take(&mut st.flags),
        members,
        ack: st.ack.clone(),
        acks_in_window: st.acks_in_window,
        deliveries_in_window: st.deliveries_in_window,
        sent_in_window,
        dup_acks: st.dup_acks,
        misrouted: st.misrouted,
        foreign: st.foreign,
        self_copies: st.self_copies,
        system: st.system,
        undecodable: st.undecodable,
        errors: st.errors.clone(),
        disconnects,
        max_lag,
        drain: drained,
    })
}

/// The per-message and per-member accounting after the run.
#[derive(Debug, Default)]
struct Tally {
    sent: u64,
    not_sent: u64,
    acked: u64,
    refused: u64,
    unacked: u64,
    /// Acked messages that reached every member.
    complete: u64,
    /// Acked messages that some member never got.
    lost: u64,
    /// (message, member) deliveries missing from acked messages.
    missing: u64,
    /// Messages delivered to someone without an ack.
    delivered_unacked: u64,
    /// Messages with a duplicate delivery (seen twice by a member, or received more often than
    /// there are recipients).
    duplicated: u64,
    duplicate_deliveries: u64,
    /// Messages that reached some member after a higher seq.
    late: u64,
    late_deliveries: u64,
    deliveries: u64,
    /// Members short of messages: how many, and a few examples.
    short_members: u64,
    short_examples: Vec<String>,
    /// Members that saw a duplicate or a late delivery.
    odd_members: u64,
    lost_examples: Vec<String>,
    last: Latency,
    first: Latency,
}

fn tally(layout: &Layout, status: &[AtomicU8], r: &ShardResult, warmup: u64, t0: Instant) -> Tally {
    let mut t = Tally::default();
    let expected = layout.expected();
    let warmup_us = warmup * 1_000_000;
    // Messages each member should have got: per group and sender, the acked-or-delivered ones.
    let mut per_sender: BTreeMap<usize, u64> = BTreeMap::new();
    for (k, st) in status.iter().enumerate().take(layout.total) {
        let st = st.load(Ordering::Relaxed);
        let (count, flags) = (r.count.get(k).copied().unwrap_or(0), r.flags.get(k).copied().unwrap_or(0));
        t.deliveries += u64::from(count);
        if st & ST_NOT_SENT != 0 || st & ST_SENT == 0 {
            t.not_sent += 1;
            continue;
        }
        t.sent += 1;
        let acked = st & ST_ACKED != 0;
        t.acked += u64::from(acked);
        if !acked && st & ST_ERRORED != 0 {
            t.refused += 1;
        } else if !acked {
            t.unacked += 1;
        }
        if acked || count > 0 {
            *per_sender.entry(layout.sender(k)).or_insert(0) += 1;
        }
        if !acked && count > 0 {
            t.delivered_unacked += 1;
        }
        if count > expected || flags & FL_DUP != 0 {
            t.duplicated += 1;
            t.duplicate_deliveries += u64::from(count.saturating_sub(expected));
        }
        if flags & FL_LATE != 0 {
            t.late += 1;
        }
        if acked && count < expected {
            t.lost += 1;
            t.missing += u64::from(expected - count);
            if t.lost_examples.len() < 5 {
                t.lost_examples.push(format!(
                    "gl-{k} (group {}, due +{} ms): {count} of {expected} members",
                    layout.group_of_msg(k),
                    layout.due(k).as_millis()
                ));
            }
        }
        if acked && count >= expected {
            t.complete += 1;
        }
        let due = layout.due(k);
        if count >= expected && due.as_micros() as u64 >= warmup_us {
            let at = |us: u32| Duration::from_micros(u64::from(us)).saturating_sub(due);
            t.last.record(at(r.last_us[k]));
            t.first.record(at(r.first_us[k]));
        }
    }
    for m in &r.members {
        t.duplicate_deliveries += u64::from(m.duplicates);
        t.late_deliveries += u64::from(m.late);
        if m.duplicates > 0 || m.late > 0 {
            t.odd_members += 1;
        }
        let g = layout.group_of_member(m.index);
        let should: u64 = (0..layout.senders)
            .map(|s| g * layout.members + s)
            .filter(|s| *s != m.index)
            .map(|s| per_sender.get(&s).copied().unwrap_or(0))
            .sum();
        if u64::from(m.received) < should {
            t.short_members += 1;
            if t.short_examples.len() < 5 {
                let last = match m.last_frame {
                    Some(l) if l >= t0 => format!("+{} ms", (l - t0).as_millis()),
                    Some(_) => "before start".to_owned(),
                    None => "never".to_owned(),
                };
                t.short_examples.push(format!(
                    "member {} (user {}, group {g}) got {} of {should}, last frame {last}, {}",
                    m.index,
                    m.user_id,
                    m.received,
                    m.closed.as_deref().unwrap_or("open")
                ));
            }
        }
    }
    t
}

/// The `config` object of the JSON summary.
fn config_json(args: &Args, threads: usize) -> Value {
    let mut v = json!({
        "groups": args.groups, "members": args.members, "senders": args.senders, "rate": args.rate,
        "duration_secs": args.duration, "warmup_secs": args.warmup, "drain_secs": args.drain,
        "threads": threads, "body_bytes": args.body_bytes,
    });
    if let (Some(spec), Some(obj)) = (args.step, v.as_object_mut()) {
        obj.remove("rate");
        obj.insert("step".into(), spec.to_string().into());
        obj.insert("step_p99_ms".into(), args.step_p99_ms.into());
    }
    v
}

fn summarize(args: &Args, layout: &Layout, r: &ShardResult, t: &Tally, watch: &Watch, setup_secs: f64) -> Outcome {
    let c = &args.common;
    let secs = args.duration as f64;
    let (ack, last, first) = (r.ack.summary(), t.last.summary(), t.first.summary());
    let (server, generator) = watch.json();
    let recipients = layout.members - 1;
    let target_deliveries = args.rate * recipients as f64;
    let json = json!({
        "scenario": "group",
        "label": c.label,
        "url": c.url,
        "nodes": c.node_urls(),
        "config": config_json(args, layout.threads),
        "setup_secs": (setup_secs * 10.0).round() / 10.0,
        "counts": {
            "messages": layout.total, "sent": t.sent, "sent_in_window": r.sent_in_window, "acked": t.acked,
            "refused": t.refused, "unacked": t.unacked, "complete": t.complete, "lost": t.lost,
            "missing_deliveries": t.missing, "deliveries": t.deliveries,
            "expected_deliveries": t.acked * recipients as u64,
            "duplicated": t.duplicated, "duplicate_deliveries": t.duplicate_deliveries,
            "out_of_order": t.late, "out_of_order_deliveries": t.late_deliveries,
            "members_short": t.short_members, "members_with_anomalies": t.odd_members,
            "delivered_without_ack": t.delivered_unacked, "duplicate_acks": r.dup_acks,
            "misrouted": r.misrouted, "foreign": r.foreign, "self_copies": r.self_copies,
            "system_messages": r.system, "undecodable": r.undecodable, "not_sent": t.not_sent,
        },
        "errors": r.errors,
        "disconnects": r.disconnects,
        "throughput": {
            "target_per_sec": args.rate,
            "target_deliveries_per_sec": target_deliveries,
            "sent_per_sec": per_sec(r.sent_in_window, secs),
            "acked_per_sec": per_sec(r.acks_in_window, secs),
            "deliveries_per_sec": per_sec(r.deliveries_in_window, secs),
        },
        "latency_ms": {"ack": ack, "delivered_first": first, "delivered_last": last},
        "max_schedule_lag_ms": r.max_lag.as_secs_f64() * 1000.0,
        "drain_secs": (r.drain.as_secs_f64() * 10.0).round() / 10.0,
        "lost_examples": t.lost_examples,
        "short_examples": t.short_examples,
        "setup_retries": crate::api::retries(),
        "server": server,
        "generator": generator,
    });
    let mut x = Text::new(&format!("group{}", c.label.as_deref().map(|l| format!(" [{l}]")).unwrap_or_default()));
    x.kv("url", &c.url)
        .kv(
            "load",
            format!(
                "{} group(s) x {} members, {} sender(s) each, target {} msg/s = {target_deliveries} deliveries/s, \
                 {} s (+{} s warm-up), {} thread(s)",
                args.groups, args.members, args.senders, args.rate, args.duration, args.warmup, layout.threads
            ),
        )
        .kv("set-up", format!("{setup_secs:.1} s"))
        .kv(
            "throughput (msg/s)",
            format!("sent {} acked {}", per_sec(r.sent_in_window, secs), per_sec(r.acks_in_window, secs)),
        )
        .kv("deliveries/s", per_sec(r.deliveries_in_window, secs))
        .kv("sent", t.sent)
        .kv("acked", t.acked)
        .kv("complete (all members)", t.complete)
        .kv("deliveries", format!("{} of {} expected", t.deliveries, t.acked * recipients as u64))
        .kv("refused (error)", t.refused)
        .kv("errors by code", counts_inline(&r.errors))
        .kv("unacked", t.unacked)
        .kv(
            "lost",
            format!("{} message(s), {} missing deliveries, {} member(s) short", t.lost, t.missing, t.short_members),
        )
        .kv("duplicated", format!("{} message(s), {} extra deliveries", t.duplicated, t.duplicate_deliveries))
        .kv("out of order", format!("{} message(s), {} deliveries", t.late, t.late_deliveries))
        .kv("disconnects", counts_inline(&r.disconnects))
        .kv("max schedule lag", format!("{:.1} ms", r.max_lag.as_secs_f64() * 1000.0))
        .kv("drain", format!("{:.1} s", r.drain.as_secs_f64()))
        .latencies(&[("send->ack", ack), ("send->first member", first), ("send->last member", last)]);
    watch.text(&mut x);

    let mut failures = Vec::new();
    let mut warnings = Vec::new();
    if t.lost > 0 || t.short_members > 0 {
        failures.push(format!(
            "LOST: {} acked message(s) not delivered to every member within {} s of drain: {} (message, member) \
             deliveries missing, {} member(s) short; e.g. {}; {}",
            t.lost,
            args.drain,
            t.missing,
            t.short_members,
            t.lost_examples.join("; "),
            t.short_examples.join("; ")
        ));
    }
    if t.duplicated > 0 || t.duplicate_deliveries > 0 {
        failures.push(format!(
            "DUPLICATED: {} message(s) delivered more than once to a member ({} extra deliveries)",
            t.duplicated, t.duplicate_deliveries
        ));
    }
    if t.late > 0 {
        failures.push(format!(
            "OUT OF ORDER: {} message(s), {} deliveries with a seq below one the member already had ({} member(s))",
            t.late, t.late_deliveries, t.odd_members
        ));
    }
    let retries = crate::api::retries();
    if !retries.is_empty() {
        warnings.push(format!("SETUP RETRIES (server errors during set-up): {}", counts_inline(&retries)));
    }
    if t.unacked > 0 {
        warnings.push(format!("UNACKED: {} message(s) got neither an ack nor an error", t.unacked));
    }
    if !r.errors.is_empty() {
        warnings.push(format!("ERRORS: {}", counts_inline(&r.errors)));
    }
    if !r.disconnects.is_empty() {
        warnings.push(format!("DISCONNECTS: {}", counts_inline(&r.disconnects)));
    }
    if t.delivered_unacked > 0
        || r.dup_acks > 0
        || r.misrouted > 0
        || r.foreign > 0
        || r.self_copies > 0
        || r.undecodable > 0
        || t.not_sent > 0
    {
        warnings.push(format!(
            "ODD: delivered without ack {}, duplicate acks {}, misrouted {}, foreign {}, copies to the sending \
             device {}, undecodable {}, not sent {}",
            t.delivered_unacked, r.dup_acks, r.misrouted, r.foreign, r.self_copies, r.undecodable, t.not_sent
        ));
    }
    Outcome { json, text: x.render(), failures, warnings }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_window_tells_duplicates_from_late() {
        let mut w = SeqWindow::default();
        assert_eq!(w.check(3), SeqCheck::InOrder);
        assert_eq!(w.check(5), SeqCheck::InOrder);
        assert_eq!(w.check(5), SeqCheck::Duplicate);
        assert_eq!(w.check(4), SeqCheck::Late);
        assert_eq!(w.check(4), SeqCheck::Duplicate);
        assert_eq!(w.check(3), SeqCheck::Duplicate);
        assert_eq!(w.check(200), SeqCheck::InOrder);
        assert_eq!(w.check(137), SeqCheck::Late);
        assert_eq!(w.check(136), SeqCheck::Late);
        assert_eq!(w.check(199), SeqCheck::Late);
        assert_eq!(w.check(199), SeqCheck::Duplicate);
    }

    #[test]
    fn tally_counts_missing_and_extra_deliveries() {
        let l = Layout { groups: 1, members: 4, senders: 1, threads: 1, rate: 1.0, total: 4 };
        let st = |b: u8| AtomicU8::new(b);
        // 0: complete; 1: one member short; 2: one extra copy; 3: refused.
        let status =
            vec![st(ST_SENT | ST_ACKED), st(ST_SENT | ST_ACKED), st(ST_SENT | ST_ACKED), st(ST_SENT | ST_ERRORED)];
        let member = |index, received| MemberEnd {
            index,
            user_id: index as i64,
            received,
            duplicates: 0,
            late: 0,
            last_frame: None,
            closed: None,
        };
        let r = ShardResult {
            count: vec![3, 2, 4, 0],
            first_us: vec![10, 1_000_010, 2_000_010, 0],
            last_us: vec![30, 1_000_030, 2_000_030, 0],
            flags: vec![0, FL_LATE, 0, 0],
            members: vec![member(0, 0), member(1, 3), member(2, 3), member(3, 2)],
            ..ShardResult::default()
        };
        let t = tally(&l, &status, &r, 0, Instant::now());
        assert_eq!((t.sent, t.acked, t.refused, t.unacked, t.complete), (4, 3, 1, 0, 2));
        assert_eq!((t.lost, t.missing, t.short_members), (1, 1, 1));
        assert_eq!((t.duplicated, t.duplicate_deliveries, t.late), (1, 1, 1));
        assert!(t.short_examples[0].contains("member 3") && t.short_examples[0].contains("got 2 of 3"));
        // Latency of messages that reached every member: 0 (30 us) and 2 (30 us after due).
        assert_eq!(t.last.count(), 2);
    }

    #[test]
    fn layout_spreads_messages_over_groups_and_senders() {
        let l = Layout { groups: 2, members: 10, senders: 3, threads: 2, rate: 100.0, total: 12 };
        let senders: Vec<usize> = (0..6).map(|k| l.sender(k)).collect();
        assert_eq!(senders, vec![0, 10, 1, 11, 2, 12]);
        assert_eq!(l.sender(6), 0);
        assert_eq!((l.group_of_member(9), l.group_of_member(10)), (0, 1));
        assert_eq!(l.expected(), 9);
        assert_eq!(l.due(100), Duration::from_secs(1));
    }
}
