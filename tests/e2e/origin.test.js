'use strict';
// The Origin check of the socket transports (SB_ALLOWED_ORIGINS, as Phoenix's
// check_origin): a WebSocket upgrade or a long-poll request whose Origin is
// not allowed gets 403 and opens nothing; the page's own origin (the same
// site: Origin host:port = Host, or X-Forwarded-Host from a trusted proxy)
// and requests without an Origin (the mobile apps) pass; an explicit list
// replaces the default; a bad list stops the start.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const { spawn } = require('node:child_process');
const WebSocket = require('ws');
const { Socket } = require('phoenix');
const { startServer, slow, binPath } = require('./lib/server');
const { pushResult } = require('./lib/phx');

const T = { timeout: 30000 };

/** Opens a WebSocket at the socket endpoint with `headers` (Origin, Host...):
 * resolves { status } (101 when it opened; the socket is closed again). */
function wsTry(port, token, headers = {}) {
  return new Promise((resolve, reject) => {
    const { origin, ...rest } = headers;
    const ws = new WebSocket(`ws://127.0.0.1:${port}/socket/websocket?vsn=2.0.0&token=${encodeURIComponent(token)}`,
      { origin, headers: rest, handshakeTimeout: 5000 * slow() });
    ws.on('open', () => { ws.close(); resolve({ status: 101 }); });
    ws.on('unexpected-response', (req, res) => {
      let body = '';
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    ws.on('error', (e) => { if (!/Unexpected server response/.test(e.message)) reject(e); });
  });
}

/** One long-poll request with raw headers -> { status, body }. */
function lpTry(port, query, headers = {}, { method = 'GET', body = null } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: `/socket/longpoll?${query}`, headers, timeout: 10000 * slow() }, (res) => {
      let b = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { b += c; });
      res.on('end', () => resolve({ status: res.statusCode, body: b }));
    });
    req.on('timeout', () => req.destroy(new Error('long-poll request timed out')));
    req.on('error', reject);
    if (body) req.end(body); else req.end();
  });
}

describe('origin check, default (same site)', () => {
  let srv;
  before(async () => { srv = await startServer({ name: 'origin_default', env: { SB_LONGPOLL_WINDOW_MS: '500' } }); });
  after(async () => { if (srv) await srv.stop(); });

  test('WebSocket: own origin and no Origin open; a foreign origin, another port or "null" get 403', T, async () => {
    const tok = srv.token('alice');
    assert.equal((await wsTry(srv.port, tok, { origin: `http://127.0.0.1:${srv.port}` })).status, 101);
    assert.equal((await wsTry(srv.port, tok, {})).status, 101, 'no Origin (a native app) passes');
    for (const origin of ['http://evil.example', `http://127.0.0.1:${srv.port + 1}`, 'http://127.0.0.1', 'null', `http://evil.example:${srv.port}`]) {
      const r = await wsTry(srv.port, tok, { origin });
      assert.equal(r.status, 403, `Origin ${origin}`);
      assert.match(r.body, /origin_not_allowed/);
    }
    // a Host other than the one connected to (the page's site) decides, not the address
    assert.equal((await wsTry(srv.port, tok, { origin: 'https://chat.example.com', Host: 'chat.example.com' })).status, 101);
    assert.equal(srv.logsMatching(/socket_origin_refused/).length >= 5, true, 'refusals are logged');
  });

  test('long-poll: new session and polls refused with a foreign origin, accepted with the own one', T, async () => {
    const tok = encodeURIComponent(srv.token('bob'));
    const own = { Origin: `http://127.0.0.1:${srv.port}` };
    const evil = { Origin: 'https://evil.example' };
    const bad = await lpTry(srv.port, `token=${tok}&vsn=2.0.0`, evil);
    assert.equal(bad.status, 403);
    assert.match(bad.body, /origin_not_allowed/);
    const ok = await lpTry(srv.port, `token=${tok}&vsn=2.0.0`, own);
    assert.equal(ok.status, 200);
    const m = ok.body.match(/"status":410,"token":"([^"]+)"/);
    assert.ok(m, ok.body);
    const q = `token=${tok}&vsn=2.0.0&token=${encodeURIComponent(m[1])}`;
    // a page on another site cannot post into (or read) the session either
    const join = JSON.stringify(['1', '1', 'echo:o', 'phx_join', {}]);
    const post = await lpTry(srv.port, q, { ...evil, 'content-type': 'application/json' }, { method: 'POST', body: join });
    assert.equal(post.status, 403);
    assert.equal((await lpTry(srv.port, q, evil)).status, 403);
    const post2 = await lpTry(srv.port, q, { ...own, 'content-type': 'application/json' }, { method: 'POST', body: join });
    assert.equal(post2.status, 200);
    const poll = await lpTry(srv.port, q, own);
    assert.equal(poll.status, 200);
    assert.match(poll.body, /"status":200/);
    assert.match(poll.body, /phx_reply/, 'the join (posted with the own origin) was answered; the refused one was not');
    assert.equal((poll.body.match(/phx_reply/g) || []).length, 1);
    // no Origin at all: a native client
    assert.equal((await lpTry(srv.port, `token=${tok}&vsn=2.0.0`)).status, 200);
  });

  test('phoenix.js over WebSocket with the own origin joins', T, async () => {
    const port = srv.port;
    class OriginWs extends WebSocket { constructor(url, p) { super(url, p, { origin: `http://127.0.0.1:${port}` }); } }
    const s = new Socket(`ws://127.0.0.1:${port}/socket`, { transport: OriginWs, params: { token: srv.token('carol') }, reconnectAfterMs: () => 200 });
    s.connect();
    try {
      const [st] = await pushResult(s.channel('echo:js', {}).join(), 5000);
      assert.equal(st, 'ok');
    } finally { s.disconnect(); }
  });
});

describe('origin check behind a trusted proxy, and an explicit list', () => {
  test('X-Forwarded-Host from a trusted proxy is the site; from anyone else it is ignored', T, async () => {
    const trusted = await startServer({ name: 'origin_proxy', env: { SB_TRUSTED_PROXIES: '127.0.0.1' } });
    const plain = await startServer({ name: 'origin_noproxy' });
    try {
      const h = { origin: 'https://chat.example.com', Host: '10.0.0.11:4000', 'X-Forwarded-Host': 'chat.example.com' };
      assert.equal((await wsTry(trusted.port, trusted.token('a'), h)).status, 101);
      assert.equal((await wsTry(plain.port, plain.token('a'), h)).status, 403, 'untrusted peer: X-Forwarded-Host ignored');
      const h2 = { ...h, 'X-Forwarded-Host': 'evil.example' };
      assert.equal((await wsTry(trusted.port, trusted.token('a'), h2)).status, 403);
      const lp = await lpTry(trusted.port, `token=${encodeURIComponent(trusted.token('a'))}&vsn=2.0.0`,
        { Origin: 'https://chat.example.com', Host: '10.0.0.11:4000', 'X-Forwarded-Host': 'chat.example.com' });
      assert.equal(lp.status, 200);
    } finally {
      await trusted.stop();
      await plain.stop();
    }
  });

  test('SB_ALLOWED_ORIGINS lists the pages allowed (and replaces the default)', T, async () => {
    const srv = await startServer({ name: 'origin_list', env: { SB_ALLOWED_ORIGINS: 'https://app.example.com, https://*.clients.example' } });
    try {
      const tok = srv.token('a');
      assert.equal((await wsTry(srv.port, tok, { origin: 'https://app.example.com' })).status, 101);
      assert.equal((await wsTry(srv.port, tok, { origin: 'https://x.clients.example' })).status, 101);
      assert.equal((await wsTry(srv.port, tok, { origin: 'http://app.example.com' })).status, 403);
      assert.equal((await wsTry(srv.port, tok, { origin: `http://127.0.0.1:${srv.port}` })).status, 403);
      assert.equal((await wsTry(srv.port, tok, {})).status, 101);
    } finally { await srv.stop(); }
  });

  test('a malformed SB_ALLOWED_ORIGINS stops the start', T, async () => {
    const r = await new Promise((resolve) => {
      const child = spawn(binPath(), ['serve'], {
        env: { ...process.env, SB_SECRET: 'x'.repeat(40), SB_PORT: '0', SB_ADMIN_PORT: '-1', SB_HOST: '127.0.0.1', SB_DATABASE_URL: '', SB_ALLOWED_ORIGINS: 'https://ok.example, not-an-origin' },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let err = '';
      child.stderr.on('data', (c) => { err += c; });
      const timer = setTimeout(() => child.kill('SIGKILL'), 10000 * slow());
      child.on('exit', (code) => { clearTimeout(timer); resolve({ code, err }); });
    });
    assert.equal(r.code, 2);
    assert.match(r.err, /SB_ALLOWED_ORIGINS.*not-an-origin/);
  });
});
