import { describe, expect, it } from 'vitest';
import { backoff } from '../src/socket';
import { directConv, parseRoute, sortConvs } from '../src/store';
import { pickLang } from '../src/i18n';
import type { Conversation } from '../src/types';

describe('backoff', () => {
  it('doubles from half a second up to 15 s, with jitter in the upper half', () => {
    expect(backoff(0, () => 0)).toBe(250);
    expect(backoff(0, () => 1)).toBe(500);
    expect(backoff(3, () => 1)).toBe(4000);
    expect(backoff(20, () => 1)).toBe(15_000);
    expect(backoff(20, () => 0)).toBe(7500);
  });
});

describe('routes', () => {
  it('maps paths to views', () => {
    expect(parseRoute('/')).toEqual({ view: 'chats' });
    expect(parseRoute('/chat/d:1:2')).toEqual({ view: 'chats', conv: 'd:1:2' });
    expect(parseRoute('/chat/g%3A7')).toEqual({ view: 'chats', conv: 'g:7' });
    expect(parseRoute('/join/abc-_9')).toEqual({ view: 'join', token: 'abc-_9' });
    expect(parseRoute('/contacts')).toEqual({ view: 'contacts' });
    expect(parseRoute('/nonsense/x')).toEqual({ view: 'chats' });
  });

  it('names 1:1 conversations canonically', () => {
    expect(directConv(7, 3)).toBe('d:3:7');
    expect(directConv(3, 7)).toBe('d:3:7');
  });
});

describe('conversation order', () => {
  const c = (conv: string, pinned: boolean, ts: number | null): Conversation => ({
    conv, kind: 'direct', peer: null, last_message: ts === null ? null : { seq: 1, ts, from: 1, preview: 'x' },
    max_seq: ts === null ? 0 : 1, read_seq: 0, unread: 0, pinned, dnd: false, mentioned: false, group: null,
  });
  it('pinned first, then by the last message, newest first', () => {
    const list = [c('a', false, 10), c('b', true, 1), c('c', false, 30), c('d', false, null), c('e', true, 5)];
    expect(sortConvs(list).map((x) => x.conv)).toEqual(['e', 'b', 'c', 'a', 'd']);
  });
});

describe('language', () => {
  it('a saved choice wins, then the browser’s first known language, then English', () => {
    expect(pickLang('zh', ['en-US'])).toBe('zh');
    expect(pickLang(null, ['zh-CN', 'en'])).toBe('zh');
    expect(pickLang(null, ['fr-FR', 'zh-TW'])).toBe('zh');
    expect(pickLang(null, ['en-GB', 'zh-CN'])).toBe('en');
    expect(pickLang(null, ['fr'])).toBe('en');
  });
});
