// Rich messages in the timeline: edits, reactions, quotes, forwards and attachments.
import { describe, expect, it } from 'vitest';
import * as T from '../src/timeline';
import { t } from '../src/i18n';
import type { Message } from '../src/types';

const ME = 1;
const PEER = 2;
const CONV = 'd:1:2';

function m(seq: number, from = PEER, extra: Partial<Message> = {}): Message {
  return { conv: CONV, seq, from, id: `c-${from}-${seq}`, kind: 'text', body: `m${seq}`, ts: 1000 + seq, ...extra };
}

function loaded(...msgs: Message[]): T.Timeline {
  const tl = T.emptyTimeline(CONV);
  T.applyNewest(tl, { messages: msgs, has_more: false, max_seq: msgs.length ? msgs[msgs.length - 1].seq : 0 }, ME, 0);
  return tl;
}

const at = (tl: T.Timeline, seq: number) => tl.msgs.find((x) => x.seq === seq)!;

describe('edited frames', () => {
  it('replace the body once, and an older or repeated edit changes nothing', () => {
    const tl = loaded(m(1, ME));
    expect(T.applyEdited(tl, { seq: 1, body: 'second', edited_at: 20 })).toBe(true);
    expect(T.applyEdited(tl, { seq: 1, body: 'second', edited_at: 20 })).toBe(false);
    expect(T.applyEdited(tl, { seq: 1, body: 'first', edited_at: 10 })).toBe(false);
    expect(at(tl, 1)).toMatchObject({ body: 'second', edited_at: 20 });
  });

  it('end in the same state whatever the order of the frame and a page', () => {
    const a = loaded(m(1, ME));
    T.applyEdited(a, { seq: 1, body: 'new', edited_at: 20 });
    T.mergeMessages(a, [m(1, ME)], ME); // a live copy from before the edit
    const b = loaded(m(1, ME, { body: 'new', edited_at: 20 }));
    T.applyEdited(b, { seq: 1, body: 'new', edited_at: 20 });
    expect(at(a, 1)).toEqual(at(b, 1));
  });

  it('do not bring back a recalled body', () => {
    const tl = loaded(m(1, ME));
    T.applyRecalled(tl, 1);
    expect(T.applyEdited(tl, { seq: 1, body: 'x', edited_at: 30 })).toBe(false);
    expect(at(tl, 1).body).toBeUndefined();
  });

  it('update the quotes of replies to the edited message', () => {
    const tl = loaded(m(1, ME), m(2, PEER, { reply: { seq: 1, state: 'visible', from: ME, preview: 'm1' } }));
    T.applyEdited(tl, { seq: 1, body: 'fixed', edited_at: 5 });
    expect(at(tl, 2).reply?.preview).toBe('fixed');
  });
});

describe('reaction frames', () => {
  const r = (user: number, emoji: string, on: boolean, at: number) => ({ seq: 1, user, emoji, on, at });

  it('count per emoji, mark mine and drop emoji that reach zero', () => {
    const tl = loaded(m(1));
    T.applyReaction(tl, r(PEER, '👍', true, 1), ME);
    T.applyReaction(tl, r(ME, '👍', true, 2), ME);
    T.applyReaction(tl, r(ME, '🎉', true, 3), ME);
    expect(at(tl, 1).reactions).toEqual([
      { emoji: '👍', count: 2, mine: true },
      { emoji: '🎉', count: 1, mine: true },
    ]);
    T.applyReaction(tl, r(ME, '🎉', false, 4), ME);
    T.applyReaction(tl, r(ME, '👍', false, 5), ME);
    expect(at(tl, 1).reactions).toEqual([{ emoji: '👍', count: 1 }]);
  });

  it('are applied once: a repeated or older frame is dropped', () => {
    const tl = loaded(m(1));
    expect(T.applyReaction(tl, r(PEER, '👍', true, 5), ME)).toBe(true);
    expect(T.applyReaction(tl, r(PEER, '👍', true, 5), ME)).toBe(false);
    expect(T.applyReaction(tl, r(PEER, '👍', false, 3), ME)).toBe(false);
    expect(at(tl, 1).reactions).toEqual([{ emoji: '👍', count: 1 }]);
  });

  it('do not count my reaction twice when the page already had it', () => {
    const tl = loaded(m(1, PEER, { reactions: [{ emoji: '👍', count: 1, mine: true }] }));
    T.applyReaction(tl, r(ME, '👍', true, 9), ME);
    expect(at(tl, 1).reactions).toEqual([{ emoji: '👍', count: 1, mine: true }]);
  });

  it('keep live changes when an older page arrives, take a newer page', () => {
    const tl = loaded(m(1));
    T.applyReaction(tl, r(PEER, '👍', true, 1), ME, 100);
    // A page asked for before the frame came: its counts are older.
    T.mergeMessages(tl, [m(1)], ME, 50);
    expect(at(tl, 1).reactions).toEqual([{ emoji: '👍', count: 1 }]);
    // A page asked for after it (a reconnect): the server's view wins.
    T.mergeMessages(tl, [m(1, PEER, { reactions: [{ emoji: '👍', count: 2 }] })], ME, 200);
    expect(at(tl, 1).reactions).toEqual([{ emoji: '👍', count: 2 }]);
  });

  it('ignore messages not held and recalled ones', () => {
    const tl = loaded(m(1));
    expect(T.applyReaction(tl, { ...r(PEER, '👍', true, 1), seq: 7 }, ME)).toBe(false);
    T.applyRecalled(tl, 1);
    expect(T.applyReaction(tl, r(PEER, '👍', true, 2), ME)).toBe(false);
    expect(at(tl, 1).reactions).toBeUndefined();
  });

  it('toggleOf says whether a click adds or removes mine', () => {
    expect(T.toggleOf(m(1, PEER, { reactions: [{ emoji: '👍', count: 1, mine: true }] }), '👍')).toBe(false);
    expect(T.toggleOf(m(1, PEER, { reactions: [{ emoji: '👍', count: 1 }] }), '👍')).toBe(true);
  });
});

describe('quotes', () => {
  it('of a reply I send show at once and stay after the ack', () => {
    const tl = loaded(m(1));
    T.addPending(tl, { id: 'x', conv: CONV, from: ME, body: 'yes', ts: 5, reply_to: 1, reply: T.quoteOf(at(tl, 1)) });
    T.applyAck(tl, { id: 'x', seq: 2, ts: 6 }, ME);
    expect(at(tl, 2).reply).toEqual({ seq: 1, state: 'visible', from: PEER, preview: 'm1' });
  });

  it('turn recalled or deleted with the quoted message, and never visible again', () => {
    const tl = loaded(m(1), m(2, ME, { reply: { seq: 1, state: 'visible', from: PEER, preview: 'm1' } }), m(3, ME, { reply: { seq: 1, state: 'visible', from: PEER, preview: 'm1' } }));
    T.applyRecalled(tl, 1);
    expect(at(tl, 2).reply).toEqual({ seq: 1, state: 'recalled' });
    T.mergeMessages(tl, [m(2, ME, { reply: { seq: 1, state: 'visible', from: PEER, preview: 'm1' } })], ME);
    expect(at(tl, 2).reply?.state).toBe('recalled');
    const tl2 = loaded(m(1), m(2, ME, { reply: { seq: 1, state: 'visible', from: PEER, preview: 'm1' } }));
    T.applyDeleted(tl2, 1);
    expect(at(tl2, 2).reply).toEqual({ seq: 1, state: 'deleted' });
  });

  it('quoteOf: a recalled message, an attachment without text, a long text', () => {
    expect(T.quoteOf(m(1, PEER, { recalled: true, body: undefined }))).toEqual({ seq: 1, state: 'recalled' });
    const img = { id: 'u1', kind: 'image' as const, name: 'a.png', mime: 'image/png', size: 3 };
    expect(T.quoteOf(m(1, PEER, { body: '', attachment: img }))).toEqual({ seq: 1, state: 'visible', from: PEER, preview: null, attachment: 'image' });
    expect(T.quoteOf(m(1, PEER, { body: 'x'.repeat(300) })).preview).toHaveLength(T.QUOTE_CHARS);
  });
});

describe('quote text', () => {
  it('names each of the four states, and a file without text by its kind', () => {
    expect(T.quoteText({ seq: 1, state: 'visible', from: 2, preview: 'hello' }, t)).toBe('hello');
    expect(T.quoteText({ seq: 1, state: 'visible', from: 2, preview: null, attachment: 'image' }, t)).toBe('[Image]');
    expect(T.quoteText({ seq: 1, state: 'recalled' }, t)).toBe('This message was recalled');
    expect(T.quoteText({ seq: 1, state: 'deleted' }, t)).toBe('You deleted this message');
    expect(T.quoteText({ seq: 1, state: 'not_visible' }, t)).toBe('This message is not visible to you');
  });
});

describe('acks of rich sends', () => {
  it('a forward keeps its origin and attachment until the server copy replaces it', () => {
    const tl = loaded();
    const img = { id: 'u1', kind: 'image' as const, name: 'a.png', mime: 'image/png', size: 3 };
    T.addPending(tl, { id: 'f', conv: CONV, from: ME, body: 'orig', ts: 5, forward: { conv: 'g:9', seq: 4 }, forwarded_from: 7, attachment: img });
    T.applyAck(tl, { id: 'f', seq: 1, ts: 6 }, ME);
    expect(at(tl, 1)).toMatchObject({ body: 'orig', forwarded_from: 7, attachment: img });
    const server = m(1, ME, { id: 'f', body: 'orig', forwarded_from: 7, attachment: { ...img, width: 2, height: 1, thumb: true } });
    T.mergeMessages(tl, [server], ME);
    expect(at(tl, 1)).toEqual(server);
  });
});

describe('canEdit', () => {
  const W = 15 * 60_000;
  it('only my own text, not a forward, not recalled, within the window, not when edits are off', () => {
    expect(T.canEdit(m(1, ME), ME, 1001 + W - 1, W)).toBe(true);
    expect(T.canEdit(m(1, ME), ME, 1001 + W, W)).toBe(false);
    expect(T.canEdit(m(1, PEER), ME, 1002, W)).toBe(false);
    expect(T.canEdit(m(1, ME, { forwarded_from: 2 }), ME, 1002, W)).toBe(false);
    expect(T.canEdit(m(1, ME, { recalled: true }), ME, 1002, W)).toBe(false);
    expect(T.canEdit(m(1, ME, { kind: 'system' }), ME, 1002, W)).toBe(false);
    expect(T.canEdit(m(1, ME), ME, 1002, 0)).toBe(false);
  });
});
