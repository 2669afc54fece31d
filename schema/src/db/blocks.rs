//! Blocks: one user's refusal of another. A block ends the pair's friendship and closes the
//! friend requests between them, so every rule that needs a friendship (1:1 messages, typing,
//! presence, group invites) refuses the blocked user with the answer a non-friend gets; what is
//! left to check here is a new friend request, which a blocked user may still "send" (stored as
//! ignored, never shown to the blocker). Unblocking lifts only the block: the friendship is not
//! restored, either of the two may ask again.

use diesel::prelude::*;

use super::friends::status;
use super::models::User;
use super::schema::{friend_requests, friendships, user_blocks, users};
use super::{AnyConnection, DbError};

/// What [`block`] changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blocked {
    /// The block is new (false: it existed, nothing changed).
    pub created: bool,
    /// A friendship of the two ended.
    pub unfriended: bool,
}

/// Blocks `blocked` for `user` at `now`: stores the block, ends their friendship (both sides)
/// and expires every open request between them. Run inside a transaction; idempotent.
pub fn block(conn: &mut AnyConnection, user: i64, blocked: i64, now: i64) -> Result<Blocked, DbError> {
    if is_blocked(conn, user, blocked)? {
        return Ok(Blocked { created: false, unfriended: false });
    }
    diesel::insert_into(user_blocks::table)
        .values((user_blocks::user_id.eq(user), user_blocks::blocked_id.eq(blocked), user_blocks::created_at.eq(now)))
        .execute(conn)?;
    let unfriended = diesel::delete(
        friendships::table.filter(
            (friendships::user_id.eq(user).and(friendships::friend_id.eq(blocked)))
                .or(friendships::user_id.eq(blocked).and(friendships::friend_id.eq(user))),
        ),
    )
    .execute(conn)?
        > 0;
    diesel::update(
        friend_requests::table
            .filter(
                (friend_requests::from_user_id.eq(user).and(friend_requests::to_user_id.eq(blocked)))
                    .or(friend_requests::from_user_id.eq(blocked).and(friend_requests::to_user_id.eq(user))),
            )
            .filter(friend_requests::status.eq_any([status::PENDING, status::IGNORED])),
    )
    .set((friend_requests::status.eq(status::EXPIRED), friend_requests::updated_at.eq(now)))
    .execute(conn)?;
    Ok(Blocked { created: true, unfriended })
}

/// Lifts `user`'s block of `blocked` at `now`; true if there was one. The requests the blocked
/// user sent meanwhile (hidden from `user`) expire rather than surface.
pub fn unblock(conn: &mut AnyConnection, user: i64, blocked: i64, now: i64) -> Result<bool, DbError> {
    let n = diesel::delete(user_blocks::table.find((user, blocked))).execute(conn)?;
    diesel::update(
        friend_requests::table
            .filter(friend_requests::from_user_id.eq(blocked))
            .filter(friend_requests::to_user_id.eq(user))
            .filter(friend_requests::status.eq_any([status::PENDING, status::IGNORED])),
    )
    .set((friend_requests::status.eq(status::EXPIRED), friend_requests::updated_at.eq(now)))
    .execute(conn)?;
    Ok(n > 0)
}

/// Whether `user` blocked `other`.
pub fn is_blocked(conn: &mut AnyConnection, user: i64, other: i64) -> Result<bool, DbError> {
    let n: i64 = user_blocks::table.find((user, other)).count().get_result(conn)?;
    Ok(n > 0)
}

/// A page of the users `user` blocked, newest block first, with when each was blocked.
pub fn list(conn: &mut AnyConnection, user: i64, offset: i64, limit: i64) -> Result<Vec<(i64, User)>, DbError> {
    Ok(user_blocks::table
        .inner_join(users::table.on(users::id.eq(user_blocks::blocked_id)))
        .filter(user_blocks::user_id.eq(user))
        .order((user_blocks::created_at.desc(), user_blocks::blocked_id.desc()))
        .offset(offset)
        .limit(limit)
        .select((user_blocks::created_at, User::as_select()))
        .load(conn)?)
}

/// The ids of every user `user` blocked.
pub fn blocked_ids(conn: &mut AnyConnection, user: i64) -> Result<Vec<i64>, DbError> {
    Ok(user_blocks::table.filter(user_blocks::user_id.eq(user)).select(user_blocks::blocked_id).load(conn)?)
}
