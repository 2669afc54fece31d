// The timeline of one conversation: pure functions, no I/O, so that unit tests can reach them.
//
// A timeline holds a window of stored messages (sorted by seq, one per seq) and the local echoes
// of my own sends that have no ack yet (in send order). Messages arrive from four places, in any
// order and with overlaps: history pages (HTTP, paged backwards with `before_seq`), `synced`
// pages (after a reconnect or a gap), live `msg` frames and `ack`s of my echoes. Everything is
// keyed by seq; an echo is matched by its client id, so a message I sent is shown once whether
// its ack, a `msg` copy or a synced page arrives first.

import type { Attachment, Message, Quote, ReactionCount } from './types';

/** A message I sent that has no ack yet. */
export interface Pending {
  id: string;
  conv: string;
  from: number;
  body: string;
  ts: number;
  mentions?: number[];
  mention_all?: boolean;
  /** The seq this message replies to, and the quote shown until the server's copy arrives. */
  reply_to?: number;
  reply?: Quote;
  /** A forward of this message (body: the original's text, shown until the ack). */
  forward?: { conv: string; seq: number };
  forwarded_from?: number;
  /** An upload this message carries. */
  attachment?: Attachment;
  /** A refusal that resending will not change (`not_friends`, `muted`, ...). */
  failed?: string;
}

export interface Timeline {
  conv: string;
  /** Stored messages, sorted by seq, unique. */
  msgs: Message[];
  /** My unacked sends, in send order. */
  pending: Pending[];
  /** Older messages exist before `msgs[0]`. */
  hasOlder: boolean;
  /** Every seq up to here is either in `msgs` or known not to be shown (deleted, unused). */
  syncedTo: number;
  /** The peer's marks (1:1 conversations): receipts cover every seq up to them. */
  peerDelivered: number;
  peerRead: number;
  /** Seqs I deleted for myself: never shown again, even if an old page brings them back. */
  deleted: Set<number>;
  /** The newest page has been loaded (before that the timeline only holds my echoes). */
  loaded: boolean;
  /** Live `reaction` frames applied: `seq:user:emoji` -> the frame's `at` (applied once each). */
  reactAt: Map<string, number>;
  /** When (local clock) a live frame last changed a message's reactions, by seq. */
  touched: Map<number, number>;
  /** Messages made from an `ack` (no server copy yet): the next copy of them replaces them. */
  local: Set<number>;
}

export type Tick = 'sending' | 'failed' | 'sent' | 'delivered' | 'read';

/** One row of the rendered timeline. */
export type Row = { kind: 'stored'; msg: Message } | { kind: 'pending'; msg: Pending };

export function emptyTimeline(conv: string): Timeline {
  return { conv, msgs: [], pending: [], hasOlder: false, syncedTo: 0, peerDelivered: 0, peerRead: 0, deleted: new Set(), loaded: false, reactAt: new Map(), touched: new Map(), local: new Set() };
}

/** Index of the first message with seq >= `seq` (binary search). */
function lowerBound(msgs: Message[], seq: number): number {
  let lo = 0;
  let hi = msgs.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (msgs[mid].seq < seq) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Merges stored messages (live, synced or a history page) into the timeline. A seq already held
 * is never duplicated: the held message takes what is newer in the incoming view (a recall, a
 * later edit, the reactions when no live frame changed them after `fetchedAt`, the local clock
 * when the view was asked for), and a message built from my `ack` is replaced by the server's
 * copy. My own messages clear the echo with the same client id. Changes the timeline in place.
 */
export function mergeMessages(tl: Timeline, incoming: Message[], me: number, fetchedAt = -Infinity): Timeline {
  for (const m of incoming) {
    if (m.conv !== tl.conv || tl.deleted.has(m.seq)) continue;
    if (m.from === me) tl.pending = tl.pending.filter((p) => p.id !== m.id);
    // Sending moves the sender's read mark up to their message (PROTOCOL.md, `read`): in a 1:1
    // chat the peer's message says they have read everything before it, receipt or not.
    else applyReceipt(tl, 'read', m.seq);
    const at = lowerBound(tl.msgs, m.seq);
    const there = tl.msgs[at];
    if (there && there.seq === m.seq) {
      tl.msgs[at] = newerView(tl, there, m, fetchedAt);
      continue;
    }
    tl.msgs.splice(at, 0, m);
  }
  return tl;
}

/** One message seen twice: what the timeline keeps. */
function newerView(tl: Timeline, held: Message, m: Message, fetchedAt: number): Message {
  if (tl.local.delete(m.seq)) return held.recalled && !m.recalled ? recalledView(m) : m;
  if (held.recalled) return held;
  if (m.recalled) return m;
  let out = held;
  if ((m.edited_at ?? 0) > (held.edited_at ?? 0)) out = { ...out, body: m.body, edited_at: m.edited_at };
  const changedLive = tl.touched.get(m.seq);
  if (m.reactions && (changedLive === undefined || changedLive < fetchedAt)) out = { ...out, reactions: m.reactions };
  if (m.reply && (!out.reply || quoteRank(m.reply) > quoteRank(out.reply))) out = { ...out, reply: m.reply };
  return out;
}

/** Quotes only get worse to read (visible -> recalled / deleted). */
function quoteRank(q: Quote): number {
  return q.state === 'visible' ? 0 : 1;
}

function recalledView(m: Message): Message {
  const { body: _b, attachment: _a, reactions: _r, ...rest } = m;
  return { ...rest, recalled: true };
}

/**
 * A live `msg`: merged, and whether it leaves a gap (seqs between what the timeline holds and
 * this one were not seen: `sync` from `syncedTo`).
 */
export function applyLive(tl: Timeline, m: Message, me: number): { gap: boolean } {
  mergeMessages(tl, [m], me);
  if (m.seq <= tl.syncedTo) return { gap: false };
  if (m.seq === tl.syncedTo + 1) {
    tl.syncedTo = m.seq;
    return { gap: false };
  }
  return { gap: true };
}

/**
 * A `synced` page (messages after `after`): merged; `syncedTo` moves to the end of the page, or to
 * `max_seq` when it was the last page. Returns where to continue, or null when done.
 */
export function applySynced(
  tl: Timeline,
  page: { messages: Message[]; has_more: boolean; max_seq: number },
  me: number,
): number | null {
  mergeMessages(tl, page.messages, me);
  const last = page.messages.length ? page.messages[page.messages.length - 1].seq : tl.syncedTo;
  if (page.has_more) {
    tl.syncedTo = Math.max(tl.syncedTo, last);
    return tl.syncedTo;
  }
  tl.syncedTo = Math.max(tl.syncedTo, last, page.max_seq);
  return null;
}

/** The newest page of history (HTTP, no `before_seq`): the timeline's starting window. */
export function applyNewest(
  tl: Timeline,
  page: { messages: Message[]; has_more: boolean; max_seq: number },
  me: number,
  fetchedAt = -Infinity,
): Timeline {
  mergeMessages(tl, page.messages, me, fetchedAt);
  tl.hasOlder = page.has_more;
  tl.syncedTo = Math.max(tl.syncedTo, page.max_seq);
  tl.loaded = true;
  return tl;
}

/** An older page (HTTP `before_seq`): prepended. */
export function applyOlder(tl: Timeline, page: { messages: Message[]; has_more: boolean }, me: number, fetchedAt = -Infinity): Timeline {
  mergeMessages(tl, page.messages, me, fetchedAt);
  tl.hasOlder = page.has_more;
  return tl;
}

/** The seq to ask the page before, or null when the timeline starts at the beginning. */
export function olderCursor(tl: Timeline): number | null {
  if (!tl.hasOlder) return null;
  return tl.msgs.length ? tl.msgs[0].seq : tl.syncedTo + 1;
}

/** Shows my message at once, before the server has it. */
export function addPending(tl: Timeline, p: Pending): Timeline {
  if (!tl.pending.some((x) => x.id === p.id)) tl.pending.push(p);
  return tl;
}

/** An `ack`: the echo becomes the stored message with its seq and server time. */
export function applyAck(tl: Timeline, ack: { id: string; seq: number; ts: number }, me: number): Message | null {
  const p = tl.pending.find((x) => x.id === ack.id);
  const already = tl.msgs.find((m) => m.seq === ack.seq);
  if (!p) return already ?? null;
  const msg: Message = { conv: tl.conv, seq: ack.seq, from: me, id: p.id, kind: 'text', body: p.body, ts: ack.ts };
  if (p.mentions?.length) msg.mentions = p.mentions;
  if (p.mention_all) msg.mention_all = true;
  if (p.reply) msg.reply = p.reply;
  if (p.forward) msg.forwarded_from = p.forwarded_from;
  if (p.attachment) msg.attachment = p.attachment;
  const fresh = !tl.msgs.some((m) => m.seq === ack.seq);
  mergeMessages(tl, [msg], me);
  if (fresh) tl.local.add(ack.seq);
  if (ack.seq === tl.syncedTo + 1) tl.syncedTo = ack.seq;
  return msg;
}

/** A refusal of one of my sends that a resend will not change. */
export function failPending(tl: Timeline, id: string, code: string): boolean {
  const p = tl.pending.find((x) => x.id === id);
  if (!p) return false;
  p.failed = code;
  return true;
}

export function dropPending(tl: Timeline, id: string): Timeline {
  tl.pending = tl.pending.filter((p) => p.id !== id);
  return tl;
}

export function applyRecalled(tl: Timeline, seq: number): Timeline {
  const at = lowerBound(tl.msgs, seq);
  const m = tl.msgs[at];
  if (m && m.seq === seq) tl.msgs[at] = recalledView(m);
  setQuotes(tl, seq, (q) => ({ seq: q.seq, state: 'recalled' }));
  return tl;
}

export function applyDeleted(tl: Timeline, seq: number): Timeline {
  tl.deleted.add(seq);
  tl.msgs = tl.msgs.filter((m) => m.seq !== seq);
  setQuotes(tl, seq, (q) => ({ seq: q.seq, state: 'deleted' }));
  return tl;
}

/** Changes the quotes of every held reply to `seq`. */
function setQuotes(tl: Timeline, seq: number, f: (q: Quote) => Quote) {
  for (let i = 0; i < tl.msgs.length; i++) {
    const q = tl.msgs[i].reply;
    if (q && q.seq === seq) tl.msgs[i] = { ...tl.msgs[i], reply: f(q) };
  }
}

/** How many characters of the quoted text a locally made quote keeps (as the server's). */
export const QUOTE_CHARS = 100;

/**
 * An `edited` frame: the body is replaced if the edit is newer than the one held (frames and
 * pages may come in any order and twice); quotes of it show the new text. Returns whether it
 * changed anything.
 */
export function applyEdited(tl: Timeline, f: { seq: number; body: string; edited_at: number }): boolean {
  const at = lowerBound(tl.msgs, f.seq);
  const m = tl.msgs[at];
  if (!m || m.seq !== f.seq || m.recalled || (m.edited_at ?? 0) >= f.edited_at) return false;
  tl.msgs[at] = { ...m, body: f.body, edited_at: f.edited_at };
  setQuotes(tl, f.seq, (q) => (q.state === 'visible' ? { ...q, preview: f.body.slice(0, QUOTE_CHARS) } : q));
  return true;
}

/**
 * A `reaction` frame: applied once (a frame not newer than the last one applied for the same
 * message, user and emoji is dropped), and only to a held message (a page brings the counts of
 * the others). Returns whether it changed anything.
 */
export function applyReaction(
  tl: Timeline,
  f: { seq: number; user: number; emoji: string; on: boolean; at: number },
  me: number,
  now = Date.now(),
): boolean {
  const key = `${f.seq}:${f.user}:${f.emoji}`;
  if ((tl.reactAt.get(key) ?? -Infinity) >= f.at) return false;
  const i = lowerBound(tl.msgs, f.seq);
  const m = tl.msgs[i];
  if (!m || m.seq !== f.seq || m.recalled) return false;
  tl.reactAt.set(key, f.at);
  const list = (m.reactions ?? []).map((r) => ({ ...r }));
  let r = list.find((x) => x.emoji === f.emoji);
  const mine = f.user === me;
  if (f.on) {
    // My own reaction already counted (the page said `mine`): nothing to add.
    if (mine && r?.mine) return false;
    if (!r) list.push((r = { emoji: f.emoji, count: 0 }));
    r.count += 1;
    if (mine) r.mine = true;
  } else {
    if (!r || (mine && !r.mine)) return false;
    r.count -= 1;
    if (mine) delete r.mine;
  }
  tl.msgs[i] = { ...m, reactions: list.filter((x) => x.count > 0) };
  tl.touched.set(f.seq, now);
  return true;
}

/** The quote a reply to `m` shows before the server's copy comes back. */
export function quoteOf(m: Message): Quote {
  if (m.recalled) return { seq: m.seq, state: 'recalled' };
  const q: Quote = { seq: m.seq, state: 'visible', from: m.from, preview: m.body ? m.body.slice(0, QUOTE_CHARS) : null };
  if (m.attachment) q.attachment = m.attachment.kind;
  return q;
}

/** Whether I may still edit a message: my own text (not a forward), not recalled, in the window. */
export function canEdit(m: Message, me: number, now: number, windowMs: number): boolean {
  return (
    windowMs > 0 && m.from === me && m.kind === 'text' && !m.recalled && m.forwarded_from === undefined && !!m.body && now - m.ts < windowMs
  );
}

/** The reactions after I toggle `emoji` (what to send: `on`). */
export function toggleOf(m: Message, emoji: string): boolean {
  return !m.reactions?.some((r) => r.emoji === emoji && r.mine);
}

/** Receipts only move forward ("at least"). */
export function applyReceipt(tl: Timeline, kind: 'delivered' | 'read', seq: number): Timeline {
  if (kind === 'read') {
    tl.peerRead = Math.max(tl.peerRead, seq);
    tl.peerDelivered = Math.max(tl.peerDelivered, seq);
  } else {
    tl.peerDelivered = Math.max(tl.peerDelivered, seq);
  }
  return tl;
}

/** The tick of one of my messages in a 1:1 conversation. */
export function tickOf(tl: Timeline, row: Row): Tick {
  if (row.kind === 'pending') return row.msg.failed ? 'failed' : 'sending';
  const seq = row.msg.seq;
  if (tl.peerRead >= seq) return 'read';
  if (tl.peerDelivered >= seq) return 'delivered';
  return 'sent';
}

/** What to render: stored messages by seq, then my echoes. */
export function rows(tl: Timeline): Row[] {
  const out: Row[] = tl.msgs.map((msg) => ({ kind: 'stored', msg }) as Row);
  for (const p of tl.pending) out.push({ kind: 'pending', msg: p });
  return out;
}

/** The highest seq the timeline holds (what to mark read / delivered). */
export function newestSeq(tl: Timeline): number {
  return Math.max(tl.syncedTo, tl.msgs.length ? tl.msgs[tl.msgs.length - 1].seq : 0);
}

/** Whether a message may still be recalled: mine, text, not recalled, within the window. */
export function canRecall(m: Message, me: number, now: number, windowMs: number): boolean {
  return m.from === me && m.kind === 'text' && !m.recalled && now - m.ts < windowMs;
}

/** Keeps at most `max` messages, dropping the oldest (the window slides; older pages reload). */
export function trimOldest(tl: Timeline, max: number): Timeline {
  if (tl.msgs.length > max) {
    tl.msgs = tl.msgs.slice(tl.msgs.length - max);
    tl.hasOlder = true;
  }
  return tl;
}

/**
 * What a quote shows (`tr` translates a key of i18n.ts): the first characters of the text, the
 * kind of file it carries when it has no text, or what keeps the reader from seeing it.
 */
export function quoteText(q: Quote, tr: (key: string) => string): string {
  switch (q.state) {
    case 'recalled':
      return tr('quote_recalled');
    case 'deleted':
      return tr('quote_deleted');
    case 'not_visible':
      return tr('quote_not_visible');
    default:
      return q.preview || (q.attachment ? `[${tr('att_' + q.attachment)}]` : '');
  }
}
