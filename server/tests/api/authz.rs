//! The authorization matrix, generated from the spec: every operation whose path takes an id
//! (user, group, conversation, request, category, device, invite token, seq, node) is tried as
//! each of eight callers, and every answer's status is asserted; then every WebSocket frame
//! that names a conversation is tried as each kind of user on a 1:1 and a group conversation.
//!
//! The callers: no token, a malformed token, a logged-out token, the operators' admin token,
//! and four users: a stranger, a member, an admin and the owner. In a group they are what the
//! names say; for a 1:1 conversation the owner and the member are its two users (friends) and
//! the admin is a third user, the owner's friend; for a user's own things (devices, categories,
//! friend requests, friendships) the owner is that user. The world is built anew for every cell
//! that could change it (a user calling anything but GET, or the operator calling the admin
//! API); the other cells share one.

use std::collections::BTreeSet;
use std::time::Duration;

use actix_web::http::{Method, StatusCode};
use serde_json::{json, Value};
use server::config::Settings;

use crate::helpers::{Http, TestApp, TestResult, User};
use crate::ws_client::{conv_of, WsClient};

const OPERATOR: &str = "authz-operator-token";

fn with_admin(s: &mut Settings) {
    s.admin.token = OPERATOR.into();
}

/// A Web Push subscription (the keys of RFC 8291's example; `{n}` makes the endpoint unique).
const WEBPUSH_BODY: &str = r#"{"kind": "webpush", "endpoint": "https://push.example.net/s/{n}", "keys": {"p256dh": "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4", "auth": "BTBZMqHH6r4Tts7J_aSIgg"}}"#;

/// The callers, in the order of the expected-status rows.
const ROLES: [&str; 8] = ["none", "malformed", "logged_out", "operator", "stranger", "member", "admin", "owner"];

/// Everyone and everything a cell can name.
struct World {
    owner: User,
    member: User,
    admin: User,
    stranger: User,
    /// A plain member of the group, the target of member changes.
    target: User,
    /// A token of the owner's that logged out.
    logged_out: String,
    /// A second device of the owner's.
    device: i64,
    /// A Web Push target of that device.
    push_target: i64,
    /// A category of the owner's (not the default one).
    category: i64,
    /// A pending friend request to the owner.
    request: i64,
    group: i64,
    /// An invite link of the group, made by the owner.
    token: String,
    /// The 1:1 conversation of the owner and the member.
    direct: String,
    /// A text message of the owner's in each.
    dseq: i64,
    gseq: i64,
    /// An image of the owner's sent in each.
    dupload: String,
    gupload: String,
}

async fn ok(got: (StatusCode, Value), want: StatusCode, what: &str) -> TestResult<Value> {
    assert_eq!(got.0, want, "{what}: {}", got.1);
    Ok(got.1)
}

impl World {
    async fn build(app: &Http, n: usize) -> TestResult<Self> {
        let name = |r: &str| format!("w{n}_{r}");
        let owner = app.user(&name("owner")).await?;
        let member = app.user(&name("member")).await?;
        let admin = app.user(&name("admin")).await?;
        let stranger = app.user(&name("stranger")).await?;
        let target = app.user(&name("target")).await?;
        let requester = app.user(&name("asker")).await?;
        for u in [&member, &admin, &target] {
            app.befriend(&owner, u).await?;
        }
        let second = app.login(&owner.username).await?;
        let gone = app.login(&owner.username).await?;
        ok(
            app.call(Method::POST, "/api/v1/auth/logout", Some(&gone.token), None).await?,
            StatusCode::NO_CONTENT,
            "logout",
        )
        .await?;
        let c = ok(
            app.post("/api/v1/friend/categories", Some(&owner.token), json!({"name": "work"})).await?,
            StatusCode::CREATED,
            "category",
        )
        .await?;
        let r = ok(
            app.post("/api/v1/friend/request", Some(&requester.token), json!({"to_user_id": owner.id})).await?,
            StatusCode::CREATED,
            "request",
        )
        .await?;
        let body = json!({"name": "g", "member_ids": [member.id, admin.id, target.id]});
        let g = ok(app.post("/api/v1/groups", Some(&owner.token), body).await?, StatusCode::CREATED, "group").await?;
        let group = g["id"].as_i64().ok_or("no group id")?;
        ok(
            app.put(&format!("/api/v1/groups/{group}/admins/{}", admin.id), &owner.token, json!({})).await?,
            StatusCode::NO_CONTENT,
            "admin",
        )
        .await?;
        let i = ok(
            app.post(&format!("/api/v1/groups/{group}/invites"), Some(&owner.token), json!({})).await?,
            StatusCode::CREATED,
            "invite",
        )
        .await?;
        ok(
            app.post("/api/v1/conversations", Some(&owner.token), json!({"peer_user_id": member.id})).await?,
            StatusCode::OK,
            "open",
        )
        .await?;
        let direct = conv_of(&owner, &member);
        let mut ws = WsClient::connect(app, &owner).await?;
        let dseq = ws.say(&direct, "d1", "hello").await?["seq"].as_i64().ok_or("no seq")?;
        let gseq = ws.say(&format!("g:{group}"), "g1", "hello all").await?["seq"].as_i64().ok_or("no seq")?;
        let mut uploads = Vec::new();
        for (conv, id) in [(direct.clone(), "du"), (format!("g:{group}"), "gu")] {
            let mut png = std::io::Cursor::new(Vec::new());
            image::RgbImage::new(8, 8).write_to(&mut png, image::ImageFormat::Png)?;
            let (_, up) = app
                .raw(Method::POST, "/api/v1/uploads?name=p.png", Some(&owner.token), "image/png", png.into_inner())
                .await?;
            let up = up["id"].as_str().ok_or("no upload id")?.to_owned();
            ws.send(json!({"type": "send", "id": id, "conv": conv, "body": "pic", "attachment": up})).await?;
            ws.expect("ack").await?;
            uploads.push(up);
        }
        let (gupload, dupload) = (uploads.pop().ok_or("upload")?, uploads.pop().ok_or("upload")?);
        let t = ok(
            app.post(
                &format!("/api/v1/devices/{}/push", second.device_id),
                Some(&owner.token),
                serde_json::from_str(&WEBPUSH_BODY.replace("{n}", &n.to_string()))?,
            )
            .await?,
            StatusCode::CREATED,
            "push target",
        )
        .await?;
        Ok(World {
            push_target: t["id"].as_i64().ok_or("no target id")?,
            logged_out: gone.token,
            device: second.device_id,
            category: c["id"].as_i64().ok_or("no category id")?,
            request: r["id"].as_i64().ok_or("no request id")?,
            group,
            token: i["token"].as_str().ok_or("no token")?.to_owned(),
            direct,
            dseq,
            gseq,
            dupload,
            gupload,
            owner,
            member,
            admin,
            stranger,
            target,
        })
    }

    /// The token a role sends (`None`: no header).
    fn token(&self, role: &str) -> Option<String> {
        match role {
            "none" => None,
            "malformed" => Some("not a token!".into()),
            "logged_out" => Some(self.logged_out.clone()),
            "operator" => Some(OPERATOR.into()),
            "stranger" => Some(self.stranger.token.clone()),
            "member" => Some(self.member.token.clone()),
            "admin" => Some(self.admin.token.clone()),
            _ => Some(self.owner.token.clone()),
        }
    }

    /// A row's path with the world's ids in place of its placeholders.
    fn path(&self, pattern: &str) -> String {
        pattern
            .replace("{owner}", &self.owner.id.to_string())
            .replace("{member}", &self.member.id.to_string())
            .replace("{admin}", &self.admin.id.to_string())
            .replace("{target}", &self.target.id.to_string())
            .replace("{device}", &self.device.to_string())
            .replace("{push_target}", &self.push_target.to_string())
            .replace("{category}", &self.category.to_string())
            .replace("{request}", &self.request.to_string())
            .replace("{group}", &self.group.to_string())
            .replace("{token}", &self.token)
            .replace("{direct}", &self.direct)
            .replace("{dseq}", &self.dseq.to_string())
            .replace("{gseq}", &self.gseq.to_string())
            .replace("{dupload}", &self.dupload)
            .replace("{gupload}", &self.gupload)
    }
}

/// One row of the matrix: the spec operation, the concrete request, and the status for each of
/// [`ROLES`].
struct Row {
    op: &'static str,
    path: &'static str,
    /// JSON text, with the same placeholders as the path.
    body: Option<&'static str>,
    want: [u16; 8],
}

fn row(op: &'static str, path: &'static str, body: Option<&'static str>, want: [u16; 8]) -> Row {
    Row { op, path, body, want }
}

/// The expected statuses. Unauthenticated callers and the operator get 401 from the user API
/// (the invite-link previews need no sign-in); users get 401 from the admin API.
fn rows() -> Vec<Row> {
    vec![
        // Accounts and users.
        row(
            "DELETE /api/v1/auth/devices/{id}",
            "/api/v1/auth/devices/{device}",
            None,
            [401, 401, 401, 401, 404, 404, 404, 204],
        ),
        row("GET /api/v1/users/{id}", "/api/v1/users/{owner}", None, [401, 401, 401, 401, 200, 200, 200, 200]),
        // Push targets of a device (the owner's second device).
        row(
            "POST /api/v1/devices/{id}/push",
            "/api/v1/devices/{device}/push",
            Some(
                r#"{"kind": "webpush", "endpoint": "https://push.example.net/again", "keys": {"p256dh": "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4", "auth": "BTBZMqHH6r4Tts7J_aSIgg"}}"#,
            ),
            [401, 401, 401, 401, 404, 404, 404, 201],
        ),
        row(
            "GET /api/v1/devices/{id}/push",
            "/api/v1/devices/{device}/push",
            None,
            [401, 401, 401, 401, 404, 404, 404, 200],
        ),
        row(
            "DELETE /api/v1/devices/{id}/push",
            "/api/v1/devices/{device}/push",
            None,
            [401, 401, 401, 401, 404, 404, 404, 204],
        ),
        row(
            "DELETE /api/v1/devices/{id}/push/{target_id}",
            "/api/v1/devices/{device}/push/{push_target}",
            None,
            [401, 401, 401, 401, 404, 404, 404, 204],
        ),
        // Friend requests, categories, friends (the owner's).
        row(
            "PUT /api/v1/friend/request/{id}",
            "/api/v1/friend/request/{request}",
            Some(r#"{"action": "reject"}"#),
            [401, 401, 401, 401, 404, 404, 404, 200],
        ),
        row(
            "PATCH /api/v1/friend/categories/{id}",
            "/api/v1/friend/categories/{category}",
            Some(r#"{"name": "renamed"}"#),
            [401, 401, 401, 401, 404, 404, 404, 200],
        ),
        row(
            "DELETE /api/v1/friend/categories/{id}",
            "/api/v1/friend/categories/{category}",
            None,
            [401, 401, 401, 401, 404, 404, 404, 200],
        ),
        row(
            "GET /api/v1/friends/{user_id}",
            "/api/v1/friends/{member}",
            None,
            [401, 401, 401, 401, 404, 404, 404, 200],
        ),
        row(
            "PATCH /api/v1/friends/{user_id}",
            "/api/v1/friends/{member}",
            Some(r#"{"dnd": true}"#),
            [401, 401, 401, 401, 404, 404, 404, 200],
        ),
        row(
            "DELETE /api/v1/friends/{user_id}",
            "/api/v1/friends/{member}",
            None,
            [401, 401, 401, 401, 404, 404, 404, 204],
        ),
        // Blocks: anyone may block anyone but themselves; unblocking is idempotent.
        row("PUT /api/v1/blocks/{user_id}", "/api/v1/blocks/{member}", None, [401, 401, 401, 401, 204, 400, 204, 204]),
        row(
            "DELETE /api/v1/blocks/{user_id}",
            "/api/v1/blocks/{member}",
            None,
            [401, 401, 401, 401, 204, 204, 204, 204],
        ),
        // Conversations: the 1:1 one of owner and member, and the group's.
        row(
            "PATCH /api/v1/conversations/{conv}",
            "/api/v1/conversations/{direct}",
            Some(r#"{"pinned": true}"#),
            [401, 401, 401, 401, 404, 200, 404, 200],
        ),
        row(
            "PATCH /api/v1/conversations/{conv}",
            "/api/v1/conversations/g:{group}",
            Some(r#"{"pinned": true}"#),
            [401, 401, 401, 401, 404, 200, 200, 200],
        ),
        row(
            "DELETE /api/v1/conversations/{conv}",
            "/api/v1/conversations/{direct}",
            None,
            [401, 401, 401, 401, 404, 204, 404, 204],
        ),
        row(
            "DELETE /api/v1/conversations/{conv}",
            "/api/v1/conversations/g:{group}",
            None,
            [401, 401, 401, 401, 404, 204, 204, 204],
        ),
        row(
            "GET /api/v1/conversations/{conv}/messages",
            "/api/v1/conversations/{direct}/messages",
            None,
            [401, 401, 401, 401, 404, 200, 404, 200],
        ),
        row(
            "GET /api/v1/conversations/{conv}/messages",
            "/api/v1/conversations/g:{group}/messages",
            None,
            [401, 401, 401, 401, 404, 200, 200, 200],
        ),
        row(
            "DELETE /api/v1/conversations/{conv}/messages",
            "/api/v1/conversations/{direct}/messages",
            None,
            [401, 401, 401, 401, 404, 200, 404, 200],
        ),
        row(
            "DELETE /api/v1/conversations/{conv}/messages",
            "/api/v1/conversations/g:{group}/messages",
            None,
            [401, 401, 401, 401, 404, 200, 200, 200],
        ),
        row(
            "DELETE /api/v1/conversations/{conv}/messages/{seq}",
            "/api/v1/conversations/{direct}/messages/{dseq}",
            None,
            [401, 401, 401, 401, 404, 204, 404, 204],
        ),
        row(
            "DELETE /api/v1/conversations/{conv}/messages/{seq}",
            "/api/v1/conversations/g:{group}/messages/{gseq}",
            None,
            [401, 401, 401, 401, 404, 204, 204, 204],
        ),
        // Groups.
        row("GET /api/v1/groups/{id}", "/api/v1/groups/{group}", None, [401, 401, 401, 401, 404, 200, 200, 200]),
        row(
            "PATCH /api/v1/groups/{id}",
            "/api/v1/groups/{group}",
            Some(r#"{"name": "renamed"}"#),
            [401, 401, 401, 401, 404, 403, 200, 200],
        ),
        row("DELETE /api/v1/groups/{id}", "/api/v1/groups/{group}", None, [401, 401, 401, 401, 404, 403, 403, 204]),
        row(
            "GET /api/v1/groups/{id}/members",
            "/api/v1/groups/{group}/members",
            None,
            [401, 401, 401, 401, 404, 200, 200, 200],
        ),
        row(
            "POST /api/v1/groups/{id}/members",
            "/api/v1/groups/{group}/members",
            Some(r#"{"user_ids": []}"#),
            [401, 401, 401, 401, 404, 200, 200, 200],
        ),
        row(
            "DELETE /api/v1/groups/{id}/members/{user_id}",
            "/api/v1/groups/{group}/members/{target}",
            None,
            [401, 401, 401, 401, 404, 403, 204, 204],
        ),
        row(
            "PUT /api/v1/groups/{id}/members/{user_id}/mute",
            "/api/v1/groups/{group}/members/{target}/mute",
            Some(r#"{"until": 4102444800000}"#),
            [401, 401, 401, 401, 404, 403, 204, 204],
        ),
        row(
            "DELETE /api/v1/groups/{id}/members/{user_id}/mute",
            "/api/v1/groups/{group}/members/{target}/mute",
            None,
            [401, 401, 401, 401, 404, 403, 204, 204],
        ),
        row(
            "POST /api/v1/groups/{id}/leave",
            "/api/v1/groups/{group}/leave",
            None,
            [401, 401, 401, 401, 404, 204, 204, 409],
        ),
        row(
            "POST /api/v1/groups/{id}/transfer",
            "/api/v1/groups/{group}/transfer",
            Some(r#"{"user_id": {target}}"#),
            [401, 401, 401, 401, 404, 403, 403, 200],
        ),
        row(
            "PUT /api/v1/groups/{id}/admins/{user_id}",
            "/api/v1/groups/{group}/admins/{target}",
            None,
            [401, 401, 401, 401, 404, 403, 403, 204],
        ),
        row(
            "DELETE /api/v1/groups/{id}/admins/{user_id}",
            "/api/v1/groups/{group}/admins/{admin}",
            None,
            [401, 401, 401, 401, 404, 403, 403, 204],
        ),
        row(
            "POST /api/v1/groups/{id}/invites",
            "/api/v1/groups/{group}/invites",
            Some(r#"{}"#),
            [401, 401, 401, 401, 404, 201, 201, 201],
        ),
        row(
            "GET /api/v1/groups/{id}/invites",
            "/api/v1/groups/{group}/invites",
            None,
            [401, 401, 401, 401, 404, 200, 200, 200],
        ),
        row(
            "DELETE /api/v1/groups/{id}/invites/{token}",
            "/api/v1/groups/{group}/invites/{token}",
            None,
            [401, 401, 401, 401, 404, 403, 204, 204],
        ),
        row(
            "GET /api/v1/groups/{id}/messages/{seq}/readers",
            "/api/v1/groups/{group}/messages/{gseq}/readers",
            None,
            [401, 401, 401, 401, 404, 403, 403, 200],
        ),
        // Uploads: the readers of the message carrying them (the 1:1 one and the group's).
        row("GET /api/v1/uploads/{id}", "/api/v1/uploads/{dupload}", None, [401, 401, 401, 401, 404, 200, 404, 200]),
        row("GET /api/v1/uploads/{id}", "/api/v1/uploads/{gupload}", None, [401, 401, 401, 401, 404, 200, 200, 200]),
        row(
            "GET /api/v1/uploads/{id}/thumb",
            "/api/v1/uploads/{dupload}/thumb",
            None,
            [401, 401, 401, 401, 404, 200, 404, 200],
        ),
        row(
            "GET /api/v1/uploads/{id}/thumb",
            "/api/v1/uploads/{gupload}/thumb",
            None,
            [401, 401, 401, 401, 404, 200, 200, 200],
        ),
        // Invite links: the token is the secret, no sign-in needed.
        row("GET /api/v1/groups/invites/{token}", "/api/v1/groups/invites/{token}", None, [200; 8]),
        row("GET /api/v1/groups/invites/{token}/qr.svg", "/api/v1/groups/invites/{token}/qr.svg", None, [200; 8]),
        row("GET /api/v1/groups/invites/{token}/qr.png", "/api/v1/groups/invites/{token}/qr.png", None, [200; 8]),
        // The admin API: the operator's token only.
        row(
            "POST /admin/v1/nodes/{id}/drain",
            "/admin/v1/nodes/no-such-node/drain",
            None,
            [401, 401, 401, 404, 401, 401, 401, 401],
        ),
        row(
            "GET /admin/v1/users/{id}/sessions",
            "/admin/v1/users/{member}/sessions",
            None,
            [401, 401, 401, 200, 401, 401, 401, 401],
        ),
        row(
            "POST /admin/v1/users/{id}/kick",
            "/admin/v1/users/{member}/kick",
            None,
            [401, 401, 401, 200, 401, 401, 401, 401],
        ),
        row(
            "POST /admin/v1/users/{id}/ban",
            "/admin/v1/users/{member}/ban",
            None,
            [401, 401, 401, 200, 401, 401, 401, 401],
        ),
        row(
            "POST /admin/v1/users/{id}/unban",
            "/admin/v1/users/{member}/unban",
            None,
            [401, 401, 401, 200, 401, 401, 401, 401],
        ),
        row(
            "GET /admin/v1/conversations/{conv}/owner",
            "/admin/v1/conversations/{direct}/owner",
            None,
            [401, 401, 401, 200, 401, 401, 401, 401],
        ),
        row(
            "GET /admin/v1/conversations/{conv}/owner",
            "/admin/v1/conversations/g:{group}/owner",
            None,
            [401, 401, 401, 200, 401, 401, 401, 401],
        ),
    ]
}

async fn send(
    app: &Http,
    method: &Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> TestResult<StatusCode> {
    if path.ends_with(".png") || path.ends_with(".svg") || path.starts_with("/api/v1/uploads/") {
        // Images: the status only (the answer is still checked against the spec).
        let mut got = awc::Client::default().get(format!("{}{path}", app.base));
        if let Some(t) = token {
            got = got.insert_header(("Authorization", format!("Bearer {t}")));
        }
        let status = got.send().await?.status();
        crate::conformance::check_response(crate::conformance::spec(app).await?, method, path, status, &Value::Null)?;
        return Ok(status);
    }
    Ok(app.call(method.clone(), path, token, body).await?.0)
}

async fn http_matrix(app: TestApp) -> TestResult {
    let spec = crate::conformance::spec(&app).await?;
    let rows = rows();
    // Generated from the spec: every operation with a path parameter has a row, and every row
    // names an operation of the spec.
    let mut with_ids = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().ok_or("no paths")? {
        for (method, op) in item.as_object().ok_or("bad path item")? {
            if op["parameters"].as_array().is_some_and(|p| p.iter().any(|p| p["in"] == "path")) {
                with_ids.insert(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    let covered: BTreeSet<String> = rows.iter().map(|r| r.op.to_owned()).collect();
    let missing: Vec<_> = with_ids.difference(&covered).collect();
    let unknown: Vec<_> = covered.difference(&with_ids).collect();
    assert!(missing.is_empty(), "operations with ids and no row in the matrix: {missing:?}");
    assert!(unknown.is_empty(), "rows for operations the spec does not have: {unknown:?}");

    let mut worlds = 0;
    let shared = World::build(&app, worlds).await?;
    let mut cells = 0;
    let mut wrong = Vec::new();
    for r in &rows {
        let (method, _) = r.op.split_once(' ').ok_or("bad op")?;
        let method = Method::from_bytes(method.as_bytes())?;
        let admin_api = r.op.contains(" /admin/");
        for (i, role) in ROLES.iter().enumerate() {
            let user = i >= 4;
            let changes = (user && !admin_api && method != Method::GET) || (admin_api && *role == "operator");
            let fresh;
            let world = if changes {
                worlds += 1;
                fresh = World::build(&app, worlds).await?;
                &fresh
            } else {
                &shared
            };
            let path = world.path(r.path);
            let token = world.token(role);
            let body = r.body.map(|b| serde_json::from_str::<Value>(&world.path(b))).transpose()?;
            let got = send(&app, &method, &path, token.as_deref(), body).await?;
            cells += 1;
            if got.as_u16() != r.want[i] {
                wrong.push(format!("{method} {path} as {role}: {} (expected {})", got.as_u16(), r.want[i]));
            }
        }
    }
    assert!(wrong.is_empty(), "{} of {cells} cells differ:\n{}", wrong.len(), wrong.join("\n"));
    eprintln!(
        "authz: {cells} HTTP cells ({} operations with ids, {} rows), {} worlds",
        with_ids.len(),
        rows.len(),
        worlds + 1
    );
    Ok(())
}

/// The frames that name a conversation, as sent in the matrix (`{seq}` is the owner's message).
fn frame(kind: &str, conv: &str, seq: i64, n: usize) -> Value {
    match kind {
        "send" => json!({"type": "send", "id": format!("m{n}"), "conv": conv, "body": "hi"}),
        "sync" => json!({"type": "sync", "conv": conv, "after_seq": 0}),
        "typing" => json!({"type": "typing", "conv": conv}),
        other => json!({"type": other, "conv": conv, "seq": seq}),
    }
}

/// What a frame answers: the kind of its reply, `error:<code>`, or `ok` for frames that answer
/// nothing when they succeed (no error within a short wait).
async fn outcome(c: &mut WsClient, f: Value, reply: Option<&str>) -> TestResult<String> {
    // Leftovers of earlier cells (receipts, typing, messages) are not this cell's.
    while c.next_within(Duration::from_millis(30)).await?.is_some() {}
    c.send(f).await?;
    let wait = if reply.is_some() { crate::ws_client::WAIT } else { Duration::from_millis(700) };
    let deadline = std::time::Instant::now() + wait;
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        let Some(v) = c.next_within(left).await? else { break };
        if v["type"] == "error" {
            return Ok(format!("error:{}", v["code"].as_str().unwrap_or_default()));
        }
        if reply.is_some_and(|r| v["type"] == r) {
            return Ok(v["type"].as_str().unwrap_or_default().to_owned());
        }
    }
    Ok(if reply.is_some() { "nothing".into() } else { "ok".into() })
}

async fn ws_matrix(app: TestApp) -> TestResult {
    let w = World::build(&app, 0).await?;
    let group = format!("g:{}", w.group);
    let roles = ["stranger", "member", "admin", "owner"];
    let mut clients = Vec::new();
    for u in [&w.stranger, &w.member, &w.admin, &w.owner] {
        clients.push(WsClient::connect(&app, u).await?);
    }
    const UNKNOWN: &str = "error:unknown_conversation";
    // (frame, conversation, reply on success, outcome per role: stranger, member, admin, owner).
    let direct_rows: [(&str, Option<&str>, [&str; 4]); 7] = [
        ("send", Some("ack"), [UNKNOWN, "ack", UNKNOWN, "ack"]),
        ("delivered", None, [UNKNOWN, "ok", UNKNOWN, "ok"]),
        ("read", None, [UNKNOWN, "ok", UNKNOWN, "ok"]),
        ("typing", None, [UNKNOWN, "ok", UNKNOWN, "ok"]),
        ("sync", Some("synced"), [UNKNOWN, "synced", UNKNOWN, "synced"]),
        ("delete", Some("deleted"), [UNKNOWN, "deleted", UNKNOWN, "deleted"]),
        ("recall", Some("recalled"), [UNKNOWN, "error:not_your_message", UNKNOWN, "recalled"]),
    ];
    let group_rows: [(&str, Option<&str>, [&str; 4]); 7] = [
        ("send", Some("ack"), [UNKNOWN, "ack", "ack", "ack"]),
        // Groups keep no delivered marks: `delivered` is accepted from anyone and does nothing.
        ("delivered", None, ["ok", "ok", "ok", "ok"]),
        ("read", None, [UNKNOWN, "ok", "ok", "ok"]),
        ("typing", None, [UNKNOWN, "ok", "ok", "ok"]),
        ("sync", Some("synced"), [UNKNOWN, "synced", "synced", "synced"]),
        ("delete", Some("deleted"), [UNKNOWN, "deleted", "deleted", "deleted"]),
        ("recall", Some("recalled"), [UNKNOWN, "error:not_your_message", "error:not_your_message", "recalled"]),
    ];
    let mut cells = 0;
    let mut wrong = Vec::new();
    for (conv, seq, rows) in [(&w.direct, w.dseq, &direct_rows), (&group, w.gseq, &group_rows)] {
        for (kind, reply, want) in rows {
            for (i, c) in clients.iter_mut().enumerate() {
                cells += 1;
                let got = outcome(c, frame(kind, conv, seq, cells), *reply).await?;
                if got != want[i] {
                    wrong.push(format!("{kind} on {conv} as {}: {got} (expected {})", roles[i], want[i]));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{} of {cells} WebSocket cells differ:\n{}", wrong.len(), wrong.join("\n"));
    eprintln!("authz: {cells} WebSocket cells");
    Ok(())
}

mod sqlite {
    use super::*;

    #[actix_rt::test]
    async fn http_matrix() -> TestResult {
        super::http_matrix(TestApp::spawn_tuned("sqlite", with_admin).await?).await
    }

    #[actix_rt::test]
    async fn ws_matrix() -> TestResult {
        super::ws_matrix(TestApp::spawn_tuned("sqlite", with_admin).await?).await
    }
}
