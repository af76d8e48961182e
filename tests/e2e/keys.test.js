'use strict';
// The end-to-end-encryption key directory (api.md "End-to-end encryption key
// directory", docs/keys.md): upload, count, bundle fetch; one-time prekeys
// handed out once under 100 concurrent fetches, then the last-resort key;
// the per-(requester, target) fetch limit; prekeys_low once per crossing;
// keys:changed to contacts (live and through sync, durable) on one node and
// across two nodes; size, count and format limits. Needs the test database.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { startServer, slow } = require('./lib/server');
const {
  DB_URL, BASE_ENV, waitForDatabase, api, assertError, signupMany, connect, join, until, sleep,
} = require('./lib/api');
const { startRedis, startCluster, waitClusterUp, stopAll } = require('./lib/cluster');

const T = { timeout: 120000 };
const b64 = (n = 32) => crypto.randomBytes(n).toString('base64');
const signed = (id) => ({ id, public_key: b64(), signature: b64(64) });
const otpks = (from, n) => Array.from({ length: n }, (_, i) => ({ id: from + i, public_key: b64() }));
const bundle = (extra = {}) => ({ identity_key: b64(33), signed_prekey: signed(1), one_time_prekeys: [], ...extra });

/** Collects the events of one name pushed on a joined channel. */
function collect(ch, event) {
  const got = [];
  ch.on(event, (p) => got.push(p));
  return got;
}

describe('key directory', () => {
  let srv; // fetch limit off (concurrency, limits)
  let lim; // default fetch limit (10 at once, then 10 per 200 s)

  before(async () => {
    assert.ok(DB_URL, 'no test database URL');
    await waitForDatabase();
    srv = await startServer({ name: 'keys', env: { ...BASE_ENV, SB_RATELIMIT_KEYS_FETCH: 'off' } });
    lim = await startServer({ name: 'keys_limit', env: { ...BASE_ENV } });
  });
  after(async () => {
    if (srv) await srv.stop();
    if (lim) await lim.stop();
  });

  const put = (s, u, body) => api(s, 'PUT', '/keys', { token: u.token, body });
  const get = (s, u, p) => api(s, 'GET', p, { token: u.token });

  test('upload, count, fetch: the bundle with one one-time prekey each time', T, async () => {
    const [alice, bob] = await signupMany(srv, 2);
    assertError(await get(srv, bob, `/keys/${alice.id}`), 404, 'not_found'); // no keys yet
    assert.deepEqual((await get(srv, alice, '/keys/count')).json, { count: 0 });
    const b = bundle({ one_time_prekeys: otpks(100, 3), last_resort_prekey: signed(7) });
    const r = await put(srv, alice, b);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json, { count: 3 });
    assert.deepEqual((await get(srv, alice, '/keys/count')).json, { count: 3 });
    for (let i = 0; i < 3; i++) {
      const f = await get(srv, bob, `/keys/${alice.id}`);
      assert.equal(f.status, 200, f.text);
      assert.equal(f.json.identity_key, b.identity_key);
      assert.deepEqual(f.json.signed_prekey, b.signed_prekey);
      assert.deepEqual(f.json.one_time_prekey, b.one_time_prekeys[i]); // lowest id first
      assert.equal(f.json.last_resort_prekey, undefined); // only when no one-time key is left
    }
    const f = await get(srv, bob, `/keys/${alice.id}`);
    assert.equal(f.json.one_time_prekey, null);
    assert.deepEqual(f.json.last_resort_prekey, b.last_resort_prekey);
    assert.deepEqual((await get(srv, alice, '/keys/count')).json, { count: 0 });
    // same identity: a top-up adds keys and rotates the signed prekey, keeps the last-resort key
    const spk2 = signed(2);
    const r2 = await put(srv, alice, { identity_key: b.identity_key, signed_prekey: spk2, one_time_prekeys: otpks(200, 2) });
    assert.deepEqual(r2.json, { count: 2 });
    await get(srv, bob, `/keys/${alice.id}`);
    const g = await get(srv, bob, `/keys/${alice.id}`);
    assert.deepEqual(g.json.signed_prekey, spk2);
    assert.equal(g.json.one_time_prekey.id, 201);
    const g2 = await get(srv, bob, `/keys/${alice.id}`);
    assert.deepEqual(g2.json.last_resort_prekey, b.last_resort_prekey);
    // a new identity replaces the bundle: old one-time and last-resort keys are gone
    await put(srv, alice, { ...b, one_time_prekeys: otpks(300, 1) });
    const n = await put(srv, alice, bundle({ one_time_prekeys: otpks(400, 1) }));
    assert.deepEqual(n.json, { count: 1 });
    assert.equal((await get(srv, bob, `/keys/${alice.id}`)).json.one_time_prekey.id, 400);
    const none = await get(srv, bob, `/keys/${alice.id}`);
    assert.equal(none.json.one_time_prekey, null);
    assert.equal(none.json.last_resort_prekey, undefined);
  });

  test('100 concurrent fetches over 50 one-time prekeys: 50 distinct keys, then the last-resort key', T, async () => {
    const [owner, ...askers] = await signupMany(srv, 5);
    const keys = [...otpks(1000, 50)];
    const lr = signed(9);
    assert.equal((await put(srv, owner, bundle({ one_time_prekeys: keys, last_resort_prekey: lr }))).status, 200);
    const rs = await Promise.all(Array.from({ length: 100 }, (_, i) => get(srv, askers[i % askers.length], `/keys/${owner.id}`)));
    for (const r of rs) assert.equal(r.status, 200, r.text);
    const given = rs.filter((r) => r.json.one_time_prekey).map((r) => r.json.one_time_prekey);
    assert.equal(given.length, 50, 'each of the 50 keys handed out');
    assert.equal(new Set(given.map((k) => k.id)).size, 50, 'never a key twice');
    const byId = new Map(keys.map((k) => [k.id, k.public_key]));
    for (const k of given) assert.equal(byId.get(k.id), k.public_key);
    const rest = rs.filter((r) => !r.json.one_time_prekey);
    assert.equal(rest.length, 50);
    for (const r of rest) assert.deepEqual(r.json.last_resort_prekey, lr);
    assert.deepEqual((await get(srv, owner, '/keys/count')).json, { count: 0 });
  });

  test('fetches are limited per (requester, target): a burst of 10, then 429 with Retry-After', T, async () => {
    const [owner, other, asker, asker2] = await signupMany(lim, 4);
    await put(lim, owner, bundle({ one_time_prekeys: otpks(1, 20) }));
    await put(lim, other, bundle());
    for (let i = 0; i < 10; i++) assert.equal((await get(lim, asker, `/keys/${owner.id}`)).status, 200);
    const r = await get(lim, asker, `/keys/${owner.id}`);
    assertError(r, 429, 'rate_limited');
    assert.ok(Number(r.headers.get('retry-after')) >= 1);
    // other pairs are not affected; the refused fetch took no key
    assert.equal((await get(lim, asker, `/keys/${other.id}`)).status, 200);
    assert.equal((await get(lim, asker2, `/keys/${owner.id}`)).status, 200);
    assert.deepEqual((await get(lim, owner, '/keys/count')).json, { count: 9 });
  });

  test('prekeys_low reaches the owner once per crossing of SB_PREKEY_LOW (10)', T, async () => {
    const [owner, asker] = await signupMany(srv, 2);
    const sock = await connect(srv, owner);
    try {
      const { ch } = await join(sock, `user:${owner.id}`);
      const low = collect(ch, 'prekeys_low');
      await put(srv, owner, bundle({ one_time_prekeys: otpks(1, 12) }));
      const ib = (await get(srv, owner, '/keys/count')).json.count;
      assert.equal(ib, 12);
      await get(srv, asker, `/keys/${owner.id}`); // 11
      await get(srv, asker, `/keys/${owner.id}`); // 10: not below yet
      await sleep(300 * slow());
      assert.equal(low.length, 0);
      await get(srv, asker, `/keys/${owner.id}`); // 9: crossing
      await until(() => low.length === 1, 10000, 'prekeys_low');
      assert.deepEqual(low[0], { count: 9 });
      for (let i = 0; i < 5; i++) await get(srv, asker, `/keys/${owner.id}`); // 8..4: same crossing
      await sleep(500 * slow());
      assert.equal(low.length, 1, 'once per crossing');
      // refilled to the threshold or above, the next drop below it notifies again
      const top = await put(srv, owner, { identity_key: (await get(srv, asker, `/keys/${owner.id}`)).json.identity_key, signed_prekey: signed(1), one_time_prekeys: otpks(100, 10) });
      assert.deepEqual(top.json, { count: 13 });
      for (let i = 0; i < 4; i++) await get(srv, asker, `/keys/${owner.id}`); // 12..9
      await until(() => low.length === 2, 10000, 'second prekeys_low');
      assert.deepEqual(low[1], { count: 9 });
    } finally {
      sock.disconnect();
    }
  });

  test('a new identity key fires keys:changed to contacts (live and in sync), not to others', T, async () => {
    const [alice, bob, carol, dave] = await signupMany(srv, 4); // dave: a member who is offline
    const r = await api(srv, 'POST', '/conversations', { token: alice.token, body: { kind: 'group', title: 'g', member_ids: [bob.id, dave.id] } });
    assert.equal(r.status, 201, r.text);
    const sb = await connect(srv, bob);
    const sc = await connect(srv, carol);
    try {
      const bobCh = (await join(sb, `user:${bob.id}`)).ch;
      const carolCh = (await join(sc, `user:${carol.id}`)).ch;
      const gotB = collect(bobCh, 'keys:changed');
      const gotC = collect(carolCh, 'keys:changed');
      const b1 = bundle();
      await put(srv, alice, b1); // first upload: nothing changed
      await put(srv, alice, { ...b1, one_time_prekeys: otpks(5, 2) }); // same identity: nothing
      await put(srv, alice, bundle()); // new identity key
      await until(() => gotB.length === 1, 10000, 'keys:changed to bob');
      assert.equal(gotB[0].user_id, alice.id);
      assert.equal(typeof gotB[0].cursor, 'string');
      await sleep(300 * slow());
      assert.equal(gotB.length, 1);
      assert.equal(gotC.length, 0, 'carol shares no conversation with alice');
    } finally {
      sb.disconnect();
      sc.disconnect();
    }
  });

  test('keys:changed is durable: an offline contact reads it from GET /sync', T, async () => {
    const [alice, dave] = await signupMany(srv, 2);
    await api(srv, 'POST', '/conversations', { token: alice.token, body: { kind: 'direct', user_id: dave.id } });
    await put(srv, alice, bundle());
    const c0 = (await get(srv, dave, '/sync')).json.cursor;
    await put(srv, alice, bundle());
    let events = [];
    const deadline = Date.now() + 10000 * slow();
    while (!events.length && Date.now() < deadline) {
      const s = await get(srv, dave, `/sync?cursor=${encodeURIComponent(c0)}`);
      assert.equal(s.status, 200, s.text);
      events = s.json.events.filter((e) => e.type === 'keys:changed');
      if (!events.length) await sleep(50);
    }
    assert.equal(events.length, 1);
    assert.equal(events[0].user_id, alice.id);
  });

  test('bad uploads: 422 naming the field, nothing stored', T, async () => {
    const [u] = await signupMany(srv, 1);
    const bad = async (body, field) => {
      const r = await put(srv, u, body);
      assertError(r, 422, 'validation_failed');
      assert.ok(field in r.json.error.details, `${field} in ${r.text}`);
    };
    await bad({ signed_prekey: signed(1) }, 'identity_key');
    await bad({ identity_key: 'not base64!', signed_prekey: signed(1) }, 'identity_key');
    await bad({ identity_key: 'abc=d', signed_prekey: signed(1) }, 'identity_key');
    await bad({ identity_key: '', signed_prekey: signed(1) }, 'identity_key');
    await bad({ identity_key: 12, signed_prekey: signed(1) }, 'identity_key');
    await bad({ identity_key: b64(2049), signed_prekey: signed(1) }, 'identity_key');
    await bad({ identity_key: b64() }, 'signed_prekey');
    await bad({ identity_key: b64(), signed_prekey: { id: -1, public_key: b64(), signature: b64() } }, 'signed_prekey');
    await bad({ identity_key: b64(), signed_prekey: { id: 1, public_key: b64() } }, 'signed_prekey');
    await bad({ identity_key: b64(), signed_prekey: { id: 1, public_key: b64(), signature: b64(257) } }, 'signed_prekey');
    await bad({ ...bundle(), one_time_prekeys: 'x' }, 'one_time_prekeys');
    await bad({ ...bundle(), one_time_prekeys: [{ id: 1 }] }, 'one_time_prekeys');
    await bad({ ...bundle(), one_time_prekeys: [{ id: 1.5, public_key: b64() }] }, 'one_time_prekeys');
    await bad({ ...bundle(), one_time_prekeys: [{ id: 1, public_key: b64() }, { id: 1, public_key: b64() }] }, 'one_time_prekeys');
    await bad({ ...bundle(), one_time_prekeys: otpks(1, 101) }, 'one_time_prekeys');
    await bad({ ...bundle(), last_resort_prekey: { id: 1, public_key: 'x' } }, 'last_resort_prekey');
    assertError(await api(srv, 'PUT', '/keys', { token: u.token, raw: 'nope', headers: { 'content-type': 'application/json' } }), 400, 'bad_request');
    assertError(await api(srv, 'PUT', '/keys', { body: bundle() }), 401, 'unauthorized');
    assertError(await get(srv, u, '/keys/count').then(() => api(srv, 'GET', '/keys/count')), 401, 'unauthorized');
    assert.deepEqual((await get(srv, u, '/keys/count')).json, { count: 0 });
    assertError(await get(srv, u, `/keys/${u.id}`), 404, 'not_found'); // nothing stored
    assertError(await get(srv, u, '/keys/abc'), 404, 'not_found');
    assertError(await get(srv, u, '/keys/99999999999'), 404, 'not_found');
  });

  test('at most 1,000 one-time prekeys stored; stored ids unique', T, async () => {
    const [u] = await signupMany(srv, 1);
    const ik = b64(33);
    for (let i = 0; i < 10; i++) {
      const r = await put(srv, u, { identity_key: ik, signed_prekey: signed(1), one_time_prekeys: otpks(1 + i * 100, 100) });
      assert.equal(r.status, 200, r.text);
    }
    assert.deepEqual((await get(srv, u, '/keys/count')).json, { count: 1000 });
    const over = await put(srv, u, { identity_key: ik, signed_prekey: signed(1), one_time_prekeys: otpks(5000, 1) });
    assertError(over, 422, 'validation_failed');
    assert.ok('one_time_prekeys' in over.json.error.details);
    const [v] = await signupMany(srv, 1);
    const ik2 = b64(33);
    await put(srv, v, { identity_key: ik2, signed_prekey: signed(1), one_time_prekeys: otpks(1, 3) });
    const dup = await put(srv, v, { identity_key: ik2, signed_prekey: signed(1), one_time_prekeys: otpks(3, 2) });
    assertError(dup, 422, 'validation_failed');
    assert.deepEqual((await get(srv, v, '/keys/count')).json, { count: 3 }, 'nothing stored by the refused upload');
    assert.deepEqual((await get(srv, u, '/keys/count')).json, { count: 1000 });
  });
});

describe('key directory across two nodes', () => {
  let redis; let nodes;
  before(async () => {
    await waitForDatabase();
    redis = await startRedis();
    nodes = await startCluster(2, { redis, name: 'keys_cluster', env: { ...BASE_ENV } });
    await waitClusterUp(nodes);
  });
  after(async () => {
    if (nodes) await stopAll(nodes);
    if (redis) await redis.stop();
  });

  test('keys:changed and prekeys_low reach a user connected to the other node', T, async () => {
    const [a, b] = nodes;
    const [alice, bob] = await signupMany(a, 2);
    await api(a, 'POST', '/conversations', { token: alice.token, body: { kind: 'direct', user_id: bob.id } });
    const sb = await connect(b, bob);
    const sa = await connect(b, alice);
    try {
      const bobCh = (await join(sb, `user:${bob.id}`)).ch;
      const aliceCh = (await join(sa, `user:${alice.id}`)).ch;
      const changed = collect(bobCh, 'keys:changed');
      const low = collect(aliceCh, 'prekeys_low');
      await api(a, 'PUT', '/keys', { token: alice.token, body: bundle({ one_time_prekeys: otpks(1, 10) }) });
      await api(a, 'PUT', '/keys', { token: alice.token, body: bundle({ one_time_prekeys: otpks(1, 10) }) });
      await until(() => changed.length === 1, 15000, 'keys:changed on the other node');
      assert.equal(changed[0].user_id, alice.id);
      const f = await api(a, 'GET', `/keys/${alice.id}`, { token: bob.token }); // 9 left
      assert.equal(f.json.one_time_prekey.id, 1);
      await until(() => low.length === 1, 15000, 'prekeys_low on the other node');
      assert.deepEqual(low[0], { count: 9 });
    } finally {
      sb.disconnect();
      sa.disconnect();
    }
  });
});
