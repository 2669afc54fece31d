//! `direct`: 1:1 chat under an open-loop load.
//!
//! P friend pairs, one WebSocket per user. A scheduler sends message k at its intended time
//! `t0 + k / R` whether or not earlier messages were answered (no coordinated omission), to pair
//! `k mod P`, alternating the direction. Latencies are measured from the intended time, so a
//! generator or server that falls behind shows up as latency rather than as a lower send rate.
//!
//! Each message has a unique client id. Counted per message: its `ack` on the sender's socket,
//! its `msg` on the recipient's socket (once: more is a duplicate), `error` frames by code.
//! After the run a drain period waits for outstanding acks and deliveries; then
//! lost = acked but never delivered, unacked = neither acked nor refused.
//!
//! With `--threads T` the pairs are split over T generator threads, each with its own actix
//! system, sockets and scheduler (rate shared in proportion); results are merged at the end.
//!
//! With `--react-pct` / `--edit-pct` a share of the operations are not sends: a reaction (👍, on
//! or off, whichever changes the state) by the scheduled sender on the latest acked message of
//! the pair's conversation, or an edit by the sender of its own latest acked message. A reaction
//! counts as answered when its `reaction` frame comes back to the reacting socket and as delivered
//! when it reaches the peer's; an edit is answered by its `ack` and delivered by the peer's
//! `edited`. Their latencies are reported apart from the sends', which stay comparable with a
//! plain run.
//!
//! With `--step FROM:STEP:TO` the same connected pairs run one window per rate (warm-up,
//! window and drain each, message ids unique per step) until a step does not hold: send->ack
//! p99 above `--step-p99-ms`, or any lost, duplicated, out-of-order, refused or unanswered
//! message, an `error` frame, or a closed socket. The summary is a table of the steps and the
//! highest rate that held; lost, duplicated or out-of-order messages still fail the run.

use std::cell::RefCell;
use std::collections::{HashSet, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use schema::protocol::ClientFrame;
use serde_json::{json, Value};

use super::{
    run_steps, spawn_fleet, step_outcome, Common, Link, Outcome, StepRow, StepSpec, Watch, Window, STEP_PAUSE,
};
use crate::api::{Api, User};
use crate::progress::Progress;
use crate::report::{bump, counts_inline, merge_counts, per_sec, Counts, Latency, Text};
use crate::setup;
use crate::ws::{self, FrameView, Socket};

/// Placeholder for the client id in a pre-encoded `send` frame.
const ID_SLOT: &str = "@ID@";

/// Progress counters.
const SENT: usize = 0;
const ACKED: usize = 1;
const DELIVERED: usize = 2;
const ERRORS: usize = 3;

/// Flags of `direct`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,
    /// Friend pairs (two users, two WebSockets each pair).
    #[arg(long, default_value_t = 200)]
    pub pairs: usize,
    /// Target total send rate, messages per second, over all pairs.
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// Measured seconds.
    #[arg(long, default_value_t = 20)]
    pub duration: u64,
    /// Seconds of sending at the same rate before the measured window (checked for loss, not
    /// measured).
    #[arg(long, default_value_t = 2)]
    pub warmup: u64,
    /// Most seconds to wait after the last send for outstanding acks and deliveries.
    #[arg(long, default_value_t = 15)]
    pub drain: u64,
    /// Generator threads (each an actix system with its share of the pairs).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Message body length in bytes.
    #[arg(long, default_value_t = 64)]
    pub body_bytes: usize,
    /// Recipients send a `delivered` receipt for every message, as a real client would.
    #[arg(long)]
    pub receipts: bool,
    /// Concurrent WebSocket handshakes per thread.
    #[arg(long, default_value_t = 32)]
    pub connect_concurrency: usize,
    /// With several `--nodes`: `same` puts both users of a pair on one node (pairs spread over
    /// the nodes), `cross` puts them on different nodes (every message crosses Redis).
    #[arg(long, value_enum, default_value_t = Placement::Same)]
    pub placement: Placement,
    /// Step mode: successive windows at rising total rates on the same connected pairs,
    /// `FROM:STEP:TO` msg/s (`1000:+1000:20000` adds 1000 a step, `1000:x2:32000` doubles; TO
    /// is the last step), each `--warmup` + `--duration` s, until send->ack p99 exceeds
    /// `--step-p99-ms` or a message is lost, duplicated, out of order, refused or unanswered, an
    /// `error` frame comes back, or a socket is closed. `--rate` is then unused. Mind the
    /// server's per-session frame limit (`ws.frames_per_sec`): each socket sends
    /// TO / (2 x pairs) msg/s at the last step.
    #[arg(long)]
    pub step: Option<StepSpec>,
    /// Step mode: the bound on the p99 of send->ack, milliseconds.
    #[arg(long, default_value_t = 10.0)]
    pub step_p99_ms: f64,
    /// Percent of the operations that are reactions (👍 on or off) instead of sends.
    #[arg(long, default_value_t = 0.0)]
    pub react_pct: f64,
    /// Percent of the operations that are edits of the sender's latest message instead of sends.
    #[arg(long, default_value_t = 0.0)]
    pub edit_pct: f64,
}

/// What operation number k is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Op {
    #[default]
    Send,
    React,
    Edit,
}

/// The emoji the mixed load reacts with.
const EMOJI: &str = "\u{1F44D}";

/// The kind operation `k` is meant to be: a fixed pseudo-random spread of `react` and `edit`
/// basis points over the operation numbers (the same for every run and thread).
fn planned_op(k: u64, react_bp: u64, edit_bp: u64) -> Op {
    let r = (k.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) % 10_000;
    if r < react_bp {
        Op::React
    } else if r < react_bp + edit_bp {
        Op::Edit
    } else {
        Op::Send
    }
}

/// Where the two users of a pair connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Placement {
    /// Both on the same node.
    Same,
    /// On different nodes.
    Cross,
}

impl Placement {
    /// The node index of side `side` (0 or 1) of pair `pair` among `n` nodes.
    pub fn node(self, pair: usize, side: usize, n: usize) -> usize {
        match self {
            Placement::Same => pair % n,
            Placement::Cross => (pair + side) % n,
        }
    }
}

/// What happened to one message.
#[derive(Debug, Clone, Copy, Default)]
struct Msg {
    /// Intended send time, microseconds after `t0`.
    due_us: u64,
    op: Op,
    /// Could not be queued (its socket was gone).
    not_sent: bool,
    acked: bool,
    errored: bool,
    delivered: u16,
}

/// One generator thread's state, shared by its scheduler and socket readers.
struct Shard {
    prefix: String,
    pairs: usize,
    t0: Instant,
    warmup_us: u64,
    window: (Instant, Instant),
    msgs: Vec<Msg>,
    ack: Latency,
    delivered: Latency,
    acks_in_window: u64,
    deliveries_in_window: u64,
    dup_acks: u64,
    misrouted: u64,
    out_of_order: u64,
    undecodable: u64,
    errors: Counts,
    last_seq: Vec<i64>,
    /// When each socket last received a frame (any frame).
    last_frame: Vec<Option<Instant>>,
    sockets: Vec<Option<Socket>>,
    receipts: bool,
    convs: Vec<String>,
    progress: Arc<Progress>,
    /// The user id of each socket.
    user_ids: Vec<i64>,
    /// Per pair: the highest seq acked in its conversation (what reactions go to).
    conv_seq: Vec<i64>,
    /// Per socket: the seq of its latest acked send (what its edits go to).
    own_seq: Vec<i64>,
    /// Per socket: the seqs it has a reaction on (as sent: the owner applies them in order).
    reacted: Vec<HashSet<i64>>,
    /// Per socket: its reactions waiting for their echo, oldest first.
    echo_q: Vec<VecDeque<usize>>,
    /// Per socket: the peer's reactions it has yet to see, oldest first.
    peer_q: Vec<VecDeque<usize>>,
    react_echo: Latency,
    react_delivered: Latency,
    edit_ack: Latency,
    edit_delivered: Latency,
}

impl Shard {
    fn sender(&self, k: usize) -> usize {
        let (pair, dir) = (k % self.pairs, (k / self.pairs) % 2);
        2 * pair + dir
    }

    fn recipient(&self, k: usize) -> usize {
        self.sender(k) ^ 1
    }

    fn index(&self, id: Option<&str>) -> Option<usize> {
        let k: usize = id?.strip_prefix(self.prefix.as_str())?.parse().ok()?;
        (k < self.msgs.len()).then_some(k)
    }

    fn in_window(&self, at: Instant) -> bool {
        at >= self.window.0 && at < self.window.1
    }

    /// A text frame arrived on socket `s` at `at`.
    fn on_frame(&mut self, s: usize, bytes: &[u8], at: Instant) {
        if let Some(l) = self.last_frame.get_mut(s) {
            *l = Some(at);
        }
        let Ok(v) = serde_json::from_slice::<FrameView<'_>>(bytes) else {
            self.undecodable += 1;
            return;
        };
        match v.kind.as_ref() {
            "ack" => {
                let Some(k) = self.index(v.id.as_deref()) else {
                    self.misrouted += 1;
                    return;
                };
                if self.sender(k) != s {
                    self.misrouted += 1;
                    return;
                }
                let (t0, warmup_us) = (self.t0, self.warmup_us);
                let m = &mut self.msgs[k];
                if m.acked {
                    self.dup_acks += 1;
                    return;
                }
                m.acked = true;
                let (due, op) = (m.due_us, m.op);
                if op == Op::Send {
                    if let Some(seq) = v.seq {
                        let pair = k % self.pairs;
                        self.conv_seq[pair] = self.conv_seq[pair].max(seq);
                        self.own_seq[s] = self.own_seq[s].max(seq);
                    }
                }
                if due >= warmup_us {
                    let lat = at.saturating_duration_since(t0 + Duration::from_micros(due));
                    match op {
                        Op::Edit => self.edit_ack.record(lat),
                        _ => self.ack.record(lat),
                    }
                }
                if self.in_window(at) {
                    self.acks_in_window += 1;
                }
                self.progress.add(ACKED, 1);
            }
            "msg" => {
                let Some(k) = self.index(v.id.as_deref()) else {
                    self.misrouted += 1;
                    return;
                };
                if self.recipient(k) != s {
                    self.misrouted += 1;
                    return;
                }
                if let Some(seq) = v.seq {
                    if let Some(last) = self.last_seq.get_mut(s) {
                        if seq <= *last {
                            self.out_of_order += 1;
                        }
                        *last = seq;
                    }
                    if self.receipts {
                        if let (Some(Some(sock)), Some(conv)) = (self.sockets.get(s), self.convs.get(s / 2)) {
                            let conv = schema::ConvId(conv.clone());
                            if let Ok(f) = serde_json::to_string(&ClientFrame::Delivered { conv, seq }) {
                                sock.send_text(f);
                            }
                        }
                    }
                }
                let (t0, warmup_us) = (self.t0, self.warmup_us);
                let m = &mut self.msgs[k];
                m.delivered = m.delivered.saturating_add(1);
                if m.delivered > 1 {
                    return;
                }
                let due = m.due_us;
                if due >= warmup_us {
                    self.delivered.record(at.saturating_duration_since(t0 + Duration::from_micros(due)));
                }
                if self.in_window(at) {
                    self.deliveries_in_window += 1;
                }
                self.progress.add(DELIVERED, 1);
            }
            "edited" => {
                // The body starts with the edit's id; the editor's own `edited` is not counted.
                let id = v.body.as_deref().and_then(|b| b.split(' ').next());
                let Some(k) = self.index(id) else {
                    self.misrouted += 1;
                    return;
                };
                if self.sender(k) == s {
                    return;
                }
                if self.recipient(k) != s {
                    self.misrouted += 1;
                    return;
                }
                self.delivered_op(k, at);
            }
            "reaction" => {
                let own = v.user.is_some() && v.user == self.user_ids.get(s).copied();
                let queue = if own { &mut self.echo_q } else { &mut self.peer_q };
                let Some(k) = queue.get_mut(s).and_then(VecDeque::pop_front) else {
                    self.misrouted += 1;
                    return;
                };
                if own {
                    let (t0, warmup_us) = (self.t0, self.warmup_us);
                    let m = &mut self.msgs[k];
                    if m.acked {
                        self.dup_acks += 1;
                        return;
                    }
                    m.acked = true;
                    if m.due_us >= warmup_us {
                        self.react_echo.record(at.saturating_duration_since(t0 + Duration::from_micros(m.due_us)));
                    }
                    if self.in_window(at) {
                        self.acks_in_window += 1;
                    }
                    self.progress.add(ACKED, 1);
                } else {
                    self.delivered_op(k, at);
                }
            }
            "error" => {
                bump(&mut self.errors, v.code.as_deref().unwrap_or("?"), 1);
                self.progress.add(ERRORS, 1);
                if let Some(k) = self.index(v.id.as_deref()) {
                    self.msgs[k].errored = true;
                }
            }
            // hello, presence, pong, delivered/read receipts, events: not measured.
            _ => {}
        }
    }

    /// Operation `k` (an edit or a reaction) reached the peer at `at`.
    fn delivered_op(&mut self, k: usize, at: Instant) {
        let (t0, warmup_us) = (self.t0, self.warmup_us);
        let m = &mut self.msgs[k];
        m.delivered = m.delivered.saturating_add(1);
        if m.delivered > 1 {
            return;
        }
        if m.due_us >= warmup_us {
            let lat = at.saturating_duration_since(t0 + Duration::from_micros(m.due_us));
            match m.op {
                Op::Edit => self.edit_delivered.record(lat),
                _ => self.react_delivered.record(lat),
            }
        }
        if self.in_window(at) {
            self.deliveries_in_window += 1;
        }
        self.progress.add(DELIVERED, 1);
    }

    /// The text of operation `k` of kind `op` on socket `s` (pair `pair`), with its id `{prefix}{k}`,
    /// or `None` when it has no target yet (then it is sent as a plain message).
    fn op_frame(&mut self, op: Op, k: u64, s: usize, pair: usize, body: &str) -> Option<String> {
        match op {
            Op::Send => None,
            Op::React => {
                let seq = *self.conv_seq.get(pair)?;
                if seq == 0 {
                    return None;
                }
                let on = self.reacted[s].insert(seq);
                if !on {
                    self.reacted[s].remove(&seq);
                }
                self.echo_q[s].push_back(k as usize);
                self.peer_q[s ^ 1].push_back(k as usize);
                let frame =
                    ClientFrame::React { conv: schema::ConvId(self.convs[pair].clone()), seq, emoji: EMOJI.into(), on };
                serde_json::to_string(&frame).ok()
            }
            Op::Edit => {
                let seq = *self.own_seq.get(s)?;
                if seq == 0 {
                    return None;
                }
                let id = format!("{}{k}", self.prefix);
                let frame = ClientFrame::Edit {
                    conv: schema::ConvId(self.convs[pair].clone()),
                    seq,
                    body: format!("{id} {body}"),
                    id,
                };
                serde_json::to_string(&frame).ok()
            }
        }
    }

    /// Starts a run: message ids `{prefix}{k}`, common start `t0`; the per-run counts are reset
    /// (the last seq and last frame of each socket carry over).
    fn begin(&mut self, prefix: &str, t0: Instant, warmup: Duration, duration: Duration) {
        prefix.clone_into(&mut self.prefix);
        self.t0 = t0;
        self.warmup_us = warmup.as_micros() as u64;
        self.window = (t0 + warmup, t0 + warmup + duration);
        self.msgs.clear();
        self.ack = Latency::new();
        self.delivered = Latency::new();
        self.acks_in_window = 0;
        self.deliveries_in_window = 0;
        self.dup_acks = 0;
        self.misrouted = 0;
        self.out_of_order = 0;
        self.undecodable = 0;
        self.errors.clear();
        self.react_echo = Latency::new();
        self.react_delivered = Latency::new();
        self.edit_ack = Latency::new();
        self.edit_delivered = Latency::new();
        for q in self.echo_q.iter_mut().chain(self.peer_q.iter_mut()) {
            q.clear();
        }
    }

    /// Everything sent is answered (acked or refused) and everything acked is delivered.
    fn settled(&self) -> bool {
        self.msgs.iter().all(|m| m.not_sent || m.errored || (m.acked && m.delivered > 0))
    }
}

/// One thread's results, merged by the main thread.
#[derive(Debug, Default)]
struct ShardResult {
    sent: u64,
    sent_in_window: u64,
    not_sent: u64,
    acked: u64,
    delivered: u64,
    unacked: u64,
    errored: u64,
    lost: u64,
    duplicated: u64,
    extra_deliveries: u64,
    delivered_unacked: u64,
    dup_acks: u64,
    misrouted: u64,
    out_of_order: u64,
    undecodable: u64,
    acks_in_window: u64,
    deliveries_in_window: u64,
    errors: Counts,
    disconnects: Counts,
    ack: Latency,
    delivery: Latency,
    max_lag: Duration,
    drain: Duration,
    lost_examples: Vec<String>,
    /// Recipient sockets that missed at least one acked message.
    lost_recipients: u64,
    /// Operations sent by kind: sends, reactions, edits.
    ops: [u64; 3],
    react_echo: Latency,
    react_delivered: Latency,
    edit_ack: Latency,
    edit_delivered: Latency,
}

impl ShardResult {
    fn merge(&mut self, o: ShardResult) {
        self.sent += o.sent;
        self.sent_in_window += o.sent_in_window;
        self.not_sent += o.not_sent;
        self.acked += o.acked;
        self.delivered += o.delivered;
        self.unacked += o.unacked;
        self.errored += o.errored;
        self.lost += o.lost;
        self.duplicated += o.duplicated;
        self.extra_deliveries += o.extra_deliveries;
        self.delivered_unacked += o.delivered_unacked;
        self.dup_acks += o.dup_acks;
        self.misrouted += o.misrouted;
        self.out_of_order += o.out_of_order;
        self.undecodable += o.undecodable;
        self.acks_in_window += o.acks_in_window;
        self.deliveries_in_window += o.deliveries_in_window;
        merge_counts(&mut self.errors, &o.errors);
        merge_counts(&mut self.disconnects, &o.disconnects);
        self.ack.merge(&o.ack);
        self.delivery.merge(&o.delivery);
        self.max_lag = self.max_lag.max(o.max_lag);
        self.drain = self.drain.max(o.drain);
        self.lost_recipients += o.lost_recipients;
        for (a, b) in self.ops.iter_mut().zip(o.ops) {
            *a += b;
        }
        self.react_echo.merge(&o.react_echo);
        self.react_delivered.merge(&o.react_delivered);
        self.edit_ack.merge(&o.edit_ack);
        self.edit_delivered.merge(&o.edit_delivered);
        self.lost_examples.extend(o.lost_examples);
        self.lost_examples.truncate(10);
    }
}

/// What a generator thread is given.
struct Plan {
    nodes: Vec<String>,
    placement: Placement,
    timeout: Duration,
    pairs: Vec<(User, User)>,
    /// This thread's share of the total rate (its pairs / all pairs).
    share: f64,
    warmup: Duration,
    duration: Duration,
    drain: Duration,
    body: String,
    receipts: bool,
    connect_concurrency: usize,
    progress: Arc<Progress>,
    /// Basis points of reactions and of edits among the operations.
    mix_bp: (u64, u64),
}

/// One measured run, sent to every generator thread.
#[derive(Debug, Clone, Copy)]
struct Run {
    /// The common start.
    t0: Instant,
    /// Step number (0 in the single-run mode); message ids of step s > 0 are `lg<thread>s<s>-<k>`.
    step: usize,
    /// Total rate over all threads.
    rate: f64,
}

/// Runs the scenario: set-up on this thread, the load on `--threads` threads.
pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let c = args.common.clone();
    if args.pairs == 0 || args.rate.is_nan() || args.rate <= 0.0 || args.duration == 0 {
        return Err(anyhow!("--pairs, --rate and --duration must be positive"));
    }
    let pct_ok = |p: f64| (0.0..=100.0).contains(&p);
    if !pct_ok(args.react_pct) || !pct_ok(args.edit_pct) || args.react_pct + args.edit_pct > 100.0 {
        return Err(anyhow!("--react-pct and --edit-pct must be within 0..=100 and add up to at most 100"));
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
    let set_up = Instant::now();
    let pairs = actix_rt::System::new().block_on(async {
        let api = Api::new(&c.url, c.timeout());
        setup::friend_pairs(&api, &c.prefix(), args.pairs, c.setup_concurrency, progress).await
    })?;
    let setup_secs = set_up.elapsed().as_secs_f64();

    progress.setup_phase("connect", 2 * pairs.len());
    let threads = args.threads.clamp(1, args.pairs);
    let mut shards: Vec<Vec<(User, User)>> = vec![Vec::new(); threads];
    for (i, p) in pairs.into_iter().enumerate() {
        shards[i % threads].push(p);
    }
    let body: String = "x".repeat(args.body_bytes.max(1));
    let plans: Vec<Plan> = shards
        .into_iter()
        .map(|pairs| Plan {
            nodes: c.node_urls(),
            placement: args.placement,
            timeout: c.timeout(),
            share: pairs.len() as f64 / args.pairs as f64,
            pairs,
            warmup: Duration::from_secs(args.warmup),
            duration: Duration::from_secs(args.duration),
            drain: Duration::from_secs(args.drain),
            body: body.clone(),
            receipts: args.receipts,
            connect_concurrency: args.connect_concurrency,
            progress: progress.clone(),
            mix_bp: ((args.react_pct * 100.0).round() as u64, (args.edit_pct * 100.0).round() as u64),
        })
        .collect();
    let fleet = spawn_fleet(plans, shard)?.connected()?;
    let window = Window {
        warmup: args.warmup,
        duration: args.duration,
        lead: Duration::from_millis(200),
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
            let res = fleet.run(progress, window, &c.pid, |t0| Run { t0, step: 0, rate: args.rate });
            let finished = fleet.finish();
            let (_, watch, results) = res?;
            finished?;
            Ok(summarize(args, &merged(results), &watch, setup_secs))
        }
        Some(spec) => {
            let mut last_watch = None;
            let rows = run_steps(&spec, args.step_p99_ms, STEP_PAUSE, c.quiet, |step, rate| {
                let (_, watch, results) = fleet.run(progress, window, &c.pid, |t0| Run { t0, step, rate })?;
                let row = step_row(&merged(results), args.duration as f64, &watch);
                last_watch = Some(watch);
                Ok(row)
            });
            let finished = fleet.finish();
            let rows = rows?;
            finished?;
            let base = json!({
                "scenario": "direct",
                "label": c.label,
                "url": c.url,
                "nodes": c.node_urls(),
                "config": config_json(args),
                "setup_secs": (setup_secs * 10.0).round() / 10.0,
            });
            let title = format!("direct steps{}", c.label.as_deref().map(|l| format!(" [{l}]")).unwrap_or_default());
            Ok(step_outcome(&title, base, &spec, args.step_p99_ms, &rows, last_watch.as_ref(), Vec::new()))
        }
    }
}

/// One step's row of the step table: the bound is on send->ack.
fn step_row(r: &ShardResult, secs: f64, watch: &Watch) -> StepRow {
    StepRow {
        sent_per_sec: per_sec(r.sent_in_window, secs),
        acked_per_sec: per_sec(r.acks_in_window, secs),
        delivered_per_sec: per_sec(r.deliveries_in_window, secs),
        bounded: ("ack", r.ack.summary()),
        other: ("delivered", r.delivery.summary()),
        lost: r.lost,
        duplicated: r.duplicated,
        out_of_order: r.out_of_order,
        unacked: r.unacked,
        refused: r.errored,
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
    frames: &'a [(String, String)],
    body: &'a str,
    mix_bp: (u64, u64),
    share: f64,
    warmup: Duration,
    duration: Duration,
    drain: Duration,
}

/// One generator thread: connect, then one measured run per [`Run`] received on the same
/// sockets, then close.
async fn shard(plan: Plan, mut link: Link<Run, ShardResult>) -> anyhow::Result<()> {
    let index = link.index;
    let Plan { timeout, pairs, share, warmup, duration, drain, body, receipts, mix_bp, .. } = plan;
    let node_apis: Vec<Api> = plan.nodes.iter().map(|u| Api::new(u, timeout)).collect();
    let placement = plan.placement;
    let users: Vec<User> = pairs.iter().flat_map(|(a, b)| [a.clone(), b.clone()]).collect();
    let state = Rc::new(RefCell::new(Shard {
        prefix: format!("lg{index}-"),
        pairs: pairs.len(),
        t0: Instant::now(),
        warmup_us: warmup.as_micros() as u64,
        window: (Instant::now(), Instant::now()),
        msgs: Vec::new(),
        ack: Latency::new(),
        delivered: Latency::new(),
        acks_in_window: 0,
        deliveries_in_window: 0,
        dup_acks: 0,
        misrouted: 0,
        out_of_order: 0,
        undecodable: 0,
        errors: Counts::new(),
        last_seq: vec![0; users.len()],
        last_frame: vec![None; users.len()],
        sockets: Vec::new(),
        receipts,
        convs: pairs.iter().map(|(a, b)| setup::direct_conv(a, b).0).collect(),
        progress: plan.progress.clone(),
        user_ids: users.iter().map(|u| u.id).collect(),
        conv_seq: vec![0; pairs.len()],
        own_seq: vec![0; users.len()],
        reacted: vec![HashSet::new(); users.len()],
        echo_q: vec![VecDeque::new(); users.len()],
        peer_q: vec![VecDeque::new(); users.len()],
        react_echo: Latency::new(),
        react_delivered: Latency::new(),
        edit_ack: Latency::new(),
        edit_delivered: Latency::new(),
    }));

    // The `send` frame of each pair, encoded once and split around the id.
    let frames: anyhow::Result<Vec<(String, String)>> = pairs
        .iter()
        .map(|(a, b)| {
            let conv = setup::direct_conv(a, b);
            let frame = ClientFrame::Send {
                id: ID_SLOT.into(),
                conv,
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

    let indexed: Vec<(usize, User)> = users.into_iter().enumerate().collect();
    let connected = setup::bounded(indexed, plan.connect_concurrency, |(s, u)| {
        let api = &node_apis[placement.node(s / 2, s % 2, node_apis.len())];
        let (state, progress) = (state.clone(), &plan.progress);
        async move {
            let (sock, id) =
                ws::connect(api, &u.token, timeout, move |b, at| state.borrow_mut().on_frame(s, b, at)).await?;
            if id != u.id {
                return Err(anyhow!("hello for user {id}, expected {}", u.id));
            }
            progress.add(0, 1);
            Ok(sock)
        }
    })
    .await;
    let sockets = connected.map_err(|e| link.not_ready(e))?;
    state.borrow_mut().sockets = sockets.iter().map(|s| Some(s.clone())).collect();
    let _ = link.ready.send(Ok(()));

    let ctx = Ctx {
        index,
        state: &state,
        sockets: &sockets,
        frames: &frames,
        body: &body,
        share,
        warmup,
        duration,
        drain,
        mix_bp,
    };
    link.serve(|run| one_run(&ctx, run)).await;

    for s in &sockets {
        s.close();
    }
    state.borrow_mut().sockets.clear();
    actix_rt::time::sleep(Duration::from_millis(100)).await;
    Ok(())
}

/// One measured run on connected sockets: send on schedule, drain, count.
async fn one_run(ctx: &Ctx<'_>, run: Run) -> anyhow::Result<ShardResult> {
    let Ctx { index, state, sockets, frames, body, warmup, duration, drain, mix_bp, .. } = *ctx;
    let prefix = if run.step == 0 { format!("lg{index}-") } else { format!("lg{index}s{}-", run.step) };
    let t0 = run.t0;
    let rate = run.rate * ctx.share;
    if rate.is_nan() || rate <= 0.0 {
        return Err(anyhow!("thread {index}: no rate to send at ({rate})"));
    }
    state.borrow_mut().begin(&prefix, t0, warmup, duration);

    let npairs = frames.len();
    let total = ((warmup + duration).as_secs_f64() * rate).round() as u64;
    let due = |k: u64| Duration::from_nanos((k as f64 * 1e9 / rate) as u64);
    let mut k: u64 = 0;
    let mut max_lag = Duration::ZERO;
    let mut sent_in_window = 0u64;
    while k < total {
        let now = Instant::now();
        let next = t0 + due(k);
        if next > now {
            actix_rt::time::sleep_until(next.into()).await;
            continue;
        }
        max_lag = max_lag.max(now - next);
        let mut batch = 0;
        {
            let mut st = state.borrow_mut();
            while k < total && batch < 2000 {
                let d = due(k);
                if t0 + d > now {
                    break;
                }
                let i = k as usize;
                let (pair, dir) = (i % npairs, (i / npairs) % 2);
                let s = 2 * pair + dir;
                let planned = if mix_bp == (0, 0) { Op::Send } else { planned_op(k, mix_bp.0, mix_bp.1) };
                let (op, text) = match st.op_frame(planned, k, s, pair, body) {
                    Some(text) => (planned, text),
                    None => {
                        let (head, tail) = &frames[pair];
                        (Op::Send, format!("{head}{prefix}{k}{tail}"))
                    }
                };
                let due_us = d.as_micros() as u64;
                if due_us >= st.warmup_us {
                    sent_in_window += 1;
                }
                let ok = sockets[s].send_text(text);
                st.msgs.push(Msg { due_us, op, not_sent: !ok, ..Msg::default() });
                st.progress.add(SENT, 1);
                k += 1;
                batch += 1;
            }
        }
        tokio::task::yield_now().await;
    }

    // Drain: wait for outstanding acks and deliveries, at most `drain` after the last send.
    let drain_start = Instant::now().max(t0 + warmup + duration);
    let deadline = drain_start + drain;
    while Instant::now() < deadline && !state.borrow().settled() {
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    let drained = Instant::now().saturating_duration_since(drain_start);
    // Unexpected closes so far (ours come after the last run).
    let mut disconnects = Counts::new();
    let closes: Vec<Option<ws::Closed>> = sockets.iter().map(Socket::closed).collect();
    for c in closes.iter().flatten() {
        bump(&mut disconnects, &c.label(), 1);
    }

    let st = state.borrow();
    let mut r = ShardResult {
        sent_in_window,
        acks_in_window: st.acks_in_window,
        deliveries_in_window: st.deliveries_in_window,
        dup_acks: st.dup_acks,
        misrouted: st.misrouted,
        out_of_order: st.out_of_order,
        undecodable: st.undecodable,
        errors: st.errors.clone(),
        disconnects,
        ack: st.ack.clone(),
        delivery: st.delivered.clone(),
        max_lag,
        drain: drained,
        react_echo: st.react_echo.clone(),
        react_delivered: st.react_delivered.clone(),
        edit_ack: st.edit_ack.clone(),
        edit_delivered: st.edit_delivered.clone(),
        ..ShardResult::default()
    };
    let since_t0 = |t: Option<Instant>| match t {
        Some(t) if t >= t0 => format!("+{} ms", (t - t0).as_millis()),
        Some(_) => "before start".to_owned(),
        None => "never".to_owned(),
    };
    let mut lost_to = std::collections::BTreeSet::new();
    for (k, m) in st.msgs.iter().enumerate() {
        if m.not_sent {
            r.not_sent += 1;
            continue;
        }
        r.sent += 1;
        r.ops[m.op as usize] += 1;
        r.acked += u64::from(m.acked);
        r.errored += u64::from(m.errored && !m.acked);
        r.delivered += u64::from(m.delivered > 0);
        if !m.acked && !m.errored {
            r.unacked += 1;
        }
        if m.acked && m.delivered == 0 {
            r.lost += 1;
            let (s, to) = (st.sender(k), st.recipient(k));
            // One example per recipient socket: when it last heard anything, and whether it closed.
            if lost_to.insert(to) && r.lost_examples.len() < 10 {
                let closed = closes.get(to).cloned().flatten().map(|c| c.label()).unwrap_or_else(|| "open".into());
                r.lost_examples.push(format!(
                    "{prefix}{k} (conv {}, socket {s} -> {to}, due +{} ms; socket {to}: last frame {}, {closed})",
                    st.convs[k % st.pairs],
                    m.due_us / 1000,
                    since_t0(st.last_frame.get(to).copied().flatten()),
                ));
            }
        }
        if m.delivered > 1 {
            r.duplicated += 1;
            r.extra_deliveries += u64::from(m.delivered - 1);
        }
        if !m.acked && m.delivered > 0 {
            r.delivered_unacked += 1;
        }
    }
    r.lost_recipients = lost_to.len() as u64;
    Ok(r)
}

/// The `config` object of the JSON summary.
fn config_json(args: &Args) -> Value {
    let mut v = json!({
        "pairs": args.pairs, "rate": args.rate, "duration_secs": args.duration, "warmup_secs": args.warmup,
        "drain_secs": args.drain, "threads": args.threads, "body_bytes": args.body_bytes, "receipts": args.receipts,
        "placement": format!("{:?}", args.placement).to_lowercase(),
        "react_pct": args.react_pct, "edit_pct": args.edit_pct,
    });
    if let (Some(spec), Some(obj)) = (args.step, v.as_object_mut()) {
        obj.remove("rate");
        obj.insert("step".into(), spec.to_string().into());
        obj.insert("step_p99_ms".into(), args.step_p99_ms.into());
    }
    v
}

fn summarize(args: &Args, r: &ShardResult, watch: &Watch, setup_secs: f64) -> Outcome {
    let c = &args.common;
    let secs = args.duration as f64;
    let (ack, del) = (r.ack.summary(), r.delivery.summary());
    let (server, generator) = watch.json();
    let json = json!({
        "scenario": "direct",
        "label": c.label,
        "url": c.url,
        "nodes": c.node_urls(),
        "config": config_json(args),
        "setup_secs": (setup_secs * 10.0).round() / 10.0,
        "counts": {
            "sent": r.sent, "sent_in_window": r.sent_in_window, "acked": r.acked, "delivered": r.delivered,
            "unacked": r.unacked, "refused": r.errored, "lost": r.lost, "duplicated": r.duplicated,
            "extra_deliveries": r.extra_deliveries, "delivered_without_ack": r.delivered_unacked,
            "duplicate_acks": r.dup_acks, "out_of_order": r.out_of_order, "misrouted": r.misrouted,
            "undecodable": r.undecodable, "not_sent": r.not_sent,
        },
        "errors": r.errors,
        "disconnects": r.disconnects,
        "throughput": {
            "target_per_sec": args.rate,
            "sent_per_sec": per_sec(r.sent_in_window, secs),
            "acked_per_sec": per_sec(r.acks_in_window, secs),
            "delivered_per_sec": per_sec(r.deliveries_in_window, secs),
        },
        "ops": {"send": r.ops[0], "react": r.ops[1], "edit": r.ops[2]},
        "latency_ms": {
            "ack": ack, "delivered": del,
            "react_echo": r.react_echo.summary(), "react_delivered": r.react_delivered.summary(),
            "edit_ack": r.edit_ack.summary(), "edit_delivered": r.edit_delivered.summary(),
        },
        "max_schedule_lag_ms": r.max_lag.as_secs_f64() * 1000.0,
        "drain_secs": (r.drain.as_secs_f64() * 10.0).round() / 10.0,
        "lost_examples": r.lost_examples,
        "lost_recipients": r.lost_recipients,
        "setup_retries": crate::api::retries(),
        "server": server,
        "generator": generator,
    });
    let mut t = Text::new(&format!("direct{}", c.label.as_deref().map(|l| format!(" [{l}]")).unwrap_or_default()));
    t.kv("url", &c.url)
        .kv(
            "load",
            format!(
                "{} pairs, target {} msg/s, {} s (+{} s warm-up), {} thread(s){}",
                args.pairs,
                args.rate,
                args.duration,
                args.warmup,
                args.threads,
                if args.receipts { ", receipts" } else { "" }
            ),
        )
        .kv("set-up", format!("{setup_secs:.1} s"))
        .kv(
            "throughput (msg/s)",
            format!(
                "sent {} acked {} delivered {}",
                per_sec(r.sent_in_window, secs),
                per_sec(r.acks_in_window, secs),
                per_sec(r.deliveries_in_window, secs)
            ),
        )
        .kv("sent", r.sent)
        .kv("acked", r.acked)
        .kv("delivered", r.delivered)
        .kv("refused (error)", r.errored)
        .kv("errors by code", counts_inline(&r.errors))
        .kv("unacked", r.unacked)
        .kv("lost", r.lost)
        .kv("duplicated", r.duplicated)
        .kv("out of order", r.out_of_order)
        .kv("disconnects", counts_inline(&r.disconnects))
        .kv("max schedule lag", format!("{:.1} ms", r.max_lag.as_secs_f64() * 1000.0))
        .kv("drain", format!("{:.1} s", r.drain.as_secs_f64()))
        .kv("operations", format!("{} sends, {} reactions, {} edits", r.ops[0], r.ops[1], r.ops[2]));
    let mut rows = vec![("send->ack", ack), ("send->delivered", del)];
    if r.ops[1] > 0 {
        rows.push(("react->echo", r.react_echo.summary()));
        rows.push(("react->peer", r.react_delivered.summary()));
    }
    if r.ops[2] > 0 {
        rows.push(("edit->ack", r.edit_ack.summary()));
        rows.push(("edit->peer", r.edit_delivered.summary()));
    }
    t.latencies(&rows);
    watch.text(&mut t);

    let mut failures = Vec::new();
    let mut warnings = Vec::new();
    if r.lost > 0 {
        failures.push(format!(
            "LOST: {} message(s) acked but never delivered within {} s of drain, to {} recipient socket(s); e.g. {}",
            r.lost,
            args.drain,
            r.lost_recipients,
            r.lost_examples.join("; ")
        ));
    }
    if r.duplicated > 0 {
        failures.push(format!(
            "DUPLICATED: {} message(s) delivered more than once ({} extra deliveries)",
            r.duplicated, r.extra_deliveries
        ));
    }
    if r.out_of_order > 0 {
        failures.push(format!("OUT OF ORDER: {} deliveries with a seq not above the previous one", r.out_of_order));
    }
    let retries = crate::api::retries();
    if !retries.is_empty() {
        warnings.push(format!("SETUP RETRIES (server errors during set-up): {}", counts_inline(&retries)));
    }
    if r.unacked > 0 {
        warnings.push(format!("UNACKED: {} message(s) got neither an ack nor an error", r.unacked));
    }
    if !r.errors.is_empty() {
        warnings.push(format!("ERRORS: {}", counts_inline(&r.errors)));
    }
    if !r.disconnects.is_empty() {
        warnings.push(format!("DISCONNECTS: {}", counts_inline(&r.disconnects)));
    }
    if r.delivered_unacked > 0 || r.dup_acks > 0 || r.misrouted > 0 || r.undecodable > 0 || r.not_sent > 0 {
        warnings.push(format!(
            "ODD: delivered without ack {}, duplicate acks {}, misrouted {}, undecodable {}, not sent {}",
            r.delivered_unacked, r.dup_acks, r.misrouted, r.undecodable, r.not_sent
        ));
    }
    Outcome { json, text: t.render(), failures, warnings }
}
