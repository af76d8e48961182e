'use strict';
// Push when FCM ends a connection with GOAWAY while requests are in flight
// (issue 14): each message's push reaches each device exactly once. A
// request whose stream id is above the GOAWAY's last-stream-id was not
// processed and is sent again; one at or below it may have been processed
// and is never sent again (libcurl 7.88 would replay it on a fresh
// connection: the server turns that replay off and decides itself). Also
// the graceful case (a connection capped at a number of streams: GOAWAY,
// the streams it covers answered, later ones refused). Against the fake in
// tests/e2e/lib/fake_fcm.js (HTTP/2 over TLS).

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { startServer, slow } = require('./lib/server');
const { metric, untilAsync, ptoken } = require('./lib/push_util');
const { BASE_ENV, api, signup, waitForDatabase, sleep } = require('./lib/api');
const { FakeFcm } = require('./lib/fake_fcm');

const F = slow();
const T = { timeout: 120000 * F };


// A group of `n` offline members with one device each, and its sender.
async function group(srv, n) {
  const sender = await signup(srv);
  const members = [];
  for (let i = 0; i < n; i++) {
    const u = await signup(srv);
    u.push = ptoken();
    const r = await api(srv, 'POST', '/devices', { token: u.token, body: { platform: 'android', push_token: u.push } });
    assert.equal(r.status, 201, r.text);
    members.push(u);
  }
  const g = await api(srv, 'POST', '/conversations', { token: sender.token, body: { kind: 'group', title: 'goaway', member_ids: members.map((u) => u.id) } });
  assert.ok(g.status === 200 || g.status === 201, g.text);
  return { sender, members, conv: g.json.conversation.id };
}
async function send(srv, u, conv) {
  const r = await api(srv, 'POST', `/conversations/${conv}/messages`, { token: u.token, body: { client_id: crypto.randomUUID(), kind: 'text', body: 'hello' } });
  assert.equal(r.status, 201, r.text);
  return r.json.message;
}
// (message, device) -> how many times the fake processed it
function deliveries(fake) {
  const m = new Map();
  for (const s of fake.sends) {
    const k = `${s.message.data && s.message.data.message_id} ${s.token}`;
    m.set(k, (m.get(k) || 0) + 1);
  }
  return m;
}
function assertExactlyOnce(fake, msgs, members) {
  const d = deliveries(fake);
  const missing = [];
  const twice = [];
  for (const m of msgs) {
    for (const u of members) {
      const c = d.get(`${m.id} ${u.push}`) || 0;
      if (c === 0) missing.push(`${m.id}/${u.push.slice(0, 10)}`);
      if (c > 1) twice.push(`${m.id}/${u.push.slice(0, 10)} x${c}`);
    }
  }
  assert.deepEqual(twice, [], `pushes delivered more than once: ${twice.length}`);
  assert.deepEqual(missing, [], `pushes never delivered: ${missing.length}`);
}

describe('push: FCM GOAWAY with requests in flight', () => {
  let fake;
  let srv;
  before(async () => {
    await waitForDatabase();
    fake = await FakeFcm.start();
    srv = await startServer({
      name: 'push-goaway',
      env: {
        ...BASE_ENV, SB_RATELIMIT_SEND: '100000/1', SB_FCM_CREDENTIALS: fake.keyFile, SB_FCM_ENDPOINT: fake.url,
        SB_FCM_CA_FILE: fake.caFile, SB_FCM_RETRY_BASE_MS: '200', SB_FCM_TIMEOUT_MS: String(20000 * F),
        SB_FCM_ALERT_INTERVAL_MS: '0', SB_METRICS_OPEN: '1',
      },
    });
  });
  after(async () => {
    if (srv) await srv.stop();
    if (fake) await fake.close();
  });

  test('GOAWAY mid-flight: processed requests are not sent again, unprocessed ones are, once', T, async () => {
    const { sender, members, conv } = await group(srv, 8);
    fake.sends = [];
    fake.requests = [];
    fake.hold();
    const msgs = [];
    for (let i = 0; i < 3; i++) msgs.push(await send(srv, sender, conv));
    const want = msgs.length * members.length; // 24 pushes, all held in flight
    const deadline = Date.now() + 30000 * F;
    while (fake.requests.length < want) {
      if (Date.now() > deadline) throw new Error(`only ${fake.requests.length}/${want} pushes reached the fake`);
      await sleep(50);
    }
    // half of each connection's held streams processed, the rest above the GOAWAY's last-stream-id
    const held = [...fake.heldBySession().values()].reduce((n, l) => n + l.length, 0);
    assert.equal(held, want);
    const cut = fake.cutConnections({ processed: Math.ceil(want / 2) });
    assert.ok(cut.processed > 0 && cut.unprocessed > 0, JSON.stringify(cut));
    fake.release(); // later pushes are answered at once
    await untilAsync(async () => deliveries(fake).size >= want, 30000, 'every push delivered');
    // room for a replay (libcurl's, or a retry) to arrive: none may
    await sleep(1500 * F);
    assertExactlyOnce(fake, msgs, members);
    assert.equal(await metric(srv, 'sb_push_results_total', 'result="unconfirmed"'), cut.processed,
      'the processed-but-unanswered pushes are counted, not resent');
    assert.ok(await metric(srv, 'sb_push_refused_total') >= cut.unprocessed);
    assert.deepEqual(fake.problems, []);
  });

  test('graceful GOAWAY every few streams: every push once', T, async () => {
    const { sender, members, conv } = await group(srv, 10);
    fake.sends = [];
    fake.requests = [];
    fake.maxStreamsPerSession = 7;
    try {
      const msgs = [];
      for (let i = 0; i < 6; i++) msgs.push(await send(srv, sender, conv));
      await untilAsync(async () => deliveries(fake).size >= msgs.length * members.length, 30000, 'every push delivered');
      await sleep(1000 * F);
      assertExactlyOnce(fake, msgs, members);
      assert.deepEqual(fake.problems, []);
    } finally {
      fake.maxStreamsPerSession = 0;
    }
  });
});
