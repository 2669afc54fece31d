//! Conversations over HTTP: the list, opening one, settings, clearing and hiding, history pages
//! and delete-for-me. Messages themselves are sent over the WebSocket (`/ws`).

use actix_web::{delete, get, patch, post, web, HttpResponse};
use schema::db::{conversations as q, friends, users};
use schema::message::Page;
use schema::protocol::WireMessage;
use schema::{ConvId, ConvKind, UserId};
use serde::{Deserialize, Serialize};

use super::accounts::PublicUser;
use super::Items;
use crate::auth::Authed;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::state::AppState;
use crate::ws;

/// Routes of this module under `/api/v1`.
pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(list)
        .service(open)
        .service(update)
        .service(hide)
        .service(messages)
        .service(clear)
        .service(delete_message);
}

fn not_found() -> ApiError {
    ApiError::new(ErrorCode::ConversationNotFound, "no such conversation of yours")
}

/// A conversation id the caller may name: a 1:1 id including them, or a group id (whose
/// membership the state rows and [`ws::access`] check); 404 otherwise (also for forged ids).
fn peer_of(me: &Authed, conv: &str) -> ApiResult<(ConvId, Option<UserId>)> {
    let conv = ConvId(conv.to_owned());
    match conv.kind() {
        Some(ConvKind::Group(_)) => Ok((conv, None)),
        Some(ConvKind::Direct(..)) => {
            let peer = conv.peer_of(me.id()).ok_or_else(not_found)?;
            Ok((conv, Some(peer)))
        }
        None => Err(not_found()),
    }
}

/// The last message as the list shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LastMessageView {
    pub seq: i64,
    pub ts: i64,
    pub from: Option<i64>,
    /// The start of the text; `null` if recalled.
    pub preview: Option<String>,
}

/// One entry of my conversation list.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConversationView {
    pub conv: String,
    /// `direct` or `group`.
    #[schema(value_type = String, pattern = "^(direct|group)$")]
    pub kind: &'static str,
    pub peer: Option<PublicUser>,
    pub last_message: Option<LastMessageView>,
    pub max_seq: i64,
    pub read_seq: i64,
    pub unread: i64,
    pub pinned: bool,
    pub dnd: bool,
    /// A message since my read mark mentions me (groups).
    pub mentioned: bool,
    /// The group, for group conversations.
    pub group: Option<GroupRef>,
    /// 1:1 only (`null` for groups): the peer's read mark, so a client can show "read" ticks
    /// for messages whose receipts it was not online to get.
    pub peer_read_seq: Option<i64>,
    /// 1:1 only (`null` for groups): the peer's delivered mark (at least `peer_read_seq`).
    pub peer_delivered_seq: Option<i64>,
}

/// A group as the conversation list names it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GroupRef {
    pub id: i64,
    pub name: String,
    pub dissolved: bool,
}

async fn entries(state: &AppState, me: UserId, only: Option<String>) -> ApiResult<Vec<ConversationView>> {
    let rows = state
        .db
        .read(move |c| {
            let mut rows = q::list(c, me.0)?;
            if let Some(conv) = &only {
                rows.retain(|(s, _)| &s.conv_id == conv);
                if rows.is_empty() {
                    // Opened but empty conversations are listed too; fetch directly.
                    if let (Some(s), Some(cv)) = (q::state(c, me.0, conv)?, q::find(c, conv)?) {
                        rows.push((s, cv));
                    }
                }
            }
            let peers: Vec<i64> = rows.iter().filter_map(|(s, _)| s.peer_id).collect();
            let people = users::find_many(c, &peers)?;
            // The peers' marks, for ticks: (conv, read, delivered).
            let mut marks = Vec::new();
            for (s, _) in &rows {
                if let Some(peer) = s.peer_id {
                    if let Some(ps) = q::state(c, peer, &s.conv_id)? {
                        let read = ps.read_seq.max(ps.cleared_seq);
                        marks.push((s.conv_id.clone(), read, ps.delivered_seq.max(read)));
                    }
                }
            }
            let mut groups = Vec::new();
            for (s, cv) in &mut rows {
                if let Some(ConvKind::Group(g)) = ConvId(s.conv_id.clone()).kind() {
                    groups.extend(schema::db::groups::find(c, g.0)?);
                    // A member who left sees the group as it was when they left.
                    let left = q::visible_last_seq(c, me.0, cv)?;
                    if left < cv.last_seq {
                        // Nothing about later messages: not their preview, sender or time.
                        cv.last_seq = left;
                        cv.last_preview = None;
                        cv.last_sender_id = None;
                        cv.last_ts = 0;
                    }
                }
            }
            // Capped entries moved back in time: restore the list order.
            rows.sort_by(|(a, x), (b, y)| {
                (b.pinned, y.last_ts, y.created_at).cmp(&(a.pinned, x.last_ts, x.created_at))
            });
            Ok((rows, people, groups, marks))
        })
        .await?;
    let (rows, people, groups, marks) = rows;
    Ok(rows
        .into_iter()
        .map(|(s, cv)| {
            let peer = s.peer_id.and_then(|p| people.iter().find(|u| u.id == p)).map(PublicUser::from);
            let read = s.read_seq.max(s.cleared_seq);
            let direct = s.peer_id.is_some();
            let peer_marks = marks.iter().find(|(conv, ..)| *conv == s.conv_id);
            ConversationView {
                peer_read_seq: direct.then(|| peer_marks.map_or(0, |m| m.1)),
                peer_delivered_seq: direct.then(|| peer_marks.map_or(0, |m| m.2)),
                kind: if s.conv_id.starts_with("g:") { "group" } else { "direct" },
                peer,
                last_message: (cv.last_seq > s.cleared_seq).then(|| LastMessageView {
                    seq: cv.last_seq,
                    ts: cv.last_ts,
                    from: cv.last_sender_id,
                    preview: cv.last_preview.clone(),
                }),
                max_seq: cv.last_seq,
                read_seq: read,
                unread: q::unread_of(&s, cv.last_seq),
                pinned: s.pinned,
                dnd: s.dnd,
                mentioned: s.mention_seq > read,
                group: match ConvId(s.conv_id.clone()).kind() {
                    Some(ConvKind::Group(g)) => groups.iter().find(|x| x.id == g.0).map(|x| GroupRef {
                        id: x.id,
                        name: x.name.clone(),
                        dissolved: x.dissolved_at.is_some(),
                    }),
                    _ => None,
                },
                conv: s.conv_id,
            }
        })
        .collect())
}

/// `GET /conversations`: mine, pinned first, then by last message time.
#[utoipa::path(tag = "conversations", operation_id = "list_conversations", security(("bearer" = [])), responses(
    (status = 200, description = "My conversations", body = Items<ConversationView>)))]
#[get("/conversations")]
async fn list(state: web::Data<AppState>, me: Authed) -> ApiResult<HttpResponse> {
    let items = entries(&state, me.id(), None).await?;
    Ok(HttpResponse::Ok().json(Items { items }))
}

/// Body of `POST /conversations`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenBody {
    /// A friend.
    peer_user_id: i64,
}

crate::errors!(
    /// Errors of `POST /conversations`.
    OpenErrors: CannotChatSelf, NotFriends, ConversationNotFound
);

/// `POST /conversations` `{peer_user_id}`: opens (creates) the 1:1 conversation with a friend.
#[utoipa::path(tag = "conversations", security(("bearer" = [])), responses(
    (status = 200, description = "The conversation", body = ConversationView), OpenErrors))]
#[post("/conversations")]
async fn open(state: web::Data<AppState>, me: Authed, body: web::Json<OpenBody>) -> ApiResult<HttpResponse> {
    let (uid, peer) = (me.user.id, body.peer_user_id);
    if peer == uid {
        return Err(ApiError::new(ErrorCode::CannotChatSelf, "a conversation needs another user"));
    }
    let conv = ConvId::direct(UserId(uid), UserId(peer));
    let now = state.clock.now_ms();
    let c = conv.clone();
    let ok = state
        .db
        .write_retrying(move |db| {
            if !friends::are_friends(db, uid, peer)? {
                return Ok(false);
            }
            q::ensure(db, c.as_str(), &[(uid, Some(peer)), (peer, Some(uid))], now)?;
            // Opening a hidden conversation shows it again.
            q::unhide(db, uid, c.as_str())?;
            Ok(true)
        })
        .await?;
    if !ok {
        return Err(ApiError::new(ErrorCode::NotFriends, "only friends can chat"));
    }
    let entry = entries(&state, me.id(), Some(conv.0)).await?.into_iter().next().ok_or_else(not_found)?;
    Ok(HttpResponse::Ok().json(entry))
}

/// Body of `PATCH /conversations/{conv}`: the settings to change.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateBody {
    pinned: Option<bool>,
    /// Do-not-disturb: messages arrive flagged silent.
    dnd: Option<bool>,
}

crate::errors!(
    /// Errors of the `/conversations/{conv}` routes.
    ConversationErrors: ConversationNotFound
);

/// `PATCH /conversations/{conv}` `{pinned?, dnd?}`.
#[utoipa::path(tag = "conversations", operation_id = "update_conversation", security(("bearer" = [])), responses(
    (status = 200, description = "The conversation", body = ConversationView), ConversationErrors))]
#[patch("/conversations/{conv}")]
async fn update(
    state: web::Data<AppState>,
    me: Authed,
    path: web::Path<String>,
    body: web::Json<UpdateBody>,
) -> ApiResult<HttpResponse> {
    let (conv, peer) = peer_of(&me, &path)?;
    let (uid, c) = (me.user.id, conv.clone());
    let (pinned, dnd) = (body.pinned, body.dnd);
    if !state.db.write(move |db| q::update_settings(db, uid, c.as_str(), pinned, dnd)).await? {
        return Err(not_found());
    }
    if dnd.is_some() {
        match peer {
            Some(peer) => state.events.pair_changed(me.id(), peer).await,
            None => state.events.conversation_changed(conv.clone()).await,
        }
    }
    let entry = entries(&state, me.id(), Some(conv.0)).await?.into_iter().next().ok_or_else(not_found)?;
    Ok(HttpResponse::Ok().json(entry))
}

/// `DELETE /conversations/{conv}`: hides it from my list until a new message arrives.
#[utoipa::path(tag = "conversations", security(("bearer" = [])), responses(
    (status = 204, description = "Hidden"), ConversationErrors))]
#[delete("/conversations/{conv}")]
async fn hide(state: web::Data<AppState>, me: Authed, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let (conv, _) = peer_of(&me, &path)?;
    let uid = me.user.id;
    if !state.db.write(move |db| q::hide(db, uid, conv.as_str())).await? {
        return Err(not_found());
    }
    Ok(HttpResponse::NoContent().finish())
}

/// My history of a conversation was cleared up to here.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Cleared {
    /// Messages up to this seq are gone for me.
    cleared_seq: i64,
}

/// `DELETE /conversations/{conv}/messages`: clears my history (a per-user watermark).
#[utoipa::path(tag = "conversations", security(("bearer" = [])), responses(
    (status = 200, description = "Cleared", body = Cleared), ConversationErrors))]
#[delete("/conversations/{conv}/messages")]
async fn clear(state: web::Data<AppState>, me: Authed, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let (conv, _) = peer_of(&me, &path)?;
    let uid = me.user.id;
    let mark = state.db.write(move |db| q::clear_history(db, uid, conv.as_str())).await?.ok_or_else(not_found)?;
    Ok(HttpResponse::Ok().json(Cleared { cleared_seq: mark }))
}

/// `?after_seq=|before_seq=&limit=` of a history page.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Messages after this seq, oldest first (>= 0).
    after_seq: Option<i64>,
    /// Messages before this seq (>= 1); the newest page when neither is given.
    before_seq: Option<i64>,
    /// 1 to `chat.max_page` (default 50).
    limit: Option<i64>,
}

/// A page of history.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HistoryPage {
    conv: ConvId,
    /// In seq order.
    messages: Vec<WireMessage>,
    /// More messages follow in the direction of the page.
    has_more: bool,
    /// The newest seq I may read.
    max_seq: i64,
}

crate::errors!(
    /// Errors of `GET /conversations/{conv}/messages`.
    MessagesErrors: ConversationNotFound, UnknownConversation, InvalidLimit, InvalidPage
);

/// `GET /conversations/{conv}/messages?after_seq=|before_seq=&limit=`: a page in seq order.
#[utoipa::path(tag = "conversations", security(("bearer" = [])), params(PageQuery), responses(
    (status = 200, description = "A page of messages", body = HistoryPage), MessagesErrors))]
#[get("/conversations/{conv}/messages")]
async fn messages(
    state: web::Data<AppState>,
    me: Authed,
    path: web::Path<String>,
    query: web::Query<PageQuery>,
) -> ApiResult<HttpResponse> {
    let (conv, _) = peer_of(&me, &path)?;
    let max = state.settings.chat.max_page;
    let limit = query.limit.unwrap_or(50);
    if !(1..=max).contains(&limit) {
        return Err(ApiError::new(ErrorCode::InvalidLimit, format!("limit must be between 1 and {max}")));
    }
    let page = match (query.after_seq, query.before_seq) {
        (Some(a), None) if a >= 0 => Page::After(a),
        (None, Some(b)) if b >= 1 => Page::Before(b),
        (None, None) => Page::Before(i64::MAX),
        _ => {
            return Err(ApiError::new(
                ErrorCode::InvalidPage,
                "give at most one of after_seq (>= 0) and before_seq (>= 1)",
            ))
        }
    };
    let h = ws::history(&state.hub, me.id(), conv, page, limit).await.map_err(chat_error)?;
    Ok(HttpResponse::Ok().json(HistoryPage {
        conv: h.conv,
        messages: h.messages,
        has_more: h.has_more,
        max_seq: h.max_seq,
    }))
}

crate::errors!(
    /// Errors of `DELETE /conversations/{conv}/messages/{seq}`.
    DeleteMessageErrors: ConversationNotFound, UnknownConversation, MessageNotFound
);

/// `DELETE /conversations/{conv}/messages/{seq}`: delete-for-me.
#[utoipa::path(tag = "conversations", security(("bearer" = [])), responses(
    (status = 204, description = "Hidden for me"), DeleteMessageErrors))]
#[delete("/conversations/{conv}/messages/{seq}")]
async fn delete_message(
    state: web::Data<AppState>,
    me: Authed,
    path: web::Path<(String, i64)>,
) -> ApiResult<HttpResponse> {
    let (conv, seq) = path.into_inner();
    let (conv, _) = peer_of(&me, &conv)?;
    ws::hide_message(&state.hub, me.id(), conv, seq).await.map_err(chat_error)?;
    Ok(HttpResponse::NoContent().finish())
}

/// Maps a chat error to HTTP (its code with [`ChatError::status`](actors::command::ChatError::status)).
pub fn chat_error(e: actors::command::ChatError) -> ApiError {
    e.into()
}
