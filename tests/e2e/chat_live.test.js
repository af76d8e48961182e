'use strict';
// Live chat over phoenix.js: durable events reach every member's user:<id>
// topic (every socket of every member, exactly once, in seq order) through
// the event tailer; the conversation:<id> channel (membership-checked join,
// typing relayed to the others only, Phoenix Presence through the phoenix.js
// Presence client); `presence` online/offline events on user: topics.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { Presence } = require('phoenix');
const { startServer, slow } = require('./lib/server');
const {
  DB_URL, BASE_ENV, waitForDatabase, api, signupMany, connect, join, push, until, sleep,
} = require('./lib/api');

const T = { timeout: 120000 };
const cid = () => crypto.randomUUID();
const DURABLE = ['message:new', 'message:updated', 'message:deleted', 'receipt', 'conversation:updated', 'conversation:removed'];

/** Joins user:<id> on a new socket and records every event pushed on it. */
async function listen(srv, user) {
  const sock = await connect(srv, user);
  const { ch, resp } = await join(sock, `user:${user.id}`);
  const events = [];
  for (const ev of [...DURABLE, 'presence']) ch.on(ev, (payload) => events.push({ ev, payload }));
  return { sock, ch, resp, events, user };
}

describe('chat live delivery', () => {
  let srv;
  const sockets = [];
  before(async () => {
    assert.ok(DB_URL, 'no test database URL');
    await waitForDatabase();
    srv = await startServer({ name: 'chat_live', env: { ...BASE_ENV, SB_RATELIMIT_SEND: '100000/1', SB_RATELIMIT_TYPING: '5/60' } });
  });
  after(async () => {
    for (const s of sockets) s.disconnect();
    if (srv) await srv.stop();
  });
  const track = (l) => { sockets.push(l.sock); return l; };

  test('direct chat: message:new reaches both users on every device, once, with a cursor', T, async () => {
    const [a, b] = await signupMany(srv, 2);
    const c = (await api(srv, 'POST', '/conversations', { token: a.token, body: { kind: 'direct', user_id: b.id } })).json.conversation;
    const la1 = track(await listen(srv, a));
    const la2 = track(await listen(srv, a));
    const lb = track(await listen(srv, b));
    const client = cid();
    const r = await push(la1.ch, 'message:send', { conversation_id: c.id, client_id: client, kind: 'text', body: 'hello' });
    assert.equal(r.status, 'ok', JSON.stringify(r));
    const msg = r.response.message;
    for (const l of [la1, la2, lb]) {
      await until(() => l.events.some((e) => e.ev === 'message:new'), 10000, 'message:new');
    }
    await sleep(300);
    for (const l of [la1, la2, lb]) {
      const got = l.events.filter((e) => e.ev === 'message:new');
      assert.equal(got.length, 1, `exactly once on each socket: ${JSON.stringify(l.events)}`);
      assert.deepEqual(got[0].payload.message, msg);
      assert.equal(typeof got[0].payload.cursor, 'string');
    }
    // a retry fans out nothing new
    const again = await push(lb.ch, 'message:send', { conversation_id: c.id, client_id: cid(), kind: 'text', body: 'x' });
    assert.equal(again.status, 'ok');
    const dup = await push(la1.ch, 'message:send', { conversation_id: c.id, client_id: client, kind: 'text', body: 'hello' });
    assert.equal(dup.response.message.id, msg.id);
    await until(() => la2.events.filter((e) => e.ev === 'message:new').length >= 2, 10000, 'second message');
    await sleep(300);
    assert.deepEqual(la2.events.filter((e) => e.ev === 'message:new').map((e) => e.payload.message.seq), [1, 2]);
  });

  test('50-member group: every member receives each message exactly once, in seq order', T, async () => {
    const users = await signupMany(srv, 50);
    const g = (await api(srv, 'POST', '/conversations', {
      token: users[0].token, body: { kind: 'group', title: 'Fifty', member_ids: users.slice(1).map((u) => u.id) },
    })).json.conversation;
    const ls = [];
    for (let i = 0; i < users.length; i += 10) {
      ls.push(...(await Promise.all(users.slice(i, i + 10).map((u) => listen(srv, u)))));
    }
    ls.forEach(track);
    // 5 senders, 6 messages each, concurrently, over the channel and REST
    const senders = ls.slice(0, 5);
    await Promise.all(senders.map(async (l, k) => {
      for (let i = 0; i < 6; i++) {
        const body = { client_id: cid(), kind: 'text', body: `${k}-${i}` };
        if (i % 2) {
          const r = await push(l.ch, 'message:send', { conversation_id: g.id, ...body });
          assert.equal(r.status, 'ok', JSON.stringify(r));
        } else {
          const r = await api(srv, 'POST', `/conversations/${g.id}/messages`, { token: l.user.token, body });
          assert.equal(r.status, 201, r.text);
        }
      }
    }));
    const want = Array.from({ length: 30 }, (_, i) => i + 1);
    for (const l of ls) {
      await until(() => l.events.filter((e) => e.ev === 'message:new').length >= 30, 20000, `30 messages for ${l.user.id}`);
    }
    await sleep(300);
    for (const l of ls) {
      const seqs = l.events.filter((e) => e.ev === 'message:new' && e.payload.message.conversation_id === g.id)
        .map((e) => e.payload.message.seq);
      assert.deepEqual(seqs, want, `member ${l.user.id}`);
    }
  });

  test('edits, reactions, deletes, receipts, membership changes reach the members', T, async () => {
    const [a, b, c, d] = await signupMany(srv, 4);
    const [la, lb, lc] = (await Promise.all([a, b, c].map((u) => listen(srv, u)))).map(track);
    const g = (await api(srv, 'POST', '/conversations', { token: a.token, body: { kind: 'group', title: 'G', member_ids: [b.id, c.id] } })).json.conversation;
    await until(() => lc.events.some((e) => e.ev === 'conversation:updated'), 10000, 'conversation:updated on create');
    const m = (await push(la.ch, 'message:send', { conversation_id: g.id, client_id: cid(), kind: 'text', body: 'v1' })).response.message;
    assert.equal((await push(la.ch, 'message:edit', { message_id: m.id, body: 'v2' })).status, 'ok');
    assert.equal((await push(lb.ch, 'message:react', { message_id: m.id, emoji: '❤️', op: 'add' })).status, 'ok');
    assert.equal((await push(lc.ch, 'receipt', { conversation_id: g.id, kind: 'read', up_to_seq: 1 })).status, 'ok');
    assert.equal((await push(la.ch, 'message:delete', { message_id: m.id, for: 'everyone' })).status, 'ok');
    const r = await api(srv, 'DELETE', `/conversations/${g.id}/members/${c.id}`, { token: a.token });
    assert.equal(r.status, 204, r.text);
    const ld = track(await listen(srv, d));
    assert.equal((await api(srv, 'POST', `/conversations/${g.id}/members`, { token: a.token, body: { user_ids: [d.id] } })).status, 200);
    const expectB = ['conversation:updated', 'message:new', 'message:updated', 'message:updated', 'receipt', 'message:deleted', 'conversation:updated', 'conversation:updated'];
    await until(() => lb.events.filter((e) => DURABLE.includes(e.ev)).length >= expectB.length, 10000, 'events for b');
    await until(() => lc.events.some((e) => e.ev === 'conversation:removed'), 10000, 'removed for c');
    await until(() => ld.events.some((e) => e.ev === 'conversation:updated'), 10000, 'added for d');
    await sleep(300);
    const evs = (l) => l.events.filter((e) => DURABLE.includes(e.ev) && (e.payload.conversation_id === g.id
      || (e.payload.message && e.payload.message.conversation_id === g.id) || (e.payload.conversation && e.payload.conversation.id === g.id)));
    assert.deepEqual(evs(lb).map((e) => e.ev), expectB);
    const bEv = evs(lb);
    assert.equal(bEv[2].payload.message.body, 'v2');
    assert.deepEqual(bEv[3].payload.message.reactions, { '❤️': [b.id] });
    assert.deepEqual(bEv[4].payload, { conversation_id: g.id, user_id: c.id, kind: 'read', up_to_seq: 1, cursor: bEv[4].payload.cursor });
    assert.deepEqual({ ...bEv[5].payload, cursor: undefined }, { conversation_id: g.id, message_id: m.id, seq: 1, cursor: undefined });
    // c sees its own removal (the conversation without c), then conversation:removed; nothing after
    const cEv = evs(lc).map((e) => e.ev);
    assert.deepEqual(cEv.slice(-2), ['conversation:updated', 'conversation:removed']);
    assert.ok(!cEv.slice(0, -2).includes('conversation:removed'));
    // d sees the conversation from being added, not the earlier messages
    assert.deepEqual(evs(ld).map((e) => e.ev), ['conversation:updated']);
    assert.ok(evs(ld)[0].payload.conversation.members.some((x) => x.user_id === d.id));
    // per-user settings reach only the user's own sockets
    const pin = await api(srv, 'PUT', `/conversations/${g.id}/me`, { token: b.token, body: { pinned: true } });
    assert.equal(pin.status, 200);
    await until(() => evs(lb).length > expectB.length, 10000, 'settings event');
    assert.equal(evs(lb).at(-1).payload.conversation.pinned, true);
    await sleep(200);
    assert.equal(evs(la).filter((e) => e.payload.conversation && e.payload.conversation.pinned).length, 0);
  });

  describe('conversation:<id> channel', () => {
    test('join: members only; a non-member gets the same refusal as a missing conversation', T, async () => {
      const [a, b, x] = await signupMany(srv, 3);
      const c = (await api(srv, 'POST', '/conversations', { token: a.token, body: { kind: 'direct', user_id: b.id } })).json.conversation;
      const sx = await connect(srv, x);
      sockets.push(sx);
      const e1 = await join(sx, `conversation:${c.id}`).catch((e) => e);
      const e2 = await join(sx, 'conversation:999999999').catch((e) => e);
      const e3 = await join(sx, 'conversation:abc').catch((e) => e);
      assert.deepEqual(e1.resp, { reason: 'not_found', message: 'no such conversation' });
      assert.deepEqual(e2.resp, e1.resp);
      assert.deepEqual(e3.resp, e1.resp);
      const sa = await connect(srv, a);
      sockets.push(sa);
      const { resp } = await join(sa, `conversation:${c.id}`);
      assert.deepEqual(resp, {});
    });

    test('typing reaches the other members, not the typist (any of their sockets); rate limited', T, async () => {
      const [a, b, c] = await signupMany(srv, 3);
      const g = (await api(srv, 'POST', '/conversations', { token: a.token, body: { kind: 'group', title: 'T', member_ids: [b.id, c.id] } })).json.conversation;
      const topic = `conversation:${g.id}`;
      const got = new Map();
      const chans = {};
      for (const [name, u] of [['a1', a], ['a2', a], ['b', b], ['c', c]]) {
        const s = await connect(srv, u);
        sockets.push(s);
        const { ch } = await join(s, topic);
        got.set(name, []);
        ch.on('typing', (p) => got.get(name).push(p));
        chans[name] = ch;
      }
      const r = await push(chans.a1, 'typing', { state: 'start' });
      assert.deepEqual(r, { status: 'ok', response: {} });
      await until(() => got.get('b').length === 1 && got.get('c').length === 1, 5000, 'typing delivered');
      await sleep(200);
      assert.deepEqual(got.get('b'), [{ user_id: a.id, state: 'start' }]);
      assert.deepEqual(got.get('c'), [{ user_id: a.id, state: 'start' }]);
      assert.deepEqual(got.get('a1'), []);
      assert.deepEqual(got.get('a2'), [], 'not echoed to the typist\'s other devices');
      const bad = await push(chans.b, 'typing', { state: 'dancing' });
      assert.equal(bad.status, 'error');
      assert.equal(bad.response.reason, 'validation_failed');
      const unk = await push(chans.b, 'shout', {});
      assert.equal(unk.response.reason, 'bad_request');
      // the limit is 5/60 per user and conversation
      const rs = [];
      for (let i = 0; i < 6; i++) rs.push(await push(chans.c, 'typing', { state: i % 2 ? 'stop' : 'start' }));
      assert.deepEqual(rs.slice(0, 5).map((x) => x.status), ['ok', 'ok', 'ok', 'ok', 'ok']);
      assert.equal(rs[5].status, 'error');
      assert.equal(rs[5].response.reason, 'rate_limited');
      // not persisted
      const ev = await api(srv, 'GET', `/conversations/${g.id}/messages`, { token: a.token });
      assert.deepEqual(ev.json.items, []);
    });

    test('Phoenix Presence: presence_state then diffs; phoenix.js Presence lists joins and leaves', T, async () => {
      const [a, b] = await signupMany(srv, 2);
      const c = (await api(srv, 'POST', '/conversations', { token: a.token, body: { kind: 'direct', user_id: b.id } })).json.conversation;
      const topic = `conversation:${c.id}`;
      const sa = await connect(srv, a);
      sockets.push(sa);
      const cha = sa.channel(topic, {});
      const pres = new Presence(cha);
      const joins = [];
      const leaves = [];
      pres.onJoin((id, cur, np) => joins.push([id, np.metas.length]));
      pres.onLeave((id, cur, lp) => leaves.push([id, cur ? cur.metas.length : 0]));
      const raw = [];
      cha.on('presence_state', (p) => raw.push(['state', p]));
      cha.on('presence_diff', (p) => raw.push(['diff', p]));
      await new Promise((res, rej) => cha.join().receive('ok', res).receive('error', rej));
      await until(() => pres.list().length === 1, 5000, 'a sees itself');
      assert.deepEqual(pres.list((id, { metas }) => [id, metas.length]), [[a.id, 1]]);
      assert.equal(raw[0][0], 'diff', 'the join diff comes before presence_state (as Phoenix sends)');
      assert.equal(raw[1][0], 'state');
      const meta = raw[1][1][a.id].metas[0];
      assert.equal(typeof meta.phx_ref, 'string');
      assert.equal(typeof meta.online_at, 'number');
      // b joins on two devices, then leaves one, then the other
      const sb1 = await connect(srv, b);
      const sb2 = await connect(srv, b);
      sockets.push(sb1, sb2);
      const { ch: cb1 } = await join(sb1, topic);
      await until(() => pres.list().length === 2, 5000, 'b listed');
      const { ch: cb2 } = await join(sb2, topic);
      await until(() => (pres.state[b.id] || { metas: [] }).metas.length === 2, 5000, 'b twice');
      const pb = new Presence(cb2);
      await sleep(100);
      cb1.leave();
      await until(() => (pres.state[b.id] || { metas: [] }).metas.length === 1, 5000, 'b once');
      assert.equal(pres.list().length, 2);
      sb2.disconnect();
      await until(() => pres.list().length === 1, 5000, 'b gone');
      assert.deepEqual(pres.list((id) => id), [a.id]);
      assert.ok(joins.some(([id]) => id === b.id));
      assert.ok(leaves.some(([id, n]) => id === b.id && n === 0));
      assert.ok(pb);
    });
  });

  test('a removed member\'s conversation: channel closes; it gets nothing more and leaves Presence', T, async () => {
    const [a, b, c] = await signupMany(srv, 3);
    const g = (await api(srv, 'POST', '/conversations', { token: a.token, body: { kind: 'group', title: 'K', member_ids: [b.id, c.id] } })).json.conversation;
    const topic = `conversation:${g.id}`;
    const sa = await connect(srv, a);
    const sb = await connect(srv, b);
    const sc = await connect(srv, c);
    sockets.push(sa, sb, sc);
    const cha = sa.channel(topic, {});
    const pres = new Presence(cha);
    await new Promise((res, rej) => cha.join().receive('ok', res).receive('error', rej));
    const { ch: chb } = await join(sb, topic);
    const { ch: chc } = await join(sc, topic);
    const gotB = [];
    chb.on('typing', (p) => gotB.push(p));
    let closed = false;
    chb.onClose(() => { closed = true; });
    await until(() => pres.list().length === 3, 5000, 'three viewers');
    const r = await api(srv, 'DELETE', `/conversations/${g.id}/members/${b.id}`, { token: a.token });
    assert.equal(r.status, 204, r.text);
    await until(() => closed, 5000, 'phx_close for the removed member');
    await until(() => pres.list().length === 2, 5000, 'b left Presence');
    assert.deepEqual(pres.list((id) => id).sort(), [a.id, c.id].sort());
    assert.equal((await push(chc, 'typing', { state: 'start' })).status, 'ok');
    await sleep(300);
    assert.deepEqual(gotB, []);
    // c leaves by itself: same
    let closedC = false;
    chc.onClose(() => { closedC = true; });
    assert.equal((await api(srv, 'DELETE', `/conversations/${g.id}/me`, { token: c.token })).status, 204);
    await until(() => closedC && pres.list().length === 1, 5000, 'c gone');
    // and rejoining is refused
    await assert.rejects(join(sb, topic), (e) => e.resp && e.resp.reason === 'not_found');
  });

  test('presence events: contacts see a user come online and go offline with last_seen_at', T, async () => {
    const [a, b, stranger] = await signupMany(srv, 3);
    await api(srv, 'POST', '/conversations', { token: a.token, body: { kind: 'direct', user_id: b.id } });
    const lb = track(await listen(srv, b));
    const ls = track(await listen(srv, stranger));
    const la = await listen(srv, a);
    await until(() => lb.events.some((e) => e.ev === 'presence' && e.payload.user_id === a.id && e.payload.online), 5000 * slow(), 'online');
    const on = lb.events.find((e) => e.ev === 'presence' && e.payload.user_id === a.id);
    assert.equal(on.payload.online, true);
    assert.match(on.payload.last_seen_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    let u = await api(srv, 'GET', `/users/${a.id}`, { token: b.token });
    assert.equal(u.json.user.online, true);
    la.sock.disconnect();
    await until(() => lb.events.some((e) => e.ev === 'presence' && e.payload.user_id === a.id && !e.payload.online), 5000 * slow(), 'offline');
    u = await api(srv, 'GET', `/users/${a.id}`, { token: b.token });
    assert.equal(u.json.user.online, false);
    assert.ok(u.json.user.last_seen_at);
    assert.ok(!ls.events.some((e) => e.ev === 'presence' && e.payload.user_id === a.id), 'strangers are not told');
  });
});
