//! `GET /api/v1/limits`: the server's chat limits that change what a client shows, so that it
//! need not hard-code them: how long a message can be recalled (the menu item goes away after),
//! how long a message may be, how large a group and a history page may be. No sign-in needed.

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::state::AppState;

/// Routes of this module under `/api/v1`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/limits", web::get().to(limits));
}

/// `GET /limits`: the `[chat]` limits in force on this node.
async fn limits(state: web::Data<AppState>) -> HttpResponse {
    let chat = &state.settings.chat;
    HttpResponse::Ok().json(json!({
        "recall_window_secs": chat.recall_window_secs,
        "max_message_chars": chat.max_message_chars,
        "max_group_members": chat.max_group_members,
        "max_page": chat.max_page,
        "edit_window_secs": chat.edit_window_secs,
        "reactions": chat.reactions,
        "max_reactions_per_message": chat.max_reactions_per_message,
    }))
}
