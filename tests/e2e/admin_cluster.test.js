'use strict';
// Admin actions across two nodes on one Redis (issue 15): a ban issued on
// node 1's admin listener closes the user's sockets on both nodes with 1008
// within a second, and refuses the user's tokens, refresh tokens and logins
// on node 2; an unban on node 2 lets the user in again; a broadcast from
// node 1 reaches user: sockets on node 2; a disconnect crosses nodes too.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { BASE_ENV, api, assertError, signup, waitForDatabase, until } = require('./lib/api');
const { startRedis, startCluster, waitClusterUp, stopAll } = require('./lib/cluster');
const { slow } = require('./lib/server');
const { admin, rawSocket, rawJoin, closedCode } = require('./lib/admin');

const T = { timeout: 90000 * slow() };
const TOKEN = crypto.randomBytes(24).toString('hex');

describe('admin actions across nodes', () => {
  let redis;
  let nodes = [];
  before(async () => {
    await waitForDatabase();
    redis = await startRedis();
    nodes = await startCluster(2, { redis, name: 'admin_cluster', env: { ...BASE_ENV, SB_ADMIN_TOKEN: TOKEN } });
    await waitClusterUp(nodes);
  });
  after(async () => {
    await stopAll(nodes);
    if (redis) await redis.stop();
  });

  test('a ban on node 1 closes the sockets on both nodes with 1008 within a second; node 2 refuses tokens and logins; unban on node 2', T, async () => {
    const [n1, n2] = nodes;
    const u = await signup(n1);
    const second = (await api(n2, 'POST', '/auth/login', { body: { username: u.username, password: u.password } })).json;
    const s1 = await rawSocket(n1, u.token);
    const s2 = await rawSocket(n2, second.access_token);
    await rawJoin(s1, `user:${u.id}`);
    await rawJoin(s2, `user:${u.id}`);
    const t0 = Date.now();
    const r = await admin(n1, 'POST', `/admin/users/${u.id}/ban`, { token: TOKEN });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.sessions_revoked, 2);
    const [c1, c2] = await Promise.all([closedCode(s1, 3000), closedCode(s2, 3000)]);
    assert.equal(c1.code, 1008);
    assert.equal(c2.code, 1008);
    // within one second of the request (the bar), scaled only on sanitizer builds
    const bar = 1000 * slow();
    assert.ok(c1.at - t0 <= bar, `node 1 closed after ${c1.at - t0} ms`);
    assert.ok(c2.at - t0 <= bar, `node 2 closed after ${c2.at - t0} ms`);
    for (const n of [n1, n2]) {
      for (const t of [u.token, second.access_token]) assertError(await api(n, 'GET', '/me', { token: t }), 401, 'unauthorized');
      assertError(await api(n, 'POST', '/auth/login', { body: { username: u.username, password: u.password } }), 403, 'forbidden');
      // eslint-disable-next-line no-await-in-loop
      await assert.rejects(rawSocket(n, second.access_token));
    }
    for (const t of [u.refresh_token, second.refresh_token]) assertError(await api(n2, 'POST', '/auth/refresh', { body: { refresh_token: t } }), 401, 'unauthorized');
    // unban on the other node
    const un = await admin(n2, 'POST', `/admin/users/${u.id}/unban`, { token: TOKEN });
    assert.equal(un.status, 200, un.text);
    const login = await api(n1, 'POST', '/auth/login', { body: { username: u.username, password: u.password } });
    assert.equal(login.status, 200, login.text);
    const back = await rawSocket(n2, login.json.access_token);
    await rawJoin(back, `user:${u.id}`);
    back.close();
  });

  test('broadcast from node 1 reaches user: sockets on node 2; disconnect from node 2 closes a socket on node 1', T, async () => {
    const [n1, n2] = nodes;
    const a = await signup(n1);
    const b = await signup(n2);
    const sa = await rawSocket(n1, a.token);
    const sb = await rawSocket(n2, b.token);
    await rawJoin(sa, `user:${a.id}`);
    await rawJoin(sb, `user:${b.id}`);
    const r = await admin(n1, 'POST', '/admin/broadcast', { token: TOKEN, body: { title: 'Cluster', body: 'to everyone' } });
    assert.equal(r.status, 202, r.text);
    for (const [ws, u] of [[sa, a], [sb, b]]) {
      // eslint-disable-next-line no-await-in-loop
      await until(() => ws.frames.some((f) => f[2] === `user:${u.id}` && f[3] === 'broadcast' && f[4].title === 'Cluster'), 10000, 'broadcast on both nodes');
    }
    const d = await admin(n2, 'POST', `/admin/users/${a.id}/disconnect`, { token: TOKEN });
    assert.equal(d.status, 200, d.text);
    assert.equal((await closedCode(sa, 3000)).code, 1008);
    sb.close();
  });
});
