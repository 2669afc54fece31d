// End to end: a group of three with mentions, read-by, roles, a mute, settings and a removal;
// joining through an invite link (and its QR code) from a browser that is not signed in.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Server, launch, person, register, befriend, openConv, say, bubble, until, uname, repo } from './harness.mjs';

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

async function openInfo(page) {
  if ((await page.getByTestId('group-info').count()) === 0) await page.getByTestId('group-info-btn').click();
  await page.getByTestId('group-info').waitFor();
}

/** Opens a member's menu in the group panel and picks an item (by test id, or `role:<name>`). */
async function memberAction(page, username, item) {
  await openInfo(page);
  const row = page.locator(`[data-testid=member][data-user="${username}"]`);
  await row.getByTestId('member-menu-btn').click();
  if (item.startsWith('role:')) await row.getByRole('menuitem', { name: item.slice(5) }).click();
  else await row.getByTestId(item).click();
}

describe('a group of three', () => {
  let ann, bob, cat, names, conv;

  before(async () => {
    names = { ann: uname('ann'), bob: uname('bob'), cat: uname('cat') };
    ann = await person(browser, srv.base);
    bob = await person(browser, srv.base);
    cat = await person(browser, srv.base);
    await register(ann.page, names.ann, { nickname: 'Ann' });
    await register(bob.page, names.bob, { nickname: 'Bob' });
    await register(cat.page, names.cat, { nickname: 'Cat' });
    await befriend(ann.page, bob.page, names.bob, 'ann here');
    await befriend(ann.page, cat.page, names.cat, 'ann here too');
  });

  test('create it with two friends; everyone gets the conversation', async () => {
    await ann.page.getByTestId('nav-groups').click();
    await ann.page.getByTestId('new-group-btn').click();
    await ann.page.fill('input[name=group-name]', 'Team');
    await ann.page.getByTestId(`pick-${names.bob}`).check();
    await ann.page.getByTestId(`pick-${names.cat}`).check();
    await ann.page.getByTestId('create-group').click();
    await ann.page.getByTestId('chat').waitFor();
    conv = await ann.page.getByTestId('chat').getAttribute('data-conv');
    assert.match(conv, /^g:\d+$/);
    await say(ann.page, 'welcome to the team');
    for (const p of [bob.page, cat.page]) {
      await p.getByTestId('nav-chats').click();
      await p.locator(`[data-testid=conv][data-conv="${conv}"]`, { hasText: 'welcome to the team' }).waitFor();
    }
    await openInfo(ann.page);
    assert.equal(await ann.page.getByTestId('member').count(), 3);
    assert.equal(await ann.page.locator(`[data-testid=member][data-user="${names.ann}"] [data-testid=role]`).textContent(), 'owner');
  });

  test('@ mentions through the member picker, and @all', async () => {
    const p = ann.page;
    await p.getByTestId('composer').fill('');
    await p.getByTestId('composer').pressSequentially('@Bo');
    await p.getByTestId('mention-picker').waitFor();
    await p.getByTestId('mention-option').filter({ hasText: 'Bob' }).click();
    await p.getByTestId('composer').pressSequentially('look at this');
    await p.getByTestId('composer').press('Enter');
    // Bob is not in the chat: his list says he was mentioned; Cat's does not.
    await bob.page.locator(`[data-testid=conv][data-conv="${conv}"] [data-testid=conv-preview].mention`).waitFor();
    await cat.page.locator(`[data-testid=conv][data-conv="${conv}"] [data-testid=unread]`, { hasText: '2' }).waitFor();
    assert.equal(await cat.page.locator(`[data-testid=conv][data-conv="${conv}"] [data-testid=conv-preview].mention`).count(), 0);
    await openConv(bob.page, 'Team');
    await bob.page.locator('[data-testid=msg].mentions-me', { hasText: '@Bob look at this' }).waitFor();
    // @all, for the owner.
    await p.getByTestId('composer').pressSequentially('@');
    await p.getByTestId('mention-option').filter({ hasText: '@all' }).click();
    await p.getByTestId('composer').pressSequentially('standup now');
    await p.getByTestId('composer').press('Enter');
    await cat.page.locator(`[data-testid=conv][data-conv="${conv}"] [data-testid=conv-preview].mention`).waitFor();
  });

  test('read by, for my own messages', async () => {
    // Bob has the chat open, so he read everything; Cat has not opened it.
    const msg = bubble(ann.page, 'welcome to the team');
    await msg.getByTestId('msg-menu-btn').click();
    await ann.page.getByTestId('read-by').click();
    const readers = ann.page.getByTestId('readers');
    await until(async () => /Read: Bob/.test(await readers.textContent()), 'bob read it');
    assert.match(await readers.textContent(), /Not read yet: Cat/);
  });

  test('roles, rename and announcement, announced by system messages', async () => {
    await memberAction(ann.page, names.bob, 'role:Make admin');
    await ann.page.locator(`[data-testid=member][data-user="${names.bob}"] [data-testid=role]`, { hasText: 'admin' }).waitFor();
    await bob.page.getByTestId('system-msg').filter({ hasText: 'Ann made you an admin' }).waitFor();
    await ann.page.getByTestId('group-name').fill('Team Rocket');
    await ann.page.getByTestId('rename-group').click();
    await ann.page.getByTestId('announcement-input').fill('Standup at 9');
    await ann.page.getByTestId('save-announcement').click();
    await bob.page.getByTestId('system-msg').filter({ hasText: 'renamed the group to “Team Rocket”' }).waitFor();
    await bob.page.getByTestId('announcement').filter({ hasText: 'Standup at 9' }).waitFor();
    await until(async () => (await bob.page.getByTestId('chat-title').textContent()) === 'Team Rocket', 'new name');
    // The README's picture: Bob's view, with the group panel open.
    await say(bob.page, 'thanks, see you at 9');
    await bubble(ann.page, 'thanks, see you at 9').waitFor();
    await openInfo(bob.page);
    await bob.page.screenshot({ path: join(shots, 'web-client.png') });
  });

  test('a mute stops one member posting; mute-all stops every plain member', async () => {
    await openConv(cat.page, 'Team Rocket');
    await memberAction(ann.page, names.cat, 'mute-10m');
    await cat.page.getByTestId('composer-blocked').filter({ hasText: 'You are muted' }).waitFor();
    await cat.page.getByTestId('system-msg').filter({ hasText: 'Ann muted you until' }).waitFor();
    await ann.page.locator(`[data-testid=member][data-user="${names.cat}"] [data-testid=muted]`).waitFor();
    await memberAction(ann.page, names.cat, 'role:Unmute');
    await cat.page.getByTestId('composer').waitFor();
    // Mute everyone: Cat (member) is blocked, Bob (admin) is not.
    await ann.page.getByTestId('mute-all').check();
    await cat.page.getByTestId('composer-blocked').waitFor();
    await bob.page.getByTestId('system-msg').filter({ hasText: 'muted everyone' }).waitFor();
    assert.equal(await bob.page.getByTestId('composer').count(), 1);
    await say(bob.page, 'admins can still talk');
    await bubble(cat.page, 'admins can still talk').waitFor();
    await ann.page.getByTestId('mute-all').uncheck();
    await cat.page.getByTestId('composer').waitFor();
  });

  test('invite link with its QR code; a visitor who is not signed in joins through it', async () => {
    await openInfo(ann.page);
    await ann.page.getByTestId('new-link').click();
    const url = await ann.page.getByTestId('invite-url').first().inputValue();
    assert.match(url, new RegExp(`^${srv.base}/join/[A-Za-z0-9_-]{43}$`));
    const qr = ann.page.getByTestId('invite-qr').first();
    await until(async () => (await qr.evaluate((img) => img.complete && img.naturalWidth)) >= 256, 'QR code loaded');
    // Admins-only invites: a plain member no longer sees the invite controls.
    await ann.page.getByTestId('admins-invite').check();
    await openInfo(cat.page);
    await until(async () => (await cat.page.getByTestId('new-link').count()) === 0, 'no invite for members');

    const visitor = await person(browser, srv.base, { path: new URL(url).pathname });
    await visitor.page.getByTestId('join-group-name').filter({ hasText: 'Team Rocket' }).waitFor();
    await visitor.page.getByText('Sign in or create an account to join.').waitFor();
    const dan = uname('dan');
    await visitor.page.getByTestId('auth-switch').click();
    await visitor.page.fill('input[name=username]', dan);
    await visitor.page.fill('input[name=password]', 'correct horse battery');
    await visitor.page.getByTestId('auth-submit').click();
    await visitor.page.getByTestId('join-btn').click();
    await visitor.page.getByTestId('chat').waitFor();
    assert.equal(await visitor.page.getByTestId('chat').getAttribute('data-conv'), conv);
    await ann.page.getByTestId('system-msg').filter({ hasText: `${dan} joined through an invite link` }).waitFor();
    // The newcomer sees history from their join on: not the earlier messages.
    await visitor.page.getByTestId('system-msg').filter({ hasText: 'joined through an invite link' }).waitFor();
    assert.equal(await bubble(visitor.page, 'welcome to the team').count(), 0);
    await say(visitor.page, 'hello all');
    await bubble(bob.page, 'hello all').waitFor();
    await visitor.ctx.close();
  });

  test('removing a member: they see it and can no longer post', async () => {
    await memberAction(ann.page, names.cat, 'remove-member');
    await cat.page.getByTestId('system-msg').filter({ hasText: 'Ann removed you' }).waitFor();
    await cat.page.getByTestId('composer-blocked').filter({ hasText: 'no longer a member' }).waitFor();
    await bob.page.getByTestId('system-msg').filter({ hasText: 'Ann removed Cat' }).waitFor();
    await say(ann.page, 'after cat left');
    await bubble(bob.page, 'after cat left').waitFor();
    assert.equal(await bubble(cat.page, 'after cat left').count(), 0);
  });

  test('leave and dissolve', async () => {
    await openInfo(bob.page);
    await bob.page.getByTestId('leave-group').click();
    await bob.page.getByTestId('composer-blocked').waitFor();
    await ann.page.getByTestId('system-msg').filter({ hasText: 'Bob left the group' }).waitFor();
    await openInfo(ann.page);
    await ann.page.getByTestId('dissolve-group').click();
    await ann.page.getByTestId('composer-blocked').filter({ hasText: 'dissolved' }).waitFor();
  });
});
