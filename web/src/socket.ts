// The WebSocket (docs/PROTOCOL.md): one connection, reconnected with exponential backoff and
// jitter; an application-level ping notices a dead path that the browser does not report.

import type { ServerFrame } from './types';

export type ConnState = 'connecting' | 'open' | 'waiting' | 'stopped';

export interface SocketEvents {
  frame(f: ServerFrame): void;
  state(s: ConnState, info: { retryAt?: number; code?: number }): void;
}

/** Close codes after which reconnecting with the same token is pointless (PROTOCOL.md). */
const FINAL = new Set([4001, 4003]);
const PING_MS = 20_000;
const PONG_TIMEOUT_MS = 10_000;

/** The delay before reconnect attempt `n` (0-based): 0.5 s doubling to 15 s, with jitter. */
export function backoff(n: number, rand = Math.random): number {
  const base = Math.min(15_000, 500 * 2 ** n);
  return Math.round(base / 2 + (rand() * base) / 2);
}

export class Socket {
  private ws: WebSocket | null = null;
  private attempts = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private pinger: ReturnType<typeof setInterval> | undefined;
  private pongDue = 0;
  private stopped = false;
  state: ConnState = 'stopped';

  constructor(
    private token: string,
    private on: SocketEvents,
  ) {}

  start(): void {
    this.stopped = false;
    this.open();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.pinger);
    this.ws?.close(1000);
    this.ws = null;
    this.set('stopped', {});
  }

  /** Reconnects now (after a `replaced` close, when the user asks). */
  retryNow(): void {
    clearTimeout(this.timer);
    this.attempts = 0;
    this.stopped = false;
    if (!this.ws) this.open();
  }

  send(frame: object): boolean {
    if (this.ws && this.ws.readyState === WebSocket.OPEN && this.state === 'open') {
      this.ws.send(JSON.stringify(frame));
      return true;
    }
    return false;
  }

  private set(s: ConnState, info: { retryAt?: number; code?: number }) {
    this.state = s;
    this.on.state(s, info);
  }

  private open() {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(`${proto}//${location.host}/ws?token=${encodeURIComponent(this.token)}`);
    this.ws = ws;
    this.set('connecting', {});
    ws.onmessage = (ev) => {
      let f: ServerFrame;
      try {
        f = JSON.parse(String(ev.data));
      } catch {
        return;
      }
      this.pongDue = 0;
      if (f.type === 'hello') {
        this.attempts = 0;
        this.set('open', {});
        clearInterval(this.pinger);
        this.pinger = setInterval(() => this.ping(), PING_MS);
      }
      this.on.frame(f);
    };
    ws.onclose = (ev) => this.lost(ws, ev.code);
  }

  private lost(ws: WebSocket, code: number) {
    if (this.ws !== ws) return;
    this.ws = null;
    clearInterval(this.pinger);
    this.pongDue = 0;
    if (this.stopped) return;
    if (FINAL.has(code)) {
      this.set('stopped', { code });
      return;
    }
    const delay = backoff(this.attempts++);
    this.set('waiting', { retryAt: Date.now() + delay, code });
    this.timer = setTimeout(() => this.open(), delay);
  }

  private ping() {
    if (this.pongDue && Date.now() > this.pongDue) {
      // No answer in time: the path is dead even if the browser has not noticed.
      const ws = this.ws;
      if (ws) {
        this.lost(ws, 4000);
        ws.close();
      }
      return;
    }
    if (this.send({ type: 'ping' }) && !this.pongDue) this.pongDue = Date.now() + PONG_TIMEOUT_MS;
  }
}
