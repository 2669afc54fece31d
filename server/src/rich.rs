//! Rich messages on the session's and the history's side: resolving what a `send` names (an
//! upload of the sender's, a message to forward) into what the conversation's owner stores, and
//! filling history pages with each reader's view of quoted messages and the reactions.

use std::collections::{HashMap, HashSet};

use actors::command::ChatError;
use actors::hub::Hub;
use schema::db::{conversations, uploads};
use schema::message::{Attachment, AttachmentKind, MessageKind, MessageRecord};
use schema::protocol::{MessageRef, Quote, ReactionCount, WireMessage};
use schema::{ConvId, UserId};

/// The upload `id` of `user`, as a message carries it; marks it attached (so the sweeper of
/// unused uploads leaves it).
pub async fn attachment_of(hub: &Hub, user: UserId, id: &str) -> Result<Attachment, ChatError> {
    let (id, now) = (id.to_owned(), hub.clock.now_ms());
    let up = hub
        .db
        .write(move |c| {
            let up = uploads::find(c, &id)?.filter(|u| u.owner_id == user.0 && u.removed_at.is_none());
            if let Some(u) = &up {
                uploads::mark_attached(c, &u.id, now)?;
            }
            Ok(up)
        })
        .await?
        .ok_or(ChatError::UploadNotFound)?;
    Ok(Attachment {
        id: up.id,
        kind: AttachmentKind::parse(&up.kind),
        name: up.name,
        mime: up.mime,
        size: up.size,
        width: up.width,
        height: up.height,
        thumb: up.has_thumb,
    })
}

/// What a forward of `source` by `user` posts: the original's text, its file and who sent the
/// original (a forward of a forward names the first sender). The original must be a text
/// message `user` can read now: inside their history, not recalled, not deleted for themselves.
pub async fn forward_of(
    hub: &Hub,
    user: UserId,
    source: &MessageRef,
) -> Result<(String, Option<Attachment>, UserId), ChatError> {
    let (floor, ceiling) = crate::ws::access(hub, user, &source.conv).await?;
    if source.seq <= floor || source.seq > ceiling {
        return Err(ChatError::MessageNotFound);
    }
    let m = hub
        .store
        .get(source.conv.clone(), source.seq)
        .await
        .map_err(ChatError::unavailable)?
        .ok_or(ChatError::MessageNotFound)?;
    if m.kind != MessageKind::Text || m.recalled_at.is_some() {
        return Err(ChatError::MessageNotFound);
    }
    let (c, seq) = (source.conv.clone(), source.seq);
    let hidden = hub.db.read(move |db| conversations::hidden_between(db, user.0, c.as_str(), seq, seq)).await?;
    if !hidden.is_empty() {
        return Err(ChatError::MessageNotFound);
    }
    Ok((m.body.unwrap_or_default(), m.attachment, m.forwarded_from.unwrap_or(m.sender)))
}

/// Fills a page of `conv` as `user` reads it: each reply's quote (the quoted message as this
/// reader may see it: bounded by `floor` / `ceiling`, minus what they deleted) and each message's
/// reactions (counts per emoji, and which are the reader's).
pub async fn enrich(
    hub: &Hub,
    user: UserId,
    conv: &ConvId,
    floor: i64,
    ceiling: i64,
    messages: &mut [WireMessage],
) -> Result<(), ChatError> {
    if messages.is_empty() {
        return Ok(());
    }
    let quoted: HashSet<i64> = messages.iter().filter_map(|m| m.reply.as_ref().map(|q| q.seq)).collect();
    let mut records: HashMap<i64, MessageRecord> = HashMap::new();
    for seq in &quoted {
        if let Some(m) = hub.store.get(conv.clone(), *seq).await.map_err(ChatError::unavailable)? {
            records.insert(*seq, m);
        }
    }
    let hidden: HashSet<i64> = match (quoted.iter().min(), quoted.iter().max()) {
        (Some(lo), Some(hi)) => {
            let (c, lo, hi) = (conv.clone(), *lo, *hi);
            hub.db
                .read(move |db| conversations::hidden_between(db, user.0, c.as_str(), lo, hi))
                .await?
                .into_iter()
                .collect()
        }
        _ => HashSet::new(),
    };
    let seqs: Vec<i64> = messages.iter().map(|m| m.seq).collect();
    let reactions = hub.store.reactions(conv.clone(), seqs).await.map_err(ChatError::unavailable)?;
    let mut counts: HashMap<i64, Vec<ReactionCount>> = HashMap::new();
    for r in reactions {
        let list = counts.entry(r.seq).or_default();
        match list.iter_mut().find(|c| c.emoji == r.emoji) {
            Some(c) => {
                c.count += 1;
                c.mine |= r.user == user;
            }
            None => list.push(ReactionCount { emoji: r.emoji, count: 1, mine: r.user == user }),
        }
    }
    for m in messages.iter_mut() {
        if let Some(q) = m.reply.as_mut() {
            *q = Quote::of(q.seq, records.get(&q.seq), floor, ceiling, hidden.contains(&q.seq));
        }
        // A recalled message keeps no reactions on show.
        if let Some(c) = counts.remove(&m.seq).filter(|_| !m.recalled) {
            m.reactions = c;
        }
    }
    Ok(())
}
