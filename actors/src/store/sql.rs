//! The SQL message store: the `messages` table through the Diesel workers.

use schema::db::conversations::{self, LastMessage};
use schema::db::messages as q;
use schema::message::{Appended, MessageRecord, Page};
use schema::{ConvId, UserId};

use super::{MessageStore, StoreFuture};
use crate::db::Db;

/// Messages in the SQL database (SQLite or PostgreSQL).
#[derive(Clone)]
pub struct SqlMessageStore {
    db: Db,
}

impl SqlMessageStore {
    /// A store over the given database handle.
    pub fn new(db: Db) -> Self {
        SqlMessageStore { db }
    }
}

impl MessageStore for SqlMessageStore {
    fn name(&self) -> &'static str {
        "sql"
    }

    fn append(&self, batch: Vec<MessageRecord>) -> StoreFuture<Vec<Appended>> {
        let db = self.db.clone();
        Box::pin(async move { Ok(db.write(move |c| q::append(c, &batch)).await?) })
    }

    fn append_with_summaries(
        &self,
        batch: Vec<MessageRecord>,
        last: Vec<LastMessage>,
        db: Db,
    ) -> StoreFuture<Vec<Appended>> {
        if !db.same_database(&self.db) {
            return super::then_summaries(self.append(batch), last, db);
        }
        let db = self.db.clone();
        Box::pin(async move {
            Ok(db
                .write(move |c| {
                    let res = q::append(c, &batch)?;
                    conversations::record_last(c, &last)?;
                    Ok(res)
                })
                .await?)
        })
    }

    fn find_by_client_id(&self, conv: ConvId, sender: UserId, client_id: String) -> StoreFuture<Option<MessageRecord>> {
        let db = self.db.clone();
        Box::pin(async move { Ok(db.read(move |c| q::find_by_client_id(c, &conv, sender, &client_id)).await?) })
    }

    fn get(&self, conv: ConvId, seq: i64) -> StoreFuture<Option<MessageRecord>> {
        let db = self.db.clone();
        Box::pin(async move { Ok(db.read(move |c| q::get(c, &conv, seq)).await?) })
    }

    fn page(&self, conv: ConvId, page: Page, floor: i64, limit: i64) -> StoreFuture<Vec<MessageRecord>> {
        let db = self.db.clone();
        Box::pin(async move { Ok(db.read(move |c| q::page(c, &conv, page, floor, limit)).await?) })
    }

    fn max_seq(&self, conv: ConvId) -> StoreFuture<i64> {
        let db = self.db.clone();
        Box::pin(async move { Ok(db.read(move |c| q::max_seq(c, &conv)).await?) })
    }

    fn recall(&self, conv: ConvId, seq: i64, at: i64) -> StoreFuture<bool> {
        let db = self.db.clone();
        Box::pin(async move { Ok(db.write(move |c| q::recall(c, &conv, seq, at)).await?) })
    }

    fn ping(&self) -> StoreFuture<()> {
        let db = self.db.clone();
        Box::pin(async move { Ok(db.ping().await?) })
    }
}
