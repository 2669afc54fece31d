//! `Presence`: tells a user's friends when the user comes online (first device) or goes offline
//! (last device), wherever the friends are connected. On one node the registry decides the
//! transitions; in a cluster, Redis does ([`crate::cluster::presence`]).

use actix::prelude::*;
use schema::db::friends;
use schema::protocol::ServerFrame;
use schema::UserId;

use crate::db::Db;
use crate::registry::{DeliverToUsers, SessionRegistry};

/// A user's online state changed on this node.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct PresenceChanged {
    pub user: UserId,
    pub online: bool,
}

/// Where presence frames go (set once the registry exists).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetRegistry(pub Addr<SessionRegistry>);

/// The presence actor.
pub struct Presence {
    db: Db,
    registry: Option<Addr<SessionRegistry>>,
}

impl Presence {
    /// A presence actor reading friend lists from `db`.
    pub fn new(db: Db) -> Self {
        Presence { db, registry: None }
    }
}

impl Actor for Presence {
    type Context = Context<Self>;
}

impl Handler<SetRegistry> for Presence {
    type Result = ();

    fn handle(&mut self, msg: SetRegistry, _: &mut Context<Self>) {
        self.registry = Some(msg.0);
    }
}

impl Handler<PresenceChanged> for Presence {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, msg: PresenceChanged, _: &mut Context<Self>) -> Self::Result {
        let db = self.db.clone();
        let registry = self.registry.clone();
        Box::pin(async move {
            let uid = msg.user.0;
            let ids = match db.read(move |c| friends::friend_ids(c, uid)).await {
                Ok(ids) => ids,
                Err(e) => {
                    log::warn!("presence: cannot load friends of {uid}: {e}");
                    return;
                }
            };
            if let Some(r) = registry {
                let frame = ServerFrame::Presence { user_id: msg.user, online: msg.online }.encode();
                let msg =
                    DeliverToUsers { users: ids.into_iter().map(UserId).collect(), frame: frame.into(), cluster: true };
                if r.try_send(msg).is_err() {
                    log::warn!("session registry overloaded; presence of {uid} not pushed");
                }
            }
        })
    }
}
