//! The SQL message store's queries (table `messages`).

use std::collections::HashMap;

use diesel::prelude::*;

use super::schema::messages;
use super::{AnyConnection, DbError};
use crate::ids::{ConvId, UserId};
use crate::message::{
    like_pattern, Appended, MessageKind, MessageRecord, Page, SearchCursor, SearchScope, TRIGRAM_MIN_CHARS,
};

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable, Insertable)]
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
    extra: Option<String>,
    attachment_id: Option<String>,
    edited_at: Option<i64>,
    edit_id: Option<String>,
}

/// What a message's `extra` column holds (JSON; absent for a plain message).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Extra {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reply_to: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    forwarded_from: Option<UserId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    attachment: Option<crate::message::Attachment>,
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
            extra: (m.reply_to.is_some() || m.forwarded_from.is_some() || m.attachment.is_some()).then(|| {
                let e =
                    Extra { reply_to: m.reply_to, forwarded_from: m.forwarded_from, attachment: m.attachment.clone() };
                serde_json::to_string(&e).unwrap_or_default()
            }),
            attachment_id: m.attachment.as_ref().map(|a| a.id.clone()),
            edited_at: m.edited_at,
            edit_id: m.edit_id.clone(),
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
            reply_to: None,
            forwarded_from: None,
            attachment: None,
            edited_at: r.edited_at,
            edit_id: r.edit_id,
        }
        .with_extra(r.extra.as_deref())
    }
}

trait WithExtra {
    fn with_extra(self, extra: Option<&str>) -> Self;
}

impl WithExtra for MessageRecord {
    fn with_extra(mut self, extra: Option<&str>) -> Self {
        if let Some(e) = extra.and_then(|e| serde_json::from_str::<Extra>(e).ok()) {
            self.reply_to = e.reply_to;
            self.forwarded_from = e.forwarded_from;
            self.attachment = e.attachment;
        }
        self
    }
}

/// A message's dedup key: conversation, sender, client id.
type Key = (String, i64, String);

/// Appends a batch in the caller's transaction, one statement in the common case: a multi-row
/// `INSERT .. ON CONFLICT (conv_id, sender_id, client_id) DO NOTHING RETURNING` the keys it
/// stored (SQLite: `INSERT OR IGNORE` in a savepoint, see `sqlite_insert`). A message it did not
/// store is a resend of a client id stored earlier, looked up on that unique index and answered
/// `Duplicate` with the original. Results are in input order. A clash on `(conv_id, seq)` (two
/// nodes handing out one seq while Redis was away) is not swallowed: the batch fails with a
/// unique violation.
///
/// (Earlier versions looked every message up before inserting: one statement, and on PostgreSQL
/// one round trip, per message.)
pub fn append(conn: &mut AnyConnection, batch: &[MessageRecord]) -> Result<Vec<Appended>, DbError> {
    // Resends inside one batch: the first occurrence is the one written.
    let mut first: HashMap<(&str, i64, &str), usize> = HashMap::with_capacity(batch.len());
    let mut fresh = Vec::with_capacity(batch.len());
    for (i, m) in batch.iter().enumerate() {
        if let std::collections::hash_map::Entry::Vacant(e) = first.entry((m.conv.as_str(), m.sender.0, &m.client_id)) {
            e.insert(i);
            fresh.push(Row::from(m));
        }
    }
    let keys = (messages::conv_id, messages::sender_id, messages::client_id);
    // The keys stored now; `None`: all of `fresh`.
    let inserted: Option<Vec<Key>> = if fresh.is_empty() {
        Some(Vec::new())
    } else if let AnyConnection::Postgresql(c) = conn {
        Some(
            diesel::insert_into(messages::table)
                .values(&fresh)
                .on_conflict(keys)
                .do_nothing()
                .returning(keys)
                .get_results(c)?,
        )
    } else {
        sqlite_insert(conn, &fresh)?
    };
    let stored: Option<std::collections::HashSet<(&str, i64, &str)>> =
        inserted.as_ref().map(|v| v.iter().map(|(c, s, id)| (c.as_str(), *s, id.as_str())).collect());
    let mut out: Vec<Appended> = Vec::with_capacity(batch.len());
    for (i, m) in batch.iter().enumerate() {
        let key = (m.conv.as_str(), m.sender.0, m.client_id.as_str());
        let at = first[&key];
        if at < i {
            // A resend of an earlier message of this batch.
            let earlier = out[at].record().clone();
            out.push(Appended::Duplicate(earlier));
        } else if stored.as_ref().is_none_or(|s| s.contains(&key)) {
            out.push(Appended::Stored(m.clone()));
        } else {
            match find_by_client_id(conn, &m.conv, m.sender, &m.client_id)? {
                Some(prev) => out.push(Appended::Duplicate(prev)),
                // Not inserted and not there before: its seq is taken by another message.
                None => {
                    let what = format!("seq {} of {} is already taken", m.seq, m.conv);
                    return Err(DbError::Query(diesel::result::Error::DatabaseError(
                        diesel::result::DatabaseErrorKind::UniqueViolation,
                        Box::new(what),
                    )));
                }
            }
        }
    }
    Ok(out)
}

/// SQLite's half of [`append`]: Diesel has neither a multi-row upsert nor `RETURNING` for a
/// multi-row `INSERT OR IGNORE` there, so the insert runs in a savepoint and is kept when it
/// stored every row (`None`: all stored; the common case, one statement). Otherwise it is rolled
/// back and the rows whose client id is not stored yet are found one by one and inserted alone
/// (their keys returned); a clash on `(conv_id, seq)` then fails the plain insert.
fn sqlite_insert(conn: &mut AnyConnection, fresh: &[Row]) -> Result<Option<Vec<Key>>, DbError> {
    let all = conn.transaction(|conn| {
        let AnyConnection::Sqlite(c) = conn else {
            return Err(DbError::Query(diesel::result::Error::NotInTransaction));
        };
        let n = diesel::insert_or_ignore_into(messages::table).values(fresh).execute(c)?;
        if n == fresh.len() {
            Ok(true)
        } else {
            Err(DbError::Query(diesel::result::Error::RollbackTransaction))
        }
    });
    match all {
        Ok(_) => return Ok(None),
        Err(DbError::Query(diesel::result::Error::RollbackTransaction)) => {}
        Err(e) => return Err(e),
    }
    let mut new = Vec::new();
    for r in fresh {
        let conv = ConvId(r.conv_id.clone());
        if find_by_client_id(conn, &conv, UserId(r.sender_id), &r.client_id)?.is_none() {
            new.push(r.clone());
        }
    }
    if let AnyConnection::Sqlite(c) = conn {
        if !new.is_empty() {
            diesel::insert_into(messages::table).values(&new).execute(c)?;
        }
    }
    Ok(Some(new.into_iter().map(|r| (r.conv_id, r.sender_id, r.client_id)).collect()))
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

/// Replaces the body of a text message that is not recalled, unless an edit at `at` or later was
/// already stored; records the edit's client id. False when nothing was changed.
pub fn edit(
    conn: &mut AnyConnection,
    conv: &ConvId,
    seq: i64,
    body: &str,
    at: i64,
    edit_id: &str,
) -> Result<bool, DbError> {
    let n = diesel::update(messages::table.find((conv.as_str(), seq)))
        .filter(messages::recalled_at.is_null())
        .filter(messages::edited_at.is_null().or(messages::edited_at.lt(at)))
        .set((messages::body.eq(body), messages::edited_at.eq(at), messages::edit_id.eq(edit_id)))
        .execute(conn)?;
    Ok(n == 1)
}

/// The messages that carry upload `id` (any conversation).
pub fn with_attachment(conn: &mut AnyConnection, id: &str) -> Result<Vec<MessageRecord>, DbError> {
    let rows: Vec<Row> = messages::table.filter(messages::attachment_id.eq(id)).select(Row::as_select()).load(conn)?;
    Ok(rows.into_iter().map(Into::into).collect())
}

/// Adds (`on`) or removes `user`'s reaction `emoji` on a message; true when it changed.
pub fn react(
    conn: &mut AnyConnection,
    conv: &ConvId,
    seq: i64,
    user: UserId,
    emoji: &str,
    on: bool,
    at: i64,
) -> Result<bool, DbError> {
    use super::schema::reactions as r;
    let n = if on {
        let row = (
            r::conv_id.eq(conv.as_str()),
            r::seq.eq(seq),
            r::user_id.eq(user.0),
            r::emoji.eq(emoji),
            r::created_at.eq(at),
        );
        match conn {
            AnyConnection::Postgresql(c) => {
                diesel::insert_into(r::table).values(row).on_conflict_do_nothing().execute(c)?
            }
            AnyConnection::Sqlite(c) => diesel::insert_or_ignore_into(r::table).values(row).execute(c)?,
        }
    } else {
        diesel::delete(r::table.find((conv.as_str(), seq, user.0, emoji))).execute(conn)?
    };
    Ok(n == 1)
}

/// The reactions to messages `seqs` of `conv`, oldest first.
pub fn reactions(
    conn: &mut AnyConnection,
    conv: &ConvId,
    seqs: &[i64],
) -> Result<Vec<crate::message::Reaction>, DbError> {
    use super::schema::reactions as r;
    if seqs.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<(i64, i64, String, i64)> = r::table
        .filter(r::conv_id.eq(conv.as_str()))
        .filter(r::seq.eq_any(seqs))
        .order((r::seq.asc(), r::created_at.asc()))
        .select((r::seq, r::user_id, r::emoji, r::created_at))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(seq, user, emoji, at)| crate::message::Reaction { seq, user: UserId(user), emoji, at })
        .collect())
}

/// The escape clause of [`like_pattern`]'s patterns.
const LIKE_ESCAPE: &str = " ESCAPE '\\'";

/// Builds the search query for one backend: the body condition is each `$text` followed by its
/// text bind, then `$after`; `$ph` writes the backend's placeholder for bind `n`.
macro_rules! search_query {
    ($backend:ty, $ph:expr, [$($text:expr => $bind:expr),+], $after:expr, $scopes:expr, $before:expr, $limit:expr) => {{
        let ph = $ph;
        let mut n = 0usize;
        let mut next = || {
            n += 1;
            ph(n)
        };
        let mut q = diesel::sql_query(
            "SELECT * FROM messages WHERE kind <> 'system' AND recalled_at IS NULL AND body IS NOT NULL AND ",
        )
        .into_boxed::<$backend>();
        $(
            q = q.sql($text).sql(next()).bind::<diesel::sql_types::Text, _>($bind);
        )+
        q = q.sql($after).sql(" AND (");
        for (i, s) in $scopes.iter().enumerate() {
            q = q
                .sql(if i == 0 { "(conv_id = " } else { " OR (conv_id = " })
                .sql(next())
                .bind::<diesel::sql_types::Text, _>(s.conv.0.clone())
                .sql(" AND seq > ")
                .sql(next())
                .bind::<diesel::sql_types::BigInt, _>(s.floor)
                .sql(" AND seq <= ")
                .sql(next())
                .bind::<diesel::sql_types::BigInt, _>(s.ceiling)
                .sql(")");
        }
        q = q.sql(")");
        if let Some(c) = $before {
            q = q
                .sql(" AND (created_at < ")
                .sql(next())
                .bind::<diesel::sql_types::BigInt, _>(c.ts)
                .sql(" OR (created_at = ")
                .sql(next())
                .bind::<diesel::sql_types::BigInt, _>(c.ts)
                .sql(" AND (conv_id < ")
                .sql(next())
                .bind::<diesel::sql_types::Text, _>(c.conv.0.clone())
                .sql(" OR (conv_id = ")
                .sql(next())
                .bind::<diesel::sql_types::Text, _>(c.conv.0.clone())
                .sql(" AND seq < ")
                .sql(next())
                .bind::<diesel::sql_types::BigInt, _>(c.seq)
                .sql("))))");
        }
        q.sql(" ORDER BY created_at DESC, conv_id DESC, seq DESC LIMIT ")
            .sql(next())
            .bind::<diesel::sql_types::BigInt, _>($limit)
    }};
}

/// Text messages whose body contains `query` (case-insensitively), not recalled, in the
/// `scopes` given, newest first (`ts`, then conversation id, then seq, all descending),
/// strictly after `before` in that order, at most `limit`.
///
/// SQLite looks queries of [`TRIGRAM_MIN_CHARS`] or more characters up in the FTS5 trigram
/// index `messages_fts` (a phrase query: the whole string as a substring; the rows the indexer
/// has not reached yet by `LIKE`, [`super::search_index`]) and scans the scopes
/// with `LIKE` for shorter ones; PostgreSQL uses `ILIKE`, which the `pg_trgm` GIN index serves
/// from three characters on.
pub fn search(
    conn: &mut AnyConnection,
    scopes: &[SearchScope],
    query: &str,
    before: Option<&SearchCursor>,
    limit: i64,
) -> Result<Vec<MessageRecord>, DbError> {
    if scopes.is_empty() || query.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<Row> = match conn {
        AnyConnection::Sqlite(c) => {
            if query.chars().count() >= TRIGRAM_MIN_CHARS {
                // The index, and the rows stored since the indexer last ran (a `LIKE` over
                // those few: docs/ARCHITECTURE.md, "Search"). One `rowid IN (... UNION ALL ...)`
                // so that the hits drive the query; an `OR` of the two made SQLite scan every
                // row of the scopes (8 ms instead of 1.6 ms over 10,000 rows a conversation).
                let phrase = format!("\"{}\"", query.replace('"', "\"\""));
                let indexed = "rowid IN (SELECT rowid FROM messages_fts WHERE messages_fts MATCH ";
                let tail = " UNION ALL SELECT rowid FROM messages \
                            WHERE rowid > (SELECT indexed_rowid FROM messages_fts_state) AND body LIKE ";
                let after = format!("{LIKE_ESCAPE})");
                search_query!(
                    diesel::sqlite::Sqlite,
                    |_| "?".to_owned(),
                    [indexed => phrase, tail => like_pattern(query)],
                    &after,
                    scopes,
                    before,
                    limit
                )
                .load(c)?
            } else {
                // Trigram lookups need three characters: scan the reader's scopes instead.
                search_query!(
                    diesel::sqlite::Sqlite,
                    |_| "?".to_owned(),
                    ["body LIKE " => like_pattern(query)],
                    LIKE_ESCAPE,
                    scopes,
                    before,
                    limit
                )
                .load(c)?
            }
        }
        AnyConnection::Postgresql(c) => search_query!(
            diesel::pg::Pg,
            |n| format!("${n}"),
            ["body ILIKE " => like_pattern(query)],
            LIKE_ESCAPE,
            scopes,
            before,
            limit
        )
        .load(c)?,
    };
    Ok(rows.into_iter().map(Into::into).collect())
}
