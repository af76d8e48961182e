'use strict';
// Safety across two nodes on one Redis (issue 15): a block made on one node
// holds at once on the other (REST and channel sends, calls, presence), an
// unblock restores everything there (every refusal of the S1 matrix's
// blocked-user column is checked on the other node); an account deleted on one node stops
// its tokens, refresh tokens and sockets on the other at once; a password
// changed on one node leaves only the current session alive on both. An
// unblock restores the online state and last seen the cluster knows, on
// whichever node each user is connected; a block ends a call ringing across
// the nodes between the two users at once.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const WebSocket = require('ws');
const { BASE_ENV, api, assertError, signup, waitForDatabase, sql, until, sleep, connect, join, push, uname } = require('./lib/api');
const net = require('node:net');
const { startRedis, startCluster, waitClusterUp, stopAll, waitUntil } = require('./lib/cluster');
const { slow } = require('./lib/server');
const { Device, startCall } = require('./lib/calls');

const T = { timeout: 90000 * slow() };

async function listen(srv, user) {
  const sock = await connect(srv, user);
  const { ch } = await join(sock, `user:${user.id}`);
  const events = [];
  for (const ev of ['message:new', 'presence', 'call:incoming']) ch.on(ev, (payload) => events.push({ ev, payload }));
  return { sock, ch, events };
}

async function rawSocket(srv, token) {
  const ws = new WebSocket(srv.wsUrl(`/socket/websocket?vsn=2.0.0&token=${encodeURIComponent(token)}`));
  await new Promise((res, rej) => { ws.once('open', res); ws.once('error', rej); });
  ws.closedWith = new Promise((res) => ws.once('close', (code) => res(code)));
  return ws;
}
/** Redis PUBSUB NUMSUB of a bus topic (-1 when Redis does not answer). */
function numsub(port, topic) {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    let buf = '';
    const done = (v) => { clearTimeout(t); sock.destroy(); resolve(v); };
    const t = setTimeout(() => done(-1), 2000);
    sock.on('connect', () => sock.write(`PUBSUB NUMSUB sb:t:${topic}\r\n`));
    sock.on('data', (d) => { buf += d; const m = buf.match(/:(\d+)\r\n$/); if (m) done(Number(m[1])); });
    sock.on('error', () => done(-1));
  });
}
const closedCode = (ws) => Promise.race([ws.closedWith, sleep(5000 * slow()).then(() => 'timeout')]);
const send = (srv, u, conv, body) => api(srv, 'POST', `/conversations/${conv}/messages`,
  { token: u.token, body: { client_id: uname(), kind: 'text', body } });

describe('safety across nodes', () => {
  let redis;
  let nodes = [];
  const socks = [];
  before(async () => {
    await waitForDatabase();
    redis = await startRedis();
    nodes = await startCluster(2, { redis, name: 'moderation_cluster', env: { ...BASE_ENV } });
    await waitClusterUp(nodes);
  });
  after(async () => {
    for (const s of socks) { try { s.disconnect ? s.disconnect() : s.terminate(); } catch { /* gone */ } }
    await stopAll(nodes);
    if (redis) await redis.stop();
  });

  test('a block made on node 1 refuses the blocked user on node 2 at once (REST, channel, call, presence); unblock restores', T, async () => {
    const [n1, n2] = nodes;
    const a = await signup(n1);
    const b = await signup(n2);
    const conv = (await api(n1, 'POST', '/conversations', { token: a.token, body: { kind: 'direct', user_id: b.id } })).json.conversation.id;
    const la = await listen(n1, a);
    const lb = await listen(n2, b);
    socks.push(la.sock, lb.sock);
    // node 2 has subscribed user:<b> on Redis (a join answers before the SUBSCRIBE is confirmed)
    await waitUntil(async () => (await numsub(redis.port, `user:${b.id}`)) >= 1, 10000 * slow(), 'NUMSUB user:<b>');
    assert.equal((await api(n1, 'POST', '/blocks', { token: a.token, body: { user_id: b.id } })).status, 201);
    // at once, on the other node
    assertError(await send(n2, b, conv, 'rest'), 403, 'forbidden');
    const ch = await push(lb.ch, 'message:send', { conversation_id: conv, client_id: uname(), kind: 'text', body: 'channel' });
    assert.equal(ch.response.reason, 'forbidden');
    assertError(await api(n2, 'POST', '/calls', { token: b.token, body: { user_id: a.id, media: 'audio' } }), 403, 'forbidden');
    await until(() => lb.events.some((e) => e.ev === 'presence' && e.payload.user_id === a.id && !e.payload.online), 10000, 'offline across nodes');
    const u = await api(n2, 'GET', `/users/${a.id}`, { token: b.token });
    assert.equal(u.json.user.online, false);
    assert.equal(u.json.user.last_seen_at, null);
    assert.equal(Number(sql(`SELECT count(*) FROM messages WHERE conversation_id = ${conv}`)), 0, 'nothing stored');
    assert.equal(Number(sql(`SELECT count(*) FROM calls WHERE caller_id = ${b.id}`)), 0, 'no call');
    // unblock on node 2 (the blocker's REST may land anywhere), used on node 2 at once
    assert.equal((await api(n2, 'DELETE', `/blocks/${b.id}`, { token: a.token })).status, 204);
    const ok = await send(n2, b, conv, 'after unblock');
    assert.equal(ok.status, 201, ok.text);
    await until(() => la.events.some((e) => e.ev === 'message:new' && e.payload.message.id === ok.json.message.id), 10000, 'delivered across nodes');
    const okc = await push(lb.ch, 'message:send', { conversation_id: conv, client_id: uname(), kind: 'text', body: 'channel after unblock' });
    assert.equal(okc.status, 'ok', JSON.stringify(okc));
    const call = await api(n2, 'POST', '/calls', { token: b.token, body: { user_id: a.id, media: 'audio' } });
    assert.equal(call.status, 201, call.text);
    await until(() => la.events.some((e) => e.ev === 'call:incoming'), 10000, 'call:incoming across nodes');
  });

  test('every other refusal holds on node 2 for a block made on node 1 (edit, react, direct chat, groups, conversation join, keys, call by conversation); unblock on node 1 restores them', T, async () => {
    const [n1, n2] = nodes;
    const a = await signup(n1); // the blocker
    const b = await signup(n2); // blocked, shares a direct chat with a
    const b2 = await signup(n2); // blocked, no direct chat with a
    const c = await signup(n2);
    const conv = (await api(n1, 'POST', '/conversations', { token: a.token, body: { kind: 'direct', user_id: b.id } })).json.conversation.id;
    const before = await send(n2, b, conv, 'before the block');
    assert.equal(before.status, 201, before.text);
    const mine = await send(n1, a, conv, 'from the blocker');
    assert.equal(mine.status, 201, mine.text);
    const bundle = { identity_key: Buffer.alloc(33, 7).toString('base64'), signed_prekey: { id: 1, public_key: Buffer.alloc(32, 1).toString('base64'), signature: Buffer.alloc(64, 2).toString('base64') }, one_time_prekeys: [{ id: 1, public_key: Buffer.alloc(32, 3).toString('base64') }] };
    assert.ok((await api(n1, 'PUT', '/keys', { token: a.token, body: bundle })).status < 300);
    const g = await api(n2, 'POST', '/conversations', { token: b.token, body: { kind: 'group', title: 'g', member_ids: [c.id] } });
    assert.equal(g.status, 201, g.text);
    const gid = g.json.conversation.id;
    const lb = await listen(n2, b);
    socks.push(lb.sock);
    for (const u of [b, b2]) assert.equal((await api(n1, 'POST', '/blocks', { token: a.token, body: { user_id: u.id } })).status, 201);
    // on node 2, at once
    assertError(await api(n2, 'PATCH', `/messages/${before.json.message.id}`, { token: b.token, body: { body: 'edited' } }), 403, 'forbidden');
    assert.equal((await push(lb.ch, 'message:edit', { message_id: before.json.message.id, body: 'edited' })).response.reason, 'forbidden');
    assertError(await api(n2, 'POST', `/messages/${mine.json.message.id}/reactions`, { token: b.token, body: { emoji: '👍' } }), 403, 'forbidden');
    assert.equal((await push(lb.ch, 'message:react', { message_id: mine.json.message.id, emoji: '👍', op: 'add' })).response.reason, 'forbidden');
    assertError(await api(n2, 'POST', '/conversations', { token: b2.token, body: { kind: 'direct', user_id: a.id } }), 403, 'forbidden');
    assertError(await api(n2, 'POST', '/conversations', { token: b.token, body: { kind: 'group', title: 'h', member_ids: [a.id, c.id] } }), 403, 'forbidden');
    assertError(await api(n2, 'POST', `/conversations/${gid}/members`, { token: b.token, body: { user_ids: [a.id] } }), 403, 'forbidden');
    await assert.rejects(join(lb.sock, `conversation:${conv}`), (e) => e.resp && e.resp.reason === 'forbidden');
    assertError(await api(n2, 'GET', `/keys/${a.id}`, { token: b.token }), 404, 'not_found');
    assertError(await api(n2, 'POST', '/calls', { token: b.token, body: { conversation_id: conv, media: 'video' } }), 403, 'forbidden');
    assert.equal(Number(sql(`SELECT count(*) FROM messages WHERE id = ${before.json.message.id} AND edited_at IS NOT NULL`)), 0, 'no edit');
    assert.equal(Number(sql(`SELECT count(*) FROM reactions WHERE message_id = ${mine.json.message.id}`)), 0, 'no reaction');
    assert.equal(Number(sql(`SELECT count(*) FROM members WHERE conversation_id = ${gid} AND user_id = ${a.id}`)), 0, 'not added');
    assert.equal(Number(sql(`SELECT count(*) FROM e2e_prekeys WHERE user_id = ${a.id}`)), 1, 'no prekey taken');
    // unblock on node 1: each works on node 2 at once
    for (const u of [b, b2]) assert.equal((await api(n1, 'DELETE', `/blocks/${u.id}`, { token: a.token })).status, 204);
    assert.equal((await api(n2, 'PATCH', `/messages/${before.json.message.id}`, { token: b.token, body: { body: 'edited' } })).status, 200);
    assert.equal((await push(lb.ch, 'message:react', { message_id: mine.json.message.id, emoji: '👍', op: 'add' })).status, 'ok');
    assert.equal((await api(n2, 'POST', '/conversations', { token: b2.token, body: { kind: 'direct', user_id: a.id } })).status, 201);
    assert.equal((await api(n2, 'POST', `/conversations/${gid}/members`, { token: b.token, body: { user_ids: [a.id] } })).status, 200);
    await join(lb.sock, `conversation:${conv}`);
    assert.equal((await api(n2, 'GET', `/keys/${a.id}`, { token: b.token })).status, 200);
    const call = await api(n2, 'POST', '/calls', { token: b.token, body: { conversation_id: conv, media: 'video' } });
    assert.equal(call.status, 201, call.text);
    assert.equal((await api(n2, 'POST', '/blocks', { token: a.token, body: { user_id: b.id } })).status, 201, 'and blocking again ends that call');
    assert.equal(sql(`SELECT state || ':' || end_reason FROM calls WHERE id = ${call.json.call.id}`), 'ended:declined');
  });

  test('unblock restores the cluster-wide online state and last seen, both ways, whichever node answers and each user is on', T, async () => {
    const [n1, n2] = nodes;
    const a = await signup(n1); // the blocker, connected to node 1 only
    const b = await signup(n2); // the blocked user, connected to node 2 only
    await api(n1, 'POST', '/conversations', { token: a.token, body: { kind: 'direct', user_id: b.id } });
    // b first, then a, each once the previous one's own online transition
    // is stored (and so pushed): no transition of the joins can arrive
    // after the events are cleared below (b's went to nobody, a's to b)
    const seenOf = (u) => sql(`SELECT COALESCE(last_seen_at, 'epoch')::text FROM users WHERE id = ${u.id}`);
    const connected = async (srv, u) => {
      const before = seenOf(u);
      const l = await listen(srv, u);
      socks.push(l.sock);
      await waitUntil(async () => (await numsub(redis.port, `user:${u.id}`)) >= 1, 10000 * slow(), `NUMSUB user:<${u.id}>`);
      await waitUntil(async () => seenOf(u) !== before, 10000 * slow(), `${u.id}'s online transition`);
      return l;
    };
    const lb = await connected(n2, b);
    const la = await connected(n1, a);
    // each node knows the other's user online (the cluster's online state)
    await waitUntil(async () => (await api(n1, 'GET', `/users/${b.id}`, { token: a.token })).json.user.online === true, 10000 * slow(), 'node 1 sees b online');
    await waitUntil(async () => (await api(n2, 'GET', `/users/${a.id}`, { token: b.token })).json.user.online === true, 10000 * slow(), 'node 2 sees a online');
    const presence = (l, who, pred) => l.events.some((e) => e.ev === 'presence' && e.payload.user_id === who && pred(e.payload));
    await until(() => presence(lb, a.id, (p) => p.online), 10000, 'b told a is online (a\'s transition)');
    // two rounds: the unblock answered by the node without the blocker, then by the node without the blocked user
    for (const [blockOn, unblockOn, which] of [[n1, n2, 'node 2'], [n2, n1, 'node 1']]) {
      assert.equal((await api(blockOn, 'POST', '/blocks', { token: a.token, body: { user_id: b.id } })).status, 201);
      await until(() => presence(lb, a.id, (p) => !p.online && p.last_seen_at === null), 10000, 'b told a is offline at the block');
      la.events.length = 0;
      lb.events.length = 0;
      assert.equal((await api(unblockOn, 'DELETE', `/blocks/${b.id}`, { token: a.token })).status, 204);
      await until(() => presence(lb, a.id, (p) => p.online === true && p.last_seen_at), 10000, `b told a is online (unblock on ${which})`);
      await until(() => presence(la, b.id, (p) => p.online === true && p.last_seen_at), 10000, `a told b is online (unblock on ${which})`);
      assert.ok(!presence(lb, a.id, (p) => !p.online), 'never told offline at the unblock');
      for (const n of nodes) {
        assert.equal((await api(n, 'GET', `/users/${a.id}`, { token: b.token })).json.user.online, true, 'GET /users/<a> by b');
        assert.equal((await api(n, 'GET', `/users/${b.id}`, { token: a.token })).json.user.online, true, 'GET /users/<b> by a');
      }
    }
    // the blocker offline everywhere: the unblock gives b the stored last seen, not null
    la.sock.disconnect();
    await waitUntil(async () => (await api(n2, 'GET', `/users/${a.id}`, { token: b.token })).json.user.online === false, 10000 * slow(), 'a offline');
    const seen = (await api(n1, 'GET', `/users/${a.id}`, { token: b.token })).json.user.last_seen_at;
    assert.ok(seen, 'a has a last seen');
    assert.equal((await api(n2, 'POST', '/blocks', { token: a.token, body: { user_id: b.id } })).status, 201);
    await until(() => presence(lb, a.id, (p) => !p.online && p.last_seen_at === null), 10000, 'hidden at the block');
    lb.events.length = 0;
    assert.equal((await api(n1, 'DELETE', `/blocks/${b.id}`, { token: a.token })).status, 204);
    await until(() => presence(lb, a.id, () => true), 10000, 'b told a\'s state at the unblock');
    const p = lb.events.find((e) => e.ev === 'presence' && e.payload.user_id === a.id).payload;
    assert.equal(p.online, false);
    assert.ok(p.last_seen_at, 'the stored last seen, not null');
    assert.ok(Math.abs(Date.parse(p.last_seen_at) - Date.parse(seen)) <= 1, `${p.last_seen_at} vs ${seen}`);
  });

  test('a call ringing across nodes ends at once for both when the callee blocks the caller (declined); a new call is refused', T, async () => {
    const [n1, n2] = nodes;
    const a = await signup(n1); // the callee, who blocks
    const b = await signup(n2); // the caller
    const conv = (await api(n2, 'POST', '/conversations', { token: b.token, body: { kind: 'direct', user_id: a.id } })).json.conversation.id;
    const da = await Device.open(n1, a);
    const db = await Device.open(n2, b);
    socks.push(da.sock, db.sock);
    const { call } = await startCall(n2, b, { user_id: a.id, media: 'audio' });
    await da.waitUserEvent((e) => e.event === 'call:incoming' && e.call.id === call.id, 10000, 'call:incoming across nodes');
    await da.joinCall(call.id);
    await db.joinCall(call.id);
    assert.equal((await da.push(call.id, 'ringing')).status, 'ok');
    await db.waitState(call.id, 'ringing');
    const t0 = Date.now();
    assert.equal((await api(n1, 'POST', '/blocks', { token: a.token, body: { user_id: b.id } })).status, 201);
    // both sides: `state` on call:<id> and call:updated on user:<id>, within a second
    for (const d of [da, db]) {
      const s = await d.waitState(call.id, 'ended', 1000);
      assert.equal(s.end_reason, 'declined');
      const u = await d.waitUserEvent((e) => e.event === 'call:updated' && e.call.id === call.id && e.call.state === 'ended', 1000, 'call:updated ended');
      assert.equal(u.call.end_reason, 'declined');
    }
    assert.ok(Date.now() - t0 <= 1000 * slow(), `ended ${Date.now() - t0} ms after the block`);
    assert.equal(sql(`SELECT state || ':' || end_reason FROM calls WHERE id = ${call.id}`), 'ended:declined');
    for (const [u, n] of [[a, n1], [b, n2]]) assert.equal((await api(n, 'GET', '/calls/active', { token: u.token })).json.call, null);
    assertError(await api(n2, 'POST', '/calls', { token: b.token, body: { user_id: a.id, media: 'audio' } }), 403, 'forbidden');
    assertError(await api(n1, 'POST', '/calls', { token: b.token, body: { conversation_id: conv, media: 'video' } }), 403, 'forbidden');
    assert.equal(Number(sql(`SELECT count(*) FROM calls WHERE caller_id = ${b.id}`)), 1, 'no new call');
  });

  test('an account deleted on node 1: its tokens, refresh tokens and sockets stop on node 2 at once; others see the placeholder', T, async () => {
    const [n1, n2] = nodes;
    const a = await signup(n1);
    const b = await signup(n2);
    await api(n1, 'POST', '/conversations', { token: a.token, body: { kind: 'direct', user_id: b.id } });
    const second = (await api(n2, 'POST', '/auth/login', { body: { username: a.username, password: a.password } })).json;
    const w1 = await rawSocket(n2, a.token);
    const w2 = await rawSocket(n2, second.access_token);
    const w3 = await rawSocket(n1, second.access_token);
    socks.push(w1, w2, w3);
    assertError(await api(n1, 'DELETE', '/me', { token: a.token, body: { password: 'wrong password!' } }), 403, 'forbidden');
    const r = await api(n1, 'DELETE', '/me', { token: a.token, body: { password: a.password } });
    assert.equal(r.status, 204, r.text);
    for (const w of [w1, w2, w3]) assert.equal(await closedCode(w), 1008);
    for (const t of [a.token, second.access_token]) assertError(await api(n2, 'GET', '/me', { token: t }), 401, 'unauthorized');
    for (const t of [a.refresh_token, second.refresh_token]) assertError(await api(n2, 'POST', '/auth/refresh', { body: { refresh_token: t } }), 401, 'unauthorized');
    await assert.rejects(rawSocket(n2, second.access_token), 'a new socket is refused on node 2');
    assertError(await api(n2, 'POST', '/auth/login', { body: { username: a.username, password: a.password } }), 401, 'unauthorized');
    const u = await api(n2, 'GET', `/users/${a.id}`, { token: b.token });
    assert.equal(u.json.user.display_name, 'Deleted account');
    assert.equal(u.json.user.deleted, true);
  });

  test('a password changed on node 1 leaves only the current session, on both nodes', T, async () => {
    const [n1, n2] = nodes;
    const a = await signup(n1);
    const other = (await api(n2, 'POST', '/auth/login', { body: { username: a.username, password: a.password } })).json;
    const wOther = await rawSocket(n2, other.access_token);
    const wCur = await rawSocket(n2, a.token);
    socks.push(wOther, wCur);
    let curClosed = false;
    wCur.once('close', () => { curClosed = true; });
    const r = await api(n1, 'POST', '/me/password', { token: a.token, body: { current_password: a.password, new_password: 'brand new password' } });
    assert.equal(r.status, 204, r.text);
    assert.equal(await closedCode(wOther), 1008);
    assertError(await api(n2, 'GET', '/me', { token: other.access_token }), 401, 'unauthorized');
    assertError(await api(n2, 'POST', '/auth/refresh', { body: { refresh_token: other.refresh_token } }), 401, 'unauthorized');
    assert.equal((await api(n2, 'GET', '/me', { token: a.token })).status, 200);
    assert.equal(curClosed, false, 'the current session keeps its socket on node 2');
  });
});
