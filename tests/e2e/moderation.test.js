'use strict';
// Safety on one node (issue 15): blocks (list/block/unblock; every way a
// blocked user could reach the blocker refused over REST and channel, with
// nothing stored or delivered; groups unaffected; unblock restores), reports
// (with and without a target, the snapshot surviving an edit and a delete,
// rate limited), password change and account deletion. Real Postgres, real
// phoenix.js clients.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const WebSocket = require('ws');
const { startServer, slow } = require('./lib/server');
const {
  BASE_ENV, api, assertError, signup, waitForDatabase, sql, until, sleep, connect, join, push, uname,
} = require('./lib/api');
const { Device, startCall } = require('./lib/calls');

const T = { timeout: 60000 * slow() };
const GRACE_S = 3;

/** Joins user:<id> on a new socket and records every event pushed on it. */
async function listen(srv, user) {
  const sock = await connect(srv, user);
  const { ch } = await join(sock, `user:${user.id}`);
  const events = [];
  for (const ev of ['message:new', 'message:updated', 'conversation:updated', 'presence', 'call:incoming']) {
    ch.on(ev, (payload) => events.push({ ev, payload }));
  }
  return { sock, ch, events, user };
}

/** A raw WebSocket for token; resolves once open. Its close code lands in .code. */
async function rawSocket(srv, token) {
  const ws = new WebSocket(srv.wsUrl(`/socket/websocket?vsn=2.0.0&token=${encodeURIComponent(token)}`));
  await new Promise((res, rej) => { ws.once('open', res); ws.once('error', rej); });
  ws.closedWith = new Promise((res) => ws.once('close', (code) => res(code)));
  return ws;
}

const direct = async (srv, a, b) => {
  const r = await api(srv, 'POST', '/conversations', { token: a.token, body: { kind: 'direct', user_id: b.id } });
  assert.ok(r.status === 201 || r.status === 200, r.text);
  return r.json.conversation.id;
};
const send = (srv, u, conv, body, cid = uname()) => api(srv, 'POST', `/conversations/${conv}/messages`,
  { token: u.token, body: { client_id: cid, kind: 'text', body } });
const block = (srv, a, b) => api(srv, 'POST', '/blocks', { token: a.token, body: { user_id: b.id } });
const count = (q) => Number(sql(q));
const b64 = (n = 32) => crypto.randomBytes(n).toString('base64');
const keyBundle = () => ({
  identity_key: b64(33), signed_prekey: { id: 1, public_key: b64(), signature: b64(64) },
  one_time_prekeys: [{ id: 1, public_key: b64() }, { id: 2, public_key: b64() }],
});

describe('blocks, reports and account safety on one node', () => {
  let srv;
  const socks = [];
  before(async () => {
    await waitForDatabase();
    srv = await startServer({
      name: 'moderation',
      env: { ...BASE_ENV, SB_RATELIMIT_REPORT: '5/600', SB_ACCOUNT_USERNAME_GRACE: String(GRACE_S), SB_CALL_TICK_MS: '100' },
    });
  });
  after(async () => {
    for (const s of socks) { try { s.disconnect ? s.disconnect() : s.terminate(); } catch { /* gone */ } }
    if (srv) await srv.stop();
  });
  const track = (x) => { socks.push(x.sock || x); return x; };

  describe('the block list', () => {
    test('block (201, then 200), list paginated, unblock (204, then 404); bad input changes nothing', T, async () => {
      const a = await signup(srv);
      const bs = [await signup(srv), await signup(srv), await signup(srv)];
      for (const b of bs) {
        const r = await block(srv, a, b);
        assert.equal(r.status, 201, r.text);
        assert.equal(r.json.block.user.id, b.id);
        assert.equal(r.json.block.user.username, b.username);
        assert.match(r.json.block.created_at, /Z$/);
      }
      const again = await block(srv, a, bs[0]);
      assert.equal(again.status, 200, again.text);
      const ids = [];
      let cursor = null;
      for (let i = 0; i < 5; i++) {
        // eslint-disable-next-line no-await-in-loop
        const r = await api(srv, 'GET', `/blocks?limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, { token: a.token });
        assert.equal(r.status, 200, r.text);
        ids.push(...r.json.items.map((x) => x.user.id));
        cursor = r.json.next_cursor;
        if (!cursor) break;
      }
      assert.deepEqual(ids.sort(), bs.map((b) => b.id).sort(), 'every blocked user once over the pages');
      // bad input
      assertError(await api(srv, 'POST', '/blocks', { token: a.token, body: {} }), 422, 'validation_failed');
      assertError(await api(srv, 'POST', '/blocks', { token: a.token, body: { user_id: a.id } }), 422, 'validation_failed');
      assertError(await api(srv, 'POST', '/blocks', { token: a.token, body: { user_id: 'x1' } }), 422, 'validation_failed');
      assertError(await api(srv, 'POST', '/blocks', { token: a.token, body: { user_id: '999999999' } }), 404, 'not_found');
      assertError(await api(srv, 'GET', '/blocks?cursor=nonsense', { token: a.token }), 422, 'validation_failed');
      assertError(await api(srv, 'GET', '/blocks'), 401, 'unauthorized');
      assertError(await api(srv, 'POST', '/blocks', { body: { user_id: bs[0].id } }), 401, 'unauthorized');
      assertError(await api(srv, 'DELETE', `/blocks/${bs[0].id}`), 401, 'unauthorized');
      assert.equal(count(`SELECT count(*) FROM blocks WHERE blocker_id = ${a.id}`), 3);
      // unblock
      const d = await api(srv, 'DELETE', `/blocks/${bs[0].id}`, { token: a.token });
      assert.equal(d.status, 204, d.text);
      assertError(await api(srv, 'DELETE', `/blocks/${bs[0].id}`, { token: a.token }), 404, 'not_found');
      assertError(await api(srv, 'DELETE', '/blocks/abc', { token: a.token }), 404, 'not_found');
      const left = await api(srv, 'GET', '/blocks', { token: a.token });
      assert.equal(left.json.items.length, 2);
      // another user's list is theirs alone
      const other = await api(srv, 'GET', '/blocks', { token: bs[1].token });
      assert.deepEqual(other.json.items, []);
    });
  });

  describe('a blocked user cannot reach the blocker (S1)', () => {
    test('direct messages over REST and channel: 403 / forbidden, nothing stored, nothing delivered; edits and reactions too', T, async () => {
      const a = await signup(srv); // blocker
      const b = await signup(srv); // blocked
      const conv = await direct(srv, a, b);
      const la = track(await listen(srv, a));
      const lb = track(await listen(srv, b));
      const before = await send(srv, b, conv, 'before the block');
      assert.equal(before.status, 201, before.text);
      const mine = await send(srv, a, conv, 'from the blocker');
      assert.equal(mine.status, 201, mine.text);
      assert.equal((await api(srv, 'POST', `/messages/${mine.json.message.id}/reactions`, { token: b.token, body: { emoji: '🎉' } })).status, 200);
      // what B did before the block has reached A (the tailer delivers in order): from here on, nothing may
      await until(() => la.events.some((e) => e.payload.message && e.payload.message.id === mine.json.message.id &&
        JSON.stringify(e.payload.message.reactions || []).includes('🎉')), 10000, 'the reaction before the block');
      const seenBefore = la.events.length;
      assert.equal((await block(srv, a, b)).status, 201);

      const stored = count(`SELECT count(*) FROM messages WHERE conversation_id = ${conv}`);
      assertError(await send(srv, b, conv, 'rest after block'), 403, 'forbidden');
      const ch = await push(lb.ch, 'message:send', { conversation_id: conv, client_id: uname(), kind: 'text', body: 'channel after block' });
      assert.equal(ch.status, 'error');
      assert.equal(ch.response.reason, 'forbidden');
      // several in one burst (the send batch)
      const burst = await Promise.all([1, 2, 3, 4, 5].map((i) => push(lb.ch, 'message:send', { conversation_id: conv, client_id: uname(), kind: 'text', body: `burst ${i}` })));
      for (const r of burst) assert.equal(r.response.reason, 'forbidden', JSON.stringify(r));
      // edit and react
      assertError(await api(srv, 'PATCH', `/messages/${before.json.message.id}`, { token: b.token, body: { body: 'edited' } }), 403, 'forbidden');
      const ed = await push(lb.ch, 'message:edit', { message_id: before.json.message.id, body: 'edited' });
      assert.equal(ed.response.reason, 'forbidden');
      assertError(await api(srv, 'POST', `/messages/${mine.json.message.id}/reactions`, { token: b.token, body: { emoji: '👍' } }), 403, 'forbidden');
      const re = await push(lb.ch, 'message:react', { message_id: mine.json.message.id, emoji: '👍', op: 'add' });
      assert.equal(re.response.reason, 'forbidden');
      // a marker from a third user proves delivery ran meanwhile
      const c = await signup(srv);
      const cconv = await direct(srv, c, a);
      assert.equal((await send(srv, c, cconv, 'marker')).status, 201);
      await until(() => la.events.some((e) => e.ev === 'message:new' && e.payload.message.body === 'marker'), 10000, 'marker');
      assert.equal(count(`SELECT count(*) FROM messages WHERE conversation_id = ${conv}`), stored, 'nothing stored');
      assert.equal(count(`SELECT count(*) FROM messages WHERE id = ${before.json.message.id} AND edited_at IS NOT NULL`), 0);
      assertError(await api(srv, 'DELETE', `/messages/${mine.json.message.id}/reactions/${encodeURIComponent('🎉')}`, { token: b.token }), 403, 'forbidden');
      const unre = await push(lb.ch, 'message:react', { message_id: mine.json.message.id, emoji: '🎉', op: 'remove' });
      assert.equal(unre.response.reason, 'forbidden');
      assert.equal(sql(`SELECT string_agg(emoji, ',') FROM reactions WHERE message_id = ${mine.json.message.id}`), '🎉', 'only the reaction made before the block');
      assert.ok(!la.events.slice(seenBefore).some((e) => e.payload.message && e.payload.message.conversation_id === conv),
        'nothing from the blocked user reached the blocker (no message:new, no message:updated)');
      // the blocker's history is still readable by the blocked user (the old messages stay)
      const h = await api(srv, 'GET', `/conversations/${conv}/messages`, { token: b.token });
      assert.equal(h.status, 200, h.text);
      // unblock restores sending
      assert.equal((await api(srv, 'DELETE', `/blocks/${b.id}`, { token: a.token })).status, 204);
      const after1 = await send(srv, b, conv, 'after unblock');
      assert.equal(after1.status, 201, after1.text);
      const after2 = await push(lb.ch, 'message:send', { conversation_id: conv, client_id: uname(), kind: 'text', body: 'after unblock (channel)' });
      assert.equal(after2.status, 'ok', JSON.stringify(after2));
      await until(() => la.events.filter((e) => e.ev === 'message:new' && e.payload.message.sender_id === b.id).length >= 2, 10000, 'delivery after unblock');
      assert.equal((await api(srv, 'PATCH', `/messages/${before.json.message.id}`, { token: b.token, body: { body: 'edited' } })).status, 200);
    });

    test('a retry of a message stored before the block still answers the original (idempotency)', T, async () => {
      const a = await signup(srv);
      const b = await signup(srv);
      const conv = await direct(srv, a, b);
      const cid = uname();
      const first = await send(srv, b, conv, 'hello', cid);
      assert.equal(first.status, 201);
      await block(srv, a, b);
      const retry = await send(srv, b, conv, 'hello', cid);
      assert.ok(retry.status === 200 || retry.status === 201, retry.text);
      assert.equal(retry.json.message.id, first.json.message.id);
    });

    test('no new direct chat, no call (by user or conversation), no adding the blocker to a group; unblock restores', T, async () => {
      const a = await signup(srv);
      const b = await signup(srv);
      const c = await signup(srv);
      assert.equal((await block(srv, a, b)).status, 201);
      assertError(await api(srv, 'POST', '/conversations', { token: b.token, body: { kind: 'direct', user_id: a.id } }), 403, 'forbidden');
      assert.equal(count(`SELECT count(*) FROM conversations WHERE direct_key = '${Math.min(a.id, b.id)}:${Math.max(a.id, b.id)}'`), 0);
      assertError(await api(srv, 'POST', '/calls', { token: b.token, body: { user_id: a.id, media: 'audio' } }), 403, 'forbidden');
      assertError(await api(srv, 'POST', '/conversations', { token: b.token, body: { kind: 'group', title: 'g', member_ids: [a.id, c.id] } }), 403, 'forbidden');
      const g = await api(srv, 'POST', '/conversations', { token: b.token, body: { kind: 'group', title: 'g', member_ids: [c.id] } });
      assert.equal(g.status, 201, g.text);
      const gid = g.json.conversation.id;
      assertError(await api(srv, 'POST', `/conversations/${gid}/members`, { token: b.token, body: { user_ids: [a.id] } }), 403, 'forbidden');
      assert.equal(count(`SELECT count(*) FROM members WHERE conversation_id = ${gid} AND user_id = ${a.id}`), 0);
      // the blocker may add the blocked user to a group: both stay members and see each other's messages
      assert.equal((await api(srv, 'POST', `/conversations/${gid}/members`, { token: c.token, body: { user_ids: [a.id] } })).status, 200);
      const la = track(await listen(srv, a));
      const gm = await send(srv, b, gid, 'group message from the blocked user');
      assert.equal(gm.status, 201, gm.text);
      await until(() => la.events.some((e) => e.ev === 'message:new' && e.payload.message.id === gm.json.message.id), 10000, 'group message reaches the blocker');
      // a direct chat the blocker opened: calls by conversation refused too
      const conv = await direct(srv, a, b);
      assertError(await api(srv, 'POST', '/calls', { token: b.token, body: { conversation_id: conv, media: 'video' } }), 403, 'forbidden');
      assert.equal(count(`SELECT count(*) FROM calls WHERE caller_id = ${b.id}`), 0, 'no call stored');
      assert.ok(!la.events.some((e) => e.ev === 'call:incoming'), 'no call:incoming for the blocker');
      // conversation:<direct> (typing, viewers) refused to the blocked user
      const sb = track({ sock: await connect(srv, b) });
      await assert.rejects(join(sb.sock, `conversation:${conv}`), (e) => e.resp && e.resp.reason === 'forbidden');
      // unblock restores everything
      assert.equal((await api(srv, 'DELETE', `/blocks/${b.id}`, { token: a.token })).status, 204);
      await join(sb.sock, `conversation:${conv}`);
      const call = await api(srv, 'POST', '/calls', { token: b.token, body: { user_id: a.id, media: 'audio' } });
      assert.equal(call.status, 201, call.text);
      await until(() => la.events.some((e) => e.ev === 'call:incoming'), 10000, 'call:incoming after unblock');
      const d = await api(srv, 'POST', `/conversations/${gid}/members`, { token: b.token, body: { user_ids: [c.id] } });
      assert.equal(d.status, 200, d.text);
    });

    test('a block ends a call under way between the two at once: the caller blocking an answered call ends it hangup for both; no new call', T, async () => {
      const a = await signup(srv);
      const b = await signup(srv);
      const da = await Device.open(srv, a);
      const db = await Device.open(srv, b);
      socks.push(da.sock, db.sock);
      const { call } = await startCall(srv, a, { user_id: b.id, media: 'video' });
      await db.waitUserEvent((e) => e.event === 'call:incoming' && e.call.id === call.id, 10000, 'call:incoming');
      await db.joinCall(call.id);
      await da.joinCall(call.id);
      assert.equal((await db.push(call.id, 'accept')).status, 'ok');
      await da.waitState(call.id, 'connecting');
      const t0 = Date.now();
      assert.equal((await block(srv, a, b)).status, 201);
      for (const d of [da, db]) {
        const s = await d.waitState(call.id, 'ended', 1000);
        assert.equal(s.end_reason, 'hangup');
        const u = await d.waitUserEvent((e) => e.event === 'call:updated' && e.call.id === call.id && e.call.state === 'ended', 1000, 'call:updated ended');
        assert.equal(u.call.end_reason, 'hangup');
      }
      assert.ok(Date.now() - t0 <= 1000 * slow(), `ended ${Date.now() - t0} ms after the block`);
      assert.equal(sql(`SELECT state || ':' || end_reason FROM calls WHERE id = ${call.id}`), 'ended:hangup');
      assertError(await api(srv, 'POST', '/calls', { token: b.token, body: { user_id: a.id, media: 'audio' } }), 403, 'forbidden');
      // the blocker may still call (a block is one-way); a repeated block ends nothing else
      assert.equal((await block(srv, a, b)).status, 200);
    });

    test('a conversation: channel joined before the block is closed by it: typing no longer reaches the blocker', T, async () => {
      const a = await signup(srv);
      const b = await signup(srv);
      const conv = await direct(srv, a, b);
      const sa = track({ sock: await connect(srv, a) });
      const { ch: cha } = await join(sa.sock, `conversation:${conv}`);
      const typing = [];
      cha.on('typing', (p) => typing.push(p));
      const sb = track({ sock: await connect(srv, b) });
      const { ch: chb } = await join(sb.sock, `conversation:${conv}`);
      let closed = false;
      chb.onClose(() => { closed = true; });
      chb.push('typing', { state: 'start' });
      await until(() => typing.length === 1, 10000, 'typing before the block');
      assert.equal((await block(srv, a, b)).status, 201);
      await until(() => closed, 10000, "the blocked user's conversation: channel closed by the block");
      assert.equal(typing.length, 1, 'no typing from the blocked user after the block');
      await assert.rejects(join(sb.sock, `conversation:${conv}`), (e) => e.resp && e.resp.reason === 'forbidden');
    });

    test('keys (S9): a blocked user gets 404 for the blocker\'s key bundle and takes no prekey; unblock restores', T, async () => {
      const a = await signup(srv);
      const b = await signup(srv);
      assert.equal((await api(srv, 'PUT', '/keys', { token: a.token, body: keyBundle() })).status < 300, true);
      assert.equal((await block(srv, a, b)).status, 201);
      assertError(await api(srv, 'GET', `/keys/${a.id}`, { token: b.token }), 404, 'not_found');
      assert.equal(count(`SELECT count(*) FROM e2e_prekeys WHERE user_id = ${a.id}`), 2, 'no one-time prekey taken');
      assert.equal((await api(srv, 'DELETE', `/blocks/${b.id}`, { token: a.token })).status, 204);
      const k = await api(srv, 'GET', `/keys/${a.id}`, { token: b.token });
      assert.equal(k.status, 200, k.text);
      assert.equal(k.json.one_time_prekey.id, 1);
    });

    test('presence: the blocked user stops seeing the blocker online and last seen (events and GET /users/:id); unblock restores', T, async () => {
      const a = await signup(srv);
      const b = await signup(srv);
      const c = await signup(srv);
      await direct(srv, a, b);
      await direct(srv, a, c);
      const lb = track(await listen(srv, b));
      const lc = track(await listen(srv, c));
      assert.equal((await block(srv, a, b)).status, 201);
      await until(() => lb.events.some((e) => e.ev === 'presence' && e.payload.user_id === a.id && !e.payload.online && e.payload.last_seen_at === null), 5000, 'offline on block');
      lb.events.length = 0;
      const la = track(await listen(srv, a));
      await until(() => lc.events.some((e) => e.ev === 'presence' && e.payload.user_id === a.id && e.payload.online), 10000, 'c sees a online');
      await sleep(300);
      assert.ok(!lb.events.some((e) => e.ev === 'presence' && e.payload.user_id === a.id), 'b saw no presence of a');
      const ub = await api(srv, 'GET', `/users/${a.id}`, { token: b.token });
      assert.equal(ub.status, 200);
      assert.equal(ub.json.user.online, false);
      assert.equal(ub.json.user.last_seen_at, null);
      const uc = await api(srv, 'GET', `/users/${a.id}`, { token: c.token });
      assert.equal(uc.json.user.online, true);
      assert.ok(uc.json.user.last_seen_at);
      // the blocker still sees the blocked user's state (a block is one-way)
      const ua = await api(srv, 'GET', `/users/${b.id}`, { token: a.token });
      assert.equal(ua.json.user.online, true);
      // unblock: the real state at once, then later transitions again
      assert.equal((await api(srv, 'DELETE', `/blocks/${b.id}`, { token: a.token })).status, 204);
      await until(() => lb.events.some((e) => e.ev === 'presence' && e.payload.user_id === a.id && e.payload.online), 5000, 'online on unblock');
      assert.equal((await api(srv, 'GET', `/users/${a.id}`, { token: b.token })).json.user.online, true);
      lb.events.length = 0;
      la.sock.disconnect();
      await until(() => lb.events.some((e) => e.ev === 'presence' && e.payload.user_id === a.id && !e.payload.online && e.payload.last_seen_at), 10000, 'offline with last seen after unblock');
    });
  });

  describe('reports', () => {
    test('a message report keeps its snapshot through an edit and a delete; a user report; 422 without a target; 404 for what the reporter cannot see', T, async () => {
      const a = await signup(srv);
      const b = await signup(srv);
      const x = await signup(srv);
      const conv = await direct(srv, a, b);
      const m = await send(srv, b, conv, 'offensive words');
      assert.equal(m.status, 201);
      const r = await api(srv, 'POST', '/reports', { token: a.token, body: { message_id: m.json.message.id, reason: 'abuse', note: 'please look' } });
      assert.equal(r.status, 201, r.text);
      const rep = r.json.report;
      assert.equal(rep.state, 'open');
      assert.equal(rep.reporter_id, a.id);
      assert.equal(rep.target_user_id, b.id);
      assert.equal(rep.message_id, m.json.message.id);
      assert.equal(rep.reason, 'abuse');
      assert.equal(rep.note, 'please look');
      assert.equal(rep.snapshot.body, 'offensive words');
      assert.equal(rep.snapshot.kind, 'text');
      assert.equal(rep.snapshot.sender_id, b.id);
      assert.equal(rep.snapshot.media_id, null);
      assert.equal(rep.snapshot.inserted_at, m.json.message.inserted_at);
      // the sender edits, then deletes: the evidence stays
      assert.equal((await api(srv, 'PATCH', `/messages/${m.json.message.id}`, { token: b.token, body: { body: 'nice words' } })).status, 200);
      assert.equal((await api(srv, 'DELETE', `/messages/${m.json.message.id}?for=everyone`, { token: b.token })).status, 204);
      assert.equal(sql(`SELECT coalesce(body, '<null>') FROM messages WHERE id = ${m.json.message.id}`), '<null>');
      const snap = JSON.parse(sql(`SELECT snapshot::text FROM reports WHERE id = ${rep.id}`));
      assert.equal(snap.body, 'offensive words');
      assert.equal(snap.deleted, false);
      // a user report
      const u = await api(srv, 'POST', '/reports', { token: a.token, body: { user_id: b.id, reason: 'spam' } });
      assert.equal(u.status, 201, u.text);
      assert.equal(u.json.report.target_user_id, b.id);
      assert.equal(u.json.report.snapshot, null);
      assert.equal(u.json.report.message_id, null);
      // bad input
      const n0 = count('SELECT count(*) FROM reports');
      const noTarget = await api(srv, 'POST', '/reports', { token: a.token, body: { reason: 'spam' } });
      assertError(noTarget, 422, 'validation_failed');
      assert.ok(noTarget.json.error.details.message_id);
      assertError(await api(srv, 'POST', '/reports', { token: a.token, body: { user_id: b.id } }), 422, 'validation_failed');
      assertError(await api(srv, 'POST', '/reports', { token: a.token, body: { user_id: b.id, reason: 'x'.repeat(65) } }), 422, 'validation_failed');
      assertError(await api(srv, 'POST', '/reports', { token: a.token, body: { user_id: 'abc', reason: 'spam' } }), 422, 'validation_failed');
      assertError(await api(srv, 'POST', '/reports', { token: a.token, body: { user_id: a.id, reason: 'spam' } }), 422, 'validation_failed');
      assertError(await api(srv, 'POST', '/reports', { token: x.token, body: { message_id: m.json.message.id, reason: 'spam' } }), 404, 'not_found');
      assertError(await api(srv, 'POST', '/reports', { token: a.token, body: { message_id: '99999999999', reason: 'spam' } }), 404, 'not_found');
      assertError(await api(srv, 'POST', '/reports', { body: { user_id: b.id, reason: 'spam' } }), 401, 'unauthorized');
      assert.equal(count('SELECT count(*) FROM reports'), n0, 'no bad report stored');
    });

    test('reports are rate limited per user (429 with Retry-After)', T, async () => {
      const a = await signup(srv);
      const b = await signup(srv);
      let limited = null;
      for (let i = 0; i < 8 && !limited; i++) {
        // eslint-disable-next-line no-await-in-loop
        const r = await api(srv, 'POST', '/reports', { token: a.token, body: { user_id: b.id, reason: 'spam' } });
        if (r.status === 429) limited = { i, r };
        else assert.equal(r.status, 201, r.text);
      }
      assert.ok(limited, 'a 429 came');
      assert.equal(limited.i, 5, 'after the 5 allowed');
      assertError(limited.r, 429, 'rate_limited');
      assert.ok(Number(limited.r.headers.get('retry-after')) > 0);
      assert.equal(count(`SELECT count(*) FROM reports WHERE reporter_id = ${a.id}`), 5);
    });
  });

  describe('account', () => {
    test('password change: wrong current refused; then only the current session lives (tokens, refresh tokens, sockets)', T, async () => {
      const a = await signup(srv);
      const other = (await api(srv, 'POST', '/auth/login', { body: { username: a.username, password: a.password } })).json;
      const ws = track(await rawSocket(srv, other.access_token));
      const wsCur = track(await rawSocket(srv, a.token));
      let curClosed = false;
      wsCur.once('close', () => { curClosed = true; });
      assertError(await api(srv, 'POST', '/me/password', { token: a.token, body: { current_password: 'wrong password', new_password: 'a new password' } }), 403, 'forbidden');
      assertError(await api(srv, 'POST', '/me/password', { token: a.token, body: { current_password: a.password, new_password: 'short' } }), 422, 'validation_failed');
      assertError(await api(srv, 'POST', '/me/password', { token: a.token, body: { new_password: 'a new password' } }), 422, 'validation_failed');
      assertError(await api(srv, 'POST', '/me/password', { body: { current_password: a.password, new_password: 'a new password' } }), 401, 'unauthorized');
      assert.equal((await api(srv, 'GET', '/me', { token: other.access_token })).status, 200, 'nothing changed yet');
      const r = await api(srv, 'POST', '/me/password', { token: a.token, body: { current_password: a.password, new_password: 'a new password' } });
      assert.equal(r.status, 204, r.text);
      const code = await Promise.race([ws.closedWith, sleep(5000 * slow()).then(() => 'timeout')]);
      assert.equal(code, 1008);
      assertError(await api(srv, 'GET', '/me', { token: other.access_token }), 401, 'unauthorized');
      assertError(await api(srv, 'POST', '/auth/refresh', { body: { refresh_token: other.refresh_token } }), 401, 'unauthorized');
      assert.equal((await api(srv, 'GET', '/me', { token: a.token })).status, 200, 'the current session lives');
      const ref = await api(srv, 'POST', '/auth/refresh', { body: { refresh_token: a.refresh_token } });
      assert.equal(ref.status, 200, ref.text);
      assert.equal(curClosed, false, 'the current session\'s socket stays open');
      assertError(await api(srv, 'POST', '/auth/login', { body: { username: a.username, password: a.password } }), 401, 'unauthorized');
      assert.equal((await api(srv, 'POST', '/auth/login', { body: { username: a.username, password: 'a new password' } })).status, 200);
    });

    test('deletion: wrong password refused; then every token, refresh token and socket stops; others see the placeholder; the username is freed after the grace period', T, async () => {
      const a = await signup(srv, { display_name: 'Alice' });
      const b = await signup(srv);
      const conv = await direct(srv, a, b);
      const m = await send(srv, a, conv, 'a message that stays');
      const second = (await api(srv, 'POST', '/auth/login', { body: { username: a.username, password: a.password } })).json;
      assert.equal((await api(srv, 'POST', '/devices', { token: a.token, body: { platform: 'android', push_token: `tok-${uname()}` } })).status, 201);
      assert.ok((await api(srv, 'PUT', '/keys', { token: a.token, body: keyBundle() })).status < 300);
      const ws1 = track(await rawSocket(srv, a.token));
      const ws2 = track(await rawSocket(srv, second.access_token));
      assertError(await api(srv, 'DELETE', '/me', { token: a.token, body: { password: 'not the password' } }), 403, 'forbidden');
      assertError(await api(srv, 'DELETE', '/me', { token: a.token, body: {} }), 422, 'validation_failed');
      assert.equal((await api(srv, 'GET', '/me', { token: a.token })).status, 200, 'nothing changed yet');
      const r = await api(srv, 'DELETE', '/me', { token: a.token, body: { password: a.password } });
      assert.equal(r.status, 204, r.text);
      for (const ws of [ws1, ws2]) {
        // eslint-disable-next-line no-await-in-loop
        assert.equal(await Promise.race([ws.closedWith, sleep(5000 * slow()).then(() => 'timeout')]), 1008);
      }
      for (const t of [a.token, second.access_token]) {
        // eslint-disable-next-line no-await-in-loop
        assertError(await api(srv, 'GET', '/me', { token: t }), 401, 'unauthorized');
      }
      for (const t of [a.refresh_token, second.refresh_token]) {
        // eslint-disable-next-line no-await-in-loop
        assertError(await api(srv, 'POST', '/auth/refresh', { body: { refresh_token: t } }), 401, 'unauthorized');
      }
      await assert.rejects(rawSocket(srv, a.token), 'a new socket with the old token is refused');
      assertError(await api(srv, 'POST', '/auth/login', { body: { username: a.username, password: a.password } }), 401, 'unauthorized');
      assert.equal(count(`SELECT count(*) FROM devices WHERE user_id = ${a.id}`), 0, 'devices deleted');
      assert.equal(count(`SELECT count(*) FROM e2e_bundles WHERE user_id = ${a.id}`) + count(`SELECT count(*) FROM e2e_prekeys WHERE user_id = ${a.id}`), 0, 'keys deleted');
      assertError(await api(srv, 'GET', `/keys/${a.id}`, { token: b.token }), 404, 'not_found');
      // the others see the placeholder; the messages stay
      const u = await api(srv, 'GET', `/users/${a.id}`, { token: b.token });
      assert.equal(u.status, 200);
      assert.equal(u.json.user.display_name, 'Deleted account');
      assert.equal(u.json.user.deleted, true);
      assert.notEqual(u.json.user.username, a.username);
      assert.equal(u.json.user.online, false);
      const h = await api(srv, 'GET', `/conversations/${conv}/messages`, { token: b.token });
      assert.ok(h.json.items.some((x) => x.id === m.json.message.id && x.body === 'a message that stays'), h.text);
      // the username: reserved during the grace period, then free
      const taken = await api(srv, 'POST', '/auth/signup', { body: { username: a.username, password: 'another password', display_name: 'New' } });
      assertError(taken, 409, 'conflict');
      const deadline = Date.now() + (GRACE_S + 10) * 1000 * slow();
      let again;
      do {
        // eslint-disable-next-line no-await-in-loop
        await sleep(250);
        // eslint-disable-next-line no-await-in-loop
        again = await api(srv, 'POST', '/auth/signup', { body: { username: a.username, password: 'another password', display_name: 'New' } });
      } while (again.status === 409 && Date.now() < deadline);
      assert.equal(again.status, 201, again.text);
      assert.notEqual(again.json.user.id, a.id);
    });
  });
});
