'use strict';
// The web client (web/) in headless Chromium (Debian's `chromium`, driven by
// playwright-core) against the real server, Postgres and phoenix.js: two
// browser contexts sign up, open a direct chat, exchange messages, see
// typing, who is viewing and read receipts; a reload restores the
// conversation through GET /api/v1/sync from the stored cursor, including a
// message sent while the page was gone. Screenshots of each step land in
// tests/artifacts/web/<variant>/; SB_WEB_SCREENSHOT=1 also refreshes docs/screenshot.png
// (scripts/web-screenshot.sh).

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { chromium } = require('playwright-core');
const { startServer, slow, REPO } = require('./lib/server');

const CHROMIUM = process.env.SB_CHROMIUM || '/usr/bin/chromium';
// one folder per build variant (release, asan), like the server logs
const SHOTS = path.join(REPO, 'tests', 'artifacts', 'web', path.basename(path.dirname(path.resolve(process.env.SB_BIN || 'build/release/x'))));
const T = { timeout: 60000 * slow() };
const WAIT = 15000 * slow(); // longest wait for any one thing on a page

function databaseUrl() {
  if (process.env.SB_TEST_DATABASE_URL) return process.env.SB_TEST_DATABASE_URL;
  const out = execFileSync(path.join(REPO, 'scripts', 'services.sh'), ['env'], { encoding: 'utf8' });
  const m = out.match(/^SB_TEST_DATABASE_URL=(.*)$/m);
  return m ? m[1].trim() : '';
}

const uname = (p) => `${p}${crypto.randomBytes(5).toString('hex')}`;

/** A signed-up user in its own browser context (own localStorage). */
class Person {
  constructor(ctx, page, username, display) {
    Object.assign(this, { ctx, page, username, display });
    this.syncResponses = []; // bodies of GET /api/v1/sync answered to this page
    this.errors = [];
    page.on('pageerror', (e) => this.errors.push(String(e)));
    page.on('response', async (res) => {
      if (!res.url().includes('/api/v1/sync')) return;
      let body = null;
      try { body = await res.json(); } catch { /* not JSON */ }
      this.syncResponses.push({ url: res.url(), status: res.status(), body });
    });
  }

  async shot(name) {
    await this.page.screenshot({ path: path.join(SHOTS, `${name}.png`) });
  }

  /** The <li> of the chat whose title is `title`. */
  chat(title) {
    return this.page.locator('#chat-list li.chat', { has: this.page.locator('.chat-title', { hasText: title }) });
  }

  /** The message bubble holding `text`. */
  bubble(text) {
    return this.page.locator('#message-list li.msg', { has: this.page.locator('.body', { hasText: text }) });
  }
}

/** The server with the real web/ root and cheap sign-ups. */
function startWebServer(env = {}) {
  return startServer({
    env: {
      SB_DATABASE_URL: databaseUrl(),
      SB_MIGRATE: '1',
      SB_WEB_ROOT: path.join(REPO, 'web'),
      SB_ARGON2_T: '1',
      SB_ARGON2_M: '1024',
      SB_RATELIMIT_SIGNUP_IP: '100000/1',
      SB_RATELIMIT_LOGIN_IP: '100000/1',
      SB_RATELIMIT_LOGIN_ACCOUNT: '100000/1',
      ...env,
    },
  });
}

function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
    timeout: 30000 * slow(),
  });
}

/** A new browser context that signs up through the form. */
async function signUp(browser, srv, prefix, display) {
  const ctx = await browser.newContext({ viewport: { width: 1100, height: 680 }, locale: 'en-GB', timezoneId: 'UTC' });
  ctx.setDefaultTimeout(WAIT);
  const page = await ctx.newPage();
  const p = new Person(ctx, page, uname(prefix), display);
  await page.goto(srv.url('/'));
  await page.locator('#auth-form').waitFor();
  await page.fill('#auth-username', p.username);
  await page.fill('#auth-password', 'correct horse battery staple');
  await page.fill('#auth-display', display);
  await page.click('#signup-btn');
  await page.locator('#app').waitFor();
  await page.locator('#me-name', { hasText: display }).waitFor();
  await page.locator('#conn.online').waitFor(); // the socket is up
  return p;
}

describe('web client in headless Chromium', () => {
  let srv;
  let browser;
  let alice;
  let bob;

  before(async () => {
    assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} not found (apt-get install chromium; scripts/deps.sh does)`);
    assert.ok(fs.existsSync(path.join(REPO, 'web', 'vendor', 'phoenix.mjs')),
      'web/vendor/phoenix.mjs is missing: `make build` copies it from tests/e2e/node_modules/phoenix');
    fs.mkdirSync(SHOTS, { recursive: true });
    srv = await startWebServer();
    browser = await launchBrowser();
  });

  after(async () => {
    // the last state of both pages, for a failed run
    for (const [who, p] of [['alice', alice], ['bob', bob]]) {
      if (p) await p.shot(`99-last-${who}`).catch(() => {});
    }
    if (browser) await browser.close().catch(() => {});
    if (srv) await srv.stop();
  });

  test('two people sign up in two browser contexts; the socket connects; log out and in again', T, async () => {
    alice = await signUp(browser, srv, 'alice', 'Alice');
    bob = await signUp(browser, srv, 'bob', 'Bob');
    await alice.shot('01-signed-up');
    assert.equal(await alice.page.locator('#chat-list li.empty').count(), 1, 'a new account has no chats');

    // a wrong password is an error on the form, then the right one works
    const ctx = await browser.newContext();
    ctx.setDefaultTimeout(WAIT);
    const page = await ctx.newPage();
    await page.goto(srv.url('/'));
    await page.fill('#auth-username', bob.username);
    await page.fill('#auth-password', 'wrong password!');
    await page.click('#login-btn');
    await page.locator('#auth-error').filter({ hasText: /\S/ }).waitFor();
    assert.equal(await page.locator('#app').isHidden(), true);
    await page.fill('#auth-password', 'correct horse battery staple');
    await page.click('#login-btn');
    await page.locator('#me-name', { hasText: 'Bob' }).waitFor();
    await page.locator('#conn.online').waitFor();
    await page.click('#logout-btn');
    await page.locator('#auth-form').waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.getItem('sb:session')), null, 'logout forgets the tokens');
    await ctx.close();

    // two tabs of one browser (shared localStorage) are two people, also after a reload
    const shared = await browser.newContext();
    shared.setDefaultTimeout(WAIT);
    const tabs = [];
    for (const name of ['Carol', 'Dave']) {
      const tab = await shared.newPage();
      await tab.goto(srv.url('/'));
      await tab.fill('#auth-username', uname(name.toLowerCase()));
      await tab.fill('#auth-password', 'correct horse battery staple');
      await tab.fill('#auth-display', name);
      await tab.click('#signup-btn');
      await tab.locator('#me-name', { hasText: name }).waitFor();
      tabs.push(tab);
    }
    await tabs[0].reload();
    await tabs[0].locator('#me-name', { hasText: 'Carol' }).waitFor();
    await tabs[0].locator('#conn.online').waitFor();
    assert.equal(await tabs[1].locator('#me-name').textContent(), 'Dave');
    await shared.close();
    assert.deepEqual([...alice.errors, ...bob.errors], [], 'no uncaught errors in the pages');
  });

  test('a direct chat: messages both ways, optimistic send, ✓ → ✓✓ → read, unread count', T, async () => {
    assert.ok(alice && bob, 'needs the sign-up test');
    const { page: a } = alice;
    const { page: b } = bob;

    // Alice finds Bob by username and opens a direct chat
    await a.fill('#user-search', bob.username.slice(0, 6));
    const result = a.locator('#search-results li.result', { has: a.locator(`text=@${bob.username}`) });
    await result.locator('.message-btn').click();
    await a.locator('#conv-title', { hasText: 'Bob' }).waitFor();
    await alice.chat('Bob').waitFor();

    // an optimistic send shows at once, then is acknowledged (✓)
    await a.fill('#message-input', 'Hi Bob! Trying Switchboard in a browser.');
    await a.click('#send-btn');
    const first = alice.bubble('Hi Bob!');
    await first.waitFor();
    await first.locator('.status-sent, .status-delivered, .status-read').waitFor();
    assert.match(await first.getAttribute('data-seq'), /^\d+$/, 'the acknowledged message has its seq');

    // Bob's chat list shows the new chat with one unread message and its preview
    const bobsChat = bob.chat('Alice');
    await bobsChat.waitFor();
    await bobsChat.locator('.unread', { hasText: '1' }).waitFor();
    assert.match(await bobsChat.locator('.chat-preview').textContent(), /Hi Bob!/);
    // delivered to Bob's socket: Alice sees ✓✓
    await first.locator('.status-delivered, .status-read').waitFor();
    await bob.shot('02-bob-unread');

    // Bob opens it: the unread count clears and Alice sees "read"
    await bobsChat.click();
    await bob.bubble('Hi Bob!').waitFor();
    await bobsChat.locator('.unread').waitFor({ state: 'detached' });
    await first.locator('.status-read').waitFor();

    // Bob's reply arrives, is read at once (Alice has the chat open), and is Alice's preview
    await b.fill('#message-input', 'Hello Alice, it works!');
    await b.click('#send-btn');
    await alice.bubble('Hello Alice, it works!').waitFor();
    await bob.bubble('Hello Alice, it works!').locator('.status-read').waitFor();
    assert.match(await alice.chat('Bob').locator('.chat-preview').textContent(), /Hello Alice/);
    assert.equal(await alice.chat('Bob').locator('.unread').count(), 0, 'read while open: nothing unread');

    // a few more so the picture has a conversation in it
    await a.fill('#message-input', 'Read receipts, typing and presence all come over Phoenix channels.');
    await a.click('#send-btn');
    await bob.bubble('Read receipts, typing').waitFor();
    await alice.bubble('Read receipts, typing').locator('.status-read').waitFor();
    await b.fill('#message-input', 'And it is a C server underneath? Nice.');
    await b.click('#send-btn');
    await alice.bubble('C server underneath').waitFor();
    assert.equal(await a.locator('#message-list li.msg').count(), 4, 'each message once');
    assert.equal(await b.locator('#message-list li.msg').count(), 4, 'each message once');
    await alice.shot('03-direct-chat');
    if (process.env.SB_WEB_SCREENSHOT === '1') {
      await a.screenshot({ path: path.join(REPO, 'docs', 'screenshot.png') });
    }
    assert.deepEqual([...alice.errors, ...bob.errors], [], 'no uncaught errors in the pages');
  });

  test('typing, who is viewing (Presence) and online status over conversation:<id>', T, async () => {
    assert.ok(alice && bob, 'needs the direct chat test');
    const { page: a } = alice;
    const { page: b } = bob;
    // both have the direct chat open
    await a.locator('#viewers', { hasText: 'Bob' }).waitFor();
    await b.locator('#viewers', { hasText: 'Alice' }).waitFor();
    await a.locator('#conv-status', { hasText: 'online' }).waitFor();

    // Bob types: Alice sees it; sending clears it
    await b.locator('#message-input').pressSequentially('Typing shows up too', { delay: 20 });
    await a.locator('#typing', { hasText: 'Bob is typing' }).waitFor();
    await alice.shot('04-typing');
    await b.click('#send-btn');
    await alice.bubble('Typing shows up too').waitFor();
    await a.waitForFunction(() => !document.querySelector('#typing').textContent.includes('typing'), null, { timeout: WAIT });

    // for the picture: Bob typing again, with everything else on screen
    await b.locator('#message-input').pressSequentially('Sure', { delay: 20 });
    await a.locator('#typing', { hasText: 'Bob is typing' }).waitFor();
    await alice.shot('05-conversation');
    if (process.env.SB_WEB_SCREENSHOT === '1') {
      await a.screenshot({ path: path.join(REPO, 'docs', 'screenshot.png') });
    }
    await b.fill('#message-input', '');

    // Bob leaves the chat: he is no longer viewing
    const url = b.url();
    await b.goto('about:blank');
    await a.waitForFunction(() => !document.querySelector('#viewers').textContent.includes('Bob'), null, { timeout: WAIT });
    await a.locator('#conv-status', { hasText: 'last seen' }).waitFor();
    await b.goto(url);
    await b.locator('#conv-title', { hasText: 'Alice' }).waitFor();
    await a.locator('#viewers', { hasText: 'Bob' }).waitFor();
    assert.deepEqual([...alice.errors, ...bob.errors], [], 'no uncaught errors in the pages');
  });

  test('a reload restores the conversation through sync, with what arrived while away', T, async () => {
    assert.ok(alice && bob, 'needs the previous tests');
    const { page: b } = bob;
    // Bob's page goes away (to a page of the same origin without the app, where
    // the cursor the app will start from can be read); Alice writes meanwhile
    const url = b.url();
    await b.goto(srv.url('/style.css'));
    const cursorBefore = await b.evaluate(() => {
      const s = JSON.parse(sessionStorage.getItem('sb:session'));
      return JSON.parse(localStorage.getItem(`sb:state:${s.user.id}`))?.cursor || null;
    });
    assert.ok(cursorBefore, 'the page keeps a sync cursor in localStorage');
    await alice.page.fill('#message-input', 'Sent while your page was closed.');
    await alice.page.click('#send-btn');
    await alice.bubble('Sent while your page was closed.').locator('.status-sent, .status-delivered, .status-read').waitFor();

    bob.syncResponses.length = 0;
    await b.goto(url); // same #/c/<id>: the conversation reopens
    await b.locator('#conv-title', { hasText: 'Alice' }).waitFor();
    await bob.bubble('Hi Bob!').waitFor();
    await bob.bubble('Sent while your page was closed.').waitFor();
    await b.locator('#conn.online').waitFor();

    // it came through GET /sync from the stored cursor
    const withCursor = bob.syncResponses.filter((r) => new URL(r.url).searchParams.get('cursor') === cursorBefore);
    assert.ok(withCursor.length >= 1, `GET /sync?cursor=<stored> was called: ${JSON.stringify(bob.syncResponses.map((r) => r.url))}`);
    assert.equal(withCursor[0].status, 200);
    const synced = bob.syncResponses.flatMap((r) => r.body?.events || [])
      .filter((e) => e.type === 'message:new').map((e) => e.message.body);
    assert.ok(synced.includes('Sent while your page was closed.'), `sync delivered the message: ${JSON.stringify(synced)}`);

    // reading it after the reload still turns Alice's ticks to read
    await alice.bubble('Sent while your page was closed.').locator('.status-read').waitFor();
    await bob.shot('06-after-reload');
    assert.deepEqual([...alice.errors, ...bob.errors], [], 'no uncaught errors in the pages');
  });

  test('reconnects on its own: what was missed arrives, the outbox is sent', T, async () => {
    assert.ok(alice && bob, 'needs the previous tests');
    const { page: b } = bob;
    await b.locator('#conv-title', { hasText: 'Alice' }).waitFor();
    await b.locator('#conn.online').waitFor();
    // cut Bob's network, and his socket with it
    await bob.ctx.setOffline(true);
    await b.evaluate(() => window.switchboard.socket.conn.close());
    await b.locator('#conn.reconnecting').waitFor();

    // Alice writes while Bob is away; Bob writes too (optimistically shown, pending)
    await alice.page.fill('#message-input', 'Are you back?');
    await alice.page.click('#send-btn');
    await alice.bubble('Are you back?').locator('.status-sent, .status-delivered, .status-read').waitFor();
    await b.fill('#message-input', 'Written offline, sent later.');
    await b.click('#send-btn');
    await bob.bubble('Written offline').locator('.status-pending').waitFor();
    await b.waitForTimeout(500);
    assert.equal(await bob.bubble('Are you back?').count(), 0, 'offline: nothing arrives');

    // the network returns: phoenix.js reconnects, the channel rejoins from the cursor
    await bob.ctx.setOffline(false);
    await b.locator('#conn.online').waitFor();
    await bob.bubble('Are you back?').waitFor();
    await bob.bubble('Written offline').locator('.status-sent, .status-delivered, .status-read').waitFor();
    await alice.bubble('Written offline, sent later.').waitFor();
    assert.equal(await bob.bubble('Written offline').count(), 1, 'sent once');
    assert.equal(await alice.bubble('Written offline').count(), 1, 'received once');
    assert.deepEqual([...alice.errors, ...bob.errors], [], 'no uncaught errors in the pages');
  });

  test('groups, pin and archive, and history paging with "Load earlier"', T, async () => {
    assert.ok(alice && bob, 'needs the sign-up test');
    const { page: a } = alice;

    // a group with Bob, made through the search results
    await a.fill('#user-search', bob.username);
    await a.locator('#search-results li.result .add-btn').click();
    await a.locator('#group-members .chip', { hasText: 'Bob' }).waitFor();
    await a.fill('#group-title', 'Weekend plans');
    await a.click('#create-group-btn');
    await a.locator('#conv-title', { hasText: 'Weekend plans' }).waitFor();
    await a.locator('#conv-status', { hasText: '2 members' }).waitFor();
    await a.fill('#message-input', 'Who is in for Saturday?');
    await a.click('#send-btn');
    await alice.bubble('Who is in for Saturday?').locator('.status-sent, .status-delivered, .status-read').waitFor();
    await bob.chat('Weekend plans').waitFor();

    // pin the direct chat: it goes first even though the group is newer
    const direct = alice.chat('Bob');
    await direct.hover();
    await direct.locator('.pin-btn').click();
    await direct.locator('.pin').waitFor();
    await a.waitForFunction(() => document.querySelector('#chat-list li.chat .chat-title')?.textContent.includes('Bob'), null, { timeout: WAIT });
    // archive the group: it moves to the Archived tab, and back
    const group = alice.chat('Weekend plans');
    await group.hover();
    await group.locator('.archive-btn').click();
    await group.waitFor({ state: 'detached' });
    await a.click('#tab-archived');
    await alice.chat('Weekend plans').waitFor();
    await alice.chat('Weekend plans').hover();
    await alice.chat('Weekend plans').locator('.archive-btn').click();
    await a.click('#tab-chats');
    await alice.chat('Weekend plans').waitFor();
    // the server kept both settings
    const token = await a.evaluate(() => JSON.parse(sessionStorage.getItem('sb:session')).access_token);
    const list = await (await fetch(srv.url('/api/v1/conversations'), { headers: { authorization: `Bearer ${token}` } })).json();
    const byTitle = (t) => list.items.find((c) => (c.kind === 'group' ? c.title === t : c.kind === 'direct' && t === 'direct'));
    assert.equal(byTitle('direct').pinned, true);
    assert.equal(byTitle('Weekend plans').archived, false);

    // 70 more messages in the group (REST), then the page shows the newest 50 and pages back
    const gid = byTitle('Weekend plans').id;
    for (let i = 1; i <= 70; i++) {
      const r = await fetch(srv.url(`/api/v1/conversations/${gid}/messages`), {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ client_id: `bulk-${i}`, kind: 'text', body: `bulk message ${i}` }),
      });
      assert.equal(r.status, 201, `send ${i}`);
    }
    // forget the local copy (the page got all of them live), keeping the session:
    // from a same-origin page without the app on it
    const url = a.url();
    await a.goto(srv.url('/style.css'));
    await a.evaluate(() => {
      const s = JSON.parse(sessionStorage.getItem('sb:session'));
      localStorage.removeItem(`sb:state:${s.user.id}`);
    });
    await a.goto(url);
    await a.locator('#conv-title', { hasText: 'Weekend plans' }).waitFor();
    await alice.bubble('bulk message 70').waitFor();
    const before = await a.locator('#message-list li.msg').count();
    assert.ok(before < 71, `only a page of history at first (${before})`);
    // page back until the first messages show; the button hides itself once
    // the history is complete, possibly between isVisible() and the click
    const oldestShown = async () => (await alice.bubble(/^bulk message 1$/).count()) > 0 &&
      (await alice.bubble('Who is in for Saturday?').count()) > 0;
    for (let i = 0; i < 20 && !(await oldestShown()); i++) {
      const more = a.locator('#load-earlier');
      if (await more.isVisible()) await more.click({ timeout: 2000 }).catch(() => {});
      await a.waitForTimeout(300);
    }
    await alice.bubble('Who is in for Saturday?').waitFor();
    await alice.bubble(/^bulk message 1$/).waitFor();
    const shown = await a.locator('#message-list li.msg').evaluateAll((els) => els.map((e) => `${e.dataset.seq}:${e.querySelector('.body').textContent}`));
    assert.equal(shown.length, 71, `every message once, none twice: ${shown.join(' | ')}`);
    assert.equal(await a.locator('#load-earlier').isVisible(), false, 'no more to load');
    const seqs = await a.locator('#message-list li.msg').evaluateAll((els) => els.map((e) => Number(e.dataset.seq)));
    assert.deepEqual(seqs, [...seqs].sort((x, y) => x - y), 'in seq order');
    assert.deepEqual([...alice.errors, ...bob.errors], [], 'no uncaught errors in the pages');
  });
});

describe('web client with access tokens that live 3 seconds', () => {
  let srv;
  let browser;
  let alice;
  let bob;

  before(async () => {
    assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} not found`);
    srv = await startWebServer({ SB_ACCESS_TTL: '3' });
    browser = await launchBrowser();
  });

  after(async () => {
    if (browser) await browser.close().catch(() => {});
    if (srv) await srv.stop();
  });

  test('tokens are refreshed: REST, sends and a socket reconnect keep working past expiry', T, async () => {
    alice = await signUp(browser, srv, 'alice', 'Alice');
    bob = await signUp(browser, srv, 'bob', 'Bob');
    const tokenAt = (p) => p.page.evaluate(() => JSON.parse(sessionStorage.getItem('sb:session')).access_token);
    const first = await tokenAt(bob);

    await alice.page.waitForTimeout(4000); // every access token issued so far has expired
    await alice.page.fill('#user-search', bob.username);
    await alice.page.locator('#search-results li.result .message-btn').click();
    await alice.page.locator('#conv-title', { hasText: 'Bob' }).waitFor();
    await alice.page.fill('#message-input', 'Still signed in?');
    await alice.page.click('#send-btn');
    await bob.chat('Alice').click();
    await bob.bubble('Still signed in?').waitFor();

    // Bob's socket drops after his token expired: the reconnect refreshes first
    await bob.page.waitForTimeout(3500);
    await bob.page.evaluate(() => window.switchboard.socket.conn.close());
    await bob.page.locator('#conn.online').waitFor();
    assert.notEqual(await tokenAt(bob), first, 'the access token was rotated');
    await alice.page.fill('#message-input', 'After the reconnect.');
    await alice.page.click('#send-btn');
    await bob.bubble('After the reconnect.').waitFor();
    await bob.page.fill('#message-input', 'Yes, all good.');
    await bob.page.click('#send-btn');
    await alice.bubble('Yes, all good.').waitFor();
    await bob.bubble('Yes, all good.').locator('.status-read').waitFor();
    assert.equal(await bob.page.locator('#auth').isHidden(), true, 'never signed out');
    assert.deepEqual([...alice.errors, ...bob.errors], [], 'no uncaught errors in the pages');
  });
});
