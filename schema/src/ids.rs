//! Newtype ids, so a user id is never passed where a device id is expected.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! int_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
            utoipa::ToSchema, schemars::JsonSchema,
        )]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

int_id!(
    /// A user account.
    UserId
);
int_id!(
    /// One logged-in device of a user (one token per device).
    DeviceId
);
int_id!(
    /// A group.
    GroupId
);
int_id!(
    /// A friend category of one user.
    CategoryId
);
int_id!(
    /// A friend request.
    RequestId
);

/// A conversation: `d:<low user>:<high user>` for 1:1 chats, `g:<group>` for groups.
///
/// The 1:1 form is stable for a pair of users whichever of them opens it.
#[derive(
    Debug,
    Clone,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
    schemars::JsonSchema,
)]
#[serde(transparent)]
pub struct ConvId(pub String);

/// What a conversation id names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvKind {
    /// A 1:1 chat between two distinct users (lower id first).
    Direct(UserId, UserId),
    /// A group chat.
    Group(GroupId),
}

impl ConvId {
    /// Which of `n` slots (threads, writer lanes) this conversation belongs to: the same for the
    /// same id for the life of the process.
    pub fn slot(&self, n: usize) -> usize {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.hash(&mut h);
        (h.finish() % n.max(1) as u64) as usize
    }

    /// The conversation of two users (order does not matter).
    pub fn direct(a: UserId, b: UserId) -> Self {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        ConvId(format!("d:{lo}:{hi}"))
    }

    /// The conversation of a group.
    pub fn group(g: GroupId) -> Self {
        ConvId(format!("g:{g}"))
    }

    /// Parses the id; `None` for anything not produced by [`ConvId::direct`] or [`ConvId::group`].
    pub fn kind(&self) -> Option<ConvKind> {
        let mut parts = self.0.split(':');
        let kind = match (parts.next()?, parts.next(), parts.next()) {
            ("d", Some(a), Some(b)) => {
                let (a, b) = (UserId(parse_id(a)?), UserId(parse_id(b)?));
                if a >= b {
                    return None;
                }
                ConvKind::Direct(a, b)
            }
            ("g", Some(g), None) => ConvKind::Group(GroupId(parse_id(g)?)),
            _ => return None,
        };
        parts.next().is_none().then_some(kind)
    }

    /// For a 1:1 conversation that `me` belongs to, the other user.
    pub fn peer_of(&self, me: UserId) -> Option<UserId> {
        match self.kind()? {
            ConvKind::Direct(a, b) if a == me => Some(b),
            ConvKind::Direct(a, b) if b == me => Some(a),
            _ => None,
        }
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ConvId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Parses a canonical positive decimal id (no sign, no leading zeros).
fn parse_id(s: &str) -> Option<i64> {
    if s.is_empty() || s.starts_with('0') || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A cluster node's id (from config; the hostname-like string nodes publish under).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(pub String);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_ids_are_stable_for_a_pair() {
        let a = ConvId::direct(UserId(7), UserId(3));
        assert_eq!(a, ConvId::direct(UserId(3), UserId(7)));
        assert_eq!(a.as_str(), "d:3:7");
        assert_eq!(a.kind(), Some(ConvKind::Direct(UserId(3), UserId(7))));
        assert_eq!(a.peer_of(UserId(3)), Some(UserId(7)));
        assert_eq!(a.peer_of(UserId(9)), None);
    }

    #[test]
    fn forged_ids_do_not_parse() {
        for bad in ["", "d:1", "d:2:1", "d:1:1", "d:01:2", "d:1:2:3", "g:", "g:-1", "x:1", "d:a:b", "g:1:2"] {
            assert_eq!(ConvId(bad.into()).kind(), None, "{bad}");
        }
        assert_eq!(ConvId("g:12".into()).kind(), Some(ConvKind::Group(GroupId(12))));
    }
}
