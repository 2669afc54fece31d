//! The `/ws` endpoint and `WsSession`, the actor of one WebSocket connection (user + device).
//!
//! The session authenticates at the upgrade (`Authorization: Bearer` or `?token=`), registers in
//! the node's `SessionRegistry`, pings on a heartbeat and closes silent connections, enforces the
//! per-session limits, decodes client frames and forwards them to conversation actors.
//!
//! Limits, each with its own error frame or close code:
//! - frame size: frames over `ws.max_frame_bytes` close the connection with 1009;
//! - flooding: a token bucket (`ws.frames_per_sec`, `ws.burst`); a frame over the rate gets an
//!   `error` frame `rate_limited` and is not processed; `ws.max_refusals` refusals in a row close
//!   with 1008;
//! - admission: at most `ws.max_in_flight` sends of a session wait for their ack; more get an
//!   `error` frame `overloaded` (retry later with the same id);
//! - slow readers: frames wait in a bounded mailbox (`ws.mailbox`) and, once encoded, in a budget
//!   of `ws.max_outbound_bytes`; a client that does not read is disconnected (1008,
//!   `slow_consumer`) instead of growing server memory.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, ActorContext, ActorFutureExt, AsyncContext, Handler, StreamHandler, WrapFuture};
use actix_web::{get, web, HttpRequest, HttpResponse};
use actix_web_actors::ws::{self, CloseCode, CloseReason};
use actors::command::{ChatError, Command, Outcome, Reply};
use actors::delivery::{DeliverToUser, Kick, KickReason, Push, Register, SessionHandle, Unregister};
use actors::hub::Hub;
use futures_util::StreamExt;
use schema::db::conversations;
use schema::error::ErrorCode;
use schema::message::Page;
use schema::protocol::{ClientFrame, ServerFrame, WireMessage};
use schema::{ConvId, ConvKind, DeviceId, UserId};

use crate::auth;
use crate::config::{ChatSection, WsSection};
use crate::error::ApiError;
use crate::state::AppState;

/// Close code for a connection replaced by a newer one of the same device.
pub const CLOSE_REPLACED: u16 = 4001;
/// Close code for a revoked token (logout, device removed, ban).
pub const CLOSE_REVOKED: u16 = 4003;
/// Close code for an admin kick.
pub const CLOSE_KICKED: u16 = 4004;
/// Longest client message id (characters).
pub const MAX_CLIENT_ID: usize = 64;
/// Page size of `sync` when the client gives none.
pub const DEFAULT_SYNC_LIMIT: i64 = 100;

static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

/// A token bucket: `rate` tokens per second up to `burst`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: u32, burst: u32) -> Self {
        TokenBucket { rate: f64::from(rate), burst: f64::from(burst), tokens: f64::from(burst), last: Instant::now() }
    }

    /// Takes a token at `now`; false when the bucket is empty.
    pub fn take(&mut self, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// `?token=` of `GET /ws` (for browsers, which cannot set headers on a WebSocket).
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WsQuery {
    /// The bearer token, when no `Authorization` header is sent.
    pub token: Option<String>,
}

crate::errors!(
    /// Errors of `GET /ws`, before the upgrade.
    ConnectErrors: WebsocketHandshake, Unauthorized, UserBanned, Draining
);

/// `GET /ws`: authenticates, then upgrades to a WebSocket served by a [`WsSession`].
///
/// The frames are described by `GET /api/v1/ws-schema.json` and docs/PROTOCOL.md.
#[utoipa::path(tag = "chat", security(("bearer" = [])), params(WsQuery), responses(
    (status = 101, description = "Switching to the WebSocket protocol"), ConnectErrors))]
#[get("/ws")]
pub async fn connect(
    req: HttpRequest,
    stream: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if state.hub.me.draining() {
        // The load balancer stops routing here once /readyz fails; a client that still arrives
        // is sent elsewhere.
        return Err(ApiError::new(ErrorCode::Draining, "this node is draining; reconnect"));
    }
    let token = auth::bearer_token(&req, true).ok_or_else(|| ApiError::unauthorized("missing bearer token"))?;
    let me = auth::authenticate(&state, &token)
        .await?
        .ok_or_else(|| ApiError::unauthorized("invalid, expired or revoked token"))?;
    let mut resp = ws::handshake(&req).map_err(|e| ApiError::new(ErrorCode::WebsocketHandshake, e.to_string()))?;
    let outbound = Arc::new(AtomicUsize::new(0));
    let session = WsSession {
        id: NEXT_SESSION.fetch_add(1, Ordering::Relaxed),
        user: me.id(),
        device: me.device,
        hub: state.hub.clone(),
        blobs: state.blobs.clone(),
        ws: state.settings.ws.clone(),
        chat: state.settings.chat.clone(),
        last_seen: Instant::now(),
        bucket: TokenBucket::new(state.settings.ws.frames_per_sec, state.settings.ws.burst),
        refusals: 0,
        in_flight: 0,
        dropped: Arc::new(AtomicBool::new(false)),
        outbound: outbound.clone(),
        closing: false,
        since: state.clock.now_ms(),
    };
    let codec = actix_http::ws::Codec::new().max_size(state.settings.ws.max_frame_bytes);
    let body = ws::WebsocketContext::with_codec(session, stream, codec).inspect(move |chunk| {
        if let Ok(bytes) = chunk {
            let n = bytes.len();
            let _ = outbound.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| Some(v.saturating_sub(n)));
        }
    });
    Ok(resp.streaming(body))
}

/// One WebSocket connection.
pub struct WsSession {
    id: u64,
    user: UserId,
    device: DeviceId,
    hub: Hub,
    /// Where upload bytes are (a recall removes the upload its message carried).
    blobs: Arc<dyn crate::blob::BlobStore>,
    ws: WsSection,
    chat: ChatSection,
    last_seen: Instant,
    bucket: TokenBucket,
    refusals: u32,
    /// Set by the registry when this session missed a frame (slow consumer).
    dropped: Arc<AtomicBool>,
    /// Sends waiting for their ack (admission control: a session cannot pile up unbounded work).
    in_flight: usize,
    /// Encoded bytes handed to the connection and not yet taken by the socket writer.
    outbound: Arc<AtomicUsize>,
    closing: bool,
    /// When it connected (ms since the epoch).
    since: i64,
}

type Ctx = ws::WebsocketContext<WsSession>;

impl WsSession {
    fn send_frame(&mut self, ctx: &mut Ctx, frame: &ServerFrame) {
        self.send_text(ctx, frame.encode().into());
    }

    fn send_text(&mut self, ctx: &mut Ctx, text: bytestring::ByteString) {
        if self.closing {
            return;
        }
        let queued = self.outbound.load(Ordering::Relaxed);
        if queued > self.ws.max_outbound_bytes {
            log::info!(session = self.id, user = self.user.0, device = self.device.0;
                "session {} of user {}: {queued} bytes unread, disconnecting", self.id, self.user);
            self.close(ctx, CloseCode::Policy, "slow_consumer");
            return;
        }
        self.outbound.fetch_add(text.len(), Ordering::Relaxed);
        actors::metrics::inc(&self.hub.metrics.frames_out);
        ctx.text(text);
    }

    fn error(&mut self, ctx: &mut Ctx, code: ErrorCode, message: impl Into<String>, id: Option<String>) {
        self.send_frame(ctx, &ServerFrame::error(code, message, id));
    }

    fn close(&mut self, ctx: &mut Ctx, code: CloseCode, description: &str) {
        if !self.closing {
            self.closing = true;
            ctx.close(Some(CloseReason { code, description: Some(description.to_owned()) }));
        }
        ctx.stop();
    }

    fn on_text(&mut self, text: &str, ctx: &mut Ctx) {
        if !self.bucket.take(Instant::now()) {
            self.refusals += 1;
            if self.refusals >= self.ws.max_refusals {
                self.close(ctx, CloseCode::Policy, "rate_limited");
            } else {
                self.error(ctx, ErrorCode::RateLimited, "too many frames; slow down", None);
            }
            return;
        }
        self.refusals = 0;
        let frame: ClientFrame = match serde_json::from_str(text) {
            Ok(f) => f,
            Err(e) => {
                let id = serde_json::from_str::<serde_json::Value>(text)
                    .ok()
                    .and_then(|v| v.get("id").and_then(|i| i.as_str()).map(str::to_owned));
                self.error(ctx, ErrorCode::InvalidFrame, format!("cannot decode frame: {e}"), id);
                return;
            }
        };
        self.on_frame(frame, ctx);
    }

    /// Refuses ids that cannot be a conversation of this user: 1:1 ids without them, or
    /// malformed ids. Group membership is checked by the group actor.
    fn check_conv(&mut self, conv: &ConvId, id: Option<&String>, ctx: &mut Ctx) -> Option<ConvKind> {
        let kind = match conv.kind() {
            Some(ConvKind::Direct(..)) if conv.peer_of(self.user).is_none() => None,
            other => other,
        };
        if kind.is_none() {
            self.error(ctx, ErrorCode::UnknownConversation, format!("no conversation {conv} of yours"), id.cloned());
        }
        kind
    }

    fn on_frame(&mut self, frame: ClientFrame, ctx: &mut Ctx) {
        match frame {
            ClientFrame::Send { id, conv, body, mentions, mention_all, reply_to, attachment, forward } => {
                if id.is_empty() || id.chars().count() > MAX_CLIENT_ID || id.chars().any(char::is_control) {
                    return self.error(ctx, ErrorCode::InvalidId, "id must be 1-64 characters", Some(id));
                }
                if forward.is_some() && (!body.is_empty() || attachment.is_some()) {
                    return self.error(
                        ctx,
                        ErrorCode::InvalidForward,
                        "a forward carries no body or attachment of its own",
                        Some(id),
                    );
                }
                if body.trim().is_empty() && attachment.is_none() && forward.is_none() {
                    return self.error(ctx, ErrorCode::EmptyMessage, "body is empty", Some(id));
                }
                if body.chars().count() > self.chat.max_message_chars {
                    let max = self.chat.max_message_chars;
                    let msg = format!("body is over {max} characters");
                    return self.error(ctx, ErrorCode::MessageTooLong, msg, Some(id));
                }
                let Some(kind) = self.check_conv(&conv, Some(&id), ctx) else { return };
                if self.in_flight >= self.ws.max_in_flight {
                    let n = self.ws.max_in_flight;
                    let msg = format!("{n} sends await their ack; retry later");
                    return self.error(ctx, ErrorCode::Overloaded, msg, Some(id));
                }
                if matches!(kind, ConvKind::Direct(..)) && (!mentions.is_empty() || mention_all) {
                    return self.error(ctx, ErrorCode::MentionsNotAllowed, "mentions are for group chats", Some(id));
                }
                let cmd = Command::Post {
                    sender: self.user,
                    device: self.device,
                    client_id: id.clone(),
                    body,
                    mentions,
                    mention_all,
                    reply_to,
                    attachment: None,
                    forwarded_from: None,
                };
                self.in_flight += 1;
                if attachment.is_none() && forward.is_none() {
                    return self.post(ctx, conv, cmd, id);
                }
                // What the message names is looked up first; the session's later frames wait
                // for it, so they still reach the owner in the order they were sent.
                let (hub, user) = (self.hub.clone(), self.user);
                let resolve = async move {
                    let mut cmd = cmd;
                    if let Command::Post { attachment: a, forwarded_from, body, .. } = &mut cmd {
                        if let Some(upload) = attachment {
                            *a = Some(crate::rich::attachment_of(&hub, user, &upload).await?);
                        }
                        if let Some(source) = forward {
                            let (text, file, from) = crate::rich::forward_of(&hub, user, &source).await?;
                            *body = text;
                            *a = file;
                            *forwarded_from = Some(from);
                        }
                    }
                    Ok::<_, ChatError>(cmd)
                };
                ctx.wait(resolve.into_actor(self).map(move |res, act, ctx| match res {
                    Ok(cmd) => act.post(ctx, conv, cmd, id),
                    Err(e) => {
                        act.in_flight = act.in_flight.saturating_sub(1);
                        act.chat_error(ctx, &e, Some(id));
                    }
                }));
            }
            ClientFrame::Edit { id, conv, seq, body } => {
                if id.is_empty() || id.chars().count() > MAX_CLIENT_ID || id.chars().any(char::is_control) {
                    return self.error(ctx, ErrorCode::InvalidId, "id must be 1-64 characters", Some(id));
                }
                if body.trim().is_empty() {
                    return self.error(ctx, ErrorCode::EmptyMessage, "body is empty", Some(id));
                }
                if body.chars().count() > self.chat.max_message_chars {
                    let max = self.chat.max_message_chars;
                    return self.error(
                        ctx,
                        ErrorCode::MessageTooLong,
                        format!("body is over {max} characters"),
                        Some(id),
                    );
                }
                if self.check_conv(&conv, Some(&id), ctx).is_none() {
                    return;
                }
                let cmd = Command::Edit { user: self.user, client_id: id.clone(), seq, body };
                self.route(ctx, conv, cmd, move |act, res, ctx| match res {
                    Ok(Reply::Acked(ack)) => {
                        act.send_frame(ctx, &ServerFrame::Ack { id: ack.id, conv: ack.conv, seq: ack.seq, ts: ack.ts })
                    }
                    Ok(Reply::Done) => {}
                    Err(e) => act.chat_error(ctx, &e, Some(id)),
                });
            }
            ClientFrame::React { conv, seq, emoji, on } => {
                if !self.chat.reactions.contains(&emoji) {
                    return self.error(
                        ctx,
                        ErrorCode::InvalidReaction,
                        "not one of the reactions offered (GET /api/v1/limits)",
                        None,
                    );
                }
                if self.check_conv(&conv, None, ctx).is_some() {
                    self.route(ctx, conv, Command::React { user: self.user, seq, emoji, on }, Self::report);
                }
            }
            ClientFrame::Delivered { conv, seq } => {
                if self.check_conv(&conv, None, ctx).is_some() {
                    self.route(ctx, conv, Command::Delivered { user: self.user, seq }, Self::report);
                }
            }
            ClientFrame::Read { conv, seq } => {
                if self.check_conv(&conv, None, ctx).is_some() {
                    self.route(ctx, conv, Command::Read { user: self.user, device: self.device, seq }, Self::report);
                }
            }
            ClientFrame::Recall { conv, seq } => {
                if self.check_conv(&conv, None, ctx).is_some() {
                    let (hub, blobs, c) = (self.hub.clone(), self.blobs.clone(), conv.clone());
                    self.route(ctx, conv, Command::Recall { user: self.user, seq }, move |act, res, ctx| {
                        if res.is_ok() {
                            // The upload the message carried goes when no other message needs it.
                            actix_web::rt::spawn(async move {
                                if let Err(e) = crate::uploads::after_recall(&hub, blobs.as_ref(), c, seq).await {
                                    log::warn!("removing the upload of a recalled message: {e}");
                                }
                            });
                        }
                        act.report(res, ctx);
                    });
                }
            }
            ClientFrame::Delete { conv, seq } => {
                if self.check_conv(&conv, None, ctx).is_some() {
                    let hub = self.hub.clone();
                    let user = self.user;
                    let fut = async move { hide_message(&hub, user, conv, seq).await };
                    ctx.spawn(fut.into_actor(self).map(|res, act, ctx| {
                        if let Err(e) = res {
                            act.chat_error(ctx, &e, None);
                        }
                    }));
                }
            }
            ClientFrame::Typing { conv } => {
                if self.check_conv(&conv, None, ctx).is_some() {
                    self.route(ctx, conv, Command::Typing { user: self.user }, Self::report);
                }
            }
            ClientFrame::Sync { conv, after_seq, limit } => {
                if self.check_conv(&conv, None, ctx).is_none() {
                    return;
                }
                let limit = limit.unwrap_or(DEFAULT_SYNC_LIMIT).clamp(1, self.chat.max_page);
                let hub = self.hub.clone();
                let user = self.user;
                let fut = async move { history(&hub, user, conv, Page::After(after_seq.max(0)), limit).await };
                ctx.spawn(fut.into_actor(self).map(|res, act, ctx| match res {
                    Ok(h) => act.send_frame(
                        ctx,
                        &ServerFrame::Synced {
                            conv: h.conv,
                            messages: h.messages,
                            has_more: h.has_more,
                            max_seq: h.max_seq,
                        },
                    ),
                    Err(e) => act.chat_error(ctx, &e, None),
                }));
            }
            ClientFrame::Ping { nonce } => self.send_frame(ctx, &ServerFrame::Pong { nonce }),
        }
    }

    /// Sends `cmd` to the owner of `conv` (on this node or another) and hands the answer to
    /// `done`. The command is queued at once, so one session's frames reach the owner in the
    /// order they were sent.
    fn route<F>(&mut self, ctx: &mut Ctx, conv: ConvId, cmd: Command, done: F)
    where
        F: FnOnce(&mut Self, Outcome, &mut Ctx) + 'static,
    {
        let answer = self.hub.route(conv, cmd);
        ctx.spawn(answer.into_actor(self).map(move |res, act, ctx| done(act, res, ctx)));
    }

    /// Routes a post and answers its ack (or refusal); `in_flight` was counted by the caller.
    fn post(&mut self, ctx: &mut Ctx, conv: ConvId, cmd: Command, id: String) {
        self.route(ctx, conv, cmd, move |act, res, ctx| {
            act.in_flight = act.in_flight.saturating_sub(1);
            match res {
                Ok(Reply::Acked(ack)) => {
                    log::debug!(target: "im::chat",
                        user = act.user.0, device = act.device.0, conv = ack.conv.as_str(), seq = ack.seq,
                        id = ack.id.as_str(); "message acked");
                    act.send_frame(ctx, &ServerFrame::Ack { id: ack.id, conv: ack.conv, seq: ack.seq, ts: ack.ts })
                }
                Ok(Reply::Done) => {}
                Err(e) => act.chat_error(ctx, &e, Some(id)),
            }
        });
    }

    /// Reports a refusal of a command that answers nothing when it succeeds.
    fn report(&mut self, res: Outcome, ctx: &mut Ctx) {
        if let Err(e) = res {
            self.chat_error(ctx, &e, None);
        }
    }

    fn chat_error(&mut self, ctx: &mut Ctx, e: &ChatError, id: Option<String>) {
        if let ChatError::Unavailable(cause) = e {
            log::warn!(session = self.id, user = self.user.0, device = self.device.0;
                "session {} of user {}: {cause}", self.id, self.user);
        }
        self.error(ctx, e.code(), e.to_string(), id);
    }
}

/// The seqs of `conv` that `user` may read: `(floor, ceiling)` (exclusive floor, inclusive
/// ceiling), or `UnknownConversation`. 1:1: from the clear-history watermark on. Groups: from
/// the join (or the watermark) up to the leave point of a member who left.
pub async fn access(hub: &Hub, user: UserId, conv: &ConvId) -> Result<(i64, i64), ChatError> {
    let (member, ceiling) = match conv.kind() {
        Some(ConvKind::Direct(..)) if conv.peer_of(user).is_some() => (0, i64::MAX),
        Some(ConvKind::Group(g)) => match actors::group::access(&hub.db, g, user).await? {
            Some((joined, left)) => (joined, left.unwrap_or(i64::MAX)),
            None => return Err(ChatError::UnknownConversation),
        },
        _ => return Err(ChatError::UnknownConversation),
    };
    let c = conv.clone();
    let state = hub.db.read(move |db| conversations::state(db, user.0, c.as_str())).await?;
    Ok((state.map(|s| s.cleared_seq).unwrap_or(0).max(member), ceiling))
}

/// A page of a conversation for one user.
pub struct History {
    pub conv: ConvId,
    pub messages: Vec<WireMessage>,
    pub has_more: bool,
    pub max_seq: i64,
}

/// Reads a page of `conv` as `user` sees it: only the seqs [`access`] allows, nothing they
/// deleted for themselves, recalled messages without bodies.
pub async fn history(hub: &Hub, user: UserId, conv: ConvId, page: Page, limit: i64) -> Result<History, ChatError> {
    let (floor, ceiling) = access(hub, user, &conv).await?;
    let c = conv.clone();
    let summary = hub.db.read(move |db| conversations::find(db, c.as_str())).await?;
    let max_seq = summary.map(|s| s.last_seq).unwrap_or(0).min(ceiling);
    let page = match page {
        Page::Before(n) => Page::Before(n.min(ceiling.saturating_add(1))),
        after => after,
    };
    // Messages the user deleted for themselves are skipped; keep reading until the page is full
    // or the conversation ends, so `has_more` is only true when visible messages follow.
    let mut out: Vec<WireMessage> = Vec::new();
    let mut cursor = page;
    let has_more = loop {
        let want = limit - out.len() as i64;
        let records = hub
            .store
            .page(conv.clone(), cursor, floor, want + 1)
            .await
            .map_err(|e| ChatError::Unavailable(e.to_string()))?;
        let before_cut = records.len();
        let records: Vec<_> = records.into_iter().filter(|m| m.seq <= ceiling).collect();
        let more = records.len() as i64 > want && records.len() == before_cut;
        let chunk: Vec<_> = match cursor {
            Page::After(_) => records.into_iter().take(want as usize).collect(),
            Page::Before(_) => records.into_iter().skip(usize::from(more)).collect(),
        };
        let (Some(lo), Some(hi)) = (chunk.first().map(|m| m.seq), chunk.last().map(|m| m.seq)) else {
            break false;
        };
        let c = conv.clone();
        let hidden = hub.db.read(move |db| conversations::hidden_between(db, user.0, c.as_str(), lo, hi)).await?;
        let visible = chunk.iter().filter(|m| !hidden.contains(&m.seq)).map(WireMessage::from);
        match cursor {
            Page::After(_) => {
                out.extend(visible);
                cursor = Page::After(hi);
            }
            Page::Before(_) => {
                let mut v: Vec<WireMessage> = visible.collect();
                v.append(&mut out);
                out = v;
                cursor = Page::Before(lo);
            }
        }
        if !more || out.len() as i64 >= limit {
            break more;
        }
    };
    let mut messages = out;
    crate::rich::enrich(hub, user, &conv, floor, ceiling, &mut messages).await?;
    Ok(History { conv, messages, has_more, max_seq })
}

/// Delete-for-me: hides one message for `user` and tells all their devices.
pub async fn hide_message(hub: &Hub, user: UserId, conv: ConvId, seq: i64) -> Result<(), ChatError> {
    let (floor, ceiling) = access(hub, user, &conv).await?;
    let exists = hub.store.get(conv.clone(), seq).await.map_err(|e| ChatError::Unavailable(e.to_string()))?;
    if exists.is_none() || seq <= floor || seq > ceiling {
        return Err(ChatError::MessageNotFound);
    }
    let (c, now) = (conv.clone(), hub.clock.now_ms());
    hub.db.write(move |db| conversations::hide_message(db, user.0, c.as_str(), seq, now)).await?;
    let frame = ServerFrame::Deleted { conv, seq }.encode();
    let _ = hub.sessions.try_send(DeliverToUser { user, frame: frame.into(), except: None });
    Ok(())
}

impl Actor for WsSession {
    type Context = Ctx;

    fn started(&mut self, ctx: &mut Ctx) {
        ctx.set_mailbox_capacity(self.ws.mailbox);
        let addr = ctx.address();
        self.hub.sessions.do_send(Register {
            user: self.user,
            device: self.device,
            session: SessionHandle {
                id: self.id,
                push: addr.clone().recipient(),
                kick: addr.recipient(),
                dropped: self.dropped.clone(),
                since: self.since,
            },
        });
        let hello = ServerFrame::Hello {
            user_id: self.user,
            device_id: self.device.0,
            node: self.hub.settings.node_id.clone(),
            heartbeat_secs: self.ws.heartbeat_interval_secs,
        };
        self.send_frame(ctx, &hello);
        let timeout = Duration::from_secs(self.ws.client_timeout_secs);
        ctx.run_interval(Duration::from_secs(self.ws.heartbeat_interval_secs), move |act, ctx| {
            if act.last_seen.elapsed() > timeout {
                log::info!(session = act.id, user = act.user.0, device = act.device.0;
                    "session {} of user {} timed out", act.id, act.user);
                act.close(ctx, CloseCode::Away, "heartbeat_timeout");
            } else {
                ctx.ping(b"");
            }
        });
    }

    fn stopped(&mut self, _: &mut Ctx) {
        self.hub.sessions.do_send(Unregister { user: self.user, device: self.device, session_id: self.id });
    }
}

impl Handler<Push> for WsSession {
    type Result = ();

    fn handle(&mut self, msg: Push, ctx: &mut Ctx) {
        if self.dropped.load(Ordering::Relaxed) {
            // The registry dropped this session (it fell behind): close now, skip the backlog.
            return self.close(ctx, CloseCode::Policy, "slow_consumer");
        }
        self.send_text(ctx, msg.0);
    }
}

impl Handler<Kick> for WsSession {
    type Result = ();

    fn handle(&mut self, msg: Kick, ctx: &mut Ctx) {
        let (code, why) = match msg.0 {
            KickReason::Replaced => (CloseCode::Other(CLOSE_REPLACED), "replaced"),
            KickReason::SlowConsumer => (CloseCode::Policy, "slow_consumer"),
            KickReason::Revoked => (CloseCode::Other(CLOSE_REVOKED), "revoked"),
            KickReason::Admin => (CloseCode::Other(CLOSE_KICKED), "kicked"),
            KickReason::Restarting => (CloseCode::Restart, "restarting"),
        };
        self.close(ctx, code, why);
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for WsSession {
    fn handle(&mut self, item: Result<ws::Message, ws::ProtocolError>, ctx: &mut Ctx) {
        self.last_seen = Instant::now();
        match item {
            Ok(ws::Message::Text(text)) => {
                actors::metrics::inc(&self.hub.metrics.frames_in);
                self.on_text(&text, ctx)
            }
            Ok(ws::Message::Ping(p)) => ctx.pong(&p),
            Ok(ws::Message::Pong(_)) => {}
            Ok(ws::Message::Binary(_)) | Ok(ws::Message::Continuation(_)) => {
                self.error(ctx, ErrorCode::UnsupportedFrame, "only JSON text frames are accepted", None)
            }
            Ok(ws::Message::Close(_)) => self.close(ctx, CloseCode::Normal, "bye"),
            Ok(ws::Message::Nop) => {}
            Err(ws::ProtocolError::Overflow) => self.close(ctx, CloseCode::Size, "frame_too_large"),
            Err(e) => {
                log::info!(session = self.id, user = self.user.0, device = self.device.0;
                    "session {} of user {}: protocol error {e}", self.id, self.user);
                self.close(ctx, CloseCode::Protocol, "protocol_error");
            }
        }
    }

    fn finished(&mut self, ctx: &mut Ctx) {
        ctx.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_bucket_allows_burst_then_rate() {
        let mut b = TokenBucket::new(10, 5);
        let t0 = Instant::now();
        assert!((0..5).all(|_| b.take(t0)));
        assert!(!b.take(t0));
        assert!(b.take(t0 + Duration::from_millis(100)));
        assert!(!b.take(t0 + Duration::from_millis(100)));
        // Idle time refills up to the burst, never beyond.
        let later = t0 + Duration::from_secs(60);
        assert!((0..5).all(|_| b.take(later)));
        assert!(!b.take(later));
    }
}
