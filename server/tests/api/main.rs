//! HTTP integration tests: each test starts the real server (the production wiring of
//! `server::app::start`) on port 0 with its own scratch database, and talks to it over HTTP.
//! Every test runs against SQLite and against PostgreSQL.

mod accounts;
mod admin;
mod authz;
mod blob_store;
mod blocks;
mod chat;
mod chat_limits;
mod conformance;
mod contract;
mod crash;
mod friends;
mod groups;
mod hardening;
mod helpers;
mod logs;
mod process;
mod push;
mod push_receiver;
mod rich;
mod search;
mod uploads;
mod web;
mod ws_client;
