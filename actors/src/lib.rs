//! IM-Server's actors: storage workers, message stores, and (as the product grows) the
//! registries, conversation and group actors, presence and the cluster bus. No HTTP here.
//!
//! # Layout
//!
//! - [`db`]: the `SqlStore` actor (Diesel on `SyncArbiter` threads) and [`db::Db`], its handle.
//! - [`store`]: the [`store::MessageStore`] interface with its SQL and MongoDB implementations.

pub mod db;
pub mod store;
