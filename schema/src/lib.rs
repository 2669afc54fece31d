//! The shape of IM-Server's data: ids, time, the SQL schema with its models and queries, and the
//! stored message. No actix here; everything is plain data and blocking Diesel code.
//!
//! # Layout
//!
//! - [`ids`]: newtype ids (`UserId`, `ConvId`, ...) and the conversation-id format.
//! - [`clock`]: the millisecond clock every time rule reads (tests move it).
//! - [`error`]: [`error::ErrorCode`], every stable error code of HTTP responses and WebSocket
//!   `error` frames, with its HTTP status.
//! - [`db`]: the connection enum over SQLite and PostgreSQL, the pool, embedded migrations, and one
//!   query module per area (`users`, `devices`, `friends`, `messages`, `conversations`, `groups`,
//!   `owners`: the fencing epochs of conversation owners), the models and the portable `schema`,
//!   and throw-away test databases (`scratch`).
//! - [`message`]: the stored message record shared by the SQL and MongoDB message stores, append
//!   outcomes and the owner epoch a batch is fenced with.
//! - [`protocol`]: the WebSocket frames in both directions, and their JSON Schema
//!   ([`protocol::frames_schema`]).

pub mod clock;
pub mod db;
pub mod error;
pub mod ids;
pub mod message;
pub mod protocol;

pub use clock::Clock;
pub use ids::{CategoryId, ConvId, ConvKind, DeviceId, GroupId, NodeId, RequestId, UserId};
