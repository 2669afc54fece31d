// End to end, in headless Chromium against a real im-server: searching my messages (Chinese and
// Latin, highlighted, opening the conversation) and blocking / unblocking a friend.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Server, launch, person, register, befriend, chatWith, say, bubble, until, tickOf, uname } from './harness.mjs';

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

describe('search and block', () => {
  let ann, bob, annName, bobName;

  before(async () => {
    annName = uname('ann');
    bobName = uname('bob');
    ann = await person(browser, srv.base);
    bob = await person(browser, srv.base);
    await register(ann.page, annName, { nickname: 'Ann' });
    await register(bob.page, bobName, { nickname: 'Bob' });
    await befriend(ann.page, bob.page, bobName);
  });

  test('search finds my messages with the match highlighted, and a hit opens its chat', async () => {
    await chatWith(ann.page, bobName);
    for (const text of ['我们明天见，明天下午三点', 'lunch at noon?', 'see you tomorrow']) {
      await say(ann.page, text);
      await until(async () => (await tickOf(ann.page, text)) !== 'sending', `ack of ${text}`);
    }
    await ann.page.getByTestId('nav-chats').click();
    const p = ann.page;
    await p.getByTestId('msg-search-input').fill('明天');
    const hit = p.getByTestId('msg-search-hit');
    await hit.first().waitFor();
    assert.equal(await hit.count(), 1);
    assert.deepEqual(await hit.locator('mark').allTextContents(), ['明天', '明天']);
    // A two-letter query (matched by a scan, not the trigram index), in another case.
    await p.getByTestId('msg-search-input').fill('NO');
    await until(async () => (await hit.locator('mark').allTextContents()).join() === 'no', 'the "no" of noon');
    // Nothing found is said so.
    await p.getByTestId('msg-search-input').fill('nowhere at all');
    await p.getByTestId('msg-search-results').getByText('No messages found.').waitFor();
    // A hit opens its conversation.
    await p.getByTestId('msg-search-input').fill('tomorrow');
    await hit.first().waitFor();
    const conv = await hit.first().getAttribute('data-conv');
    await p.getByTestId('nav-contacts').click();
    await p.getByTestId('nav-chats').click();
    await p.getByTestId('msg-search-input').fill('tomorrow');
    await hit.first().locator('a').click();
    assert.equal(await p.getByTestId('chat').getAttribute('data-conv'), conv);
    await bubble(p, 'see you tomorrow').waitFor();
    await p.getByTestId('msg-search-clear').click();
    await p.getByTestId('msg-search-results').waitFor({ state: 'detached' });
    assert.equal(await p.getByTestId('msg-search-input').inputValue(), '');
  });

  test('blocking a friend ends the friendship and refuses their messages; unblocking lifts it', async () => {
    const p = ann.page;
    await chatWith(bob.page, annName);
    await p.getByTestId('nav-contacts').click();
    const friend = p.locator(`[data-testid=friend][data-user="${bobName}"]`);
    await friend.getByTestId('friend-menu-btn').click();
    await friend.getByTestId('block-friend').click();
    const blocked = p.locator(`[data-testid=blocked-user][data-user="${bobName}"]`);
    await blocked.waitFor();
    await friend.waitFor({ state: 'detached' });
    // Bob's chat says only what a removed friendship says (the server refuses his sends as a
    // stranger's: server/tests/api/blocks.rs), nothing about a block.
    const shut = bob.page.getByTestId('composer-blocked');
    await shut.waitFor();
    assert.equal(await shut.textContent(), 'You are no longer friends.');
    assert.equal(await bob.page.getByTestId('composer').count(), 0);
    // Unblock: the list empties; they are not friends again until one asks.
    await blocked.getByTestId('unblock').click();
    await blocked.waitFor({ state: 'detached' });
    await p.getByTestId('blocked-section').getByText('You block nobody.').waitFor();
    assert.equal(await friend.count(), 0);
    // Bob asks this time (Ann's first request was today: hers would be too soon).
    await befriend(bob.page, ann.page, annName, 'friends again?');
    await chatWith(bob.page, annName);
    await say(bob.page, 'back again');
    await until(async () => ['sent', 'delivered', 'read'].includes(await tickOf(bob.page, 'back again')), 'ack after unblock');
  });
});
