//! [`Hub`]: the addresses of a node's actors and its shared services, cloned into every session
//! and handler. [`Hub::start`] starts the actors of a node.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use schema::Clock;

use crate::conversation::ConversationRegistry;
use crate::db::Db;
use crate::presence::{Presence, SetRegistry};
use crate::registry::SessionRegistry;
use crate::store::MessageStore;
use crate::writer::MessageWriter;

/// Chat rules and timings.
#[derive(Debug, Clone)]
pub struct ChatSettings {
    /// How long after sending a message its sender may recall it.
    pub recall_window: Duration,
    /// A conversation actor with no traffic for this long stops.
    pub conversation_idle: Duration,
    /// Name of this node (in `hello` frames).
    pub node_id: String,
    /// Most members a group may have.
    pub max_group_members: usize,
}

/// Everything a session or handler needs to reach the node's actors.
#[derive(Clone)]
pub struct Hub {
    pub db: Db,
    pub store: Arc<dyn MessageStore>,
    pub clock: Clock,
    pub settings: Arc<ChatSettings>,
    pub sessions: Addr<SessionRegistry>,
    pub conversations: Addr<ConversationRegistry>,
    pub presence: Addr<Presence>,
    pub writer: Addr<MessageWriter>,
}

impl Hub {
    /// Starts the node's actors on the current arbiter.
    pub fn start(db: Db, store: Arc<dyn MessageStore>, clock: Clock, settings: ChatSettings) -> Self {
        let presence = Presence::new(db.clone()).start();
        let sessions = SessionRegistry::new(presence.clone()).start();
        presence.do_send(SetRegistry(sessions.clone()));
        let writer = MessageWriter::new(store.clone(), db.clone()).start();
        let settings = Arc::new(settings);
        let conversations = ConversationRegistry::new(ConversationRegistry::deps(
            db.clone(),
            store.clone(),
            clock.clone(),
            settings.clone(),
            sessions.clone(),
            writer.clone(),
        ))
        .start();
        Hub { db, store, clock, settings, sessions, conversations, presence, writer }
    }
}
