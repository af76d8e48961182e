'use strict';
// The web client (web/) in headless Chromium (Debian's `chromium`, driven by
// playwright-core) against the real server, Postgres and phoenix.js: two
// browser contexts sign up, open a direct chat, exchange messages, see
// typing, who is viewing and read receipts; a reload restores the
// conversation through GET /api/v1/sync from the stored cursor, including a
// message sent while the page was gone. Screenshots of each step land in
// tests/artifacts/web/; SB_WEB_SCREENSHOT=1 also refreshes docs/screenshot.png
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
const SHOTS = path.join(REPO, 'tests', 'artifacts', 'web');
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
    srv = await startServer({
      env: {
        SB_DATABASE_URL: databaseUrl(),
        SB_MIGRATE: '1',
        SB_WEB_ROOT: path.join(REPO, 'web'),
        SB_ARGON2_T: '1',
        SB_ARGON2_M: '1024',
        SB_RATELIMIT_SIGNUP_IP: '100000/1',
        SB_RATELIMIT_LOGIN_IP: '100000/1',
        SB_RATELIMIT_LOGIN_ACCOUNT: '100000/1',
      },
    });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
      timeout: 30000 * slow(),
    });
  });

  after(async () => {
    if (browser) await browser.close().catch(() => {});
    if (srv) await srv.stop();
  });

  /** A new browser context that signs up through the form. */
  async function signUp(prefix, display) {
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

  test('two people sign up in two browser contexts; the socket connects; log out and in again', T, async () => {
    alice = await signUp('alice', 'Alice');
    bob = await signUp('bob', 'Bob');
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
    assert.equal(await page.evaluate(() => localStorage.getItem('sb:session')), null, 'logout forgets the tokens');
    await ctx.close();
    assert.deepEqual([...alice.errors, ...bob.errors], [], 'no uncaught errors in the pages');
  });
});
