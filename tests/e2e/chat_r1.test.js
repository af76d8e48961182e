'use strict';
// R1 for the chat write path: `kill -9` of the server during sustained
// sends. Every acknowledged message is in Postgres; after a restart the
// clients retry what was not acknowledged with the same client_id, and each
// message then exists exactly once, with gapless seq, delivered live to a
// member's user:<id> topic on the new server, and visible in history.

const { describe, test, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { startServer } = require('./lib/server');
const { DB_URL, BASE_ENV, waitForDatabase, sql, api, signupMany, sleep } = require('./lib/api');

const T = { timeout: 120000 };
const ENV = { ...BASE_ENV, SB_RATELIMIT_SEND: '100000/1' };

describe('R1: kill -9 during sustained sends', () => {
  const servers = [];
  after(async () => { for (const s of servers) await s.stop({ signal: 'SIGKILL' }).catch(() => {}); });

  test('acknowledged sends survive; retries after the restart create no duplicates', T, async () => {
    assert.ok(DB_URL, 'no test database URL');
    await waitForDatabase();
    let srv = await startServer({ name: 'chat_r1', env: ENV });
    servers.push(srv);
    const users = await signupMany(srv, 6);
    const g = (await api(srv, 'POST', '/conversations', {
      token: users[0].token, body: { kind: 'group', title: 'R1', member_ids: users.slice(1).map((u) => u.id) },
    })).json.conversation;

    // 5 senders, each sending as soon as the previous send is answered
    const outbox = users.slice(0, 5).map((u) => ({ u, items: Array.from({ length: 400 }, (_, i) => ({ client_id: crypto.randomUUID(), body: `${u.id}:${i}` })) }));
    const acked = new Map(); // client_id -> message
    let killed = false;
    const senders = outbox.map(async ({ u, items }) => {
      for (const it of items) {
        if (killed) return;
        try {
          const r = await api(srv, 'POST', `/conversations/${g.id}/messages`, { token: u.token, body: { client_id: it.client_id, kind: 'text', body: it.body } });
          if (r.status === 201 || r.status === 200) acked.set(it.client_id, r.json.message);
        } catch { return; } // the connection died with the server
      }
    });
    const t0 = Date.now();
    while (acked.size < 150 && Date.now() - t0 < 30000) await sleep(10);
    assert.ok(acked.size >= 150, `sends were acknowledged before the kill (${acked.size})`);
    await srv.stop({ signal: 'SIGKILL' });
    killed = true;
    await Promise.all(senders);

    // every acknowledged message is stored, exactly once
    const ackedIds = [...acked.keys()];
    const stored = Number(sql(`SELECT count(*) FROM messages WHERE conversation_id = ${g.id} AND client_id IN (${ackedIds.map((c) => `'${c}'`).join(',')})`));
    assert.equal(stored, ackedIds.length, 'every acknowledged message is in Postgres');

    // a new server; a member listens live; the senders retry their whole outbox
    srv = await startServer({ name: 'chat_r1', env: ENV });
    servers.push(srv);
    // the new process has its own signing secret: tokens minted by it
    for (const u of users) u.token = srv.token(u.id);
    const { connect, join } = require('./lib/api');
    const sock = await connect(srv, users[5]);
    const { ch } = await join(sock, `user:${users[5].id}`);
    const live = [];
    ch.on('message:new', (p) => { if (p.message.conversation_id === g.id) live.push(p.message.seq); });
    const before = Number(sql(`SELECT count(*) FROM messages WHERE conversation_id = ${g.id}`));
    let fresh = 0;
    await Promise.all(outbox.map(async ({ u, items }) => {
      for (const it of items) {
        const r = await api(srv, 'POST', `/conversations/${g.id}/messages`, { token: u.token, body: { client_id: it.client_id, kind: 'text', body: it.body } });
        assert.ok(r.status === 201 || r.status === 200, r.text);
        if (acked.has(it.client_id)) {
          assert.equal(r.status, 200, 'an acknowledged message is answered as a retry');
          assert.equal(r.json.message.id, acked.get(it.client_id).id);
        }
        if (r.status === 201) fresh++;
      }
    }));
    const total = Number(sql(`SELECT count(*) FROM messages WHERE conversation_id = ${g.id}`));
    assert.equal(total, 2000, 'each of the 2000 messages exists exactly once');
    assert.equal(total, before + fresh);
    const seqs = sql(`SELECT string_agg(seq::text, ',' ORDER BY seq) FROM messages WHERE conversation_id = ${g.id}`).split(',').map(Number);
    assert.deepEqual(seqs, Array.from({ length: 2000 }, (_, i) => i + 1), 'gapless seq across the crash');
    // the sends after the restart reach a member live, in seq order, once
    const t1 = Date.now();
    while (live.length < fresh && Date.now() - t1 < 20000) await sleep(20);
    await sleep(200);
    assert.equal(live.length, fresh);
    assert.deepEqual(live, seqs.slice(before));
    sock.disconnect();
    // history on the new server has everything
    const h = await api(srv, 'GET', `/conversations/${g.id}/messages?limit=200`, { token: users[5].token });
    assert.equal(h.json.items[0].seq, 2000);
  });
});
