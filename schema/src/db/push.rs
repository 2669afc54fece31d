//! Push notifications: the push targets of devices, users' push settings, and the keys the
//! server makes once for the whole cluster (the VAPID key pair).

use diesel::prelude::*;

use super::schema::{devices, push_settings, push_targets, server_keys};
use super::{AnyConnection, DbError};

/// Target kinds.
pub mod kind {
    /// A browser's Web Push subscription (RFC 8030/8291/8292).
    pub const WEBPUSH: &str = "webpush";
    /// A pushkey at the configured push gateway (the Matrix push-gateway model).
    pub const GATEWAY: &str = "gateway";
}

/// A row of `push_targets`.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = push_targets)]
pub struct PushTarget {
    pub id: i64,
    pub user_id: i64,
    pub device_id: i64,
    pub kind: String,
    /// Web Push: the subscription's endpoint URL; gateway: the pushkey.
    pub endpoint: String,
    /// Gateway: the app id.
    pub app_id: Option<String>,
    /// Web Push: the subscription's P-256 public key (base64url).
    pub p256dh: Option<String>,
    /// Web Push: the subscription's auth secret (base64url).
    pub auth: Option<String>,
    /// Overrides the user's previews setting (`None`: the user's).
    pub previews: Option<bool>,
    pub created_at: i64,
}

/// A target to register.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = push_targets)]
pub struct NewPushTarget {
    pub user_id: i64,
    pub device_id: i64,
    pub kind: String,
    pub endpoint: String,
    pub app_id: Option<String>,
    pub p256dh: Option<String>,
    pub auth: Option<String>,
    pub previews: Option<bool>,
    pub created_at: i64,
}

/// A user's push settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushSettings {
    /// Whether pushes carry message bodies.
    pub previews: bool,
    /// Whether an `@` mention pushes from a conversation the user silenced.
    pub mentions_break_mute: bool,
}

impl Default for PushSettings {
    fn default() -> Self {
        PushSettings { previews: false, mentions_break_mute: true }
    }
}

/// Registers a target (run in a transaction): an existing row of the same kind and endpoint is
/// replaced (the endpoint moved to this device, or its keys changed).
pub fn register(conn: &mut AnyConnection, new: &NewPushTarget) -> Result<PushTarget, DbError> {
    diesel::delete(
        push_targets::table.filter(push_targets::kind.eq(&new.kind)).filter(push_targets::endpoint.eq(&new.endpoint)),
    )
    .execute(conn)?;
    Ok(diesel::insert_into(push_targets::table)
        .values(new)
        .returning(push_targets::all_columns)
        .get_result::<PushTarget>(conn)?)
}

/// The targets of one device, oldest first.
pub fn of_device(conn: &mut AnyConnection, device: i64) -> Result<Vec<PushTarget>, DbError> {
    Ok(push_targets::table
        .filter(push_targets::device_id.eq(device))
        .order(push_targets::id.asc())
        .select(PushTarget::as_select())
        .load(conn)?)
}

/// Removes target `id` of `device`; false when there is none.
pub fn remove(conn: &mut AnyConnection, device: i64, id: i64) -> Result<bool, DbError> {
    let n =
        diesel::delete(push_targets::table.filter(push_targets::id.eq(id)).filter(push_targets::device_id.eq(device)))
            .execute(conn)?;
    Ok(n > 0)
}

/// Removes a target the push service called gone (its endpoint still the one that failed).
pub fn remove_gone(conn: &mut AnyConnection, id: i64, endpoint: &str) -> Result<bool, DbError> {
    let n =
        diesel::delete(push_targets::table.filter(push_targets::id.eq(id)).filter(push_targets::endpoint.eq(endpoint)))
            .execute(conn)?;
    Ok(n > 0)
}

/// The targets of the live devices of `users`.
pub fn of_users(conn: &mut AnyConnection, users: &[i64], now: i64) -> Result<Vec<PushTarget>, DbError> {
    let mut out = Vec::new();
    for chunk in users.chunks(500) {
        out.extend(
            push_targets::table
                .inner_join(devices::table)
                .filter(push_targets::user_id.eq_any(chunk))
                .filter(devices::revoked_at.is_null())
                .filter(devices::expires_at.gt(now))
                .order(push_targets::id.asc())
                .select(PushTarget::as_select())
                .load::<PushTarget>(conn)?,
        );
    }
    Ok(out)
}

/// The push settings of `users` that differ from the defaults (no row: the defaults).
pub fn settings_of(conn: &mut AnyConnection, users: &[i64]) -> Result<Vec<(i64, PushSettings)>, DbError> {
    let mut out = Vec::new();
    for chunk in users.chunks(500) {
        let rows: Vec<(i64, bool, bool)> = push_settings::table
            .filter(push_settings::user_id.eq_any(chunk))
            .select((push_settings::user_id, push_settings::previews, push_settings::mentions_break_mute))
            .load(conn)?;
        out.extend(rows.into_iter().map(|(u, p, m)| (u, PushSettings { previews: p, mentions_break_mute: m })));
    }
    Ok(out)
}

/// One user's push settings.
pub fn settings(conn: &mut AnyConnection, user: i64) -> Result<PushSettings, DbError> {
    Ok(settings_of(conn, &[user])?.into_iter().next().map(|(_, s)| s).unwrap_or_default())
}

/// Stores one user's push settings.
pub fn set_settings(conn: &mut AnyConnection, user: i64, s: PushSettings, now: i64) -> Result<(), DbError> {
    diesel::delete(push_settings::table.find(user)).execute(conn)?;
    diesel::insert_into(push_settings::table)
        .values((
            push_settings::user_id.eq(user),
            push_settings::previews.eq(s.previews),
            push_settings::mentions_break_mute.eq(s.mentions_break_mute),
            push_settings::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// The unread count of a user over all their conversations (the badge of a push), counted as
/// the conversation list counts it ([`super::conversations::unread_total`]).
pub fn badge(conn: &mut AnyConnection, user: i64) -> Result<i64, DbError> {
    super::conversations::unread_total(conn, user)
}

/// The value of server key `name`, inserting `make()` first when there is none. Every caller
/// gets the same value, whichever inserted it (the first insert wins; the rest read it).
pub fn server_key(
    conn: &mut AnyConnection,
    name: &str,
    make: impl FnOnce() -> String,
    now: i64,
) -> Result<String, DbError> {
    let found = |conn: &mut AnyConnection| -> Result<Option<String>, DbError> {
        Ok(server_keys::table.find(name).select(server_keys::value).first::<String>(conn).optional()?)
    };
    if let Some(v) = found(conn)? {
        return Ok(v);
    }
    let row = (server_keys::name.eq(name), server_keys::value.eq(make()), server_keys::created_at.eq(now));
    match conn {
        AnyConnection::Postgresql(c) => {
            diesel::insert_into(server_keys::table).values(row).on_conflict_do_nothing().execute(c)?
        }
        AnyConnection::Sqlite(c) => diesel::insert_or_ignore_into(server_keys::table).values(row).execute(c)?,
    };
    found(conn)?.ok_or(DbError::Query(diesel::result::Error::NotFound))
}
