//! `search`: message search latency over a large history.
//!
//! P friend pairs; the store is filled through the server itself (WebSocket `send`s from both
//! sides of every pair, at most `--window` unacked at a time) with `--messages` messages whose
//! bodies are drawn from a fixed pseudo-random vocabulary, so every pair's conversation holds
//! `messages / P` of them. A few marker terms are planted at known frequencies:
//!
//! | class | term | share of messages |
//! |---|---|---|
//! | `rare` | `zqxjv` | 1 in 100,000 |
//! | `common` | `meeting` | 1 in 100 |
//! | `chinese` | `会议室` | 1 in 1,000 |
//! | `short` | `qz` (two characters: a scan, not an index look-up) | 1 in 1,000 |
//! | `absent` | `nowhere-term` | none |
//!
//! Then, for each class, `--queries` searches by random users, one at a time
//! (`GET /api/v1/search/messages?q=...&limit=20`, over all my conversations, and with `conv=`
//! over one), timed from request to the last byte of the answer. Each answer is checked: every
//! hit contains the term, and a class that must find something finds it.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::bail;
use awc::http::{Method, StatusCode};
use schema::protocol::ClientFrame;
use serde_json::{json, Value};

use super::{Common, Outcome};
use crate::api::{Api, User};
use crate::progress::Progress;
use crate::report::{Latency, Text};
use crate::setup;
use crate::ws::{self, FrameView};

/// Flags of `search`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,
    /// Friend pairs (each pair one conversation).
    #[arg(long, default_value_t = 100)]
    pub pairs: usize,
    /// Messages to store before searching (over all pairs).
    #[arg(long, default_value_t = 1_000_000)]
    pub messages: u64,
    /// Most unacked sends at a time while filling.
    #[arg(long, default_value_t = 2000)]
    pub window: usize,
    /// Searches per query class and scope.
    #[arg(long, default_value_t = 200)]
    pub queries: usize,
    /// Hits per page (`limit`).
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
}

/// A query class: its name, its term, and whether a search over all my conversations must find
/// something (the term is frequent enough to be in every conversation).
const CLASSES: &[(&str, &str, bool)] = &[
    ("rare", "zqxjv", false),
    ("common", "meeting", true),
    ("chinese", "会议室", true),
    ("short", "qz", true),
    ("absent", "nowhere-term", false),
];

/// The body of message `k`: six vocabulary words, and the marker terms at their frequencies.
fn body_of(k: u64) -> String {
    const SYL: &[&str] =
        &["ka", "lo", "mi", "ra", "te", "nu", "so", "vi", "de", "pa", "ho", "ri", "mo", "ne", "ta", "bu"];
    let mut x = k.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    let mut next = || {
        x ^= x >> 33;
        x = x.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
        x ^= x >> 33;
        x
    };
    let mut words: Vec<String> = (0..6)
        .map(|_| {
            let r = next();
            (0..2 + (r % 3) as usize).map(|i| SYL[((r >> (8 + 4 * i)) & 15) as usize]).collect()
        })
        .collect();
    // The markers by an independent draw, so that they spread over every conversation.
    let m = next();
    // The rare marker by position, so that a fill of n messages holds exactly n / 100,000 of it
    // (a random 1-in-100,000 draw gives 10 +- 3 over a million, too loose to measure against).
    if k % 100_000 == 50_021 {
        words.push("zqxjv".into());
    }
    if (m >> 20) % 100 == 3 {
        words.push("meeting".into());
    }
    if (m >> 30) % 1000 == 5 {
        words.push("在会议室见".into());
    }
    if (m >> 42) % 1000 == 7 {
        words.push("qz".into());
    }
    words.join(" ")
}

/// Runs the scenario.
pub fn run(args: Args) -> anyhow::Result<Outcome> {
    if args.pairs == 0 || args.messages == 0 || args.queries == 0 || args.window == 0 {
        bail!("--pairs, --messages, --queries and --window must be positive");
    }
    let progress = Progress::new(&["sent", "acked", "searches"]);
    let printer = progress.spawn_printer(args.common.quiet);
    let res = actix_rt::System::new().block_on(run_inner(&args, &progress));
    progress.stop();
    if let Some(p) = printer {
        let _ = p.join();
    }
    res
}

/// Fill state shared with the socket readers.
#[derive(Default)]
struct Fill {
    acked: u64,
    errors: u64,
    first_error: Option<String>,
}

async fn run_inner(args: &Args, progress: &std::sync::Arc<Progress>) -> anyhow::Result<Outcome> {
    let c = &args.common;
    let api = Api::new(&c.url, c.timeout());
    let set_up = Instant::now();
    let pairs = setup::friend_pairs(&api, &c.prefix(), args.pairs, c.setup_concurrency, progress).await?;
    let setup_secs = set_up.elapsed().as_secs_f64();

    // Fill.
    let fill = Rc::new(RefCell::new(Fill::default()));
    let mut sockets = Vec::with_capacity(2 * pairs.len());
    for (a, b) in &pairs {
        for u in [a, b] {
            let fill = fill.clone();
            let prog = progress.clone();
            let (sock, _) = ws::connect(&api, &u.token, c.timeout(), move |bytes, _| {
                let Ok(v) = serde_json::from_slice::<FrameView<'_>>(bytes) else { return };
                let mut f = fill.borrow_mut();
                match v.kind.as_ref() {
                    "ack" => {
                        f.acked += 1;
                        prog.add(1, 1);
                    }
                    "error" => {
                        f.errors += 1;
                        if f.first_error.is_none() {
                            f.first_error = Some(String::from_utf8_lossy(bytes).into_owned());
                        }
                    }
                    _ => {}
                }
            })
            .await?;
            sockets.push(sock);
        }
    }
    let convs: Vec<schema::ConvId> = pairs.iter().map(|(a, b)| setup::direct_conv(a, b)).collect();
    let started = Instant::now();
    let mut sent: u64 = 0;
    while sent < args.messages {
        let outstanding = sent - fill.borrow().acked - fill.borrow().errors;
        if outstanding as usize >= args.window {
            actix_rt::time::sleep(Duration::from_millis(1)).await;
            continue;
        }
        let batch = (args.window - outstanding as usize).min(500) as u64;
        for _ in 0..batch.min(args.messages - sent) {
            let k = sent;
            let pair = (k % pairs.len() as u64) as usize;
            let side = ((k / pairs.len() as u64) % 2) as usize;
            let frame = ClientFrame::Send {
                id: format!("f{k}"),
                conv: convs[pair].clone(),
                body: body_of(k),
                mentions: vec![],
                mention_all: false,
                reply_to: None,
                attachment: None,
                forward: None,
            };
            if !sockets[2 * pair + side].send_text(serde_json::to_string(&frame)?) {
                bail!("socket {} closed while filling", 2 * pair + side);
            }
            sent += 1;
            progress.add(0, 1);
        }
        tokio::task::yield_now().await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while fill.borrow().acked + fill.borrow().errors < sent && Instant::now() < deadline {
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    let fill_secs = started.elapsed().as_secs_f64();
    let (acked, fill_errors, first_error) = {
        let f = fill.borrow();
        (f.acked, f.errors, f.first_error.clone())
    };
    for s in &sockets {
        s.close();
    }
    if acked < sent {
        bail!("filling: {acked} of {sent} sends acked ({fill_errors} errors; first: {first_error:?})");
    }

    // Search.
    let mut rng_state: u64 = 0x2545_F491_4F6C_DD1D;
    let mut pick = |n: usize| {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        (rng_state % n as u64) as usize
    };
    let users: Vec<(&User, &schema::ConvId)> =
        pairs.iter().zip(&convs).flat_map(|((a, b), conv)| [(a, conv), (b, conv)]).collect();
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    let mut table = json!({});
    for &(class, term, must_find) in CLASSES {
        for scope in ["all", "conv"] {
            let mut lat = Latency::new();
            let mut hits_total = 0usize;
            for _ in 0..args.queries {
                let (user, conv) = users[pick(users.len())];
                let mut path = format!("/api/v1/search/messages?q={}&limit={}", encode(term), args.limit);
                if scope == "conv" {
                    path.push_str(&format!("&conv={}", encode(conv.as_str())));
                }
                let t = Instant::now();
                let (status, v) = api.call_once(Method::GET, &path, Some(&user.token), None).await?;
                lat.record(t.elapsed());
                progress.add(2, 1);
                if status != StatusCode::OK {
                    failures.push(format!("{class}/{scope}: {status} {v}"));
                    break;
                }
                let items = v["items"].as_array().cloned().unwrap_or_default();
                hits_total += items.len();
                if let Some(bad) = items.iter().find(|i| !hit_matches(i, term)) {
                    failures.push(format!("{class}/{scope}: a hit without {term:?}: {bad}"));
                    break;
                }
                if must_find && items.is_empty() {
                    failures.push(format!("{class}/{scope}: no hit for {term:?} by user {}", user.id));
                    break;
                }
                if class == "absent" && !items.is_empty() {
                    failures.push(format!("{class}/{scope}: hits for a term that is nowhere"));
                    break;
                }
            }
            let name = format!("{class}/{scope}");
            let summary = lat.summary();
            table[&name] =
                json!({"term": term, "latency_ms": summary, "mean_hits": hits_total as f64 / args.queries as f64});
            rows.push((name, summary));
        }
    }

    let json = json!({
        "scenario": "search",
        "label": c.label,
        "url": c.url,
        "config": {"pairs": args.pairs, "messages": args.messages, "queries": args.queries, "limit": args.limit, "window": args.window},
        "setup_secs": (setup_secs * 10.0).round() / 10.0,
        "fill": {"sent": sent, "acked": acked, "errors": fill_errors, "secs": (fill_secs * 10.0).round() / 10.0,
            "per_sec": (sent as f64 / fill_secs).round()},
        "searches": table,
        "server": c.pid.first().and_then(|p| crate::sys::memory(*p).ok()).map_or(Value::Null, |m| json!(m)),
    });
    let mut t = Text::new(&format!("search{}", c.label.as_deref().map(|l| format!(" [{l}]")).unwrap_or_default()));
    t.kv("url", &c.url)
        .kv(
            "history",
            format!("{} messages in {} conversations ({} each)", sent, pairs.len(), sent / pairs.len() as u64),
        )
        .kv("set-up", format!("{setup_secs:.1} s"))
        .kv("fill", format!("{fill_secs:.1} s ({:.0} msg/s), {fill_errors} errors", sent as f64 / fill_secs))
        .kv("queries", format!("{} per class and scope, limit {}, one at a time", args.queries, args.limit));
    let named: Vec<(&str, _)> = rows.iter().map(|(n, s)| (n.as_str(), *s)).collect();
    t.latencies(&named);
    if fill_errors > 0 {
        failures.push(format!("FILL ERRORS: {fill_errors}; first: {}", first_error.unwrap_or_default()));
    }
    Ok(Outcome { json, text: t.render(), failures, warnings: Vec::new() })
}

/// Percent-encodes a query parameter value.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A search hit is right when its body holds the term (ignoring case) and every highlight, a
/// `[start, end)` range of characters in the body, covers an occurrence of it.
fn hit_matches(hit: &Value, term: &str) -> bool {
    let body = hit["message"]["body"].as_str().unwrap_or("").to_lowercase();
    let term = term.to_lowercase();
    if !body.contains(&term) {
        return false;
    }
    let chars: Vec<char> = body.chars().collect();
    let spans = hit["highlights"].as_array().cloned().unwrap_or_default();
    !spans.is_empty()
        && spans.iter().all(|s| {
            let (a, b) = (s[0].as_u64().unwrap_or(0) as usize, s[1].as_u64().unwrap_or(0) as usize);
            a < b && b <= chars.len() && chars[a..b].iter().collect::<String>() == term
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_come_at_their_frequencies() {
        // Within 25 % of the planned counts over 1,000,000 messages, and spread: every one of
        // 100 conversations (k mod 100) gets its share of the frequent markers.
        let n = 1_000_000u64;
        let bodies: Vec<String> = (0..n).map(body_of).collect();
        let count = |t: &str| bodies.iter().filter(|b| b.contains(t)).count() as f64;
        let near = |got: f64, want: f64| (got - want).abs() <= want * 0.25;
        assert_eq!(count("zqxjv"), 10.0);
        assert!(near(count("meeting"), 10_000.0), "meeting: {}", count("meeting"));
        assert!(near(count("会议室"), 1_000.0), "会议室: {}", count("会议室"));
        assert!(near(count("qz"), 1_000.0), "qz: {}", count("qz"));
        assert_eq!(count("nowhere-term"), 0.0);
        for term in ["meeting", "会议室", "qz"] {
            for conv in 0..100 {
                let hits = (conv..n).step_by(100).filter(|&k| bodies[k as usize].contains(term)).count();
                assert!(hits > 0, "{term} is in no message of conversation {conv}");
            }
        }
    }

    #[test]
    fn a_hit_matches_by_body_and_highlights() {
        let hit = |body: &str, spans: Value| json!({"message": {"body": body}, "highlights": spans});
        assert!(hit_matches(&hit("rane qz", json!([[5, 7]])), "qz"));
        assert!(hit_matches(&hit("在会议室见", json!([[1, 4]])), "会议室"));
        assert!(hit_matches(&hit("A Meeting", json!([[2, 9]])), "meeting"));
        assert!(!hit_matches(&hit("rane qz", json!([[4, 6]])), "qz"), "a highlight off the term");
        assert!(!hit_matches(&hit("rane qz", json!([])), "qz"), "no highlight");
        assert!(!hit_matches(&hit("rane q z", json!([[5, 7]])), "qz"), "a body without the term");
        assert!(!hit_matches(&json!({"body": "qz", "highlights": [[0, 2]]}), "qz"), "the body is under message");
    }

    #[test]
    fn percent_encoding() {
        assert_eq!(encode("d:1:2"), "d%3A1%3A2");
        assert_eq!(encode("会"), "%E4%BC%9A");
        assert_eq!(encode("a-b_c"), "a-b_c");
    }
}
