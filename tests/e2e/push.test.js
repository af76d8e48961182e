'use strict';
// Push through FCM HTTP v1 on one node (issue 14), against the fake token
// endpoint + FCM in tests/e2e/lib/fake_fcm.js (HTTP/2 cleartext, RS256 JWT
// checked with the key's public half). Who gets what (offline, muted,
// ciphertext, the sender's own devices, the alert throttle and coalescing of
// bursts, the 4 KB cut),
// calls and call_cancel, FCM's answers (dead tokens, re-registration, 400,
// 403, 503, 429 + Retry-After, malformed), the OAuth token's expiry and
// 401, a refused JWT, a hanging FCM delaying nothing, the bounded queue
// (oldest message pushes dropped first, call pushes kept), bad key files.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { startServer, slow, binPath } = require('./lib/server');
const { metric, untilAsync, ptoken } = require('./lib/push_util');
const { BASE_ENV, api, signup, waitForDatabase, sql, until, sleep } = require('./lib/api');
const { Device, signin, startCall, hangUp } = require('./lib/calls');
const { FakeFcm } = require('./lib/fake_fcm');

const F = slow();
const T = { timeout: 90000 * F };
const RING_MS = 20000;

const pushEnv = (fake, extra = {}) => ({
  ...BASE_ENV,
  SB_RATELIMIT_SEND: '100000/1',
  SB_FCM_CREDENTIALS: fake.keyFile,
  SB_FCM_ENDPOINT: fake.url,
  SB_FCM_CA_FILE: fake.caFile,
  SB_FCM_RETRY_BASE_MS: '200',
  SB_FCM_TIMEOUT_MS: String(3000 * F),
  SB_FCM_ALERT_INTERVAL_MS: '3000',
  SB_CALL_RING_MS: String(RING_MS),
  SB_CALL_TICK_MS: '100',
  SB_METRICS_OPEN: '1', // /metrics on the admin port without a token: push's counters are read there
  ...extra,
});



const cid = () => crypto.randomUUID();

async function addDevice(srv, user, token = ptoken(), platform = 'android') {
  const r = await api(srv, 'POST', '/devices', { token: user.token, body: { platform, push_token: token } });
  assert.equal(r.status, 201, r.text);
  return { token, id: r.json.device.id };
}
async function direct(srv, a, b) {
  const r = await api(srv, 'POST', '/conversations', { token: a.token, body: { kind: 'direct', user_id: b.id } });
  assert.ok(r.status === 200 || r.status === 201, r.text);
  return r.json.conversation;
}
async function send(srv, u, convId, extra = {}) {
  const r = await api(srv, 'POST', `/conversations/${convId}/messages`, { token: u.token, body: { client_id: cid(), kind: 'text', body: 'hello', ...extra } });
  assert.equal(r.status, 201, r.text);
  return r.json.message;
}
const deviceCount = (token) => Number(sql(`SELECT count(*) FROM devices WHERE push_token = '${token}'`));
// nothing more arrives for `ms` (a quiet period after the awaited push)
const quiet = (ms = 800 * F) => sleep(ms);

describe('push on one node', () => {
  let fake;
  let srv;
  const open = [];

  before(async () => {
    await waitForDatabase();
    fake = await FakeFcm.start();
    srv = await startServer({ name: 'push', env: pushEnv(fake) });
  });
  after(async () => {
    for (const d of open) d.close();
    if (srv) await srv.stop();
    if (fake) await fake.close();
  });

  test('an offline recipient gets exactly one push per message on each of two devices; the sender\'s other device gets none', T, async () => {
    const a = await signup(srv, { display_name: 'Alice Sender' });
    const b = await signup(srv);
    const [b1, b2] = [await addDevice(srv, b), await addDevice(srv, await signin(srv, b), ptoken(), 'ios')];
    const a2 = await addDevice(srv, await signin(srv, a));
    const conv = await direct(srv, a, b);
    const m = await send(srv, a, conv.id, { body: 'hello there' });
    await until(() => fake.sendsTo(b1.token).length === 1 && fake.sendsTo(b2.token).length === 1, 15000, 'a push on each device');
    await quiet();
    for (const d of [b1, b2]) {
      const s = fake.sendsTo(d.token);
      assert.equal(s.length, 1, 'exactly one push per device');
      const msg = s[0].message;
      assert.equal(msg.notification.title, 'Alice Sender');
      assert.equal(msg.notification.body, 'hello there');
      assert.deepEqual(
        { type: msg.data.type, conversation_id: msg.data.conversation_id, message_id: msg.data.message_id, seq: msg.data.seq },
        { type: 'message', conversation_id: conv.id, message_id: m.id, seq: String(m.seq) },
      );
      assert.equal(msg.android.collapse_key, `conversation:${conv.id}`);
      assert.equal(msg.apns.headers['apns-collapse-id'], `conversation:${conv.id}`);
      assert.equal(msg.data.alert, '1');
    }
    assert.equal(fake.requestsTo(a2.token).length, 0, 'the sender\'s own device gets no push');
    assert.deepEqual(fake.problems, []);
    assert.ok(fake.tokenRequests.some((t) => t.ok), 'an access token was fetched with a valid JWT');
  });

  test('an online recipient (socket on this node) gets none', T, async () => {
    const a = await signup(srv);
    const b = await signup(srv);
    const d = await addDevice(srv, b);
    const dev = await Device.open(srv, b);
    open.push(dev);
    const conv = await direct(srv, a, b);
    await send(srv, a, conv.id);
    // a message to an offline user right after shows the pipeline ran
    const c = await signup(srv);
    const dc = await addDevice(srv, c);
    await send(srv, a, (await direct(srv, a, c)).id);
    await until(() => fake.sendsTo(dc.token).length === 1, 15000, 'the offline user\'s push');
    await quiet();
    assert.equal(fake.requestsTo(d.token).length, 0);
  });

  test('muted: a silent data-only push; ciphertext: an alert without preview; the alert throttle; the 4 KB cut', T, async () => {
    const a = await signup(srv, { display_name: 'Muter' });
    const b = await signup(srv);
    const d = await addDevice(srv, b);
    const conv = await direct(srv, a, b);
    let r = await api(srv, 'PUT', `/conversations/${conv.id}/me`, { token: b.token, body: { muted_until: new Date(Date.now() + 3600e3).toISOString() } });
    assert.equal(r.status, 200, r.text);
    await send(srv, a, conv.id, { body: 'secret words' });
    await until(() => fake.sendsTo(d.token).length === 1, 15000, 'the muted push');
    let msg = fake.sendsTo(d.token)[0].message;
    assert.equal(msg.notification, undefined, 'no alert');
    assert.equal(msg.data.muted, '1');
    assert.ok(!JSON.stringify(msg).includes('secret words'), 'no preview');
    assert.equal(msg.apns.payload.aps['content-available'], 1);
    r = await api(srv, 'PUT', `/conversations/${conv.id}/me`, { token: b.token, body: { muted_until: null } });
    assert.equal(r.status, 200, r.text);

    // ciphertext (the throttle is per conversation: a fresh one)
    const c = await signup(srv);
    const dc = await addDevice(srv, c);
    const conv2 = await direct(srv, a, c);
    await send(srv, a, conv2.id, { kind: 'ciphertext', body: 'QUJDREVGR0g=' });
    await until(() => fake.sendsTo(dc.token).length === 1, 15000, 'the ciphertext push');
    msg = fake.sendsTo(dc.token)[0].message;
    assert.equal(msg.notification.title, 'Muter');
    assert.equal(msg.notification.body, undefined, 'no preview of ciphertext');
    assert.ok(!JSON.stringify(msg).includes('QUJDREVGR0g='));

    // a second message within the interval updates the collapsed notification silently
    await send(srv, a, conv2.id, { body: 'second' });
    await until(() => fake.sendsTo(dc.token).length === 2, 15000, 'the second push');
    msg = fake.sendsTo(dc.token)[1].message;
    assert.equal(msg.data.alert, '0');
    assert.equal(msg.android.collapse_key, `conversation:${conv2.id}`);
    assert.equal(msg.notification.body, 'second');
    assert.equal(msg.apns.payload.aps.sound, undefined);

    // a long preview is cut to fit 4 KB, never inside a UTF-8 character
    const e = await signup(srv);
    const de = await addDevice(srv, e);
    const long = 'é€'.repeat(2000);
    await send(srv, a, (await direct(srv, a, e)).id, { body: long });
    await until(() => fake.sendsTo(de.token).length === 1, 15000, 'the long push');
    const body = fake.sendsTo(de.token)[0].message.notification.body;
    assert.ok(body.length > 100 && long.startsWith(body), 'a prefix of the text');
    assert.ok(!body.includes('\uFFFD'));
    assert.deepEqual(fake.problems, [], 'within 4 KB');
  });

  test('coalescing: a burst costs a device one alerting push now and one silent push with the newest message when the interval ends; a recipient online by then gets none', T, async () => {
    const INTERVAL = 3000; // SB_FCM_ALERT_INTERVAL_MS above
    const a = await signup(srv, { display_name: 'Burster' });
    const b = await signup(srv);
    const d = await addDevice(srv, b);
    const conv = await direct(srv, a, b);
    const coalesced0 = await metric(srv, 'sb_push_results_total', 'result="coalesced"');
    const online0 = await metric(srv, 'sb_push_results_total', 'result="online"');
    const m1 = await send(srv, a, conv.id, { body: 'one' });
    await until(() => fake.sendsTo(d.token).length === 1, 15000, 'the first push at once');
    const first = fake.sendsTo(d.token)[0];
    assert.equal(first.message.data.message_id, m1.id);
    assert.equal(first.message.data.alert, '1');
    const burst = [];
    for (const body of ['two', 'three', 'four']) burst.push(await send(srv, a, conv.id, { body }));
    const last = burst[burst.length - 1];
    await until(() => fake.sendsTo(d.token).length === 2, 15000, 'the held push when the interval ends');
    const second = fake.sendsTo(d.token)[1];
    assert.deepEqual(
      { id: second.message.data.message_id, seq: second.message.data.seq, alert: second.message.data.alert, body: second.message.notification.body },
      { id: last.id, seq: String(last.seq), alert: '0', body: 'four' }, 'the newest message, silently');
    assert.equal(second.message.android.collapse_key, `conversation:${conv.id}`);
    const gap = fake.requestsTo(d.token)[1].at - fake.requestsTo(d.token)[0].at;
    assert.ok(gap >= INTERVAL - 300, `held until the interval ended (${gap} ms after the first)`);
    assert.equal(await metric(srv, 'sb_push_results_total', 'result="coalesced"'), coalesced0 + 2, '"two" and "three" replaced');
    // the window the held push opened ends empty: the next message alerts at once
    await sleep(INTERVAL + 500 * F);
    assert.equal(fake.sendsTo(d.token).length, 2, 'nothing more after the burst');
    const m5 = await send(srv, a, conv.id, { body: 'five' });
    await until(() => fake.sendsTo(d.token).length === 3, 15000, 'a quiet conversation alerts again at once');
    assert.equal(fake.sendsTo(d.token)[2].message.data.message_id, m5.id);
    assert.equal(fake.sendsTo(d.token)[2].message.data.alert, '1');
    // held while b comes online: not sent when the interval ends
    await send(srv, a, conv.id, { body: 'six' });
    const dev = await Device.open(srv, b);
    open.push(dev);
    await untilAsync(async () => (await metric(srv, 'sb_push_results_total', 'result="online"')) === online0 + 1, 15000, 'the held push skipped');
    await quiet();
    assert.equal(fake.sendsTo(d.token).length, 3, 'no push to a recipient who came online');
    assert.equal(await metric(srv, 'sb_push_held'), 0);
    assert.deepEqual(fake.problems, []);
  });

  test('a call pushes high priority to two devices, and call_cancel to both when one answers', T, async () => {
    const a = await signup(srv, { display_name: 'Caller' });
    const b = await signup(srv);
    const b2u = await signin(srv, b);
    const [t1, t2] = [await addDevice(srv, b), await addDevice(srv, b2u, ptoken(), 'ios')];
    const da = await Device.open(srv, a);
    const db1 = await Device.open(srv, b);
    open.push(da, db1);
    const { call } = await startCall(srv, a, { user_id: b.id, media: 'video' });
    await until(() => fake.sendsTo(t1.token).length >= 1 && fake.sendsTo(t2.token).length >= 1, 15000, 'call pushes');
    for (const t of [t1, t2]) {
      const msg = fake.sendsTo(t.token)[0].message;
      assert.deepEqual(
        { type: msg.data.type, call_id: msg.data.call_id, caller: msg.data.caller, media: msg.data.media },
        { type: 'call', call_id: String(call.id), caller: a.id, media: 'video' },
      );
      assert.equal(msg.data.caller_name, 'Caller');
      assert.equal(msg.android.priority, 'high');
      assert.equal(msg.android.ttl, `${RING_MS / 1000}s`);
      assert.equal(msg.apns.headers['apns-priority'], '10');
      assert.equal(msg.notification, undefined, 'a data message');
    }
    await db1.joinCall(call.id);
    const r = await db1.push(call.id, 'accept');
    assert.equal(r.status, 'ok', JSON.stringify(r.response));
    await until(() => [t1, t2].every((t) => fake.sendsTo(t.token).some((s) => s.message.data.type === 'call_cancel')), 15000, 'call_cancel on both');
    for (const t of [t1, t2]) {
      const c = fake.sendsTo(t.token).find((s) => s.message.data.type === 'call_cancel').message;
      assert.equal(c.data.call_id, String(call.id));
      assert.equal(c.data.reason, 'answered_elsewhere');
      assert.equal(c.android.priority, 'high');
    }
    assert.deepEqual(fake.problems, []);
  });

  test('a declined call cancels the callee\'s devices', T, async () => {
    const a = await signup(srv);
    const b = await signup(srv);
    const t1 = await addDevice(srv, b);
    const db1 = await Device.open(srv, b);
    open.push(db1);
    const { call } = await startCall(srv, a, { user_id: b.id, media: 'audio' });
    await until(() => fake.sendsTo(t1.token).length === 1, 15000, 'call push');
    await db1.joinCall(call.id);
    const r = await db1.push(call.id, 'decline');
    assert.equal(r.status, 'ok', JSON.stringify(r.response));
    await until(() => fake.sendsTo(t1.token).some((s) => s.message.data.type === 'call_cancel'), 15000, 'call_cancel');
    const c = fake.sendsTo(t1.token).find((s) => s.message.data.type === 'call_cancel').message;
    assert.equal(c.data.reason, 'declined');
  });

  test('a block ends a ringing call like any other end: the callee\'s devices get call_cancel', T, async () => {
    const a = await signup(srv);
    const b = await signup(srv);
    const t1 = await addDevice(srv, b);
    const { call } = await startCall(srv, a, { user_id: b.id, media: 'audio' });
    await until(() => fake.sendsTo(t1.token).length === 1, 15000, 'call push');
    // the caller blocks the callee while it rings: the callee's phone stops ringing
    const r = await api(srv, 'POST', '/blocks', { token: a.token, body: { user_id: b.id } });
    assert.equal(r.status, 201, r.text);
    await until(() => fake.sendsTo(t1.token).some((s) => s.message.data.type === 'call_cancel'), 15000, 'call_cancel');
    const c = fake.sendsTo(t1.token).find((s) => s.message.data.type === 'call_cancel').message;
    assert.equal(c.data.call_id, call.id);
    assert.equal(c.data.reason, 'hangup');
  });

  test('a dead token (404 UNREGISTERED, 400 naming the token) is deleted; another 400 and a 403 keep the device', T, async () => {
    const a = await signup(srv);
    const b = await signup(srv);
    const dead = await addDevice(srv, b);
    const invalid = await addDevice(srv, await signin(srv, b));
    const bad = await addDevice(srv, await signin(srv, b));
    const forbidden = await addDevice(srv, await signin(srv, b));
    fake.script(dead.token, [{ status: 404, errorCode: 'UNREGISTERED', message: 'Requested entity was not found.' }]);
    fake.script(invalid.token, [{ status: 400, errorCode: 'INVALID_ARGUMENT', message: 'The registration token is not a valid FCM registration token' }]);
    fake.script(bad.token, [{ status: 400, errorCode: 'INVALID_ARGUMENT', message: 'Invalid value at \'message.android.ttl\'' }]);
    fake.script(forbidden.token, [{ status: 403, errorCode: 'SENDER_ID_MISMATCH', message: 'SenderId mismatch' }]);
    await send(srv, a, (await direct(srv, a, b)).id);
    await until(() => deviceCount(dead.token) === 0 && deviceCount(invalid.token) === 0, 15000, 'dead devices deleted');
    await until(() => srv.logsMatching(/FCM forbids this sender/).length >= 1, 15000, 'the 403 log line');
    await until(() => srv.logsMatching(/FCM refused a push \(400\)/).length >= 1, 15000, 'the 400 log line');
    assert.equal(deviceCount(bad.token), 1);
    assert.equal(deviceCount(forbidden.token), 1);
    assert.equal(fake.requestsTo(bad.token).length, 1, 'a 400 is not retried');
    assert.equal(fake.requestsTo(forbidden.token).length, 1, 'a 403 is not retried');
    // the same outcomes on /metrics (counted since this server started: at least these)
    assert.ok(await metric(srv, 'sb_push_tokens_deleted_total') >= 2, 'tokens deleted counted');
    assert.ok(await metric(srv, 'sb_push_results_total', 'result="dead_token"') >= 2, 'dead tokens counted');
    assert.ok(await metric(srv, 'sb_push_results_total', 'result="forbidden"') >= 1, '403 counted');
    assert.ok(await metric(srv, 'sb_push_results_total', 'result="bad_request"') >= 1, 'other 400 counted');
    assert.ok(await metric(srv, 'sb_push_results_total', 'result="sent"') >= 1, 'sent pushes counted');
  });

  test('a token registered again while its push was in flight is not deleted', T, async () => {
    const a = await signup(srv);
    const b = await signup(srv);
    const d = await addDevice(srv, b);
    let release;
    const gate = new Promise((resolve) => { release = resolve; });
    fake.script(d.token, [{ status: 404, errorCode: 'UNREGISTERED', until: gate }]);
    await send(srv, a, (await direct(srv, a, b)).id);
    await until(() => fake.requestsTo(d.token).length === 1, 15000, 'the push in flight');
    await sleep(20);
    await addDevice(srv, b, d.token); // the app registered its token again
    release();
    await until(() => srv.logsMatching(/registered again after the send began/).length >= 1, 15000, 'the kept log line');
    assert.equal(deviceCount(d.token), 1);
  });

  test('503 then success: retried and delivered once; Retry-After (seconds and HTTP date) is honoured', T, async () => {
    const a = await signup(srv);
    const b = await signup(srv);
    const d503 = await addDevice(srv, b);
    const d429 = await addDevice(srv, await signin(srv, b));
    const dDate = await addDevice(srv, await signin(srv, b));
    fake.script(d503.token, [{ status: 503 }]);
    fake.script(d429.token, [{ status: 429, retryAfter: 2 }]);
    fake.script(dDate.token, [{ status: 503, retryAfter: new Date(Date.now() + 3000).toUTCString() }]);
    await send(srv, a, (await direct(srv, a, b)).id);
    await until(() => [d503, d429, dDate].every((d) => fake.sendsTo(d.token).length === 1), 20000, 'all delivered after retries');
    await quiet();
    for (const d of [d503, d429, dDate]) {
      assert.equal(fake.sendsTo(d.token).length, 1, 'delivered once');
      assert.equal(fake.requestsTo(d.token).length, 2, 'one retry');
    }
    const gap = (d) => { const r = fake.requestsTo(d.token); return r[1].at - r[0].at; };
    assert.ok(gap(d429) >= 1950, `Retry-After: 2 honoured (waited ${gap(d429)} ms)`);
    assert.ok(gap(dDate) >= 1000, `Retry-After as a date honoured (waited ${gap(dDate)} ms)`);
    assert.ok(gap(d503) < 1950, 'without Retry-After: the short backoff');
  });

  test('retries are bounded: a token answered 503 forever is given up', T, async () => {
    const a = await signup(srv);
    const b = await signup(srv);
    const d = await addDevice(srv, b);
    fake.script(d.token, Array.from({ length: 20 }, () => ({ status: 503 })));
    await send(srv, a, (await direct(srv, a, b)).id);
    await until(() => srv.logsMatching(/given up after retries/).length >= 1, 30000, 'given up');
    assert.equal(fake.requestsTo(d.token).length, 5, 'SB_FCM_MAX_TRIES tries');
    assert.equal(deviceCount(d.token), 1);
  });

  test('a malformed FCM answer is a counted failure, the device kept', T, async () => {
    const a = await signup(srv);
    const b = await signup(srv);
    const d = await addDevice(srv, b);
    fake.script(d.token, [{ status: 200, body: '<html>not fcm</html>' }]);
    const before = srv.logsMatching(/answer is malformed/).length;
    await send(srv, a, (await direct(srv, a, b)).id);
    await until(() => srv.logsMatching(/answer is malformed/).length > before, 15000, 'the malformed log line');
    assert.equal(deviceCount(d.token), 1);
  });

  test('FCM hanging delays no message: sends are acknowledged and delivered as fast as with push off', T, async () => {
    const a = await signup(srv);
    const b = await signup(srv);
    const c = await signup(srv);
    const d = await addDevice(srv, b);
    fake.defaultReply = { hang: true };
    try {
      const conv = await direct(srv, a, b);
      const convC = await direct(srv, a, c);
      const watcher = await Device.open(srv, c);
      open.push(watcher);
      const got = [];
      watcher.userCh.on('message:new', (p) => got.push({ id: p.message.id, at: Date.now() }));
      const timeSends = async (s, u, cv, n) => {
        const ms = [];
        for (let i = 0; i < n; i++) {
          const t0 = Date.now();
          // eslint-disable-next-line no-await-in-loop
          await send(s, u, cv);
          ms.push(Date.now() - t0);
        }
        return ms.sort((x, y) => x - y)[Math.floor(n / 2)];
      };
      // pushes to b hang at the fake (and pile up); sends and live delivery do not wait
      const onMedian = await timeSends(srv, a, conv.id, 20);
      await until(() => fake.requestsTo(d.token).length >= 1, 15000, 'pushes hanging at the fake');
      const t0 = Date.now();
      const m = await send(srv, a, convC.id);
      await until(() => got.some((g) => g.id === m.id), 5000, 'live delivery while FCM hangs');
      const liveMs = got.find((g) => g.id === m.id).at - t0;
      const off = await startServer({ name: 'push-off', env: { ...BASE_ENV, SB_RATELIMIT_SEND: '100000/1' } });
      let offMedian;
      try {
        const [oa, ob] = [await signup(off), await signup(off)];
        offMedian = await timeSends(off, oa, (await direct(off, oa, ob)).id, 20);
      } finally { await off.stop(); }
      assert.ok(onMedian <= offMedian * 2 + 30 * F, `ack median with FCM hanging ${onMedian} ms vs push off ${offMedian} ms`);
      assert.ok(liveMs < 1000 * F, `live delivery took ${liveMs} ms`);
    } finally {
      fake.defaultReply = null;
    }
  });
});

describe('push queue bound', () => {
  test('a full queue drops the oldest message pushes first and counts them; call pushes are never dropped for message pushes', T, async () => {
    await waitForDatabase();
    const fake = await FakeFcm.start();
    // one push in flight at a time, three waiting at most; a push not answered
    // is not timed out (and re-queued) while the queue is being filled
    const srv = await startServer({
      name: 'push-queue',
      // interval 0: every message its own push (this test is about the queue, not coalescing)
      env: pushEnv(fake, { SB_FCM_QUEUE_MAX: '3', SB_FCM_CONCURRENCY: '1', SB_FCM_TIMEOUT_MS: String(120000 * F), SB_FCM_ALERT_INTERVAL_MS: '0' }),
    });
    let release = () => {};
    try {
      const a = await signup(srv, { display_name: 'Queue Sender' });
      const b = await signup(srv);
      const d = await addDevice(srv, b);
      const conv = await direct(srv, a, b);
      const dropped = () => metric(srv, 'sb_push_results_total', 'result="dropped"');
      const queued = () => metric(srv, 'sb_push_queued');
      const base = await dropped();
      // the first push to b's device hangs at the fake until released
      fake.script(d.token, [{ until: new Promise((r) => { release = r; }) }]);
      const m = [await send(srv, a, conv.id, { body: 'm1' })];
      await until(() => fake.requestsTo(d.token).length === 1, 15000, 'the first push in flight');
      // three more wait in the queue (each awaited, so "oldest" is well defined)
      for (let i = 2; i <= 4; i++) {
        m.push(await send(srv, a, conv.id, { body: `m${i}` }));
        const want = i - 1;
        await untilAsync(async () => (await queued()) === want, 15000, `${want} pushes queued`);
      }
      assert.equal(await dropped(), base, 'nothing dropped below the bound');
      // a call invitation with the queue full: the oldest message push (m2) goes
      const { call } = await startCall(srv, a, { user_id: b.id, media: 'audio' });
      await untilAsync(async () => (await dropped()) === base + 1, 15000, 'm2 dropped for the call push');
      // three more messages: each drops the oldest message push left (m3, m4, m5), never the call's
      for (let i = 5; i <= 7; i++) {
        m.push(await send(srv, a, conv.id, { body: `m${i}` }));
        const want = base + i - 3;
        await untilAsync(async () => (await dropped()) === want, 15000, `${i - 3} message pushes dropped`);
        assert.equal(await queued(), 3, 'the queue stays at its bound');
      }
      assert.equal(fake.requestsTo(d.token).length, 1, 'still only the first push in flight');
      release();
      // the call push and the newest messages arrive; the dropped ones never do
      await until(() => fake.sendsTo(d.token).some((s) => s.message.data.type === 'call')
        && fake.sendsTo(d.token).filter((s) => s.message.data.type === 'message').length === 3, 30000, 'the queue drained');
      await quiet();
      const sent = fake.sendsTo(d.token);
      const msgIds = sent.filter((s) => s.message.data.type === 'message').map((s) => s.message.data.message_id);
      assert.deepEqual(msgIds.sort(), [m[0].id, m[5].id, m[6].id].sort(), 'm1 (in flight), m6, m7 delivered; m2..m5 dropped');
      const calls = sent.filter((s) => s.message.data.type === 'call');
      assert.equal(calls.length, 1);
      assert.equal(calls[0].message.data.call_id, call.id);
      assert.equal(calls[0].message.android.priority, 'high');
      assert.equal(await dropped(), base + 4, 'four message pushes dropped and counted');
      assert.equal(await queued(), 0);
      assert.deepEqual(fake.problems, []);
      await hangUp(srv, a, call.id);
    } finally {
      release();
      await srv.stop();
      await fake.close();
    }
  });
});

describe('push OAuth', () => {
  test('an expired access token is refreshed; a 401 fetches a new one and the push still arrives', T, async () => {
    await waitForDatabase();
    const fake = await FakeFcm.start({ tokenTtlS: 2 });
    // interval 0: each message pushed at once (no held push released after the token's expiry)
    const srv = await startServer({ name: 'push-oauth', env: pushEnv(fake, { SB_FCM_ALERT_INTERVAL_MS: '0' }) });
    try {
      const a = await signup(srv);
      const b = await signup(srv);
      const d = await addDevice(srv, b);
      const conv = await direct(srv, a, b);
      await send(srv, a, conv.id);
      await until(() => fake.sendsTo(d.token).length === 1, 15000, 'first push');
      await sleep(2500); // the 2 s token has expired
      await send(srv, a, conv.id);
      await until(() => fake.sendsTo(d.token).length === 2, 15000, 'second push');
      const s = fake.sendsTo(d.token);
      assert.notEqual(s[0].accessToken, s[1].accessToken, 'a fresh access token');
      assert.equal(fake.requestsTo(d.token).filter((r) => r.status === 401).length, 0, 'refreshed before it expired');
      // revoked early: FCM answers 401, the server fetches another and sends again
      fake.revokeTokens();
      const okBefore = fake.tokenRequests.filter((t) => t.ok).length;
      await send(srv, a, conv.id);
      await until(() => fake.sendsTo(d.token).length === 3, 15000, 'third push after a 401');
      assert.ok(fake.requestsTo(d.token).some((r) => r.status === 401));
      assert.ok(fake.tokenRequests.filter((t) => t.ok).length > okBefore);
      assert.deepEqual(fake.problems, []);
    } finally {
      await srv.stop();
      await fake.close();
    }
  });

  test('the token endpoint refusing the JWT: a clear error in the log with its counter, never a crash', T, async () => {
    await waitForDatabase();
    const fake = await FakeFcm.start({ wrongKey: true });
    const srv = await startServer({ name: 'push-badjwt', env: pushEnv(fake) });
    try {
      const a = await signup(srv);
      const b = await signup(srv);
      await addDevice(srv, b);
      const conv = await direct(srv, a, b);
      await send(srv, a, conv.id);
      await until(() => srv.logsMatching(/refused the service-account JWT/).length >= 1, 15000, 'the error line');
      const line = JSON.parse(srv.logsMatching(/refused the service-account JWT/)[0].raw);
      assert.equal(line.level, 'error');
      assert.equal(line.status, 400);
      assert.match(line.answer, /Invalid JWT Signature/);
      assert.equal(line.oauth_failures, 1);
      assert.equal(fake.tokenRequests[0].why, 'Invalid JWT Signature.');
      assert.equal(fake.sends.length, 0);
      await send(srv, a, conv.id); // sending still works
      assert.ok(srv.alive());
    } finally {
      await srv.stop();
      await fake.close();
    }
  });
});

describe('push bad input', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-badkey-'));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const run = (content) => {
    const f = path.join(dir, `k${crypto.randomBytes(4).toString('hex')}.json`);
    if (content !== null) fs.writeFileSync(f, content);
    return spawnSync(binPath(), ['serve'], {
      env: { ...process.env, ...BASE_ENV, SB_SECRET: 'x'.repeat(40), SB_PORT: '0', SB_ADMIN_PORT: '-1', SB_FCM_CREDENTIALS: f, SB_FCM_ENDPOINT: 'http://127.0.0.1:9' },
      encoding: 'utf8', timeout: 30000 * F,
    });
  };
  const good = () => {
    const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
    return { type: 'service_account', project_id: 'p', client_email: 'x@p.iam.gserviceaccount.com', private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }), token_uri: 'http://127.0.0.1:9/token' };
  };
  for (const [what, content, re] of [
    ['a missing file', null, /cannot open/],
    ['not JSON', '{"project_id": ', /not JSON/],
    ['no private_key', JSON.stringify({ ...good(), private_key: undefined }), /private_key/],
    ['a private_key that is not PEM', JSON.stringify({ ...good(), private_key: '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n' }), /not a PEM private key/],
    ['no token_uri', JSON.stringify({ ...good(), token_uri: undefined }), /token_uri/],
    ['an EC key', JSON.stringify({ ...good(), private_key: crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }) }), /RSA/],
  ]) {
    test(`a malformed key file (${what}) stops the start with a clear message`, T, () => {
      const r = run(content);
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, /SB_FCM_CREDENTIALS: /);
      assert.match(r.stderr, re);
    });
  }
});
