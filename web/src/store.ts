// The app's state and everything that changes it: the session, the conversation list, the
// timelines, friends, requests and groups, fed by the HTTP API and the WebSocket's frames.
// Components read it and call its methods; `subscribe` tells them to render again.

import * as A from './api';
import * as T from './timeline';
import * as S from './session';
import * as P from './push';
import { Socket, type ConnState } from './socket';
import type {
  Category,
  Conversation,
  Friend,
  FriendRequest,
  Group,
  History,
  Login,
  Member,
  Attachment,
  Message,
  OwnUser,
  PublicUser,
  ServerFrame,
} from './types';

/** Refusals of a `send` that a resend with the same id will not change (PROTOCOL.md). */
const FINAL_SEND_ERRORS = new Set([
  'invalid_id', 'empty_message', 'message_too_long', 'mentions_not_allowed', 'unknown_conversation',
  'not_friends', 'group_dissolved', 'muted', 'mention_all_forbidden', 'invalid_mentions', 'invalid_frame',
  'invalid_reply', 'invalid_forward', 'message_not_found', 'upload_not_found', 'already_recalled',
]);
const PAGE = 50;
const RESEND_MS = 8_000;
/** A gap larger than this reloads the newest page instead of syncing every message. */
const SYNC_MAX = 400;
/** Messages kept per timeline; older ones are paged in again when scrolled to. */
const WINDOW = 1_000;
const TYPING_MS = 5_000;
export const RECALL_WINDOW_MS = 120_000;

export type View = 'chats' | 'contacts' | 'groups' | 'me' | 'join';
export interface Route {
  view: View;
  conv?: string;
  token?: string;
}

export function parseRoute(path: string): Route {
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  if (parts[0] === 'chat' && parts[1]) return { view: 'chats', conv: parts[1] };
  if (parts[0] === 'join' && parts[1]) return { view: 'join', token: parts[1] };
  if (parts[0] === 'contacts' || parts[0] === 'groups' || parts[0] === 'me') return { view: parts[0] };
  return { view: 'chats' };
}

export function convPath(conv: string): string {
  return `/chat/${conv}`;
}

/** The conversation list's order: pinned first, then by the last message, newest first. */
export function sortConvs(list: Conversation[]): Conversation[] {
  return [...list].sort(
    (a, b) =>
      Number(b.pinned) - Number(a.pinned) || (b.last_message?.ts ?? 0) - (a.last_message?.ts ?? 0) || b.max_seq - a.max_seq,
  );
}

export function directConv(a: number, b: number): string {
  return `d:${Math.min(a, b)}:${Math.max(a, b)}`;
}

let counter = 0;

export class Store {
  me: OwnUser | null = null;
  deviceId = 0;
  busy = false; // the browser's session is open in another tab
  route: Route = typeof location === 'undefined' ? { view: 'chats' } : parseRoute(location.pathname);
  conn: ConnState = 'stopped';
  connCode: number | undefined;
  retryAt: number | undefined;
  everConnected = false;
  convs = new Map<string, Conversation>();
  timelines = new Map<string, T.Timeline>();
  loading = new Set<string>();
  friends: Friend[] = [];
  categories: Category[] = [];
  requestsIn: FriendRequest[] = [];
  requestsOut: FriendRequest[] = [];
  groups = new Map<number, Group>();
  members = new Map<number, Member[]>();
  users = new Map<number, PublicUser>();
  typing = new Map<string, Map<number, number>>();
  notRecallable = new Set<string>();
  toast: { text: string; at: number } | null = null;
  notice: string | null = null;
  ready = false;
  /** From `GET /api/v1/limits`: how long my messages can be recalled, and how long they may be. */
  recallWindowMs = RECALL_WINDOW_MS;
  maxChars = 4000;
  /** How long my text messages can be edited (0: not at all), and the reactions offered. */
  editWindowMs = 15 * 60_000;
  reactions: string[] = [];
  maxReactions = 20;
  /** Upload limits (bytes per kind), when the server has uploads. */
  uploadLimits: { max_image_bytes: number; max_voice_bytes: number; max_file_bytes: number } | null = null;
  /** The message the composer replies to, per conversation. */
  replying = new Map<string, Message>();
  /** The message being edited in place (conv#seq), and edits sent but not acked (by client id). */
  editing: string | null = null;
  private edits = new Map<string, { conv: string; seq: number; body: string }>();
  /** Uploads in flight: conv -> file name and progress (0..1). */
  uploading = new Map<string, { name: string; progress: number; abort: () => void }>();

  private socket: Socket | null = null;
  private listeners = new Set<() => void>();
  private sentAt = new Map<string, number>();
  private syncing = new Set<string>();
  private timers = new Map<string, ReturnType<typeof setTimeout>>();
  private lastRecall: { conv: string; seq: number } | null = null;
  private resender: ReturnType<typeof setInterval> | undefined;
  private queued = false;

  subscribe(f: () => void): () => void {
    this.listeners.add(f);
    return () => this.listeners.delete(f);
  }

  /** Renders on the next frame, once for any number of changes. */
  changed(): void {
    if (this.queued) return;
    this.queued = true;
    queueMicrotask(() => {
      this.queued = false;
      for (const f of this.listeners) f();
    });
  }

  say(text: string): void {
    this.toast = { text, at: Date.now() };
    this.changed();
    this.later('toast', 5000, () => {
      if (this.toast && Date.now() - this.toast.at >= 4900) this.toast = null;
      this.changed();
    });
  }

  private later(key: string, ms: number, f: () => void) {
    if (this.timers.has(key)) return;
    this.timers.set(
      key,
      setTimeout(() => {
        this.timers.delete(key);
        f();
      }, ms),
    );
  }

  // ---- navigation ----

  navigate(path: string, replace = false): void {
    if (location.pathname !== path) {
      if (replace) history.replaceState(null, '', path);
      else history.pushState(null, '', path);
    }
    this.route = parseRoute(path);
    if (this.route.conv) void this.openConv(this.route.conv);
    this.changed();
  }

  // ---- session ----

  async boot(): Promise<void> {
    A.setUnauthorizedHandler(() => this.signedOut());
    addEventListener('popstate', () => this.navigate(location.pathname, true));
    document.addEventListener('visibilitychange', () => this.markRead());
    addEventListener('focus', () => this.markRead());
    A.get<{
      recall_window_secs: number;
      max_message_chars: number;
      edit_window_secs?: number;
      reactions?: string[];
      max_reactions_per_message?: number;
      uploads?: Store['uploadLimits'];
    }>('/limits').then((l) => {
      this.recallWindowMs = l.recall_window_secs * 1000;
      this.maxChars = l.max_message_chars;
      if (l.edit_window_secs !== undefined) this.editWindowMs = l.edit_window_secs * 1000;
      this.reactions = l.reactions ?? [];
      this.maxReactions = l.max_reactions_per_message ?? this.maxReactions;
      this.uploadLimits = l.uploads ?? null;
      this.changed();
    }, () => {});
    const saved = await S.restore();
    if (saved === 'busy') this.busy = true;
    else if (saved) {
      A.setToken(saved.token);
      try {
        const me = await A.get<OwnUser>('/users/me');
        await this.start(me, saved.device_id, saved.token);
      } catch (e) {
        if (!(e instanceof A.ApiError) || e.status === 401) S.forget();
        else this.say(String(e.message));
        A.setToken(null);
      }
    }
    this.ready = true;
    this.changed();
  }

  async login(body: { username?: string; phone?: string; password: string }): Promise<void> {
    const ua = navigator.userAgent;
    const browser = /Firefox/.test(ua) ? 'Firefox' : /Edg\//.test(ua) ? 'Edge' : /Chrom/.test(ua) ? 'Chrome' : /Safari/.test(ua) ? 'Safari' : 'browser';
    const res = await A.post<Login>('/auth/login', { ...body, device_name: `Web (${browser})` });
    await S.save({ token: res.token, device_id: res.device_id });
    A.setToken(res.token);
    this.busy = false;
    await this.start(res.user, res.device_id, res.token);
  }

  async register(body: { username: string; password: string; phone?: string; nickname?: string }): Promise<void> {
    await A.post('/auth/register', body);
    await this.login({ username: body.username, password: body.password });
  }

  async logout(): Promise<void> {
    try {
      await A.post('/auth/logout');
    } catch {
      // Signed out locally all the same.
    }
    this.signedOut();
  }

  private signedOut() {
    S.forget();
    A.setToken(null);
    this.socket?.stop();
    this.socket = null;
    clearInterval(this.resender);
    this.me = null;
    this.convs.clear();
    this.timelines.clear();
    this.friends = [];
    this.groups.clear();
    this.members.clear();
    this.everConnected = false;
    this.changed();
  }

  private async start(me: OwnUser, deviceId: number, token: string) {
    this.me = me;
    this.deviceId = deviceId;
    this.users.set(me.id, me);
    this.loadOutbox();
    await Promise.all([this.refreshConvs(), this.refreshFriends(), this.refreshGroups(), this.refreshRequests()]);
    this.socket = new Socket(token, {
      frame: (f) => this.onFrame(f),
      state: (s, info) => {
        this.conn = s;
        this.connCode = info.code;
        this.retryAt = info.retryAt;
        if (s === 'stopped' && info.code === 4003) this.signedOut();
        this.changed();
      },
    });
    this.socket.start();
    clearInterval(this.resender);
    this.resender = setInterval(() => this.resend(false), 2_000);
    if (this.route.conv) void this.openConv(this.route.conv);
    // A browser subscribed to pushes before registers itself for this device too.
    void P.refresh(deviceId).catch(() => {});
    this.changed();
  }

  reconnect(): void {
    this.socket?.retryNow();
  }

  // ---- lists ----

  async refreshConvs(): Promise<void> {
    const res = await A.get<{ items: Conversation[] }>('/conversations');
    const seen = new Set<string>();
    for (const c of res.items) {
      seen.add(c.conv);
      this.convs.set(c.conv, c);
      if (c.peer) this.users.set(c.peer.id, c.peer);
      const tl = this.timelines.get(c.conv);
      if (tl && c.kind === 'direct') {
        T.applyReceipt(tl, 'delivered', c.peer_delivered_seq ?? 0);
        T.applyReceipt(tl, 'read', c.peer_read_seq ?? 0);
      }
    }
    for (const k of [...this.convs.keys()]) if (!seen.has(k)) this.convs.delete(k);
    this.changed();
  }

  async refreshFriends(): Promise<void> {
    const [friends, cats] = await Promise.all([
      A.all<Friend>('/friends'),
      A.get<{ items: Category[] }>('/friend/categories'),
    ]);
    this.friends = friends;
    this.categories = cats.items;
    for (const f of friends) this.users.set(f.user.id, f.user);
    this.changed();
  }

  async refreshRequests(): Promise<void> {
    const [inc, out] = await Promise.all([
      A.get<{ items: FriendRequest[] }>('/friend/requests?direction=incoming&size=100'),
      A.get<{ items: FriendRequest[] }>('/friend/requests?direction=outgoing&size=100'),
    ]);
    this.requestsIn = inc.items;
    this.requestsOut = out.items;
    this.changed();
  }

  async refreshGroups(): Promise<void> {
    const res = await A.get<{ items: Group[] }>('/groups');
    this.groups = new Map(res.items.map((g) => [g.id, g]));
    this.changed();
  }

  async refreshGroup(id: number): Promise<void> {
    try {
      const [g, members] = await Promise.all([A.get<Group>(`/groups/${id}`), A.all<Member>(`/groups/${id}/members`)]);
      this.groups.set(id, g);
      this.members.set(id, members);
      for (const m of members) this.users.set(m.user.id, m.user);
    } catch (e) {
      if (e instanceof A.ApiError && e.code === 'group_not_found') {
        this.groups.delete(id);
        this.members.delete(id);
      } else throw e;
    }
    this.changed();
  }

  pendingIncoming(): FriendRequest[] {
    return this.requestsIn.filter((r) => r.status === 'pending' || r.status === 'ignored');
  }

  friend(id: number): Friend | undefined {
    return this.friends.find((f) => f.user.id === id);
  }

  /** The name to show for a user: my remark, else their nickname. */
  nameOf(id: number | null | undefined): string {
    if (id == null) return '';
    const f = this.friend(id);
    if (f?.remark) return f.remark;
    const u = this.users.get(id) ?? f?.user;
    if (u) return u.nickname || u.username;
    this.later('user-' + id, 0, () => {
      A.get<PublicUser>(`/users/${id}`)
        .then((u2) => {
          this.users.set(id, u2);
          this.changed();
        })
        .catch(() => {});
    });
    return `#${id}`;
  }

  convTitle(conv: string): string {
    const c = this.convs.get(conv);
    const gid = groupIdOf(conv);
    if (gid) return this.groups.get(gid)?.name ?? c?.group?.name ?? conv;
    const peer = c?.peer?.id ?? this.peerOf(conv);
    return this.nameOf(peer);
  }

  peerOf(conv: string): number | undefined {
    const m = /^d:(\d+):(\d+)$/.exec(conv);
    if (!m || !this.me) return undefined;
    const a = Number(m[1]);
    const b = Number(m[2]);
    return a === this.me.id ? b : a;
  }

  online(uid: number | undefined): boolean {
    return uid !== undefined && !!this.friend(uid)?.online;
  }

  typingIn(conv: string): number[] {
    const m = this.typing.get(conv);
    if (!m) return [];
    const now = Date.now();
    return [...m.entries()].filter(([, until]) => until > now).map(([u]) => u);
  }

  // ---- conversations ----

  async openWith(userId: number): Promise<void> {
    const c = await A.post<Conversation>('/conversations', { peer_user_id: userId });
    this.convs.set(c.conv, c);
    this.navigate(convPath(c.conv));
  }

  timeline(conv: string): T.Timeline {
    let tl = this.timelines.get(conv);
    if (!tl) {
      tl = T.emptyTimeline(conv);
      this.timelines.set(conv, tl);
    }
    return tl;
  }

  async openConv(conv: string): Promise<void> {
    if (!this.me) return;
    const tl = this.timeline(conv);
    if (!tl.loaded && !this.loading.has(conv)) {
      this.loading.add(conv);
      this.changed();
      try {
        const asked = Date.now();
        const page = await A.get<History>(`/conversations/${conv}/messages?limit=${PAGE}`);
        T.applyNewest(tl, page, this.me.id, asked);
                const c = this.convs.get(conv);
        if (c?.kind === 'direct') {
          T.applyReceipt(tl, 'delivered', c.peer_delivered_seq ?? 0);
          T.applyReceipt(tl, 'read', c.peer_read_seq ?? 0);
        }
        if (tl.pending.length) this.resend(true);
      } catch (e) {
        this.say(errorText(e));
      } finally {
        this.loading.delete(conv);
      }
      const gid = groupIdOf(conv);
      if (gid && !this.members.has(gid)) void this.refreshGroup(gid).catch(() => {});
    }
    this.markRead();
    this.changed();
  }

  /** Merges the current view of the newest page (edits and reactions made while I was away). */
  private async refreshNewest(conv: string): Promise<void> {
    const tl = this.timelines.get(conv);
    if (!tl || !this.me) return;
    const asked = Date.now();
    try {
      const page = await A.get<History>(`/conversations/${conv}/messages?limit=${PAGE}`);
      T.mergeMessages(tl, page.messages, this.me.id, asked);
      this.changed();
    } catch {
      // The next reconnect tries again.
    }
  }

  /** Loads the page before the oldest message held; resolves to whether anything was added. */
  async loadOlder(conv: string): Promise<boolean> {
    const tl = this.timelines.get(conv);
    if (!tl || !this.me) return false;
    const cursor = T.olderCursor(tl);
    if (cursor === null || this.loading.has(conv + '<')) return false;
    this.loading.add(conv + '<');
    try {
      const asked = Date.now();
      const page = await A.get<History>(`/conversations/${conv}/messages?before_seq=${cursor}&limit=${PAGE}`);
      T.applyOlder(tl, page, this.me.id, asked);
      this.changed();
      return page.messages.length > 0;
    } finally {
      this.loading.delete(conv + '<');
    }
  }

  isVisible(conv: string): boolean {
    return this.route.conv === conv && document.visibilityState === 'visible';
  }

  /** Sends `read` for the open conversation up to its newest message. */
  markRead(): void {
    const conv = this.route.conv;
    if (!conv || !this.me || !this.isVisible(conv)) return;
    const tl = this.timelines.get(conv);
    const c = this.convs.get(conv);
    if (!tl || !c || !tl.loaded) return;
    const seq = T.newestSeq(tl);
    if (seq <= c.read_seq) {
      if (c.unread || c.mentioned) {
        c.unread = 0;
        c.mentioned = false;
        this.changed();
      }
      return;
    }
    if (!this.socket?.send({ type: 'read', conv, seq })) return;
    c.read_seq = seq;
    c.unread = Math.max(0, c.max_seq - seq);
    c.mentioned = false;
    this.changed();
  }

  async setConv(conv: string, change: { pinned?: boolean; dnd?: boolean }): Promise<void> {
    const c = await A.patch<Conversation>(`/conversations/${conv}`, change);
    this.convs.set(conv, { ...this.convs.get(conv), ...c });
    this.changed();
  }

  async clearHistory(conv: string): Promise<void> {
    await A.del(`/conversations/${conv}/messages`);
    const tl = this.timelines.get(conv);
    if (tl) {
      tl.msgs = [];
      tl.hasOlder = false;
    }
    await this.refreshConvs();
  }

  async hideConv(conv: string): Promise<void> {
    await A.del(`/conversations/${conv}`);
    this.convs.delete(conv);
    if (this.route.conv === conv) this.navigate('/');
    this.changed();
  }

  // ---- sending ----

  private outboxKey() {
    return `im.outbox.${this.deviceId}`;
  }

  private loadOutbox() {
    try {
      const items: T.Pending[] = JSON.parse(localStorage.getItem(this.outboxKey()) ?? '[]');
      for (const p of items) T.addPending(this.timeline(p.conv), p);
    } catch {
      // A damaged outbox is dropped.
    }
  }

  private saveOutbox() {
    const all: T.Pending[] = [];
    for (const tl of this.timelines.values()) all.push(...tl.pending.filter((p) => !p.failed));
    if (all.length) localStorage.setItem(this.outboxKey(), JSON.stringify(all));
    else localStorage.removeItem(this.outboxKey());
  }

  send(
    conv: string,
    body: string,
    mentions: number[] = [],
    mentionAll = false,
    extra: { reply?: Message; attachment?: Attachment; forward?: Message } = {},
  ): void {
    if (!this.me) return;
    const id = `w${this.deviceId}-${Date.now().toString(36)}-${(counter++).toString(36)}`;
    const p: T.Pending = { id, conv, from: this.me.id, body, ts: Date.now() };
    if (mentions.length) p.mentions = mentions;
    if (mentionAll) p.mention_all = true;
    if (extra.reply) {
      p.reply_to = extra.reply.seq;
      p.reply = T.quoteOf(extra.reply);
    }
    if (extra.attachment) p.attachment = extra.attachment;
    if (extra.forward) {
      const f = extra.forward;
      p.forward = { conv: f.conv, seq: f.seq };
      p.forwarded_from = f.forwarded_from ?? f.from;
      p.body = f.body ?? '';
      if (f.attachment) p.attachment = f.attachment;
    }
    T.addPending(this.timeline(conv), p);
    this.saveOutbox();
    this.transmit(p);
    this.changed();
  }

  private transmit(p: T.Pending) {
    const frame: Record<string, unknown> = { type: 'send', id: p.id, conv: p.conv, body: p.forward ? '' : p.body };
    if (p.mentions?.length) frame.mentions = p.mentions;
    if (p.mention_all) frame.mention_all = true;
    if (p.reply_to) frame.reply_to = p.reply_to;
    if (p.forward) frame.forward = p.forward;
    else if (p.attachment) frame.attachment = p.attachment.id;
    if (this.socket?.send(frame)) this.sentAt.set(p.id, Date.now());
  }

  /** Replaces the body of one of my text messages (the `edited` frame shows it everywhere). */
  edit(conv: string, seq: number, body: string): void {
    const id = `e${this.deviceId}-${Date.now().toString(36)}-${(counter++).toString(36)}`;
    this.edits.set(id, { conv, seq, body });
    if (!this.socket?.send({ type: 'edit', id, conv, seq, body })) {
      this.edits.delete(id);
      this.say(txt('offline_action'));
    }
  }

  /** Adds or removes my reaction `emoji` (the `reaction` frame comes back to every device). */
  react(conv: string, seq: number, emoji: string, on: boolean): void {
    if (!this.socket?.send({ type: 'react', conv, seq, emoji, on })) this.say(txt('offline_action'));
  }

  /** Uploads a file (with progress), then sends it as a message of `conv`. */
  async sendFile(conv: string, file: File, caption = '', voice = false): Promise<void> {
    const limits = this.uploadLimits;
    const kind = voice ? 'voice' : file.type.startsWith('image/') ? 'image' : 'file';
    const max = limits ? limits[`max_${kind}_bytes` as const] : Infinity;
    if (file.size > max) {
      this.say(txt('err_upload_too_large'));
      return;
    }
    const up = A.upload(file, file.name, voice, (progress) => {
      const u = this.uploading.get(conv);
      if (u) u.progress = progress;
      this.changed();
    });
    this.uploading.set(conv, { name: file.name, progress: 0, abort: up.abort });
    this.changed();
    try {
      const attachment = await up.done;
      this.send(conv, caption, [], false, { attachment, reply: this.replying.get(conv) });
      this.replying.delete(conv);
    } catch (e) {
      if (!(e instanceof A.ApiError && e.code === 'aborted')) this.say(errorText(e));
    } finally {
      this.uploading.delete(conv);
      this.changed();
    }
  }

  /** Sends again every unacked message (all of them, or those waiting too long). */
  private resend(all: boolean) {
    if (this.conn !== 'open') return;
    const now = Date.now();
    for (const tl of this.timelines.values()) {
      for (const p of tl.pending) {
        if (p.failed) continue;
        const at = this.sentAt.get(p.id);
        if (all || at === undefined || now - at > RESEND_MS) this.transmit(p);
      }
    }
  }

  retry(conv: string, id: string): void {
    const p = this.timeline(conv).pending.find((x) => x.id === id);
    if (!p) return;
    delete p.failed;
    this.transmit(p);
    this.saveOutbox();
    this.changed();
  }

  discard(conv: string, id: string): void {
    T.dropPending(this.timeline(conv), id);
    this.saveOutbox();
    this.changed();
  }

  recall(conv: string, seq: number): void {
    this.lastRecall = { conv, seq };
    if (!this.socket?.send({ type: 'recall', conv, seq })) this.say(txt('offline_action'));
  }

  deleteForMe(conv: string, seq: number): void {
    if (!this.socket?.send({ type: 'delete', conv, seq })) {
      A.del(`/conversations/${conv}/messages/${seq}`)
        .then(() => this.onFrame({ type: 'deleted', conv, seq }))
        .catch((e) => this.say(errorText(e)));
    }
  }

  private typingSent = new Map<string, number>();
  typed(conv: string): void {
    const last = this.typingSent.get(conv) ?? 0;
    if (Date.now() - last < 3000) return;
    if (this.socket?.send({ type: 'typing', conv })) this.typingSent.set(conv, Date.now());
  }

  // ---- frames ----

  onFrame(f: ServerFrame): void {
    const me = this.me?.id ?? 0;
    switch (f.type) {
      case 'hello':
        void this.connected();
        break;
      case 'ack': {
        if (this.edits.delete(f.id)) break; // an edit: its `edited` frame shows it
        const tl = this.timeline(f.conv);
        const msg = T.applyAck(tl, f, me);
        this.sentAt.delete(f.id);
        this.saveOutbox();
        if (msg) this.bumpConv(msg, true);
        break;
      }
      case 'msg': {
        const { type: _t, silent: _s, mentioned, ...m } = f;
        const tl = this.timelines.get(m.conv);
        if (tl && tl.loaded) {
          const { gap } = T.applyLive(tl, m, me);
          if (gap) this.sync(m.conv, tl.syncedTo);
          T.trimOldest(tl, WINDOW);
        }
        this.bumpConv(m, m.from === me, mentioned);
        if (m.kind === 'system') this.onSystem(m);
        if (m.from !== me && m.conv.startsWith('d:')) this.delivered(m.conv, m.seq);
        break;
      }
      case 'delivered':
      case 'read': {
        if (f.by === me) break;
        const tl = this.timelines.get(f.conv);
        if (tl) T.applyReceipt(tl, f.type, f.seq);
        const c = this.convs.get(f.conv);
        if (c) {
          if (f.type === 'read') c.peer_read_seq = Math.max(c.peer_read_seq ?? 0, f.seq);
          c.peer_delivered_seq = Math.max(c.peer_delivered_seq ?? 0, f.seq);
        }
        break;
      }
      case 'read_mark': {
        const c = this.convs.get(f.conv);
        if (c && f.seq >= c.read_seq) {
          c.read_seq = f.seq;
          c.unread = f.unread;
          if (!f.unread) c.mentioned = false;
        }
        break;
      }
      case 'recalled': {
        const tl = this.timelines.get(f.conv);
        if (tl) T.applyRecalled(tl, f.seq);
        const c = this.convs.get(f.conv);
        if (c?.last_message?.seq === f.seq) c.last_message = { ...c.last_message, preview: null };
        break;
      }
      case 'deleted': {
        const tl = this.timelines.get(f.conv);
        if (tl) T.applyDeleted(tl, f.seq);
        break;
      }
      case 'edited': {
        const tl = this.timelines.get(f.conv);
        if (tl) T.applyEdited(tl, f);
        const c = this.convs.get(f.conv);
        if (c?.last_message?.seq === f.seq) c.last_message = { ...c.last_message, preview: f.body.slice(0, 100) };
        break;
      }
      case 'reaction': {
        const tl = this.timelines.get(f.conv);
        if (tl) T.applyReaction(tl, f, me);
        break;
      }
      case 'typing': {
        let m = this.typing.get(f.conv);
        if (!m) this.typing.set(f.conv, (m = new Map()));
        m.set(f.from, Date.now() + TYPING_MS);
        setTimeout(() => this.changed(), TYPING_MS + 50);
        break;
      }
      case 'synced': {
        this.syncing.delete(f.conv);
        const tl = this.timelines.get(f.conv);
        if (!tl) break;
        const next = T.applySynced(tl, f, me);
        if (next !== null) this.sync(f.conv, next);
        else {
          T.trimOldest(tl, WINDOW);
          const c = this.convs.get(f.conv);
          if (c && f.max_seq > c.max_seq) this.scheduleConvs();
          if (f.conv.startsWith('d:')) this.delivered(f.conv, T.newestSeq(tl));
        }
        break;
      }
      case 'presence': {
        const fr = this.friend(f.user_id);
        if (fr) fr.online = f.online;
        break;
      }
      case 'event':
        this.onEvent(f.event, f.data);
        break;
      case 'notice':
        this.notice = f.text;
        break;
      case 'error':
        this.onError(f);
        break;
      default:
        break;
    }
    this.markRead();
    this.changed();
  }

  /** A message reached the list: move its conversation up and count it. */
  private bumpConv(m: Message, mine: boolean, mentioned?: boolean) {
    const c = this.convs.get(m.conv);
    if (!c) {
      this.scheduleConvs();
      return;
    }
    if (m.seq >= (c.last_message?.seq ?? 0)) {
      const text = m.body ? m.body.slice(0, 100) : m.attachment ? `[${txt('att_' + m.attachment.kind)}] ${m.attachment.name}` : '';
      c.last_message = { seq: m.seq, ts: m.ts, from: m.from, preview: m.kind === 'text' ? text : null };
    }
    c.max_seq = Math.max(c.max_seq, m.seq);
    if (mine) c.read_seq = Math.max(c.read_seq, m.seq);
    c.unread = Math.max(0, c.max_seq - c.read_seq);
    if (mentioned && !mine) c.mentioned = true;
  }

  private scheduleConvs() {
    this.later('convs', 150, () => void this.refreshConvs().catch(() => {}));
  }

  private delivered(conv: string, seq: number) {
    this.later('dlv-' + conv, 200, () => {
      const c = this.convs.get(conv);
      this.socket?.send({ type: 'delivered', conv, seq: Math.max(seq, c?.max_seq ?? 0) });
    });
  }

  private sync(conv: string, after: number) {
    if (this.syncing.has(conv)) return;
    if (this.socket?.send({ type: 'sync', conv, after_seq: after, limit: 200 })) this.syncing.add(conv);
  }

  /** After `hello` (a new connection) and after `resync`: catch up on everything. */
  private async connected(resendToo = true) {
    this.everConnected = true;
    this.syncing.clear();
    try {
      await this.refreshConvs();
    } catch {
      return;
    }
    for (const [conv, tl] of this.timelines) {
      if (!tl.loaded) continue;
      const c = this.convs.get(conv);
      if (!c || c.max_seq <= tl.syncedTo) continue;
      if (c.max_seq - tl.syncedTo > SYNC_MAX) {
        // Too far behind: start again from the newest page (older pages load on scroll).
        const fresh = T.emptyTimeline(conv);
        fresh.pending = tl.pending;
        fresh.peerRead = tl.peerRead;
        fresh.peerDelivered = tl.peerDelivered;
        fresh.deleted = tl.deleted;
        this.timelines.set(conv, fresh);
        void this.openConv(conv);
      } else this.sync(conv, tl.syncedTo);
    }
    // Edits and reactions of messages held from before are not in `sync` (it brings newer
    // seqs only): the newest page brings their current view.
    for (const [conv, tl] of this.timelines) if (tl.loaded) void this.refreshNewest(conv);
    if (resendToo) this.resend(true);
    for (const c of this.convs.values()) {
      if (c.kind === 'direct' && c.unread > 0) this.delivered(c.conv, c.max_seq);
    }
    void this.refreshFriends().catch(() => {});
    void this.refreshGroups().catch(() => {});
    this.markRead();
    this.changed();
  }

  private onEvent(event: string, data: any) {
    switch (event) {
      case 'friend_request':
        void this.refreshRequests();
        break;
      case 'friend_accepted':
        void this.refreshFriends();
        void this.refreshRequests();
        this.scheduleConvs();
        break;
      case 'friend_removed':
        void this.refreshFriends();
        break;
      case 'group_removed':
        this.groups.delete(data?.group_id);
        void this.refreshGroups();
        this.scheduleConvs();
        break;
      case 'resync':
        void this.connected(false);
        break;
      default:
        break;
    }
  }

  private onSystem(m: Message) {
    const gid = groupIdOf(m.conv);
    if (!gid) return;
    this.later('group-' + gid, 100, () => {
      void this.refreshGroup(gid).catch(() => {});
      this.scheduleConvs();
    });
  }

  private onError(f: { code: string; message: string; id?: string }) {
    if (f.id && this.edits.delete(f.id)) {
      this.say(errorText(new A.ApiError(0, f.code, f.message)));
      return;
    }
    if (f.id) {
      for (const tl of this.timelines.values()) {
        if (!tl.pending.some((p) => p.id === f.id)) continue;
        if (FINAL_SEND_ERRORS.has(f.code)) {
          T.failPending(tl, f.id, f.code);
          this.saveOutbox();
        } else this.sentAt.set(f.id, Date.now() - RESEND_MS + 2000); // try again soon
        return;
      }
      return;
    }
    if (f.code === 'recall_window_passed' && this.lastRecall) {
      this.notRecallable.add(`${this.lastRecall.conv}#${this.lastRecall.seq}`);
    }
    if (f.code !== 'rate_limited') this.say(errorText(new A.ApiError(0, f.code, f.message)));
  }
}

export function groupIdOf(conv: string): number | null {
  const m = /^g:(\d+)$/.exec(conv);
  return m ? Number(m[1]) : null;
}

// Late-bound so that store.ts does not import the UI's dictionary at module load.
let txt: (k: string, p?: Record<string, string | number>) => string = (k) => k;
let errorText: (e: unknown) => string = (e) => String((e as Error)?.message ?? e);
export function bindText(t: typeof txt, err: typeof errorText): void {
  txt = t;
  errorText = err;
}

export const store = new Store();
