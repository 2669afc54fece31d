//! Conversation summaries (`conversations`), members' marks and settings
//! (`conversation_states`) and delete-for-me (`message_hides`).

use diesel::prelude::*;

use super::models::{Conversation, ConversationState};
use super::schema::{conversation_states as st, conversations as cv, message_hides as mh};
use super::{AnyConnection, DbError};

/// Longest preview kept for the conversation list (characters).
pub const PREVIEW_CHARS: usize = 100;

/// The preview of a message body.
pub fn preview(body: &str) -> String {
    body.chars().take(PREVIEW_CHARS).collect()
}

/// Creates the conversation row and the members' state rows that are missing.
/// `members` are `(user, peer)` pairs (`peer` is `None` in groups).
pub fn ensure(conn: &mut AnyConnection, conv: &str, members: &[(i64, Option<i64>)], now: i64) -> Result<(), DbError> {
    let exists: i64 = cv::table.filter(cv::conv_id.eq(conv)).count().get_result(conn)?;
    if exists == 0 {
        diesel::insert_into(cv::table)
            .values(Conversation {
                conv_id: conv.to_owned(),
                last_seq: 0,
                last_ts: 0,
                last_sender_id: None,
                last_preview: None,
                created_at: now,
            })
            .execute(conn)?;
    }
    let ids: Vec<i64> = members.iter().map(|(u, _)| *u).collect();
    let have: Vec<i64> =
        st::table.filter(st::conv_id.eq(conv)).filter(st::user_id.eq_any(&ids)).select(st::user_id).load(conn)?;
    for (user, peer) in members.iter().filter(|(u, _)| !have.contains(u)) {
        diesel::insert_into(st::table)
            .values(ConversationState {
                user_id: *user,
                conv_id: conv.to_owned(),
                peer_id: *peer,
                read_seq: 0,
                delivered_seq: 0,
                cleared_seq: 0,
                hidden_seq: -1,
                pinned: false,
                dnd: false,
                created_at: now,
                mention_seq: 0,
            })
            .execute(conn)?;
    }
    Ok(())
}

/// The newest message of a conversation in a persisted batch.
#[derive(Debug, Clone)]
pub struct LastMessage {
    pub conv: String,
    pub seq: i64,
    pub ts: i64,
    pub sender: i64,
    pub preview: Option<String>,
}

/// Moves conversation summaries forward and the senders' read marks past their own messages:
/// two statements for the whole batch (`UPDATE .. FROM (VALUES ..)`, which SQLite has had since
/// 3.33), not two per conversation (on PostgreSQL each statement is a round trip).
pub fn record_last(conn: &mut AnyConnection, last: &[LastMessage]) -> Result<(), DbError> {
    use diesel::sql_types::{BigInt, Nullable, Text};
    if last.is_empty() {
        return Ok(());
    }
    let pg = matches!(conn, AnyConnection::Postgresql(_));
    // PostgreSQL types a bare parameter in VALUES as text; SQLite needs no casts.
    let (summary_row, mark_row) = if pg {
        ("(?::text, ?::bigint, ?::bigint, ?::bigint, ?::text)", "(?::text, ?::bigint, ?::bigint)")
    } else {
        ("(?, ?, ?, ?, ?)", "(?, ?, ?)")
    };
    let rows = |row: &str| vec![row; last.len()].join(", ");
    let summaries = format!(
        "UPDATE conversations SET last_seq = v.column2, last_ts = v.column3, last_sender_id = v.column4, \
         last_preview = v.column5 FROM (VALUES {}) AS v \
         WHERE conversations.conv_id = v.column1 AND conversations.last_seq < v.column2",
        rows(summary_row)
    );
    let marks = format!(
        "UPDATE conversation_states SET read_seq = v.column2 FROM (VALUES {}) AS v \
         WHERE conversation_states.conv_id = v.column1 AND conversation_states.user_id = v.column3 \
         AND conversation_states.read_seq < v.column2",
        rows(mark_row)
    );
    macro_rules! run {
        ($c:expr, $db:ty) => {{
            let (summaries, marks) = if pg { (numbered(&summaries), numbered(&marks)) } else { (summaries, marks) };
            let mut q = diesel::sql_query(summaries).into_boxed::<$db>();
            for m in last {
                q = q
                    .bind::<Text, _>(m.conv.as_str())
                    .bind::<BigInt, _>(m.seq)
                    .bind::<BigInt, _>(m.ts)
                    .bind::<BigInt, _>(m.sender)
                    .bind::<Nullable<Text>, _>(m.preview.as_deref());
            }
            q.execute($c)?;
            let mut q = diesel::sql_query(marks).into_boxed::<$db>();
            for m in last {
                q = q.bind::<Text, _>(m.conv.as_str()).bind::<BigInt, _>(m.seq).bind::<BigInt, _>(m.sender);
            }
            q.execute($c)?;
        }};
    }
    match conn {
        AnyConnection::Sqlite(c) => run!(c, diesel::sqlite::Sqlite),
        AnyConnection::Postgresql(c) => run!(c, diesel::pg::Pg),
    }
    Ok(())
}

/// `?` placeholders as PostgreSQL's `$1, $2, ..`.
fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + sql.len() / 4);
    let mut n = 0;
    for ch in sql.chars() {
        if ch == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(ch);
        }
    }
    out
}

/// A conversation's summary.
pub fn find(conn: &mut AnyConnection, conv: &str) -> Result<Option<Conversation>, DbError> {
    Ok(cv::table.find(conv).select(Conversation::as_select()).first(conn).optional()?)
}

/// One member's state.
pub fn state(conn: &mut AnyConnection, user: i64, conv: &str) -> Result<Option<ConversationState>, DbError> {
    Ok(st::table.find((user, conv)).select(ConversationState::as_select()).first(conn).optional()?)
}

/// Every member's state in a conversation.
pub fn states(conn: &mut AnyConnection, conv: &str) -> Result<Vec<ConversationState>, DbError> {
    Ok(st::table.filter(st::conv_id.eq(conv)).select(ConversationState::as_select()).load(conn)?)
}

/// A user's visible conversations: pinned first, then by last message time (newest first).
pub fn list(conn: &mut AnyConnection, user: i64) -> Result<Vec<(ConversationState, Conversation)>, DbError> {
    Ok(st::table
        .inner_join(cv::table)
        .filter(st::user_id.eq(user))
        .filter(cv::last_seq.gt(st::hidden_seq))
        .order((st::pinned.desc(), cv::last_ts.desc(), cv::created_at.desc(), cv::conv_id.asc()))
        .select((ConversationState::as_select(), Conversation::as_select()))
        .load(conn)?)
}

/// The unread count of one conversation-list entry whose last message is `last_seq` (for a
/// group the user left, capped at the seq they left at): messages after the read mark (or
/// the cleared mark, if later).
pub fn unread_of(s: &ConversationState, last_seq: i64) -> i64 {
    (last_seq - s.read_seq.max(s.cleared_seq)).max(0)
}

/// The last seq of `cv` as `user` sees it: for a group they left, the seq they left at.
pub fn visible_last_seq(conn: &mut AnyConnection, user: i64, cv: &Conversation) -> Result<i64, DbError> {
    if let Some(crate::ConvKind::Group(g)) = crate::ConvId(cv.conv_id.clone()).kind() {
        let left = super::groups::member(conn, g.0, user)?.and_then(|m| m.left_seq);
        if let Some(left) = left.filter(|l| *l < cv.last_seq) {
            return Ok(left);
        }
    }
    Ok(cv.last_seq)
}

/// The sum of the unread counts of the user's conversation list (the `unread` of each entry
/// of `GET /conversations`, hidden conversations left out): the badge of a push.
pub fn unread_total(conn: &mut AnyConnection, user: i64) -> Result<i64, DbError> {
    let mut total = 0;
    for (s, cv) in list(conn, user)? {
        let last = visible_last_seq(conn, user, &cv)?;
        total += unread_of(&s, last);
    }
    Ok(total)
}

/// Raises a member's read mark to `seq` (never lowers it); returns the mark before and after.
pub fn mark_read(conn: &mut AnyConnection, user: i64, conv: &str, seq: i64) -> Result<(i64, i64), DbError> {
    let before: Option<i64> = st::table.find((user, conv)).select(st::read_seq).first(conn).optional()?;
    let Some(before) = before else { return Ok((0, 0)) };
    if before >= seq {
        return Ok((before, before));
    }
    diesel::update(st::table.find((user, conv))).set(st::read_seq.eq(seq)).execute(conn)?;
    Ok((before, seq))
}

/// Raises a member's delivered mark to `seq` (never lowers it).
pub fn mark_delivered(conn: &mut AnyConnection, user: i64, conv: &str, seq: i64) -> Result<(), DbError> {
    diesel::update(st::table.find((user, conv)).filter(st::delivered_seq.lt(seq)))
        .set(st::delivered_seq.eq(seq))
        .execute(conn)?;
    Ok(())
}

/// Sets pinned and/or do-not-disturb; false when the user has no state in the conversation.
pub fn update_settings(
    conn: &mut AnyConnection,
    user: i64,
    conv: &str,
    pinned: Option<bool>,
    dnd: Option<bool>,
) -> Result<bool, DbError> {
    if state(conn, user, conv)?.is_none() {
        return Ok(false);
    }
    if let Some(p) = pinned {
        diesel::update(st::table.find((user, conv))).set(st::pinned.eq(p)).execute(conn)?;
    }
    if let Some(d) = dnd {
        diesel::update(st::table.find((user, conv))).set(st::dnd.eq(d)).execute(conn)?;
    }
    Ok(true)
}

/// Clears my history: messages up to the current last seq are no longer shown to me (and count
/// as read). Returns the watermark.
pub fn clear_history(conn: &mut AnyConnection, user: i64, conv: &str) -> Result<Option<i64>, DbError> {
    let Some(c) = find(conn, conv)? else { return Ok(None) };
    if state(conn, user, conv)?.is_none() {
        return Ok(None);
    }
    diesel::update(st::table.find((user, conv)))
        .set((st::cleared_seq.eq(c.last_seq), st::read_seq.eq(c.last_seq)))
        .execute(conn)?;
    Ok(Some(c.last_seq))
}

/// Hides a conversation from my list until a newer message arrives; false if not mine.
pub fn hide(conn: &mut AnyConnection, user: i64, conv: &str) -> Result<bool, DbError> {
    let Some(c) = find(conn, conv)? else { return Ok(false) };
    let n = diesel::update(st::table.find((user, conv))).set(st::hidden_seq.eq(c.last_seq)).execute(conn)?;
    Ok(n == 1)
}

/// Hides one message for one user (idempotent).
pub fn hide_message(conn: &mut AnyConnection, user: i64, conv: &str, seq: i64, now: i64) -> Result<(), DbError> {
    let n: i64 = mh::table.find((user, conv, seq)).count().get_result(conn)?;
    if n == 0 {
        diesel::insert_into(mh::table)
            .values((mh::user_id.eq(user), mh::conv_id.eq(conv), mh::seq.eq(seq), mh::created_at.eq(now)))
            .execute(conn)?;
    }
    Ok(())
}

/// Of the seqs in `lo..=hi`, those the user hid.
pub fn hidden_between(conn: &mut AnyConnection, user: i64, conv: &str, lo: i64, hi: i64) -> Result<Vec<i64>, DbError> {
    Ok(mh::table
        .filter(mh::user_id.eq(user))
        .filter(mh::conv_id.eq(conv))
        .filter(mh::seq.between(lo, hi))
        .select(mh::seq)
        .load(conn)?)
}

/// Marks the list preview as recalled when the recalled message is the last one.
pub fn recall_preview(conn: &mut AnyConnection, conv: &str, seq: i64) -> Result<(), DbError> {
    diesel::update(cv::table.filter(cv::conv_id.eq(conv)).filter(cv::last_seq.eq(seq)))
        .set(cv::last_preview.eq(None::<String>))
        .execute(conn)?;
    Ok(())
}

/// Shows a hidden conversation again.
pub fn unhide(conn: &mut AnyConnection, user: i64, conv: &str) -> Result<(), DbError> {
    diesel::update(st::table.find((user, conv))).set(st::hidden_seq.eq(-1)).execute(conn)?;
    Ok(())
}

/// Every conversation `user` has a state in (1:1 and groups, hidden from the list or not, and
/// groups they left), for searches over all of them.
pub fn conv_ids_of(conn: &mut AnyConnection, user: i64) -> Result<Vec<String>, DbError> {
    Ok(st::table.filter(st::user_id.eq(user)).select(st::conv_id).load(conn)?)
}
