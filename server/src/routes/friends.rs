//! Friends: requests with a verification message, the friend list, categories, per-friend
//! remark / category / do-not-disturb. The rules live in `schema::db::friends`; handlers
//! validate input, run one transaction, map refusals to codes and push events.

use actix_web::http::StatusCode;
use actix_web::{delete, get, patch, post, put, web, HttpResponse};
use schema::db::friends::{
    self as q, Answer, AnswerRefusal, CategoryRefusal, Direction, FriendRefusal, FriendUpdate, RequestRules,
    SendRefusal, Sent,
};
use schema::db::models::{Category, FriendRequest, Friendship, User};
use schema::UserId;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::accounts::PublicUser;
use super::{Items, PageParams, Paged};
use crate::auth::Authed;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::state::AppState;

/// Longest verification message (characters).
pub const REQUEST_MESSAGE_MAX: usize = 200;
/// Category name length bounds (characters).
pub const CATEGORY_NAME_LEN: std::ops::RangeInclusive<usize> = 1..=32;
/// Longest remark (characters).
pub const REMARK_MAX: usize = 64;

/// Routes of this module under `/api/v1`.
pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(send_request)
        .service(list_requests)
        .service(answer_request)
        .service(list_categories)
        .service(create_category)
        .service(rename_category)
        .service(delete_category)
        .service(list_friends)
        .service(get_friend)
        .service(update_friend)
        .service(delete_friend);
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
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RequestView {
    pub id: i64,
    pub from_user_id: i64,
    pub to_user_id: i64,
    pub message: String,
    /// `pending`, `ignored` (recipient only), `accepted`, `rejected` or `expired`.
    #[schema(value_type = String, pattern = "^(pending|ignored|accepted|rejected|expired)$")]
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
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CategoryRef {
    pub id: i64,
    pub name: String,
}

/// A friend as the list shows them.
#[derive(Debug, Serialize, utoipa::ToSchema)]
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

/// Body of `POST /friend/request`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendBody {
    to_user_id: i64,
    /// The verification message, at most 200 characters (trimmed).
    #[serde(default)]
    message: String,
}

crate::errors!(
    /// Errors of `POST /friend/request`.
    SendRequestErrors: InvalidMessage, CannotFriendSelf, UserNotFound, AlreadyFriends, BlockedByYou, RequestTooSoon
);

/// `POST /friend/request`: 201 with the pending request, or 200 with `status: accepted` when the
/// target had already asked the caller (the two are friends at once).
#[utoipa::path(tag = "friends", security(("bearer" = [])), responses(
    (status = 201, description = "The pending request", body = RequestView),
    (status = 200, description = "The target had asked me already: friends now", body = RequestView),
    SendRequestErrors))]
#[post("/friend/request")]
async fn send_request(state: web::Data<AppState>, me: Authed, body: web::Json<SendBody>) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    let message = body.message.trim().to_owned();
    if message.chars().count() > REQUEST_MESSAGE_MAX {
        return Err(ApiError::new(ErrorCode::InvalidMessage, "message must be at most 200 characters"));
    }
    let rules = rules(&state);
    let (from, to) = (me.user.id, body.to_user_id);
    let res = state.db.write_retrying(move |c| q::send_request(c, from, to, &message, &rules)).await;
    let sent = match res {
        Ok(Ok(s)) => s,
        Ok(Err(SendRefusal::SelfRequest)) => {
            return Err(ApiError::new(ErrorCode::CannotFriendSelf, "you cannot send a friend request to yourself"))
        }
        Ok(Err(SendRefusal::UserNotFound)) => return Err(ApiError::new(ErrorCode::UserNotFound, "no such user")),
        Ok(Err(SendRefusal::YouBlocked)) => {
            return Err(ApiError::new(ErrorCode::BlockedByYou, "you blocked this user: unblock them first"))
        }
        Ok(Err(SendRefusal::AlreadyFriends)) => {
            return Err(ApiError::new(ErrorCode::AlreadyFriends, "you are friends already"))
        }
        Ok(Err(SendRefusal::TooSoon(ms))) => {
            return Err(ApiError::too_many(
                ErrorCode::RequestTooSoon,
                "one request to the same user per 24 hours",
                (ms + 999) / 1000,
            ))
        }
        // The one-pending-request index caught a concurrent duplicate of this very request.
        Err(e) if e.is_unique_violation() => {
            return Err(ApiError::too_many(
                ErrorCode::RequestTooSoon,
                "a request to this user was just sent",
                state.settings.friends.request_cooldown_secs,
            ))
        }
        Err(e) => return Err(e.into()),
    };
    let target = crate::auth::load_user(&state, UserId(to)).await?;
    match sent {
        // The target blocked me: I see my request pending, as any unanswered one; they see nothing.
        Sent::Hidden(r) => Ok(HttpResponse::Created().json(RequestView::new(&r, &target, from, &rules))),
        Sent::Pending(r) => {
            let for_target = RequestView::new(&r, &me.user, to, &rules);
            state.events.push(UserId(to), "friend_request", json!(for_target));
            // Push hook: the target's offline devices.
            state.push.notify_one(
                actors::push::NoticeKind::FriendRequest,
                format!("fr/{}", r.id),
                UserId(from),
                UserId(to),
                None,
                r.created_at,
            );
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

/// `?direction=&status=&page=&size=` of the friend-request list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListRequestsParams {
    /// `incoming` (default) or `outgoing`.
    direction: Option<String>,
    /// `pending`, `ignored`, `accepted`, `rejected` or `expired`; all when absent.
    status: Option<String>,
    /// Page number, from 1 (at most 1000000; default 1).
    page: Option<i64>,
    /// Page size, 1 to 100 (default 20).
    size: Option<i64>,
}

crate::errors!(
    /// Errors of `GET /friend/requests`.
    ListRequestsErrors: InvalidPage, InvalidSize, InvalidDirection, InvalidStatus
);

/// `GET /friend/requests?direction=incoming|outgoing&status=...&page=&size=`: newest first.
#[utoipa::path(tag = "friends", security(("bearer" = [])), params(ListRequestsParams), responses(
    (status = 200, description = "A page of requests, newest first", body = Paged<RequestView>),
    ListRequestsErrors))]
#[get("/friend/requests")]
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
        Some(_) => return Err(ApiError::new(ErrorCode::InvalidDirection, "direction must be incoming or outgoing")),
    };
    let status: Option<&'static str> = match params.status.as_deref() {
        None => None,
        Some("pending") => Some(q::status::PENDING),
        Some("ignored") => Some(q::status::IGNORED),
        Some("accepted") => Some(q::status::ACCEPTED),
        Some("rejected") => Some(q::status::REJECTED),
        Some("expired") => Some(q::status::EXPIRED),
        Some(_) => {
            return Err(ApiError::new(
                ErrorCode::InvalidStatus,
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

/// Body of `PUT /friend/request/{id}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerBody {
    /// `accept`, `reject` or `ignore`.
    action: String,
    /// Accept: the category to put the new friend in (the default one when absent).
    category_id: Option<i64>,
    /// Accept: a remark, at most 64 characters (trimmed).
    remark: Option<String>,
}

crate::errors!(
    /// Errors of `PUT /friend/request/{id}`.
    AnswerErrors: InvalidAction, InvalidRemark, RequestNotFound, CategoryNotFound, RequestNotPending
);

/// `PUT /friend/request/{id}` `{action: accept|reject|ignore, category_id?, remark?}`.
#[utoipa::path(tag = "friends", security(("bearer" = [])), responses(
    (status = 200, description = "The answered request", body = RequestView), AnswerErrors))]
#[put("/friend/request/{id}")]
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
        _ => return Err(ApiError::new(ErrorCode::InvalidAction, "action must be accept, reject or ignore")),
    };
    let rules = rules(&state);
    let (uid, id) = (me.user.id, path.into_inner());
    let accepted = matches!(answer, Answer::Accept { .. });
    let res = state.db.write_retrying(move |c| q::answer_request(c, uid, id, &answer, &rules)).await?;
    let req = match res {
        Ok(r) => r,
        Err(AnswerRefusal::NotFound) => {
            return Err(ApiError::new(ErrorCode::RequestNotFound, "no such request addressed to you"))
        }
        Err(AnswerRefusal::NotPending(s)) => {
            return Err(ApiError::new(ErrorCode::RequestNotPending, format!("the request is {s}, not pending")))
        }
        Err(AnswerRefusal::CategoryNotFound) => {
            return Err(ApiError::new(ErrorCode::CategoryNotFound, "no such category of yours"))
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
        return Err(ApiError::new(ErrorCode::InvalidRemark, "remark must be at most 64 characters"));
    }
    Ok(remark)
}

fn check_category_name(name: &str) -> ApiResult<String> {
    let name = name.trim();
    if !CATEGORY_NAME_LEN.contains(&name.chars().count()) || name.chars().any(char::is_control) {
        return Err(ApiError::new(ErrorCode::InvalidName, "name must be 1-32 characters"));
    }
    Ok(name.to_owned())
}

/// A friend category of mine.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CategoryView {
    id: i64,
    name: String,
    is_default: bool,
    /// Friends in it.
    count: i64,
    created_at: i64,
}

/// A renamed category.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RenamedCategory {
    id: i64,
    name: String,
    is_default: bool,
    created_at: i64,
}

/// A deleted category.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeletedCategory {
    /// Its id.
    deleted: i64,
    /// Friends moved to the default category.
    moved_to_default: usize,
}

impl CategoryView {
    fn new(c: &Category, count: i64) -> Self {
        CategoryView { id: c.id, name: c.name.clone(), is_default: c.is_default, count, created_at: c.created_at }
    }
}

/// `GET /friend/categories`: mine, default first, with friend counts.
#[utoipa::path(tag = "friends", security(("bearer" = [])), responses(
    (status = 200, description = "My categories", body = Items<CategoryView>)))]
#[get("/friend/categories")]
async fn list_categories(state: web::Data<AppState>, me: Authed) -> ApiResult<HttpResponse> {
    let uid = me.user.id;
    let rows = state.db.read(move |c| q::list_categories(c, uid)).await?;
    let items: Vec<CategoryView> = rows.iter().map(|(c, n)| CategoryView::new(c, *n)).collect();
    Ok(HttpResponse::Ok().json(Items { items }))
}

/// Body of creating or renaming a category.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CategoryBody {
    /// 1-32 characters (trimmed), unique among mine.
    name: String,
}

fn category_refusal(r: CategoryRefusal) -> ApiError {
    match r {
        CategoryRefusal::NotFound => ApiError::new(ErrorCode::CategoryNotFound, "no such category of yours"),
        CategoryRefusal::NameTaken => ApiError::new(ErrorCode::CategoryExists, "you have a category of that name"),
        CategoryRefusal::IsDefault => {
            ApiError::new(ErrorCode::CannotDeleteDefault, "the default category cannot be deleted")
        }
    }
}

crate::errors!(
    /// Errors of `POST /friend/categories`.
    CreateCategoryErrors: InvalidName, CategoryExists
);

/// `POST /friend/categories` `{name}`.
#[utoipa::path(tag = "friends", security(("bearer" = [])), responses(
    (status = 201, description = "The new category", body = CategoryView), CreateCategoryErrors))]
#[post("/friend/categories")]
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

crate::errors!(
    /// Errors of `PATCH /friend/categories/{id}`.
    RenameCategoryErrors: InvalidName, CategoryNotFound, CategoryExists
);

/// `PATCH /friend/categories/{id}` `{name}`.
#[utoipa::path(tag = "friends", security(("bearer" = [])), responses(
    (status = 200, description = "The renamed category", body = RenamedCategory), RenameCategoryErrors))]
#[patch("/friend/categories/{id}")]
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
        Ok(Ok(c)) => Ok(HttpResponse::Ok().json(RenamedCategory {
            id: c.id,
            name: c.name,
            is_default: c.is_default,
            created_at: c.created_at,
        })),
        Ok(Err(r)) => Err(category_refusal(r)),
        Err(e) if e.is_unique_violation() => Err(category_refusal(CategoryRefusal::NameTaken)),
        Err(e) => Err(e.into()),
    }
}

crate::errors!(
    /// Errors of `DELETE /friend/categories/{id}`.
    DeleteCategoryErrors: CategoryNotFound, CannotDeleteDefault
);

/// `DELETE /friend/categories/{id}`: its friends move to the default category.
#[utoipa::path(tag = "friends", security(("bearer" = [])), responses(
    (status = 200, description = "Deleted", body = DeletedCategory), DeleteCategoryErrors))]
#[delete("/friend/categories/{id}")]
async fn delete_category(state: web::Data<AppState>, me: Authed, path: web::Path<i64>) -> ApiResult<HttpResponse> {
    let (uid, id) = (me.user.id, path.into_inner());
    match state.db.write(move |c| q::delete_category(c, uid, id)).await? {
        Ok(moved) => Ok(HttpResponse::Ok().json(DeletedCategory { deleted: id, moved_to_default: moved })),
        Err(r) => Err(category_refusal(r)),
    }
}

/// `?category_id=&page=&size=` of the friend list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListFriendsParams {
    /// Only friends in this category of mine.
    category_id: Option<i64>,
    /// Page number, from 1 (at most 1000000; default 1).
    page: Option<i64>,
    /// Page size, 1 to 100 (default 20).
    size: Option<i64>,
}

crate::errors!(
    /// Errors of `GET /friends`.
    ListFriendsErrors: InvalidPage, InvalidSize, CategoryNotFound
);

/// `GET /friends?page=&size=&category_id=`: oldest friendship first (a stable order).
#[utoipa::path(tag = "friends", security(("bearer" = [])), params(ListFriendsParams), responses(
    (status = 200, description = "A page of friends", body = Paged<FriendView>), ListFriendsErrors))]
#[get("/friends")]
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
        .ok_or_else(|| ApiError::new(ErrorCode::CategoryNotFound, "no such category of yours"))?;
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

/// 404 `not_friends`: the friend routes' "no such friend of yours".
fn not_friends() -> ApiError {
    ApiError::new(ErrorCode::NotFriends, "that user is not your friend").with_status(StatusCode::NOT_FOUND)
}

crate::errors!(
    /// Errors of `GET /friends/{user_id}` and `DELETE /friends/{user_id}`.
    FriendErrors: NotFriends = 404
);

/// `GET /friends/{user_id}`.
#[utoipa::path(tag = "friends", security(("bearer" = [])), responses(
    (status = 200, description = "The friend", body = FriendView), FriendErrors))]
#[get("/friends/{user_id}")]
async fn get_friend(state: web::Data<AppState>, me: Authed, path: web::Path<i64>) -> ApiResult<HttpResponse> {
    let (uid, fid) = (me.user.id, path.into_inner());
    let row = state.db.read(move |c| q::find_friend(c, uid, fid)).await?.ok_or_else(not_friends)?;
    let mut view = FriendView::new(&row);
    view.online = Some(!online(&state, vec![UserId(fid)]).await.is_empty());
    Ok(HttpResponse::Ok().json(view))
}

/// Body of `PATCH /friends/{user_id}`: the fields to change (`remark: null` clears it).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateFriendBody {
    /// At most 64 characters (trimmed), or `null`.
    #[serde(default, deserialize_with = "some_option")]
    #[schema(value_type = Option<String>)]
    remark: Option<Option<String>>,
    /// A category of mine.
    category_id: Option<i64>,
    /// Do-not-disturb for this friend's messages.
    dnd: Option<bool>,
}

crate::errors!(
    /// Errors of `PATCH /friends/{user_id}`.
    UpdateFriendErrors: InvalidRemark, NotFriends = 404, CategoryNotFound
);

fn some_option<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// `PATCH /friends/{user_id}` `{remark?, category_id?, dnd?}` (`remark: null` clears it).
#[utoipa::path(tag = "friends", security(("bearer" = [])), responses(
    (status = 200, description = "The friend, updated", body = FriendView), UpdateFriendErrors))]
#[patch("/friends/{user_id}")]
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
            Err(ApiError::new(ErrorCode::CategoryNotFound, "no such category of yours"))
        }
    }
}

/// `DELETE /friends/{user_id}`: ends the friendship on both sides in one transaction.
#[utoipa::path(tag = "friends", security(("bearer" = [])), responses(
    (status = 204, description = "No longer friends"), FriendErrors))]
#[delete("/friends/{user_id}")]
async fn delete_friend(state: web::Data<AppState>, me: Authed, path: web::Path<i64>) -> ApiResult<HttpResponse> {
    let (uid, fid) = (me.user.id, path.into_inner());
    if !state.db.write_retrying(move |c| q::unfriend(c, uid, fid)).await? {
        return Err(not_friends());
    }
    state.events.push(UserId(fid), "friend_removed", json!({"user_id": uid}));
    state.events.pair_changed(UserId(uid), UserId(fid)).await;
    Ok(HttpResponse::NoContent().finish())
}
