//! IM-Server's actors: storage workers, message stores, the session and conversation
//! registries, conversation actors, group commit and presence. No HTTP here.
//!
//! # Layout
//!
//! - [`db`]: the `SqlStore` actor (Diesel on `SyncArbiter` threads) and [`db::Db`], its handle.
//! - [`store`]: the [`store::MessageStore`] interface with its SQL and MongoDB implementations.
//! - [`writer`]: `MessageWriter`, group commit of sequenced messages.
//! - [`sequencer`]: seq assignment, dedup window and in-order delivery shared by conversation
//!   and group actors.
//! - [`registry`]: `SessionRegistry`, user -> device -> session, and bounded local delivery.
//! - [`conversation`]: `ConversationRegistry` and `ConversationActor` (1:1 chats).
//! - [`group`]: `GroupActor` (group chats: members, roles, mute rules, fan-out, system messages).
//! - [`presence`]: `Presence`, online/offline frames to friends.
//! - [`hub`]: [`hub::Hub`], the addresses of a node's actors, and [`hub::Hub::start`].

pub mod cluster;
pub mod conversation;
pub mod db;
pub mod group;
pub mod hub;
pub mod metrics;
pub mod presence;
pub mod registry;
pub mod sequencer;
pub mod store;
pub mod writer;
