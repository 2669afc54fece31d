//! One test suite for every [`MessageStore`]: each case runs against the SQL store on SQLite
//! (scratch file), the SQL store on PostgreSQL (scratch database on `IM_TEST_POSTGRES_URL`) and
//! the MongoDB store (unique database on `IM_TEST_MONGODB_URL`).
//!
//! A store whose service is unreachable makes its tests fail, never skip.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actors::db::Db;
use actors::store::{MessageStore, MongoMessageStore, SqlMessageStore};
use futures_util::TryStreamExt;
use mongodb::bson::{doc, Document};
use schema::db::conversations::{self, LastMessage};
use schema::db::scratch::ScratchDb;
use schema::db::Database;
use schema::message::{Appended, MessageKind, MessageRecord, Page};
use schema::{ConvId, GroupId, UserId};

mod common;

use common::{text, TS0};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The MongoDB server tests use unless `IM_TEST_MONGODB_URL` says otherwise.
const DEFAULT_TEST_MONGODB_URL: &str = "mongodb://127.0.0.1:27017";

/// How long MongoDB may take to answer the first time before the test fails.
const MONGO_CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// A page limit larger than any conversation of this suite.
const ALL: i64 = 10_000;

static MONGO_COUNTER: AtomicU64 = AtomicU64::new(0);

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

/// A throw-away MongoDB database: a client of its own to drop it at the end.
struct MongoScratch {
    client: mongodb::Client,
    name: String,
}

impl MongoScratch {
    fn url() -> String {
        std::env::var("IM_TEST_MONGODB_URL").unwrap_or_else(|_| DEFAULT_TEST_MONGODB_URL.to_owned())
    }

    fn unique_name() -> String {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        format!(
            "im_test_{}_{}_{}",
            std::process::id(),
            nanos % 1_000_000_000_000,
            MONGO_COUNTER.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// Connects the store to a fresh database; fails (after a bounded wait) when unreachable.
    async fn open() -> Result<(MongoScratch, MongoMessageStore), Box<dyn std::error::Error>> {
        let url = Self::url();
        let name = Self::unique_name();
        let store = tokio::time::timeout(MONGO_CONNECT_TIMEOUT, MongoMessageStore::connect(&url, &name))
            .await
            .map_err(|_| format!("MongoDB at {url} did not answer within {MONGO_CONNECT_TIMEOUT:?}"))??;
        let client = mongodb::Client::with_uri_str(&url).await?;
        Ok((MongoScratch { client, name }, store))
    }

    /// Best-effort drop of the database.
    async fn drop_db(self) {
        if let Err(e) = self.client.database(&self.name).drop().await {
            eprintln!("note: dropping MongoDB database {} failed: {e}", self.name);
        }
    }
}

/// Opens a SQL store over a scratch database, migrated.
fn open_sql(scratch: &ScratchDb) -> Result<Arc<dyn MessageStore>, Box<dyn std::error::Error>> {
    let db = Database::open(&scratch.url, 4, Duration::from_secs(10))?;
    db.migrate()?;
    Ok(Arc::new(SqlMessageStore::new(Db::start(db, 2))))
}

/// Runs `case` against a fresh SQL store on SQLite.
async fn on_sqlite<F, Fut>(case: F) -> TestResult
where
    F: FnOnce(Arc<dyn MessageStore>) -> Fut,
    Fut: Future<Output = TestResult>,
{
    let scratch = ScratchDb::sqlite();
    let store = open_sql(&scratch)?;
    assert_eq!(store.name(), "sql");
    let res = case(store).await;
    drop(scratch);
    res
}

/// Runs `case` against a fresh SQL store on PostgreSQL.
async fn on_postgres<F, Fut>(case: F) -> TestResult
where
    F: FnOnce(Arc<dyn MessageStore>) -> Fut,
    Fut: Future<Output = TestResult>,
{
    let scratch = ScratchDb::postgres()?;
    let store = open_sql(&scratch)?;
    assert_eq!(store.name(), "sql");
    let res = case(store).await;
    drop(scratch);
    res
}

/// Runs `case` against a fresh MongoDB store.
async fn on_mongodb<F, Fut>(case: F) -> TestResult
where
    F: FnOnce(Arc<dyn MessageStore>) -> Fut,
    Fut: Future<Output = TestResult>,
{
    let (scratch, store) = MongoScratch::open().await?;
    let store: Arc<dyn MessageStore> = Arc::new(store);
    assert_eq!(store.name(), "mongodb");
    let res = case(store).await;
    scratch.drop_db().await;
    res
}

/// Generates `#[actix_rt::test]`s `<case>_sqlite`, `<case>_postgres`, `<case>_mongodb`.
macro_rules! store_tests {
    ($($case:ident => $sqlite:ident, $postgres:ident, $mongodb:ident;)*) => {
        $(
            #[actix_rt::test]
            async fn $sqlite() -> TestResult {
                on_sqlite($case).await
            }

            #[actix_rt::test]
            async fn $postgres() -> TestResult {
                on_postgres($case).await
            }

            #[actix_rt::test]
            async fn $mongodb() -> TestResult {
                on_mongodb($case).await
            }
        )*
    };
}

store_tests! {
    append_then_page_round_trips =>
        append_then_page_round_trips_sqlite,
        append_then_page_round_trips_postgres,
        append_then_page_round_trips_mongodb;
    dedup_returns_original =>
        dedup_returns_original_sqlite,
        dedup_returns_original_postgres,
        dedup_returns_original_mongodb;
    dedup_within_one_batch =>
        dedup_within_one_batch_sqlite,
        dedup_within_one_batch_postgres,
        dedup_within_one_batch_mongodb;
    find_by_client_id =>
        find_by_client_id_sqlite,
        find_by_client_id_postgres,
        find_by_client_id_mongodb;
    get_and_max_seq =>
        get_and_max_seq_sqlite,
        get_and_max_seq_postgres,
        get_and_max_seq_mongodb;
    paging =>
        paging_sqlite,
        paging_postgres,
        paging_mongodb;
    recall =>
        recall_sqlite,
        recall_postgres,
        recall_mongodb;
    large_batch =>
        large_batch_sqlite,
        large_batch_postgres,
        large_batch_mongodb;
    seq_clash_is_an_error =>
        seq_clash_is_an_error_sqlite,
        seq_clash_is_an_error_postgres,
        seq_clash_is_an_error_mongodb;
    ping =>
        ping_sqlite,
        ping_postgres,
        ping_mongodb;
    rich_messages_round_trip =>
        rich_messages_round_trip_sqlite,
        rich_messages_round_trip_postgres,
        rich_messages_round_trip_mongodb;
    edits_keep_the_latest_body =>
        edits_keep_the_latest_body_sqlite,
        edits_keep_the_latest_body_postgres,
        edits_keep_the_latest_body_mongodb;
    reactions_once_per_user_and_emoji =>
        reactions_once_per_user_and_emoji_sqlite,
        reactions_once_per_user_and_emoji_postgres,
        reactions_once_per_user_and_emoji_mongodb;
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Messages `from..=to` of `conv`, each from sender 1 with client id `<conv>-<seq>`.
fn run_of(conv: &ConvId, from: i64, to: i64) -> Vec<MessageRecord> {
    (from..=to).map(|s| text(conv, s, 1, &format!("{}-{s}", conv.0), &format!("message {s} of {}", conv.0))).collect()
}

fn stored(batch: &[MessageRecord]) -> Vec<Appended> {
    batch.iter().cloned().map(Appended::Stored).collect()
}

fn seqs(v: &[MessageRecord]) -> Vec<i64> {
    v.iter().map(|m| m.seq).collect()
}

/// Every message of a conversation, in seq order.
async fn all_of(store: &dyn MessageStore, conv: &ConvId) -> Result<Vec<MessageRecord>, Box<dyn std::error::Error>> {
    Ok(store.page(conv.clone(), Page::After(0), 0, ALL).await?)
}

/// Appends a batch that must be stored as a whole.
async fn append_all(store: &dyn MessageStore, batch: &[MessageRecord]) -> TestResult {
    let res = store.append(batch.to_vec()).await?;
    assert_eq!(res, stored(batch), "every message of the batch must be Stored as given");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Cases
// ---------------------------------------------------------------------------------------------

/// Every field survives the round trip, results come back in input order and pages in seq order.
async fn append_then_page_round_trips(store: Arc<dyn MessageStore>) -> TestResult {
    let conv = ConvId::group(GroupId(42));
    let m1 = MessageRecord {
        conv: conv.clone(),
        seq: 1,
        sender: UserId(7),
        client_id: "c-7-0001".into(),
        kind: MessageKind::Text,
        body: Some("hello @bob @carol".into()),
        mentions: vec![UserId(8), UserId(9)],
        mention_all: false,
        ts: TS0 + 1,
        recalled_at: None,
        ..MessageRecord::default()
    };
    let m2 = MessageRecord {
        conv: conv.clone(),
        seq: 2,
        sender: UserId(0),
        client_id: "sys-2".into(),
        kind: MessageKind::System,
        body: Some(r#"{"event":"joined","user":10}"#.into()),
        mentions: Vec::new(),
        mention_all: false,
        ts: TS0 + 2,
        recalled_at: None,
        ..MessageRecord::default()
    };
    let m3 = MessageRecord {
        conv: conv.clone(),
        seq: 3,
        // Beyond 2^53: must not pass through a double anywhere.
        sender: UserId(9_007_199_254_740_993),
        client_id: "ünïcødé-✓-3".into(),
        kind: MessageKind::Text,
        body: Some("@all 你好 👋 \"quoted\" \\ back\nslash".into()),
        mentions: vec![UserId(1)],
        mention_all: true,
        ts: 4_102_444_800_123,
        recalled_at: None,
        ..MessageRecord::default()
    };
    let m4 = MessageRecord {
        conv: conv.clone(),
        seq: 4,
        sender: UserId(7),
        client_id: "c-7-0004".into(),
        kind: MessageKind::Text,
        body: Some(String::new()),
        mentions: Vec::new(),
        mention_all: true,
        ts: TS0 + 4,
        recalled_at: None,
        ..MessageRecord::default()
    };

    // An empty batch is a no-op.
    assert_eq!(store.append(Vec::new()).await?, Vec::<Appended>::new());

    // Out of seq order on purpose: results follow the input, pages follow seq.
    let batch = vec![m3.clone(), m1.clone(), m4.clone(), m2.clone()];
    let res = store.append(batch.clone()).await?;
    assert_eq!(res, stored(&batch));
    assert_eq!(res.iter().map(|a| a.record().seq).collect::<Vec<_>>(), vec![3, 1, 4, 2]);

    let page = store.page(conv.clone(), Page::After(0), 0, 100).await?;
    assert_eq!(page, vec![m1.clone(), m2.clone(), m3.clone(), m4.clone()]);
    assert_eq!(page[1].kind, MessageKind::System);
    assert_eq!(page[0].mentions, vec![UserId(8), UserId(9)]);
    assert!(page[2].mention_all);
    assert!(page.iter().all(|m| m.recalled_at.is_none()));
    assert_eq!(page[3].body.as_deref(), Some(""));

    for m in [&m1, &m2, &m3, &m4] {
        assert_eq!(store.get(conv.clone(), m.seq).await?.as_ref(), Some(m));
    }
    Ok(())
}

/// A resent client id is answered with the stored message, and nothing is stored twice.
async fn dedup_returns_original(store: Arc<dyn MessageStore>) -> TestResult {
    let a = ConvId::group(GroupId(1));
    let a1 = text(&a, 1, 1, "c1", "first");
    let a2 = text(&a, 2, 1, "c2", "second");
    append_all(&*store, &[a1.clone(), a2.clone()]).await?;

    // The resend got a new seq from the sequencer; the store must answer with seq 1 and "first".
    let resend = MessageRecord { ts: TS0 + 99, ..text(&a, 3, 1, "c1", "resent with another body") };
    let a4 = text(&a, 4, 1, "c3", "fourth");
    let res = store.append(vec![resend, a4.clone()]).await?;
    assert_eq!(res, vec![Appended::Duplicate(a1.clone()), Appended::Stored(a4.clone())]);
    assert_eq!(res[0].record().seq, 1);
    assert_eq!(res[0].record().body.as_deref(), Some("first"));

    let all = all_of(&*store, &a).await?;
    assert_eq!(all, vec![a1.clone(), a2, a4]);
    assert_eq!(all.iter().filter(|m| m.client_id == "c1").count(), 1);
    assert_eq!(store.get(a.clone(), 3).await?, None);
    assert_eq!(store.max_seq(a.clone()).await?, 4);
    assert_eq!(store.find_by_client_id(a.clone(), UserId(1), "c1".into()).await?, Some(a1.clone()));

    // A resend alone in its batch is answered the same way.
    let res = store.append(vec![text(&a, 5, 1, "c1", "again")]).await?;
    assert_eq!(res, vec![Appended::Duplicate(a1)]);
    assert_eq!(seqs(&all_of(&*store, &a).await?), vec![1, 2, 4]);

    // The same client id in two conversations is two messages, even in one batch.
    let b = ConvId::group(GroupId(2));
    let c = ConvId::direct(UserId(1), UserId(2));
    let b1 = text(&b, 1, 1, "same", "to b");
    let c1 = text(&c, 1, 1, "same", "to c");
    append_all(&*store, &[b1.clone(), c1.clone()]).await?;
    assert_eq!(all_of(&*store, &b).await?, vec![b1]);
    assert_eq!(all_of(&*store, &c).await?, vec![c1]);

    // The same client id from two senders in one conversation is two messages.
    let d = ConvId::group(GroupId(3));
    let d1 = text(&d, 1, 1, "dup", "from 1");
    let d2 = text(&d, 2, 2, "dup", "from 2");
    append_all(&*store, &[d1.clone(), d2.clone()]).await?;
    assert_eq!(all_of(&*store, &d).await?, vec![d1.clone(), d2.clone()]);
    assert_eq!(store.find_by_client_id(d.clone(), UserId(1), "dup".into()).await?, Some(d1));
    assert_eq!(store.find_by_client_id(d.clone(), UserId(2), "dup".into()).await?, Some(d2));

    // Conversation a is untouched by all that.
    assert_eq!(seqs(&all_of(&*store, &a).await?), vec![1, 2, 4]);
    Ok(())
}

/// A client id sent twice within one batch (a quick resend caught by group commit) is stored once.
async fn dedup_within_one_batch(store: Arc<dyn MessageStore>) -> TestResult {
    let e = ConvId::group(GroupId(5));
    let e1 = text(&e, 1, 1, "k", "original");
    let e2 = text(&e, 2, 1, "k", "resend in the same batch");
    let e3 = text(&e, 3, 1, "other", "third");
    let res = store.append(vec![e1.clone(), e2, e3.clone()]).await?;
    assert_eq!(res, vec![Appended::Stored(e1.clone()), Appended::Duplicate(e1.clone()), Appended::Stored(e3.clone())]);
    assert_eq!(all_of(&*store, &e).await?, vec![e1, e3]);
    Ok(())
}

/// `find_by_client_id` matches on conversation, sender and client id together.
async fn find_by_client_id(store: Arc<dyn MessageStore>) -> TestResult {
    let a = ConvId::direct(UserId(3), UserId(4));
    let b = ConvId::direct(UserId(3), UserId(5));
    let m = text(&a, 1, 3, "cid-1", "hi");
    let n = text(&a, 2, 4, "cid-2", "hello");
    append_all(&*store, &[m.clone(), n.clone()]).await?;

    assert_eq!(store.find_by_client_id(a.clone(), UserId(3), "cid-1".into()).await?, Some(m));
    assert_eq!(store.find_by_client_id(a.clone(), UserId(4), "cid-2".into()).await?, Some(n));
    // Wrong sender, wrong conversation, unknown id, empty store: nothing.
    assert_eq!(store.find_by_client_id(a.clone(), UserId(4), "cid-1".into()).await?, None);
    assert_eq!(store.find_by_client_id(b.clone(), UserId(3), "cid-1".into()).await?, None);
    assert_eq!(store.find_by_client_id(a.clone(), UserId(3), "cid-9".into()).await?, None);
    assert_eq!(store.find_by_client_id(a, UserId(3), String::new()).await?, None);
    assert_eq!(store.find_by_client_id(b, UserId(5), "cid-1".into()).await?, None);
    Ok(())
}

/// `get` finds exactly one message; `max_seq` is 0 for an empty conversation.
async fn get_and_max_seq(store: Arc<dyn MessageStore>) -> TestResult {
    let a = ConvId::group(GroupId(10));
    let b = ConvId::group(GroupId(11));
    let empty = ConvId::group(GroupId(12));
    assert_eq!(store.max_seq(a.clone()).await?, 0);

    let run_a = run_of(&a, 1, 5);
    let run_b = run_of(&b, 1, 2);
    append_all(&*store, &[run_a.clone(), run_b.clone()].concat()).await?;

    assert_eq!(store.max_seq(a.clone()).await?, 5);
    assert_eq!(store.max_seq(b.clone()).await?, 2);
    assert_eq!(store.max_seq(empty.clone()).await?, 0);

    assert_eq!(store.get(a.clone(), 3).await?.as_ref(), Some(&run_a[2]));
    assert_eq!(store.get(b.clone(), 2).await?.as_ref(), Some(&run_b[1]));
    assert_eq!(store.get(a.clone(), 6).await?, None);
    assert_eq!(store.get(a.clone(), 0).await?, None);
    assert_eq!(store.get(b.clone(), 3).await?, None);
    assert_eq!(store.get(empty.clone(), 1).await?, None);

    // A gap (seqs lost to dedup) does not confuse max_seq.
    let far = text(&a, 10, 1, "far", "after a gap");
    append_all(&*store, std::slice::from_ref(&far)).await?;
    assert_eq!(store.max_seq(a.clone()).await?, 10);
    assert_eq!(store.max_seq(b).await?, 2);
    assert_eq!(store.get(a.clone(), 10).await?, Some(far));
    assert_eq!(store.get(a, 7).await?, None);
    Ok(())
}

/// After/Before pages with limits and floors; other conversations never leak in.
async fn paging(store: Arc<dyn MessageStore>) -> TestResult {
    let a = ConvId::group(GroupId(20));
    let b = ConvId::group(GroupId(21));
    let c = ConvId::group(GroupId(200));
    let run_a = run_of(&a, 1, 20);
    // Neighbours with overlapping seqs, one with a prefix-sharing id ("g:200" vs "g:20").
    let mut batch = run_of(&b, 1, 30);
    batch.extend(run_a.iter().cloned());
    batch.extend(run_of(&c, 1, 25));
    append_all(&*store, &batch).await?;

    // `want(from, to)`: a's messages from..=to, exactly as stored.
    let want = |from: i64, to: i64| -> Vec<MessageRecord> {
        run_a.iter().filter(|m| m.seq >= from && m.seq <= to).cloned().collect()
    };
    let page = |p: Page, floor: i64, limit: i64| store.page(a.clone(), p, floor, limit);

    // Forwards.
    assert_eq!(page(Page::After(0), 0, 5).await?, want(1, 5));
    assert_eq!(page(Page::After(5), 0, 5).await?, want(6, 10));
    assert_eq!(page(Page::After(18), 0, 5).await?, want(19, 20));
    assert_eq!(page(Page::After(20), 0, 5).await?, Vec::new());
    assert_eq!(page(Page::After(0), 0, ALL).await?, want(1, 20));
    assert_eq!(page(Page::After(0), 0, 1).await?, want(1, 1));

    // Backwards: the page just before n, oldest first.
    assert_eq!(page(Page::Before(21), 0, 5).await?, want(16, 20));
    assert_eq!(page(Page::Before(i64::MAX), 0, 3).await?, want(18, 20));
    assert_eq!(page(Page::Before(10), 0, 3).await?, want(7, 9));
    assert_eq!(page(Page::Before(3), 0, 5).await?, want(1, 2));
    assert_eq!(page(Page::Before(1), 0, 5).await?, Vec::new());
    assert_eq!(page(Page::Before(21), 0, ALL).await?, want(1, 20));

    // The floor excludes seq <= floor in both directions.
    assert_eq!(page(Page::After(0), 12, 5).await?, want(13, 17));
    assert_eq!(page(Page::After(15), 12, ALL).await?, want(16, 20));
    assert_eq!(page(Page::After(5), 12, ALL).await?, want(13, 20));
    assert_eq!(page(Page::Before(15), 12, 5).await?, want(13, 14));
    assert_eq!(page(Page::Before(15), 12, 1).await?, want(14, 14));
    assert_eq!(page(Page::Before(13), 12, 5).await?, Vec::new());
    assert_eq!(page(Page::Before(10), 12, 5).await?, Vec::new());
    assert_eq!(page(Page::Before(21), 18, ALL).await?, want(19, 20));
    assert_eq!(page(Page::After(0), 20, ALL).await?, Vec::new());

    // Neighbours are whole and separate.
    let all_b = all_of(&*store, &b).await?;
    assert_eq!(seqs(&all_b), (1..=30).collect::<Vec<_>>());
    assert!(all_b.iter().all(|m| m.conv == b));
    let all_c = all_of(&*store, &c).await?;
    assert_eq!(seqs(&all_c), (1..=25).collect::<Vec<_>>());
    assert!(all_c.iter().all(|m| m.conv == c));
    let back_b = store.page(b.clone(), Page::Before(31), 0, 5).await?;
    assert_eq!(seqs(&back_b), vec![26, 27, 28, 29, 30]);
    assert!(back_b.iter().all(|m| m.conv == b));
    // An unknown conversation has no pages.
    let none = ConvId::group(GroupId(2));
    assert_eq!(store.page(none.clone(), Page::After(0), 0, ALL).await?, Vec::new());
    assert_eq!(store.page(none, Page::Before(i64::MAX), 0, ALL).await?, Vec::new());
    Ok(())
}

/// Recall clears the body once; later recalls and missing messages answer false.
async fn recall(store: Arc<dyn MessageStore>) -> TestResult {
    let a = ConvId::direct(UserId(1), UserId(2));
    let b = ConvId::direct(UserId(1), UserId(3));
    let m1 = MessageRecord { mentions: vec![UserId(2)], ..text(&a, 1, 1, "r1", "oops") };
    let m2 = text(&a, 2, 2, "r2", "kept");
    let n1 = text(&b, 1, 1, "r1", "other conversation");
    append_all(&*store, &[m1.clone(), m2.clone(), n1.clone()]).await?;

    let at = TS0 + 60_000;
    assert!(store.recall(a.clone(), 1, at).await?, "first recall succeeds");
    assert!(!store.recall(a.clone(), 1, at + 1).await?, "second recall is a no-op");

    let recalled = store.get(a.clone(), 1).await?.ok_or("recalled message vanished")?;
    assert_eq!(recalled.body, None);
    assert_eq!(recalled.recalled_at, Some(at), "the first recall's time stays");
    assert_eq!(
        recalled,
        MessageRecord { body: None, recalled_at: Some(at), ..m1.clone() },
        "everything but body and recalled_at is unchanged"
    );
    assert_eq!(store.get(a.clone(), 2).await?, Some(m2.clone()));
    assert_eq!(store.get(b.clone(), 1).await?, Some(n1), "same seq in another conversation untouched");

    // Missing messages.
    assert!(!store.recall(a.clone(), 99, at).await?);
    assert!(!store.recall(ConvId::group(GroupId(77)), 1, at).await?);

    // Pages and dedup see the recalled state.
    let all = all_of(&*store, &a).await?;
    assert_eq!(all.len(), 2);
    assert_eq!(all[0], recalled);
    assert_eq!(all[1], m2);
    assert_eq!(store.find_by_client_id(a.clone(), UserId(1), "r1".into()).await?, Some(recalled.clone()));
    let res = store.append(vec![text(&a, 3, 1, "r1", "oops again")]).await?;
    assert_eq!(res, vec![Appended::Duplicate(recalled)]);
    assert_eq!(store.max_seq(a).await?, 2);
    Ok(())
}

/// 500 messages over 5 conversations in one append call.
async fn large_batch(store: Arc<dyn MessageStore>) -> TestResult {
    let convs: Vec<ConvId> = (0..5).map(|g| ConvId::group(GroupId(1000 + g))).collect();
    let batch: Vec<MessageRecord> = (0..500i64)
        .map(|i| {
            let conv = &convs[(i % 5) as usize];
            let seq = i / 5 + 1;
            MessageRecord {
                mentions: if i % 7 == 0 { vec![UserId(i), UserId(i + 1)] } else { Vec::new() },
                mention_all: i % 11 == 0,
                kind: if i % 13 == 0 { MessageKind::System } else { MessageKind::Text },
                ..text(conv, seq, 1 + i % 3, &format!("bulk-{i}"), &format!("bulk message {i}"))
            }
        })
        .collect();
    let res = store.append(batch.clone()).await?;
    assert_eq!(res.len(), 500);
    assert!(res.iter().all(|a| matches!(a, Appended::Stored(_))), "all 500 Stored");
    assert_eq!(res, stored(&batch));

    for conv in &convs {
        let all = all_of(&*store, conv).await?;
        assert_eq!(all.len(), 100, "{} holds 100 messages", conv.0);
        assert_eq!(seqs(&all), (1..=100).collect::<Vec<_>>());
        let expected: Vec<MessageRecord> = batch.iter().filter(|m| &m.conv == conv).cloned().collect();
        assert_eq!(all, expected);
        assert_eq!(store.max_seq(conv.clone()).await?, 100);
    }

    // Resending the whole batch stores nothing new.
    let res = store.append(batch.clone()).await?;
    assert_eq!(res, batch.iter().cloned().map(Appended::Duplicate).collect::<Vec<_>>());
    for conv in &convs {
        assert_eq!(all_of(&*store, conv).await?.len(), 100);
    }
    Ok(())
}

/// Two different messages claiming one (conv, seq) fail the append; the stored one stays, and a
/// retry of the batch's innocent message is answered with that message (stored now or before).
async fn seq_clash_is_an_error(store: Arc<dyn MessageStore>) -> TestResult {
    let a = ConvId::group(GroupId(30));
    let m1 = text(&a, 1, 1, "first", "first");
    append_all(&*store, std::slice::from_ref(&m1)).await?;

    let innocent = text(&a, 2, 1, "second", "second");
    let clash = text(&a, 1, 2, "other", "claims seq 1");
    let res = store.append(vec![innocent.clone(), clash]).await;
    assert!(res.is_err(), "a seq clash must fail the append, got {res:?}");

    assert_eq!(store.get(a.clone(), 1).await?, Some(m1.clone()));
    assert_eq!(store.find_by_client_id(a.clone(), UserId(2), "other".into()).await?, None);
    // Whether the innocent message made it is up to the store; a retry settles it either way.
    let retry = store.append(vec![innocent.clone()]).await?;
    assert_eq!(retry.len(), 1);
    assert_eq!(retry[0].record(), &innocent);
    assert_eq!(all_of(&*store, &a).await?, vec![m1, innocent]);
    Ok(())
}

/// The store answers.
async fn ping(store: Arc<dyn MessageStore>) -> TestResult {
    store.ping().await?;
    store.ping().await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// MongoDB only
// ---------------------------------------------------------------------------------------------

/// `connect` creates the three indexes (beyond `_id_`) with the right keys and uniqueness.
#[actix_rt::test]
async fn mongodb_indexes() -> TestResult {
    let (scratch, store) = MongoScratch::open().await?;
    let res = check_indexes(&scratch, &store).await;
    scratch.drop_db().await;
    res
}

async fn check_indexes(scratch: &MongoScratch, store: &MongoMessageStore) -> TestResult {
    let mut names = store.index_names().await?;
    names.sort();
    assert!(names.iter().any(|n| n == "_id_"), "the _id_ index exists: {names:?}");
    assert_eq!(names.len(), 4, "_id_ plus three: {names:?}");

    let coll = scratch.client.database(&scratch.name).collection::<Document>("messages");
    let models: Vec<mongodb::IndexModel> = coll.list_indexes().await?.try_collect().await?;
    let spec = |keys: Document| -> Option<(Option<String>, bool)> {
        models.iter().find(|m| m.keys == keys).map(|m| {
            let opts = m.options.as_ref();
            (opts.and_then(|o| o.name.clone()), opts.and_then(|o| o.unique).unwrap_or(false))
        })
    };
    let conv_seq = spec(doc! {"conv": 1, "seq": 1}).ok_or("no {conv, seq} index")?;
    let dedup = spec(doc! {"conv": 1, "sender": 1, "client_id": 1}).ok_or("no {conv, sender, client_id} index")?;
    assert!(conv_seq.1, "{{conv, seq}} is unique: {conv_seq:?}");
    // Nothing reads by time: no {conv, ts} index to update on every insert.
    assert!(spec(doc! {"conv": 1, "ts": 1}).is_none(), "no {{conv, ts}} index");
    assert!(dedup.1, "{{conv, sender, client_id}} is unique: {dedup:?}");
    // Who may download an upload is looked up by the messages that carry it.
    let by_upload = spec(doc! {"attachment.id": 1}).ok_or("no {attachment.id} index")?;
    assert!(!by_upload.1, "{{attachment.id}} is not unique (forwards carry the same upload): {by_upload:?}");
    Ok(())
}

/// Connecting again to the same database (a restart) keeps the indexes and the data.
#[actix_rt::test]
async fn mongodb_reconnect_is_idempotent() -> TestResult {
    let (scratch, store) = MongoScratch::open().await?;
    let res = reconnect(&scratch, &store).await;
    scratch.drop_db().await;
    res
}

async fn reconnect(scratch: &MongoScratch, store: &MongoMessageStore) -> TestResult {
    let conv = ConvId::group(GroupId(1));
    let m = text(&conv, 1, 1, "x", "before restart");
    append_all(store, std::slice::from_ref(&m)).await?;
    let before = {
        let mut v = store.index_names().await?;
        v.sort();
        v
    };
    let again = MongoMessageStore::connect(&MongoScratch::url(), &scratch.name).await?;
    let mut after = again.index_names().await?;
    after.sort();
    assert_eq!(before, after);
    assert_eq!(again.get(conv.clone(), 1).await?, Some(m.clone()));
    let res = again.append(vec![text(&conv, 2, 1, "x", "resent after restart")]).await?;
    assert_eq!(res, vec![Appended::Duplicate(m)]);
    Ok(())
}

/// A seq taken by a different message is an error, not a silent overwrite or a duplicate.
#[actix_rt::test]
async fn mongodb_seq_taken_is_an_error() -> TestResult {
    let (scratch, store) = MongoScratch::open().await?;
    let res = seq_taken(&store).await;
    scratch.drop_db().await;
    res
}

async fn seq_taken(store: &MongoMessageStore) -> TestResult {
    let conv = ConvId::group(GroupId(1));
    let m = text(&conv, 1, 1, "first", "first");
    append_all(store, std::slice::from_ref(&m)).await?;
    let clash = store.append(vec![text(&conv, 1, 2, "second", "same seq")]).await;
    assert!(
        matches!(clash, Err(actors::store::StoreError::SeqTaken { seq: 1, .. })),
        "expected SeqTaken, got {clash:?}"
    );
    assert_eq!(all_of(store, &conv).await?, vec![m]);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Conversation summaries written with a batch
// ---------------------------------------------------------------------------------------------

fn last_of(m: &MessageRecord) -> LastMessage {
    LastMessage { conv: m.conv.0.clone(), seq: m.seq, ts: m.ts, sender: m.sender.0, preview: m.body.clone() }
}

/// `append_with_summaries` stores the batch and moves each conversation's summary and the
/// sender's read mark forward, never backwards; a batch that fails moves nothing (on SQL, where
/// both are one transaction).
async fn summaries_case(store: Arc<dyn MessageStore>, db: Db, atomic: bool) -> TestResult {
    let (a, b) = (ConvId::direct(UserId(1), UserId(2)), ConvId::direct(UserId(1), UserId(3)));
    for (conv, peer) in [(&a, 2), (&b, 3)] {
        let c = conv.0.clone();
        db.write(move |conn| conversations::ensure(conn, &c, &[(1, Some(peer)), (peer, Some(1))], TS0)).await?;
    }
    let a1 = text(&a, 1, 1, "a1", "hello a");
    let a2 = text(&a, 2, 2, "a2", "reply from 2");
    let b1 = text(&b, 1, 1, "b1", "hello b");
    let res = store
        .append_with_summaries(
            vec![a1.clone(), a2.clone(), b1.clone()],
            vec![last_of(&a2), last_of(&b1)],
            vec![],
            db.clone(),
        )
        .await?;
    assert_eq!(res, stored(&[a1.clone(), a2.clone(), b1.clone()]));

    let summary = |conv: &ConvId| {
        let (db, c) = (db.clone(), conv.0.clone());
        async move { db.read(move |conn| conversations::find(conn, &c)).await }
    };
    let read_seq = |user: i64, conv: &ConvId| {
        let (db, c) = (db.clone(), conv.0.clone());
        async move { db.read(move |conn| conversations::state(conn, user, &c)).await.map(|s| s.map(|s| s.read_seq)) }
    };
    let sa = summary(&a).await?.ok_or("no summary of a")?;
    assert_eq!((sa.last_seq, sa.last_ts, sa.last_sender_id), (2, a2.ts, Some(2)));
    assert_eq!(sa.last_preview.as_deref(), Some("reply from 2"));
    let sb = summary(&b).await?.ok_or("no summary of b")?;
    assert_eq!((sb.last_seq, sb.last_sender_id, sb.last_preview.as_deref()), (1, Some(1), Some("hello b")));
    // Each sender has read up to its own message; the receivers have not.
    assert_eq!(read_seq(2, &a).await?, Some(2));
    assert_eq!(read_seq(1, &b).await?, Some(1));
    assert_eq!(read_seq(3, &b).await?, Some(0));

    // An older summary (a batch that completed late) does not move it back.
    let stale = LastMessage { preview: Some("stale".into()), ..last_of(&a1) };
    store.append_with_summaries(vec![], vec![stale], vec![], db.clone()).await?;
    assert_eq!(summary(&a).await?.ok_or("no summary of a")?.last_seq, 2);

    // A failing batch (seq clash): the summary stays where it was when both are one transaction.
    let clash = text(&a, 2, 1, "other", "claims seq 2");
    let a3 = text(&a, 3, 1, "a3", "third");
    let res = store.append_with_summaries(vec![clash, a3.clone()], vec![last_of(&a3)], vec![], db.clone()).await;
    assert!(res.is_err(), "a seq clash must fail the batch, got {res:?}");
    if atomic {
        let sa = summary(&a).await?.ok_or("no summary of a")?;
        assert_eq!((sa.last_seq, sa.last_preview.as_deref()), (2, Some("reply from 2")));
        assert_eq!(seqs(&all_of(&*store, &a).await?), vec![1, 2]);
    }
    Ok(())
}

fn sql_db(scratch: &ScratchDb) -> Result<Db, Box<dyn std::error::Error>> {
    let db = Database::open(&scratch.url, 4, Duration::from_secs(10))?;
    db.migrate()?;
    Ok(Db::start(db, 2))
}

#[actix_rt::test]
async fn summaries_with_the_batch_sqlite() -> TestResult {
    let scratch = ScratchDb::sqlite();
    let db = sql_db(&scratch)?;
    summaries_case(Arc::new(SqlMessageStore::new(db.clone())), db, true).await
}

#[actix_rt::test]
async fn summaries_with_the_batch_postgres() -> TestResult {
    let scratch = ScratchDb::postgres()?;
    let db = sql_db(&scratch)?;
    summaries_case(Arc::new(SqlMessageStore::new(db.clone())), db, true).await
}

#[actix_rt::test]
async fn summaries_with_the_batch_mongodb() -> TestResult {
    // Messages in MongoDB, summaries in SQL: two writes, so no atomicity to check.
    let scratch = ScratchDb::sqlite();
    let db = sql_db(&scratch)?;
    let (mongo, store) = MongoScratch::open().await?;
    let res = summaries_case(Arc::new(store), db, false).await;
    mongo.drop_db().await;
    res
}

// ---------------------------------------------------------------------------------------------
// Fencing: writes under an owner epoch that is no longer the conversation's are refused
// ---------------------------------------------------------------------------------------------

/// Messages written under the conversation's current epoch are stored; once another owner took
/// the conversation (a higher epoch in `entity_owners`), the old owner's messages answer
/// `Fenced` and are not stored (nor is the summary moved), while other conversations of the same
/// batch are stored as usual.
async fn fencing_case(store: Arc<dyn MessageStore>, db: Db) -> TestResult {
    use schema::db::owners;
    use schema::message::Fence;
    let (a, b) = (ConvId::direct(UserId(1), UserId(2)), ConvId::direct(UserId(1), UserId(3)));
    for (conv, peer) in [(&a, 2), (&b, 3)] {
        let c = conv.0.clone();
        db.write(move |conn| conversations::ensure(conn, &c, &[(1, Some(peer)), (peer, Some(1))], TS0)).await?;
    }
    let take = |conv: &ConvId, node: &'static str| {
        let (db, c) = (db.clone(), conv.0.clone());
        async move { db.write(move |conn| owners::take(conn, &c, node, TS0)).await }
    };
    let ea = take(&a, "node-1").await?;
    let eb = take(&b, "node-1").await?;
    let a1 = text(&a, 1, 1, "a1", "first owner");
    let res = store
        .append_with_summaries(
            vec![a1.clone()],
            vec![last_of(&a1)],
            vec![Fence { conv: a.clone(), epoch: ea }],
            db.clone(),
        )
        .await?;
    assert_eq!(res, stored(std::slice::from_ref(&a1)));
    // Another node takes `a` over.
    let ea2 = take(&a, "node-2").await?;
    assert!(ea2 > ea);
    let late = text(&a, 2, 1, "a-late", "old owner, after the takeover");
    let b1 = text(&b, 1, 1, "b1", "untouched conversation");
    let res = store
        .append_with_summaries(
            vec![late.clone(), b1.clone()],
            vec![last_of(&late), last_of(&b1)],
            vec![Fence { conv: a.clone(), epoch: ea }, Fence { conv: b.clone(), epoch: eb }],
            db.clone(),
        )
        .await?;
    assert_eq!(res, vec![Appended::Fenced(late.clone()), Appended::Stored(b1.clone())]);
    assert_eq!(seqs(&all_of(&*store, &a).await?), vec![1], "the fenced message is not stored");
    assert_eq!(seqs(&all_of(&*store, &b).await?), vec![1]);
    let c = a.0.clone();
    let summary = db.read(move |conn| conversations::find(conn, &c)).await?.ok_or("no summary")?;
    assert_eq!(summary.last_seq, 1, "nor does it move the summary");
    // The new owner writes the same seq under its epoch.
    let a2 = text(&a, 2, 2, "a2", "new owner");
    let res = store
        .append_with_summaries(
            vec![a2.clone()],
            vec![last_of(&a2)],
            vec![Fence { conv: a.clone(), epoch: ea2 }],
            db.clone(),
        )
        .await?;
    assert_eq!(res, stored(std::slice::from_ref(&a2)));
    // A conversation nobody took in SQL is fenced for any epoch (a writer must take first).
    let cold = ConvId::group(GroupId(99));
    let x = text(&cold, 1, 1, "x", "never taken");
    let res = store
        .append_with_summaries(vec![x.clone()], vec![], vec![Fence { conv: cold.clone(), epoch: 1 }], db.clone())
        .await?;
    assert_eq!(res, vec![Appended::Fenced(x)]);
    assert!(all_of(&*store, &cold).await?.is_empty());
    Ok(())
}

#[actix_rt::test]
async fn fencing_sqlite() -> TestResult {
    let scratch = ScratchDb::sqlite();
    let db = sql_db(&scratch)?;
    fencing_case(Arc::new(SqlMessageStore::new(db.clone())), db).await
}

#[actix_rt::test]
async fn fencing_postgres() -> TestResult {
    let scratch = ScratchDb::postgres()?;
    let db = sql_db(&scratch)?;
    fencing_case(Arc::new(SqlMessageStore::new(db.clone())), db).await
}

#[actix_rt::test]
async fn fencing_mongodb() -> TestResult {
    let scratch = ScratchDb::sqlite();
    let db = sql_db(&scratch)?;
    let (mongo, store) = MongoScratch::open().await?;
    let res = fencing_case(Arc::new(store), db).await;
    mongo.drop_db().await;
    res
}

/// On PostgreSQL a takeover waits for a batch that is being written under the old epoch (the
/// batch holds the owner row), so the old owner's batch is ordered before the takeover, never
/// after it: the new owner, which reads the store only once it has its epoch, sees the batch.
#[actix_rt::test]
async fn a_takeover_waits_for_the_batch_in_flight_postgres() -> TestResult {
    use schema::db::owners;
    let scratch = ScratchDb::postgres()?;
    let db = sql_db(&scratch)?;
    let conv = ConvId::direct(UserId(1), UserId(2));
    let c = conv.0.clone();
    let e1 = db.write(move |conn| owners::take(conn, &c, "node-1", TS0)).await?;
    // The old owner's transaction: fence checked (row held), then it stalls before committing.
    let (locked_tx, locked_rx) = std::sync::mpsc::channel::<()>();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let database = db.database().clone();
    let c = conv.0.clone();
    let writer = std::thread::spawn(move || {
        database.write(|conn| {
            let stale = owners::stale(conn, &[(c.as_str(), e1)])?;
            assert!(stale.is_empty());
            let _ = locked_tx.send(());
            let _ = go_rx.recv_timeout(Duration::from_secs(10));
            Ok(())
        })
    });
    locked_rx.recv_timeout(Duration::from_secs(10))?;
    let c = conv.0.clone();
    let mut take = Box::pin(db.write(move |conn| owners::take(conn, &c, "node-2", TS0)));
    // While the batch holds the row, the takeover cannot complete.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut take).await.is_err(),
        "the takeover went through while a batch under the old epoch was in flight"
    );
    let _ = go_tx.send(());
    assert_eq!(take.await?, e1 + 1, "once the batch committed, the takeover did");
    writer.join().map_err(|_| "writer thread panicked")??;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Rich messages: replies, forwards, attachments, edits, reactions
// ---------------------------------------------------------------------------------------------

fn photo() -> schema::message::Attachment {
    schema::message::Attachment {
        id: "u-photo-1".into(),
        kind: schema::message::AttachmentKind::Image,
        name: "beach.jpg".into(),
        mime: "image/jpeg".into(),
        size: 123_456,
        width: Some(1024),
        height: Some(768),
        thumb: true,
    }
}

/// Replies, forwards and attachments are stored and read back as given; messages carrying an
/// upload are found by its id, in every conversation that carries it.
async fn rich_messages_round_trip(store: Arc<dyn MessageStore>) -> TestResult {
    let (a, b) = (ConvId::direct(UserId(1), UserId(2)), ConvId::group(GroupId(5)));
    let first = text(&a, 1, 1, "r1", "look");
    let reply = MessageRecord { reply_to: Some(1), attachment: Some(photo()), ..text(&a, 2, 2, "r2", "nice!") };
    let fwd =
        MessageRecord { forwarded_from: Some(UserId(2)), attachment: Some(photo()), ..text(&b, 1, 1, "f1", "nice!") };
    append_all(&*store, &[first.clone(), reply.clone()]).await?;
    append_all(&*store, std::slice::from_ref(&fwd)).await?;
    assert_eq!(store.get(a.clone(), 2).await?, Some(reply.clone()));
    assert_eq!(all_of(&*store, &a).await?, vec![first.clone(), reply.clone()]);
    assert_eq!(store.get(b.clone(), 1).await?, Some(fwd.clone()));
    let mut carrying = store.with_attachment("u-photo-1".into()).await?;
    carrying.sort_by(|x, y| x.conv.cmp(&y.conv));
    assert_eq!(carrying, vec![reply, fwd].into_iter().sorted_by_conv());
    assert!(store.with_attachment("u-none".into()).await?.is_empty());
    Ok(())
}

trait SortedByConv {
    fn sorted_by_conv(self) -> Vec<MessageRecord>;
}

impl<I: Iterator<Item = MessageRecord>> SortedByConv for I {
    fn sorted_by_conv(self) -> Vec<MessageRecord> {
        let mut v: Vec<MessageRecord> = self.collect();
        v.sort_by(|x, y| x.conv.cmp(&y.conv));
        v
    }
}

/// An edit replaces the body and records when and by which edit; an older edit arriving late
/// changes nothing; a recalled message cannot be edited.
async fn edits_keep_the_latest_body(store: Arc<dyn MessageStore>) -> TestResult {
    let conv = ConvId::direct(UserId(1), UserId(2));
    append_all(&*store, &[text(&conv, 1, 1, "e1", "teh typo"), text(&conv, 2, 1, "e2", "gone")]).await?;
    assert!(store.edit(conv.clone(), 1, "the typo".into(), TS0 + 20, "edit-b".into()).await?);
    assert!(!store.edit(conv.clone(), 1, "older".into(), TS0 + 10, "edit-a".into()).await?, "a late, older edit loses");
    let m = store.get(conv.clone(), 1).await?.ok_or("no message")?;
    assert_eq!(
        (m.body.as_deref(), m.edited_at, m.edit_id.as_deref()),
        (Some("the typo"), Some(TS0 + 20), Some("edit-b"))
    );
    assert!(store.recall(conv.clone(), 2, TS0 + 30).await?);
    assert!(!store.edit(conv.clone(), 2, "back".into(), TS0 + 40, "edit-c".into()).await?, "recalled: not editable");
    assert_eq!(store.get(conv.clone(), 2).await?.ok_or("no message")?.body, None);
    assert!(!store.edit(conv, 9, "x".into(), TS0 + 40, "edit-d".into()).await?, "no such message");
    Ok(())
}

/// A user reacts with an emoji at most once per message; removing it twice changes nothing; the
/// reactions of several messages come back together.
async fn reactions_once_per_user_and_emoji(store: Arc<dyn MessageStore>) -> TestResult {
    let conv = ConvId::group(GroupId(3));
    append_all(&*store, &[text(&conv, 1, 1, "x1", "a"), text(&conv, 2, 1, "x2", "b")]).await?;
    assert!(store.react(conv.clone(), 1, UserId(2), "👍".into(), true, TS0 + 1).await?);
    assert!(!store.react(conv.clone(), 1, UserId(2), "👍".into(), true, TS0 + 2).await?, "once per user and emoji");
    assert!(store.react(conv.clone(), 1, UserId(3), "👍".into(), true, TS0 + 3).await?);
    assert!(store.react(conv.clone(), 1, UserId(2), "🎉".into(), true, TS0 + 4).await?);
    assert!(store.react(conv.clone(), 2, UserId(2), "❤️".into(), true, TS0 + 5).await?);
    assert!(store.react(conv.clone(), 1, UserId(3), "👍".into(), false, TS0 + 6).await?);
    assert!(!store.react(conv.clone(), 1, UserId(3), "👍".into(), false, TS0 + 7).await?, "removed already");
    let got: Vec<(i64, i64, String)> =
        store.reactions(conv.clone(), vec![1, 2]).await?.into_iter().map(|r| (r.seq, r.user.0, r.emoji)).collect();
    assert_eq!(got, vec![(1, 2, "👍".to_owned()), (1, 2, "🎉".to_owned()), (2, 2, "❤️".to_owned())]);
    assert!(store.reactions(conv, vec![]).await?.is_empty());
    Ok(())
}
