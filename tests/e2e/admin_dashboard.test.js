'use strict';
// The admin dashboard (/admin/ on the admin listener) in headless Chromium
// (issue 15): the operator types the admin token once, the figures move
// while a client sends messages, a ban is one click (the banned user's
// socket closes with 1008, the database says banned), and a report is
// resolved with a click. A screenshot lands in tests/artifacts/web/<variant>/;
// SB_WEB_SCREENSHOT=1 also refreshes docs/admin-dashboard.png.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { chromium } = require('playwright-core');
const { BASE_ENV, api, signup, waitForDatabase, sql, uname, sleep } = require('./lib/api');
const { startServer, slow, REPO } = require('./lib/server');
const { rawSocket, rawJoin, closedCode } = require('./lib/admin');

const CHROMIUM = process.env.SB_CHROMIUM || '/usr/bin/chromium';
const SHOTS = path.join(REPO, 'tests', 'artifacts', 'web', path.basename(path.dirname(path.resolve(process.env.SB_BIN || 'build/release/x'))));
const T = { timeout: 120000 * slow() };
const WAIT = 20000 * slow();
const TOKEN = crypto.randomBytes(24).toString('hex');

describe('admin dashboard in Chromium', () => {
  let srv, browser;
  before(async () => {
    await waitForDatabase();
    fs.mkdirSync(SHOTS, { recursive: true });
    srv = await startServer({ name: 'admin-dashboard', env: { ...BASE_ENV, SB_ADMIN_TOKEN: TOKEN } });
    browser = await chromium.launch({
      executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'], timeout: 30000 * slow(),
    });
  });
  after(async () => {
    if (browser) await browser.close();
    if (srv) await srv.stop();
  });

  test('token once, figures move with traffic, ban with a click, resolve a report', T, async () => {
    const a = await signup(srv);
    const b = await signup(srv);
    const victim = await signup(srv);
    const conv = (await api(srv, 'POST', '/conversations', { token: a.token, body: { kind: 'direct', user_id: b.id } })).json.conversation.id;
    const rep = (await api(srv, 'POST', '/reports', { token: b.token, body: { user_id: victim.id, reason: 'spam', note: 'ads everywhere' } })).json.report;
    const vs = await rawSocket(srv, victim.token);
    await rawJoin(vs, `user:${victim.id}`);
    const bs = await rawSocket(srv, b.token);
    await rawJoin(bs, `user:${b.id}`);

    const ctx = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    const page = await ctx.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    page.on('dialog', (d) => d.accept());
    await page.goto(`http://127.0.0.1:${srv.adminPort}/admin/`);
    // a wrong token is refused and forgotten
    await page.fill('#token', 'not-the-token');
    await page.click('#save');
    await page.waitForFunction(() => !document.getElementById('login').hidden && /not the admin token/.test(document.getElementById('status').textContent), null, { timeout: WAIT });
    // the right one, once
    await page.fill('#token', TOKEN);
    await page.click('#save');
    await page.waitForFunction(() => document.getElementById('fig-connections').textContent !== '–', null, { timeout: WAIT });
    assert.equal(await page.evaluate(() => sessionStorage.getItem('sb_admin_token')), TOKEN);
    assert.equal(await page.textContent('#fig-postgres'), 'ok');
    const open0 = Number(await page.textContent('#fig-reports'));
    assert.equal(open0, Number(sql("SELECT count(*) FROM reports WHERE state = 'open'")));
    const conns0 = Number(await page.textContent('#fig-connections'));
    assert.ok(conns0 >= 2, `connections shown: ${conns0}`);
    // the queue is oldest first, 50 a page: "More" until this test's report shows (the test database keeps others)
    await page.waitForFunction(() => document.querySelectorAll('#reports tr').length > 0, null, { timeout: WAIT });
    for (let i = 0; i < 100 && !(await page.$(`#reports tr[data-id="${rep.id}"]`)); i++) {
      assert.ok(await page.isVisible('#reports-more'), `report ${rep.id} is in no page of the queue`);
      const rows = await page.$$eval('#reports tr', (t) => t.length);
      await page.click('#reports-more');
      await page.waitForFunction((n) => document.querySelectorAll('#reports tr').length > n, rows, { timeout: WAIT });
    }
    await page.waitForSelector(`#reports tr[data-id="${rep.id}"]`, { timeout: WAIT });

    // traffic: a client sends a message every 40 ms
    let sending = true;
    let sent = 0;
    const sender = (async () => {
      while (sending) {
        // eslint-disable-next-line no-await-in-loop
        const r = await api(srv, 'POST', `/conversations/${conv}/messages`, { token: a.token, body: { client_id: uname(), kind: 'text', body: `hello ${sent}` } });
        if (r.status === 201) sent++;
        await sleep(40); // eslint-disable-line no-await-in-loop
      }
    })();
    try {
      await page.waitForFunction(() => Number(document.getElementById('fig-messages').textContent) > 0
        && Number(document.getElementById('fig-deliveries').textContent) > 0
        && document.getElementById('fig-p50').textContent !== '–', null, { timeout: WAIT });
      // the graph has points and the figure keeps moving
      const seen = new Set();
      const deadline = Date.now() + WAIT;
      while (seen.size < 3 && Date.now() < deadline) {
        seen.add(await page.textContent('#fig-messages')); // eslint-disable-line no-await-in-loop
        await sleep(400); // eslint-disable-line no-await-in-loop
      }
      assert.ok(seen.size >= 2, `messages/s moved: ${[...seen].join(', ')}`);
      // the graphs hold a few seconds of points
      await page.waitForFunction(() => document.getElementById('g-messages').dataset.points >= 8, null, { timeout: WAIT });
      fs.mkdirSync(SHOTS, { recursive: true });
      await page.screenshot({ path: path.join(SHOTS, 'admin-dashboard.png'), fullPage: true });
      if (process.env.SB_WEB_SCREENSHOT === '1') await page.screenshot({ path: path.join(REPO, 'docs', 'admin-dashboard.png'), fullPage: true });
    } finally {
      sending = false;
      await sender;
    }
    assert.ok(sent > 5);

    // ban with a click (the confirm dialog is accepted)
    await page.fill('#user-id', victim.id);
    await page.click('#btn-ban');
    await page.waitForFunction(() => /ban: user \d+ done/.test(document.getElementById('result').textContent), null, { timeout: WAIT });
    assert.equal((await closedCode(vs, 3000)).code, 1008);
    assert.equal(sql(`SELECT banned_at IS NOT NULL FROM users WHERE id = ${victim.id}`), 't');
    // resolve the report with a click
    await page.click(`#reports tr[data-id="${rep.id}"] button.resolve-dismissed`);
    await page.waitForSelector(`#reports tr[data-id="${rep.id}"]`, { state: 'detached', timeout: WAIT });
    assert.equal(sql(`SELECT state FROM reports WHERE id = ${rep.id}`), 'dismissed');
    await page.waitForFunction((n) => Number(document.getElementById('fig-reports').textContent) === n, open0 - 1, { timeout: WAIT });
    assert.deepEqual(errors, [], 'no uncaught errors in the page');
    bs.close();
    await ctx.close();
  });
});
