//! Multi-node tests: separate `im-server` processes on one PostgreSQL database, a real Redis
//! between them and nginx in front. Needs PostgreSQL (IM_TEST_POSTGRES_URL or 127.0.0.1:5432),
//! `redis-server` and `nginx` binaries (scripts/services.sh installs them).

#[allow(dead_code, unused_imports)]
#[path = "../api/conformance.rs"]
mod conformance;
#[allow(dead_code, unused_imports)]
#[path = "../api/helpers.rs"]
mod helpers;
#[allow(dead_code, unused_imports)]
#[path = "../api/push_receiver.rs"]
mod push_receiver;
#[allow(dead_code, unused_imports)]
#[path = "../api/ws_client.rs"]
mod ws_client;

mod blocks;
mod client;
mod cross_node;
mod faults;
mod harness;
mod ownership;
mod push;
mod rich;
