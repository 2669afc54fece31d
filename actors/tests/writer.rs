//! The group-commit writer over the SQL store, on SQLite (one lane) and PostgreSQL (several
//! lanes): messages from several arbiters at once are all made durable, in batches, answered
//! once each; `flush` waits for everything queued; a failed batch answers all its messages and
//! the lane goes on.

use std::sync::Arc;
use std::time::Duration;

use actix::Arbiter;
use actors::db::Db;
use actors::metrics::Metrics;
use actors::store::{MessageStore, SqlMessageStore};
use actors::writer::MessageWriter;
use futures_util::future::join_all;
use futures_util::FutureExt;
use schema::db::conversations;
use schema::db::scratch::ScratchDb;
use schema::db::Database;
use schema::message::{Appended, MessageRecord, Page};
use schema::{ConvId, UserId};

mod common;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A writer with the store and the database it writes to.
type Opened = (MessageWriter, Arc<dyn MessageStore>, Db);

/// A writer over a migrated scratch database with `lanes` lanes, and its store and database.
fn open(scratch: &ScratchDb, lanes: usize) -> Result<Opened, Box<dyn std::error::Error>> {
    let db = Database::open(&scratch.url, 4, Duration::from_secs(10))?;
    db.migrate()?;
    let db = Db::start(db, 2);
    let store: Arc<dyn MessageStore> = Arc::new(SqlMessageStore::new(db.clone()));
    let writer = MessageWriter::new(store.clone(), db.clone(), Arc::new(Metrics::default()), lanes);
    Ok((writer, store, db))
}

/// Message `seq` of `conv` from `sender`.
fn text(conv: &ConvId, seq: i64, sender: i64, client_id: &str) -> MessageRecord {
    common::text(conv, seq, sender, client_id, &format!("message {seq} of {}", conv.0))
}

/// Conversation `i`: users 1000 + 2i and 1001 + 2i.
fn conv(i: i64) -> ConvId {
    ConvId::direct(UserId(1000 + 2 * i), UserId(1001 + 2 * i))
}

const CONVS_PER_ARBITER: i64 = 10;
const PER_CONV: i64 = 60;

/// Two arbiters, each posting `PER_CONV` messages to each of its own conversations at once.
async fn many_from_two_arbiters(scratch: ScratchDb, lanes: usize) -> TestResult {
    let (writer, store, db) = open(&scratch, lanes)?;
    let all: Vec<ConvId> = (0..2 * CONVS_PER_ARBITER).map(conv).collect();
    let rows = all.clone();
    db.write(move |c| {
        for (i, cv) in rows.iter().enumerate() {
            let (a, b) = (1000 + 2 * i as i64, 1001 + 2 * i as i64);
            conversations::ensure(c, cv.as_str(), &[(a, Some(b)), (b, Some(a))], 1)?;
        }
        Ok(())
    })
    .await?;

    let mut handles = Vec::new();
    for half in 0..2i64 {
        let (w, convs) =
            (writer.clone(), all[(half * CONVS_PER_ARBITER) as usize..][..CONVS_PER_ARBITER as usize].to_vec());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let arbiter = Arbiter::new();
        arbiter.spawn(async move {
            // Every message is queued before any is awaited.
            let pending: Vec<_> = (1..=PER_CONV)
                .flat_map(|seq| convs.iter().map(move |c| (c.clone(), seq)))
                .map(|(c, seq)| {
                    let rec = text(&c, seq, 1000, &format!("{}-{seq}", c.0));
                    let expected = rec.clone();
                    w.persist(rec, None).map(move |r| (expected, r))
                })
                .collect();
            let _ = tx.send(join_all(pending).await);
        });
        handles.push((arbiter, rx));
    }
    let mut answered = 0;
    let mut arbiters = Vec::new();
    // Every answer first: a lane's task runs on the arbiter whose message found the lane idle,
    // and may still be writing the other arbiter's messages.
    for (arbiter, rx) in handles {
        for (expected, res) in rx.await? {
            match res {
                Ok(Appended::Stored(r)) => assert_eq!(r, expected),
                other => panic!("{}#{}: {other:?}", expected.conv, expected.seq),
            }
            answered += 1;
        }
        arbiters.push(arbiter);
    }
    for arbiter in arbiters {
        arbiter.stop();
    }
    let total = (2 * CONVS_PER_ARBITER * PER_CONV) as u64;
    assert_eq!(answered, total);
    writer.flush().await;
    let stats = writer.stats();
    assert_eq!((stats.persisted, stats.failures, stats.queued), (total, 0, 0), "{stats:?}");
    assert!(stats.batches < total / 4, "{} batches for {total} messages queued at once", stats.batches);

    for c in &all {
        let page = store.page(c.clone(), Page::After(0), 0, 1_000).await?;
        let seqs: Vec<i64> = page.iter().map(|m| m.seq).collect();
        assert_eq!(seqs, (1..=PER_CONV).collect::<Vec<_>>(), "{c}");
        let cv = c.clone();
        let summary =
            db.read(move |conn| conversations::find(conn, cv.as_str())).await?.ok_or("no conversation row")?;
        assert_eq!(summary.last_seq, PER_CONV, "{c}: the summary moved with the batches");
    }

    // The same client ids again (new seqs): every one is a duplicate answered with the original.
    let again: Vec<_> =
        all.iter().map(|c| writer.persist(text(c, PER_CONV + 1, 1000, &format!("{}-1", c.0)), None)).collect();
    for (c, res) in all.iter().zip(join_all(again).await) {
        match res {
            Ok(Appended::Duplicate(r)) => assert_eq!((r.conv.clone(), r.seq), (c.clone(), 1)),
            other => panic!("{c}: {other:?}"),
        }
    }
    Ok(())
}

#[actix_rt::test]
async fn many_messages_from_two_arbiters_are_durable_in_batches_sqlite() -> TestResult {
    many_from_two_arbiters(ScratchDb::sqlite(), 1).await
}

#[actix_rt::test]
async fn many_messages_from_two_arbiters_are_durable_in_batches_postgres() -> TestResult {
    many_from_two_arbiters(ScratchDb::postgres()?, 2).await
}

#[actix_rt::test]
async fn flush_returns_once_everything_queued_is_written() -> TestResult {
    let scratch = ScratchDb::sqlite();
    let (writer, _, _) = open(&scratch, 1)?;
    // Nothing queued: at once.
    writer.flush().await;
    let c = conv(1);
    let mut pending: Vec<_> =
        (1..=300).map(|seq| writer.persist(text(&c, seq, 1000, &format!("f-{seq}")), None).boxed()).collect();
    assert!(writer.stats().queued > 0, "nothing queued");
    writer.flush().await;
    let stats = writer.stats();
    assert_eq!((stats.queued, stats.persisted), (0, 300), "{stats:?}");
    for (i, p) in pending.iter_mut().enumerate() {
        // Unconstrained: tokio's cooperative budget would make the 128th poll in a row pending.
        match tokio::task::unconstrained(p).now_or_never() {
            Some(Ok(Appended::Stored(r))) => assert_eq!(r.seq, i as i64 + 1),
            other => panic!("message {} not answered when flush returned: {other:?}", i + 1),
        }
    }
    Ok(())
}

#[actix_rt::test]
async fn a_failed_batch_answers_each_message_and_the_lane_goes_on() -> TestResult {
    let scratch = ScratchDb::sqlite();
    let (writer, store, _) = open(&scratch, 1)?;
    let c = conv(2);
    assert!(matches!(writer.persist(text(&c, 1, 1000, "first"), None).await, Ok(Appended::Stored(_))));
    // Seq 1 again under another client id (a sequencing clash): the whole batch fails, and each
    // of its messages is told so.
    let clash = writer.persist(text(&c, 1, 1000, "clash"), None);
    let neighbour = writer.persist(text(&c, 2, 1000, "neighbour"), None);
    let (clash, neighbour) = futures_util::join!(clash, neighbour);
    assert!(clash.is_err(), "{clash:?}");
    assert!(neighbour.is_err(), "{neighbour:?}");
    assert_eq!(writer.stats().failures, 1);
    // The lane is not stuck: the next message is stored.
    assert!(matches!(writer.persist(text(&c, 2, 1000, "after"), None).await, Ok(Appended::Stored(_))));
    let seqs: Vec<(i64, String)> =
        store.page(c, Page::After(0), 0, 10).await?.into_iter().map(|m| (m.seq, m.client_id)).collect();
    assert_eq!(seqs, vec![(1, "first".to_owned()), (2, "after".to_owned())]);
    Ok(())
}

#[actix_rt::test]
async fn a_lane_whose_arbiter_stops_answers_its_queue_and_starts_again() -> TestResult {
    let scratch = ScratchDb::sqlite();
    let (writer, store, _) = open(&scratch, 1)?;
    let c = conv(3);
    // Three full batches queued on an arbiter that stops at once: its lane task is dropped
    // while it writes.
    let (tx, rx) = tokio::sync::oneshot::channel();
    let arbiter = Arbiter::new();
    let w = writer.clone();
    let cv = c.clone();
    arbiter.spawn(async move {
        let pending: Vec<_> = (1..=3 * actors::writer::MAX_BATCH as i64)
            .map(|seq| w.persist(text(&cv, seq, 1000, &format!("s-{seq}")), None))
            .collect();
        let _ = tx.send(pending);
        actix::Arbiter::current().stop();
    });
    let pending = rx.await?;
    let answers = tokio::time::timeout(Duration::from_secs(20), join_all(pending))
        .await
        .map_err(|_| "a message was never answered")?;
    let stored = answers.iter().filter(|a| matches!(a, Ok(Appended::Stored(_)))).count();
    let failed = answers.iter().filter(|a| matches!(a, Err(e) if e.contains("stopped"))).count();
    assert_eq!(
        stored + failed,
        answers.len(),
        "every message is stored or told the writer stopped ({stored} stored, {failed} told)"
    );
    // The lane is not left busy: a message from here starts a new task and is stored after
    // whatever was committed.
    let next = store.max_seq(c.clone()).await? + 1;
    let res = tokio::time::timeout(Duration::from_secs(20), writer.persist(text(&c, next, 1000, "after-stop"), None))
        .await
        .map_err(|_| "the lane stayed busy after its arbiter stopped")?;
    assert!(matches!(res, Ok(Appended::Stored(_))), "{res:?}");
    tokio::time::timeout(Duration::from_secs(20), writer.flush()).await.map_err(|_| "flush never returned")?;
    Ok(())
}
