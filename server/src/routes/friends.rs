//! Friends: requests with a verification message, the friend list, categories, per-friend
//! remark / category / do-not-disturb. The rules live in `schema::db::friends`; handlers
//! validate input, run one transaction, map refusals to codes and push events.

use actix_web::{web, HttpResponse};
use schema::db::friends::{
    self as q, Answer, AnswerRefusal, CategoryRefusal, Direction, FriendRefusal, FriendUpdate, RequestRules,
    SendRefusal, Sent,
};
use schema::db::models::{Category, FriendRequest, Friendship, User};
use schema::UserId;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::accounts::PublicUser;
use super::{PageParams, Paged};
use crate::auth::Authed;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Longest verification message (characters).
pub const REQUEST_MESSAGE_MAX: usize = 200;
/// Category name length bounds (characters).
pub const CATEGORY_NAME_LEN: std::ops::RangeInclusive<usize> = 1..=32;
/// Longest remark (characters).
pub const REMARK_MAX: usize = 64;

/// Routes of this module under `/api/v1`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/friend/request", web::post().to(send_request))
        .route("/friend/requests", web::get().to(list_requests))
        .route("/friend/request/{id}", web::put().to(answer_request))
        .route("/friend/categories", web::get().to(list_categories))
        .route("/friend/categories", web::post().to(create_category))
        .route("/friend/categories/{id}", web::patch().to(rename_category))
        .route("/friend/categories/{id}", web::delete().to(delete_category))
        .route("/friends", web::get().to(list_friends))
        .route("/friends/{user_id}", web::get().to(get_friend))
        .route("/friends/{user_id}", web::patch().to(update_friend))
        .route("/friends/{user_id}", web::delete().to(delete_friend));
}

/// The request rules in force now.
pub fn rules(state: &AppState) -> RequestRules {
    RequestRules {
        now: state.clock.now_ms(),
        ttl_ms: state.settings.friends.request_ttl_secs * 1000,
        cooldown_ms: state.settings.friends.request_cooldown_secs * 1000,
    }
}

/// A friend request as one of its two users sees it.
#[derive(Debug, Serialize)]
pub struct RequestView {
    pub id: i64,
    pub from_user_id: i64,
    pub to_user_id: i64,
    pub message: String,
    /// `pending`, `ignored` (recipient only), `accepted`, `rejected` or `expired`.
    pub status: &'static str,
    pub created_at: i64,
    pub updated_at: i64,
    /// When a still-open request expires.
    pub expires_at: i64,
    /// The other user's public profile.
    pub user: PublicUser,
}

impl RequestView {
    fn new(r: &FriendRequest, other: &User, viewer: i64, rules: &RequestRules) -> Self {
        RequestView {
            id: r.id,
            from_user_id: r.from_user_id,
            to_user_id: r.to_user_id,
            message: r.message.clone(),
            status: q::effective_status(r, rules, r.from_user_id == viewer),
            created_at: r.created_at,
            // The sender is not told that the recipient ignored the request.
            updated_at: if r.status == q::status::IGNORED && r.from_user_id == viewer {
                r.created_at
            } else {
                r.updated_at
            },
            expires_at: r.created_at + rules.ttl_ms,
            user: other.into(),
        }
    }
}

/// A category with its id and name.
#[derive(Debug, Serialize)]
pub struct CategoryRef {
    pub id: i64,
    pub name: String,
}

/// A friend as the list shows them.
#[derive(Debug, Serialize)]
pub struct FriendView {
    pub user: PublicUser,
    pub remark: Option<String>,
    pub category: CategoryRef,
    /// When the friendship began.
    pub since: i64,
    /// Do-not-disturb: this friend's messages arrive flagged silent.
    pub dnd: bool,
    /// Online state: any device of the friend connected.
    pub online: Option<bool>,
}

impl FriendView {
    fn new((f, u, cat): &(Friendship, User, String)) -> Self {
        FriendView {
            user: u.into(),
            remark: f.remark.clone(),
            category: CategoryRef { id: f.category_id, name: cat.clone() },
            since: f.created_at,
            dnd: f.dnd,
            online: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SendBody {
    to_user_id: i64,
    #[serde(default)]
    message: String,
}

/// `POST /friend/request`: 201 with the pending request, or 200 with `status: accepted` when the
/// target had already asked the caller (the two are friends at once).
async fn send_request(state: web::Data<AppState>, me: Authed, body: web::Json<SendBody>) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    let message = body.message.trim().to_owned();
    if message.chars().count() > REQUEST_MESSAGE_MAX {
        return Err(ApiError::invalid("invalid_message", "message must be at most 200 characters"));
    }
    let rules = rules(&state);
    let (from, to) = (me.user.id, body.to_user_id);
    let res = state.db.write_retrying(move |c| q::send_request(c, from, to, &message, &rules)).await;
    let sent = match res {
        Ok(Ok(s)) => s,
        Ok(Err(SendRefusal::SelfRequest)) => {
            return Err(ApiError::bad_request("cannot_friend_self", "you cannot send a friend request to yourself"))
        }
        Ok(Err(SendRefusal::UserNotFound)) => return Err(ApiError::not_found("user_not_found", "no such user")),
        Ok(Err(SendRefusal::AlreadyFriends)) => {
            return Err(ApiError::conflict("already_friends", "you are friends already"))
        }
        Ok(Err(SendRefusal::TooSoon(ms))) => {
            return Err(ApiError::too_many(
                "request_too_soon",
                "one request to the same user per 24 hours",
                (ms + 999) / 1000,
            ))
        }
        // The one-pending-request index caught a concurrent duplicate of this very request.
        Err(e) if e.is_unique_violation() => {
            return Err(ApiError::too_many(
                "request_too_soon",
                "a request to this user was just sent",
                state.settings.friends.request_cooldown_secs,
            ))
        }
        Err(e) => return Err(e.into()),
    };
    let target = crate::auth::load_user(&state, UserId(to)).await?;
    match sent {
        Sent::Pending(r) => {
            let for_target = RequestView::new(&r, &me.user, to, &rules);
            state.events.push(UserId(to), "friend_request", json!(for_target));
            Ok(HttpResponse::Created().json(RequestView::new(&r, &target, from, &rules)))
        }
        Sent::Befriended(r) => {
            state.events.push(UserId(to), "friend_accepted", json!({"user": PublicUser::from(&me.user)}));
            state.events.push(UserId(from), "friend_accepted", json!({"user": PublicUser::from(&target)}));
            state.events.pair_changed(UserId(from), UserId(to)).await;
            Ok(HttpResponse::Ok().json(RequestView::new(&r, &target, from, &rules)))
        }
    }
}

#[derive(Debug, Deserialize)]
struct ListRequestsParams {
    direction: Option<String>,
    status: Option<String>,
    page: Option<i64>,
    size: Option<i64>,
}

/// `GET /friend/requests?direction=incoming|outgoing&status=...&page=&size=`: newest first.
async fn list_requests(
    state: web::Data<AppState>,
    me: Authed,
    params: web::Query<ListRequestsParams>,
) -> ApiResult<HttpResponse> {
    let params = params.into_inner();
    let (page, size) = PageParams { page: params.page, size: params.size }.resolve()?;
    let direction = match params.direction.as_deref() {
        None | Some("incoming") => Direction::Incoming,
        Some("outgoing") => Direction::Outgoing,
        Some(_) => return Err(ApiError::bad_request("invalid_direction", "direction must be incoming or outgoing")),
    };
    let status: Option<&'static str> = match params.status.as_deref() {
        None => None,
        Some("pending") => Some(q::status::PENDING),
        Some("ignored") => Some(q::status::IGNORED),
        Some("accepted") => Some(q::status::ACCEPTED),
        Some("rejected") => Some(q::status::REJECTED),
        Some("expired") => Some(q::status::EXPIRED),
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_status",
                "status must be pending, ignored, accepted, rejected or expired",
            ))
        }
    };
    let rules = rules(&state);
    let uid = me.user.id;
    let rows = state
        .db
        .read(move |c| q::list_requests(c, uid, direction, status, &rules, (page - 1) * size, size + 1))
        .await?;
    let items: Vec<RequestView> = rows.iter().map(|(r, u)| RequestView::new(r, u, uid, &rules)).collect();
    Ok(HttpResponse::Ok().json(Paged::from_rows(items, page, size)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AnswerBody {
    action: String,
    category_id: Option<i64>,
    remark: Option<String>,
}

/// `PUT /friend/request/{id}` `{action: accept|reject|ignore, category_id?, remark?}`.
async fn answer_request(
    state: web::Data<AppState>,
    me: Authed,
    path: web::Path<i64>,
    body: web::Json<AnswerBody>,
) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    let answer = match body.action.as_str() {
        "accept" => Answer::Accept { category_id: body.category_id, remark: check_remark(body.remark)? },
        "reject" => Answer::Reject,
        "ignore" => Answer::Ignore,
        _ => return Err(ApiError::bad_request("invalid_action", "action must be accept, reject or ignore")),
    };
    let rules = rules(&state);
    let (uid, id) = (me.user.id, path.into_inner());
    let accepted = matches!(answer, Answer::Accept { .. });
    let res = state.db.write_retrying(move |c| q::answer_request(c, uid, id, &answer, &rules)).await?;
    let req = match res {
        Ok(r) => r,
        Err(AnswerRefusal::NotFound) => {
            return Err(ApiError::not_found("request_not_found", "no such request addressed to you"))
        }
        Err(AnswerRefusal::NotPending(s)) => {
            return Err(ApiError::conflict("request_not_pending", format!("the request is {s}, not pending")))
        }
        Err(AnswerRefusal::CategoryNotFound) => {
            return Err(ApiError::not_found("category_not_found", "no such category of yours"))
        }
    };
    let sender = crate::auth::load_user(&state, UserId(req.from_user_id)).await?;
    if accepted {
        state.events.pair_changed(me.id(), UserId(req.from_user_id)).await;
        state.events.push(
            UserId(req.from_user_id),
            "friend_accepted",
            json!({"user": PublicUser::from(&me.user), "request_id": req.id}),
        );
    }
    Ok(HttpResponse::Ok().json(RequestView::new(&req, &sender, uid, &rules)))
}

fn check_remark(remark: Option<String>) -> ApiResult<Option<String>> {
    let remark = remark.map(|r| r.trim().to_owned()).filter(|r| !r.is_empty());
    if remark.as_ref().is_some_and(|r| r.chars().count() > REMARK_MAX) {
        return Err(ApiError::invalid("invalid_remark", "remark must be at most 64 characters"));
    }
    Ok(remark)
}

fn check_category_name(name: &str) -> ApiResult<String> {
    let name = name.trim();
    if !CATEGORY_NAME_LEN.contains(&name.chars().count()) || name.chars().any(char::is_control) {
        return Err(ApiError::invalid("invalid_name", "name must be 1-32 characters"));
    }
    Ok(name.to_owned())
}

#[derive(Debug, Serialize)]
struct CategoryView {
    id: i64,
    name: String,
    is_default: bool,
    count: i64,
    created_at: i64,
}

impl CategoryView {
    fn new(c: &Category, count: i64) -> Self {
        CategoryView { id: c.id, name: c.name.clone(), is_default: c.is_default, count, created_at: c.created_at }
    }
}

/// `GET /friend/categories`: mine, default first, with friend counts.
async fn list_categories(state: web::Data<AppState>, me: Authed) -> ApiResult<HttpResponse> {
    let uid = me.user.id;
    let rows = state.db.read(move |c| q::list_categories(c, uid)).await?;
    let items: Vec<CategoryView> = rows.iter().map(|(c, n)| CategoryView::new(c, *n)).collect();
    Ok(HttpResponse::Ok().json(json!({ "items": items })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CategoryBody {
    name: String,
}

fn category_refusal(r: CategoryRefusal) -> ApiError {
    match r {
        CategoryRefusal::NotFound => ApiError::not_found("category_not_found", "no such category of yours"),
        CategoryRefusal::NameTaken => ApiError::conflict("category_exists", "you have a category of that name"),
        CategoryRefusal::IsDefault => {
            ApiError::bad_request("cannot_delete_default", "the default category cannot be deleted")
        }
    }
}

/// `POST /friend/categories` `{name}`.
async fn create_category(
    state: web::Data<AppState>,
    me: Authed,
    body: web::Json<CategoryBody>,
) -> ApiResult<HttpResponse> {
    let name = check_category_name(&body.name)?;
    let (uid, now) = (me.user.id, state.clock.now_ms());
    let res = state.db.write(move |c| q::create_category(c, uid, &name, now)).await;
    match res {
        Ok(Ok(c)) => Ok(HttpResponse::Created().json(CategoryView::new(&c, 0))),
        Ok(Err(r)) => Err(category_refusal(r)),
        Err(e) if e.is_unique_violation() => Err(category_refusal(CategoryRefusal::NameTaken)),
        Err(e) => Err(e.into()),
    }
}

/// `PATCH /friend/categories/{id}` `{name}`.
async fn rename_category(
    state: web::Data<AppState>,
    me: Authed,
    path: web::Path<i64>,
    body: web::Json<CategoryBody>,
) -> ApiResult<HttpResponse> {
    let name = check_category_name(&body.name)?;
    let (uid, id) = (me.user.id, path.into_inner());
    let res = state.db.write(move |c| q::rename_category(c, uid, id, &name)).await;
    match res {
        Ok(Ok(c)) => Ok(HttpResponse::Ok()
            .json(json!({"id": c.id, "name": c.name, "is_default": c.is_default, "created_at": c.created_at}))),
        Ok(Err(r)) => Err(category_refusal(r)),
        Err(e) if e.is_unique_violation() => Err(category_refusal(CategoryRefusal::NameTaken)),
        Err(e) => Err(e.into()),
    }
}

/// `DELETE /friend/categories/{id}`: its friends move to the default category.
async fn delete_category(state: web::Data<AppState>, me: Authed, path: web::Path<i64>) -> ApiResult<HttpResponse> {
    let (uid, id) = (me.user.id, path.into_inner());
    match state.db.write(move |c| q::delete_category(c, uid, id)).await? {
        Ok(moved) => Ok(HttpResponse::Ok().json(json!({"deleted": id, "moved_to_default": moved}))),
        Err(r) => Err(category_refusal(r)),
    }
}

#[derive(Debug, Deserialize)]
struct ListFriendsParams {
    category_id: Option<i64>,
    page: Option<i64>,
    size: Option<i64>,
}

/// `GET /friends?page=&size=&category_id=`: oldest friendship first (a stable order).
async fn list_friends(
    state: web::Data<AppState>,
    me: Authed,
    params: web::Query<ListFriendsParams>,
) -> ApiResult<HttpResponse> {
    let params = params.into_inner();
    let (page, size) = PageParams { page: params.page, size: params.size }.resolve()?;
    let uid = me.user.id;
    let cat = params.category_id;
    let rows = state
        .db
        .read(move |c| {
            if let Some(id) = cat {
                if q::find_category(c, uid, id)?.is_none() {
                    return Ok(None);
                }
            }
            q::list_friends(c, uid, cat, (page - 1) * size, size + 1).map(Some)
        })
        .await?
        .ok_or_else(|| ApiError::not_found("category_not_found", "no such category of yours"))?;
    let mut items: Vec<FriendView> = rows.iter().map(FriendView::new).collect();
    let on = online(&state, items.iter().map(|f| UserId(f.user.id)).collect()).await;
    for f in &mut items {
        f.online = Some(on.contains(&UserId(f.user.id)));
    }
    Ok(HttpResponse::Ok().json(Paged::from_rows(items, page, size)))
}

/// Which of `users` are online (any device connected, on any node).
async fn online(state: &AppState, users: Vec<UserId>) -> Vec<UserId> {
    state.hub.online(users).await
}

fn not_friends() -> ApiError {
    ApiError::not_found("not_friends", "that user is not your friend")
}

/// `GET /friends/{user_id}`.
async fn get_friend(state: web::Data<AppState>, me: Authed, path: web::Path<i64>) -> ApiResult<HttpResponse> {
    let (uid, fid) = (me.user.id, path.into_inner());
    let row = state.db.read(move |c| q::find_friend(c, uid, fid)).await?.ok_or_else(not_friends)?;
    let mut view = FriendView::new(&row);
    view.online = Some(!online(&state, vec![UserId(fid)]).await.is_empty());
    Ok(HttpResponse::Ok().json(view))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateFriendBody {
    #[serde(default, deserialize_with = "some_option")]
    remark: Option<Option<String>>,
    category_id: Option<i64>,
    dnd: Option<bool>,
}

fn some_option<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// `PATCH /friends/{user_id}` `{remark?, category_id?, dnd?}` (`remark: null` clears it).
async fn update_friend(
    state: web::Data<AppState>,
    me: Authed,
    path: web::Path<i64>,
    body: web::Json<UpdateFriendBody>,
) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    let remark = match body.remark {
        Some(r) => Some(check_remark(r)?),
        None => None,
    };
    let upd = FriendUpdate { remark, category_id: body.category_id, dnd: body.dnd };
    let (uid, fid) = (me.user.id, path.into_inner());
    let row = state
        .db
        .write(move |c| match q::update_friend(c, uid, fid, &upd)? {
            Ok(()) => Ok(Ok(q::find_friend(c, uid, fid)?)),
            Err(r) => Ok(Err(r)),
        })
        .await?;
    match row {
        Ok(Some(row)) => {
            state.events.pair_changed(UserId(uid), UserId(fid)).await;
            let mut view = FriendView::new(&row);
            view.online = Some(!online(&state, vec![UserId(fid)]).await.is_empty());
            Ok(HttpResponse::Ok().json(view))
        }
        Ok(None) | Err(FriendRefusal::NotFriends) => Err(not_friends()),
        Err(FriendRefusal::CategoryNotFound) => {
            Err(ApiError::not_found("category_not_found", "no such category of yours"))
        }
    }
}

/// `DELETE /friends/{user_id}`: ends the friendship on both sides in one transaction.
async fn delete_friend(state: web::Data<AppState>, me: Authed, path: web::Path<i64>) -> ApiResult<HttpResponse> {
    let (uid, fid) = (me.user.id, path.into_inner());
    if !state.db.write_retrying(move |c| q::unfriend(c, uid, fid)).await? {
        return Err(not_friends());
    }
    state.events.push(UserId(fid), "friend_removed", json!({"user_id": uid}));
    state.events.pair_changed(UserId(uid), UserId(fid)).await;
    Ok(HttpResponse::NoContent().finish())
}
