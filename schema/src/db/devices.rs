//! Queries on `devices`: one row per logged-in device, holding the hash of its token.

use diesel::prelude::*;

use super::models::{Device, NewDevice, User};
use super::schema::{devices, users};
use super::{AnyConnection, DbError};

/// Records a new device (login) and returns it.
pub fn insert(conn: &mut AnyConnection, new: &NewDevice) -> Result<Device, DbError> {
    Ok(diesel::insert_into(devices::table).values(new).returning(devices::all_columns).get_result::<Device>(conn)?)
}

/// The live (not revoked, not expired) device holding a token hash, with its user.
pub fn authenticate(conn: &mut AnyConnection, token_hash: &str, now: i64) -> Result<Option<(Device, User)>, DbError> {
    Ok(devices::table
        .inner_join(users::table)
        .filter(devices::token_hash.eq(token_hash))
        .filter(devices::revoked_at.is_null())
        .filter(devices::expires_at.gt(now))
        .select((Device::as_select(), User::as_select()))
        .first(conn)
        .optional()?)
}

/// How often a device's `last_seen_at` is refreshed at most.
pub const TOUCH_EVERY_MS: i64 = 60_000;

/// Marks a device as seen (at most once a minute per device, to spare writes).
pub fn touch(conn: &mut AnyConnection, id: i64, now: i64) -> Result<(), DbError> {
    diesel::update(devices::table.find(id))
        .filter(devices::last_seen_at.lt(now - TOUCH_EVERY_MS))
        .set(devices::last_seen_at.eq(now))
        .execute(conn)?;
    Ok(())
}

/// A user's live devices, oldest first.
pub fn list(conn: &mut AnyConnection, user_id: i64, now: i64) -> Result<Vec<Device>, DbError> {
    Ok(devices::table
        .filter(devices::user_id.eq(user_id))
        .filter(devices::revoked_at.is_null())
        .filter(devices::expires_at.gt(now))
        .order(devices::id.asc())
        .select(Device::as_select())
        .load(conn)?)
}

/// Whether `device` is a live (not revoked, not expired) device of `user`.
pub fn is_live(conn: &mut AnyConnection, user_id: i64, device_id: i64, now: i64) -> Result<bool, DbError> {
    let n: i64 = devices::table
        .filter(devices::id.eq(device_id))
        .filter(devices::user_id.eq(user_id))
        .filter(devices::revoked_at.is_null())
        .filter(devices::expires_at.gt(now))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

/// Revokes one of a user's live devices; false when the device is not theirs, already revoked
/// or expired.
pub fn revoke(conn: &mut AnyConnection, user_id: i64, device_id: i64, now: i64) -> Result<bool, DbError> {
    let n = diesel::update(devices::table.find(device_id))
        .filter(devices::user_id.eq(user_id))
        .filter(devices::revoked_at.is_null())
        .filter(devices::expires_at.gt(now))
        .set(devices::revoked_at.eq(now))
        .execute(conn)?;
    Ok(n == 1)
}

/// Revokes every live device of a user (ban); returns the ids revoked.
pub fn revoke_all(conn: &mut AnyConnection, user_id: i64, now: i64) -> Result<Vec<i64>, DbError> {
    let ids: Vec<i64> = devices::table
        .filter(devices::user_id.eq(user_id))
        .filter(devices::revoked_at.is_null())
        .select(devices::id)
        .load(conn)?;
    diesel::update(devices::table.filter(devices::id.eq_any(&ids))).set(devices::revoked_at.eq(now)).execute(conn)?;
    Ok(ids)
}
