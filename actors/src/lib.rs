//! IM-Server's actors: storage workers, message stores, the session registry, the owners of
//! conversations and groups (one per conversation in the whole cluster) and their registry,
//! group commit, presence, and the cluster link over Redis. No HTTP here.
//!
//! # Layout
//!
//! Bottom modules (messages and plain types; they import no actor):
//! - [`command`]: the [`command::Command`] every conversation owner executes, its
//!   [`command::Reply`], [`command::ChatError`] with the stable codes, [`command::GroupOp`].
//! - [`delivery`]: frames, kicks and delivery requests for sessions, and session comings and
//!   goings ([`delivery::SessionChange`]); [`delivery::Sessions`], the recipients owners deliver
//!   through.
//! - [`placement`]: rendezvous hashing of conversations over live nodes (pure).
//! - [`metrics`]: the node's counters and histograms.
//!
//! Storage:
//! - [`db`]: the `SqlStore` actor (Diesel on `SyncArbiter` threads) and [`db::Db`], its handle.
//! - [`store`]: the [`store::MessageStore`] interface with its SQL and MongoDB implementations,
//!   fenced by owner epochs.
//! - [`writer`]: `MessageWriter`, group commit of sequenced messages.
//!
//! Conversation owners:
//! - [`sequencer`]: dedup window, seq assignment and in-order delivery (pure core + helpers).
//! - [`owner`]: what both kinds of owner share: settings, dependencies, life cycle.
//! - [`conversation`]: `ConversationActor`, the owner of a 1:1 conversation.
//! - [`group`]: `GroupActor`, the owner of a group, and [`group::plan`], the change planner (pure).
//! - [`entity`]: the entity registry: finds or starts the one owner of a conversation, routes
//!   commands to it locally or on another node, passivates and hands over.
//!
//! Sessions and presence:
//! - [`registry`]: `SessionRegistry`, user -> device -> session, and bounded local delivery.
//! - [`presence`]: `Presence`, online/offline frames to friends.
//!
//! The cluster ([`cluster`]): `envelope`, `outbox`, `subscriber`, `presence` (Redis presence,
//! heartbeat and lease), `directory` (owner records and epochs), `view` (live nodes, lease).
//!
//! - [`hub`]: [`hub::Hub`], a node's actors and services, and [`hub::Hub::start`], which wires
//!   them (the only module that knows every other).

pub mod cluster;
pub mod command;
pub mod conversation;
pub mod db;
pub mod delivery;
pub mod entity;
pub mod group;
pub mod hub;
pub mod metrics;
pub mod owner;
pub mod placement;
pub mod presence;
pub mod push;
pub mod registry;
pub mod sequencer;
pub mod store;
pub mod writer;
