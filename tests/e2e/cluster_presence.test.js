'use strict';
// Conversation traffic across three nodes on a private Redis, with phoenix.js
// clients spread over them: Phoenix Presence (presence_state and
// presence_diff) lists the viewers of every node exactly once and follows
// joins and leaves on any node; a node's first viewer of a conversation
// learns the viewers already on the other nodes; typing reaches every other
// member exactly once (not the typist); messages reach every member's
// user: channel exactly once whichever node they are on.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { Presence } = require('phoenix');
const { BASE_ENV, signup, api, waitForDatabase } = require('./lib/api');
const { Client } = require('./lib/frames');
const { socketPath } = require('./lib/phx');
const {
  startRedis, startCluster, waitClusterUp, stopAll, waitUntil, sleep, pushResult, join, phxSocket, NODE_TIMEOUT_MS,
} = require('./lib/cluster');

const T = { timeout: 90000 };

/** A viewer: a phoenix.js socket to a node, conversation:<id> joined with Presence. */
class Viewer {
  constructor(user, node, label) {
    this.user = user;
    this.node = node;
    this.label = label;
    this.typing = [];
    this.states = []; // presence_state payloads received
    this.messages = new Map();
  }

  async open(convId, { withUser = false } = {}) {
    this.socket = phxSocket(this.node, this.user.token);
    if (withUser) {
      this.userCh = this.socket.channel(`user:${this.user.id}`, {});
      this.userCh.on('message:new', (p) => this.messages.set(p.message.id, (this.messages.get(p.message.id) || 0) + 1));
      this.receipts = [];
      this.userCh.on('receipt', (p) => this.receipts.push(p));
      await join(this.userCh);
    }
    this.ch = this.socket.channel(`conversation:${convId}`, {});
    this.presence = new Presence(this.ch);
    this.ch.on('typing', (p) => this.typing.push(p));
    this.ch.on('presence_state', (p) => this.states.push(p));
    await join(this.ch);
  }

  /** user id -> number of metas, from phoenix.js Presence. */
  viewers() {
    const out = {};
    this.presence.list((id, { metas }) => { out[id] = metas.length; });
    return out;
  }

  async leave() {
    await new Promise((resolve) => this.ch.leave().receive('ok', resolve).receive('timeout', resolve));
  }

  close() { try { this.socket.disconnect(); } catch { /* gone */ } }
}

describe('cluster: Presence, typing and messages across 3 nodes', () => {
  let redis;
  let nodes = [];
  let users = [];
  let conv;
  const viewers = [];

  before(async () => {
    await waitForDatabase();
    redis = await startRedis();
    nodes = await startCluster(3, {
      // SB_DRAIN_MS 0: a stopping node closes its sockets at once (the spread
      // drain, whose viewers leave as their sockets close, is shutdown.test.js's
      // and balancer.test.js's), so its goodbye follows at once
      redis, name: 'cluster_presence', env: { ...BASE_ENV, SB_RATELIMIT_TYPING: '1000/1', SB_DRAIN_MS: '0' },
    });
    await waitClusterUp(nodes);
    for (let i = 0; i < 7; i++) users.push(await signup(nodes[i % 3]));
    const r = await api(nodes[0], 'POST', '/conversations', {
      token: users[0].token,
      body: { kind: 'group', title: 'cluster', member_ids: users.slice(1).map((u) => u.id) },
    });
    assert.equal(r.status, 201, r.text);
    conv = r.json.conversation;
  });
  after(async () => {
    for (const v of viewers) v.close();
    await stopAll(nodes);
    if (redis) await redis.stop();
  });

  const want = (ids) => Object.fromEntries(ids.map((id) => [id, 1]));

  test('Presence lists the viewers of every node exactly once', T, async () => {
    const settled = async (n) => {
      const ids = users.slice(0, n).map((u) => u.id);
      for (const v of viewers) {
        await waitUntil(() => JSON.stringify(v.viewers()) === JSON.stringify(want(ids)), 5000,
          `${v.label} listing all ${n} viewers once (has ${JSON.stringify(v.viewers())})`);
      }
      return ids;
    };
    for (let i = 0; i < 5; i++) {
      const v = new Viewer(users[i], nodes[i % 3], `user${i}@${nodes[i % 3].nodeId}`);
      await v.open(conv.id, { withUser: true });
      viewers.push(v);
    }
    await settled(5);
    // a viewer joining once the others have spread over the cluster gets
    // every node's viewers in its presence_state (diffs cross nodes
    // asynchronously, so only a settled state can be asserted at join time)
    const last = new Viewer(users[5], nodes[2], `user5@${nodes[2].nodeId}`);
    await last.open(conv.id, { withUser: true });
    viewers.push(last);
    const ids = await settled(6);
    assert.deepEqual(Object.keys(last.states[0]).sort(), [...ids].sort(), 'presence_state lists the other nodes\' viewers');
  });

  test('a leave on one node disappears everywhere; a rejoin elsewhere comes back once', T, async () => {
    const ids = users.slice(0, 6).map((u) => u.id);
    const gone = viewers[4]; // on node-b
    await gone.leave();
    const rest = ids.filter((id) => id !== gone.user.id);
    for (const v of viewers.filter((x) => x !== gone)) {
      await waitUntil(() => JSON.stringify(v.viewers()) === JSON.stringify(want(rest)), 5000,
        `${v.label} dropping ${gone.label} (has ${JSON.stringify(v.viewers())})`);
    }
    gone.close();
    viewers.splice(viewers.indexOf(gone), 1);
    const back = new Viewer(users[4], nodes[2], `user4@${nodes[2].nodeId}`);
    await back.open(conv.id);
    viewers.push(back);
    for (const v of viewers) {
      await waitUntil(() => JSON.stringify(v.viewers()) === JSON.stringify(want(ids)), 5000,
        `${v.label} seeing user4 back once (has ${JSON.stringify(v.viewers())})`);
    }
  });

  test('a node\'s first viewer learns the viewers already on the other nodes', T, async () => {
    // every viewer on node-c leaves: node-c stops following the conversation
    const onC = viewers.filter((v) => v.node === nodes[2]);
    for (const v of onC) { await v.leave(); v.close(); viewers.splice(viewers.indexOf(v), 1); }
    const ids = viewers.map((v) => v.user.id);
    for (const v of viewers) {
      await waitUntil(() => JSON.stringify(v.viewers()) === JSON.stringify(want(ids)), 5000,
        `${v.label} after node-c's viewers left (has ${JSON.stringify(v.viewers())})`);
    }
    const first = new Viewer(users[6], nodes[2], `user6@${nodes[2].nodeId}`);
    await first.open(conv.id);
    viewers.push(first);
    const all = [...ids, users[6].id];
    for (const v of viewers) {
      await waitUntil(() => JSON.stringify(v.viewers()) === JSON.stringify(want(all)), 5000,
        `${v.label} listing everyone (has ${JSON.stringify(v.viewers())})`);
    }
    await sleep(500);
    for (const v of viewers) assert.deepEqual(v.viewers(), want(all), `${v.label}: still exactly once`);
  });

  test('typing reaches every other member on every node exactly once, never the typist', T, async () => {
    for (const v of viewers) v.typing = [];
    for (const v of viewers) {
      const [st] = await pushResult(v.ch.push('typing', { state: 'start' }));
      assert.equal(st, 'ok');
    }
    await waitUntil(() => viewers.every((v) => v.typing.length >= viewers.length - 1), 5000, 'typing everywhere');
    await sleep(500);
    for (const v of viewers) {
      const from = v.typing.map((p) => p.user_id).sort();
      const others = viewers.filter((x) => x !== v).map((x) => x.user.id).sort();
      assert.deepEqual(from, others, `${v.label}: one typing from each other member`);
    }
  });

  test('online state spans nodes: online once, offline only when the last node lets go', T, async () => {
    const x = users[6];
    const watcher = viewers.find((v) => v.userCh && v.node === nodes[0]);
    const events = [];
    watcher.userCh.on('presence', (p) => { if (p.user_id === x.id) events.push(p.online); });
    const online = async () => (await api(nodes[0], 'GET', `/users/${x.id}`, { token: watcher.user.token })).json.user.online;
    assert.equal(await online(), false, 'not online yet (viewing is not being online)');
    const sb = phxSocket(nodes[1], x.token);
    await join(sb.channel(`user:${x.id}`, {}));
    await waitUntil(() => events.length >= 1, 5000, 'online event');
    const sc = phxSocket(nodes[2], x.token);
    await join(sc.channel(`user:${x.id}`, {}));
    await sleep(700);
    assert.deepEqual(events, [true], 'one online event for two nodes');
    assert.equal(await online(), true, 'node-a reports a user connected to b and c as online');
    sb.disconnect();
    await sleep(1000);
    assert.deepEqual(events, [true], 'no offline while still connected to node-c');
    assert.equal(await online(), true, 'still online (node-c)');
    sc.disconnect();
    await waitUntil(() => events.length >= 2, 5000, 'offline event');
    await sleep(700);
    assert.deepEqual(events, [true, false], 'one offline when the last node lets go');
    assert.equal(await online(), false);
  });

  test('a logout on one node closes the session\'s sockets on the others (1008), not other sessions', T, async () => {
    const a = await signup(nodes[0]);
    const login = await api(nodes[1], 'POST', '/auth/login', { body: { username: a.username, password: a.password } });
    assert.equal(login.status, 200, login.text);
    const onB = await Client.open(nodes[1].wsUrl(socketPath({ token: a.token })));
    const onC = await Client.open(nodes[2].wsUrl(socketPath({ token: a.token })));
    const otherSession = await Client.open(nodes[2].wsUrl(socketPath({ token: login.json.access_token })));
    try {
      const r = await api(nodes[0], 'POST', '/auth/logout', { token: a.token });
      assert.equal(r.status, 204, r.text);
      for (const [name, c] of [['node-b', onB], ['node-c', onC]]) {
        const closed = await Promise.race([c.closed, sleep(5000).then(() => null)]);
        assert.ok(closed, `${name}: the session's socket was closed`);
        assert.equal(closed.code, 1008, `${name}: close code`);
      }
      await otherSession.expectNothing(500);
      assert.equal(otherSession.closeInfo, null, 'the other session stays connected');
      // the logged-out session's access token is refused on every node, REST and socket
      for (const n of [nodes[1], nodes[2]]) {
        const me = await api(n, 'GET', '/me', { token: a.token });
        assert.equal(me.status, 401, `GET /me on another node after logout: ${me.text}`);
        const again = await Client.open(n.wsUrl(socketPath({ token: a.token }))).then((c) => { c.ws.terminate(); return 'open'; }, (e) => String(e.message || e));
        assert.match(again, /403/, 'a new socket with the logged-out token is refused');
      }
    } finally {
      for (const c of [onB, onC, otherSession]) { try { c.ws.terminate(); } catch { /* gone */ } }
    }
  });

  test('messages reach every member\'s user: channel exactly once on every node', T, async () => {
    const senders = viewers.filter((v) => v.userCh);
    const ids = [];
    for (const s of senders) {
      for (let k = 0; k < 5; k++) {
        const [st, resp] = await pushResult(s.userCh.push('message:send', {
          conversation_id: conv.id, client_id: `${s.label}-${k}-${Date.now()}`, kind: 'text', body: `k${k}`,
        }));
        assert.equal(st, 'ok', JSON.stringify(resp));
        ids.push(resp.message.id);
      }
    }
    for (const v of senders) {
      await waitUntil(() => ids.every((id) => v.messages.has(id)), 10000, `${v.label} getting every message`);
    }
    await sleep(500);
    for (const v of senders) for (const id of ids) assert.equal(v.messages.get(id), 1, `${v.label}: ${id} once`);
  });
  test('a direct chat across nodes: messages and receipts cross exactly once', T, async () => {
    const a = viewers.find((v) => v.userCh && v.node === nodes[0]);
    const c = viewers.find((v) => v.userCh && v.node !== a.node);
    assert.ok(c, 'a member on another node');
    const r = await api(nodes[0], 'POST', '/conversations', { token: a.user.token, body: { kind: 'direct', user_id: c.user.id } });
    assert.ok(r.status === 201 || r.status === 200, r.text);
    const direct = r.json.conversation;
    const ids = [];
    for (const [k, from] of [[0, a], [1, c], [2, a], [3, c]]) {
      const [st, resp] = await pushResult(from.userCh.push('message:send', {
        conversation_id: direct.id, client_id: `direct-${k}-${Date.now()}`, kind: 'text', body: `d${k}`,
      }));
      assert.equal(st, 'ok', JSON.stringify(resp));
      ids.push(resp.message);
    }
    for (const v of [a, c]) await waitUntil(() => ids.every((m) => v.messages.has(m.id)), 10000, `${v.label} has the direct messages`);
    const last = ids[ids.length - 1];
    const [st] = await pushResult(a.userCh.push('receipt', { conversation_id: direct.id, kind: 'read', up_to_seq: last.seq }));
    assert.equal(st, 'ok');
    const mine = (v) => v.receipts.filter((x) => x.conversation_id === direct.id && x.user_id === a.user.id && x.kind === 'read');
    await waitUntil(() => mine(c).length >= 1, 10000, `${c.label} gets ${a.label}'s read receipt`);
    await sleep(500);
    for (const v of [a, c]) {
      for (const m of ids) assert.equal(v.messages.get(m.id), 1, `${v.label}: ${m.id} once`);
      assert.equal(mine(v).length, 1, `${v.label}: the receipt once`);
      assert.equal(mine(v)[0].up_to_seq, last.seq);
    }
  });

  test('a node shutting down says goodbye: its viewers leave at once, not after the timeout', T, async () => {
    const onB = viewers.filter((v) => v.node === nodes[1]);
    assert.ok(onB.length > 0, 'node-b has viewers');
    const rest = viewers.filter((v) => v.node !== nodes[1]);
    const ids = rest.map((v) => v.user.id);
    const t0 = Date.now();
    await nodes[1].stop();
    for (const v of rest) {
      await waitUntil(() => JSON.stringify(v.viewers()) === JSON.stringify(want(ids)), 5000,
        `${v.label} dropping node-b's viewers (has ${JSON.stringify(v.viewers())})`);
    }
    const ms = Date.now() - t0;
    assert.ok(ms < NODE_TIMEOUT_MS, `gone in ${ms} ms, before the ${NODE_TIMEOUT_MS} ms node timeout`);
    for (const n of [nodes[0], nodes[2]]) {
      assert.ok(n.logsMatching(/"msg":"redis_peer_down".*"peer":"node-b".*"reason":"goodbye"/).length === 1, `${n.nodeId} got node-b's goodbye`);
    }
    for (const v of onB) v.close();
  });
});

// Issue 20: a node declared down while alive (its loop stalled under load,
// a brief partition) and then heard again. The survivor announced its users
// offline; once it is heard again their contacts are told they are online,
// once, and the cluster's online state has them again. node-a is stopped
// with SIGSTOP (not killed) past the node timeout, then resumed.
describe('cluster: a node declared down while alive, then heard again', () => {
  let redis;
  let nodes = [];
  const sockets = [];

  before(async () => {
    await waitForDatabase();
    redis = await startRedis();
    nodes = await startCluster(2, { redis, name: 'cluster_presence_stall', env: BASE_ENV });
    await waitClusterUp(nodes);
  });
  after(async () => {
    for (const s of sockets) { try { s.disconnect(); } catch { /* gone */ } }
    for (const n of nodes) { try { n.child.kill('SIGCONT'); } catch { /* gone */ } }
    await stopAll(nodes);
    if (redis) await redis.stop();
  });

  test('its users are announced online again, once, and GET /users says online', T, async () => {
    const [a, b] = nodes;
    const w = await signup(a); // connected to node-a, the one that stalls
    const u = await signup(b); // its contact, connected to node-b
    const r = await api(b, 'POST', '/conversations', { token: u.token, body: { kind: 'direct', user_id: w.id } });
    assert.ok(r.status === 201 || r.status === 200, r.text);

    const onU = []; // presence of w seen by u (on node-b)
    const onW = []; // presence of u seen by w (on node-a)
    const sb = phxSocket(b, u.token);
    sockets.push(sb);
    const chU = sb.channel(`user:${u.id}`, {});
    chU.on('presence', (p) => { if (p.user_id === w.id) onU.push(p.online); });
    await join(chU);
    const sa = phxSocket(a, w.token);
    sockets.push(sa);
    const chW = sa.channel(`user:${w.id}`, {});
    chW.on('presence', (p) => { if (p.user_id === u.id) onW.push(p.online); });
    await join(chW);
    await waitUntil(() => onU.length >= 1, 5000, 'u told w is online');
    const online = async () => (await api(b, 'GET', `/users/${w.id}`, { token: u.token })).json.user.online;
    await waitUntil(online, 5000, 'node-b reporting w online');
    await sleep(500);
    assert.deepEqual(onU, [true], 'u: w online once');
    onW.length = 0;

    // node-a stops (alive, silent) until node-b declares it down and tells u
    const downs = () => b.logsMatching(/"msg":"redis_peer_down".*"peer":"node-a".*"reason":"silent"/).length;
    a.child.kill('SIGSTOP');
    try {
      await waitUntil(() => onU.length >= 2, NODE_TIMEOUT_MS * 3, 'u told w is offline while node-a is stopped');
      assert.equal(downs(), 1, 'node-b declared node-a down (silent)');
      assert.deepEqual(onU, [true, false]);
      assert.equal(await online(), false, 'node-b: w offline while node-a is silent');
    } finally {
      a.child.kill('SIGCONT');
    }

    // node-a is heard again: w is still connected to it
    await waitUntil(() => onU.length >= 3, NODE_TIMEOUT_MS * 2, 'u told w is online again after node-a resumed');
    assert.equal(onU[2], true, 'the event after the resume says online');
    await waitUntil(online, 5000, 'node-b reporting w online again');
    await sleep(1500);
    assert.deepEqual(onU, [true, false, true], 'u: exactly one online event after the resume');
    assert.equal(await online(), true, 'GET /users/w on node-b: online');
    // u never went offline: w is told nothing about u, and node-a never
    // declared node-b down for its own stall
    assert.deepEqual(onW, [], 'w: no presence event about u (u never left)');
    assert.equal(a.logsMatching(/"msg":"redis_peer_down".*"peer":"node-b"/).length, 0, 'node-a kept node-b');
    // a later real transition still works: w leaves node-a, u is told once
    sa.disconnect();
    await waitUntil(() => onU.length >= 4, 5000, 'u told w went offline');
    await sleep(700);
    assert.deepEqual(onU, [true, false, true, false]);
    assert.equal(await online(), false);
  });

  test('the other way round: the lowest-named node announces, then re-announces, a stalled peer\'s users', T, async () => {
    // node-b stalls: node-a is the survivor that tells node-b's users'
    // contacts, and the one that must set it right
    const [a, b] = nodes;
    const u = await signup(b); // connected to node-b, the one that stalls
    const w = await signup(a); // its contact, connected to node-a
    const r = await api(a, 'POST', '/conversations', { token: w.token, body: { kind: 'direct', user_id: u.id } });
    assert.ok(r.status === 201 || r.status === 200, r.text);
    const onW = []; // presence of u seen by w (on node-a)
    const onU = []; // presence of w seen by u (on node-b)
    const sa = phxSocket(a, w.token);
    sockets.push(sa);
    const chW = sa.channel(`user:${w.id}`, {});
    chW.on('presence', (p) => { if (p.user_id === u.id) onW.push(p.online); });
    await join(chW);
    const sb = phxSocket(b, u.token);
    sockets.push(sb);
    const chU = sb.channel(`user:${u.id}`, {});
    chU.on('presence', (p) => { if (p.user_id === w.id) onU.push(p.online); });
    await join(chU);
    await waitUntil(() => onW.length >= 1, 5000, 'w told u is online');
    const online = async () => (await api(a, 'GET', `/users/${u.id}`, { token: w.token })).json.user.online;
    await waitUntil(online, 5000, 'node-a reporting u online');
    await sleep(500);
    assert.deepEqual(onW, [true]);
    onU.length = 0;

    b.child.kill('SIGSTOP');
    try {
      await waitUntil(() => onW.length >= 2, NODE_TIMEOUT_MS * 3, 'w told u is offline while node-b is stopped');
      assert.deepEqual(onW, [true, false]);
      assert.equal(await online(), false, 'node-a: u offline while node-b is silent');
    } finally {
      b.child.kill('SIGCONT');
    }
    await waitUntil(() => onW.length >= 3, NODE_TIMEOUT_MS * 2, 'w told u is online again after node-b resumed');
    await waitUntil(online, 5000, 'node-a reporting u online again');
    await sleep(1500);
    assert.deepEqual(onW, [true, false, true], 'w: exactly one online event after the resume');
    assert.equal(await online(), true, 'GET /users/u on node-a: online');
    assert.deepEqual(onU, [], 'u: no presence event about w (w never left)');
    assert.equal(b.logsMatching(/"msg":"redis_peer_down".*"peer":"node-a"/).length, 1,
      'node-b declared node-a down only in the first test, never for its own stall');
  });

  test('Redis itself stalls past the node timeout: both sides end with everyone online, no duplicate event', T, async () => {
    // each node may declare the other down (and, as the lowest of what it
    // hears, announce the other's users offline), or see its own link down
    // and only forget: whichever happened, once Redis is back every contact
    // ends told "online", never twice in a row, and both nodes say online
    const [a, b] = nodes;
    const x = await signup(a);
    const y = await signup(b);
    const r = await api(a, 'POST', '/conversations', { token: x.token, body: { kind: 'direct', user_id: y.id } });
    assert.ok(r.status === 201 || r.status === 200, r.text);
    const onX = []; // presence of y seen by x (node-a)
    const onY = []; // presence of x seen by y (node-b)
    const sa = phxSocket(a, x.token);
    sockets.push(sa);
    const chX = sa.channel(`user:${x.id}`, {});
    chX.on('presence', (p) => { if (p.user_id === y.id) onX.push(p.online); });
    await join(chX);
    const sb = phxSocket(b, y.token);
    sockets.push(sb);
    const chY = sb.channel(`user:${y.id}`, {});
    chY.on('presence', (p) => { if (p.user_id === x.id) onY.push(p.online); });
    await join(chY);
    await waitUntil(() => onX.length >= 1 && onY.length >= 1, 5000, 'each told the other is online');
    const online = async (n, who, tok) => (await api(n, 'GET', `/users/${who.id}`, { token: tok.token })).json.user.online;
    await waitUntil(async () => (await online(a, y, x)) && (await online(b, x, y)), 5000, 'both online on both nodes');
    const downs = () => a.logsMatching(/"msg":"redis_peer_down"/).length + b.logsMatching(/"msg":"redis_peer_down"/).length;
    const before = downs();
    redis.child.kill('SIGSTOP');
    try {
      await waitUntil(() => downs() > before, NODE_TIMEOUT_MS * 4, 'a node declaring the other down');
    } finally {
      redis.child.kill('SIGCONT');
    }
    await waitClusterUp(nodes);
    await waitUntil(async () => (await online(a, y, x)) && (await online(b, x, y)), NODE_TIMEOUT_MS * 3,
      'both online again on both nodes');
    await waitUntil(() => onX[onX.length - 1] === true && onY[onY.length - 1] === true, NODE_TIMEOUT_MS * 2,
      'each contact last told "online"');
    await sleep(1500);
    for (const [who, ev] of [['x', onX], ['y', onY]]) {
      assert.equal(ev[ev.length - 1], true, `${who}: last event says online (${JSON.stringify(ev)})`);
      for (let i = 1; i < ev.length; i++) assert.notEqual(ev[i], ev[i - 1], `${who}: no event repeated (${JSON.stringify(ev)})`);
    }
  });
});
