//! A real cluster per test: its own Redis server, one scratch PostgreSQL database, N `im-server`
//! processes (the built binary) and nginx in front, all on loopback with free ports.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::helpers::{Http, TestResult};

/// The admin token every test node gets.
pub const ADMIN: &str = "cluster-test-admin-token";
/// Liveness TTL of a node in these tests (seconds): a killed node's users go offline this fast.
/// `IM_TEST_NODE_TTL_SECS` overrides it (benches/scripts/failover.sh measures with the defaults).
pub fn node_ttl_secs() -> u64 {
    std::env::var("IM_TEST_NODE_TTL_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(3)
}

/// Heartbeat of a node in these tests (seconds); `IM_TEST_HEARTBEAT_SECS` overrides it.
pub fn heartbeat_secs() -> u64 {
    std::env::var("IM_TEST_HEARTBEAT_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(1)
}

/// A free loopback port (bound and released; the caller binds it right after).
pub fn free_port() -> TestResult<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn which(name: &str, fallbacks: &[&str]) -> TestResult<PathBuf> {
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let p = dir.join(name);
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    for f in fallbacks {
        if std::path::Path::new(f).is_file() {
            return Ok(PathBuf::from(f));
        }
    }
    Err(format!("{name} is not installed (scripts/services.sh installs it)").into())
}

async fn wait_port(port: u16, what: &str) -> TestResult {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!("{what} did not listen on {port}").into())
}

/// A private redis-server (so a test may restart it without disturbing anyone else).
pub struct Redis {
    pub port: u16,
    child: Option<Child>,
}

impl Redis {
    pub async fn start() -> TestResult<Self> {
        let mut r = Redis { port: free_port()?, child: None };
        r.up().await?;
        Ok(r)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Starts the server (again) on the same port, empty (no persistence, like a restart after a
    /// crash of a cache-only Redis).
    pub async fn up(&mut self) -> TestResult {
        let bin = which("redis-server", &["/usr/bin/redis-server", "/usr/local/bin/redis-server"])?;
        let child = Command::new(bin)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        self.child = Some(child);
        wait_port(self.port, "redis-server").await
    }

    /// Kills the server (SIGKILL): every connection to it breaks.
    pub async fn down(&mut self) -> TestResult {
        if let Some(mut c) = self.child.take() {
            c.start_kill()?;
            c.wait().await?;
        }
        Ok(())
    }
}

/// One `im-server` process.
pub struct Node {
    pub id: String,
    pub port: u16,
    child: Option<Child>,
}

impl Node {
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// nginx in front of the nodes.
pub struct Nginx {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

/// A running cluster.
pub struct Cluster {
    pub redis: Redis,
    pub nodes: Vec<Node>,
    pub nginx: Option<Nginx>,
    db: schema::db::scratch::ScratchDb,
    namespace: String,
    /// Extra `IM__...` settings every node of this cluster gets.
    env: Vec<(String, String)>,
}

impl Cluster {
    /// `n` nodes on one PostgreSQL database and a private Redis; with nginx if `lb`.
    pub async fn start(n: usize, lb: bool) -> TestResult<Self> {
        Self::start_with(n, lb, &[]).await
    }

    /// [`Cluster::start`] with extra settings for every node (`("IM__CHAT__MAX_GROUP_MEMBERS", "6")`).
    pub async fn start_with(n: usize, lb: bool, env: &[(&str, &str)]) -> TestResult<Self> {
        let db = tokio::task::spawn_blocking(schema::db::scratch::ScratchDb::postgres).await??;
        let redis = Redis::start().await?;
        let namespace = format!("t{}", rand_suffix());
        let env = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let mut c = Cluster { redis, nodes: Vec::new(), nginx: None, db, namespace, env };
        for i in 0..n {
            let node = Node { id: format!("node-{}", i + 1), port: free_port()?, child: None };
            c.nodes.push(node);
            // The first node applies the migrations before the others start.
            c.boot(i).await?;
        }
        if lb {
            c.nginx = Some(c.start_nginx().await?);
        }
        Ok(c)
    }

    async fn boot(&mut self, i: usize) -> TestResult {
        let node = &self.nodes[i];
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_im-server"));
        cmd.env("IM__SERVER__BIND", format!("127.0.0.1:{}", node.port))
            .env("IM__SERVER__WORKERS", "1")
            .env("IM__SERVER__SHUTDOWN_TIMEOUT_SECS", "2")
            .env("IM__SERVER__DRAIN_GRACE_SECS", "1")
            .env("IM__DATABASE__URL", &self.db.url)
            .env("IM__DATABASE__POOL_SIZE", "4")
            .env("IM__DATABASE__RUN_MIGRATIONS", if i == 0 { "true" } else { "false" })
            .env("IM__CLUSTER__REDIS_URL", self.redis.url())
            .env("IM__CLUSTER__NODE_ID", &node.id)
            .env("IM__CLUSTER__NAMESPACE", &self.namespace)
            .env("IM__CLUSTER__HEARTBEAT_SECS", heartbeat_secs().to_string())
            .env("IM__CLUSTER__NODE_TTL_SECS", node_ttl_secs().to_string())
            .env("IM__AUTH__BCRYPT_COST", "4")
            // Every test user logs in from 127.0.0.1 (and through nginx from its address).
            .env("IM__THROTTLE__ENABLED", "false")
            .env("IM__ADMIN__TOKEN", ADMIN)
            .env("RUST_LOG", std::env::var("IM_TEST_NODE_LOG").unwrap_or_else(|_| "warn".into()))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn()?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let tag = node.id.clone();
        let echo = std::env::var_os("IM_TEST_NODE_LOG").is_some();
        actix_rt::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                if echo {
                    eprintln!("[{tag}] {l}");
                }
            }
        });
        self.nodes[i].child = Some(child);
        let http = Http::new(&self.nodes[i].base());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok((s, _)) = http.call(actix_web::http::Method::GET, "/healthz", None, None).await {
                if s.is_success() {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(format!("{} did not come up", self.nodes[i].id).into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn start_nginx(&self) -> TestResult<Nginx> {
        let bin = which("nginx", &["/usr/sbin/nginx"])?;
        let dir = tempfile::tempdir()?;
        let port = free_port()?;
        let ports: Vec<u16> = self.nodes.iter().map(|n| n.port).collect();
        let conf = render_nginx_conf(&ports, port, dir.path())?;
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, conf)?;
        let user = if std::env::var("USER").as_deref() == Ok("root") || is_root() { " user root;" } else { "" };
        let child = Command::new(bin)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&path)
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .arg("-g")
            .arg(format!("daemon off; master_process off;{user}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        wait_port(port, "nginx").await?;
        Ok(Nginx { port, child, _dir: dir })
    }

    /// Starts node `i` again (after `kill` or `terminate`), on its port and database.
    pub async fn restart(&mut self, i: usize) -> TestResult {
        self.boot(i).await
    }

    /// Stops node `i` with SIGSTOP (a pause: its sockets stay open, it does nothing).
    pub async fn pause(&self, i: usize) -> TestResult {
        self.signal(i, "-STOP").await
    }

    /// Resumes node `i` after [`Cluster::pause`].
    pub async fn resume(&self, i: usize) -> TestResult {
        self.signal(i, "-CONT").await
    }

    async fn signal(&self, i: usize, sig: &str) -> TestResult {
        let pid = self.nodes[i].child.as_ref().and_then(|c| c.id()).ok_or("node not running")?;
        let st = Command::new("kill").arg(sig).arg(pid.to_string()).status().await?;
        if !st.success() {
            return Err(format!("kill {sig} {pid} failed").into());
        }
        Ok(())
    }

    /// The index of the node called `id`.
    pub fn index_of(&self, id: &str) -> TestResult<usize> {
        self.nodes.iter().position(|n| n.id == id).ok_or_else(|| format!("no node {id}").into())
    }

    /// The node that owns conversation `conv` now (admin API of node `via`), once one does.
    pub async fn owner_of(&self, via: usize, conv: &str) -> TestResult<(String, i64)> {
        let v = self
            .wait_admin(via, &format!("/admin/v1/conversations/{conv}/owner"), |v| {
                v["node"].is_string() && v["alive"] == true && v["epoch"].as_i64().unwrap_or(0) > 0
            })
            .await?;
        Ok((v["node"].as_str().unwrap_or_default().to_owned(), v["epoch"].as_i64().unwrap_or(0)))
    }

    /// HTTP straight to node `i`.
    pub fn node(&self, i: usize) -> Http {
        Http::new(&self.nodes[i].base())
    }

    /// HTTP through nginx.
    pub fn lb(&self) -> TestResult<Http> {
        let n = self.nginx.as_ref().ok_or("no nginx in this cluster")?;
        Ok(Http::new(&format!("http://127.0.0.1:{}", n.port)))
    }

    /// Kills node `i` with SIGKILL (no drain, no goodbye).
    pub async fn kill(&mut self, i: usize) -> TestResult {
        if let Some(mut c) = self.nodes[i].child.take() {
            c.start_kill()?;
            c.wait().await?;
        }
        Ok(())
    }

    /// The process id of node `i`.
    pub fn pid(&self, i: usize) -> TestResult<u32> {
        self.nodes[i].child.as_ref().and_then(|c| c.id()).ok_or_else(|| "node not running".into())
    }

    /// Waits for node `i` to exit (after a signal sent by the test); returns whether it exited
    /// cleanly.
    pub async fn wait_exit(&mut self, i: usize) -> TestResult<bool> {
        let Some(mut c) = self.nodes[i].child.take() else { return Ok(false) };
        let status = tokio::time::timeout(Duration::from_secs(30), c.wait()).await??;
        Ok(status.success())
    }

    /// Sends SIGTERM to node `i` and waits for it to exit; returns whether it exited cleanly.
    pub async fn terminate(&mut self, i: usize) -> TestResult<bool> {
        let Some(mut c) = self.nodes[i].child.take() else { return Ok(false) };
        let pid = c.id().ok_or("no pid")?;
        Command::new("kill").arg("-TERM").arg(pid.to_string()).status().await?;
        let status = tokio::time::timeout(Duration::from_secs(20), c.wait()).await??;
        Ok(status.success())
    }

    /// Waits until `f` holds for the JSON of `GET path` (admin token) on node `i`.
    pub async fn wait_admin(&self, i: usize, path: &str, f: impl Fn(&Value) -> bool) -> TestResult<Value> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (_, v) = self.node(i).get(path, ADMIN).await?;
            if f(&v) {
                return Ok(v);
            }
            if Instant::now() > deadline {
                return Err(format!("{path} on node {i} never matched; last: {v}").into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until `/readyz` of node `i` reports `redis` as `state`.
    pub async fn wait_redis(&self, i: usize, state: &str) -> TestResult<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let v = match self.node(i).call(actix_web::http::Method::GET, "/readyz", None, None).await {
                Ok((_, v)) => v,
                Err(_) => Value::Null,
            };
            if v["redis"] == state {
                return Ok(v);
            }
            if Instant::now() > deadline {
                return Err(format!("node {i}: redis never {state}; last /readyz: {v}").into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(n) = &mut self.nginx {
            let _ = n.child.start_kill();
        }
        for n in &mut self.nodes {
            if let Some(c) = &mut n.child {
                let _ = c.start_kill();
            }
        }
    }
}

/// `deploy/nginx.conf`, the shipped configuration, for these node ports and listen port, with
/// its pid, logs and temp files in `dir`: the tests run nginx as operators are told to.
fn render_nginx_conf(nodes: &[u16], port: u16, dir: &std::path::Path) -> TestResult<String> {
    let template = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/nginx.conf"))?;
    let d = dir.display();
    let mut out = String::new();
    let mut nodes_done = false;
    for line in template.lines() {
        let marker = line.split("# @im:").nth(1).map(str::trim);
        match marker {
            Some("node") => {
                if !nodes_done {
                    // The template's parameters for every node (max_fails and so on).
                    let params = line
                        .trim()
                        .trim_start_matches("server")
                        .trim()
                        .split_once(char::is_whitespace)
                        .map(|(_, rest)| rest.split(';').next().unwrap_or("").trim().to_owned())
                        .unwrap_or_default();
                    for p in nodes {
                        out.push_str(&format!("        server 127.0.0.1:{p} {params};\n"));
                    }
                    nodes_done = true;
                }
            }
            Some("listen") => out.push_str(&format!("        listen 127.0.0.1:{port};\n")),
            Some("pid") => out.push_str(&format!("pid {d}/nginx.pid;\n")),
            Some("error_log") => out.push_str(&format!("error_log {d}/error.log warn;\n")),
            Some("access_log") => out.push_str("    access_log off;\n"),
            Some(m) if m.starts_with("temp_paths") => {
                for k in ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"] {
                    out.push_str(&format!("    {k}_temp_path {d}/{k};\n"));
                }
            }
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    if !nodes_done {
        return Err("deploy/nginx.conf has no `# @im:node` line".into());
    }
    Ok(out)
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{}{}{}", std::process::id(), t % 1_000_000_007, N.fetch_add(1, Ordering::Relaxed))
}
