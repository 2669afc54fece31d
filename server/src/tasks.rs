//! Periodic background work of a node (sweepers).

use actix_web::web;

use crate::state::AppState;

/// Starts the node's periodic tasks on the current arbiter.
pub fn spawn_background(_state: &web::Data<AppState>) {}
