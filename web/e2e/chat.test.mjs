// End to end, in headless Chromium against a real im-server: friends, 1:1 chat with ticks,
// reload, offline delivery, recall and delete-for-me, two tabs, the phone layout, the Chinese UI.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  Server, launch, person, register, signIn, befriend, chatWith, openConv, say, bubble, until, tickOf, bodies, uname,
  wire, repo,
} from './harness.mjs';

const shots = process.env.IM_E2E_UPDATE_SCREENSHOTS ? join(repo, 'docs', 'img') : join(repo, 'web', 'e2e', 'out');
mkdirSync(shots, { recursive: true });

let srv;
let browser;

before(async () => {
  srv = await new Server().start();
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await srv?.dispose();
});

describe('two people', () => {
  let ann, bob, annName, bobName, conv;

  before(async () => {
    annName = uname('ann');
    bobName = uname('bob');
    ann = await person(browser, srv.base);
    bob = await person(browser, srv.base);
    await register(ann.page, annName, { nickname: 'Ann' });
    await register(bob.page, bobName, { nickname: 'Bob' });
  });

  test('become friends through a request with its message', async () => {
    await befriend(ann.page, bob.page, bobName, 'Hi Bob, Ann from work');
    // Ann sees Bob in her friend list, online (a live presence dot).
    await ann.page.getByTestId('nav-contacts').click();
    const friend = ann.page.locator(`[data-testid=friend][data-user="${bobName}"]`);
    await friend.waitFor();
    await until(async () => (await friend.getByTestId('presence').getAttribute('data-online')) === 'true', 'bob online');
  });

  test('a second request within 24 hours is refused in a sentence', async () => {
    const carol = uname('carol');
    const other = await person(browser, srv.base);
    await register(other.page, carol);
    await other.ctx.close();
    const p = ann.page;
    await p.getByTestId('nav-contacts').click();
    const note = p.locator(`[data-testid=search-hit][data-user="${carol}"] [data-testid=request-note]`);
    await p.getByTestId('search-input').fill(carol);
    await p.getByTestId('search-btn').click();
    await p.locator(`[data-testid=search-hit][data-user="${carol}"]`).getByTestId('send-request').click();
    await note.filter({ hasText: 'Request sent.' }).waitFor();
    await p.locator(`[data-testid=search-hit][data-user="${carol}"]`).getByTestId('send-request').click();
    await note.filter({ hasText: '24 hours' }).waitFor();
    assert.match(await note.textContent(), /^You sent this person a request less than 24 hours ago\. You can send another in 2\d h \d+ min\.$/);
  });

  test('chat both ways live, ticks from sending to read, typing shown', async () => {
    await chatWith(ann.page, bobName);
    conv = await ann.page.getByTestId('chat').getAttribute('data-conv');
    assert.match(conv, /^d:\d+:\d+$/);
    await bob.page.getByTestId('nav-chats').click();
    await say(ann.page, 'hello bob');
    // Bob sees it live in his list, then opens the chat.
    await bob.page.locator(`[data-testid=conv][data-conv="${conv}"]`).waitFor();
    await openConv(bob.page, 'Ann');
    await bubble(bob.page, 'hello bob').waitFor();
    // Bob has the chat open and visible: Ann's tick reaches "read".
    await until(async () => (await tickOf(ann.page, 'hello bob')) === 'read', 'read tick');
    // Typing.
    await bob.page.getByTestId('composer').pressSequentially('yes hi', { delay: 20 });
    await until(async () => /typing/.test(await ann.page.getByTestId('typing').textContent()), 'typing indicator');
    await bob.page.getByTestId('composer').press('Enter');
    await bubble(ann.page, 'yes hi').waitFor();
    await until(async () => (await tickOf(bob.page, 'yes hi')) === 'read', 'read tick for bob');
    // Local echo: a message shows at once with its client id, then gets its seq.
    await say(ann.page, 'echo test');
    const echo = bubble(ann.page, 'echo test');
    await echo.waitFor();
    assert.match(await echo.getAttribute('data-id'), /^w\d+-/);
    await until(async () => (await echo.getAttribute('data-seq')) !== '', 'ack');
    await bubble(bob.page, 'echo test').waitFor();
    await ann.page.screenshot({ path: join(shots, 'web-client-chat.png') });
  });

  test('delivered but not read while the chat is not open', async () => {
    await bob.page.getByTestId('nav-contacts').click(); // leaves the chat
    await say(ann.page, 'are you there?');
    await until(async () => (await tickOf(ann.page, 'are you there?')) === 'delivered', 'delivered tick');
    await bob.page.getByTestId('nav-chats').click();
    const badge = bob.page.locator(`[data-testid=conv][data-conv="${conv}"] [data-testid=unread]`);
    assert.equal(await badge.textContent(), '1');
  });

  test('reload keeps history, unread counts and ticks', async () => {
    await say(ann.page, 'one more');
    await bob.page.locator(`[data-testid=conv][data-conv="${conv}"] [data-testid=unread]`, { hasText: '2' }).waitFor();
    await bob.page.reload();
    await bob.page.locator(`[data-testid=conv][data-conv="${conv}"] [data-testid=unread]`, { hasText: '2' }).waitFor();
    // Ticks come back from the list's peer marks (delivered marks are stored within about half
    // a second: reload until the page shows it).
    await until(async () => {
      await ann.page.reload();
      await bubble(ann.page, 'hello bob').waitFor();
      return (await tickOf(ann.page, 'one more')) === 'delivered';
    }, 'delivered tick after a reload');
    assert.deepEqual(await bodies(ann.page), ['hello bob', 'yes hi', 'echo test', 'are you there?', 'one more']);
    assert.equal(await tickOf(ann.page, 'hello bob'), 'read');
    await openConv(bob.page, 'Ann');
    await bubble(bob.page, 'one more').waitFor();
    await until(async () => (await tickOf(ann.page, 'one more')) === 'read', 'read after opening');
    assert.equal(await bob.page.locator(`[data-testid=conv][data-conv="${conv}"] [data-testid=unread]`).count(), 0);
  });

  test('a message sent while the peer’s page is closed appears when it opens', async () => {
    await bob.page.close();
    await say(ann.page, 'while you were away');
    await until(async () => (await tickOf(ann.page, 'while you were away')) === 'sent', 'sent tick');
    bob.page = wire(await bob.ctx.newPage());
    await bob.page.goto(srv.base + '/');
    await bob.page.locator(`[data-testid=conv][data-conv="${conv}"] [data-testid=conv-preview]`, { hasText: 'while you were away' }).waitFor();
    await openConv(bob.page, 'Ann');
    await bubble(bob.page, 'while you were away').waitFor();
    await until(async () => (await tickOf(ann.page, 'while you were away')) === 'read', 'read tick');
  });

  test('recall for both, delete for me only', async () => {
    await say(ann.page, 'oops wrong chat');
    await bubble(bob.page, 'oops wrong chat').waitFor();
    const mine = bubble(ann.page, 'oops wrong chat');
    await until(async () => (await mine.getAttribute('data-seq')) !== '', 'ack');
    const seq = await mine.getAttribute('data-seq');
    await mine.getByTestId('msg-menu-btn').click();
    await ann.page.getByTestId('recall').click();
    for (const p of [ann.page, bob.page]) {
      await p.locator(`[data-testid=msg][data-seq="${seq}"] [data-testid=recalled]`).waitFor();
      // A recalled message has no menu any more.
      assert.equal(await p.locator(`[data-testid=msg][data-seq="${seq}"] [data-testid=msg-menu-btn]`).count(), 0);
    }
    // Bob's message cannot be recalled by Ann: the menu has no Recall.
    await bubble(ann.page, 'yes hi').getByTestId('msg-menu-btn').click();
    assert.equal(await ann.page.getByTestId('recall').count(), 0);
    await ann.page.getByTestId('delete').click();
    await until(async () => (await bubble(ann.page, 'yes hi').count()) === 0, 'deleted for ann');
    assert.equal(await bubble(bob.page, 'yes hi').count(), 1);
    await ann.page.reload();
    await bubble(ann.page, 'hello bob').waitFor();
    assert.equal(await bubble(ann.page, 'yes hi').count(), 0);
  });

  test('conversation settings: pin, do-not-disturb, clear history, hide', async () => {
    const p = bob.page;
    await p.getByTestId('nav-chats').click();
    const row = p.locator(`[data-testid=conv][data-conv="${conv}"]`);
    await row.getByTestId('conv-menu-btn').click();
    await row.getByRole('menuitem', { name: 'Pin' }).click();
    await row.getByTestId('pinned').waitFor();
    await row.getByTestId('conv-menu-btn').click();
    await row.getByRole('menuitem', { name: 'Do not disturb' }).click();
    await row.getByTestId('conv-dnd').waitFor();
    await openConv(p, 'Ann');
    await p.getByTestId('chat-menu-btn').click();
    await p.getByRole('menuitem', { name: 'Clear history' }).click();
    await until(async () => (await bodies(p)).length === 0, 'history cleared');
    assert.ok((await bodies(ann.page)).length > 0, 'the peer keeps everything');
    await p.getByTestId('chat-menu-btn').click();
    await p.getByRole('menuitem', { name: 'Hide' }).click();
    await until(async () => (await p.locator(`[data-testid=conv][data-conv="${conv}"]`).count()) === 0, 'hidden');
    // A new message shows it again.
    await say(ann.page, 'back again');
    await p.locator(`[data-testid=conv][data-conv="${conv}"]`, { hasText: 'back again' }).waitFor();
  });

  test('two tabs of the same person: each its own device, read marks synced', async () => {
    const tab2 = wire(await bob.ctx.newPage());
    await tab2.goto(srv.base + '/');
    await tab2.getByTestId('busy-tab').waitFor();
    await signIn(tab2, bobName);
    await bob.page.getByTestId('nav-chats').click();
    await tab2.getByTestId('nav-chats').click();
    await say(ann.page, 'for both tabs');
    for (const p of [bob.page, tab2]) {
      await p.locator(`[data-testid=conv][data-conv="${conv}"] [data-testid=unread]`).waitFor();
    }
    await openConv(tab2, 'Ann');
    await bubble(tab2, 'for both tabs').waitFor();
    // Read in the second tab: the first tab's badge goes away.
    await until(async () => (await bob.page.locator(`[data-testid=conv][data-conv="${conv}"] [data-testid=unread]`).count()) === 0, 'badge cleared in tab 1');
    // Both devices are in the device list.
    await tab2.getByTestId('nav-me').click();
    await until(async () => (await tab2.getByTestId('device').count()) >= 2, 'two devices');
    await tab2.close();
  });
});

describe('contacts and devices', () => {
  test('categories, remark, do-not-disturb, reject and ignore, removing a friend, signing a device out', async () => {
    const names = { eve: uname('eve'), fay: uname('fay'), gus: uname('gus'), hal: uname('hal') };
    const [eve, fay, gus, hal] = await Promise.all(Object.keys(names).map(() => person(browser, srv.base)));
    await register(eve.page, names.eve);
    await register(fay.page, names.fay, { nickname: 'Fay' });
    await register(gus.page, names.gus);
    await register(hal.page, names.hal);
    await befriend(eve.page, fay.page, names.fay, 'eve for fay');
    const p = eve.page;
    await p.getByTestId('nav-contacts').click();
    // A category: create, move the friend into it, rename it, delete it (the friend goes back).
    await p.getByTestId('new-category').fill('Work');
    await p.getByTestId('add-category').click();
    await p.locator('[data-testid=category][data-name=Work]').waitFor();
    const friend = p.locator(`[data-testid=friend][data-user="${names.fay}"]`);
    await friend.getByTestId('friend-menu-btn').click();
    await friend.getByTestId('move-category').selectOption({ label: 'Work' });
    await p.locator(`[data-testid=category][data-name=Work] [data-testid=friend][data-user="${names.fay}"]`).waitFor();
    const work = p.locator('[data-testid=category][data-name=Work]');
    await work.getByTestId('rename-category').click();
    await work.getByTestId('category-name').fill('Colleagues');
    await work.getByTestId('category-name').press('Enter');
    const colleagues = p.locator('[data-testid=category][data-name=Colleagues]');
    await colleagues.locator(`[data-testid=friend][data-user="${names.fay}"]`).waitFor();
    // Remark and do-not-disturb.
    const f2 = colleagues.locator(`[data-testid=friend][data-user="${names.fay}"]`);
    if ((await f2.getByTestId('remark-input').count()) === 0) await f2.getByTestId('friend-menu-btn').click();
    await f2.getByTestId('remark-input').fill('Fay from work');
    await f2.getByTestId('save-remark').click();
    await p.locator(`[data-testid=friend][data-user="${names.fay}"]`, { hasText: 'Fay from work' }).waitFor();
    await p.locator(`[data-testid=friend][data-user="${names.fay}"]`).getByTestId('friend-dnd').check();
    await until(async () => p.locator(`[data-testid=friend][data-user="${names.fay}"] [data-testid=friend-dnd]`).isChecked(), 'dnd');
    await colleagues.getByTestId('delete-category').click();
    await p.locator(`[data-testid=category][data-name=Friends] [data-testid=friend][data-user="${names.fay}"]`).waitFor();
    // Requests from gus (rejected) and hal (ignored); an ignore is silent: hal still sees pending.
    for (const [who, action] of [[gus, 'reject'], [hal, 'ignore']]) {
      await who.page.getByTestId('nav-contacts').click();
      await who.page.getByTestId('search-input').fill(names.eve);
      await who.page.getByTestId('search-btn').click();
      await who.page.locator(`[data-testid=search-hit][data-user="${names.eve}"]`).getByTestId('send-request').click();
      const req = p.locator(`[data-testid=request][data-user="${who === gus ? names.gus : names.hal}"]`);
      await req.getByTestId(action).click();
      await p.locator(`[data-testid=request][data-user="${who === gus ? names.gus : names.hal}"][data-status="${action === 'reject' ? 'rejected' : 'ignored'}"]`).waitFor();
    }
    await hal.page.reload();
    await hal.page.getByTestId('nav-contacts').click();
    await hal.page.getByTestId('requests-out').click();
    await hal.page.locator(`[data-testid=request][data-user="${names.eve}"][data-status=pending]`).waitFor();
    // Removing a friend.
    await p.locator(`[data-testid=friend][data-user="${names.fay}"]`).getByTestId('friend-menu-btn').click();
    await p.locator(`[data-testid=friend][data-user="${names.fay}"]`).getByTestId('delete-friend').click();
    await until(async () => (await p.locator(`[data-testid=friend][data-user="${names.fay}"]`).count()) === 0, 'friend removed');
    // Devices: a second sign-in of eve's shows in the list, and signing it out ends that session.
    const other = await person(browser, srv.base);
    await signIn(other.page, names.eve);
    await p.getByTestId('nav-me').click();
    await until(async () => (await p.getByTestId('device').count()) === 2, 'two devices');
    await p.locator('[data-testid=device]').filter({ hasNotText: 'this device' }).getByRole('button').click();
    await other.page.getByTestId('auth-form').waitFor();
    await until(async () => (await p.getByTestId('device').count()) === 1, 'one device left');
    // Signing out this device.
    await p.getByTestId('sign-out').click();
    await p.getByTestId('auth-form').waitFor();
    for (const x of [eve, fay, gus, hal, other]) await x.ctx.close();
  });
});

describe('phone layout and Chinese', () => {
  test('the Chinese UI renders, and the language can be switched', async () => {
    const zh = await person(browser, srv.base, { locale: 'zh-CN' });
    await zh.page.getByRole('heading', { name: '登录' }).waitFor();
    await register(zh.page, uname('li'));
    assert.equal((await zh.page.getByTestId('nav-chats').textContent()).trim(), '消息');
    assert.equal(await zh.page.evaluate(() => document.documentElement.lang), 'zh-CN');
    await zh.page.getByTestId('nav-me').click();
    await zh.page.getByRole('button', { name: 'English' }).click();
    assert.equal((await zh.page.getByTestId('nav-chats').textContent()).trim(), 'Chats');
    await zh.page.getByRole('button', { name: '简体中文' }).click();
    await zh.page.getByTestId('nav-contacts').click();
    await zh.page.getByRole('heading', { name: '好友申请' }).waitFor();
    await zh.page.screenshot({ path: join(shots, 'web-client-zh.png') });
    await zh.ctx.close();
  });

  test('on a phone-sized screen the list and the chat take the whole screen in turn', async () => {
    const viewport = { width: 390, height: 780 };
    const a = await person(browser, srv.base, { viewport });
    const b = await person(browser, srv.base);
    const aName = uname('pam');
    const bName = uname('pat');
    await register(a.page, aName);
    await register(b.page, bName);
    await befriend(b.page, a.page, aName);
    await chatWith(b.page, aName);
    await say(b.page, 'on your phone?');
    await a.page.getByTestId('nav-chats').click();
    await openConv(a.page, bName);
    await bubble(a.page, 'on your phone?').waitFor();
    assert.equal(await a.page.getByTestId('nav-chats').isVisible(), false, 'the nav hides behind the chat');
    const box = await a.page.getByTestId('chat').boundingBox();
    assert.ok(box.width >= 380, `the chat is full width (${box.width})`);
    await say(a.page, 'yes, on the phone');
    await bubble(b.page, 'yes, on the phone').waitFor();
    await a.page.screenshot({ path: join(shots, 'web-client-phone.png') });
    await a.page.getByRole('button', { name: 'Back' }).click();
    await a.page.getByTestId('conv-list').waitFor();
    await a.ctx.close();
    await b.ctx.close();
  });
});
