// End-to-end harness: a real im-server on a fresh SQLite file, and headless Chromium (Debian's
// package, driven by playwright-core; no browser is downloaded).

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const repo = resolve(here, '..', '..');

/** The im-server binary: $IM_SERVER_BIN, else the debug build that `cargo test` made. */
export function serverBin() {
  if (process.env.IM_SERVER_BIN) return process.env.IM_SERVER_BIN;
  const dirs = [process.env.CARGO_TARGET_DIR, join(repo, 'target')].filter(Boolean);
  for (const d of dirs) {
    const p = join(resolve(repo, d), 'debug', 'im-server');
    if (existsSync(p)) return p;
  }
  throw new Error(`no im-server binary in ${dirs.join(', ')}: run cargo build -p server first, or set IM_SERVER_BIN`);
}

export function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

/** A server process on `port` (a free one by default), with its database in a fresh folder. */
export class Server {
  constructor(env = {}) {
    this.env = env;
    this.dir = mkdtempSync(join(tmpdir(), 'im-e2e-'));
    this.proc = null;
    this.log = '';
  }

  get base() {
    return `http://127.0.0.1:${this.port}`;
  }

  async start() {
    this.port ??= await freePort();
    const env = {
      ...process.env,
      IM__SERVER__BIND: `127.0.0.1:${this.port}`,
      IM__SERVER__PUBLIC_URL: `http://127.0.0.1:${this.port}`,
      IM__DATABASE__URL: `sqlite://${join(this.dir, 'im.db')}`,
      IM__UPLOADS__DIR: join(this.dir, 'uploads'),
      IM__AUTH__BCRYPT_COST: '4',
      // Each scenario signs many users in from 127.0.0.1.
      IM__THROTTLE__ENABLED: 'false',
      RUST_LOG: 'info,im::http=warn',
      ...this.env,
    };
    const proc = spawn(serverBin(), [], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    this.proc = proc;
    await new Promise((res, rej) => {
      const timer = setTimeout(() => rej(new Error(`im-server did not start:\n${this.log}`)), 30_000);
      proc.stderr.setEncoding('utf8');
      proc.stderr.on('data', (chunk) => {
        this.log += chunk;
        const m = /listening on http:\/\/([\d.]+):(\d+)/.exec(this.log);
        if (m) {
          clearTimeout(timer);
          this.port = Number(m[2]);
          res();
        }
      });
      proc.once('exit', (code) => {
        clearTimeout(timer);
        rej(new Error(`im-server exited with ${code}:\n${this.log}`));
      });
    });
    proc.removeAllListeners('exit');
    return this;
  }

  /** Stops the process: SIGKILL (a crash: nothing is flushed or closed) or SIGTERM. */
  async stop(signal = 'SIGTERM') {
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode) return;
    const gone = new Promise((res) => p.once('exit', res));
    p.kill(signal);
    await gone;
    this.proc = null;
  }

  async dispose() {
    await this.stop('SIGKILL');
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic', '--disable-dev-shm-usage'],
  });
}

/** A person: a browser context (its own storage) and a page, confirm() dialogs accepted. */
export async function person(browser, base, opts = {}) {
  const ctx = await browser.newContext({ locale: opts.locale ?? 'en-US', viewport: opts.viewport ?? { width: 1200, height: 800 } });
  ctx.setDefaultTimeout(10_000);
  const page = await ctx.newPage();
  wire(page);
  if (opts.open !== false) await page.goto(base + (opts.path ?? '/'));
  return { ctx, page };
}

export function wire(page) {
  page.on('dialog', (d) => void d.accept());
  page.on('pageerror', (e) => {
    page.errors ??= [];
    page.errors.push(e);
    console.error('page error:', e.message);
  });
  return page;
}

export const PASSWORD = 'correct horse battery';

let n = 0;
/** A username no other test uses. */
export function uname(prefix) {
  return `${prefix}_${process.pid % 10000}_${++n}`;
}

export async function register(page, username, { nickname } = {}) {
  await page.getByTestId('auth-switch').click();
  await page.fill('input[name=username]', username);
  await page.fill('input[name=password]', PASSWORD);
  if (nickname) await page.fill('input[name=nickname]', nickname);
  await page.getByTestId('auth-submit').click();
  await page.getByTestId('nav-chats').waitFor();
}

export async function signIn(page, username) {
  await page.fill('input[name=username]', username);
  await page.fill('input[name=password]', PASSWORD);
  await page.getByTestId('auth-submit').click();
  await page.getByTestId('nav-chats').waitFor();
}

/** `a` finds `b` by username and sends a request with a message; `b` accepts it. */
export async function befriend(a, b, bName, message = 'hi, it is me') {
  await a.getByTestId('nav-contacts').click();
  await a.getByTestId('search-input').fill(bName);
  await a.getByTestId('search-btn').click();
  const hit = a.locator(`[data-testid=search-hit][data-user="${bName}"]`);
  await hit.getByTestId('request-message').fill(message);
  await hit.getByTestId('send-request').click();
  await hit.getByTestId('request-note').waitFor();
  await b.getByTestId('nav-contacts').click();
  const req = b.locator('[data-testid=request]', { hasText: message });
  await req.getByTestId('accept').click();
  await b.locator('[data-testid=request][data-status=accepted]', { hasText: message }).waitFor();
}

/** Opens the chat with a friend from the contact list. */
export async function chatWith(page, username) {
  await page.getByTestId('nav-contacts').click();
  await page.locator(`[data-testid=friend][data-user="${username}"]`).getByTestId('chat-with').click();
  await page.getByTestId('chat').waitFor();
}

export async function openConv(page, title) {
  await page.getByTestId('nav-chats').click();
  await page.locator('[data-testid=conv]', { hasText: title }).first().locator('a').click();
  await page.getByTestId('chat').waitFor();
}

export async function say(page, text) {
  await page.getByTestId('composer').fill(text);
  await page.getByTestId('composer').press('Enter');
}

/** The bubble holding `text` (exact body). */
export function bubble(page, text) {
  return page.locator('[data-testid=msg]').filter({ has: page.locator('[data-testid=msg-body]', { hasText: new RegExp(`^${escape(text)}$`) }) });
}

export function escape(s) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Waits until `f` returns something truthy (polling), or fails with `what`. */
export async function until(f, what, timeout = 15_000) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await f();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what} (last: ${last})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function tickOf(page, text) {
  return bubble(page, text).getAttribute('data-tick');
}

/** The bodies of the open timeline, in order. */
export async function bodies(page) {
  return page.locator('[data-testid=timeline] [data-testid=msg-body]').allTextContents();
}
