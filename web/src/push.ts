// Web Push on this browser (docs/API.md, "Push notifications"): the service worker `/sw.js`
// shows what the server pushes while none of my devices is online. A subscription belongs to
// this browser and is registered for the device this tab signed in as; signing in again (a new
// device) registers it again for the new one.

import * as A from './api';

/** What this browser can do and has done. */
export type PushState = 'unsupported' | 'unavailable' | 'denied' | 'off' | 'on';

/** My push settings (`GET/PUT /push/settings`). */
export interface PushSettings {
  previews: boolean;
  mentions_break_mute: boolean;
}

export function supported(): boolean {
  return typeof navigator !== 'undefined' && 'serviceWorker' in navigator && typeof window !== 'undefined' && 'PushManager' in window && 'Notification' in window;
}

/** The bytes of an unpadded base64url string (the VAPID public key). */
export function b64urlToBytes(s: string): Uint8Array {
  const b64 = s.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (s.length % 4)) % 4);
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** The body of `POST /devices/{id}/push` for a browser subscription (`PushSubscription.toJSON()`). */
export function targetBody(sub: { endpoint?: string; expirationTime?: number | null; keys?: Record<string, string> }) {
  return {
    kind: 'webpush',
    endpoint: sub.endpoint,
    keys: { p256dh: sub.keys?.p256dh ?? '', auth: sub.keys?.auth ?? '' },
    expiration_time: sub.expirationTime ?? null,
  };
}

let reg: Promise<ServiceWorkerRegistration | null> | null = null;

/** The service worker's registration (registered once per page). */
export function registration(): Promise<ServiceWorkerRegistration | null> {
  if (!supported()) return Promise.resolve(null);
  reg ??= navigator.serviceWorker.register('/sw.js').catch(() => null);
  return reg;
}

/** Tells the worker the app's language (its notifications use it). */
export function tellLang(lang: string): void {
  if (!supported()) return;
  void registration().then((r) => (r?.active ?? r?.installing ?? r?.waiting)?.postMessage({ type: 'lang', lang }));
}

/** Registers the worker, tells it the app's language and routes its "open this chat" clicks. */
export function bindWorker(lang: string, open: (path: string) => void): void {
  if (!supported()) return;
  tellLang(lang);
  navigator.serviceWorker.addEventListener('message', (e) => {
    if (e.data?.type === 'open' && typeof e.data.path === 'string' && e.data.path.startsWith('/')) open(e.data.path);
  });
}

export async function state(): Promise<PushState> {
  if (!supported()) return 'unsupported';
  if (Notification.permission === 'denied') return 'denied';
  const r = await registration();
  if (!r) return 'unsupported';
  return (await r.pushManager.getSubscription()) ? 'on' : 'off';
}

/** The server's VAPID key, or null when the server has Web Push off. */
async function vapidKey(): Promise<string | null> {
  try {
    return (await A.get<{ public_key: string }>('/push/vapid')).public_key;
  } catch (e) {
    if (e instanceof A.ApiError && e.status === 404) return null;
    throw e;
  }
}

/** Asks for permission, subscribes this browser and registers it for `deviceId`. */
export async function enable(deviceId: number): Promise<PushState> {
  if (!supported()) return 'unsupported';
  const key = await vapidKey();
  if (!key) return 'unavailable';
  if ((await Notification.requestPermission()) !== 'granted') return 'denied';
  const r = await registration();
  if (!r) return 'unsupported';
  const applicationServerKey = b64urlToBytes(key);
  let sub = await r.pushManager.getSubscription();
  // A subscription made with another key (the server's key changed) cannot be used.
  const old = sub?.options.applicationServerKey;
  if (sub && old && !sameBytes(new Uint8Array(old), applicationServerKey)) {
    await sub.unsubscribe();
    sub = null;
  }
  sub ??= await r.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: applicationServerKey as BufferSource });
  await A.post(`/devices/${deviceId}/push`, targetBody(sub.toJSON()));
  return 'on';
}

/** Unsubscribes this browser and removes the device's push targets on the server. */
export async function disable(deviceId: number): Promise<PushState> {
  const r = await registration();
  const sub = await r?.pushManager.getSubscription();
  await sub?.unsubscribe();
  await A.del(`/devices/${deviceId}/push`);
  return state();
}

/** After signing in: a browser already subscribed registers itself for this (new) device. */
export async function refresh(deviceId: number): Promise<void> {
  if (!supported() || Notification.permission !== 'granted') return;
  const r = await registration();
  const sub = await r?.pushManager.getSubscription();
  if (sub) await A.post(`/devices/${deviceId}/push`, targetBody(sub.toJSON()));
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
