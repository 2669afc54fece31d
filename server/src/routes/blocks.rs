//! Blocks: `PUT/DELETE /api/v1/blocks/{user_id}` and the block list `GET /api/v1/blocks`.
//!
//! A block ends the pair's friendship at once (the blocked user is told `friend_removed`, as
//! for any unfriending, and nothing more), so every friends-only rule refuses them with the
//! answer any non-friend gets; their friend requests are kept as ignored and never reach the
//! blocker. The rules live in `schema::db::blocks`.

use actix_web::{delete, get, put, web, HttpResponse};
use schema::db::blocks as q;
use schema::UserId;
use serde::Serialize;
use serde_json::json;

use super::accounts::PublicUser;
use super::{PageParams, Paged};
use crate::auth::Authed;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::state::AppState;

/// Routes of this module under `/api/v1`.
pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(block_user).service(unblock_user).service(list_blocks);
}

/// A blocked user as the block list shows them.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BlockView {
    /// The blocked user's public profile.
    pub user: PublicUser,
    /// When the block was made (ms since the epoch).
    pub blocked_at: i64,
}

crate::errors!(
    /// Errors of `PUT /blocks/{user_id}`.
    BlockErrors: CannotBlockSelf, UserNotFound
);

/// `PUT /blocks/{user_id}`: blocks a user (idempotent; a repeated block keeps the first time).
#[utoipa::path(tag = "friends", security(("bearer" = [])), responses(
    (status = 204, description = "Blocked (or was already)"), BlockErrors))]
#[put("/blocks/{user_id}")]
async fn block_user(state: web::Data<AppState>, me: Authed, path: web::Path<i64>) -> ApiResult<HttpResponse> {
    let (uid, other) = (me.user.id, path.into_inner());
    if uid == other {
        return Err(ApiError::new(ErrorCode::CannotBlockSelf, "you cannot block yourself"));
    }
    // Exists, or 404 user_not_found.
    crate::auth::load_user(&state, UserId(other)).await?;
    let now = state.clock.now_ms();
    let done = state.db.write_retrying(move |c| q::block(c, uid, other, now)).await?;
    if done.unfriended {
        state.events.push(UserId(other), "friend_removed", json!({"user_id": uid}));
    }
    if done.created {
        // The 1:1 conversation's owner (on whichever node) re-reads the friendship.
        state.events.pair_changed(UserId(uid), UserId(other)).await;
    }
    Ok(HttpResponse::NoContent().finish())
}

/// `DELETE /blocks/{user_id}`: lifts a block (idempotent). The friendship is not restored.
#[utoipa::path(tag = "friends", security(("bearer" = [])), responses(
    (status = 204, description = "Not blocked (any more)")))]
#[delete("/blocks/{user_id}")]
async fn unblock_user(state: web::Data<AppState>, me: Authed, path: web::Path<i64>) -> ApiResult<HttpResponse> {
    let (uid, other) = (me.user.id, path.into_inner());
    let now = state.clock.now_ms();
    state.db.write_retrying(move |c| q::unblock(c, uid, other, now)).await?;
    Ok(HttpResponse::NoContent().finish())
}

crate::errors!(
    /// Errors of `GET /blocks`.
    ListBlocksErrors: InvalidPage, InvalidSize
);

/// `GET /blocks?page=&size=`: the users I blocked, newest block first.
#[utoipa::path(tag = "friends", security(("bearer" = [])), params(PageParams), responses(
    (status = 200, description = "A page of blocked users", body = Paged<BlockView>), ListBlocksErrors))]
#[get("/blocks")]
async fn list_blocks(
    state: web::Data<AppState>,
    me: Authed,
    params: web::Query<PageParams>,
) -> ApiResult<HttpResponse> {
    let (page, size) = params.into_inner().resolve()?;
    let uid = me.user.id;
    let rows = state.db.read(move |c| q::list(c, uid, (page - 1) * size, size + 1)).await?;
    let items = rows.iter().map(|(at, u)| BlockView { user: u.into(), blocked_at: *at }).collect();
    Ok(HttpResponse::Ok().json(Paged::from_rows(items, page, size)))
}
