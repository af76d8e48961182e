'use strict';
// Group commit of sends (chat_send_batch.c, migrations/044): sends arriving
// together on a reactor are written in one transaction, each acknowledged
// after it committed, each answered on its own: a bad send fails alone,
// duplicates (sender, client_id) inside one burst and across concurrent
// bursts are written once, and every conversation's seq stays gapless and
// in the order each socket sent.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { startServer } = require('./lib/server');
const {
  DB_URL, BASE_ENV, waitForDatabase, sql, api, signupMany, connect, join, push,
} = require('./lib/api');

const T = { timeout: 180000 };
const cid = () => crypto.randomUUID();

describe('send batching (group commit)', () => {
  let srv;
  const sockets = [];
  before(async () => {
    assert.ok(DB_URL, 'no test database URL');
    await waitForDatabase();
    srv = await startServer({ name: 'chat_send_batch', env: { ...BASE_ENV, SB_RATELIMIT_SEND: 'off' } });
  });
  after(async () => {
    for (const s of sockets) s.disconnect();
    if (srv) await srv.stop();
  });

  const direct = async (a, b) => {
    const r = await api(srv, 'POST', '/conversations', { token: a.token, body: { kind: 'direct', user_id: b.id } });
    assert.ok(r.status === 201 || r.status === 200, r.text);
    return r.json.conversation.id;
  };
  const userChannel = async (u) => {
    const sock = await connect(srv, u);
    sockets.push(sock);
    return (await join(sock, `user:${u.id}`)).ch;
  };

  // 200 pushes in one tick over one socket: 160 new sends over 10
  // conversations, 20 of them repeated right after themselves (duplicate
  // client_id), and 20 bad ones: not a member (answered by the set-based
  // batch), an id past bigint (refused before the database) and, when
  // badReply, a reply_to of another conversation (the batch falls back to its
  // per-item path, which must give the same answers).
  const burst = async (badReply) => {
    const users = await signupMany(srv, 12);
    const [me, side, ...others] = users;
    const convs = [];
    for (const o of others) convs.push(await direct(me, o));
    const sideConv = await direct(me, side);
    const anchor = await api(srv, 'POST', `/conversations/${sideConv}/messages`,
      { token: side.token, body: { client_id: cid(), kind: 'text', body: 'anchor' } });
    assert.equal(anchor.status, 201, anchor.text);
    const [stranger1, stranger2] = await signupMany(srv, 2);
    const foreign = await direct(stranger1, stranger2); // me is not a member
    const ch = await userChannel(me);

    const plan = [];
    const firstIds = [];
    for (let i = 0; i < 160; i++) {
      const conv = convs[i % convs.length];
      const item = { kind: 'new', conv, client_id: cid(), body: `m${i}` };
      plan.push(item);
      if (i % 16 === 3 || i % 16 === 11) {
        plan.push({ ...item, kind: 'dup', of: item });
        let bad = { kind: 'bad', conv: foreign, client_id: cid(), body: 'x', reason: 'not_found' };
        if (i % 32 === 11) bad = { ...bad, conv: '99999999999999999999', reason: 'validation_failed' };
        if (badReply && i % 32 === 3 && i > 40) {
          bad = { ...bad, conv, reply_to: anchor.json.message.id, reason: 'validation_failed' };
        }
        plan.push(bad);
      }
    }
    assert.equal(plan.length, 200);
    const replies = await Promise.all(plan.map((p) =>
      push(ch, 'message:send', { conversation_id: p.conv, client_id: p.client_id, kind: 'text', body: p.body, reply_to: p.reply_to })));

    const byClient = new Map();
    replies.forEach((r, i) => {
      const p = plan[i];
      if (p.kind === 'bad') {
        assert.equal(r.status, 'error', JSON.stringify(r));
        assert.equal(r.response.reason, p.reason, JSON.stringify(r));
        return;
      }
      assert.equal(r.status, 'ok', `${p.kind} ${i}: ${JSON.stringify(r)}`);
      const m = r.response.message;
      assert.equal(m.client_id, p.client_id);
      assert.equal(m.conversation_id, String(p.conv));
      if (p.kind === 'new') { byClient.set(p.client_id, m); firstIds.push(m.id); }
      else assert.deepEqual(m, byClient.get(p.client_id), 'a duplicate answers the first message');
    });
    assert.equal(byClient.size, 160);

    // each conversation: gapless seq 1..16, in the order the socket sent
    for (const conv of convs) {
      const sent = plan.filter((p) => p.kind === 'new' && p.conv === conv).map((p) => p.client_id);
      const rows = sql(`SELECT client_id FROM messages WHERE conversation_id = ${conv} ORDER BY seq`).split('\n');
      assert.deepEqual(rows, sent);
      assert.equal(sql(`SELECT count(*) FILTER (WHERE seq BETWEEN 1 AND 16) || ':' || max(seq) FROM messages WHERE conversation_id = ${conv}`), '16:16');
      assert.equal(sql(`SELECT count(*) FROM events WHERE stream = ${conv} AND type = 'message:new'`), '16');
    }
    assert.equal(sql(`SELECT count(*) FROM messages WHERE conversation_id = ${foreign}`), '0');
    // within a transaction, event ids follow seq order in each stream
    assert.equal(sql(`SELECT count(*) FROM events a JOIN events b ON a.stream = b.stream AND a.tx = b.tx
                      AND a.seq < b.seq AND a.id > b.id WHERE a.stream IN (${convs.join(',')})`), '0');
    // the burst was written by a few transactions, not one per send
    const txs = Number(sql(`SELECT count(DISTINCT tx) FROM events WHERE type = 'message:new' AND stream IN (${convs.join(',')})`));
    assert.ok(txs >= 1 && txs <= 8, `the 160 messages took ${txs} transactions`);
  };

  test('200 sends fired at once over one socket: duplicates and bad items answered one by one', T, () => burst(false));
  test('the same with a bad reply_to in the burst (per-item path of the batch)', T, () => burst(true));

  test('concurrent senders over many conversations, with concurrent retries of the same sends', T, async () => {
    const users = await signupMany(srv, 24);
    // a ring: user i talks with i+1, i+2, i+3 (72 direct conversations)
    const pairs = [];
    for (let i = 0; i < users.length; i++)
      for (let d = 1; d <= 3; d++) pairs.push([users[i], users[(i + d) % users.length]]);
    const convOf = new Map();
    for (const [a, b] of pairs) {
      const key = [a.id, b.id].sort().join(':');
      if (!convOf.has(key)) convOf.set(key, await direct(a, b));
    }
    // every user on two sockets; each socket sends the same 30 sends (the
    // second is a concurrent retry of the first), spread over its partners;
    // for every 4th user, every 5th retry goes to another of its
    // conversations (whichever send commits first is the message, the other
    // answers it as a duplicate)
    const chans = [];
    for (const u of users) chans.push([await userChannel(u), await userChannel(u)]);
    const sends = users.map((u, i) => {
      const partners = [1, 2, 3].map((d) => users[(i + d) % users.length]);
      const list = [];
      for (let k = 0; k < 30; k++) {
        const p = partners[k % 3];
        const alt = partners[(k + 1) % 3];
        list.push({ conv: convOf.get([u.id, p.id].sort().join(':')), client_id: cid(), body: `${u.id}-${k}`,
                    alt: i % 4 === 0 && k % 5 === 0 ? convOf.get([u.id, alt.id].sort().join(':')) : null });
      }
      return list;
    });
    const sendAll = (ch, list) => Promise.all(list.map((s) =>
      push(ch, 'message:send', { conversation_id: s.conv, client_id: s.client_id, kind: 'text', body: s.body })));
    const retries = sends.map((list) => list.map((s) => (s.alt ? { ...s, conv: s.alt } : s)));
    const all = await Promise.all(users.flatMap((u, i) => [sendAll(chans[i][0], sends[i]), sendAll(chans[i][1], retries[i])]));
    for (let i = 0; i < users.length; i++) {
      const [r1, r2] = [all[2 * i], all[2 * i + 1]];
      for (let k = 0; k < 30; k++) {
        assert.equal(r1[k].status, 'ok', JSON.stringify(r1[k]));
        assert.equal(r2[k].status, 'ok', JSON.stringify(r2[k]));
        assert.deepEqual(r1[k].response.message, r2[k].response.message, 'both sockets got the same message');
        const s = sends[i][k];
        assert.ok([String(s.conv), String(s.alt || s.conv)].includes(r1[k].response.message.conversation_id));
      }
    }
    const ids = [...convOf.values()].join(',');
    assert.equal(sql(`SELECT count(*) FROM messages WHERE conversation_id IN (${ids})`), String(24 * 30));
    // gapless per conversation, one message:new per message, seq = event order
    const bad = sql(`SELECT count(*) FROM (SELECT conversation_id, count(*) n, max(seq) mx, min(seq) mn
                     FROM messages WHERE conversation_id IN (${ids}) GROUP BY 1) x WHERE n <> mx OR mn <> 1`);
    assert.equal(bad, '0');
    assert.equal(sql(`SELECT count(*) FROM events WHERE type = 'message:new' AND stream IN (${ids})`), String(24 * 30));
    assert.equal(sql(`SELECT count(*) FROM messages m JOIN events e ON e.stream = m.conversation_id AND e.seq = m.event_seq
                      WHERE m.conversation_id IN (${ids}) AND e.payload->'message'->>'id' = m.id::text`), String(24 * 30));
    // each sender's own sends to one conversation keep the order it sent them
    // (not for the senders whose retries went elsewhere: a retry to another
    // conversation is not ordered with the first socket's later sends)
    for (let i = 0; i < users.length; i++) {
      if (i % 4 === 0) continue;
      const byConv = new Map();
      all[2 * i].forEach((r, k) => {
        const conv = r.response.message.conversation_id;
        byConv.set(conv, [...(byConv.get(conv) || []), sends[i][k].client_id]);
      });
      for (const [conv, list] of byConv) {
        const rows = sql(`SELECT client_id FROM messages WHERE conversation_id = ${conv} AND sender_id = ${users[i].id} ORDER BY seq`).split('\n');
        assert.deepEqual(rows, list);
      }
    }
  });

  test('REST sends go through the same path: 201 new, 200 duplicate, 404 not a member', T, async () => {
    const [a, b, c] = await signupMany(srv, 3);
    const conv = await direct(a, b);
    const client = cid();
    const body = { client_id: client, kind: 'text', body: 'over REST' };
    const rs = await Promise.all([1, 2, 3].map(() => api(srv, 'POST', `/conversations/${conv}/messages`, { token: a.token, body })));
    const codes = rs.map((r) => r.status).sort();
    assert.deepEqual(codes, [200, 200, 201], rs.map((r) => r.text).join('\n'));
    assert.equal(new Set(rs.map((r) => r.json.message.id)).size, 1);
    const no = await api(srv, 'POST', `/conversations/${conv}/messages`, { token: c.token, body: { ...body, client_id: cid() } });
    assert.equal(no.status, 404, no.text);
  });
});
