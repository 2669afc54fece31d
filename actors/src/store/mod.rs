//! The message store: one interface, two implementations.
//!
//! - [`SqlMessageStore`]: the `messages` table through Diesel (embedded default; also fine for
//!   small PostgreSQL deployments).
//! - [`MongoMessageStore`]: the `messages` collection through the official `mongodb` driver, with
//!   unique `{conv, seq}` and unique `{conv, sender, client_id}` indexes (nothing reads by time,
//!   so there is no `{conv, ts}` index to update on every insert).
//!
//! Both take whole batches in [`MessageStore::append`] (one multi-row insert / one `insert_many`),
//! which is what group commit builds on. Both pass the same test suite (`tests/message_store.rs`).

mod mongo;
mod sql;

use futures_util::future::BoxFuture;
use std::collections::{HashMap, HashSet};

use schema::db::conversations::{self, LastMessage};
use schema::db::{owners, DbError};
use schema::message::{Appended, Fence, MessageRecord, Page, Reaction, SearchCursor, SearchScope};
use schema::{ConvId, UserId};

use crate::db::Db;

pub use mongo::MongoMessageStore;
pub use sql::SqlMessageStore;

/// Errors of a message store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The SQL database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// MongoDB failed.
    #[error("mongodb: {0}")]
    Mongo(#[from] mongodb::error::Error),
    /// Two different messages claimed the same (conv, seq): a sequencing bug or a split brain.
    #[error("seq {seq} of {conv} is already taken by another message")]
    SeqTaken {
        /// The conversation.
        conv: ConvId,
        /// The contested seq.
        seq: i64,
    },
}

/// A future returned by a store.
pub type StoreFuture<T> = BoxFuture<'static, Result<T, StoreError>>;

/// Where messages are persisted.
pub trait MessageStore: Send + Sync + 'static {
    /// A short name for logs and metrics (`sql`, `mongodb`).
    fn name(&self) -> &'static str;

    /// Persists a batch atomically enough that every `Stored` result is durable when the future
    /// resolves. A message whose (conv, sender, client id) exists already is not stored again:
    /// its result is `Duplicate` with the stored message. Results are in input order.
    fn append(&self, batch: Vec<MessageRecord>) -> StoreFuture<Vec<Appended>>;

    /// [`MessageStore::append`] under `fences`, then the conversation summaries `last` in the
    /// SQL database `db`.
    ///
    /// `fences` name the owner epoch the batch's messages of each conversation were sequenced
    /// under (none on a single node): a message whose conversation has another epoch now in
    /// `entity_owners` answers `Fenced`. A store that lives in `db` checks the epochs, stores
    /// the messages and moves the summaries in one transaction (one commit per batch), so a
    /// fenced message is never stored. One that does not (MongoDB) checks before and after its
    /// insert: a message stored while its conversation changed hands answers `Fenced` too, so
    /// the old owner never acks or delivers it (the client resends it to the new owner, whose
    /// dedup finds it by client id).
    ///
    /// The messages are durable once this resolves; a failed summary update only leaves the
    /// conversation list stale (logged), it does not fail the batch. On a SQLite file the SQL
    /// store writes during this call, on the caller's thread ([`Database::local_writes`]), and
    /// returns a future that is already resolved.
    ///
    /// [`Database::local_writes`]: schema::db::Database::local_writes
    fn append_with_summaries(
        &self,
        batch: Vec<MessageRecord>,
        last: Vec<LastMessage>,
        fences: Vec<Fence>,
        db: Db,
    ) -> StoreFuture<Vec<Appended>>;

    /// The message stored for a client id, if any (dedup after a restart).
    fn find_by_client_id(&self, conv: ConvId, sender: UserId, client_id: String) -> StoreFuture<Option<MessageRecord>>;

    /// One message.
    fn get(&self, conv: ConvId, seq: i64) -> StoreFuture<Option<MessageRecord>>;

    /// Up to `limit` messages of a page, in seq order, only those with seq > `floor`.
    fn page(&self, conv: ConvId, page: Page, floor: i64, limit: i64) -> StoreFuture<Vec<MessageRecord>>;

    /// Up to `limit` text messages that contain `query` (case-insensitive), are not recalled and
    /// lie in one of `scopes`, newest first (`ts`, conversation id, seq, all descending),
    /// strictly after `before` in that order. The body is the latest edit's.
    fn search(
        &self,
        scopes: Vec<SearchScope>,
        query: String,
        before: Option<SearchCursor>,
        limit: i64,
    ) -> StoreFuture<Vec<MessageRecord>>;

    /// The highest seq stored (0 for an empty conversation).
    fn max_seq(&self, conv: ConvId) -> StoreFuture<i64>;

    /// Removes the body and marks the message recalled at `at`; false if missing or already so.
    fn recall(&self, conv: ConvId, seq: i64, at: i64) -> StoreFuture<bool>;

    /// Replaces the body of message `seq` (not recalled) with `body`, edited at `at` by the edit
    /// with client id `edit_id`, unless an edit at `at` or later is stored already; false when
    /// nothing changed.
    fn edit(&self, conv: ConvId, seq: i64, body: String, at: i64, edit_id: String) -> StoreFuture<bool>;

    /// Adds (`on`) or removes `user`'s reaction `emoji` to message `seq`; true when it changed.
    fn react(&self, conv: ConvId, seq: i64, user: UserId, emoji: String, on: bool, at: i64) -> StoreFuture<bool>;

    /// The reactions to the messages `seqs` of `conv`.
    fn reactions(&self, conv: ConvId, seqs: Vec<i64>) -> StoreFuture<Vec<Reaction>>;

    /// The messages (of any conversation) that carry upload `id`.
    fn with_attachment(&self, id: String) -> StoreFuture<Vec<MessageRecord>>;

    /// Checks that the store answers (`/readyz`).
    fn ping(&self) -> StoreFuture<()>;
}

/// The conversations of `fences` whose epoch in `entity_owners` is another one now.
pub(crate) fn stale_convs(c: &mut schema::db::AnyConnection, fences: &[Fence]) -> Result<HashSet<ConvId>, DbError> {
    let convs: Vec<&str> = fences.iter().map(|f| f.conv.as_str()).collect();
    let now = owners::epochs(c, &convs)?;
    Ok(fences.iter().filter(|f| now.get(f.conv.as_str()) != Some(&f.epoch)).map(|f| f.conv.clone()).collect())
}

/// [`MessageStore::append_with_summaries`] for a store outside the SQL database: the fence check
/// before the insert (fenced conversations are not written), the insert (`append`), the check
/// again (what was stored meanwhile for a conversation that changed hands answers `Fenced`),
/// then the summaries in a transaction of their own (a failure there is logged).
pub(crate) fn checked_then_summaries<F>(
    append: F,
    batch: Vec<MessageRecord>,
    last: Vec<LastMessage>,
    fences: Vec<Fence>,
    db: Db,
) -> StoreFuture<Vec<Appended>>
where
    F: FnOnce(Vec<MessageRecord>) -> StoreFuture<Vec<Appended>> + Send + 'static,
{
    Box::pin(async move {
        let check = |fences: Vec<Fence>| {
            let db = db.clone();
            async move {
                if fences.is_empty() {
                    return Ok::<_, DbError>(HashSet::new());
                }
                db.read(move |c| stale_convs(c, &fences)).await
            }
        };
        let before = check(fences.clone()).await?;
        let (split, allowed) = Split::new(batch, &before);
        let stored = if allowed.is_empty() { Vec::new() } else { append(allowed).await? };
        let after = if before.len() < fences.len() { check(fences).await? } else { before.clone() };
        let stored = stored
            .into_iter()
            .map(|r| match r {
                Appended::Stored(m) if after.contains(&m.conv) => Appended::Fenced(m),
                other => other,
            })
            .collect();
        let last = unfenced(last, &before);
        if !last.is_empty() {
            if let Err(e) = db.write(move |c| conversations::record_last(c, &last)).await {
                log::warn!("conversation summaries not updated: {e}");
            }
        }
        Ok(split.merge(stored))
    })
}

/// A batch split by its fences: the positions of the messages to write, and the fenced ones.
pub(crate) struct Split {
    total: usize,
    written: Vec<usize>,
    fenced: Vec<(usize, MessageRecord)>,
}

impl Split {
    /// Splits `batch`: what is returned beside the split is to be written (in order).
    pub(crate) fn new(batch: Vec<MessageRecord>, stale: &HashSet<ConvId>) -> (Self, Vec<MessageRecord>) {
        let total = batch.len();
        let (mut written, mut write, mut fenced) = (Vec::new(), Vec::new(), Vec::new());
        for (i, m) in batch.into_iter().enumerate() {
            if stale.contains(&m.conv) {
                fenced.push((i, m));
            } else {
                written.push(i);
                write.push(m);
            }
        }
        (Split { total, written, fenced }, write)
    }

    /// The results in input order: `stored` (one per message written) and `Fenced` for the rest.
    pub(crate) fn merge(self, stored: Vec<Appended>) -> Vec<Appended> {
        let mut out: Vec<Option<Appended>> = vec![None; self.total];
        for (i, m) in self.fenced {
            out[i] = Some(Appended::Fenced(m));
        }
        for (i, r) in self.written.into_iter().zip(stored) {
            out[i] = Some(r);
        }
        out.into_iter().flatten().collect()
    }
}

/// The summaries of conversations that are not fenced.
pub(crate) fn unfenced(last: Vec<LastMessage>, stale: &HashSet<ConvId>) -> Vec<LastMessage> {
    last.into_iter().filter(|l| !stale.iter().any(|c| c.as_str() == l.conv)).collect()
}

/// The newest message of each conversation in a batch, as its summary.
pub fn last_messages(records: &[MessageRecord]) -> Vec<LastMessage> {
    let mut by_conv: HashMap<&str, &MessageRecord> = HashMap::new();
    for r in records {
        let e = by_conv.entry(r.conv.as_str()).or_insert(r);
        if r.seq > e.seq {
            *e = r;
        }
    }
    by_conv
        .into_values()
        .map(|r| LastMessage {
            conv: r.conv.0.clone(),
            seq: r.seq,
            ts: r.ts,
            sender: r.sender.0,
            preview: match r.kind {
                schema::message::MessageKind::Text => r.body.as_deref().map(conversations::preview),
                schema::message::MessageKind::System => None,
            },
        })
        .collect()
}
