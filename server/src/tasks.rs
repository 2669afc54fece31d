//! Periodic background work of a node (sweepers).

use std::time::Duration;

use actix_web::web;

use crate::routes::friends::rules;
use crate::state::AppState;

/// Starts the node's periodic tasks on the current arbiter.
pub fn spawn_background(state: &web::Data<AppState>) {
    let state_ = state.clone();
    actix_web::rt::spawn(async move {
        let state = state_;
        let mut tick = actix_web::rt::time::interval(Duration::from_secs(state.settings.friends.sweep_interval_secs));
        loop {
            tick.tick().await;
            sweep_friend_requests(&state).await;
        }
    });
    let state_ = state.clone();
    actix_web::rt::spawn(async move {
        let state = state_;
        let mut tick = actix_web::rt::time::interval(Duration::from_secs(state.settings.uploads.sweep_interval_secs));
        loop {
            tick.tick().await;
            crate::uploads::sweep(&state).await;
        }
    });
}

/// Stores `expired` on friend requests past their age (lists show them expired before this).
pub async fn sweep_friend_requests(state: &AppState) -> usize {
    let rules = rules(state);
    match state.db.write(move |c| schema::db::friends::sweep_expired(c, &rules)).await {
        Ok(n) => {
            if n > 0 {
                log::info!("expired {n} friend requests");
            }
            n
        }
        Err(e) => {
            log::warn!("friend request sweep failed: {e}");
            0
        }
    }
}
