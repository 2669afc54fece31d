//! What every request handler shares: config, database, message store, clock, event hooks.

use std::sync::Arc;

use actors::db::Db;
use actors::hub::Hub;
use actors::store::MessageStore;
use schema::Clock;

use crate::config::Settings;
use crate::events::Events;

/// Shared application state (behind `web::Data`).
pub struct AppState {
    /// The effective configuration.
    pub settings: Settings,
    /// The SQL database (Diesel workers).
    pub db: Db,
    /// Where chat messages are persisted.
    pub store: Arc<dyn MessageStore>,
    /// The clock time rules read.
    pub clock: Clock,
    /// The node's actors.
    pub hub: Hub,
    /// Where user-facing events (friend requests, ...) are pushed.
    pub events: Events,
    /// A bcrypt hash at the configured cost, checked when a login names no known user.
    pub dummy_hash: String,
    /// Rate limits of login and registration.
    pub throttle: crate::throttle::Throttle,
    /// Whose forwarding header names the client's address.
    pub proxies: crate::proxy::TrustedProxies,
    /// Where the bytes of uploads are kept (`[uploads]`).
    pub blobs: Arc<dyn crate::blob::BlobStore>,
    /// Push notifications to offline users' devices (`[push]`).
    pub push: crate::push::PushService,
}
