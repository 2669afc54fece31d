//! `im-server` as a process of its own (the built binary), for tests that kill it or read its
//! log: started on port 0 with `IM__...` settings, its stderr lines kept.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::helpers::TestResult;

/// A running `im-server` process.
pub struct ServerProc {
    child: tokio::process::Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Every line it wrote to stderr so far.
    pub lines: Arc<Mutex<Vec<String>>>,
}

impl ServerProc {
    /// Starts the binary on `db_url` with `env` on top of the test defaults (port 0, bcrypt cost
    /// 4, no throttle), and waits until it listens.
    pub async fn start(db_url: &str, env: &[(&str, &str)]) -> TestResult<Self> {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_im-server"));
        cmd.env("IM__SERVER__BIND", "127.0.0.1:0")
            .env("IM__DATABASE__URL", db_url)
            .env("IM__AUTH__BCRYPT_COST", "4")
            .env("IM__THROTTLE__ENABLED", "false")
            .env("RUST_LOG", "warn,im_server=info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn()?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let mut reader = BufReader::new(stderr).lines();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let base = loop {
            let line = actix_rt::time::timeout(Duration::from_secs(30), reader.next_line())
                .await??
                .ok_or("server exited before listening")?;
            // A text line ends with the URL; in a JSON line a quote follows it.
            let found =
                line.split("listening on ").nth(1).and_then(|r| r.split('"').next()).map(|r| r.trim().to_owned());
            lines.lock().map_err(|_| "poisoned")?.push(line);
            if let Some(base) = found {
                break base;
            }
        };
        // Keep reading, so the child never blocks on a full pipe.
        let keep = lines.clone();
        actix_rt::spawn(async move {
            while let Ok(Some(l)) = reader.next_line().await {
                if let Ok(mut v) = keep.lock() {
                    v.push(l);
                }
            }
        });
        Ok(ServerProc { child, base, lines })
    }

    /// SIGKILL: no drain, no flush, no goodbye.
    pub async fn kill(mut self) -> TestResult {
        self.child.start_kill()?;
        self.child.wait().await?;
        Ok(())
    }

    /// A copy of the lines written so far.
    pub fn log(&self) -> Vec<String> {
        self.lines.lock().map(|v| v.clone()).unwrap_or_default()
    }
}
