//! `im-loadgen`: load scenarios against a running `im-server`.
//!
//! ```text
//! # logins per second (bcrypt-bound: set the server's IM__AUTH__BCRYPT_COST to what you measure)
//! im-loadgen login  --url http://127.0.0.1:8080 --users 16 --concurrency 8 --duration 20
//!
//! # 1:1 messages, open loop at a fixed rate; then rising rates on the same pairs until the
//! # send->ack p99 passes 10 ms (or anything is lost), with the highest rate that held
//! im-loadgen direct --url http://127.0.0.1:8080 --pairs 200 --rate 5000 --duration 20 --warmup 2
//! im-loadgen direct --url http://127.0.0.1:8080 --pairs 200 --step 1000:+1000:20000 --step-p99-ms 10 \
//!     --duration 10 --warmup 2
//! # the same with 10 % of the operations reactions and 2 % edits (their latencies apart)
//! im-loadgen direct --url http://127.0.0.1:8080 --pairs 200 --rate 5000 --react-pct 10 --edit-pct 2
//!
//! # search latency over 1,000,000 messages stored through the server (100 conversations)
//! im-loadgen search --url http://127.0.0.1:8080 --pairs 100 --messages 1000000 --queries 200
//!
//! # group fan-out; the step bound is on send->delivered to the last member
//! im-loadgen group  --url http://127.0.0.1:8080 --groups 1 --members 1000 --rate 100 --duration 15
//! im-loadgen group  --url http://127.0.0.1:8080 --groups 1 --members 500 --step 10:x2:640 --step-p99-ms 50
//!
//! # 5000 idle sessions (500 users x 10 devices) held 20 s: connect latency, server RSS per
//! # session and idle CPU (server started with IM__AUTH__BCRYPT_COST=4 for quick logins)
//! im-loadgen idle --url http://127.0.0.1:8090 --sessions 5000 --users 500 --hold 20 --pid "$(pgrep -n im-server)"
//!
//! # 40,000 sessions from two processes (20,000 open files each), from 8 loopback source
//! # addresses, over two nodes, with an app-level ping every 30 s
//! im-loadgen idle --sessions 40000 --users 4000 --source-ips 8 --shard 0/2 --prefix idle40k \
//!     --nodes http://127.0.0.1:8081,http://127.0.0.1:8082 --pid 1234,1235 --app-ping-secs 30 &
//! im-loadgen idle --sessions 40000 --users 4000 --source-ips 8 --shard 1/2 --prefix idle40k \
//!     --nodes http://127.0.0.1:8081,http://127.0.0.1:8082 --pid 1234,1235 --app-ping-secs 30
//! ```
//!
//! The summary goes to stdout (text, or JSON with `--json`), a progress line to stderr once a
//! second. Exit status: 0 on success, 1 when the run found lost, duplicated or out-of-order
//! messages (a line starting with `LOST:` / `DUPLICATED:` / `OUT OF ORDER:` says so) or, for
//! `idle`, sessions that were not established or closed early (`NOT ESTABLISHED:` / `CLOSED:`),
//! 2 when it could not run. In step mode a step over the latency bound ends the series without
//! failing the run.

use std::process::ExitCode;

use benches::report::{emit, emit_json};
use benches::scenario::{direct, group, idle, login, search, Outcome};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "im-loadgen", about = "Load generator for im-server (HTTP + WebSocket)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Register N users, then log them in repeatedly from C tasks: logins/s and latency.
    Login(login::Args),
    /// Friend pairs on WebSockets sending 1:1 messages open-loop at a target rate (or at rising
    /// rates with --step).
    Direct(direct::Args),
    /// Groups of members on WebSockets; senders post to their group open-loop at a target rate
    /// (or at rising rates with --step).
    Group(group::Args),
    /// Many authenticated, idle WebSocket sessions held open: connect latency, server memory per
    /// session, idle CPU, and that every session stays open.
    Idle(idle::Args),
    /// Fills the store with a large history through the server, then times message searches
    /// (rare, common, Chinese, two-character and absent terms; over all conversations and one).
    Search(search::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match benches::sys::raise_nofile_limit() {
        Ok(n) => log_line(&format!("open-file limit: {n}")),
        Err(e) => log_line(&format!("could not raise the open-file limit: {e}")),
    }
    let (json, res) = match cli.command {
        Command::Login(a) => (a.common.json, login::run(a)),
        Command::Direct(a) => (a.common.json, direct::run(a)),
        Command::Group(a) => (a.common.json, group::run(a)),
        Command::Idle(a) => (a.common.json, idle::run(a)),
        Command::Search(a) => (a.common.json, search::run(a)),
    };
    match res {
        Ok(outcome) => report(outcome, json),
        Err(e) => {
            log_line(&format!("ERROR: {e:#}"));
            ExitCode::from(2)
        }
    }
}

fn report(mut o: Outcome, json: bool) -> ExitCode {
    let printed = if json {
        if let Some(obj) = o.json.as_object_mut() {
            obj.insert("ok".into(), o.failures.is_empty().into());
            obj.insert("failures".into(), o.failures.clone().into());
            obj.insert("warnings".into(), o.warnings.clone().into());
        }
        emit_json(&o.json)
    } else {
        let mut text = o.text.clone();
        for l in o.warnings.iter().chain(&o.failures) {
            text.push_str(l);
            text.push('\n');
        }
        emit(&text)
    };
    if let Err(e) = printed {
        log_line(&format!("ERROR: writing the summary: {e}"));
        return ExitCode::from(2);
    }
    for l in o.warnings.iter().chain(&o.failures) {
        log_line(l);
    }
    if o.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn log_line(s: &str) {
    eprintln!("{s}");
}
