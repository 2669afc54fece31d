//! The group change planner and the posting rules: pure functions over a group's cached state,
//! with no actor and no I/O (unit-tested below). The group's owner plans every change against
//! its state, writes what the plan says, then applies it to its cache ([`GroupState::apply`]).

use std::collections::HashMap;

use schema::db::groups::role;
use schema::db::models::Group;
use schema::UserId;
use serde_json::json;

use crate::command::{ChatError, GroupOp};

/// A member as the owner caches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub role: String,
    pub muted_until: Option<i64>,
    /// Receives messages with a seq above this (their join point).
    pub joined_seq: i64,
}

impl Member {
    /// Owner or admin.
    pub fn is_admin(&self) -> bool {
        self.role == role::OWNER || self.role == role::ADMIN
    }
}

/// What the owner knows of its group: the row and the current members.
#[derive(Debug, Clone, Default)]
pub struct GroupState {
    /// `None` when the group does not exist.
    pub info: Option<Group>,
    pub members: HashMap<UserId, Member>,
    /// `chat.max_group_members`.
    pub max_members: usize,
}

/// What a group change does: the rows to add or remove, whose friends the new members must be,
/// and the system messages that announce it.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    pub add: Vec<UserId>,
    pub remove: Option<UserId>,
    pub must_be_friends_of: Option<UserId>,
    pub events: Vec<serde_json::Value>,
}

impl GroupState {
    /// The member `u` (`UnknownConversation` for a non-member or a group that does not exist).
    pub fn member(&self, u: UserId) -> Result<&Member, ChatError> {
        if self.info.is_none() {
            return Err(ChatError::UnknownConversation);
        }
        self.members.get(&u).ok_or(ChatError::UnknownConversation)
    }

    /// The group, unless it was dissolved.
    pub fn live(&self) -> Result<&Group, ChatError> {
        let g = self.info.as_ref().ok_or(ChatError::UnknownConversation)?;
        if g.dissolved_at.is_some() {
            return Err(ChatError::GroupDissolved);
        }
        Ok(g)
    }

    /// Whether `sender` may post now (`mentions` must name members, `@all` is for admins).
    pub fn check_post(
        &self,
        sender: UserId,
        mentions: &[UserId],
        mention_all: bool,
        now: i64,
    ) -> Result<(), ChatError> {
        let me = self.member(sender)?;
        let g = self.live()?;
        if !me.is_admin() && (g.mute_all || me.muted_until.is_some_and(|t| t > now)) {
            return Err(ChatError::Muted);
        }
        if mention_all && !me.is_admin() {
            return Err(ChatError::MentionAllForbidden);
        }
        if mentions.iter().any(|u| !self.members.contains_key(u)) {
            return Err(ChatError::InvalidMentions);
        }
        Ok(())
    }

    /// Checks a change by `by` and says what it does (nothing is changed here).
    pub fn plan(&self, by: UserId, op: &GroupOp, now: i64) -> Result<Plan, ChatError> {
        let g = self.live()?;
        let me = self.member(by).cloned();
        let admin = me.as_ref().is_ok_and(Member::is_admin);
        let owner = me.as_ref().is_ok_and(|m| m.role == role::OWNER);
        let target = |u: &UserId| self.members.get(u).cloned().ok_or(ChatError::NotMember);
        Ok(match op {
            GroupOp::Update(u) => {
                me?;
                if !admin {
                    return Err(ChatError::NotAllowed);
                }
                let mut events = Vec::new();
                if let Some(n) = &u.name {
                    if n != &g.name {
                        events.push(json!({"event": "renamed", "by": by, "name": n}));
                    }
                }
                if let Some(a) = &u.announcement {
                    if a != &g.announcement {
                        events.push(json!({"event": "announcement", "by": by, "announcement": a}));
                    }
                }
                if let Some(m) = u.mute_all {
                    if m != g.mute_all {
                        events.push(json!({"event": if m { "muted_all" } else { "unmuted_all" }, "by": by}));
                    }
                }
                if u.invite_policy.as_ref().is_some_and(|p| p != &g.invite_policy) {
                    events.push(json!({"event": "invite_policy", "by": by, "invite_policy": u.invite_policy}));
                }
                Plan { events, ..Plan::default() }
            }
            GroupOp::Dissolve => {
                me?;
                if !owner {
                    return Err(ChatError::NotAllowed);
                }
                Plan { events: vec![json!({"event": "dissolved", "by": by})], ..Plan::default() }
            }
            GroupOp::Invite { users } => {
                me?;
                if g.invite_policy == "admins" && !admin {
                    return Err(ChatError::NotAllowed);
                }
                let mut new: Vec<UserId> = users.iter().copied().filter(|u| !self.members.contains_key(u)).collect();
                new.sort();
                new.dedup();
                if self.members.len() + new.len() > self.max_members {
                    return Err(ChatError::GroupFull);
                }
                let events =
                    if new.is_empty() { vec![] } else { vec![json!({"event": "joined", "by": by, "users": new})] };
                Plan { add: new, must_be_friends_of: Some(by), events, ..Plan::default() }
            }
            GroupOp::JoinByInvite { .. } => {
                if self.members.contains_key(&by) {
                    return Ok(Plan::default());
                }
                if self.members.len() >= self.max_members {
                    return Err(ChatError::GroupFull);
                }
                Plan {
                    add: vec![by],
                    events: vec![json!({"event": "joined", "by": by, "users": [by], "via": "invite"})],
                    ..Plan::default()
                }
            }
            GroupOp::Remove { user } => {
                me?;
                let t = target(user)?;
                if *user == by || t.role == role::OWNER || !(owner || (admin && t.role == role::MEMBER)) {
                    return Err(ChatError::NotAllowed);
                }
                Plan {
                    remove: Some(*user),
                    events: vec![json!({"event": "removed", "by": by, "user": user})],
                    ..Plan::default()
                }
            }
            GroupOp::Leave => {
                me?;
                if owner {
                    return Err(ChatError::OwnerCannotLeave);
                }
                Plan { remove: Some(by), events: vec![json!({"event": "left", "user": by})], ..Plan::default() }
            }
            GroupOp::Transfer { user } => {
                me?;
                target(user)?;
                if !owner || *user == by {
                    return Err(ChatError::NotAllowed);
                }
                Plan { events: vec![json!({"event": "owner_changed", "by": by, "user": user})], ..Plan::default() }
            }
            GroupOp::SetAdmin { user, on } => {
                me?;
                let t = target(user)?;
                if !owner || t.role == role::OWNER {
                    return Err(ChatError::NotAllowed);
                }
                let event = if *on { "admin_added" } else { "admin_removed" };
                Plan { events: vec![json!({"event": event, "by": by, "user": user})], ..Plan::default() }
            }
            GroupOp::Mute { user, until } => {
                me?;
                let t = target(user)?;
                if *user == by || t.role == role::OWNER || !(owner || (admin && t.role == role::MEMBER)) {
                    return Err(ChatError::NotAllowed);
                }
                let event = match until {
                    Some(t) if *t > now => json!({"event": "muted", "by": by, "user": user, "until": t}),
                    _ => json!({"event": "unmuted", "by": by, "user": user}),
                };
                Plan { events: vec![event], ..Plan::default() }
            }
        })
    }

    /// Applies a change that was written: roles, mutes and new members (who join after seq
    /// `joined_seq`). Leaving members are removed by the caller once their announcement is out.
    pub fn apply(&mut self, by: UserId, op: &GroupOp, plan: &Plan, joined_seq: i64, now: i64) {
        for u in &plan.add {
            self.members.insert(*u, Member { role: role::MEMBER.into(), muted_until: None, joined_seq });
        }
        match op {
            GroupOp::Transfer { user } => {
                if let Some(m) = self.members.get_mut(user) {
                    m.role = role::OWNER.into();
                }
                if let Some(m) = self.members.get_mut(&by) {
                    m.role = role::ADMIN.into();
                }
            }
            GroupOp::SetAdmin { user, on } => {
                if let Some(m) = self.members.get_mut(user) {
                    m.role = if *on { role::ADMIN } else { role::MEMBER }.into();
                }
            }
            GroupOp::Mute { user, until } => {
                if let Some(m) = self.members.get_mut(user) {
                    m.muted_until = until.filter(|t| *t > now);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use schema::db::groups::GroupUpdate;

    use super::*;

    const OWNER: UserId = UserId(1);
    const ADMIN: UserId = UserId(2);
    const MEMBER: UserId = UserId(3);
    const OTHER: UserId = UserId(4);
    const STRANGER: UserId = UserId(9);

    fn state(max: usize) -> GroupState {
        let g = Group {
            id: 7,
            name: "Team".into(),
            announcement: None,
            avatar_url: None,
            owner_id: OWNER.0,
            mute_all: false,
            invite_policy: "members".into(),
            dissolved_at: None,
            created_at: 0,
            updated_at: 0,
        };
        let m = |r: &str| Member { role: r.into(), muted_until: None, joined_seq: 0 };
        GroupState {
            info: Some(g),
            members: HashMap::from([
                (OWNER, m(role::OWNER)),
                (ADMIN, m(role::ADMIN)),
                (MEMBER, m(role::MEMBER)),
                (OTHER, m(role::MEMBER)),
            ]),
            max_members: max,
        }
    }

    #[test]
    fn roles_decide_who_may_change_what() {
        let s = state(10);
        let upd = GroupOp::Update(GroupUpdate { name: Some("New".into()), ..GroupUpdate::default() });
        assert!(s.plan(ADMIN, &upd, 0).is_ok());
        assert_eq!(s.plan(MEMBER, &upd, 0), Err(ChatError::NotAllowed));
        assert_eq!(s.plan(STRANGER, &upd, 0), Err(ChatError::UnknownConversation));
        assert_eq!(s.plan(ADMIN, &GroupOp::Dissolve, 0), Err(ChatError::NotAllowed));
        assert!(s.plan(OWNER, &GroupOp::Dissolve, 0).is_ok());
        // Admins remove and mute plain members only; nobody touches the owner.
        assert!(s.plan(ADMIN, &GroupOp::Remove { user: MEMBER }, 0).is_ok());
        assert_eq!(s.plan(ADMIN, &GroupOp::Remove { user: ADMIN }, 0), Err(ChatError::NotAllowed));
        assert_eq!(s.plan(OWNER, &GroupOp::Remove { user: OWNER }, 0), Err(ChatError::NotAllowed));
        assert_eq!(s.plan(MEMBER, &GroupOp::Mute { user: OTHER, until: Some(5) }, 0), Err(ChatError::NotAllowed));
        assert_eq!(s.plan(OWNER, &GroupOp::Remove { user: STRANGER }, 0), Err(ChatError::NotMember));
        assert_eq!(s.plan(OWNER, &GroupOp::Leave, 0), Err(ChatError::OwnerCannotLeave));
        assert_eq!(s.plan(ADMIN, &GroupOp::Transfer { user: MEMBER }, 0), Err(ChatError::NotAllowed));
        assert_eq!(s.plan(OWNER, &GroupOp::SetAdmin { user: OWNER, on: false }, 0), Err(ChatError::NotAllowed));
    }

    #[test]
    fn the_size_limit_counts_current_members_and_new_ones_once() {
        let s = state(6);
        let two = GroupOp::Invite { users: vec![UserId(10), UserId(11), UserId(10), MEMBER] };
        let p = s.plan(MEMBER, &two, 0);
        assert_eq!(p.as_ref().map(|p| p.add.clone()), Ok(vec![UserId(10), UserId(11)]), "members and repeats drop");
        let three = GroupOp::Invite { users: vec![UserId(10), UserId(11), UserId(12)] };
        assert_eq!(s.plan(MEMBER, &three, 0), Err(ChatError::GroupFull));
        let mut full = state(4);
        assert_eq!(full.plan(STRANGER, &GroupOp::JoinByInvite { token: "t".into() }, 0), Err(ChatError::GroupFull));
        full.max_members = 5;
        assert!(full.plan(STRANGER, &GroupOp::JoinByInvite { token: "t".into() }, 0).is_ok());
        assert_eq!(full.plan(MEMBER, &GroupOp::JoinByInvite { token: "t".into() }, 0), Ok(Plan::default()));
    }

    #[test]
    fn applied_changes_are_what_the_next_plan_sees() {
        let mut s = state(5);
        // Two transfers planned one after the other: the second sees the first.
        let t = GroupOp::Transfer { user: MEMBER };
        let p = s.plan(OWNER, &t, 0).unwrap_or_default();
        s.apply(OWNER, &t, &p, 10, 0);
        assert_eq!(s.members[&MEMBER].role, role::OWNER);
        assert_eq!(s.members[&OWNER].role, role::ADMIN);
        assert_eq!(s.plan(OWNER, &GroupOp::Transfer { user: OTHER }, 0), Err(ChatError::NotAllowed));
        // A join fills the last place: the next one is refused.
        let j = GroupOp::JoinByInvite { token: "t".into() };
        let p = s.plan(STRANGER, &j, 0).unwrap_or_default();
        s.apply(STRANGER, &j, &p, 11, 0);
        assert_eq!(s.members[&STRANGER].joined_seq, 11);
        assert_eq!(s.plan(UserId(20), &j, 0), Err(ChatError::GroupFull));
    }

    #[test]
    fn posting_rules() {
        let mut s = state(10);
        assert!(s.check_post(MEMBER, &[OTHER], false, 0).is_ok());
        assert_eq!(s.check_post(MEMBER, &[], true, 0), Err(ChatError::MentionAllForbidden));
        assert!(s.check_post(ADMIN, &[], true, 0).is_ok());
        assert_eq!(s.check_post(MEMBER, &[STRANGER], false, 0), Err(ChatError::InvalidMentions));
        assert_eq!(s.check_post(STRANGER, &[], false, 0), Err(ChatError::UnknownConversation));
        let m = GroupOp::Mute { user: MEMBER, until: Some(100) };
        let p = s.plan(ADMIN, &m, 50).unwrap_or_default();
        s.apply(ADMIN, &m, &p, 0, 50);
        assert_eq!(s.check_post(MEMBER, &[], false, 99), Err(ChatError::Muted));
        assert!(s.check_post(MEMBER, &[], false, 100).is_ok(), "a mute ends at its time");
        if let Some(g) = s.info.as_mut() {
            g.mute_all = true;
        }
        assert_eq!(s.check_post(OTHER, &[], false, 0), Err(ChatError::Muted));
        assert!(s.check_post(ADMIN, &[], false, 0).is_ok(), "admins may post under mute-all");
        if let Some(g) = s.info.as_mut() {
            g.dissolved_at = Some(1);
        }
        assert_eq!(s.check_post(ADMIN, &[], false, 0), Err(ChatError::GroupDissolved));
    }
}
