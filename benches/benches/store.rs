//! Group commit's storage step: `SqlMessageStore::append` of one batch of 1, 64 or 512 messages
//! (one multi-row insert in one write transaction, through the Diesel worker actor) on a scratch
//! SQLite file, as the server's `MessageWriter` does. Each batch continues the conversation's
//! seqs, so the table grows over the run as it does in service.
//!
//! `cargo bench -p benches --bench store`

use std::time::{Duration, Instant};

use actors::db::Db;
use actors::store::{MessageStore, SqlMessageStore};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use schema::db::scratch::ScratchDb;
use schema::db::Database;
use schema::message::{Appended, MessageKind, MessageRecord};
use schema::{ConvId, UserId};

fn batch(conv: &ConvId, next_seq: &mut i64, n: usize) -> Vec<MessageRecord> {
    (0..n)
        .map(|_| {
            let seq = *next_seq;
            *next_seq += 1;
            MessageRecord {
                conv: conv.clone(),
                seq,
                sender: UserId(1),
                client_id: format!("b-{seq}"),
                kind: MessageKind::Text,
                body: Some("x".repeat(64)),
                mentions: vec![],
                mention_all: false,
                ts: 1_764_000_000_000 + seq,
                recalled_at: None,
                ..MessageRecord::default()
            }
        })
        .collect()
}

fn append(c: &mut Criterion) {
    let sys = actix_rt::System::new();
    let scratch = ScratchDb::sqlite();
    let store = sys.block_on(async {
        let db = match Database::open(&scratch.url, 4, Duration::from_secs(10)) {
            Ok(db) => db,
            Err(e) => panic!("opening {}: {e}", scratch.url),
        };
        if let Err(e) = db.migrate() {
            panic!("migrating {}: {e}", scratch.url);
        }
        SqlMessageStore::new(Db::start(db, 2))
    });
    let mut g = c.benchmark_group("sql_store_append_sqlite");
    g.sample_size(20);
    for (i, n) in [1usize, 64, 512].into_iter().enumerate() {
        let conv = ConvId::direct(UserId(1), UserId(2 + i as i64));
        let mut next_seq = 1i64;
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(BenchmarkId::new("batch", n), |b| {
            b.iter_custom(|iters| {
                sys.block_on(async {
                    let mut spent = Duration::ZERO;
                    for _ in 0..iters {
                        let msgs = batch(&conv, &mut next_seq, n);
                        let t = Instant::now();
                        let res = store.append(msgs).await;
                        spent += t.elapsed();
                        match res {
                            Ok(v) if v.len() == n && v.iter().all(|a| matches!(a, Appended::Stored(_))) => {}
                            Ok(v) => panic!("append of {n}: {} results, not all stored", v.len()),
                            Err(e) => panic!("append of {n}: {e}"),
                        }
                    }
                    spent
                })
            })
        });
    }
    g.finish();
    drop(scratch);
}

criterion_group!(store, append);
criterion_main!(store);
