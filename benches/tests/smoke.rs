//! CI smoke of every `im-loadgen` scenario: the real server (started in-process on port 0 with a
//! scratch SQLite database) and the real `im-loadgen` binary with small numbers. It asserts what
//! a run must never show — lost, duplicated or out-of-order messages, failed sessions — never
//! timings (those belong to the benchmarks, docs/BENCHMARKS.md).

use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

/// A server on its own thread and actix system; returns its base URL and pid (this process).
fn server() -> TestResult<(String, schema::db::scratch::ScratchDb)> {
    let db = schema::db::scratch::ScratchDb::sqlite();
    let mut s = server::config::Settings::default();
    s.server.bind = "127.0.0.1:0".into();
    s.server.workers = 2;
    s.database.url = db.url.clone();
    s.auth.bcrypt_cost = 4;
    s.throttle.enabled = false;
    s.ws.frames_per_sec = 100_000;
    s.ws.burst = 100_000;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            match server::app::start(s, schema::Clock::system()).await {
                Ok(running) => {
                    let _ = tx.send(Ok(format!("http://{}", running.addr)));
                    let _ = running.wait().await;
                }
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                }
            }
        });
    });
    let base = rx.recv_timeout(Duration::from_secs(60))??;
    Ok((base, db))
}

/// Runs `im-loadgen <args> --json --quiet` and returns its summary, asserting a clean exit.
fn loadgen(args: &[&str]) -> TestResult<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_im-loadgen")).args(args).args(["--json", "--quiet"]).output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let summary: Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("no JSON summary ({e}); status {}; stderr:\n{stderr}", out.status))?;
    assert!(out.status.success(), "im-loadgen {args:?} failed ({}): {summary}\n{stderr}", out.status);
    assert_eq!(summary["ok"], true, "{summary}");
    Ok(summary)
}

fn count(v: &Value, key: &str) -> i64 {
    v["counts"][key].as_i64().unwrap_or(-1)
}

#[test]
fn every_scenario_runs_clean_against_a_real_server() -> TestResult {
    let (base, _db) = server()?;
    let pid = std::process::id().to_string();

    let login = loadgen(&["login", "--url", &base, "--users", "4", "--concurrency", "2", "--duration", "2"])?;
    assert!(count(&login, "ok") > 0, "{login}");
    assert!(login["counts"]["failed"].as_object().is_some_and(|m| m.is_empty()), "{login}");

    let direct = loadgen(&[
        "direct",
        "--url",
        &base,
        "--pairs",
        "20",
        "--rate",
        "200",
        "--duration",
        "2",
        "--warmup",
        "1",
        "--pid",
        &pid,
    ])?;
    for k in ["lost", "duplicated", "out_of_order", "unacked"] {
        assert_eq!(count(&direct, k), 0, "direct {k}: {direct}");
    }
    assert!(count(&direct, "acked") > 0 && count(&direct, "delivered") == count(&direct, "acked"), "{direct}");

    let group = loadgen(&[
        "group",
        "--url",
        &base,
        "--groups",
        "2",
        "--members",
        "30",
        "--rate",
        "20",
        "--duration",
        "2",
        "--warmup",
        "1",
    ])?;
    for k in ["lost", "duplicated", "out_of_order", "missing_deliveries"] {
        assert_eq!(count(&group, k), 0, "group {k}: {group}");
    }
    assert!(count(&group, "deliveries") > 0, "{group}");

    let idle = loadgen(&["idle", "--url", &base, "--sessions", "200", "--users", "20", "--hold", "2", "--pid", &pid])?;
    assert_eq!(count(&idle, "established"), 200, "{idle}");
    assert_eq!(count(&idle, "failed"), 0, "{idle}");
    Ok(())
}
