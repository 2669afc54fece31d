//! The SQLite message search index, filled off the write path.
//!
//! `messages_fts` (FTS5, trigram tokenizer, external content over `messages`) used to be filled
//! by an insert trigger, inside every message batch's transaction: a third of the instructions
//! of a stored message (docs/BENCHMARKS.md, "Rich messages"). Now the indexer
//! ([`spawn_indexer`]) adds new rows in batches of up to [`INDEX_BATCH`], every
//! [`INDEX_EVERY`], in a write transaction of its own; `messages_fts_state.indexed_rowid` marks
//! how far it got (migration `000014`, which also keeps edits and deletes of indexed rows in
//! step). Search ([`super::messages::search`]) covers the rows above the mark with a `LIKE`
//! scan, so a message is found the moment it is stored, whether the indexer has reached it or
//! not. PostgreSQL needs none of this (its `pg_trgm` index is maintained by the table's writes).

use std::sync::Weak;
use std::time::Duration;

use diesel::prelude::*;

use super::{AnyConnection, Database, DbError};

/// How often the indexer looks for rows to index.
pub const INDEX_EVERY: Duration = Duration::from_millis(100);

/// The most rows one indexing transaction adds (it holds the writers' lock meanwhile: about a
/// millisecond per 200 rows of 100 bytes on the benchmark machine).
pub const INDEX_BATCH: i64 = 1_000;

#[derive(QueryableByName)]
struct Mark {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    indexed: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    newest: i64,
}

/// `(indexed_rowid, highest rowid in messages)` of a SQLite database; `None` on PostgreSQL.
pub fn marks(conn: &mut AnyConnection) -> Result<Option<(i64, i64)>, DbError> {
    let AnyConnection::Sqlite(c) = conn else { return Ok(None) };
    let rows: Vec<Mark> = diesel::sql_query(
        "SELECT (SELECT indexed_rowid FROM messages_fts_state) AS indexed, \
         (SELECT coalesce(max(rowid), 0) FROM messages) AS newest",
    )
    .load(c)?;
    Ok(rows.first().map(|m| (m.indexed, m.newest)))
}

/// Indexes up to `batch` rows above the mark, oldest first, and moves the mark past them; run
/// inside a write transaction. Returns how many rows it indexed (0 on PostgreSQL).
pub fn index_pending(conn: &mut AnyConnection, batch: i64) -> Result<usize, DbError> {
    #[derive(QueryableByName)]
    struct Upto {
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
        upto: Option<i64>,
    }
    let AnyConnection::Sqlite(c) = conn else { return Ok(0) };
    let rows: Vec<Upto> = diesel::sql_query(
        "SELECT max(rowid) AS upto FROM (SELECT rowid FROM messages \
         WHERE rowid > (SELECT indexed_rowid FROM messages_fts_state) ORDER BY rowid LIMIT ?)",
    )
    .bind::<diesel::sql_types::BigInt, _>(batch.max(1))
    .load(c)?;
    let Some(upto) = rows.first().and_then(|r| r.upto) else { return Ok(0) };
    let added = diesel::sql_query(
        "INSERT INTO messages_fts (rowid, body) SELECT rowid, body FROM messages \
         WHERE rowid > (SELECT indexed_rowid FROM messages_fts_state) AND rowid <= ? ORDER BY rowid",
    )
    .bind::<diesel::sql_types::BigInt, _>(upto)
    .execute(c)?;
    diesel::sql_query("UPDATE messages_fts_state SET indexed_rowid = ?")
        .bind::<diesel::sql_types::BigInt, _>(upto)
        .execute(c)?;
    Ok(added)
}

/// Indexes everything not yet indexed, in batches (tests, tools).
pub fn index_all(db: &Database) -> Result<usize, DbError> {
    let mut total = 0;
    loop {
        let n = db.write(|c| index_pending(c, INDEX_BATCH))?;
        if n == 0 {
            return Ok(total);
        }
        total += n;
    }
}

/// Starts the indexer of a SQLite database: a thread that, every [`INDEX_EVERY`], indexes what
/// was stored since (reading the marks first, so an idle server opens no write transaction),
/// until `alive` is gone. Its writes go through [`Database::write`], behind message batches.
pub(super) fn spawn_indexer(db: Database, alive: Weak<()>) -> Result<(), DbError> {
    std::thread::Builder::new()
        .name("sqlite-search-index".into())
        .spawn(move || {
            let mut failing = false;
            while alive.upgrade().is_some() {
                std::thread::sleep(INDEX_EVERY);
                let round = || -> Result<(), DbError> {
                    loop {
                        match db.read(marks)? {
                            Some((indexed, newest)) if newest > indexed => {}
                            _ => return Ok(()),
                        }
                        if db.write(|c| index_pending(c, INDEX_BATCH))? < INDEX_BATCH as usize {
                            return Ok(());
                        }
                        if alive.upgrade().is_none() {
                            return Ok(());
                        }
                    }
                };
                match round() {
                    Ok(()) => failing = false,
                    // Logged once per run of failures (a missing table before migrations ran,
                    // a full disk); search stays right meanwhile, only slower.
                    Err(e) if !failing => {
                        failing = true;
                        log::warn!("SQLite search indexing failed (will retry): {e}");
                    }
                    Err(_) => {}
                }
            }
        })
        .map_err(DbError::Io)?;
    Ok(())
}
