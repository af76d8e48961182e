'use strict';
// GET /api/v1/sync without a cursor: the bootstrap snapshot (the chat list
// with each conversation's latest messages) and the cursor of its horizon,
// through the chat REST endpoints: the snapshot and the events after its
// cursor together hold every message once; a conversation the user was
// removed from is not in a later snapshot; a conversation limit truncates.
// Then, live through the chat core: a phoenix.js client disconnects while
// others send it 500 messages by REST, reconnects with its last cursor and
// gets all 500 once, in order, then live ones; removed from a group, it
// gets the removal and nothing after it.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const WebSocket = require('ws');
const { Socket } = require('phoenix');
const { startServer, slow } = require('./lib/server');
const { mkUser } = require('./lib/sync_db');

const T = { timeout: 60000 };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

describe('sync bootstrap', () => {
  let srv;
  before(async () => { srv = await startServer({ env: { SB_MIGRATE: '1', SB_RATELIMIT_SEND: 'off' } }); });
  after(async () => { if (srv) await srv.stop(); });

  async function call(token, method, path, body) {
    const res = await fetch(srv.url(`/api/v1${path}`), {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  }

  async function send(token, conv, text) {
    const r = await call(token, 'POST', `/conversations/${conv}/messages`, { client_id: `c-${text.slice(0, 20)}-${Math.random()}`, kind: 'text', body: text });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body.message;
  }

  async function follow(token, cursor) {
    const events = [];
    for (let i = 0; i < 200; i++) {
      const r = await call(token, 'GET', `/sync?cursor=${encodeURIComponent(cursor)}&limit=50`);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      events.push(...r.body.events);
      cursor = r.body.cursor;
      if (!r.body.has_more) return { events, cursor };
    }
    throw new Error('has_more never ended');
  }

  test('chat list, latest messages, and the horizon cursor', T, async () => {
    const [u, v, w] = [await mkUser(), await mkUser(), await mkUser()];
    const [tu, tv] = [srv.token(u), srv.token(v)];
    const g = await call(tu, 'POST', '/conversations', { kind: 'group', title: 'boot', member_ids: [v, w] });
    assert.equal(g.status, 201, JSON.stringify(g.body));
    const gid = g.body.conversation.id;
    const d = await call(tv, 'POST', '/conversations', { kind: 'direct', user_id: u });
    assert.ok(d.status === 201 || d.status === 200, JSON.stringify(d.body));
    const did = d.body.conversation.id;
    const sent = [];
    for (let i = 1; i <= 25; i++) sent.push(await send(i % 2 ? tu : tv, gid, `g${i}`));
    await send(tu, did, 'd1');

    // bootstrap of v: both conversations, the group's latest 20 messages
    const b = await call(tv, 'GET', '/sync');
    assert.equal(b.status, 200, JSON.stringify(b.body));
    assert.equal(typeof b.body.cursor, 'string');
    assert.deepEqual(b.body.events, []);
    assert.equal(b.body.has_more, false);
    const snap = b.body.bootstrap;
    assert.equal(snap.truncated, false);
    assert.deepEqual(snap.conversations.map((c) => c.id).sort(), [gid, did].sort());
    assert.equal(snap.conversations[0].id, did, 'most recent activity first');
    const grp = snap.conversations.find((c) => c.id === gid);
    assert.equal(grp.title, 'boot');
    assert.equal(grp.last_message.body, 'g25');
    assert.equal(typeof grp.unread_count, 'number');
    const gmsgs = snap.messages.filter((m) => m.conversation_id === gid);
    assert.deepEqual(gmsgs.map((m) => m.body), sent.slice(5).map((m) => m.body), 'latest 20, oldest first');
    assert.deepEqual(snap.messages.filter((m) => m.conversation_id === did).map((m) => m.body), ['d1']);

    // after the cursor: nothing the snapshot already holds, then new events
    const first = await follow(tv, b.body.cursor);
    const inSnap = new Set(snap.messages.map((m) => m.id));
    for (const e of first.events) {
      if (e.type === 'message:new') assert.ok(!inSnap.has(e.message.id), 'a snapshot message came again as an event');
    }
    const m26 = await send(tu, gid, 'g26');
    let seen = [];
    let cursor = first.cursor;
    const deadline = Date.now() + 10000 * slow();
    while (!seen.some((e) => e.type === 'message:new' && e.message.id === m26.id)) {
      if (Date.now() > deadline) throw new Error('the new message never came through sync');
      await sleep(50);
      const r = await follow(tv, cursor);
      seen = seen.concat(r.events);
      cursor = r.cursor;
    }
    assert.equal(seen.filter((e) => e.type === 'message:new' && e.message.id === m26.id).length, 1);

    // limit=1: one conversation, truncated
    const one = await call(tv, 'GET', '/sync?limit=1');
    assert.equal(one.status, 200);
    assert.equal(one.body.bootstrap.conversations.length, 1);
    assert.equal(one.body.bootstrap.truncated, true);
    assert.equal(one.body.bootstrap.conversations[0].id, gid);

    // removed from the group: gone from v's next snapshot, not from w's
    const rm = await call(tu, 'DELETE', `/conversations/${gid}/members/${v}`);
    assert.ok(rm.status === 204 || rm.status === 200, JSON.stringify(rm.body));
    const after = await follow(tv, cursor);
    const types = after.events.map((e) => e.type);
    assert.ok(types.includes('conversation:removed'), JSON.stringify(types));
    const b2 = await call(tv, 'GET', '/sync');
    assert.deepEqual(b2.body.bootstrap.conversations.map((c) => c.id), [did]);
    assert.ok(!b2.body.bootstrap.messages.some((m) => m.conversation_id === gid));
    const bw = await call(srv.token(w), 'GET', '/sync');
    assert.deepEqual(bw.body.bootstrap.conversations.map((c) => c.id), [gid]);
  });

  test('the snapshot stops at about 4 MiB of messages and says truncated', T, async () => {
    const [u, v] = [await mkUser(), await mkUser()];
    const [tu, tv] = [srv.token(u), srv.token(v)];
    const convs = [];
    for (let i = 0; i < 5; i++) {
      const g = await call(tv, 'POST', '/conversations', { kind: 'group', title: `big${i}`, member_ids: [u] });
      assert.equal(g.status, 201, JSON.stringify(g.body));
      convs.push(g.body.conversation.id);
    }
    const big = 'x'.repeat(60000);
    for (const conv of convs) for (let k = 0; k < 20; k++) await send(tv, conv, `${k}${big}`);
    const b = await call(tu, 'GET', '/sync');
    assert.equal(b.status, 200);
    const snap = b.body.bootstrap;
    assert.equal(snap.conversations.length, 5, 'every conversation is listed');
    assert.equal(snap.truncated, true);
    const bytes = snap.messages.reduce((n, m) => n + m.body.length, 0);
    assert.ok(bytes <= 4.5 * 1024 * 1024, `${bytes} bytes of messages`);
    assert.ok(snap.messages.length >= 60 && snap.messages.length < 100, `${snap.messages.length} messages`);
    // the newest conversation's latest messages are the ones kept
    const newest = snap.conversations[0].id;
    assert.equal(snap.messages.filter((m) => m.conversation_id === newest).length, 20);
  });

  test('a user with no conversations gets an empty snapshot and a working cursor', T, async () => {
    const u = await mkUser();
    const b = await call(srv.token(u), 'GET', '/sync');
    assert.equal(b.status, 200);
    assert.deepEqual(b.body.bootstrap, { conversations: [], messages: [], truncated: false });
    const r = await follow(srv.token(u), b.body.cursor);
    assert.deepEqual(r.events, []);
  });

  test('500 messages sent by others while disconnected, then the removal and nothing after it (chat core)', { timeout: 120000 }, async () => {
    const [u, v, w] = [await mkUser(), await mkUser(), await mkUser()];
    const [tu, tv, tw] = [srv.token(u), srv.token(v), srv.token(w)];
    const g = (await call(tv, 'POST', '/conversations', { kind: 'group', title: 'offline', member_ids: [u, w] })).body.conversation.id;
    const d = (await call(tw, 'POST', '/conversations', { kind: 'direct', user_id: u })).body.conversation.id;
    const boot = await call(tu, 'GET', '/sync');
    let cursor = boot.body.cursor;
    const got = [];
    const other = [];
    const socket = new Socket(srv.wsUrl('/socket'), { transport: WebSocket, params: { token: tu }, reconnectAfterMs: () => 50, rejoinAfterMs: () => 50, timeout: 10000 * slow() });
    const ch = socket.channel(`user:${u}`, () => ({ cursor }));
    ch.on('message:new', (p) => { got.push(p.message); cursor = p.cursor; });
    for (const ev of ['conversation:updated', 'conversation:removed', 'message:updated', 'receipt']) {
      ch.on(ev, (p) => { other.push({ ev, p }); cursor = p.cursor; });
    }
    socket.connect();
    const joined = () => new Promise((resolve, reject) => ch.join().receive('ok', resolve).receive('error', reject));
    await joined();
    await send(tv, g, 'live-1');
    const deadline = () => Date.now() + 15000 * slow();
    let until = deadline();
    while (got.length < 1 && Date.now() < until) await sleep(20);
    assert.equal(got.length, 1);

    socket.disconnect();
    const sentG = [];
    const sentD = [];
    for (let i = 0; i < 250; i++) {
      sentG.push((await send(i % 2 ? tv : tw, g, `g${i}`)).id);
      sentD.push((await send(tw, d, `d${i}`)).id);
    }
    await sleep(200);
    assert.equal(got.length, 1, 'nothing while disconnected');
    socket.connect();
    until = deadline();
    while (got.length < 501 && Date.now() < until) await sleep(20);
    const ids = got.slice(1).map((m) => m.id);
    assert.equal(new Set(ids).size, ids.length, 'no duplicates');
    assert.deepEqual(got.slice(1).filter((m) => m.conversation_id === g).map((m) => m.id), sentG);
    assert.deepEqual(got.slice(1).filter((m) => m.conversation_id === d).map((m) => m.id), sentD);
    for (const conv of [g, d]) {
      const seqs = got.filter((m) => m.conversation_id === conv).map((m) => m.seq);
      assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), 'seq order');
    }
    // live again
    await send(tw, d, 'live-2');
    until = deadline();
    while (got.length < 502 && Date.now() < until) await sleep(20);
    assert.equal(got[got.length - 1].body, 'live-2');

    // removed from the group: the removal, then nothing from the group
    const rm = await call(tv, 'DELETE', `/conversations/${g}/members/${u}`);
    assert.ok(rm.status === 204 || rm.status === 200, JSON.stringify(rm.body));
    until = deadline();
    while (!other.some((o) => o.ev === 'conversation:removed') && Date.now() < until) await sleep(20);
    const removal = other.filter((o) => o.ev === 'conversation:updated' && o.p.conversation.id === g).pop();
    assert.ok(removal, 'the removal conversation:updated');
    assert.ok(!removal.p.conversation.members.some((m) => m.user_id === u));
    assert.deepEqual(other.filter((o) => o.ev === 'conversation:removed').map((o) => o.p.conversation_id), [g]);
    const before = got.length;
    await send(tv, g, 'after-removal');
    await send(tw, d, 'live-3');
    until = deadline();
    while (got.length < before + 1 && Date.now() < until) await sleep(20);
    await sleep(300);
    assert.deepEqual(got.slice(before).map((m) => m.body), ['live-3'], 'nothing from the group after the removal');
    // and sync from the start agrees
    let all = [];
    let c = boot.body.cursor;
    for (let i = 0; i < 100; i++) {
      const r = await call(tu, 'GET', `/sync?cursor=${encodeURIComponent(c)}&limit=100`);
      all = all.concat(r.body.events);
      c = r.body.cursor;
      if (!r.body.has_more) break;
    }
    const msgs = all.filter((e) => e.type === 'message:new').map((e) => e.message.body);
    assert.equal(msgs.length, 503);
    assert.ok(!msgs.includes('after-removal'));
    socket.disconnect();
  });
});
