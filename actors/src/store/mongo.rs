//! The MongoDB message store: collection `messages`, one document per message.
//!
//! Appends are one unordered `insert_many` per batch; a duplicate-key error on the
//! `{conv, sender, client_id}` index marks a resend, answered with the stored message.

use futures_util::TryStreamExt;
use mongodb::bson::{doc, Bson, Document};
use mongodb::error::ErrorKind;
use mongodb::options::IndexOptions;
use mongodb::{Client, Collection, IndexModel};
use schema::db::conversations::LastMessage;
use schema::message::{Appended, Fence, MessageRecord, Page, Reaction, SearchCursor, SearchScope};
use schema::{ConvId, UserId};

use super::{MessageStore, StoreError, StoreFuture};
use crate::db::Db;

/// MongoDB's duplicate-key error code.
const DUPLICATE_KEY: i32 = 11000;

/// True for a duplicate-key error of a single write.
fn is_duplicate(e: &mongodb::error::Error) -> bool {
    matches!(&*e.kind, ErrorKind::Write(mongodb::error::WriteFailure::WriteError(we)) if we.code == DUPLICATE_KEY)
}

/// Messages in a MongoDB collection.
#[derive(Clone)]
pub struct MongoMessageStore {
    coll: Collection<MessageRecord>,
    reactions: Collection<ReactionDoc>,
}

/// A reaction in the `reactions` collection (unique per message, user and emoji).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct ReactionDoc {
    conv: String,
    seq: i64,
    user: i64,
    emoji: String,
    at: i64,
}

impl MongoMessageStore {
    /// Connects, selects `database.messages` and makes sure its indexes exist.
    pub async fn connect(url: &str, database: &str) -> Result<Self, StoreError> {
        let client = Client::with_uri_str(url).await?;
        let coll = client.database(database).collection::<MessageRecord>("messages");
        let unique = || IndexOptions::builder().unique(true).build();
        coll.create_indexes([
            IndexModel::builder().keys(doc! {"conv": 1, "seq": 1}).options(unique()).build(),
            IndexModel::builder().keys(doc! {"conv": 1, "sender": 1, "client_id": 1}).options(unique()).build(),
            IndexModel::builder()
                .keys(doc! {"attachment.id": 1})
                .options(IndexOptions::builder().sparse(true).build())
                .build(),
        ])
        .await?;
        let reactions = client.database(database).collection::<ReactionDoc>("reactions");
        reactions
            .create_index(
                IndexModel::builder().keys(doc! {"conv": 1, "seq": 1, "user": 1, "emoji": 1}).options(unique()).build(),
            )
            .await?;
        Ok(MongoMessageStore { coll, reactions })
    }

    /// The names of the collection's indexes (for tests and diagnostics).
    pub async fn index_names(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.coll.list_index_names().await?)
    }

    async fn append_batch(
        coll: Collection<MessageRecord>,
        batch: Vec<MessageRecord>,
    ) -> Result<Vec<Appended>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let dup_indexes: Vec<usize> = match coll.insert_many(&batch).ordered(false).await {
            Ok(_) => Vec::new(),
            Err(e) => match *e.kind {
                ErrorKind::InsertMany(ref ime)
                    if ime.write_concern_error.is_none()
                        && ime.write_errors.as_ref().is_some_and(|w| w.iter().all(|we| we.code == DUPLICATE_KEY)) =>
                {
                    ime.write_errors.iter().flatten().map(|we| we.index).collect()
                }
                _ => return Err(e.into()),
            },
        };
        let mut out: Vec<Appended> = Vec::with_capacity(batch.len());
        for (i, m) in batch.into_iter().enumerate() {
            if !dup_indexes.contains(&i) {
                out.push(Appended::Stored(m));
                continue;
            }
            let prev =
                coll.find_one(doc! {"conv": m.conv.as_str(), "sender": m.sender.0, "client_id": &m.client_id}).await?;
            match prev {
                Some(prev) => out.push(Appended::Duplicate(prev)),
                None => return Err(StoreError::SeqTaken { conv: m.conv, seq: m.seq }),
            }
        }
        Ok(out)
    }
}

impl MessageStore for MongoMessageStore {
    fn name(&self) -> &'static str {
        "mongodb"
    }

    fn append(&self, batch: Vec<MessageRecord>) -> StoreFuture<Vec<Appended>> {
        let coll = self.coll.clone();
        Box::pin(Self::append_batch(coll, batch))
    }

    fn append_with_summaries(
        &self,
        batch: Vec<MessageRecord>,
        last: Vec<LastMessage>,
        fences: Vec<Fence>,
        db: Db,
    ) -> StoreFuture<Vec<Appended>> {
        let coll = self.coll.clone();
        let append =
            move |b: Vec<MessageRecord>| -> StoreFuture<Vec<Appended>> { Box::pin(Self::append_batch(coll, b)) };
        super::checked_then_summaries(append, batch, last, fences, db)
    }

    fn find_by_client_id(&self, conv: ConvId, sender: UserId, client_id: String) -> StoreFuture<Option<MessageRecord>> {
        let coll = self.coll.clone();
        Box::pin(
            async move { Ok(coll.find_one(doc! {"conv": conv.0, "sender": sender.0, "client_id": client_id}).await?) },
        )
    }

    fn get(&self, conv: ConvId, seq: i64) -> StoreFuture<Option<MessageRecord>> {
        let coll = self.coll.clone();
        Box::pin(async move { Ok(coll.find_one(doc! {"conv": conv.0, "seq": seq}).await?) })
    }

    fn page(&self, conv: ConvId, page: Page, floor: i64, limit: i64) -> StoreFuture<Vec<MessageRecord>> {
        let coll = self.coll.clone();
        Box::pin(async move {
            let (filter, order) = match page {
                Page::After(n) => (doc! {"conv": conv.0, "seq": {"$gt": n.max(floor)}}, 1),
                Page::Before(n) => (doc! {"conv": conv.0, "seq": {"$gt": floor, "$lt": n}}, -1),
            };
            let mut v: Vec<MessageRecord> =
                coll.find(filter).sort(doc! {"seq": order}).limit(limit).await?.try_collect().await?;
            if order < 0 {
                v.reverse();
            }
            Ok(v)
        })
    }

    fn search(
        &self,
        scopes: Vec<SearchScope>,
        query: String,
        before: Option<SearchCursor>,
        limit: i64,
    ) -> StoreFuture<Vec<MessageRecord>> {
        let coll = self.coll.clone();
        Box::pin(async move {
            if scopes.is_empty() || query.is_empty() {
                return Ok(Vec::new());
            }
            let ranges: Vec<Document> = scopes
                .iter()
                .map(|s| doc! {"conv": s.conv.as_str(), "seq": {"$gt": s.floor, "$lte": s.ceiling}})
                .collect();
            let mut and = vec![
                doc! {"$or": ranges},
                doc! {"kind": {"$ne": "system"}},
                // A recall sets the body to null, which no regex matches: no `recalled_at: null`
                // term (nx-27017 matches none with one inside `$and`).
                doc! {"body": {"$regex": regex_escape(&query), "$options": "i"}},
            ];
            if let Some(c) = before {
                and.push(doc! {"$or": [
                    {"ts": {"$lt": c.ts}},
                    {"ts": c.ts, "conv": {"$lt": c.conv.as_str()}},
                    {"ts": c.ts, "conv": c.conv.as_str(), "seq": {"$lt": c.seq}},
                ]});
            }
            Ok(coll
                .find(doc! {"$and": and})
                .sort(doc! {"ts": -1, "conv": -1, "seq": -1})
                .limit(limit)
                .await?
                .try_collect()
                .await?)
        })
    }

    fn max_seq(&self, conv: ConvId) -> StoreFuture<i64> {
        let coll = self.coll.clone();
        Box::pin(async move {
            let last = coll.find_one(doc! {"conv": conv.0}).sort(doc! {"seq": -1}).await?;
            Ok(last.map(|m| m.seq).unwrap_or(0))
        })
    }

    fn recall(&self, conv: ConvId, seq: i64, at: i64) -> StoreFuture<bool> {
        let coll = self.coll.clone();
        Box::pin(async move {
            let res = coll
                .update_one(
                    doc! {"conv": conv.0, "seq": seq, "recalled_at": Bson::Null},
                    doc! {"$set": {"body": Bson::Null, "recalled_at": at}},
                )
                .await?;
            Ok(res.modified_count == 1)
        })
    }

    fn edit(&self, conv: ConvId, seq: i64, body: String, at: i64, edit_id: String) -> StoreFuture<bool> {
        let coll = self.coll.clone();
        Box::pin(async move {
            let res = coll
                .update_one(
                    // Spelled as one `$and` (same meaning): nx-27017 mis-evaluates a top-level
                    // `$or` next to plain equalities once the filter shape has been seen before.
                    doc! {"$and": [{"conv": conv.0}, {"seq": seq}, {"recalled_at": Bson::Null},
                    {"$or": [{"edited_at": Bson::Null}, {"edited_at": {"$lt": at}}]}]},
                    doc! {"$set": {"body": body, "edited_at": at, "edit_id": edit_id}},
                )
                .await?;
            Ok(res.modified_count == 1)
        })
    }

    fn react(&self, conv: ConvId, seq: i64, user: UserId, emoji: String, on: bool, at: i64) -> StoreFuture<bool> {
        let coll = self.reactions.clone();
        Box::pin(async move {
            if !on {
                let res = coll.delete_one(doc! {"conv": conv.0, "seq": seq, "user": user.0, "emoji": emoji}).await?;
                return Ok(res.deleted_count == 1);
            }
            match coll.insert_one(ReactionDoc { conv: conv.0, seq, user: user.0, emoji, at }).await {
                Ok(_) => Ok(true),
                Err(e) if is_duplicate(&e) => Ok(false),
                Err(e) => Err(e.into()),
            }
        })
    }

    fn reactions(&self, conv: ConvId, seqs: Vec<i64>) -> StoreFuture<Vec<Reaction>> {
        let coll = self.reactions.clone();
        Box::pin(async move {
            if seqs.is_empty() {
                return Ok(Vec::new());
            }
            let docs: Vec<ReactionDoc> = coll
                .find(doc! {"conv": conv.0, "seq": {"$in": seqs}})
                .sort(doc! {"seq": 1, "at": 1})
                .await?
                .try_collect()
                .await?;
            Ok(docs
                .into_iter()
                .map(|d| Reaction { seq: d.seq, user: UserId(d.user), emoji: d.emoji, at: d.at })
                .collect())
        })
    }

    fn with_attachment(&self, id: String) -> StoreFuture<Vec<MessageRecord>> {
        let coll = self.coll.clone();
        Box::pin(async move { Ok(coll.find(doc! {"attachment.id": id}).await?.try_collect().await?) })
    }

    fn ping(&self) -> StoreFuture<()> {
        let db = self.coll.namespace().db;
        let client = self.coll.client().clone();
        Box::pin(async move {
            client.database(&db).run_command(doc! {"ping": 1}).await?;
            Ok(())
        })
    }
}

/// `q` as a regular expression that matches it literally.
fn regex_escape(q: &str) -> String {
    let mut out = String::with_capacity(q.len());
    for ch in q.chars() {
        if "\\^$.|?*+()[]{}-/".contains(ch) {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}
