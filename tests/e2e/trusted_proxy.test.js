'use strict';
// Trusted reverse proxies (SB_TRUSTED_PROXIES, docs/security.md S6): behind a
// proxy every client arrives from the proxy's address, so the per-address
// limits (socket connects, login, sign-up) must read X-Forwarded-For — but
// only from a peer in the trusted list. The test client connects from
// 127.0.0.1 and plays the proxy by sending the header itself.
//
// - trusted: sockets whose upgrade carries different X-Forwarded-For
//   addresses get separate buckets (one address hits the limit, another still
//   connects); a client's own prefix to the header does not move it out of
//   its bucket; IPv6 clients are counted per /64; long-poll too;
// - not trusted (option unset, or a list without the peer): the same headers
//   are ignored and every socket shares the peer's bucket;
// - login and sign-up per address, and the address a session records;
// - a malformed list stops the start.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { spawnSync } = require('node:child_process');
const WebSocket = require('ws');
const { startServer, slow } = require('./lib/server');
const { BASE_ENV, waitForDatabase, sql, api, assertError } = require('./lib/api');

const T = { timeout: 60000 };
const LIMIT = 3; // socket connects per address before 429

/** Opens a WebSocket with extra upgrade headers; resolves with 'open' (then
 * closes it) or the HTTP status of the refusal. */
function connect(srv, headers = {}) {
  return new Promise((resolve) => {
    const ws = new WebSocket(srv.wsUrl(`/socket/websocket?vsn=2.0.0&token=${encodeURIComponent(srv.tok)}`), { headers });
    const timer = setTimeout(() => { ws.terminate(); resolve('timeout'); }, 10000 * slow());
    ws.once('open', () => { clearTimeout(timer); ws.close(); resolve('open'); });
    ws.once('unexpected-response', (req, res) => {
      clearTimeout(timer);
      res.resume();
      resolve(res.statusCode);
      req.destroy();
    });
    ws.once('error', (e) => { clearTimeout(timer); resolve(`error ${e.message}`); });
  });
}

/** Connects n times with the same headers; returns the outcomes. */
async function connectN(srv, n, headers) {
  const out = [];
  for (let i = 0; i < n; i++) out.push(await connect(srv, headers));
  return out;
}

const xff = (v) => ({ 'X-Forwarded-For': v });
const opens = (n) => Array(n).fill('open');

/** A long-poll session opening with extra headers: the HTTP status. */
async function longpoll(srv, headers = {}) {
  const r = await fetch(srv.url(`/socket/longpoll?vsn=2.0.0&token=${encodeURIComponent(srv.tok)}`), {
    headers, signal: AbortSignal.timeout(10000 * slow()),
  });
  await r.text();
  return r.status;
}

async function server(name, env) {
  const srv = await startServer({ name, env: { SB_RATELIMIT_CONNECT_IP: `${LIMIT}/600`, SB_DATABASE_URL: '', ...env } });
  srv.tok = srv.token('1');
  return srv;
}

describe('SB_TRUSTED_PROXIES=127.0.0.1: socket connects counted per forwarded address', () => {
  let srv;
  before(async () => { srv = await server('trusted-proxy-connect', { SB_TRUSTED_PROXIES: '127.0.0.1' }); });
  after(async () => { if (srv) await srv.stop(); });

  test('one address hits the limit while others still connect', T, async () => {
    assert.deepEqual(await connectN(srv, LIMIT, xff('198.51.100.1')), opens(LIMIT));
    assert.equal(await connect(srv, xff('198.51.100.1')), 429, 'the fourth from 198.51.100.1');
    // another client behind the same proxy is not touched
    assert.deepEqual(await connectN(srv, LIMIT, xff('198.51.100.2')), opens(LIMIT));
    assert.equal(await connect(srv, xff('198.51.100.2')), 429);
    // an address the client wrote itself sits left of the one the proxy
    // appended: the rightmost untrusted one counts, so it cannot escape
    assert.equal(await connect(srv, xff('203.0.113.77, 198.51.100.1')), 429);
    assert.equal(await connect(srv, xff('203.0.113.77, 198.51.100.1')), 429);
    // trusted hops on the right are skipped (a second proxy in the chain)
    assert.equal(await connect(srv, xff('198.51.100.1, 127.0.0.1')), 429);
    assert.equal(await connect(srv, xff('198.51.100.3, 127.0.0.1')), 'open');
    // two header lines are one list: the last line's address counts
    assert.equal(await connect(srv, { 'X-Forwarded-For': ['198.51.100.4', '198.51.100.1'] }), 429);
    // a port on the entry is dropped ([v6]:port, v4:port)
    assert.equal(await connect(srv, xff('198.51.100.1:5555')), 429);
    // no header: the proxy itself (127.0.0.1) has its own, untouched bucket
    assert.deepEqual(await connectN(srv, LIMIT, {}), opens(LIMIT));
    assert.equal(await connect(srv, {}), 429);
    // garbage from the proxy: nothing to vouch for, so the proxy's bucket
    assert.equal(await connect(srv, xff('unknown')), 429);
    assert.equal(await connect(srv, xff('198.51.100.5, garbage')), 429);
    // X-Real-IP when there is no X-Forwarded-For
    assert.deepEqual(await connectN(srv, LIMIT, { 'X-Real-IP': '198.51.100.6' }), opens(LIMIT));
    assert.equal(await connect(srv, { 'X-Real-IP': '198.51.100.6' }), 429);
    assert.equal(await connect(srv, xff('198.51.100.6')), 429, 'the same client by either header');
    assert.ok(srv.alive());
  });

  test('IPv6 clients are counted per /64', T, async () => {
    assert.deepEqual(await connectN(srv, LIMIT, xff('2001:db8:1:2::1')), opens(LIMIT));
    assert.equal(await connect(srv, xff('[2001:db8:1:2:ffff::9]:443')), 429, 'same /64');
    assert.equal(await connect(srv, xff('2001:db8:1:3::1')), 'open', 'another /64');
  });

  test('long-poll session openings use the same buckets', T, async () => {
    assert.equal(await longpoll(srv, xff('198.51.100.1')), 429);
    assert.equal(await longpoll(srv, xff('198.51.100.20')), 200);
    assert.equal(await connect(srv, xff('198.51.100.20')), 'open');
    assert.equal(await connect(srv, xff('198.51.100.20')), 'open');
    assert.equal(await longpoll(srv, xff('198.51.100.20')), 429, 'the fourth connect of 198.51.100.20');
  });
});

for (const [label, env] of [
  ['option unset', {}],
  ['a list without the peer (10.0.0.0/8,::1)', { SB_TRUSTED_PROXIES: '10.0.0.0/8,::1' }],
]) {
  describe(`peer not trusted (${label}): forwarded headers are ignored`, () => {
    let srv;
    before(async () => { srv = await server(`trusted-proxy-untrusted-${Object.keys(env).length}`, env); });
    after(async () => { if (srv) await srv.stop(); });

    test('every address shares the peer\'s one bucket', T, async () => {
      assert.equal(await connect(srv, xff('198.51.100.1')), 'open');
      assert.equal(await connect(srv, xff('198.51.100.2')), 'open');
      assert.equal(await connect(srv, { 'X-Real-IP': '198.51.100.3' }), 'open');
      assert.equal(await connect(srv, xff('198.51.100.4')), 429, 'a spoofed header does not buy a fresh bucket');
      assert.equal(await connect(srv, {}), 429);
      assert.equal(await longpoll(srv, xff('198.51.100.5')), 429);
      assert.ok(srv.alive());
    });
  });
}

describe('login and sign-up per forwarded address; the session records it', () => {
  let srv;
  before(async () => {
    await waitForDatabase();
    srv = await startServer({
      name: 'trusted-proxy-accounts',
      env: {
        ...BASE_ENV,
        SB_TRUSTED_PROXIES: '127.0.0.0/8, ::1',
        SB_RATELIMIT_LOGIN_IP: '2/600',
        SB_RATELIMIT_SIGNUP_IP: '1/600',
      },
    });
  });
  after(async () => { if (srv) await srv.stop(); });

  const uname = () => `tp${crypto.randomBytes(6).toString('hex')}`;
  const login = (headers, username = uname()) =>
    api(srv, 'POST', '/auth/login', { body: { username, password: 'wrong password' }, headers });

  test('login attempts per address', T, async () => {
    for (let i = 0; i < 2; i++) assertError(await login(xff('198.51.100.1')), 401, 'unauthorized');
    assertError(await login(xff('198.51.100.1')), 429, 'rate_limited');
    assertError(await login(xff('203.0.113.9, 198.51.100.1')), 429, 'rate_limited');
    // another client behind the proxy still logs in (well, tries)
    assertError(await login(xff('198.51.100.2')), 401, 'unauthorized');
    // and the proxy's own address is a bucket apart
    assertError(await login({}), 401, 'unauthorized');
  });

  test('sign-ups per address, and the session row holds the client\'s address', T, async () => {
    const a = uname();
    const s1 = await api(srv, 'POST', '/auth/signup', { body: { username: a, password: 'abcdefgh' }, headers: xff('198.51.100.7') });
    assert.equal(s1.status, 201, s1.text);
    assertError(await api(srv, 'POST', '/auth/signup', { body: { username: uname(), password: 'abcdefgh' }, headers: xff('198.51.100.7') }),
      429, 'rate_limited');
    const b = uname();
    const s2 = await api(srv, 'POST', '/auth/signup', { body: { username: b, password: 'abcdefgh' }, headers: xff('2001:db8::7') });
    assert.equal(s2.status, 201, s2.text);
    const ipOf = (u) => sql(`SELECT s.ip FROM sessions s JOIN users u ON u.id = s.user_id WHERE u.username = '${u}'`);
    assert.equal(ipOf(a), '198.51.100.7');
    assert.equal(ipOf(b), '2001:db8::7');
  });
});

describe('a malformed SB_TRUSTED_PROXIES stops the start', () => {
  for (const [how, env, args, bad] of [
    ['variable, prefix too long', { SB_TRUSTED_PROXIES: '127.0.0.1,10.0.0.0/33' }, [], /SB_TRUSTED_PROXIES.*entry 2 "10\.0\.0\.0\/33"/],
    ['variable, a host name', { SB_TRUSTED_PROXIES: 'nginx.internal' }, [], /SB_TRUSTED_PROXIES.*"nginx\.internal"/],
    ['variable, empty entry', { SB_TRUSTED_PROXIES: '127.0.0.1,,::1' }, [], /SB_TRUSTED_PROXIES.*entry 2 is empty/],
    ['flag', {}, ['--trusted-proxies=::1/129'], /--trusted-proxies.*"::1\/129"/],
  ]) {
    test(how, T, () => {
      const r = spawnSync(process.env.SB_BIN, ['serve', ...args], {
        env: { ...process.env, SB_HOST: '127.0.0.1', SB_PORT: '0', SB_ADMIN_PORT: '0', SB_SECRET: 'x'.repeat(48), SB_DATABASE_URL: '', ...env },
        encoding: 'utf8',
        timeout: 10000 * slow(),
      });
      assert.equal(r.status, 2, `exit status ${r.status}, signal ${r.signal}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, bad);
      assert.doesNotMatch(r.stdout + r.stderr, /"msg":"listening"/);
    });
  }
});
