// End to end, rich messages: a reply and its quote (live, after a recall, from history), an edit
// seen live by the peer, reactions toggled on both sides, a forward to a third person, and an
// image sent with its upload progress and seen by the peer as a thumbnail.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import { Server, launch, person, register, befriend, chatWith, openConv, say, bubble, until, uname, repo } from './harness.mjs';

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

/** A real PNG of `w`x`h` pixels (a gradient), made here so the test needs no file. */
function png(w, h) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (buf) => {
    let c = 0xffffffff;
    for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const out = Buffer.alloc(12 + data.length);
    out.writeUInt32BE(data.length, 0);
    out.write(type, 4, 'ascii');
    data.copy(out, 8);
    out.writeUInt32BE(crc(out.subarray(4, 8 + data.length)), 8 + data.length);
    return out;
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit RGB
  const raw = Buffer.alloc((w * 3 + 1) * h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) raw.set([x % 256, y % 256, 128], y * (w * 3 + 1) + 1 + x * 3);
  }
  const sig = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return Buffer.concat([sig, chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}

async function menu(page, text, item) {
  await bubble(page, text).getByTestId('msg-menu-btn').click();
  await bubble(page, text).getByTestId(item).click();
}

async function acked(page, text) {
  const b = bubble(page, text);
  await until(async () => (await b.getAttribute('data-seq')) !== '', `ack of "${text}"`);
  return b.getAttribute('data-seq');
}

describe('rich messages between two people', () => {
  let ann, bob, carol, annName, bobName, carolName;

  before(async () => {
    annName = uname('ann');
    bobName = uname('bob');
    carolName = uname('carol');
    ann = await person(browser, srv.base);
    bob = await person(browser, srv.base);
    carol = await person(browser, srv.base);
    await register(ann.page, annName, { nickname: 'Ann' });
    await register(bob.page, bobName, { nickname: 'Bob' });
    await register(carol.page, carolName, { nickname: 'Carol' });
    await befriend(ann.page, bob.page, bobName);
    await befriend(ann.page, carol.page, carolName);
    await chatWith(ann.page, carolName);
    await say(ann.page, 'hi carol');
    await chatWith(ann.page, bobName);
    await say(ann.page, 'hi bob');
    await openConv(bob.page, 'Ann');
    await bubble(bob.page, 'hi bob').waitFor();
  });

  test('reply: the quote shows for both, jumps to the message, turns "recalled" live and in history', async () => {
    await say(bob.page, 'lunch at noon?');
    await bubble(ann.page, 'lunch at noon?').waitFor();
    const quoted = await acked(bob.page, 'lunch at noon?');
    await menu(ann.page, 'lunch at noon?', 'reply');
    await ann.page.getByTestId('reply-bar').filter({ hasText: 'lunch at noon?' }).waitFor();
    await say(ann.page, 'yes, noon');
    assert.equal(await ann.page.getByTestId('reply-bar').count(), 0);
    for (const p of [ann.page, bob.page]) {
      const q = bubble(p, 'yes, noon').getByTestId('quote');
      await q.filter({ hasText: 'lunch at noon?' }).waitFor();
      assert.equal(await q.getAttribute('data-state'), 'visible');
      assert.equal(await q.getAttribute('data-quote-seq'), quoted);
    }
    // A click on the quote scrolls to the quoted message and flashes it.
    await bubble(bob.page, 'yes, noon').getByTestId('quote').click();
    await bob.page.locator(`[data-testid=msg][data-seq="${quoted}"].flash`).waitFor();
    // Bob recalls the quoted message: Ann's quote says so at once, and after a reload.
    await menu(bob.page, 'lunch at noon?', 'recall');
    await bubble(ann.page, 'yes, noon').locator('[data-testid=quote][data-state=recalled]').waitFor();
    await ann.page.reload();
    const q = bubble(ann.page, 'yes, noon').getByTestId('quote');
    await q.waitFor();
    assert.equal(await q.getAttribute('data-state'), 'recalled');
    assert.match(await q.textContent(), /recalled/);
  });

  test('reply to a message I deleted for me: the quote says "deleted", for me only', async () => {
    await say(bob.page, 'dinner too?');
    await bubble(ann.page, 'dinner too?').waitFor();
    await menu(bob.page, 'dinner too?', 'reply');
    await say(bob.page, 'or not');
    await bubble(ann.page, 'or not').getByTestId('quote').waitFor();
    await menu(ann.page, 'dinner too?', 'delete');
    await bubble(ann.page, 'or not').locator('[data-testid=quote][data-state=deleted]').waitFor();
    await ann.page.reload();
    await bubble(ann.page, 'or not').locator('[data-testid=quote][data-state=deleted]').waitFor();
    assert.equal(await bubble(bob.page, 'or not').getByTestId('quote').getAttribute('data-state'), 'visible');
  });

  test('edit in place: the peer sees the new text live with "edited", and after a reload', async () => {
    await say(ann.page, 'see you at 5');
    await bubble(bob.page, 'see you at 5').waitFor();
    await acked(ann.page, 'see you at 5');
    // Only my own messages can be edited.
    await bubble(bob.page, 'see you at 5').getByTestId('msg-menu-btn').click();
    await bubble(bob.page, 'see you at 5').getByTestId('reply').waitFor();
    assert.equal(await bubble(bob.page, 'see you at 5').getByTestId('edit').count(), 0);
    await bubble(bob.page, 'see you at 5').getByTestId('msg-menu-btn').click();
    await menu(ann.page, 'see you at 5', 'edit');
    await ann.page.getByTestId('edit-input').fill('see you at 6');
    await ann.page.getByTestId('edit-input').press('Enter');
    for (const p of [ann.page, bob.page]) {
      await bubble(p, 'see you at 6').getByTestId('edited').waitFor();
      assert.equal(await bubble(p, 'see you at 5').count(), 0);
    }
    await bob.page.reload();
    await bubble(bob.page, 'see you at 6').getByTestId('edited').waitFor();
    // The conversation list shows the new text too.
    await ann.page.getByTestId('nav-chats').click();
    await ann.page.locator('[data-testid=conv]', { hasText: 'Bob' }).getByTestId('conv-preview').filter({ hasText: 'see you at 6' }).waitFor();
    await openConv(ann.page, 'Bob');
  });

  test('reactions: picked from the allowed set, counted, toggled, seen by the peer live', async () => {
    const chip = (p, emoji) => bubble(p, 'see you at 6').locator(`[data-testid=reaction][data-emoji="${emoji}"]`);
    await menu(bob.page, 'see you at 6', 'react');
    const offered = await bob.page.getByTestId('pick-reaction').count();
    assert.ok(offered >= 5, `reactions offered: ${offered}`);
    await bob.page.locator('[data-testid=pick-reaction][data-emoji="👍"]').click();
    await until(async () => (await chip(ann.page, '👍').getAttribute('data-count')) === '1', 'ann sees 1');
    assert.equal(await chip(ann.page, '👍').getAttribute('data-mine'), '');
    assert.equal(await chip(bob.page, '👍').getAttribute('data-mine'), '1');
    // Ann adds hers with a click on the chip: 2, mine for both of them.
    await chip(ann.page, '👍').click();
    for (const p of [ann.page, bob.page]) await until(async () => (await chip(p, '👍').getAttribute('data-count')) === '2', 'count 2');
    assert.equal(await chip(ann.page, '👍').getAttribute('data-mine'), '1');
    // Bob takes his back.
    await chip(bob.page, '👍').click();
    for (const p of [ann.page, bob.page]) await until(async () => (await chip(p, '👍').getAttribute('data-count')) === '1', 'count 1');
    assert.equal(await chip(bob.page, '👍').getAttribute('data-mine'), '');
    // History has the same counts and mine.
    await ann.page.reload();
    await until(async () => (await chip(ann.page, '👍').getAttribute('data-count')) === '1', 'count after reload');
    assert.equal(await chip(ann.page, '👍').getAttribute('data-mine'), '1');
  });

  test('forward: Ann forwards Bob’s message to Carol, who sees it marked as forwarded from Bob', async () => {
    await say(bob.page, 'the code is 4711');
    await bubble(ann.page, 'the code is 4711').waitFor();
    await menu(ann.page, 'the code is 4711', 'forward');
    await ann.page.getByTestId('forward-target').filter({ hasText: 'Carol' }).click();
    await openConv(carol.page, 'Ann');
    const fwd = bubble(carol.page, 'the code is 4711');
    await fwd.getByTestId('forwarded').filter({ hasText: 'Bob' }).waitFor();
    // A forward is not mine to edit.
    await openConv(ann.page, 'Carol');
    await acked(ann.page, 'the code is 4711');
    await bubble(ann.page, 'the code is 4711').getByTestId('msg-menu-btn').click();
    await bubble(ann.page, 'the code is 4711').getByTestId('reply').waitFor();
    assert.equal(await bubble(ann.page, 'the code is 4711').getByTestId('edit').count(), 0);
    await bubble(ann.page, 'the code is 4711').getByTestId('msg-menu-btn').click();
    // The chat with Bob: a reply with its quote, an edited message with a reaction.
    await openConv(ann.page, 'Bob');
    await menu(ann.page, 'the code is 4711', 'reply');
    await say(ann.page, 'noted, thanks');
    await bubble(ann.page, 'noted, thanks').getByTestId('quote').waitFor();
    await bubble(ann.page, 'see you at 6').getByTestId('reactions').waitFor();
  });

  test('the Chinese UI names edits, forwards and quotes in Chinese', async () => {
    await carol.page.evaluate(() => localStorage.setItem('im.lang', 'zh'));
    await carol.page.reload();
    await bubble(carol.page, 'the code is 4711').getByTestId('forwarded').filter({ hasText: '转发自' }).waitFor();
    await bubble(carol.page, 'the code is 4711').getByTestId('msg-menu-btn').click();
    await bubble(carol.page, 'the code is 4711').getByTestId('reply').filter({ hasText: '回复' }).click();
    await carol.page.getByTestId('reply-bar').filter({ hasText: '回复' }).waitFor();
    await say(carol.page, '收到');
    await bubble(carol.page, '收到').getByTestId('quote').filter({ hasText: 'the code is 4711' }).waitFor();
  });

  test('an image: uploaded with progress, the peer sees the thumbnail and the full picture', async () => {
    await openConv(ann.page, 'Bob');
    // Every progress the bar over the composer shows, recorded as it renders.
    await ann.page.evaluate(() => {
      window.seenProgress = [];
      new MutationObserver(() => {
        const bar = document.querySelector('[data-testid=upload-progress]');
        if (bar) window.seenProgress.push(Number(bar.getAttribute('data-progress')));
      }).observe(document.body, { subtree: true, childList: true, attributes: true });
    });
    await ann.page.getByTestId('attach-input').setInputFiles({ name: 'gradient.png', mimeType: 'image/png', buffer: png(640, 400) });
    const img = bob.page.locator('[data-testid=msg] [data-testid=thumb]').last();
    await img.waitFor();
    await until(async () => img.evaluate((el) => el.complete && el.naturalWidth > 0), 'thumbnail decoded');
    const natural = await img.evaluate((el) => [el.naturalWidth, el.naturalHeight]);
    assert.ok(natural[0] <= 320 && natural[0] > 0, `thumbnail ${natural}`);
    await bob.page.locator('[data-testid=att-image]').last().click();
    const full = bob.page.getByTestId('full-image');
    await until(async () => full.evaluate((el) => el.complete && el.naturalWidth === 640), 'full image');
    await bob.page.getByTestId('lightbox').click();
    const seen = await ann.page.evaluate(() => window.seenProgress);
    assert.ok(seen.length > 0, 'the upload bar was shown');
    assert.equal(await ann.page.getByTestId('upload-progress').count(), 0, 'and went away');
    // The sender sees the picture too (their own upload).
    await until(async () => ann.page.locator('[data-testid=msg] [data-testid=thumb]').last().evaluate((el) => el.naturalWidth > 0), 'own thumbnail');
    // The chat: quotes of a recalled, a deleted and a visible message, an edit with a reaction, a picture.
    await ann.page.evaluate(() => document.querySelector('.toasts')?.remove());
    await ann.page.screenshot({ path: join(shots, 'web-client-rich.png') });
    // The conversation list names it.
    await bob.page.getByTestId('nav-chats').click();
    await bob.page.locator('[data-testid=conv]', { hasText: 'Ann' }).getByTestId('conv-preview').filter({ hasText: 'gradient.png' }).waitFor();
    await openConv(bob.page, 'Ann');
  });

  test('a file: sent with a caption, the peer downloads it under its name with the same bytes', async () => {
    const bytes = Buffer.from('%PDF-1.4\n% a tiny document\n'.repeat(50));
    await ann.page.getByTestId('composer').fill('the minutes');
    await ann.page.getByTestId('attach-input').setInputFiles({ name: 'minutes.pdf', mimeType: 'application/pdf', buffer: bytes });
    const file = bubble(bob.page, 'the minutes').getByTestId('att-file');
    await file.filter({ hasText: 'minutes.pdf' }).waitFor();
    const [download] = await Promise.all([bob.page.waitForEvent('download'), file.click()]);
    assert.equal(download.suggestedFilename(), 'minutes.pdf');
    const path = await download.path();
    const { readFileSync } = await import('node:fs');
    assert.deepEqual(readFileSync(path), bytes);
  });
});
