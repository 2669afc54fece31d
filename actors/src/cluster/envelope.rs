//! The wire envelope of the cluster bus: what one node publishes for others on Redis pub/sub.
//!
//! An envelope is one line of JSON, the header (its origin node `o` and the typed [`Envelope`],
//! tagged by `k`), then the frames it carries, one per line: encoded server frames are compact
//! JSON and never contain a raw newline, so they travel as they are, without being escaped or
//! decoded on the way.
//!
//! ```text
//! {"o":"node-1","k":"frame","user":2}
//! {"type":"msg","conv":"d:1:2","seq":42,"from":1,"id":"a-42","kind":"text","body":"hi","ts":1795628146210}
//! ```
//!
//! A bottom module: types and their encoding only.

use schema::{ConvId, DeviceId, UserId};
use serde::{Deserialize, Serialize};

use crate::command::{Command, Outcome};
use crate::delivery::KickReason;

/// What an envelope says. The frames it carries are counted by [`Envelope::frames`].
// Envelopes are encoded or decoded one at a time and not kept: the size of the largest variant
// (a request carrying a `Command::Post`) is not worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "snake_case")]
pub enum Envelope {
    /// On a user's channel: one frame for the user's sessions on the receiving node, but
    /// device `except`.
    Frame {
        user: UserId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        except: Option<DeviceId>,
    },
    /// On a user's channel: close the user's sessions (device `device`, or all).
    Kick {
        user: UserId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        device: Option<DeviceId>,
        reason: KickReason,
    },
    /// On a node's channel, from a conversation's owner: its fan-out to that node's members.
    /// Frame `i` goes to the users of `users[i]`; when `sender` is set, one more frame (the
    /// last) goes to the sender's sessions but the sending device.
    Fanout {
        conv: ConvId,
        users: Vec<Vec<UserId>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sender: Option<(UserId, Option<DeviceId>)>,
    },
    /// On the owner's channel: a command for conversation `conv`; the answer is a
    /// [`Envelope::Reply`] with the same `id` on the asking node's channel.
    Request { id: u64, conv: ConvId, cmd: Command },
    /// On the asking node's channel: the answer to request `id`.
    Reply { id: u64, answer: Answer },
    /// On the cluster-wide channel: one frame for every session (`users: None`) or for the
    /// sessions of `users`, on every node.
    Broadcast {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        users: Option<Vec<UserId>>,
    },
    /// On a node's channel: start draining.
    Drain,
}

/// How a node answers a routed command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "a", rename_all = "snake_case")]
pub enum Answer {
    /// The owner ran it.
    Ran { outcome: Outcome },
    /// The node does not own the conversation: `holder` does (if known), or nobody and this
    /// node will not take it (`draining`). The asking node routes again.
    NotOwner {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        holder: Option<String>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        draining: bool,
    },
}

impl Envelope {
    /// How many frames follow the header.
    pub fn frames(&self) -> usize {
        match self {
            Envelope::Frame { .. } | Envelope::Broadcast { .. } => 1,
            Envelope::Fanout { users, sender, .. } => users.len() + usize::from(sender.is_some()),
            Envelope::Kick { .. } | Envelope::Request { .. } | Envelope::Reply { .. } | Envelope::Drain => 0,
        }
    }
}

#[derive(Serialize)]
struct HeaderOut<'a> {
    o: &'a str,
    #[serde(flatten)]
    e: &'a Envelope,
}

#[derive(Deserialize)]
struct HeaderIn {
    o: String,
    #[serde(flatten)]
    e: Envelope,
}

/// Encodes an envelope from node `origin` with its `frames` (as many as [`Envelope::frames`]).
pub fn encode(origin: &str, e: &Envelope, frames: &[&str]) -> Vec<u8> {
    let mut out = serde_json::to_vec(&HeaderOut { o: origin, e }).unwrap_or_default();
    for f in frames {
        out.push(b'\n');
        out.extend_from_slice(f.as_bytes());
    }
    out
}

/// A decoded envelope: its origin, what it says, and the frames it carries.
#[derive(Debug)]
pub struct Decoded<'a> {
    pub origin: String,
    pub envelope: Envelope,
    pub frames: Vec<&'a str>,
}

/// Decodes an envelope; `None` when it is not one (bad header, wrong number of frames, not
/// UTF-8).
pub fn decode(raw: &[u8]) -> Option<Decoded<'_>> {
    let text = std::str::from_utf8(raw).ok()?;
    let (head, rest) = match text.split_once('\n') {
        Some((h, r)) => (h, Some(r)),
        None => (text, None),
    };
    let h: HeaderIn = serde_json::from_str(head).ok()?;
    let frames: Vec<&str> = rest.map(|r| r.split('\n').collect()).unwrap_or_default();
    (frames.len() == h.e.frames()).then_some(Decoded { origin: h.o, envelope: h.e, frames })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{ChatError, Reply};

    #[test]
    fn envelopes_round_trip_with_their_frames() {
        let cases: Vec<(Envelope, Vec<&str>)> = vec![
            (Envelope::Frame { user: UserId(7), except: Some(DeviceId(3)) }, vec![r#"{"type":"x","body":"a\nb"}"#]),
            (Envelope::Kick { user: UserId(7), device: None, reason: KickReason::Revoked }, vec![]),
            (
                Envelope::Fanout {
                    conv: ConvId("g:1".into()),
                    users: vec![vec![UserId(1), UserId(2)], vec![UserId(3)]],
                    sender: Some((UserId(4), Some(DeviceId(9)))),
                },
                vec!["{\"v\":1}", "{\"v\":2}", "{\"own\":true}"],
            ),
            (Envelope::Request { id: 5, conv: ConvId("d:1:2".into()), cmd: Command::Refresh }, vec![]),
            (Envelope::Reply { id: 5, answer: Answer::Ran { outcome: Ok(Reply::Done) } }, vec![]),
            (Envelope::Reply { id: 6, answer: Answer::Ran { outcome: Err(ChatError::Muted) } }, vec![]),
            (
                Envelope::Reply { id: 7, answer: Answer::NotOwner { holder: Some("node-3".into()), draining: false } },
                vec![],
            ),
            (Envelope::Broadcast { users: None }, vec!["{}"]),
            (Envelope::Drain, vec![]),
        ];
        for (e, frames) in cases {
            let raw = encode("node-a", &e, &frames);
            let Some(d) = decode(&raw) else { panic!("{e:?} does not decode") };
            assert_eq!(d.origin, "node-a");
            assert_eq!(d.envelope, e);
            assert_eq!(d.frames, frames);
        }
    }

    #[test]
    fn malformed_envelopes_are_refused() {
        assert!(decode(b"no header").is_none());
        assert!(decode(b"{bad json}\npayload").is_none());
        assert!(decode(br#"{"o":"n","k":"unknown"}"#).is_none());
        // A frame envelope without its frame, and one with two.
        assert!(decode(br#"{"o":"n","k":"frame","user":1}"#).is_none());
        assert!(decode(b"{\"o\":\"n\",\"k\":\"frame\",\"user\":1}\n{}\n{}").is_none());
        assert!(decode(&[0xff, 0xfe]).is_none());
    }
}
