'use strict';
// REST and account helpers shared by the e2e suites that need the database:
// the test database URL, psql, a fetch wrapper for /api/v1, the error-shape
// assertion, sign-up of throwaway users, and phoenix.js sockets for them.
//
//   const { DB_URL, BASE_ENV, api, assertError, signup, connect } = require('./lib/api');

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { slow, REPO } = require('./server');

const SERVICES = path.join(REPO, 'scripts', 'services.sh');

function databaseUrl() {
  if (process.env.SB_TEST_DATABASE_URL) return process.env.SB_TEST_DATABASE_URL;
  try {
    const out = execFileSync(SERVICES, ['env'], { encoding: 'utf8' });
    const m = out.match(/^SB_TEST_DATABASE_URL=(.*)$/m);
    return m ? m[1].trim() : '';
  } catch {
    return '';
  }
}
const DB_URL = databaseUrl();

/** Server environment for suites that use the database: migrations on,
 * cheap Argon2 (same code path), generous sign-up/login limits. */
const BASE_ENV = {
  SB_DATABASE_URL: DB_URL,
  SB_MIGRATE: '1',
  SB_ARGON2_T: '1',
  SB_ARGON2_M: '1024',
  SB_RATELIMIT_LOGIN_IP: '100000/1',
  SB_RATELIMIT_LOGIN_ACCOUNT: '100000/1',
  SB_RATELIMIT_SIGNUP_IP: '100000/1',
};

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const uname = (p = 't') => `${p}${crypto.randomBytes(6).toString('hex')}`;

/** Waits (bounded) until the test database answers. */
async function waitForDatabase(ms = 30000) {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      execFileSync('psql', [DB_URL, '-qtAXc', 'SELECT 1'], { stdio: 'ignore', timeout: 5000 });
      return;
    } catch (e) {
      if (Date.now() > deadline) throw new Error(`test database not reachable: ${e.message}`);
      await sleep(250);
    }
  }
}

/** Runs SQL on the test database with psql; returns the trimmed output. */
function sql(text) {
  return execFileSync('psql', [DB_URL, '-qtAX', '-v', 'ON_ERROR_STOP=1', '-c', text], {
    encoding: 'utf8', timeout: 15000,
  }).trim();
}

/** One request to /api/v1<p>; returns { status, headers, json, text, ms }. */
async function api(srv, method, p, { body, token, auth, raw, headers = {} } = {}) {
  const h = { ...headers };
  if (token) h.authorization = `Bearer ${token}`;
  if (auth !== undefined) h.authorization = auth;
  let payload;
  if (raw !== undefined) payload = raw;
  else if (body !== undefined) {
    payload = JSON.stringify(body);
    h['content-type'] = 'application/json';
  }
  const t0 = Date.now();
  const res = await fetch(srv.url(`/api/v1${p}`), {
    method, headers: h, body: payload, signal: AbortSignal.timeout(15000 * slow()),
  });
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  return { status: res.status, headers: res.headers, json, text, ms: Date.now() - t0 };
}

/** Asserts the error shape {"error":{"code","message","details"}}. */
function assertError(r, status, code) {
  assert.equal(r.status, status, `expected ${status} ${code}, got ${r.status}: ${r.text}`);
  assert.ok(r.json && r.json.error, `error body: ${r.text}`);
  assert.equal(r.json.error.code, code);
  assert.equal(typeof r.json.error.message, 'string');
  assert.ok(r.json.error.message.length > 0);
  assert.equal(typeof r.json.error.details, 'object');
  assert.match(r.headers.get('content-type') || '', /^application\/json/);
}

/** Signs up a fresh user; returns { id, username, access_token, ... }. */
async function signup(srv, extra = {}) {
  const username = extra.username || uname();
  const password = extra.password || 'correct horse battery';
  const r = await api(srv, 'POST', '/auth/signup', {
    body: { username, password, display_name: extra.display_name || 'Tester' },
  });
  assert.equal(r.status, 201, r.text);
  return { ...r.json, username: r.json.user.username, password, id: r.json.user.id, token: r.json.access_token };
}

/** Signs up n users, a few at a time. */
async function signupMany(srv, n) {
  const out = [];
  for (let i = 0; i < n; i += 10) {
    const batch = [];
    for (let j = i; j < Math.min(n, i + 10); j++) batch.push(signup(srv));
    out.push(...(await Promise.all(batch)));
  }
  return out;
}

/** A connected phoenix.js socket for `user` (resolves once open). */
async function connect(srv, user, opts = {}) {
  const { Socket } = require('phoenix');
  const WebSocket = require('ws');
  const sock = new Socket(srv.wsUrl('/socket'), {
    transport: WebSocket, params: { token: user.token }, reconnectAfterMs: () => 60000, ...opts,
  });
  await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('socket open timeout')), 10000 * slow());
    sock.onOpen(() => { clearTimeout(t); resolve(); });
    sock.connect();
  });
  return sock;
}

/** Joins topic on sock; resolves with the join response, rejects with the error one. */
function join(sock, topic, params = {}) {
  const ch = sock.channel(topic, params);
  return new Promise((resolve, reject) => {
    ch.join(10000 * slow())
      .receive('ok', (resp) => resolve({ ch, resp }))
      .receive('error', (resp) => reject(Object.assign(new Error(`join refused: ${JSON.stringify(resp)}`), { resp, ch })))
      .receive('timeout', () => reject(new Error(`join timeout: ${topic}`)));
  });
}

/** Pushes event on ch; resolves {status, response}. */
function push(ch, event, payload) {
  return new Promise((resolve, reject) => {
    ch.push(event, payload, 15000 * slow())
      .receive('ok', (response) => resolve({ status: 'ok', response }))
      .receive('error', (response) => resolve({ status: 'error', response }))
      .receive('timeout', () => reject(new Error(`push timeout: ${event}`)));
  });
}

/** Waits (bounded) until pred() is true. */
async function until(pred, ms = 10000, what = 'condition') {
  const deadline = Date.now() + ms * slow();
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timeout waiting for ${what}`);
    await sleep(20);
  }
}

module.exports = {
  DB_URL, BASE_ENV, sleep, uname, waitForDatabase, sql, api, assertError, signup, signupMany,
  connect, join, push, until,
};
