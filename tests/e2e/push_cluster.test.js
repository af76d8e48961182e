'use strict';
// Push across two nodes on one Redis (issue 14): "no live socket anywhere in
// the cluster" — a recipient online on the other node gets no push; once
// they go offline, the next message pushes. A call from one node pushes to
// the callee's devices once (not once per node).

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { BASE_ENV, api, signup, waitForDatabase, until, sleep } = require('./lib/api');
const { startRedis, startCluster, waitClusterUp, stopAll } = require('./lib/cluster');
const { slow } = require('./lib/server');
const { Device, startCall, hangUp } = require('./lib/calls');
const { FakeFcm } = require('./lib/fake_fcm');

const F = slow();
const T = { timeout: 90000 * F };

describe('push across nodes', () => {
  let redis;
  let fake;
  let nodes = [];

  before(async () => {
    await waitForDatabase();
    redis = await startRedis();
    fake = await FakeFcm.start();
    nodes = await startCluster(2, {
      redis,
      name: 'push_cluster',
      env: {
        ...BASE_ENV, SB_FCM_CREDENTIALS: fake.keyFile, SB_FCM_ENDPOINT: fake.url, SB_FCM_CA_FILE: fake.caFile,
        SB_RATELIMIT_SEND: '100000/1', SB_FCM_ALERT_INTERVAL_MS: '0',
      },
    });
    await waitClusterUp(nodes);
  });
  after(async () => {
    await stopAll(nodes);
    if (redis) await redis.stop();
    if (fake) await fake.close();
  });

  const addDevice = async (srv, u) => {
    const token = `fcm-${crypto.randomBytes(16).toString('hex')}`;
    const r = await api(srv, 'POST', '/devices', { token: u.token, body: { platform: 'android', push_token: token } });
    assert.equal(r.status, 201, r.text);
    return token;
  };
  const send = async (srv, u, conv, body) => {
    const r = await api(srv, 'POST', `/conversations/${conv}/messages`, { token: u.token, body: { client_id: crypto.randomUUID(), kind: 'text', body } });
    assert.equal(r.status, 201, r.text);
    return r.json.message;
  };

  test('online on the other node: no push; offline again: pushed', T, async () => {
    const [n1, n2] = nodes;
    const a = await signup(n1);
    const b = await signup(n2);
    const tok = await addDevice(n2, b);
    const c = await signup(n1);
    const tokC = await addDevice(n1, c);
    const conv = (await api(n1, 'POST', '/conversations', { token: a.token, body: { kind: 'direct', user_id: b.id } })).json.conversation;
    const convC = (await api(n1, 'POST', '/conversations', { token: a.token, body: { kind: 'direct', user_id: c.id } })).json.conversation;
    const db = await Device.open(n2, b); // b's socket lives on node 2; a sends on node 1
    let got = 0;
    db.userCh.on('message:new', () => { got += 1; });
    await send(n1, a, conv.id, 'while online');
    await until(() => got === 1, 10000, 'live delivery on node 2');
    await send(n1, a, convC.id, 'to offline c'); // shows node 1's pipeline ran
    await until(() => fake.sendsTo(tokC).length === 1, 15000, 'c\'s push');
    await sleep(500 * F);
    assert.equal(fake.requestsTo(tok).length, 0, 'online on another node: no push');

    db.close();
    // node 1 hears over Redis that b went offline: from then on, messages push
    const sent = [];
    const deadline = Date.now() + 15000 * F;
    while (fake.sendsTo(tok).length === 0 && Date.now() < deadline) {
      // eslint-disable-next-line no-await-in-loop
      sent.push((await send(n1, a, conv.id, 'now offline')).id);
      // eslint-disable-next-line no-await-in-loop
      await sleep(300);
    }
    await until(() => fake.sendsTo(tok).length >= 1, 5000, 'push after going offline');
    assert.ok(sent.includes(fake.sendsTo(tok)[0].message.data.message_id));
  });

  test('a call from node 1 pushes to the callee\'s devices once, not once per node', T, async () => {
    const [n1, n2] = nodes;
    const a = await signup(n1);
    const b = await signup(n2);
    const tok = await addDevice(n2, b);
    const { call } = await startCall(n1, a, { user_id: b.id, media: 'audio' });
    await until(() => fake.sendsTo(tok).length === 1, 15000, 'the call push');
    await sleep(800 * F);
    const calls = fake.sendsTo(tok).filter((s) => s.message.data.type === 'call');
    assert.equal(calls.length, 1);
    assert.equal(calls[0].message.data.call_id, String(call.id));
    assert.deepEqual(fake.problems, []);
    await hangUp(n1, a, call.id);
  });
});
