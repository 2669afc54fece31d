//! Fencing epochs of conversation owners (table `entity_owners`).
//!
//! A node that becomes a conversation's owner in a cluster calls [`take`], which raises the
//! conversation's epoch by one and returns it. Every write the owner makes afterwards (a batch of
//! messages, a group change) first calls [`stale`] in the same transaction: a conversation whose
//! epoch moved on belongs to a newer owner, and its writes are refused. On PostgreSQL [`stale`]
//! locks the rows it read (`FOR SHARE`) until the writing transaction ends, and [`take`] needs
//! the row exclusively: a takeover waits for a write in progress and a write after the takeover
//! sees the new epoch. Either the old owner's batch commits before the takeover (and the new
//! owner, which reads the store's highest seq only after [`take`], sees it) or it is refused.
//! SQLite serialises every write anyway.

use std::collections::{HashMap, HashSet};

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

use super::{AnyConnection, DbError};

/// How long a takeover waits for the row lock of a write in progress (PostgreSQL). A write
/// holds it for one transaction (milliseconds); a paused process can hold it longer, until
/// PostgreSQL ends its idle transaction (`PG_IDLE_IN_TRANSACTION_TIMEOUT_MS`).
pub const TAKE_LOCK_TIMEOUT_MS: u64 = 3_000;

#[derive(QueryableByName)]
struct EpochRow {
    #[diesel(sql_type = BigInt)]
    epoch: i64,
}

#[derive(QueryableByName)]
struct ConvEpoch {
    #[diesel(sql_type = Text)]
    conv_id: String,
    #[diesel(sql_type = BigInt)]
    epoch: i64,
}

/// Makes `node` the owner of `conv`: its epoch + 1 (1 for the first owner), returned. Run it in
/// a write transaction.
pub fn take(conn: &mut AnyConnection, conv: &str, node: &str, now: i64) -> Result<i64, DbError> {
    let rows: Vec<EpochRow> = match conn {
        AnyConnection::Postgresql(c) => {
            diesel::sql_query(format!("SET LOCAL lock_timeout = '{TAKE_LOCK_TIMEOUT_MS}ms'")).execute(c)?;
            diesel::sql_query(
                "INSERT INTO entity_owners (conv_id, epoch, node_id, acquired_at) VALUES ($1, 1, $2, $3) \
                 ON CONFLICT (conv_id) DO UPDATE SET epoch = entity_owners.epoch + 1, \
                 node_id = excluded.node_id, acquired_at = excluded.acquired_at RETURNING epoch",
            )
            .bind::<Text, _>(conv)
            .bind::<Text, _>(node)
            .bind::<BigInt, _>(now)
            .load(c)?
        }
        AnyConnection::Sqlite(c) => diesel::sql_query(
            "INSERT INTO entity_owners (conv_id, epoch, node_id, acquired_at) VALUES (?, 1, ?, ?) \
             ON CONFLICT (conv_id) DO UPDATE SET epoch = entity_owners.epoch + 1, \
             node_id = excluded.node_id, acquired_at = excluded.acquired_at RETURNING epoch",
        )
        .bind::<Text, _>(conv)
        .bind::<Text, _>(node)
        .bind::<BigInt, _>(now)
        .load(c)?,
    };
    rows.first().map(|r| r.epoch).ok_or_else(|| DbError::Query(diesel::result::Error::NotFound))
}

/// The current epoch of each of `convs` (absent: never owned in a cluster). On PostgreSQL the
/// rows stay locked against a takeover until the caller's transaction ends.
pub fn epochs(conn: &mut AnyConnection, convs: &[&str]) -> Result<HashMap<String, i64>, DbError> {
    if convs.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<ConvEpoch> = match conn {
        AnyConnection::Postgresql(c) => {
            let marks: Vec<String> = (1..=convs.len()).map(|i| format!("${i}")).collect();
            let sql =
                format!("SELECT conv_id, epoch FROM entity_owners WHERE conv_id IN ({}) FOR SHARE", marks.join(", "));
            let mut q = diesel::sql_query(sql).into_boxed::<diesel::pg::Pg>();
            for c in convs {
                q = q.bind::<Text, _>(*c);
            }
            q.load(c)?
        }
        AnyConnection::Sqlite(c) => {
            let sql = format!(
                "SELECT conv_id, epoch FROM entity_owners WHERE conv_id IN ({})",
                vec!["?"; convs.len()].join(", ")
            );
            let mut q = diesel::sql_query(sql).into_boxed::<diesel::sqlite::Sqlite>();
            for c in convs {
                q = q.bind::<Text, _>(*c);
            }
            q.load(c)?
        }
    };
    Ok(rows.into_iter().map(|r| (r.conv_id, r.epoch)).collect())
}

/// Which of `fences` (conversation, epoch a write was made under) are stale: the conversation's
/// current epoch is another one (or it has none). Locks as [`epochs`] does.
pub fn stale(conn: &mut AnyConnection, fences: &[(&str, i64)]) -> Result<HashSet<String>, DbError> {
    let convs: Vec<&str> = fences.iter().map(|(c, _)| *c).collect();
    let current = epochs(conn, &convs)?;
    Ok(fences.iter().filter(|(c, e)| current.get(*c) != Some(e)).map(|(c, _)| (*c).to_owned()).collect())
}

/// The owner row of `conv`: (epoch, node), if it ever had an owner in a cluster.
pub fn owner(conn: &mut AnyConnection, conv: &str) -> Result<Option<(i64, String)>, DbError> {
    use super::schema::entity_owners as eo;
    Ok(eo::table.find(conv).select((eo::epoch, eo::node_id)).first(conn).optional()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Database;

    fn db() -> Result<Database, DbError> {
        let db = Database::open("sqlite://:memory:", 1, std::time::Duration::from_secs(5))?;
        db.migrate()?;
        Ok(db)
    }

    #[test]
    fn epochs_only_grow_and_a_stale_epoch_is_fenced() -> Result<(), DbError> {
        let db = db()?;
        let e1 = db.write(|c| take(c, "g:1", "node-1", 10))?;
        let e2 = db.write(|c| take(c, "g:1", "node-2", 20))?;
        assert_eq!((e1, e2), (1, 2));
        assert_eq!(db.read(|c| owner(c, "g:1"))?, Some((2, "node-2".to_owned())));
        let fenced = db.write(|c| stale(c, &[("g:1", 1), ("g:1", 2), ("d:1:2", 1)]))?;
        assert!(fenced.contains("g:1"), "epoch 1 is stale");
        assert!(fenced.contains("d:1:2"), "a conversation nobody took is fenced for any epoch");
        let fenced = db.write(|c| stale(c, &[("g:1", 2)]))?;
        assert!(fenced.is_empty());
        Ok(())
    }
}
