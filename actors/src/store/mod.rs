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
use schema::db::conversations::{self, LastMessage};
use schema::db::DbError;
use schema::message::{Appended, MessageRecord, Page};
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

    /// [`MessageStore::append`], then the conversation summaries `last` in the SQL database `db`.
    /// The messages are durable once this resolves; a failed summary update only leaves the
    /// conversation list stale (logged), it does not fail the batch. A store that lives in `db`
    /// does both in one transaction (one commit per batch). On a SQLite file the SQL store
    /// writes during this call, on the caller's thread ([`Database::local_writes`]), and returns
    /// a future that is already resolved.
    ///
    /// [`Database::local_writes`]: schema::db::Database::local_writes
    fn append_with_summaries(
        &self,
        batch: Vec<MessageRecord>,
        last: Vec<LastMessage>,
        db: Db,
    ) -> StoreFuture<Vec<Appended>> {
        then_summaries(self.append(batch), last, db)
    }

    /// The message stored for a client id, if any (dedup after a restart).
    fn find_by_client_id(&self, conv: ConvId, sender: UserId, client_id: String) -> StoreFuture<Option<MessageRecord>>;

    /// One message.
    fn get(&self, conv: ConvId, seq: i64) -> StoreFuture<Option<MessageRecord>>;

    /// Up to `limit` messages of a page, in seq order, only those with seq > `floor`.
    fn page(&self, conv: ConvId, page: Page, floor: i64, limit: i64) -> StoreFuture<Vec<MessageRecord>>;

    /// The highest seq stored (0 for an empty conversation).
    fn max_seq(&self, conv: ConvId) -> StoreFuture<i64>;

    /// Removes the body and marks the message recalled at `at`; false if missing or already so.
    fn recall(&self, conv: ConvId, seq: i64, at: i64) -> StoreFuture<bool>;

    /// Checks that the store answers (`/readyz`).
    fn ping(&self) -> StoreFuture<()>;
}

/// Runs `append`, then (if it succeeded) the summaries `last` in `db`, in a transaction of their
/// own; a failed summary update is logged, not returned.
fn then_summaries(append: StoreFuture<Vec<Appended>>, last: Vec<LastMessage>, db: Db) -> StoreFuture<Vec<Appended>> {
    Box::pin(async move {
        let res = append.await?;
        if let Err(e) = db.write(move |c| conversations::record_last(c, &last)).await {
            log::warn!("conversation summaries not updated: {e}");
        }
        Ok(res)
    })
}
