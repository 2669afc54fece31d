//! The friend graph: categories, requests and friendships (one row per side), with the rules
//! that keep them consistent. Every function runs in the caller's connection; the ones that
//! change more than one row expect to be inside a transaction (`Database::write*`).
//!
//! Request statuses as stored: `pending`, `ignored` (the recipient chose not to answer; the
//! sender still sees it as pending), `accepted`, `rejected`, `expired`. A `pending` or `ignored`
//! request older than the expiry age *reads* as `expired` at once, before the sweeper stores it.

use diesel::prelude::*;

use super::models::{Category, FriendRequest, Friendship, NewCategory, NewFriendRequest, User};
use super::schema::{friend_categories, friend_requests, friendships, users};
use super::{AnyConnection, DbError};

/// Stored request statuses.
pub mod status {
    /// Waiting for the recipient.
    pub const PENDING: &str = "pending";
    /// The recipient ignored it (shown to the sender as pending).
    pub const IGNORED: &str = "ignored";
    /// Accepted: the two are (or were) friends.
    pub const ACCEPTED: &str = "accepted";
    /// Rejected by the recipient.
    pub const REJECTED: &str = "rejected";
    /// Not answered in time, or superseded by a newer request.
    pub const EXPIRED: &str = "expired";
}

/// Time rules for requests, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct RequestRules {
    /// Now.
    pub now: i64,
    /// A pending request older than this is expired.
    pub ttl_ms: i64,
    /// Minimum time between two requests from one user to another.
    pub cooldown_ms: i64,
}

impl RequestRules {
    fn expired_before(&self) -> i64 {
        self.now - self.ttl_ms
    }
}

/// Status as a reader sees it: `pending`/`ignored` past the expiry age reads `expired`; the
/// sender sees `ignored` as `pending`.
pub fn effective_status(r: &FriendRequest, rules: &RequestRules, viewer_is_sender: bool) -> &'static str {
    let open = r.status == status::PENDING || r.status == status::IGNORED;
    if open && r.created_at <= rules.expired_before() {
        return status::EXPIRED;
    }
    match r.status.as_str() {
        status::PENDING => status::PENDING,
        status::IGNORED if viewer_is_sender => status::PENDING,
        status::IGNORED => status::IGNORED,
        status::ACCEPTED => status::ACCEPTED,
        status::REJECTED => status::REJECTED,
        _ => status::EXPIRED,
    }
}

// ---------------------------------------------------------------------------------------------
// Categories

/// Creates a user's default category; returns its id.
pub fn create_default_category(conn: &mut AnyConnection, user_id: i64, name: &str, now: i64) -> Result<i64, DbError> {
    let c: Category = diesel::insert_into(friend_categories::table)
        .values(NewCategory {
            user_id,
            name: name.to_owned(),
            name_lower: name.to_lowercase(),
            is_default: true,
            created_at: now,
        })
        .returning(friend_categories::all_columns)
        .get_result(conn)?;
    Ok(c.id)
}

/// A user's default category.
pub fn default_category(conn: &mut AnyConnection, user_id: i64) -> Result<Category, DbError> {
    Ok(friend_categories::table
        .filter(friend_categories::user_id.eq(user_id))
        .filter(friend_categories::is_default.eq(true))
        .select(Category::as_select())
        .first(conn)?)
}

/// One of a user's categories (another user's id reads as missing).
pub fn find_category(conn: &mut AnyConnection, user_id: i64, id: i64) -> Result<Option<Category>, DbError> {
    Ok(friend_categories::table
        .filter(friend_categories::id.eq(id))
        .filter(friend_categories::user_id.eq(user_id))
        .select(Category::as_select())
        .first(conn)
        .optional()?)
}

/// A user's categories (default first, then by creation) with the number of friends in each.
pub fn list_categories(conn: &mut AnyConnection, user_id: i64) -> Result<Vec<(Category, i64)>, DbError> {
    let cats: Vec<Category> = friend_categories::table
        .filter(friend_categories::user_id.eq(user_id))
        .order((friend_categories::is_default.desc(), friend_categories::id.asc()))
        .select(Category::as_select())
        .load(conn)?;
    let counts: Vec<(i64, i64)> = friendships::table
        .filter(friendships::user_id.eq(user_id))
        .group_by(friendships::category_id)
        .select((friendships::category_id, diesel::dsl::count_star()))
        .load(conn)?;
    Ok(cats
        .into_iter()
        .map(|c| {
            let n = counts.iter().find(|(id, _)| *id == c.id).map(|(_, n)| *n).unwrap_or(0);
            (c, n)
        })
        .collect())
}

/// Why a category change was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CategoryRefusal {
    /// Not one of the user's categories.
    NotFound,
    /// The user has a category of that name (case-insensitive).
    NameTaken,
    /// The default category cannot be deleted.
    IsDefault,
}

fn name_taken(conn: &mut AnyConnection, user_id: i64, name: &str, except: i64) -> Result<bool, DbError> {
    let n: i64 = friend_categories::table
        .filter(friend_categories::user_id.eq(user_id))
        .filter(friend_categories::name_lower.eq(name.to_lowercase()))
        .filter(friend_categories::id.ne(except))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

/// Creates a category.
pub fn create_category(
    conn: &mut AnyConnection,
    user_id: i64,
    name: &str,
    now: i64,
) -> Result<Result<Category, CategoryRefusal>, DbError> {
    if name_taken(conn, user_id, name, 0)? {
        return Ok(Err(CategoryRefusal::NameTaken));
    }
    let c = diesel::insert_into(friend_categories::table)
        .values(NewCategory {
            user_id,
            name: name.to_owned(),
            name_lower: name.to_lowercase(),
            is_default: false,
            created_at: now,
        })
        .returning(friend_categories::all_columns)
        .get_result::<Category>(conn)?;
    Ok(Ok(c))
}

/// Renames a category (the default one too).
pub fn rename_category(
    conn: &mut AnyConnection,
    user_id: i64,
    id: i64,
    name: &str,
) -> Result<Result<Category, CategoryRefusal>, DbError> {
    if find_category(conn, user_id, id)?.is_none() {
        return Ok(Err(CategoryRefusal::NotFound));
    }
    if name_taken(conn, user_id, name, id)? {
        return Ok(Err(CategoryRefusal::NameTaken));
    }
    diesel::update(friend_categories::table.find(id))
        .set((friend_categories::name.eq(name), friend_categories::name_lower.eq(name.to_lowercase())))
        .execute(conn)?;
    Ok(find_category(conn, user_id, id)?.ok_or(CategoryRefusal::NotFound))
}

/// Deletes a category, moving its friends to the default category; returns how many moved.
pub fn delete_category(
    conn: &mut AnyConnection,
    user_id: i64,
    id: i64,
) -> Result<Result<usize, CategoryRefusal>, DbError> {
    let Some(cat) = find_category(conn, user_id, id)? else {
        return Ok(Err(CategoryRefusal::NotFound));
    };
    if cat.is_default {
        return Ok(Err(CategoryRefusal::IsDefault));
    }
    let default = default_category(conn, user_id)?;
    let moved = diesel::update(
        friendships::table.filter(friendships::user_id.eq(user_id)).filter(friendships::category_id.eq(id)),
    )
    .set(friendships::category_id.eq(default.id))
    .execute(conn)?;
    diesel::delete(friend_categories::table.find(id)).execute(conn)?;
    Ok(Ok(moved))
}

// ---------------------------------------------------------------------------------------------
// Friendships

/// True when `user_id` has `friend_id` as a friend.
pub fn are_friends(conn: &mut AnyConnection, user_id: i64, friend_id: i64) -> Result<bool, DbError> {
    let n: i64 = friendships::table
        .filter(friendships::user_id.eq(user_id))
        .filter(friendships::friend_id.eq(friend_id))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

/// One side of a friendship with the friend's profile and the category's name.
pub fn find_friend(
    conn: &mut AnyConnection,
    user_id: i64,
    friend_id: i64,
) -> Result<Option<(Friendship, User, String)>, DbError> {
    Ok(friendships::table
        .inner_join(users::table.on(users::id.eq(friendships::friend_id)))
        .inner_join(friend_categories::table)
        .filter(friendships::user_id.eq(user_id))
        .filter(friendships::friend_id.eq(friend_id))
        .select((Friendship::as_select(), User::as_select(), friend_categories::name))
        .first(conn)
        .optional()?)
}

/// A page of a user's friends (optionally of one category), oldest friendship first.
pub fn list_friends(
    conn: &mut AnyConnection,
    user_id: i64,
    category_id: Option<i64>,
    offset: i64,
    limit: i64,
) -> Result<Vec<(Friendship, User, String)>, DbError> {
    let mut q = friendships::table
        .inner_join(users::table.on(users::id.eq(friendships::friend_id)))
        .inner_join(friend_categories::table)
        .filter(friendships::user_id.eq(user_id))
        .into_boxed();
    if let Some(c) = category_id {
        q = q.filter(friendships::category_id.eq(c));
    }
    Ok(q.order((friendships::created_at.asc(), friendships::friend_id.asc()))
        .offset(offset)
        .limit(limit)
        .select((Friendship::as_select(), User::as_select(), friend_categories::name))
        .load(conn)?)
}

/// The ids of all of a user's friends.
pub fn friend_ids(conn: &mut AnyConnection, user_id: i64) -> Result<Vec<i64>, DbError> {
    Ok(friendships::table.filter(friendships::user_id.eq(user_id)).select(friendships::friend_id).load(conn)?)
}

/// Creates both sides of a friendship unless it exists. `a` gets `a_category` (or their default)
/// and `a_remark`; `b` gets their default category. Returns false if it existed already.
pub fn befriend(
    conn: &mut AnyConnection,
    a: i64,
    b: i64,
    a_category: Option<i64>,
    a_remark: Option<String>,
    now: i64,
) -> Result<bool, DbError> {
    if are_friends(conn, a, b)? {
        return Ok(false);
    }
    let a_cat = match a_category {
        Some(c) => c,
        None => default_category(conn, a)?.id,
    };
    let b_cat = default_category(conn, b)?.id;
    let rows = [
        Friendship { user_id: a, friend_id: b, category_id: a_cat, remark: a_remark, dnd: false, created_at: now },
        Friendship { user_id: b, friend_id: a, category_id: b_cat, remark: None, dnd: false, created_at: now },
    ];
    for r in rows {
        diesel::insert_into(friendships::table).values(r).execute(conn)?;
    }
    Ok(true)
}

/// Removes both sides of a friendship; false if they were not friends.
pub fn unfriend(conn: &mut AnyConnection, a: i64, b: i64) -> Result<bool, DbError> {
    let n = diesel::delete(
        friendships::table.filter(
            (friendships::user_id.eq(a).and(friendships::friend_id.eq(b)))
                .or(friendships::user_id.eq(b).and(friendships::friend_id.eq(a))),
        ),
    )
    .execute(conn)?;
    Ok(n > 0)
}

/// Changes to one side of a friendship; `None` leaves a field alone, `Some(None)` clears a remark.
#[derive(Debug, Clone, Default)]
pub struct FriendUpdate {
    pub remark: Option<Option<String>>,
    pub category_id: Option<i64>,
    pub dnd: Option<bool>,
}

/// Why a friend update was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FriendRefusal {
    /// Not friends.
    NotFriends,
    /// The category is not one of the user's.
    CategoryNotFound,
}

/// Applies an update to `user_id`'s side of the friendship with `friend_id`.
pub fn update_friend(
    conn: &mut AnyConnection,
    user_id: i64,
    friend_id: i64,
    upd: &FriendUpdate,
) -> Result<Result<(), FriendRefusal>, DbError> {
    if !are_friends(conn, user_id, friend_id)? {
        return Ok(Err(FriendRefusal::NotFriends));
    }
    if let Some(c) = upd.category_id {
        if find_category(conn, user_id, c)?.is_none() {
            return Ok(Err(FriendRefusal::CategoryNotFound));
        }
    }
    let side = friendships::table.find((user_id, friend_id));
    if let Some(r) = &upd.remark {
        diesel::update(side).set(friendships::remark.eq(r)).execute(conn)?;
    }
    if let Some(c) = upd.category_id {
        diesel::update(side).set(friendships::category_id.eq(c)).execute(conn)?;
    }
    if let Some(d) = upd.dnd {
        diesel::update(side).set(friendships::dnd.eq(d)).execute(conn)?;
    }
    Ok(Ok(()))
}

// ---------------------------------------------------------------------------------------------
// Requests

/// Why a friend request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendRefusal {
    /// To oneself.
    SelfRequest,
    /// No such user.
    UserNotFound,
    /// Already friends.
    AlreadyFriends,
    /// The last request to the same user is younger than the cooldown; ms until allowed.
    TooSoon(i64),
    /// The sender blocked the target (unblock first).
    YouBlocked,
}

/// What sending a request did.
#[derive(Debug, Clone)]
pub enum Sent {
    /// A pending request was created.
    Pending(FriendRequest),
    /// The target had a pending request to the sender: both are accepted, the two are friends.
    Befriended(FriendRequest),
    /// The target blocked the sender: stored as ignored, shown to the sender as pending, and
    /// the target is not told.
    Hidden(FriendRequest),
}

fn is_open(r: &FriendRequest, rules: &RequestRules) -> bool {
    (r.status == status::PENDING || r.status == status::IGNORED) && r.created_at > rules.expired_before()
}

/// Sends a request from `from` to `to` with its verification message (in a transaction).
pub fn send_request(
    conn: &mut AnyConnection,
    from: i64,
    to: i64,
    message: &str,
    rules: &RequestRules,
) -> Result<Result<Sent, SendRefusal>, DbError> {
    if from == to {
        return Ok(Err(SendRefusal::SelfRequest));
    }
    let exists: i64 = users::table.filter(users::id.eq(to)).count().get_result(conn)?;
    if exists == 0 {
        return Ok(Err(SendRefusal::UserNotFound));
    }
    if are_friends(conn, from, to)? {
        return Ok(Err(SendRefusal::AlreadyFriends));
    }
    if super::blocks::is_blocked(conn, from, to)? {
        return Ok(Err(SendRefusal::YouBlocked));
    }
    let last: Option<FriendRequest> = friend_requests::table
        .filter(friend_requests::from_user_id.eq(from))
        .filter(friend_requests::to_user_id.eq(to))
        .order((friend_requests::created_at.desc(), friend_requests::id.desc()))
        .select(FriendRequest::as_select())
        .first(conn)
        .optional()?;
    if let Some(last) = &last {
        let allowed_at = last.created_at + rules.cooldown_ms;
        if allowed_at > rules.now {
            return Ok(Err(SendRefusal::TooSoon(allowed_at - rules.now)));
        }
    }
    // An older open request of mine to the same user is superseded by this one.
    diesel::update(
        friend_requests::table
            .filter(friend_requests::from_user_id.eq(from))
            .filter(friend_requests::to_user_id.eq(to))
            .filter(friend_requests::status.eq_any([status::PENDING, status::IGNORED])),
    )
    .set((friend_requests::status.eq(status::EXPIRED), friend_requests::updated_at.eq(rules.now)))
    .execute(conn)?;

    let reverse: Vec<FriendRequest> = friend_requests::table
        .filter(friend_requests::from_user_id.eq(to))
        .filter(friend_requests::to_user_id.eq(from))
        .filter(friend_requests::status.eq_any([status::PENDING, status::IGNORED]))
        .select(FriendRequest::as_select())
        .load(conn)?;
    // A request from a user the recipient blocked is kept as ignored: its sender sees it
    // pending, as any unanswered request, and the recipient never sees it.
    let blocked = super::blocks::is_blocked(conn, to, from)?;
    let mutual = !blocked && reverse.iter().any(|r| is_open(r, rules));
    let new_status = if mutual {
        status::ACCEPTED
    } else if blocked {
        status::IGNORED
    } else {
        status::PENDING
    };
    let req: FriendRequest = diesel::insert_into(friend_requests::table)
        .values(NewFriendRequest {
            from_user_id: from,
            to_user_id: to,
            message: message.to_owned(),
            status: new_status.to_owned(),
            created_at: rules.now,
            updated_at: rules.now,
        })
        .returning(friend_requests::all_columns)
        .get_result(conn)?;
    if blocked {
        return Ok(Ok(Sent::Hidden(req)));
    }
    if !mutual {
        return Ok(Ok(Sent::Pending(req)));
    }
    accept_open_between(conn, to, from, rules.now)?;
    befriend(conn, from, to, None, None, rules.now)?;
    Ok(Ok(Sent::Befriended(req)))
}

/// Marks every open request from `from` to `to` accepted.
fn accept_open_between(conn: &mut AnyConnection, from: i64, to: i64, now: i64) -> Result<usize, DbError> {
    Ok(diesel::update(
        friend_requests::table
            .filter(friend_requests::from_user_id.eq(from))
            .filter(friend_requests::to_user_id.eq(to))
            .filter(friend_requests::status.eq_any([status::PENDING, status::IGNORED])),
    )
    .set((friend_requests::status.eq(status::ACCEPTED), friend_requests::updated_at.eq(now)))
    .execute(conn)?)
}

/// The recipient's answer to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Become friends; the recipient's side goes to `category_id` (or default) with `remark`.
    Accept { category_id: Option<i64>, remark: Option<String> },
    /// Refuse.
    Reject,
    /// Leave unanswered (the sender keeps seeing it as pending until it expires).
    Ignore,
}

/// Why an answer was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerRefusal {
    /// No such request addressed to the caller.
    NotFound,
    /// The request is no longer open (answered or expired); the status it has.
    NotPending(&'static str),
    /// The category is not one of the caller's.
    CategoryNotFound,
}

/// Answers request `id` as user `me` (in a transaction). Returns the updated request.
pub fn answer_request(
    conn: &mut AnyConnection,
    me: i64,
    id: i64,
    answer: &Answer,
    rules: &RequestRules,
) -> Result<Result<FriendRequest, AnswerRefusal>, DbError> {
    let req: Option<FriendRequest> = friend_requests::table
        .find(id)
        .filter(friend_requests::to_user_id.eq(me))
        .filter(diesel::dsl::not(friend_requests::from_user_id.eq_any(super::blocks::blocked_ids(conn, me)?)))
        .select(FriendRequest::as_select())
        .first(conn)
        .optional()?;
    let Some(req) = req else {
        return Ok(Err(AnswerRefusal::NotFound));
    };
    if !is_open(&req, rules) {
        return Ok(Err(AnswerRefusal::NotPending(effective_status(&req, rules, false))));
    }
    if let Answer::Accept { category_id: Some(c), .. } = answer {
        if find_category(conn, me, *c)?.is_none() {
            return Ok(Err(AnswerRefusal::CategoryNotFound));
        }
    }
    let new_status = match answer {
        Answer::Accept { .. } => status::ACCEPTED,
        Answer::Reject => status::REJECTED,
        Answer::Ignore => status::IGNORED,
    };
    // Conditional on the status read above: of two concurrent answers only one changes the row.
    let changed = diesel::update(friend_requests::table.find(id).filter(friend_requests::status.eq(&req.status)))
        .set((friend_requests::status.eq(new_status), friend_requests::updated_at.eq(rules.now)))
        .execute(conn)?;
    if changed == 0 {
        let now_status: String = friend_requests::table.find(id).select(friend_requests::status).first(conn)?;
        let r = FriendRequest { status: now_status, ..req };
        return Ok(Err(AnswerRefusal::NotPending(effective_status(&r, rules, false))));
    }
    if let Answer::Accept { category_id, remark } = answer {
        accept_open_between(conn, me, req.from_user_id, rules.now)?;
        befriend(conn, me, req.from_user_id, *category_id, remark.clone(), rules.now)?;
    }
    Ok(Ok(FriendRequest { status: new_status.to_owned(), updated_at: rules.now, ..req }))
}

/// Which requests to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Addressed to me.
    Incoming,
    /// Sent by me.
    Outgoing,
}

/// A page of requests, newest first, with the other user's row; `status` filters by the status
/// the viewer sees (`pending`, `ignored`, `accepted`, `rejected`, `expired`).
pub fn list_requests(
    conn: &mut AnyConnection,
    me: i64,
    direction: Direction,
    status_filter: Option<&str>,
    rules: &RequestRules,
    offset: i64,
    limit: i64,
) -> Result<Vec<(FriendRequest, User)>, DbError> {
    let cutoff = rules.expired_before();
    let mut q = friend_requests::table.into_boxed();
    q = match direction {
        Direction::Incoming => q
            .filter(friend_requests::to_user_id.eq(me))
            .filter(diesel::dsl::not(friend_requests::from_user_id.eq_any(super::blocks::blocked_ids(conn, me)?))),
        Direction::Outgoing => q.filter(friend_requests::from_user_id.eq(me)),
    };
    let open = [status::PENDING, status::IGNORED];
    q = match (status_filter, direction) {
        (None, _) => q,
        // Senders never see "ignored": theirs read as pending.
        (Some(status::IGNORED), Direction::Outgoing) => q.filter(friend_requests::id.lt(0)),
        (Some(status::PENDING), Direction::Outgoing) => {
            q.filter(friend_requests::status.eq_any(open)).filter(friend_requests::created_at.gt(cutoff))
        }
        (Some(s @ (status::PENDING | status::IGNORED)), _) => {
            q.filter(friend_requests::status.eq(s)).filter(friend_requests::created_at.gt(cutoff))
        }
        (Some(status::EXPIRED), _) => q.filter(
            friend_requests::status
                .eq(status::EXPIRED)
                .or(friend_requests::status.eq_any(open).and(friend_requests::created_at.le(cutoff))),
        ),
        (Some(s), _) => q.filter(friend_requests::status.eq(s.to_owned())),
    };
    let reqs: Vec<FriendRequest> = q
        .order((friend_requests::created_at.desc(), friend_requests::id.desc()))
        .offset(offset)
        .limit(limit)
        .select(FriendRequest::as_select())
        .load(conn)?;
    let other = |r: &FriendRequest| match direction {
        Direction::Incoming => r.from_user_id,
        Direction::Outgoing => r.to_user_id,
    };
    let ids: Vec<i64> = reqs.iter().map(other).collect();
    let people = super::users::find_many(conn, &ids)?;
    Ok(reqs
        .into_iter()
        .filter_map(|r| {
            let id = other(&r);
            people.iter().find(|u| u.id == id).cloned().map(|u| (r, u))
        })
        .collect())
}

/// Stores `expired` on open requests past the expiry age; returns how many changed.
pub fn sweep_expired(conn: &mut AnyConnection, rules: &RequestRules) -> Result<usize, DbError> {
    Ok(diesel::update(
        friend_requests::table
            .filter(friend_requests::status.eq_any([status::PENDING, status::IGNORED]))
            .filter(friend_requests::created_at.le(rules.expired_before())),
    )
    .set((friend_requests::status.eq(status::EXPIRED), friend_requests::updated_at.eq(rules.now)))
    .execute(conn)?)
}
