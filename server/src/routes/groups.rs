//! Groups over HTTP: create, list, settings, members, roles, mutes, invite links with QR codes,
//! readers of a message. Changes to a group go through its `GroupActor` (permissions, system
//! messages, fan-out); reads come from the database.

use actix_web::http::StatusCode;
use actix_web::{delete, get, patch, post, put, web, HttpResponse};
use actors::command::{ChatError, Command, GroupOp};
use schema::db::groups::{self as q, role, GroupUpdate};
use schema::db::models::{Group, GroupInvite, GroupMember};
use schema::db::{friends, users};
use schema::message::MessageKind;
use schema::{ConvId, GroupId, UserId};
use serde::{Deserialize, Serialize};

use super::accounts::PublicUser;
use super::conversations::chat_error;
use super::{Items, PageParams, Paged};
use crate::auth::{self, Authed};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::state::AppState;

/// Group name length bounds (characters).
pub const NAME_LEN: std::ops::RangeInclusive<usize> = 1..=64;
/// Longest announcement (characters).
pub const ANNOUNCEMENT_MAX: usize = 2000;
/// Longest invite lifetime, seconds (30 days).
pub const INVITE_MAX_SECS: i64 = 30 * 24 * 3600;
/// Default invite lifetime, seconds (7 days).
pub const INVITE_DEFAULT_SECS: i64 = 7 * 24 * 3600;

/// Routes of this module under `/api/v1` (specific paths before `{id}`).
pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(create)
        .service(list)
        .service(join)
        .service(preview_invite)
        .service(qr_svg)
        .service(qr_png)
        .service(details)
        .service(update)
        .service(dissolve)
        .service(list_members)
        .service(invite)
        .service(remove)
        .service(mute)
        .service(unmute)
        .service(leave)
        .service(transfer)
        .service(add_admin)
        .service(remove_admin)
        .service(create_invite)
        .service(list_invites)
        .service(revoke_invite)
        .service(readers);
}

fn not_found() -> ApiError {
    ApiError::new(ErrorCode::GroupNotFound, "no such group of yours")
}

crate::errors!(
    /// Errors of the `/groups/{id}` routes that only read.
    GroupErrors: GroupNotFound
);

crate::errors!(
    /// Errors of a change to a group made by its owner (the group actor's refusals).
    ChangeErrors: GroupNotFound, NotAllowed, GroupDissolved
);

crate::errors!(
    /// Errors of a change to one member of a group.
    MemberChangeErrors: GroupNotFound, NotAllowed, MemberNotFound, GroupDissolved
);

/// A group as its members see it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GroupView {
    pub id: i64,
    pub conv: String,
    pub name: String,
    pub announcement: Option<String>,
    pub avatar_url: Option<String>,
    pub owner_id: i64,
    pub mute_all: bool,
    /// `members` or `admins`: who may invite and create links.
    pub invite_policy: String,
    pub dissolved: bool,
    pub member_count: i64,
    /// `owner`, `admin` or `member`.
    pub my_role: String,
    pub created_at: i64,
}

impl GroupView {
    fn new(g: &Group, me: &GroupMember, member_count: i64) -> Self {
        GroupView {
            id: g.id,
            conv: q::conv_id(g.id),
            name: g.name.clone(),
            announcement: g.announcement.clone(),
            avatar_url: g.avatar_url.clone(),
            owner_id: g.owner_id,
            mute_all: g.mute_all,
            invite_policy: g.invite_policy.clone(),
            dissolved: g.dissolved_at.is_some(),
            member_count,
            my_role: me.role.clone(),
            created_at: g.created_at,
        }
    }
}

/// Loads a group and the caller's active membership; 404 `group_not_found` otherwise.
async fn mine(state: &AppState, me: &Authed, id: i64) -> ApiResult<(Group, GroupMember, i64)> {
    let uid = me.user.id;
    state
        .db
        .read(move |c| {
            let (Some(g), Some(m)) = (q::find(c, id)?, q::member(c, id, uid)?) else { return Ok(None) };
            if m.left_seq.is_some() {
                return Ok(None);
            }
            let n = q::count_active(c, id)?;
            Ok(Some((g, m, n)))
        })
        .await?
        .ok_or_else(not_found)
}

/// Runs a change at the group's owner, on whichever node it runs.
async fn command(state: &AppState, id: i64, by: UserId, op: GroupOp) -> ApiResult<()> {
    let conv = ConvId::group(GroupId(id));
    state.hub.route(conv, Command::Change { by, op }).await.map(|_| ()).map_err(|e| match e {
        ChatError::UnknownConversation => not_found(),
        other => chat_error(other),
    })
}

fn check_name(n: &str) -> ApiResult<String> {
    let n = n.trim();
    if !NAME_LEN.contains(&n.chars().count()) || n.chars().any(char::is_control) {
        return Err(ApiError::new(ErrorCode::InvalidName, "name must be 1-64 characters"));
    }
    Ok(n.to_owned())
}

/// Body of `POST /groups`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    /// 1-64 characters (trimmed).
    name: String,
    /// Friends of mine to add.
    #[serde(default)]
    member_ids: Vec<i64>,
}

crate::errors!(
    /// Errors of `POST /groups`.
    CreateErrors: InvalidName, GroupFull, NotFriends = 422
);

/// `POST /groups` `{name, member_ids}`: the creator is the owner; members must be their friends.
#[utoipa::path(tag = "groups", security(("bearer" = [])), responses(
    (status = 201, description = "The new group", body = GroupView), CreateErrors))]
#[post("/groups")]
async fn create(state: web::Data<AppState>, me: Authed, body: web::Json<CreateBody>) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    let name = check_name(&body.name)?;
    let mut ids = body.member_ids;
    ids.sort();
    ids.dedup();
    ids.retain(|u| *u != me.user.id);
    if ids.len() + 1 > state.settings.chat.max_group_members {
        return Err(ApiError::new(ErrorCode::GroupFull, "too many members for one group"));
    }
    let (uid, now) = (me.user.id, state.clock.now_ms());
    let invited: Vec<UserId> = ids.iter().copied().map(UserId).collect();
    let created = state
        .db
        .write(move |c| {
            let mine = friends::friend_ids(c, uid)?;
            let strangers: Vec<i64> = ids.iter().copied().filter(|u| !mine.contains(u)).collect();
            if !strangers.is_empty() {
                return Ok(Err(strangers));
            }
            let g = q::create(c, uid, &name, &ids, now)?;
            let m = q::member(c, g.id, uid)?;
            Ok(Ok((g, m, ids.len() as i64 + 1)))
        })
        .await?;
    match created {
        Ok((g, Some(m), n)) => {
            push_invites(&state, g.id, me.id(), &invited);
            Ok(HttpResponse::Created().json(GroupView::new(&g, &m, n)))
        }
        Ok((_, None, _)) => Err(ApiError::internal("group created without its owner")),
        Err(strangers) => Err(ApiError::new(ErrorCode::NotFriends, format!("not your friends: {strangers:?}"))
            .with_status(StatusCode::UNPROCESSABLE_ENTITY)),
    }
}

/// Push hook: the offline devices of users added to group `group` by `by` (at creation or by
/// invitation), a `group_invite` notice each.
fn push_invites(state: &AppState, group: i64, by: UserId, users: &[UserId]) {
    let now = state.clock.now_ms();
    for u in users {
        let n = format!("{}/invite/{}/{now}", schema::ConvId::group(schema::GroupId(group)), u.0);
        state.push.notify_one(actors::push::NoticeKind::GroupInvite, n, by, *u, Some(group), now);
    }
}

/// `GET /groups`: the groups I am a member of.
#[utoipa::path(tag = "groups", operation_id = "list_groups", security(("bearer" = [])), responses(
    (status = 200, description = "My groups", body = Items<GroupView>)))]
#[get("/groups")]
async fn list(state: web::Data<AppState>, me: Authed) -> ApiResult<HttpResponse> {
    let uid = me.user.id;
    let rows = state
        .db
        .read(move |c| {
            let mut out = Vec::new();
            for (g, m) in q::of_user(c, uid)? {
                let n = q::count_active(c, g.id)?;
                out.push(GroupView::new(&g, &m, n));
            }
            Ok(out)
        })
        .await?;
    Ok(HttpResponse::Ok().json(Items { items: rows }))
}

/// `GET /groups/{id}`.
#[utoipa::path(tag = "groups", security(("bearer" = [])), responses(
    (status = 200, description = "The group", body = GroupView), GroupErrors))]
#[get("/groups/{id}")]
async fn details(state: web::Data<AppState>, me: Authed, path: web::Path<i64>) -> ApiResult<HttpResponse> {
    let (g, m, n) = mine(&state, &me, path.into_inner()).await?;
    Ok(HttpResponse::Ok().json(GroupView::new(&g, &m, n)))
}

/// Body of `PATCH /groups/{id}`: the settings to change (`null` clears `announcement` and
/// `avatar_url`).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateBody {
    /// 1-64 characters (trimmed).
    name: Option<String>,
    /// At most 2000 characters, or `null`.
    #[serde(default, deserialize_with = "some_option")]
    #[schema(value_type = Option<String>)]
    announcement: Option<Option<String>>,
    /// An http(s) URL of at most 1024 bytes, or `null`.
    #[serde(default, deserialize_with = "some_option")]
    #[schema(value_type = Option<String>)]
    avatar_url: Option<Option<String>>,
    /// Only the owner and admins may post.
    mute_all: Option<bool>,
    /// `members` or `admins`.
    invite_policy: Option<String>,
}

crate::errors!(
    /// Errors of `PATCH /groups/{id}`.
    UpdateErrors: InvalidName, InvalidAnnouncement, InvalidAvatarUrl, InvalidInvitePolicy, GroupNotFound, NotAllowed,
    GroupDissolved
);

fn some_option<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// `PATCH /groups/{id}`: name, announcement, avatar, mute-all, invite policy (owner, admins).
#[utoipa::path(tag = "groups", operation_id = "update_group", security(("bearer" = [])), responses(
    (status = 200, description = "The group, updated", body = GroupView), UpdateErrors))]
#[patch("/groups/{id}")]
async fn update(
    state: web::Data<AppState>,
    me: Authed,
    path: web::Path<i64>,
    body: web::Json<UpdateBody>,
) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    let id = path.into_inner();
    let upd = GroupUpdate {
        name: body.name.as_deref().map(check_name).transpose()?,
        announcement: match body.announcement {
            Some(Some(a)) if a.chars().count() > ANNOUNCEMENT_MAX => {
                return Err(ApiError::new(
                    ErrorCode::InvalidAnnouncement,
                    "announcement must be at most 2000 characters",
                ))
            }
            other => other,
        },
        avatar_url: match body.avatar_url {
            Some(Some(a)) if a.len() > 1024 || !(a.starts_with("https://") || a.starts_with("http://")) => {
                return Err(ApiError::new(ErrorCode::InvalidAvatarUrl, "avatar_url must be an http(s) URL"))
            }
            other => other,
        },
        mute_all: body.mute_all,
        invite_policy: match body.invite_policy.as_deref() {
            None => None,
            Some(p @ ("members" | "admins")) => Some(p.to_owned()),
            Some(_) => {
                return Err(ApiError::new(ErrorCode::InvalidInvitePolicy, "invite_policy must be members or admins"))
            }
        },
    };
    mine(&state, &me, id).await?;
    command(&state, id, me.id(), GroupOp::Update(upd)).await?;
    let (g, m, n) = mine(&state, &me, id).await?;
    Ok(HttpResponse::Ok().json(GroupView::new(&g, &m, n)))
}

/// `DELETE /groups/{id}`: dissolve (owner). History stays readable.
#[utoipa::path(tag = "groups", security(("bearer" = [])), responses(
    (status = 204, description = "Dissolved"), ChangeErrors))]
#[delete("/groups/{id}")]
async fn dissolve(state: web::Data<AppState>, me: Authed, path: web::Path<i64>) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    mine(&state, &me, id).await?;
    command(&state, id, me.id(), GroupOp::Dissolve).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A member of a group.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MemberView {
    user: PublicUser,
    /// `owner`, `admin` or `member`.
    role: String,
    nickname: Option<String>,
    /// Muted until then (absent or `null`: not muted).
    muted_until: Option<i64>,
    joined_at: i64,
}

crate::errors!(
    /// Errors of `GET /groups/{id}/members`.
    MembersErrors: InvalidPage, InvalidSize, GroupNotFound
);

/// `GET /groups/{id}/members?page=&size=`: owner, admins, then members.
#[utoipa::path(tag = "groups", security(("bearer" = [])), params(PageParams), responses(
    (status = 200, description = "A page of members", body = Paged<MemberView>), MembersErrors))]
#[get("/groups/{id}/members")]
async fn list_members(
    state: web::Data<AppState>,
    me: Authed,
    path: web::Path<i64>,
    query: web::Query<PageParams>,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    let (page, size) = query.into_inner().resolve()?;
    mine(&state, &me, id).await?;
    let now = state.clock.now_ms();
    let rows = state.db.read(move |c| q::page_members(c, id, (page - 1) * size, size + 1)).await?;
    let items: Vec<MemberView> = rows
        .iter()
        .map(|(m, u)| MemberView {
            user: u.into(),
            role: m.role.clone(),
            nickname: m.nickname.clone(),
            muted_until: m.muted_until.filter(|t| *t > now),
            joined_at: m.joined_at,
        })
        .collect();
    Ok(HttpResponse::Ok().json(Paged::from_rows(items, page, size)))
}

/// Body of `POST /groups/{id}/members`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteBody {
    /// Friends of mine.
    user_ids: Vec<i64>,
}

crate::errors!(
    /// Errors of `POST /groups/{id}/members`.
    InviteErrors: GroupNotFound, NotAllowed, GroupDissolved, GroupFull, NotFriends = 422
);

/// `POST /groups/{id}/members` `{user_ids}`: invite friends.
#[utoipa::path(tag = "groups", security(("bearer" = [])), responses(
    (status = 200, description = "The group", body = GroupView), InviteErrors))]
#[post("/groups/{id}/members")]
async fn invite(
    state: web::Data<AppState>,
    me: Authed,
    path: web::Path<i64>,
    body: web::Json<InviteBody>,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    mine(&state, &me, id).await?;
    let ids: Vec<UserId> = body.into_inner().user_ids.into_iter().map(UserId).collect();
    command(&state, id, me.id(), GroupOp::Invite { users: ids.clone() }).await?;
    push_invites(&state, id, me.id(), &ids);
    let (g, m, n) = mine(&state, &me, id).await?;
    Ok(HttpResponse::Ok().json(GroupView::new(&g, &m, n)))
}

/// `DELETE /groups/{id}/members/{user_id}`.
#[utoipa::path(tag = "groups", security(("bearer" = [])), responses(
    (status = 204, description = "Removed"), MemberChangeErrors))]
#[delete("/groups/{id}/members/{user_id}")]
async fn remove(state: web::Data<AppState>, me: Authed, path: web::Path<(i64, i64)>) -> ApiResult<HttpResponse> {
    let (id, uid) = path.into_inner();
    mine(&state, &me, id).await?;
    command(&state, id, me.id(), GroupOp::Remove { user: UserId(uid) }).await?;
    Ok(HttpResponse::NoContent().finish())
}

crate::errors!(
    /// Errors of `POST /groups/{id}/leave`.
    LeaveErrors: GroupNotFound, OwnerCannotLeave, GroupDissolved
);

/// `POST /groups/{id}/leave`.
#[utoipa::path(tag = "groups", security(("bearer" = [])), responses(
    (status = 204, description = "Left"), LeaveErrors))]
#[post("/groups/{id}/leave")]
async fn leave(state: web::Data<AppState>, me: Authed, path: web::Path<i64>) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    mine(&state, &me, id).await?;
    command(&state, id, me.id(), GroupOp::Leave).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Body of `POST /groups/{id}/transfer`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferBody {
    /// The member who becomes the owner.
    user_id: i64,
}

/// `POST /groups/{id}/transfer` `{user_id}` (owner).
#[utoipa::path(tag = "groups", security(("bearer" = [])), responses(
    (status = 200, description = "The group", body = GroupView), MemberChangeErrors))]
#[post("/groups/{id}/transfer")]
async fn transfer(
    state: web::Data<AppState>,
    me: Authed,
    path: web::Path<i64>,
    body: web::Json<TransferBody>,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    mine(&state, &me, id).await?;
    command(&state, id, me.id(), GroupOp::Transfer { user: UserId(body.user_id) }).await?;
    let (g, m, n) = mine(&state, &me, id).await?;
    Ok(HttpResponse::Ok().json(GroupView::new(&g, &m, n)))
}

/// `PUT /groups/{id}/admins/{user_id}` (owner).
#[utoipa::path(tag = "groups", security(("bearer" = [])), responses(
    (status = 204, description = "An admin now"), MemberChangeErrors))]
#[put("/groups/{id}/admins/{user_id}")]
async fn add_admin(state: web::Data<AppState>, me: Authed, path: web::Path<(i64, i64)>) -> ApiResult<HttpResponse> {
    let (id, uid) = path.into_inner();
    mine(&state, &me, id).await?;
    command(&state, id, me.id(), GroupOp::SetAdmin { user: UserId(uid), on: true }).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `DELETE /groups/{id}/admins/{user_id}` (owner).
#[utoipa::path(tag = "groups", security(("bearer" = [])), responses(
    (status = 204, description = "A plain member now"), MemberChangeErrors))]
#[delete("/groups/{id}/admins/{user_id}")]
async fn remove_admin(state: web::Data<AppState>, me: Authed, path: web::Path<(i64, i64)>) -> ApiResult<HttpResponse> {
    let (id, uid) = path.into_inner();
    mine(&state, &me, id).await?;
    command(&state, id, me.id(), GroupOp::SetAdmin { user: UserId(uid), on: false }).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Body of `PUT /groups/{id}/members/{user_id}/mute`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MuteBody {
    /// Until when, ms since the epoch.
    until: i64,
}

crate::errors!(
    /// Errors of `PUT /groups/{id}/members/{user_id}/mute`.
    MuteErrors: InvalidUntil, GroupNotFound, NotAllowed, MemberNotFound, GroupDissolved
);

/// `PUT /groups/{id}/members/{user_id}/mute` `{until}`.
#[utoipa::path(tag = "groups", security(("bearer" = [])), responses(
    (status = 204, description = "Muted"), MuteErrors))]
#[put("/groups/{id}/members/{user_id}/mute")]
async fn mute(
    state: web::Data<AppState>,
    me: Authed,
    path: web::Path<(i64, i64)>,
    body: web::Json<MuteBody>,
) -> ApiResult<HttpResponse> {
    let (id, uid) = path.into_inner();
    if body.until <= state.clock.now_ms() {
        return Err(ApiError::new(ErrorCode::InvalidUntil, "until must be in the future"));
    }
    mine(&state, &me, id).await?;
    command(&state, id, me.id(), GroupOp::Mute { user: UserId(uid), until: Some(body.until) }).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `DELETE /groups/{id}/members/{user_id}/mute`.
#[utoipa::path(tag = "groups", security(("bearer" = [])), responses(
    (status = 204, description = "Unmuted"), MemberChangeErrors))]
#[delete("/groups/{id}/members/{user_id}/mute")]
async fn unmute(state: web::Data<AppState>, me: Authed, path: web::Path<(i64, i64)>) -> ApiResult<HttpResponse> {
    let (id, uid) = path.into_inner();
    mine(&state, &me, id).await?;
    command(&state, id, me.id(), GroupOp::Mute { user: UserId(uid), until: None }).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// An invite link.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InviteView {
    /// The link's secret.
    token: String,
    /// The JSON preview of the link (`GET /api/v1/groups/invites/<token>`).
    url: String,
    /// The page a person opens to join (`/join/<token>`, served by the web client); what the QR
    /// codes encode.
    join_url: String,
    group_id: i64,
    expires_at: Option<i64>,
    max_uses: Option<i64>,
    uses: i64,
}

fn invite_url(state: &AppState, token: &str) -> String {
    format!("{}/api/v1/groups/invites/{token}", state.settings.server.public_url.trim_end_matches('/'))
}

/// The human link: the web client's join page for the token.
fn join_url(state: &AppState, token: &str) -> String {
    format!("{}/join/{token}", state.settings.server.public_url.trim_end_matches('/'))
}

impl InviteView {
    fn new(state: &AppState, i: &GroupInvite) -> Self {
        InviteView {
            url: invite_url(state, &i.token),
            join_url: join_url(state, &i.token),
            token: i.token.clone(),
            group_id: i.group_id,
            expires_at: i.expires_at,
            max_uses: i.max_uses,
            uses: i.uses,
        }
    }
}

/// Body of `POST /groups/{id}/invites`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInviteBody {
    /// Lifetime, seconds: 1 to 30 days (default 7 days).
    expires_in: Option<i64>,
    /// 1 to 100000 joins (unlimited when absent).
    max_uses: Option<i64>,
}

crate::errors!(
    /// Errors of `POST /groups/{id}/invites`.
    CreateInviteErrors: GroupNotFound, GroupDissolved, NotAllowed, InvalidExpiresIn, InvalidMaxUses
);

/// `POST /groups/{id}/invites` `{expires_in?, max_uses?}`: the invite policy decides who may.
#[utoipa::path(tag = "groups", security(("bearer" = [])), responses(
    (status = 201, description = "The new link", body = InviteView), CreateInviteErrors))]
#[post("/groups/{id}/invites")]
async fn create_invite(
    state: web::Data<AppState>,
    me: Authed,
    path: web::Path<i64>,
    body: web::Json<CreateInviteBody>,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    let (g, m, _) = mine(&state, &me, id).await?;
    if g.dissolved_at.is_some() {
        return Err(chat_error(ChatError::GroupDissolved));
    }
    if g.invite_policy == "admins" && m.role == role::MEMBER {
        return Err(chat_error(ChatError::NotAllowed));
    }
    let secs = body.expires_in.unwrap_or(INVITE_DEFAULT_SECS);
    if !(1..=INVITE_MAX_SECS).contains(&secs) {
        return Err(ApiError::new(ErrorCode::InvalidExpiresIn, "expires_in must be 1 s to 30 days"));
    }
    if body.max_uses.is_some_and(|n| !(1..=100_000).contains(&n)) {
        return Err(ApiError::new(ErrorCode::InvalidMaxUses, "max_uses must be 1-100000"));
    }
    let now = state.clock.now_ms();
    let inv = GroupInvite {
        token: auth::new_token(),
        group_id: id,
        created_by: me.user.id,
        expires_at: Some(now + secs * 1000),
        max_uses: body.max_uses,
        uses: 0,
        revoked_at: None,
        created_at: now,
    };
    let stored = inv.clone();
    state.db.write(move |c| q::create_invite(c, &stored)).await?;
    Ok(HttpResponse::Created().json(InviteView::new(&state, &inv)))
}

/// `GET /groups/{id}/invites`: live links (owner and admins see all, members their own).
#[utoipa::path(tag = "groups", security(("bearer" = [])), responses(
    (status = 200, description = "Live links", body = Items<InviteView>), GroupErrors))]
#[get("/groups/{id}/invites")]
async fn list_invites(state: web::Data<AppState>, me: Authed, path: web::Path<i64>) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    let (_, m, _) = mine(&state, &me, id).await?;
    let rows = state.db.read(move |c| q::list_invites(c, id)).await?;
    let items: Vec<InviteView> = rows
        .iter()
        .filter(|i| m.role != role::MEMBER || i.created_by == me.user.id)
        .map(|i| InviteView::new(&state, i))
        .collect();
    Ok(HttpResponse::Ok().json(Items { items }))
}

crate::errors!(
    /// Errors of `DELETE /groups/{id}/invites/{token}`.
    RevokeInviteErrors: GroupNotFound, InviteNotFound, NotAllowed, InviteRevoked = 409
);

/// `DELETE /groups/{id}/invites/{token}`: revoke (its creator, the owner or an admin).
#[utoipa::path(tag = "groups", security(("bearer" = [])), responses(
    (status = 204, description = "Revoked"), RevokeInviteErrors))]
#[delete("/groups/{id}/invites/{token}")]
async fn revoke_invite(
    state: web::Data<AppState>,
    me: Authed,
    path: web::Path<(i64, String)>,
) -> ApiResult<HttpResponse> {
    let (id, token) = path.into_inner();
    let (_, m, _) = mine(&state, &me, id).await?;
    let t = token.clone();
    let inv = state.db.read(move |c| q::find_invite(c, &t)).await?.filter(|i| i.group_id == id);
    let Some(inv) = inv else { return Err(ApiError::new(ErrorCode::InviteNotFound, "no such invite link")) };
    if m.role == role::MEMBER && inv.created_by != me.user.id {
        return Err(chat_error(ChatError::NotAllowed));
    }
    let now = state.clock.now_ms();
    if !state.db.write(move |c| q::revoke_invite(c, id, &token, now)).await? {
        return Err(
            ApiError::new(ErrorCode::InviteRevoked, "the link was revoked already").with_status(StatusCode::CONFLICT)
        );
    }
    Ok(HttpResponse::NoContent().finish())
}

/// Why an invite cannot be used, or `None`.
fn invite_problem(i: &GroupInvite, g: &Group, now: i64) -> Option<ApiError> {
    let gone = |code, msg: &str| Some(ApiError::new(code, msg).with_status(StatusCode::GONE));
    if i.revoked_at.is_some() {
        return gone(ErrorCode::InviteRevoked, "the link was revoked");
    }
    if i.expires_at.is_some_and(|e| e <= now) {
        return gone(ErrorCode::InviteExpired, "the link has expired");
    }
    if i.max_uses.is_some_and(|m| i.uses >= m) {
        return gone(ErrorCode::InviteUsedUp, "the link has been used up");
    }
    if g.dissolved_at.is_some() {
        return gone(ErrorCode::GroupDissolved, "the group was dissolved");
    }
    None
}

async fn load_invite(state: &AppState, token: String) -> ApiResult<(GroupInvite, Group, i64)> {
    state
        .db
        .read(move |c| {
            let Some(i) = q::find_invite(c, &token)? else { return Ok(None) };
            let Some(g) = q::find(c, i.group_id)? else { return Ok(None) };
            let n = q::count_active(c, g.id)?;
            Ok(Some((i, g, n)))
        })
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::InviteNotFound, "no such invite link"))
}

/// What an invite link shows before joining.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InvitePreview {
    group_id: i64,
    name: String,
    avatar_url: Option<String>,
    member_count: i64,
    expires_at: Option<i64>,
}

crate::errors!(
    /// Errors of `GET /groups/invites/{token}`.
    PreviewErrors: InviteNotFound, InviteRevoked, InviteExpired, InviteUsedUp, GroupDissolved = 410
);

crate::errors!(
    /// Errors of the QR codes of a link.
    QrErrors: InviteNotFound
);

/// `GET /groups/invites/{token}`: a preview (name, member count) for someone deciding to join.
/// No sign-in needed: the token is the secret, and the join page shows it to visitors first.
#[utoipa::path(tag = "groups", responses(
    (status = 200, description = "The preview", body = InvitePreview), PreviewErrors))]
#[get("/groups/invites/{token}")]
async fn preview_invite(state: web::Data<AppState>, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let (i, g, n) = load_invite(&state, path.into_inner()).await?;
    if let Some(p) = invite_problem(&i, &g, state.clock.now_ms()) {
        return Err(p);
    }
    Ok(HttpResponse::Ok().json(InvitePreview {
        group_id: g.id,
        name: g.name,
        avatar_url: g.avatar_url,
        member_count: n,
        expires_at: i.expires_at,
    }))
}

fn qr(state: &AppState, token: &str) -> ApiResult<qrcode::QrCode> {
    qrcode::QrCode::new(join_url(state, token).as_bytes()).map_err(ApiError::internal)
}

/// `GET /groups/invites/{token}/qr.svg`: the join page's link as a QR code (SVG); no sign-in
/// needed, so that an `<img>` can show it.
#[utoipa::path(tag = "groups", responses(
    (status = 200, description = "The QR code", content_type = "image/svg+xml", body = String), QrErrors))]
#[get("/groups/invites/{token}/qr.svg")]
async fn qr_svg(state: web::Data<AppState>, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let (i, _, _) = load_invite(&state, path.into_inner()).await?;
    let svg = qr(&state, &i.token)?.render::<qrcode::render::svg::Color>().min_dimensions(256, 256).build();
    Ok(HttpResponse::Ok().content_type("image/svg+xml").body(svg))
}

/// `GET /groups/invites/{token}/qr.png`: the join page's link as a QR code (PNG); no sign-in.
#[utoipa::path(tag = "groups", responses(
    (status = 200, description = "The QR code", content_type = "image/png", body = Vec<u8>), QrErrors))]
#[get("/groups/invites/{token}/qr.png")]
async fn qr_png(state: web::Data<AppState>, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let (i, _, _) = load_invite(&state, path.into_inner()).await?;
    let img = qr(&state, &i.token)?.render::<image::Luma<u8>>().min_dimensions(256, 256).build();
    let mut png = std::io::Cursor::new(Vec::new());
    img.write_to(&mut png, image::ImageFormat::Png).map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().content_type("image/png").body(png.into_inner()))
}

/// Body of `POST /groups/join`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinBody {
    /// The invite link's token.
    token: String,
}

crate::errors!(
    /// Errors of `POST /groups/join`.
    JoinErrors: InviteNotFound, InviteRevoked, InviteExpired, InviteUsedUp, GroupDissolved = 410, AlreadyMember,
    GroupFull, GroupDissolved, GroupNotFound
);

/// `POST /groups/join` `{token}`: joins through a valid invite link.
#[utoipa::path(tag = "groups", security(("bearer" = [])), responses(
    (status = 200, description = "The group joined", body = GroupView), JoinErrors))]
#[post("/groups/join")]
async fn join(state: web::Data<AppState>, me: Authed, body: web::Json<JoinBody>) -> ApiResult<HttpResponse> {
    let (i, g, _) = load_invite(&state, body.into_inner().token).await?;
    let now = state.clock.now_ms();
    if let Some(p) = invite_problem(&i, &g, now) {
        return Err(p);
    }
    let (uid, gid, token) = (me.user.id, g.id, i.token.clone());
    let already = state.db.read(move |c| Ok(q::member(c, gid, uid)?.is_some_and(|m| m.left_seq.is_none()))).await?;
    if already {
        return Err(ApiError::new(ErrorCode::AlreadyMember, "you are a member already"));
    }
    command(&state, gid, me.id(), GroupOp::JoinByInvite { token }).await?;
    let (g, m, n) = mine(&state, &me, gid).await?;
    Ok(HttpResponse::Ok().json(GroupView::new(&g, &m, n)))
}

/// Who has read a message.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Readers {
    seq: i64,
    /// Members whose read mark is at `seq` or later.
    read: Vec<PublicUser>,
    /// Members who joined before it and have not read it.
    unread: Vec<PublicUser>,
}

crate::errors!(
    /// Errors of `GET /groups/{id}/messages/{seq}/readers`.
    ReadersErrors: GroupNotFound, MessageNotFound, NotYourMessage
);

/// `GET /groups/{id}/messages/{seq}/readers`: who has read a message (its sender asks).
#[utoipa::path(tag = "groups", security(("bearer" = [])), responses(
    (status = 200, description = "Readers and non-readers", body = Readers), ReadersErrors))]
#[get("/groups/{id}/messages/{seq}/readers")]
async fn readers(state: web::Data<AppState>, me: Authed, path: web::Path<(i64, i64)>) -> ApiResult<HttpResponse> {
    let (id, seq) = path.into_inner();
    mine(&state, &me, id).await?;
    let conv = ConvId::group(GroupId(id));
    let msg = state
        .store
        .get(conv, seq)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::MessageNotFound, "no such message"))?;
    if msg.sender != me.id() || msg.kind != MessageKind::Text {
        return Err(chat_error(ChatError::NotYourMessage));
    }
    let rows = state
        .db
        .read(move |c| {
            let marks = q::read_marks(c, id)?;
            let members = q::active_members(c, id)?;
            let ids: Vec<i64> = members.iter().map(|m| m.user_id).filter(|u| *u != msg.sender.0).collect();
            let people = users::find_many(c, &ids)?;
            Ok((marks, members, people))
        })
        .await?;
    let (marks, members, people) = rows;
    let (mut read, mut unread) = (Vec::new(), Vec::new());
    for m in members.iter().filter(|m| m.user_id != me.user.id && m.joined_seq < seq) {
        let Some(u) = people.iter().find(|p| p.id == m.user_id) else { continue };
        let r = marks.iter().find(|(uid, _)| *uid == m.user_id).map(|(_, s)| *s).unwrap_or(0);
        if r >= seq {
            read.push(PublicUser::from(u));
        } else {
            unread.push(PublicUser::from(u));
        }
    }
    Ok(HttpResponse::Ok().json(Readers { seq, read, unread }))
}
