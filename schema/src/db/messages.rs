//! The SQL message store's queries (table `messages`).

use std::collections::HashMap;

use diesel::prelude::*;

use super::schema::messages;
use super::{AnyConnection, DbError};
use crate::ids::{ConvId, UserId};
use crate::message::{Appended, MessageKind, MessageRecord, Page};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = messages)]
struct Row {
    conv_id: String,
    seq: i64,
    sender_id: i64,
    client_id: String,
    kind: String,
    body: Option<String>,
    mentions: Option<String>,
    mention_all: bool,
    created_at: i64,
    recalled_at: Option<i64>,
}

impl From<&MessageRecord> for Row {
    fn from(m: &MessageRecord) -> Self {
        Row {
            conv_id: m.conv.0.clone(),
            seq: m.seq,
            sender_id: m.sender.0,
            client_id: m.client_id.clone(),
            kind: m.kind.as_str().to_owned(),
            body: m.body.clone(),
            mentions: (!m.mentions.is_empty()).then(|| serde_json::to_string(&m.mentions).unwrap_or_default()),
            mention_all: m.mention_all,
            created_at: m.ts,
            recalled_at: m.recalled_at,
        }
    }
}

impl From<Row> for MessageRecord {
    fn from(r: Row) -> Self {
        MessageRecord {
            conv: ConvId(r.conv_id),
            seq: r.seq,
            sender: UserId(r.sender_id),
            client_id: r.client_id,
            kind: MessageKind::parse(&r.kind),
            body: r.body,
            mentions: r.mentions.and_then(|s| serde_json::from_str(&s).ok()).unwrap_or_default(),
            mention_all: r.mention_all,
            ts: r.created_at,
            recalled_at: r.recalled_at,
        }
    }
}

/// Appends a batch in the caller's transaction: a point look-up per message on the unique
/// `(conv_id, sender_id, client_id)` index for resent client ids, one multi-row insert for the
/// rest. Results are in input order.
///
/// (One `conv_id IN (..) AND client_id IN (..)` query used to do the look-ups; it can use the
/// index only up to `conv_id`, so it scanned each conversation's whole history and got slower as
/// conversations grew.)
pub fn append(conn: &mut AnyConnection, batch: &[MessageRecord]) -> Result<Vec<Appended>, DbError> {
    let mut known: HashMap<(String, i64, String), MessageRecord> = HashMap::new();
    for m in batch {
        if let Some(prev) = find_by_client_id(conn, &m.conv, m.sender, &m.client_id)? {
            known.insert((m.conv.0.clone(), m.sender.0, m.client_id.clone()), prev);
        }
    }
    let mut out = Vec::with_capacity(batch.len());
    let mut fresh = Vec::with_capacity(batch.len());
    for m in batch {
        let key = (m.conv.0.clone(), m.sender.0, m.client_id.clone());
        if let Some(prev) = known.get(&key) {
            out.push(Appended::Duplicate(prev.clone()));
        } else {
            known.insert(key, m.clone());
            fresh.push(Row::from(m));
            out.push(Appended::Stored(m.clone()));
        }
    }
    if !fresh.is_empty() {
        // Multi-row inserts are backend-specific in Diesel; dispatch on the inner connection.
        match conn {
            AnyConnection::Sqlite(c) => {
                diesel::insert_into(messages::table).values(&fresh).execute(c)?;
            }
            AnyConnection::Postgresql(c) => {
                diesel::insert_into(messages::table).values(&fresh).execute(c)?;
            }
        }
    }
    Ok(out)
}

/// The message a client id was stored as, if any.
pub fn find_by_client_id(
    conn: &mut AnyConnection,
    conv: &ConvId,
    sender: UserId,
    client_id: &str,
) -> Result<Option<MessageRecord>, DbError> {
    Ok(messages::table
        .filter(messages::conv_id.eq(conv.as_str()))
        .filter(messages::sender_id.eq(sender.0))
        .filter(messages::client_id.eq(client_id))
        .select(Row::as_select())
        .first(conn)
        .optional()?
        .map(Into::into))
}

/// One message.
pub fn get(conn: &mut AnyConnection, conv: &ConvId, seq: i64) -> Result<Option<MessageRecord>, DbError> {
    Ok(messages::table.find((conv.as_str(), seq)).select(Row::as_select()).first(conn).optional()?.map(Into::into))
}

/// A page of a conversation in seq order, limited to seqs in `(floor, ...)`.
pub fn page(
    conn: &mut AnyConnection,
    conv: &ConvId,
    page: Page,
    floor: i64,
    limit: i64,
) -> Result<Vec<MessageRecord>, DbError> {
    let q = messages::table
        .filter(messages::conv_id.eq(conv.as_str()))
        .filter(messages::seq.gt(floor))
        .select(Row::as_select());
    let rows: Vec<Row> = match page {
        Page::After(n) => q.filter(messages::seq.gt(n)).order(messages::seq.asc()).limit(limit).load(conn)?,
        Page::Before(n) => {
            let mut v: Vec<Row> = q.filter(messages::seq.lt(n)).order(messages::seq.desc()).limit(limit).load(conn)?;
            v.reverse();
            v
        }
    };
    Ok(rows.into_iter().map(Into::into).collect())
}

/// The highest seq stored for a conversation (0 when empty).
pub fn max_seq(conn: &mut AnyConnection, conv: &ConvId) -> Result<i64, DbError> {
    let m: Option<i64> = messages::table
        .filter(messages::conv_id.eq(conv.as_str()))
        .select(diesel::dsl::max(messages::seq))
        .first(conn)?;
    Ok(m.unwrap_or(0))
}

/// Removes a message's body and marks it recalled; false if it was missing or already recalled.
pub fn recall(conn: &mut AnyConnection, conv: &ConvId, seq: i64, at: i64) -> Result<bool, DbError> {
    let n = diesel::update(messages::table.find((conv.as_str(), seq)))
        .filter(messages::recalled_at.is_null())
        .set((messages::body.eq(None::<String>), messages::recalled_at.eq(at)))
        .execute(conn)?;
    Ok(n == 1)
}
