//! Groups, members and invite links. Permission rules live with the group actor (which is the
//! one writer of a group's state on a node); these are the plain queries it runs.

use diesel::prelude::*;

use super::models::{Group, GroupInvite, GroupMember, NewGroup, User};
use super::schema::{conversation_states as st, group_invites as gi, group_members as gm, groups as g, users};
use super::{conversations, AnyConnection, DbError};

/// Member roles.
pub mod role {
    /// Created the group or received it by transfer; one per group.
    pub const OWNER: &str = "owner";
    /// Appointed by the owner.
    pub const ADMIN: &str = "admin";
    /// Everyone else.
    pub const MEMBER: &str = "member";
}

/// The conversation id string of a group.
pub fn conv_id(group: i64) -> String {
    format!("g:{group}")
}

/// Creates a group owned by `owner` with `members` (friends, checked by the caller).
pub fn create(conn: &mut AnyConnection, owner: i64, name: &str, members: &[i64], now: i64) -> Result<Group, DbError> {
    let group: Group = diesel::insert_into(g::table)
        .values(NewGroup {
            name: name.to_owned(),
            owner_id: owner,
            invite_policy: "members".into(),
            created_at: now,
            updated_at: now,
        })
        .returning(g::all_columns)
        .get_result(conn)?;
    add_members(conn, group.id, &[owner], role::OWNER, 0, now)?;
    add_members(conn, group.id, members, role::MEMBER, 0, now)?;
    Ok(group)
}

/// A group by id.
pub fn find(conn: &mut AnyConnection, id: i64) -> Result<Option<Group>, DbError> {
    Ok(g::table.find(id).select(Group::as_select()).first(conn).optional()?)
}

/// Adds (or re-adds) members with `role`, visible from seq `joined_seq + 1`, and gives them a
/// conversation state. Returns the ids actually added (not already active).
pub fn add_members(
    conn: &mut AnyConnection,
    group: i64,
    ids: &[i64],
    role_name: &str,
    joined_seq: i64,
    now: i64,
) -> Result<Vec<i64>, DbError> {
    let existing: Vec<GroupMember> = gm::table
        .filter(gm::group_id.eq(group))
        .filter(gm::user_id.eq_any(ids))
        .select(GroupMember::as_select())
        .load(conn)?;
    let conv = conv_id(group);
    let mut added = Vec::new();
    for &uid in ids {
        match existing.iter().find(|m| m.user_id == uid) {
            Some(m) if m.left_seq.is_none() => continue,
            Some(_) => {
                diesel::update(gm::table.find((group, uid)))
                    .set((
                        gm::role.eq(role_name),
                        gm::left_seq.eq(None::<i64>),
                        gm::joined_seq.eq(joined_seq),
                        gm::joined_at.eq(now),
                        gm::muted_until.eq(None::<i64>),
                    ))
                    .execute(conn)?;
            }
            None => {
                diesel::insert_into(gm::table)
                    .values(GroupMember {
                        group_id: group,
                        user_id: uid,
                        role: role_name.to_owned(),
                        nickname: None,
                        muted_until: None,
                        joined_seq,
                        joined_at: now,
                        left_seq: None,
                    })
                    .execute(conn)?;
            }
        }
        added.push(uid);
    }
    let pairs: Vec<(i64, Option<i64>)> = added.iter().map(|u| (*u, None)).collect();
    conversations::ensure(conn, &conv, &pairs, now)?;
    // A re-joined member sees the group again and nothing from before the join.
    diesel::update(st::table.filter(st::conv_id.eq(&conv)).filter(st::user_id.eq_any(&added)))
        .set((st::hidden_seq.eq(-1), st::cleared_seq.eq(joined_seq), st::read_seq.eq(joined_seq)))
        .execute(conn)?;
    Ok(added)
}

/// Marks a member as gone from seq `left_seq` on (they keep reading up to it).
pub fn remove_member(conn: &mut AnyConnection, group: i64, user: i64, left_seq: i64) -> Result<bool, DbError> {
    let n = diesel::update(gm::table.find((group, user)).filter(gm::left_seq.is_null()))
        .set(gm::left_seq.eq(left_seq))
        .execute(conn)?;
    Ok(n == 1)
}

/// A member row (active or left).
pub fn member(conn: &mut AnyConnection, group: i64, user: i64) -> Result<Option<GroupMember>, DbError> {
    Ok(gm::table.find((group, user)).select(GroupMember::as_select()).first(conn).optional()?)
}

/// Every active member.
pub fn active_members(conn: &mut AnyConnection, group: i64) -> Result<Vec<GroupMember>, DbError> {
    Ok(gm::table
        .filter(gm::group_id.eq(group))
        .filter(gm::left_seq.is_null())
        .order(gm::user_id.asc())
        .select(GroupMember::as_select())
        .load(conn)?)
}

/// A page of active members with their profiles: owner, admins, then members, by id.
pub fn page_members(
    conn: &mut AnyConnection,
    group: i64,
    offset: i64,
    limit: i64,
) -> Result<Vec<(GroupMember, User)>, DbError> {
    let mut rows: Vec<(GroupMember, User)> = gm::table
        .inner_join(users::table.on(users::id.eq(gm::user_id)))
        .filter(gm::group_id.eq(group))
        .filter(gm::left_seq.is_null())
        .select((GroupMember::as_select(), User::as_select()))
        .load(conn)?;
    let rank = |r: &str| match r {
        role::OWNER => 0,
        role::ADMIN => 1,
        _ => 2,
    };
    rows.sort_by_key(|(m, _)| (rank(&m.role), m.user_id));
    Ok(rows.into_iter().skip(offset.max(0) as usize).take(limit.max(0) as usize).collect())
}

/// The groups a user is an active member of, newest first.
pub fn of_user(conn: &mut AnyConnection, user: i64) -> Result<Vec<(Group, GroupMember)>, DbError> {
    Ok(g::table
        .inner_join(gm::table)
        .filter(gm::user_id.eq(user))
        .filter(gm::left_seq.is_null())
        .order(g::id.desc())
        .select((Group::as_select(), GroupMember::as_select()))
        .load(conn)?)
}

/// Number of active members.
pub fn count_active(conn: &mut AnyConnection, group: i64) -> Result<i64, DbError> {
    Ok(gm::table.filter(gm::group_id.eq(group)).filter(gm::left_seq.is_null()).count().get_result(conn)?)
}

/// Changes to a group's settings (`None` leaves a field alone; `Some(None)` clears it). In
/// JSON an absent field is `None` and `null` is `Some(None)`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GroupUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "present")]
    pub announcement: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "present")]
    pub avatar_url: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mute_all: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invite_policy: Option<String>,
}

/// A field that is present (`null` included) is `Some`; an absent one is `None` (`default`).
pub fn present<'de, D: serde::Deserializer<'de>, T: serde::Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    <Option<T> as serde::Deserialize>::deserialize(d).map(Some)
}

/// Applies a settings update.
pub fn update(conn: &mut AnyConnection, group: i64, upd: &GroupUpdate, now: i64) -> Result<(), DbError> {
    let t = g::table.find(group);
    if let Some(n) = &upd.name {
        diesel::update(t).set(g::name.eq(n)).execute(conn)?;
    }
    if let Some(a) = &upd.announcement {
        diesel::update(t).set(g::announcement.eq(a)).execute(conn)?;
    }
    if let Some(a) = &upd.avatar_url {
        diesel::update(t).set(g::avatar_url.eq(a)).execute(conn)?;
    }
    if let Some(m) = upd.mute_all {
        diesel::update(t).set(g::mute_all.eq(m)).execute(conn)?;
    }
    if let Some(p) = &upd.invite_policy {
        diesel::update(t).set(g::invite_policy.eq(p)).execute(conn)?;
    }
    diesel::update(t).set(g::updated_at.eq(now)).execute(conn)?;
    Ok(())
}

/// Sets a member's role.
pub fn set_role(conn: &mut AnyConnection, group: i64, user: i64, role_name: &str) -> Result<(), DbError> {
    diesel::update(gm::table.find((group, user))).set(gm::role.eq(role_name)).execute(conn)?;
    Ok(())
}

/// Makes `to` the owner and `from` an admin.
pub fn transfer(conn: &mut AnyConnection, group: i64, from: i64, to: i64) -> Result<(), DbError> {
    set_role(conn, group, to, role::OWNER)?;
    set_role(conn, group, from, role::ADMIN)?;
    diesel::update(g::table.find(group)).set(g::owner_id.eq(to)).execute(conn)?;
    Ok(())
}

/// Mutes a member until `until` (ms), or unmutes with `None`.
pub fn set_mute(conn: &mut AnyConnection, group: i64, user: i64, until: Option<i64>) -> Result<(), DbError> {
    diesel::update(gm::table.find((group, user))).set(gm::muted_until.eq(until)).execute(conn)?;
    Ok(())
}

/// Marks the group dissolved.
pub fn dissolve(conn: &mut AnyConnection, group: i64, now: i64) -> Result<(), DbError> {
    diesel::update(g::table.find(group)).set((g::dissolved_at.eq(now), g::updated_at.eq(now))).execute(conn)?;
    Ok(())
}

/// Raises the mention mark of `users` in `conv` to `seq`.
pub fn mark_mentioned(conn: &mut AnyConnection, conv: &str, users: &[i64], seq: i64) -> Result<(), DbError> {
    diesel::update(
        st::table.filter(st::conv_id.eq(conv)).filter(st::user_id.eq_any(users)).filter(st::mention_seq.lt(seq)),
    )
    .set(st::mention_seq.eq(seq))
    .execute(conn)?;
    Ok(())
}

/// Members' read marks in a group conversation: (user, read_seq).
pub fn read_marks(conn: &mut AnyConnection, group: i64) -> Result<Vec<(i64, i64)>, DbError> {
    Ok(st::table.filter(st::conv_id.eq(conv_id(group))).select((st::user_id, st::read_seq)).load(conn)?)
}

/// Stores an invite link.
pub fn create_invite(conn: &mut AnyConnection, invite: &GroupInvite) -> Result<(), DbError> {
    diesel::insert_into(gi::table).values(invite).execute(conn)?;
    Ok(())
}

/// An invite by token.
pub fn find_invite(conn: &mut AnyConnection, token: &str) -> Result<Option<GroupInvite>, DbError> {
    Ok(gi::table.find(token).select(GroupInvite::as_select()).first(conn).optional()?)
}

/// Counts one use of an invite if it is still usable at `now`; false otherwise.
pub fn use_invite(conn: &mut AnyConnection, token: &str, now: i64) -> Result<bool, DbError> {
    let Some(inv) = find_invite(conn, token)? else { return Ok(false) };
    if inv.revoked_at.is_some()
        || inv.expires_at.is_some_and(|e| e <= now)
        || inv.max_uses.is_some_and(|m| inv.uses >= m)
    {
        return Ok(false);
    }
    let n = diesel::update(gi::table.find(token).filter(gi::uses.eq(inv.uses)))
        .set(gi::uses.eq(inv.uses + 1))
        .execute(conn)?;
    // A concurrent use changed the count first: the caller may retry.
    Ok(n == 1)
}

/// Revokes an invite of a group; false if unknown or already revoked.
pub fn revoke_invite(conn: &mut AnyConnection, group: i64, token: &str, now: i64) -> Result<bool, DbError> {
    let n = diesel::update(gi::table.find(token).filter(gi::group_id.eq(group)).filter(gi::revoked_at.is_null()))
        .set(gi::revoked_at.eq(now))
        .execute(conn)?;
    Ok(n == 1)
}

/// A group's live invites.
pub fn list_invites(conn: &mut AnyConnection, group: i64) -> Result<Vec<GroupInvite>, DbError> {
    Ok(gi::table
        .filter(gi::group_id.eq(group))
        .filter(gi::revoked_at.is_null())
        .order(gi::created_at.desc())
        .select(GroupInvite::as_select())
        .load(conn)?)
}
