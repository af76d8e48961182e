'use strict';
// Calls on one node (issue 13): the call:<id> state machine enforced by the
// server, signal relay to the named participant only, ringing on every
// device, answered_elsewhere, glare, busy, the three timers (shortened),
// rejoin within the grace period, GET /calls/active after an app kill,
// history, group calls, bad input. Real Postgres, real phoenix.js clients.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startServer, slow } = require('./lib/server');
const {
  BASE_ENV, api, assertError, signup, waitForDatabase, sql, until, sleep, connect, join, push,
} = require('./lib/api');
const { Device, signin, startCall } = require('./lib/calls');

const F = slow();
const RING_MS = 2500 * F;
const CONNECT_MS = 2500 * F;
const GRACE_MS = 3000 * F;
const T = { timeout: 60000 * F };

describe('calls on one node', () => {
  let srv;
  const open = [];
  const dev = async (user) => { const d = await Device.open(srv, user); open.push(d); return d; };

  before(async () => {
    await waitForDatabase();
    srv = await startServer({
      env: {
        ...BASE_ENV,
        SB_CALL_RING_MS: String(RING_MS),
        SB_CALL_CONNECT_MS: String(CONNECT_MS),
        SB_CALL_GRACE_MS: String(GRACE_MS),
        SB_CALL_TICK_MS: '100',
        SB_RATELIMIT_CALL: '30/600',
        SB_TURN_URIS: 'stun:127.0.0.1:3478,turn:127.0.0.1:3478?transport=udp',
        SB_TURN_SECRET: 'test-turn-secret-not-used-elsewhere',
      },
    });
  });
  after(async () => {
    for (const d of open) d.close();
    if (srv) await srv.stop();
  });

  const callRow = (id) => sql(`SELECT state || ',' || coalesce(end_reason,'') || ',' || version FROM calls WHERE id = ${Number(id)}`);

  test('answered: ringing on every device, offer/answer/ICE relayed to the named participant only, hangup with its duration', T, async () => {
    const a = await signup(srv);
    const b = await signup(srv);
    const b2user = await signin(srv, b);
    const da = await dev(a);
    const db1 = await dev(b);
    const db2 = await dev(b2user);

    const { call, ice_servers } = await startCall(srv, a, { user_id: b.id, media: 'video' });
    assert.equal(call.state, 'dialing');
    assert.equal(call.caller_id, a.id);
    assert.equal(call.media, 'video');
    assert.deepEqual(call.participants.map((p) => [p.user_id, p.state]), [[a.id, 'joined'], [b.id, 'invited']]);
    assert.ok(Array.isArray(ice_servers) && ice_servers.length >= 1, JSON.stringify(ice_servers));
    // call:incoming on every device of the callee, call:updated on the caller's
    for (const d of [db1, db2]) await d.waitUserEvent((e) => e.event === 'call:incoming' && e.call.id === call.id, 10000, 'call:incoming');
    await da.waitUserEvent((e) => e.event === 'call:updated' && e.call.id === call.id, 10000, 'own call:updated');

    await da.joinCall(call.id);
    await db1.joinCall(call.id);
    await db2.joinCall(call.id);
    assert.equal(db2.joinReply.call.id, call.id);

    let r = await db1.push(call.id, 'ringing');
    assert.equal(r.status, 'ok', JSON.stringify(r));
    assert.equal(r.response.call.state, 'ringing');
    await da.waitState(call.id, 'ringing');

    // the caller's offer while ringing reaches both callee devices, with from, not the caller
    const offer = { sdp: 'v=0 offer', type: 'offer' };
    r = await da.push(call.id, 'signal', { to: b.id, type: 'offer', data: offer });
    assert.equal(r.status, 'ok', JSON.stringify(r));
    for (const d of [db1, db2]) await until(() => d.signals(call.id).length === 1, 10000, 'offer relayed');
    assert.deepEqual(db1.signals(call.id)[0], { to: b.id, from: a.id, type: 'offer', data: offer });
    // a callee not yet in the call cannot signal
    r = await db1.push(call.id, 'signal', { to: a.id, type: 'ice', data: { candidate: 'x' } });
    assert.equal(r.status, 'error');
    assert.equal(r.response.reason, 'conflict');

    r = await db1.push(call.id, 'accept');
    assert.equal(r.status, 'ok', JSON.stringify(r));
    assert.equal(r.response.call.state, 'connecting');
    assert.ok(r.response.call.answered_at);
    await da.waitState(call.id, 'connecting');
    // the other device of the callee is told, and then hears nothing more
    const elsewhere = await db2.waitState(call.id, 'ended');
    assert.equal(elsewhere.end_reason, 'answered_elsewhere');
    r = await db2.push(call.id, 'hangup');
    assert.equal(r.status, 'error');

    r = await db1.push(call.id, 'signal', { to: a.id, type: 'answer', data: { sdp: 'v=0 answer', type: 'answer' } });
    assert.equal(r.status, 'ok');
    for (let i = 0; i < 5; i++) {
      assert.equal((await da.push(call.id, 'signal', { to: b.id, type: 'ice', data: { candidate: `a${i}` } })).status, 'ok');
      assert.equal((await db1.push(call.id, 'signal', { to: a.id, type: 'ice', data: { candidate: `b${i}` } })).status, 'ok');
    }
    await until(() => da.signals(call.id).length === 6 && db1.signals(call.id).length === 6, 10000, 'ICE relayed');
    assert.deepEqual(da.signals(call.id).map((s) => s.type), ['answer', 'ice', 'ice', 'ice', 'ice', 'ice']);
    assert.ok(da.signals(call.id).every((s) => s.from === b.id && s.to === a.id));
    assert.deepEqual(db1.signals(call.id).slice(1).map((s) => s.data.candidate), ['a0', 'a1', 'a2', 'a3', 'a4']);
    assert.equal(db2.signals(call.id).length, 1, 'the device answered elsewhere gets no more signals');

    r = await da.push(call.id, 'connected');
    assert.equal(r.status, 'ok');
    assert.equal(r.response.call.state, 'connected');
    await db1.waitState(call.id, 'connected');
    r = await db1.push(call.id, 'connected');
    assert.equal(r.status, 'ok');
    await sleep(300);
    r = await db1.push(call.id, 'hangup');
    assert.equal(r.status, 'ok');
    const ended = r.response.call;
    assert.equal(ended.state, 'ended');
    assert.equal(ended.end_reason, 'hangup');
    assert.ok(ended.duration_ms >= 250, `duration ${ended.duration_ms}`);
    await da.waitState(call.id, 'ended');
    await db2.waitUserEvent((e) => e.event === 'call:updated' && e.call.id === call.id && e.call.state === 'ended', 10000, 'ended on user:');
    // history: newest first, the duration recorded
    const h = await api(srv, 'GET', '/calls', { token: b.token });
    assert.equal(h.status, 200);
    assert.equal(h.json.items[0].id, call.id);
    assert.equal(h.json.items[0].duration_ms, ended.duration_ms);
    // the durable events are in sync
    const s = await api(srv, 'GET', `/sync?cursor=${encodeURIComponent(db2.cursor)}`, { token: b.token });
    assert.equal(s.status, 200, s.text);
    const types = s.json.events.filter((e) => e.call && e.call.id === call.id).map((e) => e.type);
    assert.ok(types.includes('call:incoming') && types.includes('call:updated'), JSON.stringify(types));
    // after the end: every event is an illegal transition
    r = await da.push(call.id, 'hangup');
    assert.equal(r.status, 'error');
    assert.equal(r.response.reason, 'conflict');
  });

  test('declined from any device ends the call for all; the caller cannot decline or accept', T, async () => {
    const a = await signup(srv);
    const b = await signup(srv);
    const da = await dev(a);
    const db1 = await dev(b);
    const db2 = await dev(await signin(srv, b));
    const { call } = await startCall(srv, a, { user_id: b.id, media: 'audio' });
    await da.joinCall(call.id);
    await db1.joinCall(call.id);
    await db2.joinCall(call.id);
    let r = await da.push(call.id, 'accept');
    assert.equal(r.status, 'error');
    assert.equal(r.response.reason, 'conflict');
    r = await da.push(call.id, 'decline');
    assert.equal(r.status, 'error');
    r = await da.push(call.id, 'connected');
    assert.equal(r.status, 'error');
    assert.match(callRow(call.id), /^dialing,,1$/, 'illegal transitions changed nothing');
    r = await db2.push(call.id, 'decline');
    assert.equal(r.status, 'ok');
    assert.equal(r.response.call.end_reason, 'declined');
    for (const d of [da, db1]) assert.equal((await d.waitState(call.id, 'ended')).end_reason, 'declined');
    await db1.waitUserEvent((e) => e.call.id === call.id && e.call.state === 'ended', 10000, 'declined on user:');
  });

  test('missed after SB_CALL_RING_MS, ended by the server', T, async () => {
    const a = await signup(srv);
    const b = await signup(srv);
    const da = await dev(a);
    const db = await dev(b);
    const t0 = Date.now();
    const { call } = await startCall(srv, a, { user_id: b.id, media: 'audio' });
    await da.joinCall(call.id);
    await db.joinCall(call.id);
    await db.push(call.id, 'ringing');
    const ended = await da.waitState(call.id, 'ended', RING_MS + 10000);
    const took = Date.now() - t0;
    assert.equal(ended.end_reason, 'missed');
    assert.ok(took >= RING_MS - 200, `ended after ${took} ms, ring ${RING_MS}`);
    assert.deepEqual(ended.participants.map((p) => p.state), ['left', 'missed']);
    await db.waitUserEvent((e) => e.call.id === call.id && e.call.end_reason === 'missed', 10000, 'missed on user:');
  });

  test('busy: a callee already in a call', T, async () => {
    const a = await signup(srv);
    const b = await signup(srv);
    const c = await signup(srv);
    const db = await dev(b);
    const dc = await dev(c);
    const { call } = await startCall(srv, a, { user_id: b.id, media: 'audio' });
    await db.joinCall(call.id);
    assert.equal((await db.push(call.id, 'accept')).status, 'ok');
    const busy = await startCall(srv, c, { user_id: b.id, media: 'audio' });
    assert.equal(busy.call.state, 'ended');
    assert.equal(busy.call.end_reason, 'busy');
    await dc.waitUserEvent((e) => e.call.id === busy.call.id && e.call.end_reason === 'busy', 10000, 'busy on user:');
    assert.equal((await db.push(call.id, 'hangup')).status, 'ok');
  });

  // migration 160: the busy checks and GET /calls/active read only the live
  // participations (call_participants_live_idx: invited, ringing, joined,
  // connected), which holds because an ended call leaves none of its
  // participants in those states, whatever way it ended.
  test('past calls, however they ended, neither make anyone busy nor show in GET /calls/active', T, async () => {
    const a = await signup(srv);
    const b = await signup(srv);
    const c = await signup(srv);
    const da = await dev(a);
    const db = await dev(b);
    const ends = [];
    // declined; the caller hanging up while it rings; answered, connected, hung up by the callee
    let { call } = await startCall(srv, a, { user_id: b.id, media: 'audio' });
    await db.joinCall(call.id);
    ends.push((await db.push(call.id, 'decline')).response.call.end_reason);
    ({ call } = await startCall(srv, a, { user_id: b.id, media: 'audio' }));
    await da.joinCall(call.id);
    await db.joinCall(call.id);
    assert.equal((await db.push(call.id, 'ringing')).status, 'ok');
    ends.push((await da.push(call.id, 'hangup')).response.call.end_reason);
    ({ call } = await startCall(srv, a, { user_id: b.id, media: 'audio' }));
    await da.joinCall(call.id);
    await db.joinCall(call.id);
    assert.equal((await db.push(call.id, 'accept')).status, 'ok');
    assert.equal((await da.push(call.id, 'connected')).status, 'ok');
    assert.equal((await db.push(call.id, 'connected')).status, 'ok');
    ends.push((await db.push(call.id, 'hangup')).response.call.end_reason);
    assert.deepEqual(ends, ['declined', 'hangup', 'hangup']);
    const stray = sql(`SELECT count(*) FROM call_participants p JOIN calls k ON k.id = p.call_id
                       WHERE k.state = 'ended' AND p.state IN ('invited', 'ringing', 'joined', 'connected')
                         AND p.user_id IN (${Number(a.id)}, ${Number(b.id)})`);
    assert.equal(stray, '0', 'a participant of an ended call is still in a live state');
    for (const u of [a, b]) {
      const act = await api(srv, 'GET', '/calls/active', { token: u.token });
      assert.equal(act.status, 200, act.text);
      assert.equal(act.json.call, null, JSON.stringify(act.json));
    }
    // three ended calls behind them, a and b are free: a new call rings
    ({ call } = await startCall(srv, a, { user_id: b.id, media: 'audio' }));
    assert.equal(call.state, 'dialing');
    const act = await api(srv, 'GET', '/calls/active', { token: b.token });
    assert.equal(act.json.call.id, call.id);
    // and only the live call counts: b (invited) is busy for c, a (joined) cannot call c
    const busy = await startCall(srv, c, { user_id: b.id, media: 'audio' });
    assert.equal(busy.call.end_reason, 'busy');
    const again = await api(srv, 'POST', '/calls', { token: a.token, body: { user_id: c.id, media: 'audio' } });
    assertError(again, 409, 'conflict');
    assert.equal(sql(`SELECT count(*) FROM call_participants WHERE user_id IN (${Number(a.id)}, ${Number(b.id)})
                        AND state IN ('invited', 'ringing', 'joined', 'connected')`), '2');
    await da.joinCall(call.id);
    assert.equal((await da.push(call.id, 'hangup')).status, 'ok');
  });

  test('failed: accepted but never connected within SB_CALL_CONNECT_MS', T, async () => {
    const a = await signup(srv);
    const b = await signup(srv);
    const da = await dev(a);
    const db = await dev(b);
    const { call } = await startCall(srv, a, { user_id: b.id, media: 'audio' });
    await da.joinCall(call.id);
    await db.joinCall(call.id);
    const t0 = Date.now();
    assert.equal((await db.push(call.id, 'accept')).status, 'ok');
    const ended = await da.waitState(call.id, 'ended', CONNECT_MS + 10000);
    assert.equal(ended.end_reason, 'failed');
    assert.ok(Date.now() - t0 >= CONNECT_MS - 200);
  });

  test('connection_lost after the grace period; a rejoin within it resumes the call', T, async () => {
    const a = await signup(srv);
    const b = await signup(srv);
    const da = await dev(a);
    let db = await dev(b);
    const { call } = await startCall(srv, a, { user_id: b.id, media: 'audio' });
    await da.joinCall(call.id);
    await db.joinCall(call.id);
    await db.push(call.id, 'accept');
    await da.push(call.id, 'connected');
    await da.waitState(call.id, 'connected');
    // B's app drops, and comes back within the grace period: the call goes on
    db.close();
    await sleep(GRACE_MS / 3);
    db = await dev(b);
    await db.joinCall(call.id);
    assert.equal(db.joinReply.call.state, 'connected');
    assert.equal((await db.push(call.id, 'signal', { to: a.id, type: 'restart', data: { sdp: 'v=0 restart' } })).status, 'ok');
    await until(() => da.signals(call.id).some((s) => s.type === 'restart'), 10000, 'restart relayed');
    await sleep(GRACE_MS + 1500 * F);
    assert.match(callRow(call.id), /^connected,/, 'resumed call still connected past the grace period');
    // now B is gone for good
    const t0 = Date.now();
    db.close();
    const ended = await da.waitState(call.id, 'ended', GRACE_MS + 15000);
    assert.equal(ended.end_reason, 'connection_lost');
    assert.ok(Date.now() - t0 >= GRACE_MS - 200, `ended after ${Date.now() - t0} ms`);
  });

  test('answered_elsewhere: two devices accepting at once, exactly one wins', T, async () => {
    for (let round = 0; round < 3; round++) {
      const a = await signup(srv);
      const b = await signup(srv);
      const db1 = await dev(b);
      const db2 = await dev(await signin(srv, b));
      const { call } = await startCall(srv, a, { user_id: b.id, media: 'audio' });
      await db1.joinCall(call.id);
      await db2.joinCall(call.id);
      const [r1, r2] = await Promise.all([db1.push(call.id, 'accept'), db2.push(call.id, 'accept')]);
      const oks = [r1, r2].filter((r) => r.status === 'ok');
      assert.equal(oks.length, 1, JSON.stringify([r1, r2]));
      const loser = r1.status === 'ok' ? db2 : db1;
      const lost = r1.status === 'ok' ? r2 : r1;
      assert.equal(lost.response.reason, 'conflict');
      assert.match(lost.response.message, /another device/);
      assert.equal((await loser.waitState(call.id, 'ended')).end_reason, 'answered_elsewhere');
      assert.match(callRow(call.id), /^connecting,,2$/, 'one transition written');
      // the losing device cannot join the call again
      const d3 = await dev(await signin(srv, b));
      await assert.rejects(d3.joinCall(call.id), (e) => e.resp && e.resp.reason === 'conflict');
    }
  });

  test("answered_elsewhere on user: only: the callee's other device is told by its call:updated, live and in GET /sync", T, async () => {
    const a = await signup(srv);
    const b = await signup(srv);
    const b2 = await signin(srv, b);
    const da = await dev(a);
    const db1 = await dev(b);  // will answer (joins call:<id>)
    const db2 = await dev(b2); // joined to user: only
    const { call } = await startCall(srv, a, { user_id: b.id, media: 'audio' });
    await db2.waitUserEvent((e) => e.event === 'call:incoming' && e.call.id === call.id, 10000, 'call:incoming');
    await db1.joinCall(call.id);
    const r = await db1.push(call.id, 'accept');
    assert.equal(r.status, 'ok', JSON.stringify(r));
    // the other device: the call ended for it, answered_elsewhere, said in so many words
    const other = await db2.waitUserEvent((e) => e.event === 'call:updated' && e.call.id === call.id, 10000, 'call:updated');
    assert.equal(other.call.state, 'ended');
    assert.equal(other.call.end_reason, 'answered_elsewhere');
    assert.ok(!('answered_on' in other), 'no device id on the wire');
    // the answering device and the caller see the call as it is
    const mine = await db1.waitUserEvent((e) => e.event === 'call:updated' && e.call.id === call.id, 10000, 'own call:updated');
    assert.equal(mine.call.state, 'connecting');
    assert.ok(!('answered_on' in mine));
    const caller = await da.waitUserEvent((e) => e.event === 'call:updated' && e.call.id === call.id && e.call.state === 'connecting', 10000, 'caller call:updated');
    assert.equal(caller.call.end_reason, null);
    // later transitions stay ended for the other device
    await db1.push(call.id, 'hangup');
    const last = await db2.waitUserEvent((e) => e.event === 'call:updated' && e.call.id === call.id && e.call.version > other.call.version, 10000, 'later call:updated');
    assert.equal(last.call.state, 'ended');
    assert.equal(last.call.end_reason, 'answered_elsewhere');
    await db1.waitUserEvent((e) => e.event === 'call:updated' && e.call.id === call.id && e.call.end_reason === 'hangup', 10000, 'hangup');
    // GET /sync replays the same per-device view (the bootstrap cursor, then the events after it)
    const seen = async (user, cursor) => {
      const out = [];
      for (let cur = cursor, i = 0; i < 50; i++) {
        const s = await api(srv, 'GET', `/sync?cursor=${encodeURIComponent(cur)}&limit=200`, { token: user.token });
        assert.equal(s.status, 200, JSON.stringify(s.json));
        out.push(...s.json.events.filter((e) => e.type === 'call:updated' && e.call.id === call.id));
        if (!s.json.has_more) break;
        cur = s.json.cursor;
      }
      return out;
    };
    assert.ok(other.cursor, 'a durable event: it carries its cursor');
    const v2 = await seen(b2, db2.cursor); // from where db2's live delivery started
    assert.ok(v2.length >= 2, JSON.stringify(v2));
    for (const e of v2) {
      assert.equal(e.type, 'call:updated');
      assert.deepEqual([e.call.state, e.call.end_reason], ['ended', 'answered_elsewhere']);
      assert.ok(!('answered_on' in e));
    }
    const v1 = await seen(b, db2.cursor);
    assert.deepEqual(v1.map((e) => [e.call.state, e.call.end_reason]), [['connecting', null], ['ended', 'hangup']]);
    assert.ok(v1.every((e) => !('answered_on' in e)));
  });

  test('glare: A and B call each other at once: one call, connecting, no busy, no missed call', T, async () => {
    for (let round = 0; round < 3; round++) {
      const a = await signup(srv);
      const b = await signup(srv);
      const [ra, rb] = await Promise.all([
        api(srv, 'POST', '/calls', { token: a.token, body: { user_id: b.id, media: 'audio' } }),
        api(srv, 'POST', '/calls', { token: b.token, body: { user_id: a.id, media: 'audio' } }),
      ]);
      assert.equal(ra.status, 201, ra.text);
      assert.equal(rb.status, 201, rb.text);
      assert.equal(ra.json.call.id, rb.json.call.id, 'both requests answered with one call');
      assert.deepEqual([ra.json.call.state, rb.json.call.state].sort(), ['connecting', 'dialing']);
      const later = ra.json.call.state === 'connecting' ? ra : rb;
      assert.equal(later.json.call.state, 'connecting');
      assert.ok(later.json.ice_servers.length >= 1);
      assert.equal(sql(`SELECT count(*) FROM calls WHERE caller_id IN (${a.id},${b.id})`), '1');
      assert.equal(sql(`SELECT state FROM calls WHERE id = ${later.json.call.id}`), 'connecting');
    }
    // sequential glare: B calls A while A's call to B rings
    const a = await signup(srv);
    const b = await signup(srv);
    const first = await startCall(srv, a, { user_id: b.id, media: 'audio' });
    const second = await startCall(srv, b, { user_id: a.id, media: 'audio' });
    assert.equal(second.call.id, first.call.id);
    assert.equal(second.call.state, 'connecting');
    assert.equal(second.call.caller_id, a.id);
  });

  test('GET /calls/active after an app kill: the pending offer, the ring time left, fresh ice_servers', T, async () => {
    const a = await signup(srv);
    const b = await signup(srv);
    const da = await dev(a);
    const none = await api(srv, 'GET', '/calls/active', { token: b.token });
    assert.equal(none.status, 200);
    assert.equal(none.json.call, null);
    const { call } = await startCall(srv, a, { user_id: b.id, media: 'video' });
    await da.joinCall(call.id);
    const offer = { sdp: 'v=0 the offer', type: 'offer' };
    assert.equal((await da.push(call.id, 'signal', { to: b.id, type: 'offer', data: offer })).status, 'ok');
    // B's app was killed: nothing of B is connected; a push woke it
    let act;
    for (let i = 0; i < 50; i++) {
      act = await api(srv, 'GET', '/calls/active', { token: b.token });
      if (act.json.offer) break;
      await sleep(50);
    }
    assert.equal(act.status, 200, act.text);
    assert.equal(act.json.call.id, call.id);
    assert.equal(act.json.call.state, 'dialing');
    assert.deepEqual(act.json.offer, { from: a.id, type: 'offer', data: offer });
    assert.ok(act.json.ring_remaining_ms > 0 && act.json.ring_remaining_ms <= RING_MS, String(act.json.ring_remaining_ms));
    assert.ok(act.json.ice_servers.some((s) => JSON.stringify(s.urls).includes('turn:127.0.0.1:3478')), JSON.stringify(act.json.ice_servers));
    // the restarted app answers from what it got
    const db = await dev(b);
    await db.joinCall(call.id);
    assert.equal((await db.push(call.id, 'accept')).status, 'ok');
    assert.equal((await db.push(call.id, 'signal', { to: a.id, type: 'answer', data: { sdp: 'v=0 answer' } })).status, 'ok');
    await until(() => da.signals(call.id).length === 1, 10000, 'answer relayed');
    await sleep(200);
    act = await api(srv, 'GET', '/calls/active', { token: b.token });
    assert.equal(act.json.call.state, 'connecting');
    assert.equal(act.json.offer, null, 'the answered offer is no longer pending');
    assert.equal(act.json.ring_remaining_ms, 0);
    await db.push(call.id, 'hangup');
  });

  test('group call: mesh of three, late join, leaving, ends when the last two are gone', T, async () => {
    const a = await signup(srv);
    const b = await signup(srv);
    const c = await signup(srv);
    const outsider = await signup(srv);
    const g = await api(srv, 'POST', '/conversations', { token: a.token, body: { kind: 'group', title: 'g', member_ids: [b.id, c.id] } });
    assert.equal(g.status, 201, g.text);
    const conv = g.json.conversation.id;
    const r404 = await api(srv, 'POST', '/calls', { token: outsider.token, body: { conversation_id: conv, media: 'audio' } });
    assertError(r404, 404, 'not_found');
    const [da, db, dc, dout] = [await dev(a), await dev(b), await dev(c), await dev(outsider)];
    const { call } = await startCall(srv, a, { conversation_id: conv, media: 'audio' });
    assert.equal(call.kind, 'group');
    assert.equal(call.participants.length, 3);
    for (const d of [db, dc]) await d.waitUserEvent((e) => e.event === 'call:incoming' && e.call.id === call.id, 10000, 'group incoming');
    await assert.rejects(dout.joinCall(call.id), (e) => e.resp && e.resp.reason === 'not_found');
    for (const d of [da, db, dc]) await d.joinCall(call.id);
    assert.equal((await db.push(call.id, 'accept')).response.call.state, 'connecting');
    assert.equal((await da.push(call.id, 'connected')).response.call.state, 'connected');
    // C joins late (a second POST on the conversation is its accept)
    const late = await startCall(srv, c, { conversation_id: conv, media: 'audio' });
    assert.equal(late.call.id, call.id);
    assert.deepEqual(late.call.participants.map((p) => p.state).sort(), ['connected', 'joined', 'joined']);
    // mesh: A signals B and C separately; each gets only its own
    await da.push(call.id, 'signal', { to: b.id, type: 'offer', data: { for: 'b' } });
    await da.push(call.id, 'signal', { to: c.id, type: 'offer', data: { for: 'c' } });
    await until(() => db.signals(call.id).length === 1 && dc.signals(call.id).length === 1, 10000, 'mesh offers');
    assert.equal(db.signals(call.id)[0].data.for, 'b');
    assert.equal(dc.signals(call.id)[0].data.for, 'c');
    let r = await db.push(call.id, 'hangup');
    assert.equal(r.response.call.state, 'connected', 'two are left: the call goes on');
    r = await dc.push(call.id, 'hangup');
    assert.equal(r.response.call.state, 'ended');
    assert.equal(r.response.call.end_reason, 'hangup');
  });

  test('bad input: clear errors, nothing changed', T, async () => {
    const a = await signup(srv);
    const b = await signup(srv);
    const c = await signup(srv);
    const da = await dev(a);
    const dc = await dev(c);
    // REST
    assertError(await api(srv, 'POST', '/calls', { token: a.token, body: { media: 'audio' } }), 422, 'validation_failed');
    assertError(await api(srv, 'POST', '/calls', { token: a.token, body: { user_id: b.id } }), 422, 'validation_failed');
    assertError(await api(srv, 'POST', '/calls', { token: a.token, body: { user_id: b.id, media: 'hologram' } }), 422, 'validation_failed');
    assertError(await api(srv, 'POST', '/calls', { token: a.token, body: { user_id: 'x', media: 'audio' } }), 422, 'validation_failed');
    assertError(await api(srv, 'POST', '/calls', { token: a.token, body: { user_id: b.id, conversation_id: '1', media: 'audio' } }), 422, 'validation_failed');
    assertError(await api(srv, 'POST', '/calls', { token: a.token, body: { user_id: a.id, media: 'audio' } }), 422, 'validation_failed');
    assertError(await api(srv, 'POST', '/calls', { token: a.token, body: { user_id: '999999999999', media: 'audio' } }), 404, 'not_found');
    assertError(await api(srv, 'POST', '/calls', { token: a.token, body: { conversation_id: '999999999999', media: 'audio' } }), 404, 'not_found');
    assertError(await api(srv, 'POST', '/calls', { token: a.token, raw: '{"user_id":', headers: { 'content-type': 'application/json' } }), 400, 'bad_request');
    assertError(await api(srv, 'POST', '/calls', { body: { user_id: b.id, media: 'audio' } }), 401, 'unauthorized');
    assertError(await api(srv, 'GET', '/calls?cursor=bogus', { token: a.token }), 422, 'validation_failed');
    assert.equal(sql(`SELECT count(*) FROM calls WHERE caller_id = ${a.id}`), '0');
    // channel
    await assert.rejects(da.joinCall('999999999999'), (e) => e.resp.reason === 'not_found');
    await assert.rejects(da.joinCall('abc'), (e) => e.resp.reason === 'not_found');
    const { call } = await startCall(srv, a, { user_id: b.id, media: 'audio' });
    await assert.rejects(dc.joinCall(call.id), (e) => e.resp.reason === 'not_found', 'wrong participant');
    await da.joinCall(call.id);
    const bad = async (payload, reason) => {
      const r = await da.push(call.id, 'signal', payload);
      assert.equal(r.status, 'error', JSON.stringify(payload));
      assert.equal(r.response.reason, reason, JSON.stringify(r.response));
      assert.equal(typeof r.response.message, 'string');
    };
    await bad({ to: b.id, type: 'sdp', data: {} }, 'validation_failed');
    await bad({ to: b.id, data: {} }, 'validation_failed');
    await bad({ type: 'ice', data: {} }, 'validation_failed');
    await bad({ to: b.id, type: 'ice' }, 'validation_failed');
    await bad({ to: 12, type: 'ice', data: {} }, 'validation_failed');
    await bad({ to: c.id, type: 'ice', data: {} }, 'not_found');
    await bad({ to: a.id, type: 'ice', data: {} }, 'not_found');
    await bad({ to: b.id, type: 'offer', data: { sdp: 'x'.repeat(65 * 1024) } }, 'payload_too_large');
    await bad([1, 2], 'bad_request');
    let r = await da.push(call.id, 'dance', {});
    assert.equal(r.status, 'error');
    assert.equal(r.response.reason, 'bad_request');
    r = await da.push(call.id, 'hangup', [1]);
    assert.equal(r.status, 'error');
    assert.equal(r.response.reason, 'bad_request');
    assert.match(callRow(call.id), /^dialing,,1$/, 'nothing changed');
    const act = await api(srv, 'GET', '/calls/active', { token: b.token });
    assert.equal(act.json.offer, null, 'no offer stored from rejected signals');
    assert.equal((await da.push(call.id, 'hangup')).status, 'ok');
  });

  test('history is paginated, newest first; POST /calls is rate limited per user', T, async () => {
    const a = await signup(srv);
    const b = await signup(srv);
    const ids = [];
    for (let i = 0; i < 3; i++) {
      const { call } = await startCall(srv, a, { user_id: b.id, media: 'audio' });
      ids.push(call.id);
      const s = await connect(srv, a);
      const { ch } = await join(s, `call:${call.id}`);
      assert.equal((await push(ch, 'hangup', {})).status, 'ok');
      s.disconnect();
    }
    const p1 = await api(srv, 'GET', '/calls?limit=2', { token: b.token });
    assert.equal(p1.status, 200);
    assert.deepEqual(p1.json.items.map((c) => c.id), [ids[2], ids[1]]);
    assert.ok(p1.json.next_cursor);
    const p2 = await api(srv, 'GET', `/calls?limit=2&cursor=${encodeURIComponent(p1.json.next_cursor)}`, { token: b.token });
    assert.deepEqual(p2.json.items.map((c) => c.id), [ids[0]]);
    assert.equal(p2.json.next_cursor, null);
    // the limit (30 per 600 s here): calls to oneself are refused but count
    const c = await signup(srv);
    let limited = null;
    for (let i = 0; i < 40 && !limited; i++) {
      const r = await api(srv, 'POST', '/calls', { token: c.token, body: { user_id: c.id, media: 'audio' } });
      if (r.status === 429) limited = r;
      else assert.equal(r.status, 422);
    }
    assert.ok(limited, 'rate limited');
    assertError(limited, 429, 'rate_limited');
    assert.ok(Number(limited.headers.get('retry-after')) >= 1);
  });
});
