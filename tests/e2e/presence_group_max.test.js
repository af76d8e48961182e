'use strict';
// SB_PRESENCE_GROUP_MAX at its boundary (issue 20, point 2; docs/api.md
// "Online state"), with the server started at 3: the co-members of a group
// of exactly 3 members get `presence` events on their `user:` topic, those of
// a group of 4 get none, but read online state on demand: GET
// /conversations/:id/members (`online`, `last_seen_at`) and GET
// /conversations/:id (`online_count`). A block hides the blocker's online
// state on these on-demand paths too (point 3; sb_presence_hidden: the
// member list shows the blocker `online:false, last_seen_at:null`, the
// online count leaves them out, GET /users/:id as well).

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startServer, slow } = require('./lib/server');
const { BASE_ENV, api, signupMany, connect, join, until, waitForDatabase, sleep } = require('./lib/api');

const F = slow();
const T = { timeout: 90000 * F };

describe('SB_PRESENCE_GROUP_MAX boundary and blocks on the on-demand paths', () => {
  let srv;
  const socks = [];

  before(async () => {
    await waitForDatabase();
    srv = await startServer({ env: { ...BASE_ENV, SB_PRESENCE_GROUP_MAX: '3' } });
  });
  after(async () => {
    for (const s of socks) { try { s.disconnect(); } catch { /* gone */ } }
    if (srv) await srv.stop();
  });

  /** A phoenix.js socket with user:<id> joined; `presence` events recorded. */
  async function online(user) {
    const sock = await connect(srv, user);
    socks.push(sock);
    const { ch } = await join(sock, `user:${user.id}`);
    const events = [];
    ch.on('presence', (p) => events.push(p));
    return { sock, events };
  }
  const group = async (owner, others, title) => {
    const r = await api(srv, 'POST', '/conversations', { token: owner.token, body: { kind: 'group', title, member_ids: others.map((u) => u.id) } });
    assert.equal(r.status, 201, r.text);
    return r.json.conversation.id;
  };
  const memberList = async (viewer, conv) => {
    const r = await api(srv, 'GET', `/conversations/${conv}/members?limit=100`, { token: viewer.token });
    assert.equal(r.status, 200, r.text);
    return new Map(r.json.items.map((m) => [m.user_id, m]));
  };
  /** Polls the member list until pred(list) holds (bounded); returns it. */
  const listUntil = async (viewer, conv, pred, what) => {
    const deadline = Date.now() + 10000 * F;
    for (;;) {
      const l = await memberList(viewer, conv);
      if (pred(l)) return l;
      if (Date.now() > deadline) throw new Error(`timeout waiting for ${what}`);
      await sleep(50);
    }
  };
  const onlineCount = async (viewer, conv) => {
    const r = await api(srv, 'GET', `/conversations/${conv}`, { token: viewer.token });
    assert.equal(r.status, 200, r.text);
    return r.json.conversation.online_count;
  };

  test('a group of 3 gets presence events, a group of 4 does not but sees online on demand; a block hides the blocker there', T, async () => {
    // W watches; X shares a 3-member group with W (W, X, Y); P, Q share a
    // 4-member group with W (W, P, Q, R). Nobody has a direct conversation.
    const [w, x, y, p, q, r] = await signupMany(srv, 6);
    await group(w, [x, y], 'three');
    const big = await group(w, [p, q, r], 'four');
    const lw = await online(w);

    // P comes online first (the 4-member group), then X (the 3-member group)
    const lp = await online(p);
    let m = await listUntil(w, big, (l) => l.get(p.id).online === true, 'P online on the member list');
    const lx = await online(x);
    await until(() => lw.events.some((e) => e.user_id === x.id && e.online === true), 10000, 'W gets X online (group of 3)');
    const ev = lw.events.find((e) => e.user_id === x.id);
    assert.equal(typeof ev.last_seen_at, 'string');
    await sleep(600 * F); // P's transition was batched before X's: anything for P would be here by now
    assert.deepEqual(lw.events.filter((e) => e.user_id === p.id), [], 'no presence event from a group of 4 (> SB_PRESENCE_GROUP_MAX)');
    // the other members of the small group are told too (X sees Y's login)
    const ly = await online(y);
    await until(() => lx.events.some((e) => e.user_id === y.id && e.online === true), 10000, 'X gets Y online (group of 3)');

    // on demand in the 4-member group: P (and W) online, Q and R not
    m = await memberList(w, big);
    assert.equal(m.size, 4);
    assert.equal(m.get(p.id).online, true);
    assert.ok(Math.abs(Date.parse(m.get(p.id).last_seen_at) - Date.now()) < 60000 * F, `last_seen_at now while online: ${m.get(p.id).last_seen_at}`);
    assert.equal(m.get(w.id).online, true);
    assert.equal(m.get(q.id).online, false);
    assert.equal(m.get(r.id).online, false);
    assert.equal(await onlineCount(w, big), 2, 'online_count: W and P');
    assert.equal(await onlineCount(q, big), 2, 'the same count for another member');

    // P goes offline: still no event to W, the member list follows
    const left = Date.now();
    lp.sock.disconnect();
    // offline, with the last seen stored at the disconnect (not the login's)
    m = await listUntil(w, big, (l) => l.get(p.id).online === false && Date.parse(l.get(p.id).last_seen_at) >= left - 5,
      'P offline on the member list with the stored last_seen_at of its disconnect');
    const pLastSeen = m.get(p.id).last_seen_at;
    assert.equal(await onlineCount(w, big), 1);
    // X going offline is announced (a barrier for anything about P)
    lx.sock.disconnect();
    await until(() => lw.events.some((e) => e.user_id === x.id && e.online === false), 10000, 'W gets X offline');
    await sleep(300 * F);
    assert.deepEqual(lw.events.filter((e) => e.user_id === p.id), [], 'no presence event for P offline either');

    // a block: Q (online) blocks W; P (offline) blocks W. W's on-demand views
    // show neither online nor their last seen; others are unaffected.
    await online(q);
    m = await listUntil(w, big, (l) => l.get(q.id).online === true, 'Q online on the member list');
    assert.equal(await onlineCount(w, big), 2, 'W and Q');
    for (const blocker of [q, p]) {
      const b = await api(srv, 'POST', '/blocks', { token: blocker.token, body: { user_id: w.id } });
      assert.equal(b.status, 201, b.text);
    }
    m = await memberList(w, big);
    assert.deepEqual({ online: m.get(q.id).online, last_seen_at: m.get(q.id).last_seen_at }, { online: false, last_seen_at: null }, 'an online blocker is hidden');
    assert.deepEqual({ online: m.get(p.id).online, last_seen_at: m.get(p.id).last_seen_at }, { online: false, last_seen_at: null }, 'an offline blocker\'s last seen is hidden');
    assert.equal(m.get(w.id).online, true);
    assert.equal(await onlineCount(w, big), 1, 'the count leaves the blocker out');
    const uq = await api(srv, 'GET', `/users/${q.id}`, { token: w.token });
    assert.equal(uq.status, 200, uq.text);
    assert.deepEqual({ online: uq.json.user.online, last_seen_at: uq.json.user.last_seen_at }, { online: false, last_seen_at: null });
    // a member not blocked by them still sees them (R's view)
    m = await memberList(r, big);
    assert.equal(m.get(q.id).online, true, 'R still sees Q online');
    assert.equal(m.get(p.id).last_seen_at, pLastSeen, 'R still sees P\'s last seen');
    assert.equal(await onlineCount(r, big), 2, 'R counts W and Q');
    // unblocked: W sees them again
    for (const blocker of [q, p]) {
      const b = await api(srv, 'DELETE', `/blocks/${w.id}`, { token: blocker.token });
      assert.ok(b.status === 204 || b.status === 200, b.text);
    }
    m = await memberList(w, big);
    assert.equal(m.get(q.id).online, true);
    assert.equal(m.get(p.id).last_seen_at, pLastSeen);
    assert.equal(await onlineCount(w, big), 2);
    ly.sock.disconnect();
  });
});
