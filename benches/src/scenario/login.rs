//! `login`: registers N users, then logs them in over and over from C concurrent tasks (closed
//! loop: each task waits for its answer before the next login) for a fixed time. Reports logins
//! per second and login latency. Login cost is dominated by bcrypt at the cost the users were
//! registered with, so start the server with the `IM__AUTH__BCRYPT_COST` to measure.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::{Common, Outcome, Watch};
use crate::api::Api;
use crate::progress::Progress;
use crate::report::{bump, counts_inline, per_sec, Counts, Latency, Text};
use crate::setup;

/// Flags of `login`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,
    /// Users to register (logins cycle through them).
    #[arg(long, default_value_t = 16)]
    pub users: usize,
    /// Concurrent login loops.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 20)]
    pub duration: u64,
    /// Seconds of logins before the measured window (not counted).
    #[arg(long, default_value_t = 0)]
    pub warmup: u64,
}

#[derive(Default)]
struct State {
    ok: u64,
    failed: Counts,
    latency: Latency,
    attempts: u64,
}

/// Runs the scenario on an actix system of its own.
pub fn run(args: Args) -> anyhow::Result<Outcome> {
    actix_rt::System::new().block_on(run_async(args))
}

async fn run_async(args: Args) -> anyhow::Result<Outcome> {
    let c = &args.common;
    let api = Api::new(&c.url, c.timeout());
    let progress = Progress::new(&["done", "ok", "failed"]);
    let printer = progress.spawn_printer(c.quiet);
    let names = setup::usernames(&c.prefix(), args.users.max(1));
    let res = measure(&args, &api, &names, &progress).await;
    progress.stop();
    if let Some(p) = printer {
        let _ = p.join();
    }
    res
}

async fn measure(
    args: &Args,
    api: &Api,
    names: &[String],
    progress: &std::sync::Arc<Progress>,
) -> anyhow::Result<Outcome> {
    let c = &args.common;
    setup::register_all(api, names, c.setup_concurrency, progress).await?;

    progress.reset();
    progress.phase(if args.warmup > 0 { "warmup" } else { "run" });
    let start = Instant::now() + Duration::from_secs(args.warmup);
    let end = start + Duration::from_secs(args.duration);
    let state = Rc::new(RefCell::new(State::default()));
    let mut watch = Watch::new(&c.pid);
    let mut tasks = Vec::new();
    let concurrency = args.concurrency.max(1);
    for t in 0..concurrency {
        let (api, state, progress) = (api.clone(), state.clone(), progress.clone());
        let names = names.to_vec();
        tasks.push(actix_rt::spawn(async move {
            // Task t logs in users t, t + C, t + 2C, ... (mod N): concurrent logins are of
            // different users whenever N >= C.
            let mut i = 0usize;
            while Instant::now() < end {
                let Some(name) = names.get((t + i * concurrency) % names.len()) else { break };
                i += 1;
                let res = api.login_timed(name).await;
                let done = Instant::now();
                progress.add(0, 1);
                let counted = done >= start && done <= end;
                let mut st = state.borrow_mut();
                match res {
                    Ok((Ok(_), took)) => {
                        progress.add(1, 1);
                        if counted {
                            st.ok += 1;
                            st.latency.record(took);
                        }
                    }
                    Ok((Err(status), _)) => {
                        progress.add(2, 1);
                        if counted {
                            bump(&mut st.failed, &format!("http {}", status.as_u16()), 1);
                        }
                    }
                    Err(e) => {
                        progress.add(2, 1);
                        if counted {
                            bump(&mut st.failed, &format!("transport: {e}"), 1);
                        }
                    }
                }
                if counted {
                    st.attempts += 1;
                }
            }
        }));
    }
    // The measured window, for CPU sampling.
    actix_rt::time::sleep_until(start.into()).await;
    progress.phase("run");
    watch.start();
    actix_rt::time::sleep_until(end.into()).await;
    watch.stop();
    progress.phase("finish");
    for t in tasks {
        let _ = t.await;
    }

    let st = state.borrow();
    let secs = args.duration as f64;
    let lat = st.latency.summary();
    let (server, generator) = watch.json();
    let json = json!({
        "scenario": "login",
        "label": c.label,
        "url": c.url,
        "config": {"users": names.len(), "concurrency": concurrency, "duration_secs": args.duration, "warmup_secs": args.warmup},
        "counts": {"attempts": st.attempts, "ok": st.ok, "failed": st.failed},
        "throughput": {"logins_per_sec": per_sec(st.ok, secs)},
        "latency_ms": {"login": lat},
        "setup_retries": crate::api::retries(),
        "server": server,
        "generator": generator,
    });
    let mut t = Text::new(&format!("login{}", c.label.as_deref().map(|l| format!(" [{l}]")).unwrap_or_default()));
    t.kv("url", &c.url)
        .kv("users / concurrency", format!("{} / {}", names.len(), concurrency))
        .kv("window", format!("{} s (warm-up {} s)", args.duration, args.warmup))
        .kv("logins ok", st.ok)
        .kv("logins failed", counts_inline(&st.failed))
        .kv("logins/s", per_sec(st.ok, secs))
        .latencies(&[("login", lat)]);
    watch.text(&mut t);
    let mut warnings = Vec::new();
    let retries = crate::api::retries();
    if !retries.is_empty() {
        warnings.push(format!("SETUP RETRIES (server errors during set-up): {}", counts_inline(&retries)));
    }
    if !st.failed.is_empty() {
        warnings.push(format!("LOGIN ERRORS: {}", counts_inline(&st.failed)));
    }
    Ok(Outcome { json, text: t.render(), failures: Vec::new(), warnings })
}
