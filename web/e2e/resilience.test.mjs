// End to end: the server restarted (SIGTERM: close 1012) and killed (SIGKILL) on the same port
// and database mid-conversation; a conversation of 10,000 messages paged, never loaded whole;
// the recall window closing.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Server, launch, person, register, befriend, chatWith, openConv, say, bubble, until, tickOf, bodies, uname, PASSWORD } from './harness.mjs';

let srv;
let browser;

before(async () => {
  // A short recall window to see it close; frame limits raised for seeding 10,000 messages.
  srv = await new Server({ IM__CHAT__RECALL_WINDOW_SECS: '3', IM__WS__FRAMES_PER_SEC: '100000', IM__WS__BURST: '100000' }).start();
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await srv?.dispose();
});

/** Both see the banner while the socket is down, and lose it once reconnected. */
async function banner(pages, shown) {
  for (const p of pages) {
    await p.getByTestId('conn-banner').waitFor({ state: shown ? 'visible' : 'detached', timeout: 30_000 });
  }
}

describe('server restarts', () => {
  let ann, bob, annName, bobName;

  before(async () => {
    annName = uname('ann');
    bobName = uname('bob');
    ann = await person(browser, srv.base);
    bob = await person(browser, srv.base);
    await register(ann.page, annName, { nickname: 'Ann' });
    await register(bob.page, bobName, { nickname: 'Bob' });
    await befriend(ann.page, bob.page, bobName);
    await chatWith(ann.page, bobName);
    await say(ann.page, 'before the restart');
    await openConv(bob.page, 'Ann');
    await bubble(bob.page, 'before the restart').waitFor();
  });

  test('the recall item goes away when the window has passed', async () => {
    await say(ann.page, 'quick one');
    const mine = bubble(ann.page, 'quick one');
    await until(async () => (await mine.getAttribute('data-seq')) !== '', 'ack');
    await mine.getByTestId('msg-menu-btn').click();
    assert.equal(await ann.page.getByTestId('recall').count(), 1);
    await mine.getByTestId('msg-menu-btn').click(); // close
    await new Promise((r) => setTimeout(r, 3500));
    await mine.getByTestId('msg-menu-btn').click();
    await ann.page.getByTestId('delete').waitFor();
    assert.equal(await ann.page.getByTestId('recall').count(), 0);
    await mine.getByTestId('msg-menu-btn').click();
  });

  test('SIGTERM (close 1012): banner, reconnect, chat goes on', async () => {
    await srv.stop('SIGTERM');
    await banner([ann.page, bob.page], true);
    await srv.start();
    await banner([ann.page, bob.page], false);
    await say(ann.page, 'after a clean restart');
    await bubble(bob.page, 'after a clean restart').waitFor();
  });

  test('SIGKILL mid-conversation: banner, messages sent meanwhile go through once, nothing lost', async () => {
    await srv.stop('SIGKILL');
    await banner([ann.page, bob.page], true);
    await say(ann.page, 'during the outage 1');
    await say(ann.page, 'during the outage 2');
    await say(bob.page, 'bob during the outage');
    assert.equal(await tickOf(ann.page, 'during the outage 1'), 'sending');
    await srv.start();
    await banner([ann.page, bob.page], false);
    await bubble(bob.page, 'during the outage 2').waitFor({ timeout: 20_000 });
    await bubble(ann.page, 'bob during the outage').waitFor({ timeout: 20_000 });
    await until(async () => (await tickOf(ann.page, 'during the outage 2')) === 'read', 'read after reconnect');
    const want = ['before the restart', 'quick one', 'after a clean restart', 'during the outage 1', 'during the outage 2', 'bob during the outage'];
    const same = (a, b) => a.length === b.length && a.every((x) => b.includes(x));
    for (const p of [ann.page, bob.page]) {
      await until(async () => same(await bodies(p), want), 'every message once');
      // And on the server: a reload shows the same, nothing doubled.
      await p.reload();
      await bubble(p, 'before the restart').waitFor();
      assert.deepEqual((await bodies(p)).sort(), [...want].sort());
    }
  });
});

describe('a long conversation', () => {
  test('10,000 messages are paged in backwards on scroll, never loaded whole', async () => {
    const annName = uname('ann');
    const bobName = uname('bob');
    const ann = await person(browser, srv.base);
    const bob = await person(browser, srv.base);
    await register(ann.page, annName);
    await register(bob.page, bobName);
    await befriend(ann.page, bob.page, bobName);
    await chatWith(ann.page, bobName);
    const conv = await ann.page.getByTestId('chat').getAttribute('data-conv');
    // Seed through the WebSocket, as another device of Ann's, from a page without the app.
    const seeder = await browser.newContext();
    const sp = await seeder.newPage();
    // A page of this origin that may connect to it: not an API answer such as /healthz, whose
    // Content-Security-Policy (default-src 'none') lets it load and fetch nothing.
    await sp.goto(srv.base + '/favicon.svg');
    const acked = await sp.evaluate(
      async ({ username, password, conv, n }) => {
        const login = await (await fetch('/api/v1/auth/login', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ username, password, device_name: 'seeder' }) })).json();
        const ws = new WebSocket(`ws://${location.host}/ws?token=${login.token}`);
        await new Promise((r) => (ws.onopen = r));
        let acks = 0;
        let sent = 0;
        let wake = () => {};
        ws.onmessage = (e) => {
          const f = JSON.parse(e.data);
          if (f.type === 'ack') {
            acks++;
            wake();
          }
        };
        while (acks < n) {
          while (sent < n && sent - acks < 200) {
            sent++;
            ws.send(JSON.stringify({ type: 'send', id: `seed-${sent}`, conv, body: `seed ${sent}` }));
          }
          await new Promise((r) => (wake = r));
        }
        ws.close();
        return acks;
      },
      { username: annName, password: PASSWORD, conv, n: 10_000 },
    );
    assert.equal(acked, 10_000);
    await seeder.close();

    const pages = [];
    bob.page.on('request', (r) => {
      if (r.url().includes(`/conversations/${conv}/messages`)) pages.push(new URL(r.url()).searchParams.get('before_seq'));
    });
    await bob.page.getByTestId('nav-chats').click();
    await bob.page.locator(`[data-testid=conv][data-conv="${conv}"] [data-testid=unread]`, { hasText: '99+' }).waitFor();
    await openConv(bob.page, annName);
    await bubble(bob.page, 'seed 10000').waitFor();
    const count = () => bob.page.locator('[data-testid=timeline] [data-testid=msg]').count();
    assert.equal(await count(), 50, 'the newest page only');
    for (let i = 1; i <= 3; i++) {
      await bob.page.getByTestId('timeline').evaluate((el) => (el.scrollTop = 0));
      await until(async () => (await count()) === 50 * (i + 1), `page ${i + 1}`);
    }
    const shown = await bodies(bob.page);
    assert.equal(shown[0], 'seed 9801');
    assert.equal(shown[shown.length - 1], 'seed 10000');
    assert.deepEqual(pages, [null, '9951', '9901', '9851'], 'one request per page, backwards by before_seq');
    // Reading the newest message clears the whole badge.
    await until(async () => (await bob.page.locator(`[data-testid=conv][data-conv="${conv}"] [data-testid=unread]`).count()) === 0, 'read');
    await ann.ctx.close();
    await bob.ctx.close();
  });
});
