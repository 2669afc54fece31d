import { describe, expect, it } from 'vitest';
import { b64urlToBytes, targetBody } from '../src/push';
import workerSource from '../public/sw.js?raw';

// The service worker is plain JavaScript copied into dist as it is; its notification logic is a
// pure function, loaded here with a `self` that only records the listeners.
function loadWorker() {
  const listeners: Record<string, unknown> = {};
  const self = { addEventListener: (k: string, f: unknown) => (listeners[k] = f) };
  const module = { exports: {} as any };
  new Function('self', 'module', workerSource)(self, module);
  return { ...module.exports, listeners } as {
    notificationFor: (d: any, lang: string) => { title: string; options: any };
    listeners: Record<string, unknown>;
  };
}

const sw = loadWorker();

describe('service worker notifications', () => {
  it('listens for pushes and clicks', () => {
    expect(Object.keys(sw.listeners).sort()).toEqual(['activate', 'install', 'message', 'notificationclick', 'push']);
  });

  it('a 1:1 message with its preview, one notification per conversation', () => {
    const n = sw.notificationFor(
      { id: 'd:1:2/7', type: 'message', conv: 'd:1:2', sender: { id: 1, name: 'Ann' }, mentioned: false, count: 1, unread: 3, ts: 5, body: 'lunch?' },
      'en-US',
    );
    expect(n.title).toBe('Ann');
    expect(n.options.body).toBe('lunch?');
    expect(n.options.tag).toBe('d:1:2');
    expect(n.options.data.path).toBe('/chat/d%3A1%3A2');
  });

  it('without previews it says how many, never the text', () => {
    const n = sw.notificationFor({ id: 'd:1:2/9', type: 'message', conv: 'd:1:2', sender: { id: 1, name: 'Ann' }, count: 3 }, 'en');
    expect(n.options.body).toBe('3 new messages');
    expect(sw.notificationFor({ type: 'message', conv: 'd:1:2', sender: { name: 'Ann' }, count: 1 }, 'zh-CN').options.body).toBe('新消息');
  });

  it('a group message names the group and the sender; a mention says so', () => {
    const base = { type: 'message', conv: 'g:4', sender: { id: 1, name: 'Ann' }, group: { id: 4, name: 'Team' }, count: 2, body: 'hi @bob' };
    expect(sw.notificationFor(base, 'en')).toMatchObject({ title: 'Team', options: { body: 'Ann: hi @bob (+1)' } });
    expect(sw.notificationFor({ ...base, count: 1, mentioned: true }, 'en').options.body).toBe('Ann mentioned you: hi @bob');
    expect(sw.notificationFor({ ...base, count: 1, mentioned: true, body: undefined }, 'zh').options.body).toBe('Ann 提到了你');
  });

  it('friend requests open the contacts, group invites the group', () => {
    const fr = sw.notificationFor({ id: 'fr:3', type: 'friend_request', sender: { id: 1, name: 'Ann' } }, 'en');
    expect(fr).toMatchObject({ title: 'Ann', options: { body: 'sent you a friend request', data: { path: '/contacts' } } });
    const gi = sw.notificationFor({ id: 'gi:4', type: 'group_invite', conv: 'g:4', sender: { name: 'Ann' }, group: { id: 4, name: 'Team' } }, 'en');
    expect(gi).toMatchObject({ title: 'Team', options: { body: 'Ann added you to a group', data: { path: '/chat/g%3A4' } } });
  });

  it('a payload without a sender name still makes a notification', () => {
    expect(sw.notificationFor({ type: 'message', conv: 'd:1:2' }, 'en')).toMatchObject({ title: 'Someone', options: { body: 'New message' } });
  });
});

describe('push subscription helpers', () => {
  it('decodes an unpadded base64url VAPID key', () => {
    // 65 bytes, as an uncompressed P-256 point is: 0x04, then x and y.
    const bytes = new Uint8Array(65).map((_, i) => (i === 0 ? 4 : i * 3));
    const b64url = btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
    expect(b64url).not.toContain('=');
    expect(b64urlToBytes(b64url)).toEqual(bytes);
  });

  it('sends the subscription as the API takes it', () => {
    expect(targetBody({ endpoint: 'https://push.example/abc', expirationTime: null, keys: { p256dh: 'BP', auth: 'au' } })).toEqual({
      kind: 'webpush',
      endpoint: 'https://push.example/abc',
      keys: { p256dh: 'BP', auth: 'au' },
      expiration_time: null,
    });
  });
});
