'use strict';
// R2: concurrent writers whose transactions commit out of order on purpose,
// readers following sync cursors the whole time; every reader ends with
// exactly the committed events, each once, in commit (seq) order per
// conversation.
//
// Writers are psql sessions writing as the chat core does (sb_stream_lock,
// then sb_event_append, one stream per transaction). On purpose:
// - a transaction takes its event id and then stays open for a second while
//   the other writers commit events with larger ids (the bigserial trap: a
//   reader keyed on id alone would skip it);
// - transactions take an xid early and append late;
// - some transactions roll back (their events must never be seen).
// Readers: several REST followers per user (GET /api/v1/sync with small
// limits, in a loop, from the cursor of before the test) and one phoenix.js
// client per user receiving live events from the tailer.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const WebSocket = require('ws');
const { Socket } = require('phoenix');
const { startServer, slow } = require('./lib/server');
const { sql, Psql, mkUser, streamId, joinTx } = require('./lib/sync_db');

const T = { timeout: 180000 };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function syncPage(srv, token, cursor, limit) {
  const q = cursor ? `?cursor=${encodeURIComponent(cursor)}&limit=${limit}` : '';
  const res = await fetch(srv.url(`/api/v1/sync${q}`), { headers: { authorization: `Bearer ${token}` } });
  const body = await res.json();
  if (res.status !== 200) throw new Error(`sync ${res.status}: ${JSON.stringify(body)}`);
  return body;
}

/** Follows cursors until stop() is true and a page came back empty. */
async function follower(srv, token, cursor, limit, stop, out) {
  for (let i = 0; i < 100000; i++) {
    const body = await syncPage(srv, token, cursor, limit);
    for (const e of body.events) if (e.type === 'message:new') out.push(e.message);
    cursor = body.cursor;
    if (!body.has_more) {
      if (stop() && body.events.length === 0) return;
      await sleep(3 + (i % 7));
    }
  }
  throw new Error('follower did not finish');
}

const payload = (key) => `'${JSON.stringify({ message: { key } })}'::jsonb`;

describe('R2: out-of-order commits, readers following cursors', () => {
  let srv;
  before(async () => { srv = await startServer({ env: { SB_MIGRATE: '1', SB_TAILER_POLL_MS: '50' } }); });
  after(async () => { if (srv) await srv.stop(); });

  test('every reader ends with exactly the committed set, each once, in seq order', T, async () => {
    const users = [await mkUser(), await mkUser(), await mkUser()];
    const streams = [streamId(), streamId(), streamId()];
    for (const s of streams) for (const u of users) await sql(joinTx(s, u));
    const tokens = users.map((u) => srv.token(u));
    const starts = [];
    for (const t of tokens) starts.push((await syncPage(srv, t, null)).cursor);

    // live readers (tailer -> user:<id>)
    const live = users.map(() => []);
    const sockets = users.map((u, i) => {
      const socket = new Socket(srv.wsUrl('/socket'), { transport: WebSocket, params: { token: tokens[i] }, timeout: 10000 * slow() });
      socket.connect();
      const ch = socket.channel(`user:${u}`, { cursor: starts[i] });
      ch.on('message:new', (p) => live[i].push(p.message));
      ch.join();
      return socket;
    });

    // REST readers: two per user, different page sizes
    let done = false;
    const rest = [];
    const followers = [];
    users.forEach((u, i) => {
      for (const limit of [3, 50]) {
        const out = [];
        rest.push({ user: i, limit, out });
        followers.push(follower(srv, tokens[i], starts[i], limit, () => done, out));
      }
    });

    const sessions = Array.from({ length: 6 }, () => new Psql());
    const committed = new Set();
    const rolledBack = new Set();
    const heldIds = [];
    let k = 0;
    const key = (w) => `w${w}-${++k}`;

    // writer 0: takes an id, holds its transaction open while others commit
    const holder = (async () => {
      const p = sessions[0];
      for (let round = 0; round < 3; round++) {
        const kk = key(0);
        const s = streams[round % 3];
        const rows = await p.query(`BEGIN; SELECT sb_stream_lock(${s}); SELECT sb_event_append(${s}, 'message:new', ${payload(kk)}); SELECT currval('events_id_seq');`);
        heldIds.push({ id: BigInt(rows[rows.length - 1]), key: kk, at: Date.now() });
        await sleep(900);
        await p.query('COMMIT;');
        heldIds[heldIds.length - 1].committedAt = Date.now();
        committed.add(kk);
        await sleep(100);
      }
    })();

    // writers 1..4: many short transactions on the three streams, some with
    // several events, some rolled back, some taking their xid early
    const writers = [1, 2, 3, 4].map((w) => (async () => {
      const p = sessions[w];
      const until = Date.now() + 4000;
      let i = 0;
      const commits = [];
      while (Date.now() < until) {
        i++;
        const s = streams[(w + i) % 3];
        const n = 1 + (i % 3);
        const keys = Array.from({ length: n }, () => key(w));
        const appends = keys.map((kk) => `SELECT sb_event_append(${s}, 'message:new', ${payload(kk)});`).join(' ');
        if (i % 11 === 0) {
          await p.query(`BEGIN; SELECT sb_stream_lock(${s}); ${appends} ROLLBACK;`);
          keys.forEach((kk) => rolledBack.add(kk));
        } else if (i % 5 === 0) {
          await p.query(`BEGIN; SELECT sb_stream_lock(${s}); SELECT pg_current_xact_id();`);
          await sleep(15);
          await p.query(`${appends} SELECT pg_sleep(0.01); COMMIT;`);
          keys.forEach((kk) => committed.add(kk));
          commits.push({ keys, at: Date.now() });
        } else {
          await p.query(`BEGIN; SELECT sb_stream_lock(${s}); ${appends} COMMIT;`);
          keys.forEach((kk) => committed.add(kk));
          commits.push({ keys, at: Date.now() });
        }
      }
      return commits;
    })());

    // writer 5: a transaction with an xid, left open, ending in a rollback
    const idle = (async () => {
      const p = sessions[5];
      await p.query(`BEGIN; SELECT pg_current_xact_id(); SELECT sb_stream_lock(${streams[0]}); SELECT sb_event_append(${streams[0]}, 'message:new', ${payload('never')});`);
      rolledBack.add('never');
      await sleep(700);
      await p.query('ROLLBACK;');
    })();

    const [, writerCommits] = await Promise.all([holder, Promise.all(writers), idle]);
    for (const s of sessions) await s.close();

    // the out-of-order commits did happen: events with larger ids committed
    // while a held transaction with a smaller id was still open
    const allKeys = writerCommits.flat().filter((c) => heldIds.some((h) => c.at > h.at && c.at < h.committedAt));
    assert.ok(allKeys.length > 0, 'some transactions committed while a held one was open');
    const ids = await sql(`SELECT payload->'message'->>'key', id FROM events WHERE stream IN (${streams.join(',')})`);
    const idOf = new Map(ids.map((l) => { const [kk, id] = l.split('|'); return [kk, BigInt(id)]; }));
    const overtook = allKeys.some((c) => c.keys.some((kk) => heldIds.some((h) => idOf.get(kk) > h.id && c.at < h.committedAt)));
    assert.ok(overtook, 'an event with a larger id committed before a held smaller one');

    // what the database holds is exactly what the writers committed
    const inDb = new Set(ids.map((l) => l.split('|')[0]).filter((kk) => kk.startsWith('w')));
    assert.deepEqual([...inDb].sort(), [...committed].sort());
    for (const kk of rolledBack) assert.ok(!idOf.has(kk), `rolled back ${kk} is not in the log`);

    // expected order per stream: seq order
    const order = {};
    for (const s of streams) {
      order[s] = (await sql(`SELECT payload->'message'->>'key' FROM events WHERE stream = ${s} AND type = 'message:new' ORDER BY seq`));
    }
    const streamOf = new Map();
    for (const s of streams) for (const kk of order[s]) streamOf.set(kk, s);

    done = true;
    await Promise.all(followers);
    const check = (msgs, what) => {
      const keys = msgs.map((m) => m.key);
      const dup = keys.filter((x, i) => keys.indexOf(x) !== i);
      assert.deepEqual(dup, [], `${what}: duplicates`);
      assert.deepEqual([...keys].sort(), [...committed].sort(), `${what}: not exactly the committed set`);
      for (const s of streams) {
        assert.deepEqual(keys.filter((kk) => streamOf.get(kk) === s), order[s], `${what}: stream order`);
      }
    };
    for (const r of rest) check(r.out, `REST reader of user ${r.user} (limit ${r.limit})`);
    const deadline = Date.now() + 15000 * slow();
    while (live.some((l) => l.length < committed.size) && Date.now() < deadline) await sleep(50);
    live.forEach((l, i) => check(l, `live reader ${i}`));
    for (const s of sockets) s.disconnect();
    assert.ok(committed.size > 50, `${committed.size} events committed`);
  });
});
