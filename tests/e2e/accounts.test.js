'use strict';
// Accounts REST API end to end (api.md §2 "Auth and account"): sign-up,
// login, refresh-token rotation with reuse detection, logout (which closes
// the session's sockets), profile, user search and lookup, push devices;
// the auth matrix of every endpoint (S1), password and token storage (S5),
// rate limits (S6), and Postgres stopped and restarted under a running
// server (R4). Needs the private test database (SB_TEST_DATABASE_URL, else
// taken from scripts/services.sh env).

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const WebSocket = require('ws');
const { startServer, forgeToken, slow, REPO } = require('./lib/server');
const { DB_URL, waitForDatabase, sql, api, assertError } = require('./lib/api');

const T = { timeout: 30000 };
const SERVICES = path.join(REPO, 'scripts', 'services.sh');

// Cheap Argon2 for the suite (the defaults cost ~20 MiB and tens of ms per
// hash; the hashing path is the same). Generous rate limits: the dedicated
// rate-limit test starts its own server with tight ones.
const BASE_ENV = {
  SB_DATABASE_URL: DB_URL,
  SB_MIGRATE: '1',
  SB_ARGON2_T: '1',
  SB_ARGON2_M: '1024',
  SB_RATELIMIT_LOGIN_IP: '100000/1',
  SB_RATELIMIT_LOGIN_ACCOUNT: '100000/1',
  SB_RATELIMIT_SIGNUP_IP: '100000/1',
};

const RFC3339_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const uname = (p = 't') => `${p}${crypto.randomBytes(6).toString('hex')}`;

function assertUser(u, { username, display_name } = {}) {
  assert.match(u.id, /^[1-9][0-9]*$/, 'ids are decimal strings');
  if (username) assert.equal(u.username, username);
  if (display_name) assert.equal(u.display_name, display_name);
  assert.equal(typeof u.about, 'string');
  assert.ok(u.avatar_media_id === null || typeof u.avatar_media_id === 'string');
  assert.match(u.created_at, RFC3339_MS);
}

function assertSession(r, status) {
  assert.equal(r.status, status, r.text);
  const b = r.json;
  assertUser(b.user);
  assert.equal(typeof b.access_token, 'string');
  assert.match(b.refresh_token, /^[A-Za-z0-9_-]{43}$/, 'refresh token: 32 random bytes, base64url');
  assert.equal(b.expires_in, 900);
}

async function signup(srv, extra = {}) {
  const username = extra.username || uname();
  const password = extra.password || 'correct horse battery';
  const r = await api(srv, 'POST', '/auth/signup', {
    body: { username, password, display_name: extra.display_name || 'Tester' },
  });
  assertSession(r, 201);
  return { ...r.json, username: r.json.user.username, password, id: r.json.user.id };
}

describe('accounts REST', () => {
  let srv;

  before(async () => {
    assert.ok(DB_URL, 'no test database URL');
    await waitForDatabase();
    srv = await startServer({ name: 'accounts', env: BASE_ENV });
  });
  after(async () => { if (srv) await srv.stop(); });

  describe('signup', () => {
    test('201 {user, access_token, refresh_token, expires_in}', T, async () => {
      const username = uname('New_');
      const r = await api(srv, 'POST', '/auth/signup', {
        body: { username, password: 'hunter2hunter2', display_name: 'Néw Üser' },
      });
      assertSession(r, 201);
      assert.equal(r.json.user.username, username.toLowerCase(), 'usernames are stored lower-case');
      assert.equal(r.json.user.display_name, 'Néw Üser');
      assert.equal(r.json.user.about, '');
      assert.equal(r.json.user.avatar_media_id, null);
      assert.deepEqual(Object.keys(r.json.user).sort(),
        ['about', 'avatar_media_id', 'created_at', 'display_name', 'id', 'username']);
      // the access token works at once
      const me = await api(srv, 'GET', '/me', { token: r.json.access_token });
      assert.equal(me.status, 200, me.text);
      assert.deepEqual(me.json.user, r.json.user);
    });

    test('display_name defaults to the username', T, async () => {
      const username = uname();
      const r = await api(srv, 'POST', '/auth/signup', { body: { username, password: 'abcdefgh' } });
      assertSession(r, 201);
      assert.equal(r.json.user.display_name, username);
    });

    test('usernames are unique case-insensitively: 409 conflict', T, async () => {
      const a = await signup(srv);
      const r = await api(srv, 'POST', '/auth/signup', {
        body: { username: a.username.toUpperCase(), password: 'whatever123' },
      });
      assertError(r, 409, 'conflict');
      assert.equal(r.json.error.details.username, 'is already taken');
    });

    test('concurrent sign-ups for one name: exactly one wins', T, async () => {
      const username = uname();
      const rs = await Promise.all([0, 1, 2, 3].map(() => api(srv, 'POST', '/auth/signup', {
        body: { username, password: 'racing-pass' },
      })));
      const codes = rs.map((r) => r.status).sort();
      assert.deepEqual(codes, [201, 409, 409, 409], rs.map((r) => r.text).join('\n'));
    });

    test('422 validation_failed names each bad field', T, async () => {
      const cases = [
        [{ password: 'abcdefgh' }, { username: 'is required' }],
        [{ username: 'ab', password: 'abcdefgh' }, { username: /3 to 32/ }],
        [{ username: 'x'.repeat(33), password: 'abcdefgh' }, { username: /3 to 32/ }],
        [{ username: 'bad-name', password: 'abcdefgh' }, { username: /3 to 32/ }],
        [{ username: 'ünï', password: 'abcdefgh' }, { username: /3 to 32/ }],
        [{ username: 5, password: 'abcdefgh' }, { username: 'must be a string' }],
        [{ username: uname(), password: 'short' }, { password: 'must be at least 8 characters' }],
        [{ username: uname(), password: 'p'.repeat(257) }, { password: 'must be at most 256 characters' }],
        [{ username: uname(), password: null }, { password: 'is required' }],
        [{ username: uname(), password: 'abcdefgh', display_name: '   ' }, { display_name: 'must not be blank' }],
        [{ username: uname(), password: 'abcdefgh', display_name: 'a\u0007b' }, { display_name: /control/ }],
        [{ username: uname(), password: 'abcdefgh', display_name: 'd'.repeat(65) }, { display_name: /at most 64/ }],
        [{}, { username: 'is required', password: 'is required' }],
      ];
      for (const [body, details] of cases) {
        const r = await api(srv, 'POST', '/auth/signup', { body });
        assertError(r, 422, 'validation_failed');
        assert.deepEqual(Object.keys(r.json.error.details).sort(), Object.keys(details).sort(), JSON.stringify(body));
        for (const [k, v] of Object.entries(details)) {
          if (v instanceof RegExp) assert.match(r.json.error.details[k], v);
          else assert.equal(r.json.error.details[k], v);
        }
      }
    });

    test('400 bad_request for bodies that are not a JSON object', T, async () => {
      const deep = `{"a":${'['.repeat(100)}${']'.repeat(100)}}`;
      for (const raw of ['', 'not json', '{"username":"x",', '[1,2]', '"s"', '{"a":1,"a":2}', deep, '{} {}']) {
        const r = await api(srv, 'POST', '/auth/signup', { raw, headers: { 'content-type': 'application/json' } });
        assertError(r, 400, 'bad_request');
      }
      const r = await api(srv, 'POST', '/auth/signup', { raw: deep });
      assert.match(r.json.error.message, /nested/);
    });
  });

  describe('login', () => {
    let acct;
    before(async () => { acct = await signup(srv); });

    test('200 with a new session; username case-insensitive', T, async () => {
      const r = await api(srv, 'POST', '/auth/login', {
        body: { username: acct.username.toUpperCase(), password: acct.password },
      });
      assertSession(r, 200);
      assert.equal(r.json.user.id, acct.id);
      assert.notEqual(r.json.refresh_token, acct.refresh_token);
      const sid = JSON.parse(Buffer.from(r.json.access_token.split('.')[0], 'base64url')).sid;
      const sid0 = JSON.parse(Buffer.from(acct.access_token.split('.')[0], 'base64url')).sid;
      assert.notEqual(sid, sid0, 'each login is a session of its own');
    });

    test('wrong password and unknown account: the same 401', T, async () => {
      const a = await api(srv, 'POST', '/auth/login', { body: { username: acct.username, password: 'wrong password' } });
      const b = await api(srv, 'POST', '/auth/login', { body: { username: uname('nobody'), password: 'wrong password' } });
      const c = await api(srv, 'POST', '/auth/login', { body: { username: 'x!', password: 'wrong password' } });
      for (const r of [a, b, c]) assertError(r, 401, 'unauthorized');
      assert.equal(a.json.error.message, b.json.error.message);
      assert.equal(a.json.error.message, c.json.error.message);
    });

    test('422 for missing fields', T, async () => {
      const r = await api(srv, 'POST', '/auth/login', { body: { username: acct.username } });
      assertError(r, 422, 'validation_failed');
      assert.equal(r.json.error.details.password, 'is required');
    });

    test('a banned account cannot log in: 403 forbidden', T, async () => {
      const b = await signup(srv);
      sql(`UPDATE users SET banned_at = now() WHERE id = ${Number(b.id)}`);
      const r = await api(srv, 'POST', '/auth/login', { body: { username: b.username, password: b.password } });
      assertError(r, 403, 'forbidden');
      // a wrong password stays a 401 (no ban status revealed to a guesser)
      const w = await api(srv, 'POST', '/auth/login', { body: { username: b.username, password: 'not it at all' } });
      assertError(w, 401, 'unauthorized');
      // and the existing refresh token no longer works
      const f = await api(srv, 'POST', '/auth/refresh', { body: { refresh_token: b.refresh_token } });
      assertError(f, 403, 'forbidden');
      const f2 = await api(srv, 'POST', '/auth/refresh', { body: { refresh_token: b.refresh_token } });
      assert.equal(f2.status, 401);
    });

    test('a banned account cannot change its profile: 403 and nothing stored', T, async () => {
      const b = await signup(srv);
      sql(`UPDATE users SET banned_at = now() WHERE id = ${Number(b.id)}`);
      assertError(await api(srv, 'PATCH', '/me', { token: b.access_token, body: { display_name: 'Renamed' } }), 403, 'forbidden');
      assert.equal(sql(`SELECT display_name FROM users WHERE id = ${Number(b.id)}`), 'Tester', 'the name is unchanged');
    });
  });

  describe('refresh', () => {
    test('rotates: a new pair, the old refresh token is spent', T, async () => {
      const a = await signup(srv);
      const r = await api(srv, 'POST', '/auth/refresh', { body: { refresh_token: a.refresh_token } });
      assertSession(r, 200);
      assert.equal(r.json.user.id, a.id);
      assert.notEqual(r.json.refresh_token, a.refresh_token);
      const claims = (t) => JSON.parse(Buffer.from(t.split('.')[0], 'base64url'));
      assert.equal(claims(r.json.access_token).sid, claims(a.access_token).sid, 'same session');
      assert.equal(claims(r.json.access_token).sub, a.id);
      // the new one rotates again
      const r2 = await api(srv, 'POST', '/auth/refresh', { body: { refresh_token: r.json.refresh_token } });
      assertSession(r2, 200);
    });

    test('reuse of a rotated token revokes the whole family', T, async () => {
      const a = await signup(srv);
      const r1 = await api(srv, 'POST', '/auth/refresh', { body: { refresh_token: a.refresh_token } });
      assertSession(r1, 200);
      // the attacker replays the first token
      const replay = await api(srv, 'POST', '/auth/refresh', { body: { refresh_token: a.refresh_token } });
      assertError(replay, 401, 'unauthorized');
      assert.match(replay.json.error.message, /revoked/);
      // the legitimate holder's current token is dead too
      const r2 = await api(srv, 'POST', '/auth/refresh', { body: { refresh_token: r1.json.refresh_token } });
      assertError(r2, 401, 'unauthorized');
      // and so are the session's access tokens (on this node)
      const me = await api(srv, 'GET', '/me', { token: r1.json.access_token });
      assertError(me, 401, 'unauthorized');
      // other sessions of the user are untouched
      const l = await api(srv, 'POST', '/auth/login', { body: { username: a.username, password: a.password } });
      assertSession(l, 200);
      const me2 = await api(srv, 'GET', '/me', { token: l.json.access_token });
      assert.equal(me2.status, 200);
    });

    test('two concurrent refreshes with one token: one wins, the family is revoked', T, async () => {
      const a = await signup(srv);
      const rs = await Promise.all([0, 1].map(() => api(srv, 'POST', '/auth/refresh', { body: { refresh_token: a.refresh_token } })));
      assert.deepEqual(rs.map((r) => r.status).sort(), [200, 401], rs.map((r) => r.text).join('\n'));
      const winner = rs.find((r) => r.status === 200);
      const again = await api(srv, 'POST', '/auth/refresh', { body: { refresh_token: winner.json.refresh_token } });
      assertError(again, 401, 'unauthorized');
    });

    test('malformed, unknown and missing tokens', T, async () => {
      for (const t of ['nope', 'A'.repeat(43), crypto.randomBytes(32).toString('base64url'), 'x'.repeat(200)]) {
        const r = await api(srv, 'POST', '/auth/refresh', { body: { refresh_token: t } });
        assertError(r, 401, 'unauthorized');
      }
      const m = await api(srv, 'POST', '/auth/refresh', { body: {} });
      assertError(m, 422, 'validation_failed');
      assert.equal(m.json.error.details.refresh_token, 'is required');
    });
  });

  describe('logout', () => {
    test('204, revokes the session and closes its sockets (1008)', T, async () => {
      const a = await signup(srv);
      const other = await api(srv, 'POST', '/auth/login', { body: { username: a.username, password: a.password } });
      const ws = new WebSocket(srv.wsUrl(`/socket/websocket?vsn=2.0.0&token=${encodeURIComponent(a.access_token)}`));
      const wsOther = new WebSocket(srv.wsUrl(`/socket/websocket?vsn=2.0.0&token=${encodeURIComponent(other.json.access_token)}`));
      await Promise.all([ws, wsOther].map((w) => new Promise((res, rej) => { w.once('open', res); w.once('error', rej); })));
      const closed = new Promise((res) => ws.once('close', (code) => res(code)));
      let otherClosed = false;
      wsOther.once('close', () => { otherClosed = true; });

      const r = await api(srv, 'POST', '/auth/logout', { token: a.access_token });
      assert.equal(r.status, 204, r.text);
      assert.equal(r.text, '');
      const code = await Promise.race([closed, sleep(5000 * slow()).then(() => 'timeout')]);
      assert.equal(code, 1008, 'the session\'s socket is closed with 1008 (policy)');

      // the session's tokens are dead; the other session lives on
      assertError(await api(srv, 'GET', '/me', { token: a.access_token }), 401, 'unauthorized');
      assertError(await api(srv, 'POST', '/auth/refresh', { body: { refresh_token: a.refresh_token } }), 401, 'unauthorized');
      assert.equal((await api(srv, 'GET', '/me', { token: other.json.access_token })).status, 200);
      await sleep(100);
      assert.equal(otherClosed, false, 'other sessions keep their sockets');
      wsOther.terminate();
      ws.terminate();
    });

    test('with only the refresh token (the access token may have expired)', T, async () => {
      const a = await signup(srv);
      const r = await api(srv, 'POST', '/auth/logout', { body: { refresh_token: a.refresh_token } });
      assert.equal(r.status, 204, r.text);
      assertError(await api(srv, 'POST', '/auth/refresh', { body: { refresh_token: a.refresh_token } }), 401, 'unauthorized');
      assertError(await api(srv, 'GET', '/me', { token: a.access_token }), 401, 'unauthorized');
      // again: still a known token, still 204 (idempotent)
      assert.equal((await api(srv, 'POST', '/auth/logout', { body: { refresh_token: a.refresh_token } })).status, 204);
      // unknown token
      const u = await api(srv, 'POST', '/auth/logout', { body: { refresh_token: crypto.randomBytes(32).toString('base64url') } });
      assertError(u, 401, 'unauthorized');
    });

    test('logout removes the devices registered by that session', T, async () => {
      const a = await signup(srv);
      const tok = `tok-${uname()}`;
      const d = await api(srv, 'POST', '/devices', { token: a.access_token, body: { platform: 'android', push_token: tok } });
      assert.equal(d.status, 201, d.text);
      assert.equal((await api(srv, 'POST', '/auth/logout', { token: a.access_token })).status, 204);
      assert.equal(sql(`SELECT count(*) FROM devices WHERE push_token = '${tok}'`), '0');
    });
  });

  describe('me', () => {
    test('GET and PATCH', T, async () => {
      const a = await signup(srv, { display_name: 'Before' });
      const g = await api(srv, 'GET', '/me', { token: a.access_token });
      assert.equal(g.status, 200);
      assertUser(g.json.user, { username: a.username, display_name: 'Before' });

      // an avatar must be media its user may read (api.md "Media"): an upload of theirs
      const up = await api(srv, 'POST', '/media', { token: a.access_token, raw: Buffer.from('89504e470d0a1a0a0000000d4948445200000002000000030000', 'hex'), headers: { 'content-type': 'image/png' } });
      assert.equal(up.status, 201, up.text);
      const avatar = up.json.media.id;
      const bad = await api(srv, 'PATCH', '/me', { token: a.access_token, body: { avatar_media_id: 'm_123-abc' } });
      assertError(bad, 422, 'validation_failed');
      assert.ok(bad.json.error.details.avatar_media_id);
      const p = await api(srv, 'PATCH', '/me', {
        token: a.access_token,
        body: { display_name: 'After 🎉', about: 'line one\nline two', avatar_media_id: avatar, unknown: 1 },
      });
      assert.equal(p.status, 200, p.text);
      assert.equal(p.json.user.display_name, 'After 🎉');
      assert.equal(p.json.user.about, 'line one\nline two');
      assert.equal(p.json.user.avatar_media_id, avatar);
      assert.equal(p.json.user.username, a.username);

      // partial update leaves the rest; null clears avatar and about
      const p2 = await api(srv, 'PATCH', '/me', { token: a.access_token, body: { avatar_media_id: null, about: null } });
      assert.equal(p2.status, 200, p2.text);
      assert.equal(p2.json.user.display_name, 'After 🎉');
      assert.equal(p2.json.user.avatar_media_id, null);
      assert.equal(p2.json.user.about, '');

      // an empty patch changes nothing
      const p3 = await api(srv, 'PATCH', '/me', { token: a.access_token, body: {} });
      assert.deepEqual(p3.json.user, p2.json.user);

      const g2 = await api(srv, 'GET', '/me', { token: a.access_token });
      assert.deepEqual(g2.json.user, p2.json.user);
    });

    test('PATCH validation', T, async () => {
      const a = await signup(srv);
      const cases = [
        [{ display_name: '' }, 'display_name'],
        [{ display_name: '  ' }, 'display_name'],
        [{ display_name: null }, 'display_name'],
        [{ display_name: 'x'.repeat(65) }, 'display_name'],
        [{ display_name: 'tab\there' }, 'display_name'],
        [{ about: 'a'.repeat(501) }, 'about'],
        [{ about: 7 }, 'about'],
        [{ about: 'bell\u0007' }, 'about'],
        [{ avatar_media_id: '../etc/passwd' }, 'avatar_media_id'],
        [{ avatar_media_id: '' }, 'avatar_media_id'],
        [{ avatar_media_id: 12 }, 'avatar_media_id'],
      ];
      for (const [body, field] of cases) {
        const r = await api(srv, 'PATCH', '/me', { token: a.access_token, body });
        assertError(r, 422, 'validation_failed');
        assert.ok(r.json.error.details[field], `${JSON.stringify(body)}: ${r.text}`);
      }
      const many = await api(srv, 'PATCH', '/me', { token: a.access_token, body: { display_name: '', about: 1 } });
      assert.deepEqual(Object.keys(many.json.error.details).sort(), ['about', 'display_name']);
    });
  });

  describe('users', () => {
    let me;
    const prefix = uname('s');
    const names = [`${prefix}_b`, `${prefix}_a`, `${prefix}_c`, `${prefix}.d`];
    before(async () => {
      me = await signup(srv);
      for (const n of names) await signup(srv, { username: n });
    });

    test('search by prefix, ordered by username, paginated', T, async () => {
      const r = await api(srv, 'GET', `/users?q=${prefix.toUpperCase()}`, { token: me.access_token });
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.json.items.map((u) => u.username), [...names].sort());
      assert.equal(r.json.next_cursor, null);
      r.json.items.forEach((u) => assertUser(u));

      // page by page
      const seen = [];
      let cursor = null;
      for (let i = 0; i < 10; i++) {
        const q = `/users?q=${prefix}&limit=1${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
        const p = await api(srv, 'GET', q, { token: me.access_token });
        assert.equal(p.status, 200, p.text);
        assert.ok(p.json.items.length <= 1);
        seen.push(...p.json.items.map((u) => u.username));
        cursor = p.json.next_cursor;
        if (!cursor) break;
        assert.equal(typeof cursor, 'string');
      }
      assert.deepEqual(seen, [...names].sort());

      // '@' in front is ignored; a prefix no username can have matches nothing
      const at = await api(srv, 'GET', `/users?q=%40${prefix}_a`, { token: me.access_token });
      assert.deepEqual(at.json.items.map((u) => u.username), [`${prefix}_a`]);
      const none = await api(srv, 'GET', '/users?q=%25%27%3B--', { token: me.access_token });
      assert.equal(none.status, 200);
      assert.deepEqual(none.json, { items: [], next_cursor: null });
      // '_' and '.' are literal, not wildcards
      const dot = await api(srv, 'GET', `/users?q=${prefix}.`, { token: me.access_token });
      assert.deepEqual(dot.json.items.map((u) => u.username), [`${prefix}.d`]);
    });

    test('search input errors: 422', T, async () => {
      for (const q of ['', '?q=', `?q=${prefix}&limit=0`, `?q=${prefix}&limit=201`, `?q=${prefix}&limit=x`,
        `?q=${prefix}&cursor=bogus!`, `?q=${prefix}&cursor=${Buffer.from('zz').toString('base64url')}`]) {
        const r = await api(srv, 'GET', `/users${q}`, { token: me.access_token });
        assertError(r, 422, 'validation_failed');
      }
      const ok = await api(srv, 'GET', `/users?q=${prefix}&limit=200`, { token: me.access_token });
      assert.equal(ok.status, 200);
    });

    test('GET /users/:id with online and last_seen_at', T, async () => {
      const other = await signup(srv);
      const r = await api(srv, 'GET', `/users/${other.id}`, { token: me.access_token });
      assert.equal(r.status, 200, r.text);
      assertUser(r.json.user, { username: other.username });
      assert.equal(r.json.user.online, false);
      assert.ok(r.json.user.last_seen_at === null || RFC3339_MS.test(r.json.user.last_seen_at));
      for (const id of ['999999999999', '0', 'abc', '1x', '-1', '99999999999999999999']) {
        assertError(await api(srv, 'GET', `/users/${id}`, { token: me.access_token }), 404, 'not_found');
      }
    });
  });

  describe('devices', () => {
    test('register, move, delete', T, async () => {
      const a = await signup(srv);
      const b = await signup(srv);
      const tok = `fcm:${crypto.randomBytes(20).toString('hex')}`;
      const r = await api(srv, 'POST', '/devices', { token: a.access_token, body: { platform: 'android', push_token: tok } });
      assert.equal(r.status, 201, r.text);
      const d = r.json.device;
      assert.match(d.id, /^[1-9][0-9]*$/);
      assert.equal(d.platform, 'android');
      assert.equal(d.push_token, tok);
      assert.match(d.created_at, RFC3339_MS);

      // another user cannot delete it
      assertError(await api(srv, 'DELETE', `/devices/${d.id}`, { token: b.access_token }), 404, 'not_found');
      // the same push token registered by b (b signed in on that phone) moves to b
      const moved = await api(srv, 'POST', '/devices', { token: b.access_token, body: { platform: 'ios', push_token: tok } });
      assert.equal(moved.status, 201, moved.text);
      assert.equal(moved.json.device.id, d.id);
      assert.equal(moved.json.device.platform, 'ios');
      assert.equal(sql(`SELECT user_id FROM devices WHERE push_token = '${tok}'`), b.id);
      assertError(await api(srv, 'DELETE', `/devices/${d.id}`, { token: a.access_token }), 404, 'not_found');

      const del = await api(srv, 'DELETE', `/devices/${d.id}`, { token: b.access_token });
      assert.equal(del.status, 204);
      assertError(await api(srv, 'DELETE', `/devices/${d.id}`, { token: b.access_token }), 404, 'not_found');
      assertError(await api(srv, 'DELETE', '/devices/abc', { token: b.access_token }), 404, 'not_found');
    });

    test('validation', T, async () => {
      const a = await signup(srv);
      const cases = [
        [{ push_token: 'x' }, ['platform']],
        [{ platform: 'windows', push_token: 'x' }, ['platform']],
        [{ platform: 'web' }, ['push_token']],
        [{ platform: 'web', push_token: '' }, ['push_token']],
        [{ platform: 'web', push_token: 'x'.repeat(1025) }, ['push_token']],
        [{ platform: 'web', push_token: 'a\nb' }, ['push_token']],
        [{ platform: 1, push_token: 2 }, ['platform', 'push_token']],
      ];
      for (const [body, fields] of cases) {
        const r = await api(srv, 'POST', '/devices', { token: a.access_token, body });
        assertError(r, 422, 'validation_failed');
        assert.deepEqual(Object.keys(r.json.error.details).sort(), fields, JSON.stringify(body));
      }
    });
  });

  describe('S1: every endpoint refuses missing, expired, forged and foreign tokens', () => {
    test('401 unauthorized with WWW-Authenticate', T, async () => {
      const a = await signup(srv);
      const expired = srv.token(a.id, { ttl: -60 });
      const forged = forgeToken(a.access_token);
      const endpoints = [
        ['GET', '/me'], ['PATCH', '/me', { display_name: 'x' }], ['GET', '/users?q=a'],
        ['GET', `/users/${a.id}`], ['POST', '/devices', { platform: 'web', push_token: 'x' }],
        ['DELETE', '/devices/1'], ['POST', '/auth/logout'],
      ];
      const auths = [undefined, `Bearer ${expired}`, `Bearer ${forged}`, 'Bearer', 'Bearer abc.def',
        `Basic ${a.access_token}`, `Bearer ${a.access_token.split('.')[0]}`];
      for (const [method, p, body] of endpoints) {
        for (const auth of auths) {
          const r = await api(srv, method, p, { auth, body });
          assertError(r, 401, 'unauthorized');
          assert.match(r.headers.get('www-authenticate') || '', /^Bearer/, `${method} ${p}`);
        }
      }
      const exp = await api(srv, 'GET', '/me', { auth: `Bearer ${expired}` });
      assert.match(exp.json.error.message, /expired/);
    });

    test('a valid token of a deleted account is not accepted as someone', T, async () => {
      const tok = srv.token('987654321987'); // signed, but no such user
      assertError(await api(srv, 'GET', '/me', { token: tok }), 401, 'unauthorized');
      assertError(await api(srv, 'POST', '/devices', { token: tok, body: { platform: 'web', push_token: uname() } }), 401, 'unauthorized');
      const cli = srv.token('not-a-number');
      assertError(await api(srv, 'GET', '/me', { token: cli }), 401, 'unauthorized');
    });
  });

  describe('S5: secrets at rest', () => {
    test('Argon2id password hashes; refresh tokens stored only as SHA-256', T, async () => {
      const a = await signup(srv);
      const hash = sql(`SELECT password_hash FROM users WHERE id = ${Number(a.id)}`);
      assert.match(hash, /^\$argon2id\$v=19\$m=1024,t=1,p=1\$/);
      assert.ok(!hash.includes(a.password));
      const digest = crypto.createHash('sha256').update(Buffer.from(a.refresh_token, 'base64url')).digest('hex');
      assert.equal(sql(`SELECT count(*) FROM refresh_tokens WHERE token_hash = '\\x${digest}'`), '1');
      const tokenBytes = Buffer.from(a.refresh_token, 'base64url').toString('hex');
      assert.equal(sql(`SELECT count(*) FROM refresh_tokens WHERE token_hash = '\\x${tokenBytes}'`), '0');
    });
  });
});

describe('S6: rate limits', () => {
  let srv;
  before(async () => {
    await waitForDatabase();
    srv = await startServer({
      name: 'accounts-ratelimit',
      env: {
        ...BASE_ENV,
        SB_RATELIMIT_LOGIN_IP: '6/600',
        SB_RATELIMIT_LOGIN_ACCOUNT: '3/600',
        SB_RATELIMIT_SIGNUP_IP: '3/600',
      },
    });
  });
  after(async () => { if (srv) await srv.stop(); });

  test('sign-ups per IP, login attempts per account and per IP: 429 with Retry-After', T, async () => {
    const accts = [];
    for (let i = 0; i < 3; i++) accts.push(await signup(srv));
    const s = await api(srv, 'POST', '/auth/signup', { body: { username: uname(), password: 'abcdefgh' } });
    assertError(s, 429, 'rate_limited');
    const ra = Number(s.headers.get('retry-after'));
    assert.ok(ra >= 1 && ra <= 600, `Retry-After: ${s.headers.get('retry-after')}`);

    // per account: three attempts, then refused even with the right password
    const [a, b] = accts;
    for (let i = 0; i < 3; i++) {
      const r = await api(srv, 'POST', '/auth/login', { body: { username: a.username, password: 'wrong password' } });
      assertError(r, 401, 'unauthorized');
    }
    const limited = await api(srv, 'POST', '/auth/login', { body: { username: a.username, password: a.password } });
    assertError(limited, 429, 'rate_limited');
    assert.ok(Number(limited.headers.get('retry-after')) >= 1);
    // counted per account: b can still log in...
    assertSession(await api(srv, 'POST', '/auth/login', { body: { username: b.username, password: b.password } }), 200);
    // ...until the address runs out (6 per IP: 3 + 1 + 1 so far)
    assertError(await api(srv, 'POST', '/auth/login', { body: { username: b.username, password: 'nope nope' } }), 401, 'unauthorized');
    assertError(await api(srv, 'POST', '/auth/login', { body: { username: b.username, password: b.password } }), 429, 'rate_limited');
    assert.ok(srv.alive());
  });
});

describe('S6: socket connects per address', () => {
  let srv;
  before(async () => {
    srv = await startServer({ name: 'accounts-connect-limit', env: { SB_RATELIMIT_CONNECT_IP: '3/600' } });
  });
  after(async () => { if (srv) await srv.stop(); });

  /** Opens a WebSocket; resolves with 'open' (then closes it) or the HTTP status and headers. */
  function connect(token) {
    return new Promise((resolve) => {
      const ws = new WebSocket(srv.wsUrl(`/socket/websocket?vsn=2.0.0&token=${encodeURIComponent(token)}`));
      ws.once('open', () => { ws.close(); resolve({ status: 'open' }); });
      ws.once('unexpected-response', (req, res) => {
        let body = '';
        res.on('data', (d) => { body += d; });
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
      });
      ws.once('error', (e) => resolve({ status: `error ${e.message}` }));
    });
  }

  test('WebSocket and long-poll connects past the limit: 429 with Retry-After; the server serves on', T, async () => {
    const token = srv.token('1');
    for (let i = 0; i < 3; i++) assert.equal((await connect(token)).status, 'open', `connect ${i + 1}`);
    const r = await connect(token);
    assert.equal(r.status, 429, JSON.stringify(r));
    const ra = Number(r.headers['retry-after']);
    assert.ok(ra >= 1 && ra <= 200, `Retry-After: ${r.headers['retry-after']}`);
    assert.equal(JSON.parse(r.body).error.code, 'rate_limited');
    // a bad token is counted too (a flood of forged tokens costs nothing more)
    assert.equal((await connect('forged')).status, 429);
    const lp = await fetch(`${srv.http}/socket/longpoll?vsn=2.0.0&token=${encodeURIComponent(token)}`);
    assert.equal(lp.status, 429);
    assert.ok(Number(lp.headers.get('retry-after')) >= 1);
    // plain HTTP is not a socket connect
    assert.equal((await fetch(`${srv.http}/healthz`)).status, 200);
    assert.ok(srv.alive());
  });
});

describe('revocation outlives a restart; settings are checked at start', () => {
  test('a session logged out before a restart stays refused by the restarted server', T, async () => {
    await waitForDatabase();
    const first = await startServer({ name: 'accounts-revoke-1', env: BASE_ENV });
    let second;
    try {
      const a = await signup(first);
      assert.equal((await api(first, 'POST', '/auth/logout', { token: a.access_token })).status, 204);
      await first.stop();
      // same secret and database: the access token (15 min) still verifies
      second = await startServer({ name: 'accounts-revoke-2', env: { ...BASE_ENV, SB_SECRET: first.env.SB_SECRET } });
      assert.ok(second.logsMatching(/"msg":"revoked_sessions_loaded"/).length > 0, second.tail());
      assertError(await api(second, 'GET', '/me', { token: a.access_token }), 401, 'unauthorized');
      const ws = new WebSocket(second.wsUrl(`/socket/websocket?vsn=2.0.0&token=${encodeURIComponent(a.access_token)}`));
      const status = await new Promise((res) => {
        ws.once('unexpected-response', (req, r) => res(r.statusCode));
        ws.once('open', () => res('open'));
        ws.once('error', () => res('error'));
      });
      ws.terminate();
      assert.equal(status, 403, 'the socket refuses the logged-out token');
      // another account's fresh session is served as usual
      const b = await signup(second);
      assert.equal((await api(second, 'GET', '/me', { token: b.access_token })).status, 200);
    } finally {
      if (first.alive()) await first.stop();
      if (second) await second.stop();
    }
  });

  test('a malformed rate-limit setting stops the server at start with a clear error', T, async () => {
    const { spawnSync } = require('node:child_process');
    const r = spawnSync(process.env.SB_BIN, ['serve'], {
      env: { ...process.env, SB_HOST: '127.0.0.1', SB_PORT: '0', SB_ADMIN_PORT: '0', SB_SECRET: 'x'.repeat(48),
        SB_RATELIMIT_LOGIN_IP: 'lots', SB_DATABASE_URL: '' },
      encoding: 'utf8',
      timeout: 10000 * slow(),
    });
    assert.equal(r.status, 1, `exit status ${r.status}, signal ${r.signal}: ${r.stdout}${r.stderr}`);
    assert.match(r.stdout + r.stderr, /"msg":"bad_config".*SB_RATELIMIT_LOGIN_IP/);
  });
});

describe('R4: Postgres stopped, then back', () => {
  let srv;
  let pgStopped = false;
  const services = (cmd) => execFileSync(SERVICES, [cmd], { stdio: 'ignore', timeout: 60000 });

  before(async () => {
    await waitForDatabase();
    srv = await startServer({ name: 'accounts-r4', env: BASE_ENV });
  });
  after(async () => {
    if (pgStopped) services('pg-start');
    if (srv) await srv.stop();
  });

  test('answers 503 unavailable at once, stays up, recovers by itself', { timeout: 90000 }, async () => {
    const a = await signup(srv);
    // keep requests flowing while Postgres goes away
    let stop = false;
    const statuses = [];
    const load = (async () => {
      while (!stop) {
        const r = await api(srv, 'GET', '/me', { token: a.access_token }).catch((e) => ({ status: `error ${e.message}` }));
        statuses.push(r.status);
      }
    })();
    await sleep(200);
    pgStopped = true;
    services('pg-stop');
    try {
      await sleep(300);
      const checks = [
        ['GET', '/me', { token: a.access_token }],
        ['GET', `/users/${a.id}`, { token: a.access_token }],
        ['POST', '/auth/login', { body: { username: a.username, password: a.password } }],
        ['POST', '/auth/signup', { body: { username: uname(), password: 'abcdefgh' } }],
        ['POST', '/auth/refresh', { body: { refresh_token: a.refresh_token } }],
        ['POST', '/devices', { token: a.access_token, body: { platform: 'web', push_token: uname() } }],
      ];
      for (const [method, p, opts] of checks) {
        const r = await api(srv, method, p, opts);
        assertError(r, 503, 'unavailable');
        assert.ok(Number(r.headers.get('retry-after')) >= 1);
        assert.ok(r.ms < 2000 * slow(), `${method} ${p} took ${r.ms} ms`);
      }
      // validation and auth still answer without the database
      assertError(await api(srv, 'GET', '/me'), 401, 'unauthorized');
      assertError(await api(srv, 'POST', '/auth/signup', { body: {} }), 422, 'validation_failed');
      assert.ok(srv.alive(), 'server still running');
    } finally {
      services('pg-start');
      pgStopped = false;
    }
    // back by itself, without a restart
    const deadline = Date.now() + 30000 * slow();
    let last;
    while (Date.now() < deadline) {
      last = await api(srv, 'GET', '/me', { token: a.access_token });
      if (last.status === 200) break;
      await sleep(200);
    }
    assert.equal(last.status, 200, `not recovered: ${last.text}`);
    stop = true;
    await load;
    // every request during the outage got an answer: 200 or 503, nothing else
    const odd = statuses.filter((s) => s !== 200 && s !== 503);
    assert.deepEqual(odd, [], `unexpected answers: ${odd.join(', ')}`);
    assert.ok(statuses.includes(503), 'some requests saw the outage');
    // and writes work again (the refresh above was refused, so the token is
    // still live). Each reactor's pool reconnects on its own backoff (at most
    // ~2.5 s), so a request landing on another reactor may still see 503
    // briefly; a refused refresh spends nothing, so retrying is safe.
    let refreshed;
    const refreshDeadline = Date.now() + 5000 * slow();
    do {
      refreshed = await api(srv, 'POST', '/auth/refresh', { body: { refresh_token: a.refresh_token } });
      if (refreshed.status !== 503) break;
      await sleep(200);
    } while (Date.now() < refreshDeadline);
    assertSession(refreshed, 200);
    assert.ok(srv.alive());
    assert.equal(srv.logsMatching(/"level":"(error|fatal)"/).length, 0, srv.tail());
  });
});
