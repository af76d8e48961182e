'use strict';
// TURN credentials (api.md §2 "Calls": GET /api/v1/turn) against a real
// coturn started on loopback (lib/coturn.js): the credentials the server
// hands out allocate a relay with Debian's turnutils_uclient (-u/-w from the
// answer), and an expired one, a wrong one and one moved to another user are
// refused by coturn. Also: the answer's shape, auth, no caching, bad
// settings refused at start, no TURN configured, and two nodes sharing the
// secret hand out credentials coturn accepts alike.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { spawnSync } = require('node:child_process');
const { startServer, slow, binPath } = require('./lib/server');
const { BASE_ENV, api, assertError, signup, waitForDatabase } = require('./lib/api');
const { startCoturn, uclient, credentialFor } = require('./lib/coturn');

const T = { timeout: 90000 * slow() };
const TTL = 600;

describe('TURN credentials with a real coturn', () => {
  const secret = crypto.randomBytes(24).toString('base64');
  let turn;
  let srv;
  let srv2;
  let alice;
  let bob;

  before(async () => {
    await waitForDatabase();
    turn = await startCoturn({ secret });
    const env = {
      ...BASE_ENV,
      SB_TURN_SECRET: secret,
      SB_TURN_URIS: `stun:127.0.0.1:${turn.port}, ${turn.uri},turn:127.0.0.1:${turn.port}?transport=tcp`,
      SB_TURN_TTL: String(TTL),
    };
    srv = await startServer({ env });
    srv2 = await startServer({ env });
    alice = await signup(srv);
    bob = await signup(srv);
  });

  after(async () => {
    if (srv) await srv.stop();
    if (srv2) await srv2.stop();
    if (turn) await turn.stop();
  });

  test('GET /api/v1/turn: ice_servers as RTCIceServer objects, ttl, username <expiry>:<user_id>, not cacheable', T, async () => {
    const t0 = Math.floor(Date.now() / 1000);
    const r = await api(srv, 'GET', '/turn', { token: alice.token });
    const t1 = Math.ceil(Date.now() / 1000);
    assert.equal(r.status, 200, r.text);
    assert.match(r.headers.get('cache-control') || '', /no-store/);
    const b = r.json;
    assert.equal(b.ttl, TTL);
    assert.deepEqual(b.uris, [turn.uri, `turn:127.0.0.1:${turn.port}?transport=tcp`]);
    assert.equal(b.ice_servers.length, 2);
    assert.deepEqual(b.ice_servers[0], { urls: [`stun:127.0.0.1:${turn.port}`] });
    const ts = b.ice_servers[1];
    assert.deepEqual(ts.urls, b.uris);
    assert.equal(ts.username, b.username);
    assert.equal(ts.credential, b.credential);
    const m = /^(\d+):(\d+)$/.exec(b.username);
    assert.ok(m, b.username);
    assert.equal(m[2], alice.id);
    const expiry = Number(m[1]);
    // server time; this machine's clock is the server's, allow for the request's own time
    assert.ok(expiry >= t0 + TTL - 2 && expiry <= t1 + TTL + 2, `expiry ${expiry} vs now+ttl ${t0 + TTL}`);
    assert.equal(b.credential, credentialFor(secret, b.username));
    // the secret itself is never in the answer
    assert.ok(!r.text.includes(secret));
  });

  test('GET /api/v1/turn needs a valid access token', T, async () => {
    assertError(await api(srv, 'GET', '/turn'), 401, 'unauthorized');
    assertError(await api(srv, 'GET', '/turn', { token: 'not-a-token' }), 401, 'unauthorized');
    assertError(await api(srv, 'GET', '/turn', { token: await srv.token(alice.id, { ttl: -60 }) }), 401, 'unauthorized');
  });

  test('coturn allocates a relay with the credentials from GET /api/v1/turn (UDP and TCP)', T, async () => {
    const { json: b } = await api(srv, 'GET', '/turn', { token: alice.token });
    const udp = await uclient(turn, { username: b.username, credential: b.credential });
    assert.ok(udp.ok, `uclient failed (code ${udp.code}, ${udp.sent}/${udp.received}):\n${udp.output.slice(-1500)}`);
    assert.ok(udp.received >= 10, `relayed packets: ${udp.received}`);
    const tcp = await uclient(turn, { username: b.username, credential: b.credential, tcp: true });
    assert.ok(tcp.ok, `uclient -t failed (code ${tcp.code}):\n${tcp.output.slice(-1500)}`);
  });

  test('coturn refuses an expired credential, a wrong one, and one moved to another user', T, async () => {
    const { json: b } = await api(srv, 'GET', '/turn', { token: alice.token });
    const refused = async (username, credential, what) => {
      const r = await uclient(turn, { username, credential });
      assert.equal(r.ok, false, `${what} was accepted`);
      assert.notEqual(r.code, 0, `${what}: uclient exit code`);
      assert.match(r.output, /Cannot complete Allocation/, `${what}:\n${r.output.slice(-800)}`);
      assert.equal(r.received, 0);
    };
    // expired: the same shape and a correct HMAC, but the expiry is past
    const expired = `${Math.floor(Date.now() / 1000) - 60}:${alice.id}`;
    await refused(expired, credentialFor(secret, expired), 'an expired credential');
    // wrong: one character of the credential changed
    const c = b.credential;
    const wrong = (c[0] === 'A' ? 'B' : 'A') + c.slice(1);
    await refused(b.username, wrong, 'a wrong credential');
    // signed with another secret
    await refused(b.username, credentialFor(`${secret}x`, b.username), 'a credential of another secret');
    // alice's credential under bob's name
    const moved = b.username.replace(/:\d+$/, `:${bob.id}`);
    await refused(moved, b.credential, "alice's credential under bob's username");
    // and the good one still works on the same coturn (it is the refusals that differ)
    const ok = await uclient(turn, { username: b.username, credential: b.credential });
    assert.ok(ok.ok, ok.output.slice(-800));
    assert.match(turn.log(), /401|Cannot find credentials|check_stun_auth/i, 'coturn logged the refusals');
  });

  test("deploy/turnserver.conf's denied-peer-ip keeps relays out of private networks", T, async () => {
    // a user of its own: refused channels leave their allocations behind until
    // they time out, and those count against the user-quota of 12
    const carol = await signup(srv);
    const { json: b } = await api(srv, 'GET', '/turn', { token: carol.token });
    for (const peer of ['10.1.2.3', '192.168.1.1', '172.16.5.5', '169.254.1.1', '100.64.0.1']) {
      const r = await uclient(turn, { username: b.username, credential: b.credential, peer, messages: 1 });
      assert.notEqual(r.code, 0, `relay to ${peer} allowed`);
      assert.match(r.output, /403 \(Forbidden IP\)/, `${peer}:\n${r.output.slice(-500)}`);
    }
  });

  test('two nodes with the same secret hand out credentials coturn accepts alike', T, async () => {
    // each test server signs its own access tokens: mint bob's with srv2's key
    const r2 = await api(srv2, 'GET', '/turn', { token: await srv2.token(bob.id) });
    assert.equal(r2.status, 200, r2.text);
    const b2 = r2.json;
    assert.match(b2.username, new RegExp(`^\\d+:${bob.id}$`));
    assert.equal(b2.credential, credentialFor(secret, b2.username));
    const r = await uclient(turn, { username: b2.username, credential: b2.credential });
    assert.ok(r.ok, r.output.slice(-800));
  });

  test('the TURN secret is never logged', T, async () => {
    await api(srv, 'GET', '/turn', { token: alice.token });
    for (const s of [srv, srv2]) {
      assert.ok(!s.lines.some((l) => l.raw.includes(secret)), 'the secret is in the server log');
    }
  });
});

describe('TURN settings', () => {
  test('bad SB_TURN_URIS / SB_TURN_SECRET / SB_TURN_TTL stop the server at start with a clear message', T, () => {
    const cases = [
      [{ SB_TURN_URIS: 'http://turn.example.com' }, /not a turn:, turns:, stun: or stuns: URI/],
      [{ SB_TURN_URIS: 'stun:a,,stun:b' }, /empty URI/],
      [{ SB_TURN_URIS: 'turn:127.0.0.1:3478' }, /SB_TURN_SECRET/],
      [{ SB_TURN_URIS: 'turn:127.0.0.1:3478', SB_TURN_SECRET: 's', SB_TURN_TTL: '0' }, /SB_TURN_TTL/],
      [{ SB_TURN_URIS: 'turn:127.0.0.1:3478', SB_TURN_SECRET: 's', SB_TURN_TTL: '-5' }, /SB_TURN_TTL/],
      [{ SB_TURN_TTL: 'soon' }, /bad value for SB_TURN_TTL/],
    ];
    for (const [env, re] of cases) {
      const r = spawnSync(binPath(), ['serve'], {
        env: { ...process.env, SB_SECRET: 'x'.repeat(40), SB_PORT: '0', SB_ADMIN_PORT: '-1', SB_HOST: '127.0.0.1', SB_DATABASE_URL: '', ...env },
        encoding: 'utf8', timeout: 15000 * slow(),
      });
      assert.equal(r.status, 2, `${JSON.stringify(env)}: exit ${r.status} ${r.stderr}`);
      assert.match(r.stderr, re, JSON.stringify(env));
    }
  });

  test('without TURN settings GET /api/v1/turn answers no ICE servers and no credentials', T, async () => {
    await waitForDatabase();
    const srv = await startServer({ env: { ...BASE_ENV, SB_TURN_URIS: '', SB_TURN_SECRET: '' } });
    try {
      const u = await signup(srv);
      const r = await api(srv, 'GET', '/turn', { token: u.token });
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.json, { ice_servers: [], ttl: 86400, uris: [], username: null, credential: null });
    } finally {
      await srv.stop();
    }
  });
});
