//! `GET /api/v1/limits`: the server's chat limits that change what a client shows, so that it
//! need not hard-code them: how long a message can be recalled (the menu item goes away after),
//! how long a message may be, how large a group and a history page may be, how long a message can be edited and
//! which reactions there are, and what uploads may be. No sign-in needed.

use actix_web::{get, web, HttpResponse};
use serde::Serialize;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::state::AppState;

/// Routes of this module under `/api/v1`.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(limits);
}

/// The chat limits of this node.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Limits {
    /// How long a message can be recalled, seconds.
    pub recall_window_secs: u64,
    /// The longest message body, characters.
    pub max_message_chars: usize,
    /// The most members a group may have (owner included).
    pub max_group_members: usize,
    /// The largest history page (`limit`).
    pub max_page: i64,
    /// How long a message can be edited, seconds (0: edits are off).
    pub edit_window_secs: u64,
    /// The emoji a reaction may be, in the order to offer them.
    pub reactions: Vec<String>,
    /// The most different emoji one message may carry.
    pub max_reactions_per_message: usize,
    /// What `POST /api/v1/uploads` accepts.
    pub uploads: UploadLimits,
}

/// The limits of uploads (`[uploads]`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UploadLimits {
    /// The largest image, bytes.
    pub max_image_bytes: u64,
    /// The largest voice note, bytes.
    pub max_voice_bytes: u64,
    /// The largest other file, bytes.
    pub max_file_bytes: u64,
    /// The content types accepted (sniffed from the bytes).
    pub mime_types: Vec<String>,
}

/// `GET /limits`: the `[chat]` limits in force on this node.
#[utoipa::path(tag = "health", responses((status = 200, description = "The limits", body = Limits)))]
#[get("/limits")]
async fn limits(state: web::Data<AppState>) -> HttpResponse {
    let chat = &state.settings.chat;
    HttpResponse::Ok().json(Limits {
        recall_window_secs: chat.recall_window_secs,
        max_message_chars: chat.max_message_chars,
        max_group_members: chat.max_group_members,
        max_page: chat.max_page,
        edit_window_secs: chat.edit_window_secs,
        reactions: chat.reactions.clone(),
        max_reactions_per_message: chat.max_reactions_per_message,
        uploads: UploadLimits {
            max_image_bytes: state.settings.uploads.max_image_bytes,
            max_voice_bytes: state.settings.uploads.max_voice_bytes,
            max_file_bytes: state.settings.uploads.max_file_bytes,
            mime_types: crate::uploads::ALLOWED.iter().map(|m| (*m).to_owned()).collect(),
        },
    })
}
