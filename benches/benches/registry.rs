//! Local routing through the node's `SessionRegistry` (actix): `DeliverToUser` to one of N
//! registered sessions (the 1:1 path: a map lookup and a `try_send` into the session's mailbox)
//! and `DeliverToUsers` to N users at once (the group fan-out path: one frame shared by N
//! pushes). The sessions are fake actors that count the `Push` frames they get; a measurement
//! ends when every frame has reached its session. Everything runs on one actix system thread,
//! like a registry and the sessions it feeds on a one-core share.
//!
//! `cargo bench -p benches --bench registry`

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, Addr, AsyncContext, Context, Handler};
use actors::cluster::outbox::Outbox;
use actors::db::Db;
use actors::delivery::{DeliverToUser, DeliverToUsers, GetStats, Kick, Push, Register, SessionHandle};
use actors::presence::Presence;
use actors::registry::SessionRegistry;
use bytestring::ByteString;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use schema::db::scratch::ScratchDb;
use schema::db::Database;
use schema::{DeviceId, UserId};

/// Mailbox of a fake session: more than the frames one chunk can queue for it.
const MAILBOX: usize = 4096;

/// Frames sent before waiting for them to arrive (at most `MAILBOX` per session).
const CHUNK: u64 = 1024;

/// A session that counts what it is sent.
struct FakeSession {
    pushes: Arc<AtomicU64>,
    kicks: Arc<AtomicU64>,
}

impl Actor for FakeSession {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(MAILBOX);
    }
}

impl Handler<Push> for FakeSession {
    type Result = ();

    fn handle(&mut self, _: Push, _: &mut Context<Self>) {
        self.pushes.fetch_add(1, Ordering::Relaxed);
    }
}

impl Handler<Kick> for FakeSession {
    type Result = ();

    fn handle(&mut self, _: Kick, _: &mut Context<Self>) {
        self.kicks.fetch_add(1, Ordering::Relaxed);
    }
}

/// A registry with `n` fake sessions, users 1..=n with one device each.
struct Setup {
    registry: Addr<SessionRegistry>,
    pushes: Arc<AtomicU64>,
    kicks: Arc<AtomicU64>,
    _db: ScratchDb,
}

async fn setup(n: u64) -> Setup {
    let scratch = ScratchDb::sqlite();
    let db = match Database::open(&scratch.url, 2, Duration::from_secs(10)) {
        Ok(db) => db,
        Err(e) => panic!("opening {}: {e}", scratch.url),
    };
    if let Err(e) = db.migrate() {
        panic!("migrating {}: {e}", scratch.url);
    }
    let presence_ctx: Context<Presence> = Context::new();
    let registry = SessionRegistry::new(presence_ctx.address().recipient(), Outbox::none()).start();
    presence_ctx.run(Presence::new(Db::start(db, 1), registry.clone().recipient(), None));
    let (pushes, kicks) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    for u in 1..=n {
        let addr = FakeSession { pushes: pushes.clone(), kicks: kicks.clone() }.start();
        let session = SessionHandle {
            id: u,
            push: addr.clone().recipient(),
            kick: addr.recipient(),
            since: 0,
            dropped: Arc::new(AtomicBool::new(false)),
        };
        registry.do_send(Register { user: UserId(u as i64), device: DeviceId(1), session });
    }
    match registry.send(GetStats).await {
        Ok(s) if s.sessions as u64 == n => {}
        other => panic!("registry after {n} registrations: {other:?}"),
    }
    Setup { registry, pushes, kicks, _db: scratch }
}

/// Yields to the actors until `counter` reaches `target`.
async fn until(counter: &AtomicU64, target: u64) {
    while counter.load(Ordering::Relaxed) < target {
        tokio::task::yield_now().await;
    }
}

fn frame() -> ByteString {
    ByteString::from_static(
        r#"{"type":"msg","conv":"d:1:2","seq":123456,"from":1,"id":"lg0-123456","kind":"text","body":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx","ts":1764000000000}"#,
    )
}

fn deliver_to_user(c: &mut Criterion) {
    let sys = actix_rt::System::new();
    let mut g = c.benchmark_group("registry_deliver_to_user");
    g.throughput(Throughput::Elements(1));
    for n in [1u64, 100, 10_000] {
        let s = sys.block_on(setup(n));
        let f = frame();
        g.bench_function(BenchmarkId::new("sessions", n), |b| {
            b.iter_custom(|iters| {
                sys.block_on(async {
                    let base = s.pushes.load(Ordering::Relaxed);
                    let t = Instant::now();
                    for k in 0..iters {
                        let user = UserId((1 + k % n) as i64);
                        s.registry.do_send(DeliverToUser { user, frame: f.clone(), except: None });
                        if (k + 1) % CHUNK == 0 {
                            until(&s.pushes, base + k + 1).await;
                        }
                    }
                    until(&s.pushes, base + iters).await;
                    t.elapsed()
                })
            })
        });
        assert_eq!(s.kicks.load(Ordering::Relaxed), 0, "a fake session was kicked (mailbox full)");
    }
    g.finish();
}

fn deliver_to_users(c: &mut Criterion) {
    let sys = actix_rt::System::new();
    let mut g = c.benchmark_group("registry_deliver_to_users");
    for n in [10u64, 100, 1000] {
        let s = sys.block_on(setup(n));
        let users: Vec<UserId> = (1..=n).map(|u| UserId(u as i64)).collect();
        let f = frame();
        g.throughput(Throughput::Elements(n));
        g.bench_function(BenchmarkId::new("members", n), |b| {
            b.iter_custom(|iters| {
                sys.block_on(async {
                    let base = s.pushes.load(Ordering::Relaxed);
                    let t = Instant::now();
                    for k in 0..iters {
                        s.registry.do_send(DeliverToUsers { users: users.clone(), frame: f.clone(), cluster: false });
                        if (k + 1) % CHUNK == 0 {
                            until(&s.pushes, base + (k + 1) * n).await;
                        }
                    }
                    until(&s.pushes, base + iters * n).await;
                    t.elapsed()
                })
            })
        });
        assert_eq!(s.kicks.load(Ordering::Relaxed), 0, "a fake session was kicked (mailbox full)");
    }
    g.finish();
}

criterion_group!(registry, deliver_to_user, deliver_to_users);
criterion_main!(registry);
