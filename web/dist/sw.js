// The web client's service worker: shows the Web Push notifications the server sends to this
// browser while none of the user's devices is online (docs/API.md, "Push notifications"), and
// opens the conversation when one is clicked. It caches nothing: the app itself is served by the
// server. Plain JavaScript (it is copied into web/dist as it is, not bundled).

'use strict';

const TEXT = {
  en: {
    message: 'New message',
    messages: (n) => `${n} new messages`,
    mention: 'mentioned you',
    friend_request: 'sent you a friend request',
    group_invite: 'added you to a group',
    someone: 'Someone',
  },
  zh: {
    message: '新消息',
    messages: (n) => `${n} 条新消息`,
    mention: '提到了你',
    friend_request: '请求添加你为好友',
    group_invite: '邀请你加入了群聊',
    someone: '有人',
  },
};

/** The language the app chose (told by the page), else the browser's. */
let chosenLang = null;

function langOf(tag) {
  return String(tag || '').toLowerCase().startsWith('zh') ? 'zh' : 'en';
}

/** The app path of a conversation (as store.convPath does). */
function convPath(conv) {
  return conv ? `/chat/${encodeURIComponent(conv)}` : '/';
}

/**
 * The notification for one pushed payload `{id, type, conv, sender: {id, name}, mentioned, count,
 * unread, ts, group?: {id, name}, body?}`: its title and options. Pure, for the unit tests.
 */
function notificationFor(data, lang) {
  const tx = TEXT[langOf(lang)];
  const sender = (data && data.sender && data.sender.name) || tx.someone;
  const count = Math.max(1, Number((data && data.count) || 1));
  let title;
  let body;
  if (data.type === 'friend_request') {
    title = sender;
    body = tx.friend_request;
  } else if (data.type === 'group_invite') {
    title = (data.group && data.group.name) || sender;
    body = `${sender} ${tx.group_invite}`;
  } else {
    title = data.group && data.group.name ? data.group.name : sender;
    const preview = typeof data.body === 'string' && data.body ? data.body : null;
    if (data.mentioned) body = `${sender} ${tx.mention}` + (preview ? `: ${preview}` : '');
    else if (preview) body = (data.group ? `${sender}: ` : '') + preview;
    else body = (data.group ? `${sender}: ` : '') + (count > 1 ? tx.messages(count) : tx.message);
    if (preview && count > 1) body += ` (+${count - 1})`;
  }
  return {
    title,
    options: {
      body,
      // One notification per conversation: a later push replaces it (the server coalesces too).
      tag: data.conv || data.id,
      renotify: true,
      timestamp: data.ts,
      icon: '/favicon.svg',
      data: { path: data.type === 'friend_request' ? '/contacts' : convPath(data.conv), id: data.id },
    },
  };
}

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (e) => e.waitUntil(self.clients.claim()));

self.addEventListener('message', (e) => {
  if (e.data && e.data.type === 'lang') chosenLang = e.data.lang;
});

self.addEventListener('push', (e) => {
  let data;
  try {
    data = e.data ? e.data.json() : null;
  } catch {
    data = null;
  }
  if (!data || typeof data !== 'object') return;
  const n = notificationFor(data, chosenLang || self.navigator.language);
  const badge = Number(data.unread);
  const work = [self.registration.showNotification(n.title, n.options)];
  if (Number.isFinite(badge) && self.navigator.setAppBadge) work.push(self.navigator.setAppBadge(badge).catch(() => {}));
  e.waitUntil(Promise.all(work));
});

self.addEventListener('notificationclick', (e) => {
  e.notification.close();
  const path = (e.notification.data && e.notification.data.path) || '/';
  e.waitUntil(
    self.clients.matchAll({ type: 'window', includeUncontrolled: true }).then((wins) => {
      const win = wins.find((w) => new URL(w.url).origin === self.location.origin);
      if (win) {
        win.postMessage({ type: 'open', path });
        return win.focus();
      }
      return self.clients.openWindow(path);
    }),
  );
});

if (typeof module !== 'undefined') module.exports = { notificationFor, convPath };
