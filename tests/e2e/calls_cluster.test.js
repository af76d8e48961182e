'use strict';
// Calls across two nodes on one Redis (issue 13): caller and callee on
// different nodes (call:incoming on the callee's devices on both nodes, the
// signal relay and state across nodes), glare of two POSTs racing on two
// nodes (one call, deterministic), two devices on two nodes accepting at
// once (exactly one wins), and R9: the node that created a ringing call and
// held the caller's socket is killed (SIGKILL): the call still ends missed
// on time, ended by the surviving node.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { BASE_ENV, api, signup, waitForDatabase, sql, until, sleep } = require('./lib/api');
const { startRedis, startCluster, waitClusterUp, stopAll } = require('./lib/cluster');
const { slow } = require('./lib/server');
const { Device, signin, startCall } = require('./lib/calls');

const F = slow();
const RING_MS = 3000 * F;
const T = { timeout: 90000 * F };

describe('calls across nodes', () => {
  let redis;
  let nodes = [];
  const open = [];
  const dev = async (srv, user) => { const d = await Device.open(srv, user); open.push(d); return d; };

  before(async () => {
    await waitForDatabase();
    redis = await startRedis();
    nodes = await startCluster(2, {
      redis,
      name: 'calls_cluster',
      env: {
        ...BASE_ENV,
        SB_CALL_RING_MS: String(RING_MS),
        SB_CALL_CONNECT_MS: '30000',
        SB_CALL_GRACE_MS: '20000',
        SB_CALL_TICK_MS: '100',
      },
    });
    await waitClusterUp(nodes);
  });
  after(async () => {
    for (const d of open) d.close();
    await stopAll(nodes);
    if (redis) await redis.stop();
  });

  test('caller on one node, callee on the other (two devices, one per node)', T, async () => {
    const [n1, n2] = nodes;
    const a = await signup(n1);
    const b = await signup(n2);
    const da = await dev(n1, a);
    const db1 = await dev(n2, b);
    const db2 = await dev(n1, await signin(n1, b));
    const { call } = await startCall(n1, a, { user_id: b.id, media: 'audio' });
    for (const d of [db1, db2]) await d.waitUserEvent((e) => e.event === 'call:incoming' && e.call.id === call.id, 10000, 'call:incoming on both nodes');
    await da.joinCall(call.id);
    await db1.joinCall(call.id);
    await db2.joinCall(call.id);
    assert.equal((await db1.push(call.id, 'ringing')).status, 'ok');
    await da.waitState(call.id, 'ringing');
    assert.equal((await da.push(call.id, 'signal', { to: b.id, type: 'offer', data: { sdp: 'o' } })).status, 'ok');
    for (const d of [db1, db2]) await until(() => d.signals(call.id).length === 1, 10000, 'offer across nodes');
    assert.equal(db1.signals(call.id)[0].from, a.id);
    assert.equal((await db1.push(call.id, 'accept')).status, 'ok');
    await da.waitState(call.id, 'connecting');
    assert.equal((await db2.waitState(call.id, 'ended')).end_reason, 'answered_elsewhere');
    assert.equal((await db1.push(call.id, 'signal', { to: a.id, type: 'answer', data: { sdp: 'a' } })).status, 'ok');
    await da.push(call.id, 'signal', { to: b.id, type: 'ice', data: { c: 1 } });
    await until(() => da.signals(call.id).length === 1 && db1.signals(call.id).length === 2, 10000, 'answer and ICE across nodes');
    assert.equal(da.signals(call.id)[0].type, 'answer');
    assert.equal(db2.signals(call.id).length, 1, 'nothing more for the device answered elsewhere');
    assert.equal(da.signals(call.id).filter((s) => s.from === a.id).length, 0, 'never echoed');
    assert.equal((await da.push(call.id, 'connected')).status, 'ok');
    await db1.waitState(call.id, 'connected');
    const r = await db1.push(call.id, 'hangup');
    assert.equal(r.response.call.end_reason, 'hangup');
    await da.waitState(call.id, 'ended');
    await db2.waitUserEvent((e) => e.call.id === call.id && e.call.state === 'ended', 10000, 'ended on the other node');
  });

  test('glare on two nodes: one call, the later request its accept', T, async () => {
    const [n1, n2] = nodes;
    for (let round = 0; round < 4; round++) {
      const a = await signup(n1);
      const b = await signup(n2);
      const [ra, rb] = await Promise.all([
        api(n1, 'POST', '/calls', { token: a.token, body: { user_id: b.id, media: 'video' } }),
        api(n2, 'POST', '/calls', { token: b.token, body: { user_id: a.id, media: 'video' } }),
      ]);
      assert.equal(ra.status, 201, ra.text);
      assert.equal(rb.status, 201, rb.text);
      assert.equal(ra.json.call.id, rb.json.call.id);
      assert.deepEqual([ra.json.call.state, rb.json.call.state].sort(), ['connecting', 'dialing']);
      assert.equal(sql(`SELECT count(*) || ',' || min(state) FROM calls WHERE caller_id IN (${a.id},${b.id})`), '1,connecting');
      assert.equal(sql(`SELECT count(*) FROM calls WHERE caller_id IN (${a.id},${b.id}) AND end_reason IN ('busy','missed')`), '0');
    }
  });

  test('two devices on two nodes accept at once: exactly one wins', T, async () => {
    const [n1, n2] = nodes;
    for (let round = 0; round < 3; round++) {
      const a = await signup(n1);
      const b = await signup(n1);
      const db1 = await dev(n1, b);
      const db2 = await dev(n2, await signin(n2, b));
      const { call } = await startCall(n2, a, { user_id: b.id, media: 'audio' });
      await db1.joinCall(call.id);
      await db2.joinCall(call.id);
      const rs = await Promise.all([db1.push(call.id, 'accept'), db2.push(call.id, 'accept')]);
      assert.equal(rs.filter((r) => r.status === 'ok').length, 1, JSON.stringify(rs));
      const loser = rs[0].status === 'ok' ? db2 : db1;
      assert.equal((await loser.waitState(call.id, 'ended')).end_reason, 'answered_elsewhere');
      assert.equal(sql(`SELECT state || ',' || version FROM calls WHERE id = ${call.id}`), 'connecting,2');
    }
  });

  test('answered_elsewhere on user: only, the two devices on two nodes', T, async () => {
    const [n1, n2] = nodes;
    const a = await signup(n1);
    const b = await signup(n1);
    const da = await dev(n1, a);
    const db1 = await dev(n1, b);                   // answers, on node 1
    const db2 = await dev(n2, await signin(n2, b)); // user: only, on node 2
    const { call } = await startCall(n1, a, { user_id: b.id, media: 'audio' });
    await db2.waitUserEvent((e) => e.event === 'call:incoming' && e.call.id === call.id, 10000, 'call:incoming on node 2');
    await db1.joinCall(call.id);
    const r = await db1.push(call.id, 'accept');
    assert.equal(r.status, 'ok', JSON.stringify(r));
    const other = await db2.waitUserEvent((e) => e.event === 'call:updated' && e.call.id === call.id, 10000, 'call:updated on node 2');
    assert.deepEqual([other.call.state, other.call.end_reason], ['ended', 'answered_elsewhere']);
    assert.ok(!('answered_on' in other));
    const mine = await db1.waitUserEvent((e) => e.event === 'call:updated' && e.call.id === call.id, 10000, 'call:updated on node 1');
    assert.equal(mine.call.state, 'connecting');
    await da.waitUserEvent((e) => e.event === 'call:updated' && e.call.id === call.id && e.call.state === 'connecting', 10000, 'caller');
    // the view holds on node 2's GET /sync too
    const s = await api(n2, 'GET', `/sync?cursor=${encodeURIComponent(db2.cursor)}&limit=200`, { token: db2.user.token });
    assert.equal(s.status, 200, JSON.stringify(s.json));
    const mineSync = s.json.events.filter((e) => e.type === 'call:updated' && e.call.id === call.id);
    assert.ok(mineSync.length >= 1);
    assert.deepEqual([mineSync[0].call.state, mineSync[0].call.end_reason], ['ended', 'answered_elsewhere']);
    await db1.push(call.id, 'hangup');
  });

  test('R9: the node holding a ringing call is killed; the call still ends missed on time', T, async () => {
    const [n1, n2] = nodes;
    const a = await signup(n2);
    const b = await signup(n1);
    const db = await dev(n1, b);
    const da = await dev(n2, a);
    const t0 = Date.now();
    const { call } = await startCall(n2, a, { user_id: b.id, media: 'audio' });
    await da.joinCall(call.id);
    await db.joinCall(call.id);
    assert.equal((await db.push(call.id, 'ringing')).status, 'ok');
    const created = Date.parse(call.created_at);
    await n2.stop({ signal: 'SIGKILL' });
    da.close();
    const ended = await db.waitState(call.id, 'ended', RING_MS + 15000);
    assert.equal(ended.end_reason, 'missed');
    const late = Date.parse(ended.ended_at) - created;
    assert.ok(late >= RING_MS - 50 && late <= RING_MS + 2000 * F, `ended ${late} ms after creation (ring ${RING_MS})`);
    await db.waitUserEvent((e) => e.call.id === call.id && e.call.end_reason === 'missed', 10000, 'missed on user:');
    assert.equal(sql(`SELECT state || ',' || end_reason || ',' || version FROM calls WHERE id = ${call.id}`), 'ended,missed,3');
    assert.ok(n1.lines.some((l) => l.obj && l.obj.msg === 'call_timer_ended' && l.obj.call_id === call.id), 'ended by the surviving node');
    assert.ok(Date.now() - t0 < RING_MS + 15000 * F);
    await sleep(10);
  });
});
