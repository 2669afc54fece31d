//! The IM-Server node: configuration, start-up wiring, HTTP routes and the error mapping.
//!
//! # Layout
//!
//! - [`config`]: layered settings (defaults, TOML file, `IM__SECTION__KEY` environment).
//! - [`app`]: [`app::start`] opens storage, starts actors and binds the HTTP server.
//! - [`routes`]: `/healthz`, `/readyz` and `/api/v1` handlers, one module per area.
//! - [`auth`]: passwords, tokens and the [`auth::Authed`] extractor.
//! - [`error`]: [`error::ApiError`], the `{"error", "message"}` body every failure uses, with its
//!   code from `schema::error::ErrorCode`.
//! - [`openapi`]: the OpenAPI document and the frames' JSON Schema, generated from the code and
//!   served at `/api/v1/openapi.json` and `/api/v1/ws-schema.json`.
//! - [`events`]: pushes events to users' online devices.
//! - [`rich`]: what a `send` names (an upload, a message to forward) resolved for the owner, and
//!   history pages filled with quotes and reactions.
//! - [`logging`]: the logger (`env_logger`), text or JSON lines, the request id in scope.
//! - [`middleware`]: request ids and the access log, security headers, CORS.
//! - [`proxy`]: the client's address, from a trusted proxy's header or the peer.
//! - [`state`]: [`state::AppState`], what handlers share.
//! - [`tasks`]: periodic background work (sweepers).
//! - [`throttle`]: rate limits of login and registration, per client address and per account.
//! - [`blob`]: the blob store of upload bytes: one trait, local disk and S3-compatible storage.
//! - [`uploads`]: uploads' rules: sniffing, names, images, who may download, removal.
//! - [`ws`]: the `/ws` endpoint and the `WsSession` actor (one per connection).

pub mod app;
pub mod auth;
pub mod blob;
pub mod config;
pub mod error;
pub mod events;
pub mod logging;
pub mod middleware;
pub mod openapi;
pub mod proxy;
pub mod push;
pub mod rich;
pub mod routes;
pub mod state;
pub mod tasks;
pub mod throttle;
pub mod uploads;
pub mod ws;
