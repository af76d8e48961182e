'use strict';
// Push (issue 14) as an operator and a killed app see it, against the fake
// token endpoint + FCM of tests/e2e/lib/fake_fcm.js:
// - /metrics (docs/operations.md): sb_push_oauth_fetches_total counts the
//   one access token fetched and cached; sb_push_results_total{result=
//   "malformed"} a malformed FCM answer; sb_push_retries_total a 503 retried
//   (then sent once); sb_push_oauth_failures_total a JWT the fake refuses;
// - call_cancel to every device of the callee when the call ends missed
//   (a short SB_CALL_RING_MS) and when the caller hangs up before the answer;
// - pushes multiplexed over HTTP/2: 50 pushes in flight at once over at most
//   2 connections (the fake counts its sessions and open streams);
// - an http:// SB_FCM_ENDPOINT (cleartext HTTP/2, the path docs/push.md
//   documents for tests; every other suite's fake speaks TLS) delivers.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { startServer, slow } = require('./lib/server');
const { metric, ptoken } = require('./lib/push_util');
const { BASE_ENV, api, signup, signupMany, waitForDatabase, until, sleep } = require('./lib/api');
const { Device, signin, startCall } = require('./lib/calls');
const { FakeFcm } = require('./lib/fake_fcm');

const F = slow();
const T = { timeout: 120000 * F };
const RING_MS = 3000 * F;

const pushEnv = (fake, extra = {}) => ({
  ...BASE_ENV,
  SB_RATELIMIT_SEND: '100000/1',
  SB_FCM_CREDENTIALS: fake.keyFile,
  SB_FCM_ENDPOINT: fake.url,
  SB_FCM_CA_FILE: fake.url.startsWith('https:') ? fake.caFile : undefined,
  SB_FCM_RETRY_BASE_MS: '200',
  SB_FCM_TIMEOUT_MS: String(5000 * F),
  SB_CALL_RING_MS: String(RING_MS),
  SB_CALL_TICK_MS: '100',
  SB_METRICS_OPEN: '1', // /metrics on the admin port without a token
  ...extra,
});

/** One series of the node's /metrics (admin listener); 0 when absent. */
async function metricUntil(srv, name, labels, pred, what) {
  const deadline = Date.now() + 15000 * F;
  for (;;) {
    const v = await metric(srv, name, labels);
    if (pred(v)) return v;
    if (Date.now() > deadline) throw new Error(`timeout waiting for ${what} (${name}{${labels}} = ${v})`);
    await sleep(50);
  }
}

const cid = () => crypto.randomUUID();
async function addDevice(srv, user, platform = 'android') {
  const token = ptoken();
  const r = await api(srv, 'POST', '/devices', { token: user.token, body: { platform, push_token: token } });
  assert.equal(r.status, 201, r.text);
  return token;
}
async function direct(srv, a, b) {
  const r = await api(srv, 'POST', '/conversations', { token: a.token, body: { kind: 'direct', user_id: b.id } });
  assert.ok(r.status === 200 || r.status === 201, r.text);
  return r.json.conversation.id;
}
async function send(srv, u, convId) {
  const r = await api(srv, 'POST', `/conversations/${convId}/messages`, { token: u.token, body: { client_id: cid(), kind: 'text', body: 'hi' } });
  assert.equal(r.status, 201, r.text);
  return r.json.message;
}
const cancels = (fake, t) => fake.sendsTo(t).filter((s) => s.message.data.type === 'call_cancel');

describe('push counters and call_cancel', () => {
  let fake;
  let srv;
  const open = [];

  before(async () => {
    await waitForDatabase();
    fake = await FakeFcm.start();
    srv = await startServer({ name: 'push_metrics', env: pushEnv(fake) });
  });
  after(async () => {
    for (const d of open) d.close();
    if (srv) await srv.stop();
    if (fake) await fake.close();
  });

  test('OAuth fetch, malformed answer and 503 retry counted on /metrics', T, async () => {
    assert.equal(await metric(srv, 'sb_push_oauth_fetches_total'), 0, 'no token fetched before the first push');
    const a = await signup(srv);
    const b = await signup(srv);
    const ok = await addDevice(srv, b);
    const conv = await direct(srv, a, b);
    await send(srv, a, conv);
    await until(() => fake.sendsTo(ok).length === 1, 15000, 'the first push');
    assert.equal(await metricUntil(srv, 'sb_push_results_total', 'result="sent"', (v) => v >= 1, 'sent counted'), 1);
    assert.equal(await metric(srv, 'sb_push_oauth_fetches_total'), 1, 'one access token fetched');
    assert.equal(await metric(srv, 'sb_push_oauth_failures_total'), 0);
    assert.equal(fake.tokenRequests.filter((t) => t.ok).length, 1);

    // a malformed FCM answer: counted as malformed, nothing else
    const c = await signup(srv);
    const bad = await addDevice(srv, c);
    fake.script(bad, [{ status: 200, body: '<html>not fcm</html>' }]);
    const mal0 = await metric(srv, 'sb_push_results_total', 'result="malformed"');
    const sent0 = await metric(srv, 'sb_push_results_total', 'result="sent"');
    await send(srv, a, await direct(srv, a, c));
    await metricUntil(srv, 'sb_push_results_total', 'result="malformed"', (v) => v === mal0 + 1, 'malformed counted');
    assert.equal(fake.requestsTo(bad).length, 1, 'not retried');
    assert.equal(await metric(srv, 'sb_push_results_total', 'result="sent"'), sent0, 'a malformed answer is not counted sent');

    // 503 then success: one retry, sent once
    const d = await signup(srv);
    const flaky = await addDevice(srv, d);
    fake.script(flaky, [{ status: 503 }]);
    const r0 = await metric(srv, 'sb_push_retries_total');
    const s0 = await metric(srv, 'sb_push_results_total', 'result="sent"');
    await send(srv, a, await direct(srv, a, d));
    await until(() => fake.sendsTo(flaky).length === 1, 15000, 'delivered after the retry');
    await metricUntil(srv, 'sb_push_results_total', 'result="sent"', (v) => v === s0 + 1, 'the retried push counted sent');
    assert.equal(await metric(srv, 'sb_push_retries_total'), r0 + 1, 'one retry counted');
    assert.equal(fake.requestsTo(flaky).length, 2);
    assert.equal(await metric(srv, 'sb_push_oauth_fetches_total'), 1, 'the cached access token served every push');
    assert.deepEqual(fake.problems, []);
  });

  test('a call that ends missed sends call_cancel (missed) to every device of the callee', T, async () => {
    const a = await signup(srv, { display_name: 'Ringer' });
    const b = await signup(srv);
    const t1 = await addDevice(srv, b);
    const t2 = await addDevice(srv, await signin(srv, b), 'ios');
    const { call } = await startCall(srv, a, { user_id: b.id, media: 'audio' });
    await until(() => [t1, t2].every((t) => fake.sendsTo(t).some((s) => s.message.data.type === 'call')), 15000, 'call pushes');
    const rang = Date.now();
    await until(() => [t1, t2].every((t) => cancels(fake, t).length === 1), RING_MS + 15000, 'call_cancel on both devices');
    for (const t of [t1, t2]) {
      const c = cancels(fake, t)[0];
      assert.equal(c.message.data.call_id, String(call.id));
      assert.equal(c.message.data.reason, 'missed');
      assert.equal(c.message.android.priority, 'high');
      assert.ok(c.at - rang >= RING_MS - 1500, `cancelled after the ring time (${c.at - rang} ms)`);
    }
    const act = await api(srv, 'GET', '/calls', { token: a.token });
    assert.equal(act.json.items[0].end_reason, 'missed');
  });

  test('the caller hanging up before the answer sends call_cancel (hangup) to every device of the callee', T, async () => {
    const a = await signup(srv);
    const b = await signup(srv);
    const t1 = await addDevice(srv, b);
    const t2 = await addDevice(srv, await signin(srv, b), 'ios');
    const da = await Device.open(srv, a);
    open.push(da);
    const { call } = await startCall(srv, a, { user_id: b.id, media: 'video' });
    await until(() => [t1, t2].every((t) => fake.sendsTo(t).some((s) => s.message.data.type === 'call')), 15000, 'call pushes');
    await da.joinCall(call.id);
    const r = await da.push(call.id, 'hangup');
    assert.equal(r.status, 'ok', JSON.stringify(r.response));
    assert.equal(r.response.call.end_reason, 'hangup');
    await until(() => [t1, t2].every((t) => cancels(fake, t).length === 1), 15000, 'call_cancel on both devices');
    for (const t of [t1, t2]) {
      const c = cancels(fake, t)[0];
      assert.equal(c.message.data.call_id, String(call.id));
      assert.equal(c.message.data.reason, 'hangup');
      assert.ok(c.at - fake.sendsTo(t).find((s) => s.message.data.type === 'call').at < RING_MS, 'at the hangup, not at the ring timeout');
    }
  });
});

describe('push over HTTP/2 multiplexing, a refused JWT, an http:// endpoint', () => {
  before(waitForDatabase);

  test('50 pushes in flight at once share at most 2 HTTP/2 connections', T, async () => {
    const fake = await FakeFcm.start();
    const srv = await startServer({ name: 'push_metrics_mux', env: pushEnv(fake) });
    try {
      const [a, ...rest] = await signupMany(srv, 51);
      const tokens = [];
      for (const u of rest) tokens.push(await addDevice(srv, u));
      const g = await api(srv, 'POST', '/conversations', { token: a.token, body: { kind: 'group', title: 'fifty', member_ids: rest.map((u) => u.id) } });
      assert.equal(g.status, 201, g.text);
      // FCM answers each push after 1 s: the 50 are in flight together unless
      // the server sends them one connection-request at a time
      fake.defaultReply = { delayMs: 1000 };
      const t0 = Date.now();
      await send(srv, a, g.json.conversation.id);
      await until(() => tokens.every((t) => fake.sendsTo(t).length === 1), 30000, 'all 50 pushes');
      const ms = Date.now() - t0;
      assert.ok(fake.sessions >= 1 && fake.sessions <= 2, `HTTP/2 sessions: ${fake.sessions}`);
      assert.ok(fake.maxStreams >= 10, `pushes multiplexed (most streams open at once: ${fake.maxStreams})`);
      assert.ok(ms < 15000 * F, `50 pushes of 1 s each took ${ms} ms (serialised would be 25 s over 2 connections)`);
      assert.equal(await metric(srv, 'sb_push_results_total', 'result="sent"'), 50);
      assert.deepEqual(fake.problems, []);
    } finally {
      await srv.stop();
      await fake.close();
    }
  });

  test('the fake refusing the JWT: sb_push_oauth_failures_total rises, no token fetched, nothing sent', T, async () => {
    const fake = await FakeFcm.start({ wrongKey: true });
    const srv = await startServer({ name: 'push_metrics_badjwt', env: pushEnv(fake) });
    try {
      assert.equal(await metric(srv, 'sb_push_oauth_failures_total'), 0);
      const a = await signup(srv);
      const b = await signup(srv);
      await addDevice(srv, b);
      await send(srv, a, await direct(srv, a, b));
      await metricUntil(srv, 'sb_push_oauth_failures_total', '', (v) => v >= 1, 'an OAuth failure counted');
      assert.equal(await metric(srv, 'sb_push_oauth_fetches_total'), 0, 'no access token obtained');
      assert.ok(fake.tokenRequests.length >= 1 && fake.tokenRequests.every((t) => !t.ok));
      assert.equal(fake.sends.length, 0);
      assert.ok(srv.alive());
    } finally {
      await srv.stop();
      await fake.close();
    }
  });

  test('an http:// SB_FCM_ENDPOINT (cleartext HTTP/2) delivers, token endpoint included', T, async () => {
    const fake = await FakeFcm.start({ cleartext: true });
    assert.match(fake.url, /^http:\/\//);
    const srv = await startServer({ name: 'push_metrics_h2c', env: pushEnv(fake) });
    try {
      const a = await signup(srv);
      const b = await signup(srv);
      const t = await addDevice(srv, b);
      const conv = await direct(srv, a, b);
      // one after another, and then several at once
      for (let i = 1; i <= 3; i++) {
        await send(srv, a, conv);
        await until(() => fake.sendsTo(t).length === i, 15000, `push ${i} over h2c`);
      }
      const more = await Promise.all([1, 2, 3].map(async () => {
        const u = await signup(srv);
        const tu = await addDevice(srv, u);
        await send(srv, a, await direct(srv, a, u));
        return tu;
      }));
      await until(() => more.every((x) => fake.sendsTo(x).length === 1), 15000, 'concurrent pushes over h2c');
      assert.equal(fake.tokenRequests.filter((x) => x.ok).length, 1, 'the token fetched over http:// too');
      assert.ok(fake.requests.every((r) => r.status === 200), JSON.stringify(fake.requests));
      assert.deepEqual(fake.problems, []);
    } finally {
      await srv.stop();
      await fake.close();
    }
  });
});
