'use strict';
// The admin listener on one node (issue 15): every /admin/ endpoint and
// /metrics refuse no token (401), a user's access token and a wrong admin
// token (403), and work with the right one; a node without an admin token
// refuses every admin action; stats, disconnect, ban/unban, reports and
// broadcast do what api.md §4 says, and each action lands in the audit log.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { BASE_ENV, api, assertError, signup, waitForDatabase, sql, until, uname } = require('./lib/api');
const { startServer, slow } = require('./lib/server');
const { admin, rawSocket, rawJoin, closedCode } = require('./lib/admin');

const T = { timeout: 90000 * slow() };
const TOKEN = crypto.randomBytes(24).toString('hex');

function assertAdminError(r, status, code) {
  assert.equal(r.status, status, `expected ${status}, got ${r.status}: ${r.text}`);
  assert.equal(r.json && r.json.error && r.json.error.code, code, r.text);
}

describe('admin listener (one node)', () => {
  let srv, bare, auditFile, dir;
  before(async () => {
    await waitForDatabase();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-admin-'));
    auditFile = path.join(dir, 'audit.log');
    srv = await startServer({ name: 'admin', env: { ...BASE_ENV, SB_ADMIN_TOKEN: TOKEN, SB_ADMIN_AUDIT_LOG: auditFile } });
    bare = await startServer({ name: 'admin-notoken', env: { ...BASE_ENV } });
  });
  after(async () => {
    if (srv) await srv.stop();
    if (bare) await bare.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const audit = () => (fs.existsSync(auditFile) ? fs.readFileSync(auditFile, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l)) : []);
  const banned = (id) => sql(`SELECT banned_at IS NOT NULL FROM users WHERE id = ${id}`) === 't';

  test('every admin endpoint: no token 401, a user token 403, a wrong admin token 403, the right one works', T, async () => {
    const user = await signup(srv);
    const victim = await signup(srv);
    const rep = await api(srv, 'POST', '/reports', { token: user.token, body: { user_id: victim.id, reason: 'spam' } });
    assert.equal(rep.status, 201, rep.text);
    const endpoints = [
      ['GET', '/admin/stats', undefined, 200],
      ['GET', '/metrics', undefined, 200],
      ['GET', '/admin/reports?state=open', undefined, 200],
      ['POST', `/admin/reports/${rep.json.report.id}`, { state: 'dismissed', note: 'ok' }, 200],
      ['POST', `/admin/users/${victim.id}/disconnect`, {}, 200],
      ['POST', `/admin/users/${victim.id}/ban`, {}, 200],
      ['POST', `/admin/users/${victim.id}/unban`, {}, 200],
      ['POST', '/admin/broadcast', { title: 'Hello', body: 'maintenance at noon' }, 202],
    ];
    const auditBefore = audit().length;
    for (const [method, p, body] of endpoints) {
      const none = await admin(srv, method, p, { body });
      assertAdminError(none, 401, 'unauthorized');
      assert.match(none.headers.get('www-authenticate') || '', /^Bearer/);
      assertAdminError(await admin(srv, method, p, { body, token: user.token }), 403, 'forbidden');
      assertAdminError(await admin(srv, method, p, { body, token: `${TOKEN}x` }), 403, 'forbidden');
      assertAdminError(await admin(srv, method, p, { body, token: TOKEN.slice(0, -1) }), 403, 'forbidden');
      assertAdminError(await admin(srv, method, p, { body, auth: TOKEN }), 401, 'unauthorized');
      // the server without an admin token refuses even "the right one"
      assertAdminError(await admin(bare, method, p, { body, token: TOKEN }), 403, 'forbidden');
      assertAdminError(await admin(bare, method, p, { body }), 403, 'forbidden');
    }
    // nothing was done by the refused requests
    assert.equal(banned(victim.id), false);
    assert.equal(sql(`SELECT state FROM reports WHERE id = ${rep.json.report.id}`), 'open');
    assert.equal(audit().length, auditBefore, 'refused requests do nothing worth auditing');
    // the right token
    for (const [method, p, body, status] of endpoints) {
      const r = await admin(srv, method, p, { body, token: TOKEN });
      assert.equal(r.status, status, `${method} ${p}: ${r.text}`);
    }
    assert.equal(sql(`SELECT state FROM reports WHERE id = ${rep.json.report.id}`), 'dismissed');
    assert.equal(banned(victim.id), false, 'banned then unbanned');
    const lines = audit().slice(auditBefore);
    assert.deepEqual(lines.map((l) => l.what), ['report_resolve', 'disconnect', 'ban', 'unban', 'broadcast']);
    for (const l of lines) {
      assert.equal(l.who, 'admin');
      assert.equal(l.ok, true);
      assert.equal(l.ip, '127.0.0.1');
      assert.ok(Math.abs(Date.parse(l.ts) - Date.now()) < 120000, l.ts);
    }
    assert.equal(lines[2].target, victim.id);
    assert.equal(lines[0].target, rep.json.report.id);
    // the dashboard page itself holds no data and needs no token
    const page = await fetch(`http://127.0.0.1:${srv.adminPort}/admin/`);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /Switchboard admin/);
    // the admin routes are not on the public port
    assert.equal((await fetch(srv.url('/admin/stats'), { headers: { authorization: `Bearer ${TOKEN}` } })).status, 404);
    assert.equal((await fetch(srv.url('/metrics'), { headers: { authorization: `Bearer ${TOKEN}` } })).status, 404);
  });

  test('stats: live figures of this node', T, async () => {
    const r = await admin(srv, 'GET', '/admin/stats', { token: TOKEN });
    assert.equal(r.status, 200, r.text);
    const s = r.json;
    for (const k of ['connections_open', 'messages_sent_total', 'fanout_deliveries_total', 'open_reports', 'users', 'uptime_s', 'rss_bytes', 'open_fds'])
      assert.equal(typeof s[k], 'number', `${k}: ${r.text}`);
    assert.equal(s.postgres, 'ok');
    assert.equal(s.redis, 'not_configured');
    assert.equal(s.open_reports, Number(sql("SELECT count(*) FROM reports WHERE state = 'open'")));
    assert.ok(Array.isArray(s.send_latency_seconds.bounds) && s.send_latency_seconds.counts.length === s.send_latency_seconds.bounds.length + 1);
    // a send moves the message counter and the latency histogram
    const a = await signup(srv);
    const b = await signup(srv);
    const conv = (await api(srv, 'POST', '/conversations', { token: a.token, body: { kind: 'direct', user_id: b.id } })).json.conversation.id;
    const sent = await api(srv, 'POST', `/conversations/${conv}/messages`, { token: a.token, body: { client_id: uname(), kind: 'text', body: 'hi' } });
    assert.equal(sent.status, 201, sent.text);
    const s2 = (await admin(srv, 'GET', '/admin/stats', { token: TOKEN })).json;
    assert.equal(s2.messages_sent_total, s.messages_sent_total + 1);
    const sum = (c) => c.reduce((x, y) => x + y, 0);
    assert.equal(sum(s2.send_latency_seconds.counts), sum(s.send_latency_seconds.counts) + 1);
  });

  test('disconnect closes the user\'s sockets with 1008; the user may reconnect', T, async () => {
    const u = await signup(srv);
    const ws = await rawSocket(srv, u.token);
    await rawJoin(ws, `user:${u.id}`);
    const r = await admin(srv, 'POST', `/admin/users/${u.id}/disconnect`, { token: TOKEN });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json, { user_id: u.id, disconnected: true });
    assert.equal((await closedCode(ws)).code, 1008);
    const again = await rawSocket(srv, u.token);
    await rawJoin(again, `user:${u.id}`);
    again.close();
    assertAdminError(await admin(srv, 'POST', '/admin/users/99999999999/disconnect', { token: TOKEN }), 404, 'not_found');
    assertAdminError(await admin(srv, 'POST', '/admin/users/abc/disconnect', { token: TOKEN }), 404, 'not_found');
  });

  test('ban: sockets closed 1008, tokens, refresh and login refused; unban lets the user sign in again', T, async () => {
    const u = await signup(srv);
    const ws = await rawSocket(srv, u.token);
    await rawJoin(ws, `user:${u.id}`);
    const r = await admin(srv, 'POST', `/admin/users/${u.id}/ban`, { token: TOKEN });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.banned, true);
    assert.ok(r.json.sessions_revoked >= 1);
    assert.equal((await closedCode(ws, 2000)).code, 1008);
    assertError(await api(srv, 'GET', '/me', { token: u.token }), 401, 'unauthorized');
    assertError(await api(srv, 'POST', '/auth/refresh', { body: { refresh_token: u.refresh_token } }), 401, 'unauthorized');
    assertError(await api(srv, 'POST', '/auth/login', { body: { username: u.username, password: u.password } }), 403, 'forbidden');
    await assert.rejects(rawSocket(srv, u.token));
    // banning twice is harmless
    assert.equal((await admin(srv, 'POST', `/admin/users/${u.id}/ban`, { token: TOKEN })).status, 200);
    assertAdminError(await admin(srv, 'POST', '/admin/users/99999999999/ban', { token: TOKEN }), 404, 'not_found');
    const un = await admin(srv, 'POST', `/admin/users/${u.id}/unban`, { token: TOKEN });
    assert.equal(un.status, 200, un.text);
    assert.deepEqual(un.json, { user_id: u.id, banned: false });
    const login = await api(srv, 'POST', '/auth/login', { body: { username: u.username, password: u.password } });
    assert.equal(login.status, 200, login.text);
    assert.equal((await api(srv, 'GET', '/me', { token: login.json.access_token })).status, 200);
    assertError(await api(srv, 'GET', '/me', { token: u.token }), 401, 'unauthorized'); // old sessions stay revoked
    assertAdminError(await admin(srv, 'POST', '/admin/users/99999999999/unban', { token: TOKEN }), 404, 'not_found');
  });

  test('reports: list by state, resolve once, bad input refused', T, async () => {
    const a = await signup(srv);
    const b = await signup(srv);
    const rep = (await api(srv, 'POST', '/reports', { token: a.token, body: { user_id: b.id, reason: 'harassment', note: 'see chat' } })).json.report;
    const open = await admin(srv, 'GET', '/admin/reports?state=open&limit=200', { token: TOKEN });
    assert.equal(open.status, 200, open.text);
    let items = open.json.items;
    let cursor = open.json.next_cursor;
    while (cursor) {
      // eslint-disable-next-line no-await-in-loop
      const more = await admin(srv, 'GET', `/admin/reports?state=open&limit=200&cursor=${encodeURIComponent(cursor)}`, { token: TOKEN });
      items = items.concat(more.json.items);
      cursor = more.json.next_cursor;
    }
    const mine = items.find((x) => x.id === rep.id);
    assert.ok(mine, 'the new report is listed open');
    assert.equal(mine.reason, 'harassment');
    assert.ok(items.every((x) => x.state === 'open'));
    const res = await admin(srv, 'POST', `/admin/reports/${rep.id}`, { token: TOKEN, body: { state: 'actioned', note: 'user warned' } });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.report.state, 'actioned');
    assert.equal(res.json.report.resolution_note, 'user warned');
    assert.equal(res.json.report.resolved_by, 'admin');
    assertAdminError(await admin(srv, 'POST', `/admin/reports/${rep.id}`, { token: TOKEN, body: { state: 'dismissed' } }), 409, 'conflict');
    assertAdminError(await admin(srv, 'POST', `/admin/reports/${rep.id}`, { token: TOKEN, body: { state: 'open' } }), 422, 'validation_failed');
    assertAdminError(await admin(srv, 'POST', `/admin/reports/${rep.id}`, { token: TOKEN, body: {} }), 422, 'validation_failed');
    assertAdminError(await admin(srv, 'POST', `/admin/reports/${rep.id}`, { token: TOKEN, raw: 'not json' }), 400, 'bad_request');
    assertAdminError(await admin(srv, 'POST', '/admin/reports/99999999999', { token: TOKEN, body: { state: 'dismissed' } }), 404, 'not_found');
    assertAdminError(await admin(srv, 'GET', '/admin/reports?state=nonsense', { token: TOKEN }), 422, 'validation_failed');
    assertAdminError(await admin(srv, 'GET', '/admin/reports?limit=0', { token: TOKEN }), 422, 'validation_failed');
    const done = await admin(srv, 'GET', '/admin/reports?state=actioned&limit=200', { token: TOKEN });
    assert.ok(done.json.items.some((x) => x.id === rep.id));
    assert.equal(sql(`SELECT state FROM reports WHERE id = ${rep.id}`), 'actioned');
  });

  test('broadcast: an event on every connected user: socket; bad input refused', T, async () => {
    const us = [await signup(srv), await signup(srv)];
    const socks = [];
    for (const u of us) {
      // eslint-disable-next-line no-await-in-loop
      const ws = await rawSocket(srv, u.token);
      // eslint-disable-next-line no-await-in-loop
      await rawJoin(ws, `user:${u.id}`);
      socks.push(ws);
    }
    const r = await admin(srv, 'POST', '/admin/broadcast', { token: TOKEN, body: { title: 'Maintenance', body: 'back in 5 minutes' } });
    assert.equal(r.status, 202, r.text);
    for (let i = 0; i < socks.length; i++) {
      // eslint-disable-next-line no-await-in-loop
      await until(() => socks[i].frames.some((f) => f[2] === `user:${us[i].id}` && f[3] === 'broadcast'), 10000, 'broadcast');
      const f = socks[i].frames.find((x) => x[3] === 'broadcast');
      assert.equal(f[4].title, 'Maintenance');
      assert.equal(f[4].body, 'back in 5 minutes');
      assert.equal(f[4].sent_at, r.json.sent_at);
    }
    assertAdminError(await admin(srv, 'POST', '/admin/broadcast', { token: TOKEN, body: { title: '' , body: 'x' } }), 422, 'validation_failed');
    assertAdminError(await admin(srv, 'POST', '/admin/broadcast', { token: TOKEN, body: { title: 'x' } }), 422, 'validation_failed');
    assertAdminError(await admin(srv, 'POST', '/admin/broadcast', { token: TOKEN, body: { title: 'x', body: 'y'.repeat(2001) } }), 422, 'validation_failed');
    for (const ws of socks) ws.close();
  });
});
