'use strict';
// Group calls are limited to 8 participants (issue 13, point 7; docs/api.md
// "Calls": a group of more than 8 members → 422 validation_failed; the SQL
// in migrations/100_calls_fast.sql refuses it): a call in a 9-member group
// is refused with the documented error and creates nothing (no call row, no
// active call, no history entry, no call:incoming to a member); the same
// group with 8 members calls all 8.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startServer, slow } = require('./lib/server');
const { BASE_ENV, api, assertError, signupMany, waitForDatabase, sql, sleep } = require('./lib/api');
const { Device, startCall } = require('./lib/calls');

const F = slow();
const T = { timeout: 90000 * F };

describe('group call size limit', () => {
  let srv;
  const open = [];

  before(async () => {
    await waitForDatabase();
    srv = await startServer({ env: { ...BASE_ENV, SB_CALL_TICK_MS: '100', SB_RATELIMIT_CALL: '100/60' } });
  });
  after(async () => {
    for (const d of open) d.close();
    if (srv) await srv.stop();
  });

  const callsOf = (conv) => Number(sql(`SELECT count(*) FROM calls WHERE conversation_id = ${Number(conv)}`));

  test('a 9-member group: 422 validation_failed naming conversation_id, nothing created; with 8 members it rings all 8', T, async () => {
    const users = await signupMany(srv, 9);
    const [a, ...others] = users; // a + 8 others = 9 members
    const g = await api(srv, 'POST', '/conversations', { token: a.token, body: { kind: 'group', title: 'nine', member_ids: others.map((u) => u.id) } });
    assert.equal(g.status, 201, g.text);
    const conv = g.json.conversation.id;
    const listener = await Device.open(srv, others[0]); // a member online: must not be rung
    open.push(listener);

    const r = await api(srv, 'POST', '/calls', { token: a.token, body: { conversation_id: conv, media: 'audio' } });
    assertError(r, 422, 'validation_failed');
    assert.match(r.json.error.message, /at most 8 participants/);
    assert.ok(r.json.error.details.conversation_id, `details name conversation_id: ${r.text}`);
    // a member's POST is refused the same way (no late join into nothing)
    assertError(await api(srv, 'POST', '/calls', { token: others[3].token, body: { conversation_id: conv, media: 'video' } }), 422, 'validation_failed');

    // nothing created
    assert.equal(callsOf(conv), 0, 'no call row');
    const act = await api(srv, 'GET', '/calls/active', { token: a.token });
    assert.equal(act.status, 200, act.text);
    assert.equal(act.json.call, null, 'no active call for the caller');
    const hist = await api(srv, 'GET', '/calls', { token: a.token });
    assert.equal(hist.status, 200, hist.text);
    assert.equal(hist.json.items.length, 0, 'no history entry');
    const actB = await api(srv, 'GET', '/calls/active', { token: others[0].token });
    assert.equal(actB.json.call, null, 'no call for a member');

    // 8 members: one leaves, the call now works for all 8
    const leaver = others[7];
    const del = await api(srv, 'DELETE', `/conversations/${conv}/members/${leaver.id}`, { token: leaver.token });
    assert.equal(del.status, 204, del.text);
    const { call } = await startCall(srv, a, { conversation_id: conv, media: 'audio' });
    assert.equal(call.kind, 'group');
    assert.equal(call.participants.length, 8);
    assert.deepEqual(call.participants.map((p) => p.user_id).sort(), users.slice(0, 8).map((u) => u.id).sort());
    assert.ok(!call.participants.some((p) => p.user_id === leaver.id));
    await listener.waitUserEvent((e) => e.event === 'call:incoming' && e.call.id === call.id, 10000, 'the 8-member call rings');
    await sleep(300 * F);
    const incoming = listener.userEvents.filter((e) => e.event === 'call:incoming');
    assert.deepEqual(incoming.map((e) => e.call.id), [call.id], 'the refused call never rang');
    assert.equal(callsOf(conv), 1);
    assert.equal((await api(srv, 'GET', '/calls/active', { token: a.token })).json.call.id, call.id);

  });
});
