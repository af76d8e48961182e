'use strict';
// Chat core over REST and the user:<id> channel events (api.md §1 `user:`
// client pushes, §2 Conversations and Messages): direct and group
// conversations, sends with idempotent client_id (also concurrent retries),
// gapless seq under 20 concurrent senders, history paging, edits within 15
// minutes, deletes, reactions, receipts and unread counts, the chat list,
// per-user settings, leaving; the S1 matrix (no token, forged, expired,
// another user, a non-member) and bad input. Needs the test database.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { startServer, forgeToken } = require('./lib/server');
const {
  DB_URL, BASE_ENV, waitForDatabase, sql, api, assertError, signup, signupMany, connect, join, push,
} = require('./lib/api');

const T = { timeout: 60000 };
const cid = () => crypto.randomUUID();

describe('chat REST and user-channel events', () => {
  let srv;
  let alice; let bob; let carol; let mallory;

  before(async () => {
    assert.ok(DB_URL, 'no test database URL');
    await waitForDatabase();
    srv = await startServer({ name: 'chat_rest', env: { ...BASE_ENV, SB_RATELIMIT_SEND: '100000/1' } });
    [alice, bob, carol, mallory] = await signupMany(srv, 4);
  });
  after(async () => { if (srv) await srv.stop(); });

  const post = (u, p, body) => api(srv, 'POST', p, { token: u.token, body });
  const get = (u, p) => api(srv, 'GET', p, { token: u.token });

  async function direct(a, b) {
    const r = await post(a, '/conversations', { kind: 'direct', user_id: b.id });
    assert.ok(r.status === 201 || r.status === 200, r.text);
    return r.json.conversation;
  }
  async function group(owner, members, title = 'Group') {
    const r = await post(owner, '/conversations', { kind: 'group', title, member_ids: members.map((m) => m.id) });
    assert.equal(r.status, 201, r.text);
    return r.json.conversation;
  }
  async function send(u, convId, extra = {}) {
    const r = await post(u, `/conversations/${convId}/messages`, { client_id: cid(), kind: 'text', body: 'hi', ...extra });
    assert.equal(r.status, 201, r.text);
    return r.json.message;
  }

  describe('conversations', () => {
    test('direct: created once per pair, returned again to either side', T, async () => {
      const r1 = await post(alice, '/conversations', { kind: 'direct', user_id: bob.id });
      assert.equal(r1.status, 201, r1.text);
      const c = r1.json.conversation;
      assert.equal(c.kind, 'direct');
      assert.match(c.id, /^[1-9][0-9]*$/);
      assert.deepEqual(c.members.map((m) => m.user_id).sort(), [alice.id, bob.id].sort());
      assert.equal(c.unread_count, 0);
      assert.equal(c.last_message, null);
      const r2 = await post(bob, '/conversations', { kind: 'direct', user_id: alice.id });
      assert.equal(r2.status, 200, r2.text);
      assert.equal(r2.json.conversation.id, c.id);
    });

    test('direct: concurrent creates of one pair give one conversation', T, async () => {
      const [x, y] = await signupMany(srv, 2);
      const rs = await Promise.all([
        post(x, '/conversations', { kind: 'direct', user_id: y.id }),
        post(y, '/conversations', { kind: 'direct', user_id: x.id }),
        post(x, '/conversations', { kind: 'direct', user_id: y.id }),
      ]);
      const ids = new Set(rs.map((r) => { assert.ok([200, 201].includes(r.status), r.text); return r.json.conversation.id; }));
      assert.equal(ids.size, 1);
      assert.equal(rs.filter((r) => r.status === 201).length, 1);
    });

    test('group: owner and members, settings, GET for members only', T, async () => {
      const g = await group(alice, [bob, carol], 'Trip');
      assert.equal(g.kind, 'group');
      assert.equal(g.title, 'Trip');
      const roles = Object.fromEntries(g.members.map((m) => [m.user_id, m.role]));
      assert.deepEqual(roles, { [alice.id]: 'owner', [bob.id]: 'member', [carol.id]: 'member' });
      assert.deepEqual(g.settings, { who_can_send: 'all', who_can_edit_info: 'all', who_can_add_members: 'all' });
      const r = await get(bob, `/conversations/${g.id}`);
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.conversation.id, g.id);
      assertError(await get(mallory, `/conversations/${g.id}`), 404, 'not_found');
      assertError(await get(mallory, '/conversations/999999999'), 404, 'not_found');
    });

    test('PATCH info and settings; who_can_send admins; roles', T, async () => {
      const g = await group(alice, [bob, carol]);
      let r = await api(srv, 'PATCH', `/conversations/${g.id}`, { token: bob.token, body: { title: 'Renamed', description: 'd' } });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.conversation.title, 'Renamed');
      assertError(await api(srv, 'PATCH', `/conversations/${g.id}`, { token: bob.token, body: { settings: { who_can_send: 'admins' } } }), 403, 'forbidden');
      r = await api(srv, 'PATCH', `/conversations/${g.id}`, { token: alice.token, body: { settings: { who_can_send: 'admins' } } });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.conversation.settings.who_can_send, 'admins');
      assertError(await post(bob, `/conversations/${g.id}/messages`, { client_id: cid(), kind: 'text', body: 'x' }), 403, 'forbidden');
      r = await api(srv, 'PATCH', `/conversations/${g.id}/members/${bob.id}`, { token: alice.token, body: { role: 'admin' } });
      assert.equal(r.status, 200, r.text);
      await send(bob, g.id);
      assertError(await api(srv, 'PATCH', `/conversations/${g.id}/members/${alice.id}`, { token: bob.token, body: { role: 'member' } }), 403, 'forbidden');
      assertError(await api(srv, 'PATCH', `/conversations/${g.id}/members/${carol.id}`, { token: bob.token, body: { role: 'owner' } }), 422, 'validation_failed');
    });

    test('members: list, add, remove, leave; removed user loses access', T, async () => {
      const [d, e] = await signupMany(srv, 2);
      const g = await group(alice, [bob]);
      let r = await post(bob, `/conversations/${g.id}/members`, { user_ids: [d.id, e.id] });
      assert.equal(r.status, 200, r.text);
      r = await get(alice, `/conversations/${g.id}/members?limit=2`);
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.items.length, 2);
      assert.ok(r.json.next_cursor);
      const r2 = await get(alice, `/conversations/${g.id}/members?limit=2&cursor=${encodeURIComponent(r.json.next_cursor)}`);
      assert.equal(r2.json.items.length, 2);
      assert.equal(r2.json.next_cursor, null);
      assert.deepEqual([...r.json.items, ...r2.json.items].map((m) => m.user_id).sort(), [alice.id, bob.id, d.id, e.id].sort());
      assertError(await api(srv, 'DELETE', `/conversations/${g.id}/members/${alice.id}`, { token: bob.token }), 403, 'forbidden');
      r = await api(srv, 'DELETE', `/conversations/${g.id}/members/${d.id}`, { token: alice.token });
      assert.equal(r.status, 204, r.text);
      assertError(await get(d, `/conversations/${g.id}/messages`), 404, 'not_found');
      assertError(await post(d, `/conversations/${g.id}/messages`, { client_id: cid(), kind: 'text', body: 'x' }), 404, 'not_found');
      r = await api(srv, 'DELETE', `/conversations/${g.id}/me`, { token: e.token });
      assert.equal(r.status, 204, r.text);
      assertError(await get(e, `/conversations/${g.id}`), 404, 'not_found');
      // the owner leaves: ownership passes on
      r = await api(srv, 'DELETE', `/conversations/${g.id}/me`, { token: alice.token });
      assert.equal(r.status, 204, r.text);
      r = await get(bob, `/conversations/${g.id}`);
      assert.deepEqual(r.json.conversation.members, [{ user_id: bob.id, role: 'owner' }]);
      // memberships periods: d's ended at the removal event, which d still sees
      const rows = sql(`SELECT user_id, from_seq, to_seq FROM memberships WHERE conversation_id = ${g.id} AND user_id = ${d.id}`);
      const [, from, to] = rows.split('|').map(Number);
      assert.ok(from >= 2 && to > from, rows);
      assert.equal(sql(`SELECT type FROM events WHERE stream = ${g.id} AND seq = ${to}`), 'conversation:updated');
      assert.equal(sql(`SELECT count(*) FROM events WHERE stream = -${d.id} AND type = 'conversation:removed' AND payload->>'conversation_id' = '${g.id}'`), '1');
    });

    test('chat list: last message, unread, pinned first, archived apart, paging', T, async () => {
      const [u, a, b, c] = await signupMany(srv, 4);
      const ca = await direct(u, a);
      const cb = await direct(u, b);
      const cc = await direct(u, c);
      await send(a, ca.id, { body: 'from a' });
      await send(b, cb.id, { body: 'from b 1' });
      await send(b, cb.id, { body: 'from b 2' });
      await send(c, cc.id, { body: 'from c' });
      let r = await get(u, '/conversations');
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.json.items.map((x) => x.id), [cc.id, cb.id, ca.id], 'newest activity first');
      const byId = Object.fromEntries(r.json.items.map((x) => [x.id, x]));
      assert.equal(byId[cb.id].unread_count, 2);
      assert.equal(byId[cb.id].last_message.body, 'from b 2');
      assert.equal(byId[ca.id].pinned, false);
      r = await api(srv, 'PUT', `/conversations/${ca.id}/me`, { token: u.token, body: { pinned: true } });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.conversation.pinned, true);
      r = await api(srv, 'PUT', `/conversations/${cc.id}/me`, { token: u.token, body: { archived: true, muted_until: '2099-01-01T00:00:00.000Z' } });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.conversation.muted_until, '2099-01-01T00:00:00.000Z');
      r = await get(u, '/conversations?limit=1');
      assert.deepEqual(r.json.items.map((x) => x.id), [ca.id], 'pinned first');
      assert.ok(r.json.next_cursor);
      const r2 = await get(u, `/conversations?limit=1&cursor=${encodeURIComponent(r.json.next_cursor)}`);
      assert.deepEqual(r2.json.items.map((x) => x.id), [cb.id]);
      assert.equal(r2.json.next_cursor, null);
      r = await get(u, '/conversations?archived=true');
      assert.deepEqual(r.json.items.map((x) => x.id), [cc.id]);
      assertError(await get(u, '/conversations?cursor=bm9wZQ'), 422, 'validation_failed');
      assertError(await api(srv, 'PUT', `/conversations/${ca.id}/me`, { token: u.token, body: { pinned: 'yes' } }), 422, 'validation_failed');
      assertError(await api(srv, 'PUT', `/conversations/${ca.id}/me`, { token: mallory.token, body: { pinned: true } }), 404, 'not_found');
      // hiding a direct chat: gone from the list until the next message
      r = await api(srv, 'DELETE', `/conversations/${cb.id}/me`, { token: u.token });
      assert.equal(r.status, 204, r.text);
      r = await get(u, '/conversations?limit=200');
      assert.ok(!r.json.items.some((x) => x.id === cb.id));
      await send(b, cb.id, { body: 'back' });
      r = await get(u, '/conversations?limit=200');
      assert.ok(r.json.items.some((x) => x.id === cb.id));
    });
  });

  describe('messages', () => {
    test('send: Message shape, seq per conversation', T, async () => {
      const c = await direct(alice, carol);
      const client = cid();
      const r = await post(alice, `/conversations/${c.id}/messages`, { client_id: client, kind: 'text', body: 'héllo' });
      assert.equal(r.status, 201, r.text);
      const m = r.json.message;
      assert.deepEqual(Object.keys(m).sort(), ['body', 'client_id', 'contact', 'conversation_id', 'deleted', 'edited_at', 'forward_of',
        'id', 'inserted_at', 'kind', 'location', 'media', 'reactions', 'reply_to', 'seq', 'sender_id'].sort());
      assert.equal(m.body, 'héllo');
      assert.equal(m.client_id, client);
      assert.equal(m.sender_id, alice.id);
      assert.equal(m.conversation_id, c.id);
      assert.equal(m.deleted, false);
      assert.deepEqual(m.reactions, {});
      assert.match(m.inserted_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      const m2 = await send(carol, c.id);
      assert.equal(m2.seq, m.seq + 1);
    });

    test('kinds: ciphertext untouched, media, location, contact', T, async () => {
      const c = await direct(alice, bob);
      const cipher = 'AAEC/+0=\n\u00ff\u2603 raw';
      let r = await post(alice, `/conversations/${c.id}/messages`, { client_id: cid(), kind: 'ciphertext', body: cipher });
      assert.equal(r.status, 201, r.text);
      assert.equal(r.json.message.body, cipher);
      // media must be an upload the sender may read (api.md "Media"); the message carries its metadata
      r = await post(alice, `/conversations/${c.id}/messages`, { client_id: cid(), kind: 'image', media_id: 'abc_123', body: 'caption' });
      assertError(r, 422, 'validation_failed');
      const up = await api(srv, 'POST', '/media', { token: alice.token, raw: Buffer.from('89504e470d0a1a0a0000000d4948445200000002000000030000', 'hex'), headers: { 'content-type': 'image/png' } });
      assert.equal(up.status, 201, up.text);
      r = await post(alice, `/conversations/${c.id}/messages`, { client_id: cid(), kind: 'image', media_id: up.json.media.id, body: 'caption' });
      assert.equal(r.status, 201, r.text);
      assert.deepEqual(r.json.message.media, { id: up.json.media.id, mime: 'image/png', size: 26, width: 2, height: 3 });
      r = await post(alice, `/conversations/${c.id}/messages`, { client_id: cid(), kind: 'location', location: { latitude: 48.85, longitude: 2.35, name: 'Paris' } });
      assert.equal(r.status, 201, r.text);
      assert.deepEqual(r.json.message.location, { latitude: 48.85, longitude: 2.35, name: 'Paris' });
      r = await post(alice, `/conversations/${c.id}/messages`, { client_id: cid(), kind: 'contact', contact: { name: 'Bob', phone: '+33 1' } });
      assert.equal(r.status, 201, r.text);
      assert.deepEqual(r.json.message.contact, { name: 'Bob', phone: '+33 1', user_id: null });
    });

    test('idempotent client_id: retries and concurrent retries yield one message', T, async () => {
      const c = await direct(alice, bob);
      const client = cid();
      const body = { client_id: client, kind: 'text', body: 'once' };
      const r1 = await post(alice, `/conversations/${c.id}/messages`, body);
      assert.equal(r1.status, 201);
      const r2 = await post(alice, `/conversations/${c.id}/messages`, body);
      assert.equal(r2.status, 200, 'a retry answers 200 with the original');
      assert.deepEqual(r2.json.message, r1.json.message);
      const client2 = cid();
      const rs = await Promise.all(Array.from({ length: 10 }, () =>
        post(alice, `/conversations/${c.id}/messages`, { client_id: client2, kind: 'text', body: 'race' })));
      const ids = new Set(rs.map((r) => { assert.ok([200, 201].includes(r.status), r.text); return r.json.message.id; }));
      assert.equal(ids.size, 1);
      assert.equal(rs.filter((r) => r.status === 201).length, 1);
      assert.equal(sql(`SELECT count(*) FROM messages WHERE client_id = '${client2}'`), '1');
      assert.equal(sql(`SELECT count(*) FROM events WHERE type = 'message:new' AND payload->'message'->>'client_id' = '${client2}'`), '1');
      // the same over the channel, concurrently with REST
      const sock = await connect(srv, alice);
      try {
        const { ch } = await join(sock, `user:${alice.id}`);
        const client3 = cid();
        const res = await Promise.all([
          push(ch, 'message:send', { conversation_id: c.id, client_id: client3, kind: 'text', body: 'ch' }),
          push(ch, 'message:send', { conversation_id: c.id, client_id: client3, kind: 'text', body: 'ch' }),
          post(alice, `/conversations/${c.id}/messages`, { client_id: client3, kind: 'text', body: 'ch' }),
        ]);
        assert.equal(res[0].status, 'ok', JSON.stringify(res[0]));
        assert.deepEqual(Object.keys(res[0].response), ['message']);
        assert.equal(res[0].response.message.id, res[1].response.message.id);
        assert.equal(res[0].response.message.id, res[2].json.message.id);
        assert.equal(sql(`SELECT count(*) FROM messages WHERE client_id = '${client3}'`), '1');
      } finally { sock.disconnect(); }
    });

    test('20 concurrent senders: gapless seq, no duplicates', T, async () => {
      const users = await signupMany(srv, 20);
      const g = await group(users[0], users.slice(1));
      const per = 5;
      const all = await Promise.all(users.map(async (u) => {
        const out = [];
        for (let i = 0; i < per; i++) {
          out.push(post(u, `/conversations/${g.id}/messages`, { client_id: cid(), kind: 'text', body: `${u.id}-${i}` }));
        }
        return Promise.all(out);
      }));
      const seqs = all.flat().map((r) => { assert.equal(r.status, 201, r.text); return r.json.message.seq; }).sort((a, b) => a - b);
      assert.deepEqual(seqs, Array.from({ length: 20 * per }, (_, i) => i + 1));
      // events of the stream are gapless too, and in seq order of commit
      const ev = sql(`SELECT string_agg(seq::text, ',' ORDER BY seq) FROM events WHERE stream = ${g.id}`).split(',').map(Number);
      assert.deepEqual(ev, Array.from({ length: ev.length }, (_, i) => i + 1));
      const order = sql(`SELECT string_agg((payload->'message'->>'seq'), ',' ORDER BY seq) FROM events WHERE stream = ${g.id} AND type = 'message:new'`).split(',').map(Number);
      assert.deepEqual(order, seqs);
      assert.equal(sql(`SELECT count(*) FROM messages WHERE conversation_id = ${g.id}`), String(20 * per), 'one row per message');
    });

    test('history: newest first, before_seq / after_seq / cursor paging, members only', T, async () => {
      const c = await direct(bob, carol);
      for (let i = 1; i <= 7; i++) await send(i % 2 ? bob : carol, c.id, { body: `m${i}` });
      let r = await get(bob, `/conversations/${c.id}/messages?limit=3`);
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.json.items.map((m) => m.seq), [7, 6, 5]);
      r = await get(bob, `/conversations/${c.id}/messages?limit=3&cursor=${encodeURIComponent(r.json.next_cursor)}`);
      assert.deepEqual(r.json.items.map((m) => m.seq), [4, 3, 2]);
      r = await get(bob, `/conversations/${c.id}/messages?limit=3&cursor=${encodeURIComponent(r.json.next_cursor)}`);
      assert.deepEqual(r.json.items.map((m) => m.seq), [1]);
      assert.equal(r.json.next_cursor, null);
      r = await get(bob, `/conversations/${c.id}/messages?before_seq=3`);
      assert.deepEqual(r.json.items.map((m) => m.seq), [2, 1]);
      r = await get(bob, `/conversations/${c.id}/messages?after_seq=2&limit=2`);
      assert.deepEqual(r.json.items.map((m) => m.seq), [4, 3]);
      r = await get(bob, `/conversations/${c.id}/messages?limit=2&cursor=${encodeURIComponent(r.json.next_cursor)}`);
      assert.deepEqual(r.json.items.map((m) => m.seq), [6, 5]);
      assertError(await get(mallory, `/conversations/${c.id}/messages`), 404, 'not_found');
      assertError(await get(bob, `/conversations/${c.id}/messages?before_seq=-1`), 422, 'validation_failed');
      assertError(await get(bob, `/conversations/${c.id}/messages?limit=500`), 422, 'validation_failed');
    });

    test('edit: sender only, within 15 minutes; message:edit over the channel', T, async () => {
      const c = await direct(alice, bob);
      const m = await send(alice, c.id, { body: 'v1' });
      let r = await api(srv, 'PATCH', `/messages/${m.id}`, { token: alice.token, body: { body: 'v2' } });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.message.body, 'v2');
      assert.match(r.json.message.edited_at, /Z$/);
      assertError(await api(srv, 'PATCH', `/messages/${m.id}`, { token: bob.token, body: { body: 'x' } }), 403, 'forbidden');
      assertError(await api(srv, 'PATCH', `/messages/${m.id}`, { token: mallory.token, body: { body: 'x' } }), 404, 'not_found');
      const sock = await connect(srv, alice);
      try {
        const { ch } = await join(sock, `user:${alice.id}`);
        const e = await push(ch, 'message:edit', { message_id: m.id, body: 'v3' });
        assert.equal(e.status, 'ok', JSON.stringify(e));
        assert.equal(e.response.message.body, 'v3');
        sql(`UPDATE messages SET inserted_at = now() - interval '16 minutes' WHERE id = ${m.id}`);
        const late = await push(ch, 'message:edit', { message_id: m.id, body: 'v4' });
        assert.equal(late.status, 'error');
        assert.equal(late.response.reason, 'forbidden');
        assert.match(late.response.message, /15 minutes/);
      } finally { sock.disconnect(); }
      assertError(await api(srv, 'PATCH', `/messages/${m.id}`, { token: alice.token, body: { body: 'v5' } }), 403, 'forbidden');
    });

    test('delete for everyone (sender only) and for me', T, async () => {
      const c = await direct(alice, bob);
      const m1 = await send(alice, c.id, { body: 'secret' });
      const m2 = await send(bob, c.id, { body: 'keep' });
      assertError(await api(srv, 'DELETE', `/messages/${m1.id}?for=everyone`, { token: bob.token }), 403, 'forbidden');
      assertError(await api(srv, 'DELETE', `/messages/${m1.id}`, { token: alice.token }), 422, 'validation_failed');
      let r = await api(srv, 'DELETE', `/messages/${m1.id}?for=everyone`, { token: alice.token });
      assert.equal(r.status, 204, r.text);
      r = await get(bob, `/conversations/${c.id}/messages`);
      const t = r.json.items.find((m) => m.id === m1.id);
      assert.equal(t.deleted, true);
      assert.equal(t.body, null);
      assert.equal(sql(`SELECT payload::text FROM events WHERE stream = ${c.id} AND type = 'message:deleted'`),
        JSON.stringify({ seq: m1.seq, message_id: m1.id, conversation_id: c.id }).replace(/,/g, ', ').replace(/:/g, ': '));
      r = await api(srv, 'DELETE', `/messages/${m2.id}?for=me`, { token: alice.token });
      assert.equal(r.status, 204, r.text);
      r = await get(alice, `/conversations/${c.id}/messages`);
      assert.ok(!r.json.items.some((m) => m.id === m2.id), 'hidden for alice');
      r = await get(bob, `/conversations/${c.id}/messages`);
      assert.ok(r.json.items.some((m) => m.id === m2.id && m.body === 'keep'), 'still there for bob');
      assert.equal(sql(`SELECT count(*) FROM events WHERE stream = -${alice.id} AND type = 'message:deleted' AND payload->>'message_id' = '${m2.id}'`), '1');
    });

    test('reactions: add, remove, per-user lists; channel message:react', T, async () => {
      const c = await direct(alice, bob);
      const m = await send(alice, c.id);
      let r = await post(bob, `/messages/${m.id}/reactions`, { emoji: '👍' });
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.json.message.reactions, { '👍': [bob.id] });
      r = await post(alice, `/messages/${m.id}/reactions`, { emoji: '👍' });
      assert.deepEqual(r.json.message.reactions, { '👍': [bob.id, alice.id] });
      r = await api(srv, 'DELETE', `/messages/${m.id}/reactions/${encodeURIComponent('👍')}`, { token: bob.token });
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.json.message.reactions, { '👍': [alice.id] });
      const sock = await connect(srv, bob);
      try {
        const { ch } = await join(sock, `user:${bob.id}`);
        const e = await push(ch, 'message:react', { message_id: m.id, emoji: '🎉', op: 'add' });
        assert.deepEqual(e, { status: 'ok', response: {} });
        const bad = await push(ch, 'message:react', { message_id: m.id, emoji: '🎉', op: 'toggle' });
        assert.equal(bad.status, 'error');
        assert.equal(bad.response.reason, 'validation_failed');
        assert.ok(bad.response.details.op);
      } finally { sock.disconnect(); }
      r = await get(alice, `/conversations/${c.id}/messages`);
      assert.deepEqual(r.json.items[0].reactions, { '👍': [alice.id], '🎉': [bob.id] });
      assertError(await post(mallory, `/messages/${m.id}/reactions`, { emoji: '👍' }), 404, 'not_found');
      assertError(await post(bob, `/messages/${m.id}/reactions`, { emoji: 'two words' }), 422, 'validation_failed');
    });

    test('receipts: watermarks only rise, unread counts follow, receipt events', T, async () => {
      const [carol, bob] = await signupMany(srv, 2); // eslint-disable-line no-shadow
      const c = await direct(carol, bob);
      for (let i = 0; i < 5; i++) await send(carol, c.id);
      let r = await get(bob, `/conversations/${c.id}`);
      assert.equal(r.json.conversation.unread_count, 5);
      r = await post(bob, `/conversations/${c.id}/delivered`, { up_to_seq: 5 });
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.json, { read_seq: 0, delivered_seq: 5 });
      r = await post(bob, `/conversations/${c.id}/read`, { up_to_seq: 3 });
      assert.deepEqual(r.json, { read_seq: 3, delivered_seq: 5 });
      r = await get(bob, `/conversations/${c.id}`);
      assert.equal(r.json.conversation.unread_count, 2);
      r = await post(bob, `/conversations/${c.id}/read`, { up_to_seq: 1 });
      assert.deepEqual(r.json, { read_seq: 3, delivered_seq: 5 }, 'never goes back');
      const sock = await connect(srv, bob);
      try {
        const { ch } = await join(sock, `user:${bob.id}`);
        const e = await push(ch, 'receipt', { conversation_id: c.id, kind: 'read', up_to_seq: 99 });
        assert.deepEqual(e, { status: 'ok', response: {} });
        const bad = await push(ch, 'receipt', { conversation_id: c.id, kind: 'seen', up_to_seq: 1 });
        assert.equal(bad.response.reason, 'validation_failed');
      } finally { sock.disconnect(); }
      r = await get(bob, `/conversations/${c.id}`);
      assert.equal(r.json.conversation.unread_count, 0);
      assert.equal(r.json.conversation.read_seq, 5, 'clipped to the last message');
      const ev = sql(`SELECT string_agg(payload->>'kind' || ':' || (payload->>'up_to_seq'), ',' ORDER BY seq) FROM events WHERE stream = ${c.id} AND type = 'receipt'`);
      assert.equal(ev, 'delivered:5,read:3,read:5');
      assertError(await post(mallory, `/conversations/${c.id}/read`, { up_to_seq: 1 }), 404, 'not_found');
    });

    test('reply_to and forward_of must be messages the sender can see', T, async () => {
      const c1 = await direct(alice, bob);
      const c2 = await direct(alice, carol);
      const other = await direct(mallory, carol);
      const m1 = await send(alice, c1.id);
      const foreign = await send(mallory, other.id);
      let r = await post(bob, `/conversations/${c1.id}/messages`, { client_id: cid(), kind: 'text', body: 're', reply_to: m1.id });
      assert.equal(r.status, 201, r.text);
      assert.equal(r.json.message.reply_to, m1.id);
      r = await post(alice, `/conversations/${c2.id}/messages`, { client_id: cid(), kind: 'text', body: 'fw', forward_of: m1.id });
      assert.equal(r.status, 201, r.text);
      assert.equal(r.json.message.forward_of, m1.id);
      r = await post(alice, `/conversations/${c2.id}/messages`, { client_id: cid(), kind: 'text', body: 're', reply_to: m1.id });
      assertError(r, 422, 'validation_failed');
      assert.ok(r.json.error.details.reply_to);
      r = await post(bob, `/conversations/${c1.id}/messages`, { client_id: cid(), kind: 'text', body: 're', reply_to: foreign.id });
      assertError(r, 422, 'validation_failed');
      r = await post(bob, `/conversations/${c1.id}/messages`, { client_id: cid(), kind: 'text', body: 'fw', forward_of: foreign.id });
      assertError(r, 422, 'validation_failed');
      assert.ok(r.json.error.details.forward_of);
    });
  });

  describe('bad input and the S1 matrix', () => {
    test('send validation: unknown kind, oversize, missing fields, bad ids → 422 / channel errors', T, async () => {
      const c = await direct(alice, bob);
      const p = `/conversations/${c.id}/messages`;
      const cases = [
        [{ client_id: cid(), kind: 'sticker', body: 'x' }, 'kind'],
        [{ kind: 'text', body: 'x' }, 'client_id'],
        [{ client_id: cid(), body: 'x' }, 'kind'],
        [{ client_id: cid(), kind: 'text' }, 'body'],
        [{ client_id: cid(), kind: 'text', body: 'x'.repeat(65537) }, 'body'],
        [{ client_id: cid(), kind: 'image' }, 'media_id'],
        [{ client_id: cid(), kind: 'text', body: 'x', media_id: 'm1' }, 'media_id'],
        [{ client_id: cid(), kind: 'location', location: { latitude: 100, longitude: 0 } }, 'location'],
        [{ client_id: cid(), kind: 'contact' }, 'contact'],
        [{ client_id: cid(), kind: 'text', body: 'x', reply_to: 'abc' }, 'reply_to'],
        [{ client_id: 'x'.repeat(65), kind: 'text', body: 'x' }, 'client_id'],
        [{ client_id: cid(), kind: 'text', body: 7 }, 'body'],
      ];
      for (const [body, field] of cases) {
        const r = await post(alice, p, body);
        assertError(r, 422, 'validation_failed');
        assert.ok(r.json.error.details[field], `${field} named in ${r.text}`);
      }
      assertError(await api(srv, 'POST', p, { token: alice.token, raw: '{nope', headers: { 'content-type': 'application/json' } }), 400, 'bad_request');
      assertError(await post(alice, '/conversations/abc/messages', { client_id: cid(), kind: 'text', body: 'x' }), 404, 'not_found');
      assertError(await post(alice, '/conversations', { kind: 'group', member_ids: [] }), 422, 'validation_failed');
      assertError(await post(alice, '/conversations', { kind: 'direct', user_id: '999999999' }), 422, 'validation_failed');
      assertError(await post(alice, '/conversations', { kind: 'direct', user_id: alice.id }), 422, 'validation_failed');
      assertError(await post(alice, '/conversations', { kind: 'group', title: 'x', member_ids: ['1', 'zz'] }), 422, 'validation_failed');
      assertError(await post(alice, '/conversations', { kind: 'channel' }), 422, 'validation_failed');
      const sock = await connect(srv, alice);
      try {
        const { ch } = await join(sock, `user:${alice.id}`);
        for (const [body, field] of cases) {
          const r = await push(ch, 'message:send', { conversation_id: c.id, ...body });
          assert.equal(r.status, 'error', JSON.stringify(r));
          assert.equal(r.response.reason, 'validation_failed');
          assert.ok(r.response.details[field], `${field} in ${JSON.stringify(r.response)}`);
        }
        let r = await push(ch, 'message:send', { client_id: cid(), kind: 'text', body: 'x' });
        assert.ok(r.response.details.conversation_id);
        r = await push(ch, 'message:send', 'not an object');
        assert.equal(r.response.reason, 'bad_request');
        r = await push(ch, 'no:such:event', {});
        assert.equal(r.status, 'error');
        assert.equal(r.response.reason, 'bad_request');
        r = await push(ch, 'message:delete', { message_id: '1', for: 'them' });
        assert.ok(r.response.details.for);
      } finally { sock.disconnect(); }
    });

    test('S1: no token, forged, expired, another user, non-member on every endpoint', T, async () => {
      const [alice, bob] = await signupMany(srv, 2); // eslint-disable-line no-shadow
      const c = await direct(alice, bob);
      const m = await send(alice, c.id);
      const expired = srv.token(alice.id, { ttl: -60 });
      const forged = forgeToken(alice.token);
      const endpoints = [
        ['GET', '/conversations'], ['POST', '/conversations', { kind: 'direct', user_id: bob.id }],
        ['GET', `/conversations/${c.id}`], ['PATCH', `/conversations/${c.id}`, { title: 'x' }],
        ['PUT', `/conversations/${c.id}/me`, { pinned: true }], ['DELETE', `/conversations/${c.id}/me`],
        ['GET', `/conversations/${c.id}/members`], ['POST', `/conversations/${c.id}/members`, { user_ids: [carol.id] }],
        ['PATCH', `/conversations/${c.id}/members/${bob.id}`, { role: 'admin' }], ['DELETE', `/conversations/${c.id}/members/${bob.id}`],
        ['GET', `/conversations/${c.id}/messages`], ['POST', `/conversations/${c.id}/messages`, { client_id: cid(), kind: 'text', body: 'x' }],
        ['POST', `/conversations/${c.id}/read`, { up_to_seq: 1 }], ['POST', `/conversations/${c.id}/delivered`, { up_to_seq: 1 }],
        ['PATCH', `/messages/${m.id}`, { body: 'x' }], ['DELETE', `/messages/${m.id}?for=me`],
        ['POST', `/messages/${m.id}/reactions`, { emoji: '👍' }], ['DELETE', `/messages/${m.id}/reactions/x`],
      ];
      for (const [method, p, body] of endpoints) {
        for (const auth of [undefined, `Bearer ${forged}`, `Bearer ${expired}`, 'Basic abc']) {
          const r = await api(srv, method, p, { body, auth });
          assertError(r, 401, 'unauthorized');
        }
        if (p === '/conversations') continue;
        // a non-member (also: another user's resources) learns nothing: 404
        const r = await api(srv, method, p, { body, token: mallory.token });
        assertError(r, 404, 'not_found');
      }
      // the user: topic of another user cannot be joined, so its events cannot be sent
      const sock = await connect(srv, mallory);
      try {
        await assert.rejects(join(sock, `user:${alice.id}`), (e) => e.resp && e.resp.reason === 'forbidden');
        const { ch } = await join(sock, `user:${mallory.id}`);
        for (const [ev, payload] of [
          ['message:send', { conversation_id: c.id, client_id: cid(), kind: 'text', body: 'x' }],
          ['message:edit', { message_id: m.id, body: 'x' }],
          ['message:delete', { message_id: m.id, for: 'everyone' }],
          ['message:react', { message_id: m.id, emoji: '👍', op: 'add' }],
          ['receipt', { conversation_id: c.id, kind: 'read', up_to_seq: 1 }],
        ]) {
          const r = await push(ch, ev, payload);
          assert.equal(r.status, 'error', `${ev}: ${JSON.stringify(r)}`);
          assert.equal(r.response.reason, 'not_found', ev);
        }
      } finally { sock.disconnect(); }
      const r = await get(alice, `/conversations/${c.id}/messages`);
      assert.equal(r.json.items.length, 1, 'nothing changed');
      assert.equal(r.json.items[0].body, 'hi');
      assert.deepEqual(r.json.items[0].reactions, {});
    });
  });
});

describe('send rate limit (S6)', () => {
  let srv;
  before(async () => {
    await waitForDatabase();
    srv = await startServer({ name: 'chat_rest_rl', env: { ...BASE_ENV, SB_RATELIMIT_SEND: '120/60' } });
  });
  after(async () => { if (srv) await srv.stop(); });

  test('an outbox of 100 flushes at once; past the burst → 429 rate_limited with Retry-After', T, async () => {
    const [a, b] = await signupMany(srv, 2);
    const c = (await api(srv, 'POST', '/conversations', { token: a.token, body: { kind: 'direct', user_id: b.id } })).json.conversation;
    const rs = await Promise.all(Array.from({ length: 100 }, (_, i) =>
      api(srv, 'POST', `/conversations/${c.id}/messages`, { token: a.token, body: { client_id: cid(), kind: 'text', body: `q${i}` } })));
    for (const r of rs) assert.equal(r.status, 201, r.text);
    let limited = null;
    for (let i = 0; i < 40 && !limited; i++) {
      const r = await api(srv, 'POST', `/conversations/${c.id}/messages`, { token: a.token, body: { client_id: cid(), kind: 'text', body: 'more' } });
      if (r.status === 429) limited = r;
      else assert.equal(r.status, 201, r.text);
    }
    assert.ok(limited, 'rate limited after the burst');
    assertError(limited, 429, 'rate_limited');
    assert.ok(Number(limited.headers.get('retry-after')) >= 1);
    // another user is not affected
    const r = await api(srv, 'POST', `/conversations/${c.id}/messages`, { token: b.token, body: { client_id: cid(), kind: 'text', body: 'ok' } });
    assert.equal(r.status, 201, r.text);
  });
});

describe('database unreachable (R4 path)', () => {
  let srv;
  before(async () => {
    // a Postgres that is not there: every chat write and read must answer
    // 503 unavailable (nothing acknowledged), never hang or crash
    srv = await startServer({ name: 'chat_rest_nodb', env: { SB_DATABASE_URL: 'postgresql://nobody@127.0.0.1:1/none?connect_timeout=1', SB_MIGRATE: '0' } });
  });
  after(async () => { if (srv) await srv.stop(); });

  test('sends, reads and conversation joins answer unavailable', T, async () => {
    const tok = srv.token('4242');
    let r = await api(srv, 'POST', '/conversations/1/messages', { token: tok, body: { client_id: cid(), kind: 'text', body: 'x' } });
    assertError(r, 503, 'unavailable');
    assert.ok(Number(r.headers.get('retry-after')) >= 1);
    assertError(await api(srv, 'GET', '/conversations', { token: tok }), 503, 'unavailable');
    assertError(await api(srv, 'GET', '/conversations/1/messages', { token: tok }), 503, 'unavailable');
    const user = { id: '4242', token: tok };
    const sock = await connect(srv, user);
    try {
      const { ch } = await join(sock, 'user:4242');
      const s = await push(ch, 'message:send', { conversation_id: '1', client_id: cid(), kind: 'text', body: 'x' });
      assert.equal(s.status, 'error');
      assert.equal(s.response.reason, 'unavailable');
      await assert.rejects(join(sock, 'conversation:1'), (e) => e.resp && e.resp.reason === 'unavailable');
    } finally { sock.disconnect(); }
    assert.ok(srv.alive());
  });
});
