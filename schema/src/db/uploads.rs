//! Uploaded files (table `uploads`): the facts of each upload; the bytes are in the blob store.

use diesel::prelude::*;

use super::schema::uploads as u;
use super::{AnyConnection, DbError};

/// A row of `uploads`.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = u)]
pub struct Upload {
    pub id: String,
    pub owner_id: i64,
    /// `image`, `voice` or `file`.
    pub kind: String,
    pub mime: String,
    pub name: String,
    pub size: i64,
    pub width: Option<i64>,
    pub height: Option<i64>,
    pub has_thumb: bool,
    /// Where the bytes are in the blob store (the thumbnail under `<key>.thumb`).
    pub storage_key: String,
    pub created_at: i64,
    /// When a message first carried it (`None`: no message yet; removed after a grace period).
    pub attached_at: Option<i64>,
    /// When it was removed (its bytes deleted).
    pub removed_at: Option<i64>,
}

/// Stores a new upload.
pub fn create(conn: &mut AnyConnection, up: &Upload) -> Result<(), DbError> {
    diesel::insert_into(u::table).values(up).execute(conn)?;
    Ok(())
}

/// One upload (removed ones too).
pub fn find(conn: &mut AnyConnection, id: &str) -> Result<Option<Upload>, DbError> {
    Ok(u::table.find(id).select(Upload::as_select()).first(conn).optional()?)
}

/// Notes that a message carries upload `id` (the first time counts).
pub fn mark_attached(conn: &mut AnyConnection, id: &str, at: i64) -> Result<(), DbError> {
    diesel::update(u::table.find(id)).filter(u::attached_at.is_null()).set(u::attached_at.eq(at)).execute(conn)?;
    Ok(())
}

/// Uploads no message carries that were made before `before` and not removed yet (at most `limit`).
pub fn unattached_before(conn: &mut AnyConnection, before: i64, limit: i64) -> Result<Vec<Upload>, DbError> {
    Ok(u::table
        .filter(u::attached_at.is_null())
        .filter(u::removed_at.is_null())
        .filter(u::created_at.lt(before))
        .order(u::created_at.asc())
        .limit(limit)
        .select(Upload::as_select())
        .load(conn)?)
}

/// Marks an upload removed (its bytes are gone), unless a message carries it by now; true when
/// it was marked.
pub fn mark_removed(conn: &mut AnyConnection, id: &str, at: i64) -> Result<bool, DbError> {
    let n = diesel::update(u::table.find(id))
        .filter(u::attached_at.is_null())
        .filter(u::removed_at.is_null())
        .set(u::removed_at.eq(at))
        .execute(conn)?;
    Ok(n == 1)
}

/// Marks an upload removed whether or not a message carries it (a recall of its last message);
/// true when it was marked now.
pub fn remove(conn: &mut AnyConnection, id: &str, at: i64) -> Result<bool, DbError> {
    let n =
        diesel::update(u::table.find(id)).filter(u::removed_at.is_null()).set(u::removed_at.eq(at)).execute(conn)?;
    Ok(n == 1)
}
