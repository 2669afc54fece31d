//! `Presence`: tells a user's friends when the user comes online (first device) or goes offline
//! (last device), wherever the friends are connected. It hears of every session coming and
//! going ([`SessionChange`]): on a single node it decides the transitions itself; in a cluster it
//! hands each change to the cluster presence task ([`crate::cluster::presence`]), where Redis
//! decides, and is told the result ([`PresenceChanged`]).

use actix::prelude::*;
use schema::db::friends;
use schema::protocol::ServerFrame;
use schema::UserId;

use crate::cluster::presence::PresenceTracker;
use crate::db::Db;
use crate::delivery::{DeliverToUsers, PresenceChanged, SessionChange};

/// The presence actor.
pub struct Presence {
    db: Db,
    deliver: Recipient<DeliverToUsers>,
    cluster: Option<PresenceTracker>,
}

impl Presence {
    /// Presence reading friend lists from `db` and delivering through `deliver` (the session
    /// registry); `cluster` is the cluster presence task, if any.
    pub fn new(db: Db, deliver: Recipient<DeliverToUsers>, cluster: Option<PresenceTracker>) -> Self {
        Presence { db, deliver, cluster }
    }

    fn announce(&self, user: UserId, online: bool) -> ResponseFuture<()> {
        let (db, deliver) = (self.db.clone(), self.deliver.clone());
        Box::pin(async move {
            let uid = user.0;
            let ids = match db.read(move |c| friends::friend_ids(c, uid)).await {
                Ok(ids) => ids,
                Err(e) => {
                    log::warn!("presence: cannot load friends of {uid}: {e}");
                    return;
                }
            };
            let frame = ServerFrame::Presence { user_id: user, online }.encode();
            let msg =
                DeliverToUsers { users: ids.into_iter().map(UserId).collect(), frame: frame.into(), cluster: true };
            if deliver.try_send(msg).is_err() {
                log::warn!("session registry overloaded; presence of {uid} not pushed");
            }
        })
    }
}

impl Actor for Presence {
    type Context = Context<Self>;
}

impl Handler<SessionChange> for Presence {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, msg: SessionChange, _: &mut Context<Self>) -> Self::Result {
        if let Some(tracker) = &self.cluster {
            tracker.push(msg);
            return Box::pin(async {});
        }
        match msg {
            SessionChange::Up { user, first_local: true, .. } => self.announce(user, true),
            SessionChange::Down { user, last_local: true, .. } => self.announce(user, false),
            _ => Box::pin(async {}),
        }
    }
}

impl Handler<PresenceChanged> for Presence {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, msg: PresenceChanged, _: &mut Context<Self>) -> Self::Result {
        self.announce(msg.user, msg.online)
    }
}
