//! Queries on `users`: registration, look-up, search, profile updates.

use diesel::prelude::*;

use super::friends;
use super::models::{NewUser, User};
use super::schema::users;
use super::{AnyConnection, DbError};

/// Why a registration was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterConflict {
    /// The username is taken (case-insensitively).
    Username,
    /// The phone number belongs to another account.
    Phone,
}

/// Inserts a user and their default friend category in the caller's transaction.
///
/// Returns `Ok(Err(conflict))` when the username or phone is taken, also when the loss shows only
/// as a unique violation of a concurrent registration.
pub fn register(
    conn: &mut AnyConnection,
    new: &NewUser,
    default_category: &str,
) -> Result<Result<User, RegisterConflict>, DbError> {
    if let Some(c) = conflict(conn, new)? {
        return Ok(Err(c));
    }
    let inserted = diesel::insert_into(users::table).values(new).returning(users::all_columns).get_result::<User>(conn);
    let user = match inserted {
        Ok(u) => u,
        Err(e) => {
            let e = DbError::from(e);
            if e.is_unique_violation() {
                // A concurrent registration won the race; the transaction is aborted on
                // PostgreSQL, so report the conflict without another query.
                let which = if new.phone.is_some() && e.to_string().contains("phone") {
                    RegisterConflict::Phone
                } else {
                    RegisterConflict::Username
                };
                return Ok(Err(which));
            }
            return Err(e);
        }
    };
    friends::create_default_category(conn, user.id, default_category, new.created_at)?;
    Ok(Ok(user))
}

fn conflict(conn: &mut AnyConnection, new: &NewUser) -> Result<Option<RegisterConflict>, DbError> {
    let taken: i64 = users::table.filter(users::username_lower.eq(&new.username_lower)).count().get_result(conn)?;
    if taken > 0 {
        return Ok(Some(RegisterConflict::Username));
    }
    if let Some(phone) = &new.phone {
        let taken: i64 = users::table.filter(users::phone.eq(phone)).count().get_result(conn)?;
        if taken > 0 {
            return Ok(Some(RegisterConflict::Phone));
        }
    }
    Ok(None)
}

/// A user by id.
pub fn find(conn: &mut AnyConnection, id: i64) -> Result<Option<User>, DbError> {
    Ok(users::table.find(id).select(User::as_select()).first(conn).optional()?)
}

/// Users by ids (any order; missing ids are skipped).
pub fn find_many(conn: &mut AnyConnection, ids: &[i64]) -> Result<Vec<User>, DbError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(users::table.filter(users::id.eq_any(ids)).select(User::as_select()).load(conn)?)
}

/// A user by exact (case-insensitive) username, or by exact phone when `login` is a phone number.
pub fn find_by_login(conn: &mut AnyConnection, login: &str) -> Result<Option<User>, DbError> {
    let q = users::table.select(User::as_select());
    let found = if login.starts_with('+') {
        q.filter(users::phone.eq(login)).first(conn).optional()?
    } else {
        q.filter(users::username_lower.eq(login.to_lowercase())).first(conn).optional()?
    };
    Ok(found)
}

/// Escapes `%`, `_` and `\` for a `LIKE ... ESCAPE '\'` pattern.
pub fn like_prefix(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 1);
    for ch in s.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out.push('%');
    out
}

/// Search: exact phone when `q` is a phone number; otherwise exact username (first) or nickname
/// prefix (then by nickname, id). Returns one page and whether more follow.
pub fn search(conn: &mut AnyConnection, q: &str, offset: i64, limit: i64) -> Result<Vec<User>, DbError> {
    let base = users::table.select(User::as_select());
    if q.starts_with('+') {
        return Ok(base.filter(users::phone.eq(q)).order(users::id.asc()).offset(offset).limit(limit).load(conn)?);
    }
    let lower = q.to_lowercase();
    // The exact username match (if any) leads, then nickname prefix matches in a stable order.
    let exact: Option<User> = base.filter(users::username_lower.eq(&lower)).first(conn).optional()?;
    let mut out = Vec::new();
    let mut offset = offset;
    let mut limit = limit;
    if let Some(u) = exact.clone() {
        if offset == 0 {
            out.push(u);
            limit -= 1;
        } else {
            offset -= 1;
        }
    }
    if limit > 0 {
        let exclude = exact.map(|u| u.id).unwrap_or(0);
        let rest = base
            .filter(users::nickname_lower.like(like_prefix(&lower)).escape('\\'))
            .filter(users::id.ne(exclude))
            .order((users::nickname_lower.asc(), users::id.asc()))
            .offset(offset)
            .limit(limit)
            .load(conn)?;
        out.extend(rest);
    }
    Ok(out)
}

/// Profile fields a user may change; `None` leaves a field as it is, `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct ProfileUpdate {
    pub nickname: Option<String>,
    pub avatar_url: Option<Option<String>>,
    pub bio: Option<Option<String>>,
}

/// Applies a profile update and returns the new row.
pub fn update_profile(
    conn: &mut AnyConnection,
    id: i64,
    upd: &ProfileUpdate,
    now: i64,
) -> Result<Option<User>, DbError> {
    let target = users::table.find(id);
    if let Some(n) = &upd.nickname {
        diesel::update(target)
            .set((users::nickname.eq(n), users::nickname_lower.eq(n.to_lowercase())))
            .execute(conn)?;
    }
    if let Some(a) = &upd.avatar_url {
        diesel::update(target).set(users::avatar_url.eq(a)).execute(conn)?;
    }
    if let Some(b) = &upd.bio {
        diesel::update(target).set(users::bio.eq(b)).execute(conn)?;
    }
    diesel::update(target).set(users::updated_at.eq(now)).execute(conn)?;
    find(conn, id)
}

/// Bans a user at `at` with an optional reason (`Some(at)`), or lifts the ban (`None`, which also
/// clears the reason). A repeated ban keeps the first time and takes the new reason. Returns the
/// updated row, `None` for an unknown user.
pub fn set_banned(
    conn: &mut AnyConnection,
    id: i64,
    at: Option<i64>,
    reason: Option<&str>,
) -> Result<Option<User>, DbError> {
    let target = users::table.find(id);
    let n = match at {
        Some(at) => {
            diesel::update(target.filter(users::banned_at.is_null())).set(users::banned_at.eq(at)).execute(conn)?;
            diesel::update(target).set(users::ban_reason.eq(reason)).execute(conn)?
        }
        None => diesel::update(target)
            .set((users::banned_at.eq(None::<i64>), users::ban_reason.eq(None::<String>)))
            .execute(conn)?,
    };
    if n == 0 {
        return Ok(None);
    }
    find(conn, id)
}
