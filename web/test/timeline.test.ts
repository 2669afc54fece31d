import { describe, expect, it } from 'vitest';
import * as T from '../src/timeline';
import type { Message } from '../src/types';

const ME = 1;
const PEER = 2;
const CONV = 'd:1:2';

function m(seq: number, from = PEER, extra: Partial<Message> = {}): Message {
  return { conv: CONV, seq, from, id: `c-${from}-${seq}`, kind: 'text', body: `m${seq}`, ts: 1000 + seq, ...extra };
}

const seqs = (tl: T.Timeline) => tl.msgs.map((x) => x.seq);

function echo(tl: T.Timeline, id: string, body = 'hello') {
  T.addPending(tl, { id, conv: CONV, from: ME, body, ts: 5 });
}

describe('merging', () => {
  it('keeps one message per seq, sorted, whatever the order and overlap of sources', () => {
    const tl = T.emptyTimeline(CONV);
    T.mergeMessages(tl, [m(5), m(3)], ME);
    T.mergeMessages(tl, [m(4), m(5), m(1)], ME);
    T.mergeMessages(tl, [m(3), m(2)], ME);
    expect(seqs(tl)).toEqual([1, 2, 3, 4, 5]);
  });

  it('ignores messages of other conversations', () => {
    const tl = T.emptyTimeline(CONV);
    T.mergeMessages(tl, [{ ...m(1), conv: 'd:1:3' }], ME);
    expect(tl.msgs).toEqual([]);
  });

  it('a recalled copy replaces the stored one, an older copy does not undo a recall', () => {
    const tl = T.emptyTimeline(CONV);
    T.mergeMessages(tl, [m(1)], ME);
    const { body: _b, ...recalled } = m(1);
    T.mergeMessages(tl, [{ ...recalled, recalled: true }], ME);
    expect(tl.msgs[0].recalled).toBe(true);
    T.mergeMessages(tl, [m(1)], ME);
    expect(tl.msgs[0].recalled).toBe(true);
    expect(tl.msgs[0].body).toBeUndefined();
  });

  it('a message deleted for me never comes back from an old page', () => {
    const tl = T.emptyTimeline(CONV);
    T.mergeMessages(tl, [m(1), m(2)], ME);
    T.applyDeleted(tl, 2);
    T.mergeMessages(tl, [m(2), m(3)], ME);
    expect(seqs(tl)).toEqual([1, 3]);
  });
});

describe('local echo', () => {
  it('shows at once and becomes the stored message on ack', () => {
    const tl = T.emptyTimeline(CONV);
    echo(tl, 'w-1');
    expect(T.rows(tl).map((r) => r.kind)).toEqual(['pending']);
    const msg = T.applyAck(tl, { id: 'w-1', seq: 1, ts: 99 }, ME);
    expect(msg).toMatchObject({ seq: 1, ts: 99, body: 'hello', from: ME, id: 'w-1' });
    expect(tl.pending).toEqual([]);
    expect(T.rows(tl).map((r) => r.kind)).toEqual(['stored']);
    expect(tl.syncedTo).toBe(1);
  });

  it('is shown once when a synced page brings it before its ack (ack lost in a reconnect)', () => {
    const tl = T.emptyTimeline(CONV);
    echo(tl, 'w-1');
    T.applySynced(tl, { messages: [{ ...m(1, ME), id: 'w-1', body: 'hello' }], has_more: false, max_seq: 1 }, ME);
    expect(tl.pending).toEqual([]);
    expect(T.rows(tl)).toHaveLength(1);
    // The resend's ack (same id, same seq) changes nothing.
    T.applyAck(tl, { id: 'w-1', seq: 1, ts: 1001 }, ME);
    expect(T.rows(tl)).toHaveLength(1);
  });

  it('a copy from my other device with the same id clears the echo; other ids do not', () => {
    const tl = T.emptyTimeline(CONV);
    echo(tl, 'w-1');
    echo(tl, 'w-2', 'second');
    T.applyLive(tl, { ...m(1, ME), id: 'w-1' }, ME);
    expect(tl.pending.map((p) => p.id)).toEqual(['w-2']);
    // The peer's message with the same client id is someone else's message.
    T.applyLive(tl, { ...m(2, PEER), id: 'w-2' }, ME);
    expect(tl.pending.map((p) => p.id)).toEqual(['w-2']);
  });

  it('adding the same echo twice keeps one', () => {
    const tl = T.emptyTimeline(CONV);
    echo(tl, 'w-1');
    echo(tl, 'w-1');
    expect(tl.pending).toHaveLength(1);
  });

  it('keeps echoes after stored messages, in send order', () => {
    const tl = T.emptyTimeline(CONV);
    echo(tl, 'a');
    echo(tl, 'b');
    T.mergeMessages(tl, [m(1)], ME);
    expect(T.rows(tl).map((r) => r.msg.id)).toEqual(['c-2-1', 'a', 'b']);
  });

  it('a final refusal marks the echo failed; dropping removes it', () => {
    const tl = T.emptyTimeline(CONV);
    echo(tl, 'w-1');
    expect(T.failPending(tl, 'w-1', 'not_friends')).toBe(true);
    expect(T.tickOf(tl, T.rows(tl)[0])).toBe('failed');
    T.dropPending(tl, 'w-1');
    expect(tl.pending).toEqual([]);
    expect(T.failPending(tl, 'nope', 'x')).toBe(false);
  });
});

describe('live messages and gaps', () => {
  it('consecutive seqs move syncedTo; a jump reports a gap to sync', () => {
    const tl = T.emptyTimeline(CONV);
    T.applyNewest(tl, { messages: [m(1), m(2)], has_more: false, max_seq: 2 }, ME);
    expect(T.applyLive(tl, m(3), ME)).toEqual({ gap: false });
    expect(tl.syncedTo).toBe(3);
    expect(T.applyLive(tl, m(6), ME)).toEqual({ gap: true });
    expect(tl.syncedTo).toBe(3);
    // A repeat of something held is not a gap.
    expect(T.applyLive(tl, m(2), ME)).toEqual({ gap: false });
    expect(seqs(tl)).toEqual([1, 2, 3, 6]);
  });

  it('synced pages continue until has_more is false, then reach max_seq', () => {
    const tl = T.emptyTimeline(CONV);
    T.applyNewest(tl, { messages: [m(1)], has_more: false, max_seq: 1 }, ME);
    expect(T.applySynced(tl, { messages: [m(2), m(3)], has_more: true, max_seq: 9 }, ME)).toBe(3);
    // Seqs 8 and 9 are deleted for me or unused: the last page ends at 7 but max_seq is 9.
    expect(T.applySynced(tl, { messages: [m(4), m(5), m(6), m(7)], has_more: false, max_seq: 9 }, ME)).toBeNull();
    expect(tl.syncedTo).toBe(9);
    expect(T.applyLive(tl, m(10), ME)).toEqual({ gap: false });
  });

  it('an empty last page still moves to max_seq', () => {
    const tl = T.emptyTimeline(CONV);
    expect(T.applySynced(tl, { messages: [], has_more: false, max_seq: 4 }, ME)).toBeNull();
    expect(tl.syncedTo).toBe(4);
  });
});

describe('paging backwards', () => {
  it('the newest page sets the window; older pages prepend until there are none', () => {
    const tl = T.emptyTimeline(CONV);
    T.applyNewest(tl, { messages: [m(9), m(10)], has_more: true, max_seq: 10 }, ME);
    expect(tl.loaded).toBe(true);
    expect(T.olderCursor(tl)).toBe(9);
    T.applyOlder(tl, { messages: [m(7), m(8)], has_more: true }, ME);
    expect(T.olderCursor(tl)).toBe(7);
    T.applyOlder(tl, { messages: [m(5), m(6)], has_more: false }, ME);
    expect(T.olderCursor(tl)).toBeNull();
    expect(seqs(tl)).toEqual([5, 6, 7, 8, 9, 10]);
  });

  it('an empty conversation has no older page', () => {
    const tl = T.emptyTimeline(CONV);
    T.applyNewest(tl, { messages: [], has_more: false, max_seq: 0 }, ME);
    expect(T.olderCursor(tl)).toBeNull();
    expect(T.newestSeq(tl)).toBe(0);
  });

  it('trimming keeps the newest messages and lets the oldest page in again', () => {
    const tl = T.emptyTimeline(CONV);
    T.applyNewest(tl, { messages: [m(1), m(2), m(3), m(4)], has_more: false, max_seq: 4 }, ME);
    T.trimOldest(tl, 2);
    expect(seqs(tl)).toEqual([3, 4]);
    expect(T.olderCursor(tl)).toBe(3);
  });
});

describe('ticks', () => {
  it('sending -> sent -> delivered -> read, receipts covering every seq up to theirs', () => {
    const tl = T.emptyTimeline(CONV);
    echo(tl, 'w-1');
    expect(T.tickOf(tl, T.rows(tl)[0])).toBe('sending');
    T.applyAck(tl, { id: 'w-1', seq: 1, ts: 1 }, ME);
    echo(tl, 'w-2');
    T.applyAck(tl, { id: 'w-2', seq: 2, ts: 2 }, ME);
    const ticks = () => T.rows(tl).map((r) => T.tickOf(tl, r));
    expect(ticks()).toEqual(['sent', 'sent']);
    T.applyReceipt(tl, 'delivered', 2);
    expect(ticks()).toEqual(['delivered', 'delivered']);
    T.applyReceipt(tl, 'read', 1);
    expect(ticks()).toEqual(['read', 'delivered']);
    T.applyReceipt(tl, 'read', 2);
    expect(ticks()).toEqual(['read', 'read']);
  });

  it('a message from the peer means they read everything before it', () => {
    const tl = T.emptyTimeline(CONV);
    echo(tl, 'w-1');
    T.applyAck(tl, { id: 'w-1', seq: 1, ts: 1 }, ME);
    T.applyLive(tl, m(2, PEER), ME);
    expect(T.tickOf(tl, T.rows(tl)[0])).toBe('read');
  });

  it('receipts never go back, and a read implies delivered', () => {
    const tl = T.emptyTimeline(CONV);
    T.applyReceipt(tl, 'read', 5);
    T.applyReceipt(tl, 'delivered', 3);
    T.applyReceipt(tl, 'read', 2);
    expect([tl.peerRead, tl.peerDelivered]).toEqual([5, 5]);
  });
});

describe('recall', () => {
  it('only my text messages within the window, not recalled ones', () => {
    const mine = m(1, ME);
    expect(T.canRecall(mine, ME, mine.ts + 1000, 120_000)).toBe(true);
    expect(T.canRecall(mine, ME, mine.ts + 120_000, 120_000)).toBe(false);
    expect(T.canRecall(m(2, PEER), ME, 0, 120_000)).toBe(false);
    expect(T.canRecall({ ...mine, kind: 'system' }, ME, mine.ts, 120_000)).toBe(false);
    expect(T.canRecall({ ...mine, recalled: true }, ME, mine.ts, 120_000)).toBe(false);
  });

  it('drops the body of the held message', () => {
    const tl = T.emptyTimeline(CONV);
    T.mergeMessages(tl, [m(1)], ME);
    T.applyRecalled(tl, 1);
    expect(tl.msgs[0]).toMatchObject({ seq: 1, recalled: true });
    expect(tl.msgs[0].body).toBeUndefined();
    T.applyRecalled(tl, 7); // not held: nothing to do
    expect(tl.msgs).toHaveLength(1);
  });
});
