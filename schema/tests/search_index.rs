//! The SQLite search index off the write path (`schema::db::search_index`, migration 000014):
//! a stored message is found by search before the indexer reaches it (the `LIKE` over the rows
//! above the mark) and after (the FTS5 index); edits and deletes of indexed and of unindexed rows
//! leave the index consistent with the table (FTS5's own `integrity-check` against the content
//! table); a rowid freed by deleting the newest row and then reused is indexed; the indexer thread
//! catches up on its own.

use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use schema::db::scratch::ScratchDb;
use schema::db::search_index::index_all;
use schema::db::{messages, AnyConnection, Database, DbError};
use schema::message::SearchScope;
use schema::ConvId;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const CONV: &str = "d:1:2";

fn open() -> Result<(ScratchDb, Database), DbError> {
    let scratch = ScratchDb::sqlite();
    let db = Database::open(&scratch.url, 2, Duration::from_secs(5))?;
    db.migrate()?;
    Ok((scratch, db))
}

fn insert(c: &mut AnyConnection, seq: i64, body: &str) -> Result<(), DbError> {
    c.batch_execute(&format!(
        "INSERT INTO messages (conv_id, seq, sender_id, client_id, kind, body, created_at) \
         VALUES ('{CONV}', {seq}, 1, 'c{seq}', 'text', '{body}', {seq})"
    ))?;
    Ok(())
}

/// `(indexed_rowid, newest rowid)`: always there on SQLite.
fn marks(c: &mut AnyConnection) -> Result<(i64, i64), DbError> {
    schema::db::search_index::marks(c)?.ok_or_else(|| DbError::BadUrl("not sqlite".into()))
}

/// The seqs of the messages whose body contains `q`, newest first.
fn found(c: &mut AnyConnection, q: &str) -> Result<Vec<i64>, DbError> {
    let scope = SearchScope { conv: ConvId(CONV.to_owned()), floor: 0, ceiling: i64::MAX };
    Ok(messages::search(c, &[scope], q, None, 50)?.into_iter().map(|m| m.seq).collect())
}

/// FTS5 checks its index against the content table (`rank = 1`); an error when they differ.
fn integrity(c: &mut AnyConnection) -> Result<(), DbError> {
    c.batch_execute("INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 1)")?;
    Ok(())
}

/// How many rows the FTS5 index itself (not the `LIKE` over the tail) finds for `q`.
fn in_index(c: &mut AnyConnection, q: &str) -> Result<i64, DbError> {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let AnyConnection::Sqlite(c) = c else { return Err(DbError::BadUrl("not sqlite".into())) };
    let rows: Vec<N> =
        diesel::sql_query(format!("SELECT count(*) AS n FROM messages_fts WHERE messages_fts MATCH '\"{q}\"'"))
            .load(c)?;
    Ok(rows.first().map_or(0, |r| r.n))
}

#[test]
fn a_message_is_found_before_and_after_it_is_indexed() -> TestResult {
    let (_scratch, db) = open()?;
    // Inside one write transaction the indexer (which writes too) cannot run: the row is above
    // the mark, and search finds it through the tail.
    db.write(|c| {
        insert(c, 1, "see you in the meeting room")?;
        insert(c, 2, "lunch at noon")?;
        let (indexed, newest) = marks(c)?;
        assert!(indexed < newest, "not indexed yet: {indexed} < {newest}");
        assert_eq!(in_index(c, "meeting")?, 0);
        assert_eq!(found(c, "meeting")?, vec![1]);
        assert_eq!(found(c, "MEETING")?, vec![1], "case-insensitive in the tail too");
        assert_eq!(found(c, "nothing here")?, Vec::<i64>::new());
        Ok(())
    })?;
    index_all(&db)?;
    db.read(|c| {
        let (indexed, newest) = marks(c)?;
        assert_eq!(indexed, newest);
        assert_eq!(in_index(c, "meeting")?, 1);
        assert_eq!(found(c, "meeting")?, vec![1]);
        integrity(c)
    })?;
    Ok(())
}

#[test]
fn edits_and_deletes_keep_the_index_consistent() -> TestResult {
    let (_scratch, db) = open()?;
    db.write(|c| {
        for seq in 1..=3 {
            insert(c, seq, &format!("original body {seq} alpha"))?;
        }
        Ok(())
    })?;
    index_all(&db)?;
    db.write(|c| {
        // An indexed row edited, another deleted; an unindexed row stored and edited at once.
        c.batch_execute(&format!("UPDATE messages SET body = 'edited bravo' WHERE conv_id = '{CONV}' AND seq = 1"))?;
        c.batch_execute(&format!("DELETE FROM messages WHERE conv_id = '{CONV}' AND seq = 2"))?;
        insert(c, 4, "fresh charlie")?;
        c.batch_execute(&format!("UPDATE messages SET body = 'fresh delta' WHERE conv_id = '{CONV}' AND seq = 4"))?;
        assert_eq!(found(c, "bravo")?, vec![1]);
        assert_eq!(found(c, "alpha")?, vec![3]);
        assert_eq!(found(c, "delta")?, vec![4]);
        assert_eq!(found(c, "charlie")?, Vec::<i64>::new());
        Ok(())
    })?;
    index_all(&db)?;
    db.read(|c| {
        integrity(c)?;
        assert_eq!(found(c, "bravo")?, vec![1]);
        assert_eq!(found(c, "alpha")?, vec![3]);
        assert_eq!(found(c, "delta")?, vec![4]);
        assert_eq!(found(c, "charlie")?, Vec::<i64>::new());
        assert_eq!(in_index(c, "original body 2")?, 0);
        Ok(())
    })?;
    Ok(())
}

#[test]
fn a_reused_rowid_is_indexed() -> TestResult {
    let (_scratch, db) = open()?;
    db.write(|c| {
        insert(c, 1, "first echo")?;
        insert(c, 2, "second foxtrot")?;
        Ok(())
    })?;
    index_all(&db)?;
    db.write(|c| {
        let (indexed, _) = marks(c)?;
        // Deleting the newest row frees its rowid; SQLite gives it to the next row.
        c.batch_execute(&format!("DELETE FROM messages WHERE conv_id = '{CONV}' AND seq = 2"))?;
        insert(c, 3, "third golf")?;
        let (mark, newest) = marks(c)?;
        assert_eq!(newest, indexed, "the rowid was reused");
        assert!(mark < newest, "the reused rowid is above the mark: {mark} < {newest}");
        assert_eq!(found(c, "golf")?, vec![3]);
        assert_eq!(found(c, "foxtrot")?, Vec::<i64>::new());
        Ok(())
    })?;
    index_all(&db)?;
    db.read(|c| {
        integrity(c)?;
        assert_eq!(in_index(c, "golf")?, 1);
        assert_eq!(found(c, "golf")?, vec![3]);
        Ok(())
    })?;
    Ok(())
}

#[test]
fn the_indexer_catches_up_on_its_own() -> TestResult {
    let (_scratch, db) = open()?;
    db.write(|c| {
        for seq in 1..=2_500 {
            insert(c, seq, &format!("body number {seq} hotel"))?;
        }
        Ok(())
    })?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (indexed, newest) = db.read(marks)?;
        if indexed == newest {
            break;
        }
        assert!(Instant::now() < deadline, "the indexer is at {indexed} of {newest} after 20 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    db.read(|c| {
        integrity(c)?;
        assert_eq!(in_index(c, "hotel")?, 2_500);
        Ok(())
    })?;
    Ok(())
}
