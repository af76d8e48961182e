'use strict';
// Catch-up on joining user:<id> with a cursor, through the real phoenix.js
// client: live events carry cursors; a client that disconnects while 500
// messages are sent into its conversations, then reconnects (phoenix.js
// rejoins with its params closure, giving its last cursor), receives all 500
// once and in order, then live ones, with messages still being written
// during the join (the seam: no gap, no duplicate). Also: a join with a
// cursor on a busy stream, repeated; a join without a cursor starts live.
// Events are written with SQL as the chat core writes them.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const WebSocket = require('ws');
const { Socket, LongPoll } = require('phoenix');
const { startServer, slow } = require('./lib/server');
const { waitFor } = require('./lib/phx');
const { sql, Psql, mkUser, streamId, appendTx, joinTx } = require('./lib/sync_db');

const T = { timeout: 120000 };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A phoenix.js client of user `uid` that records every durable event and
 * rejoins with the last cursor it saw (params closure). */
function client(srv, uid, token, transport = WebSocket) {
  const c = { events: [], joins: [], cursor: null, errors: [] };
  c.socket = new Socket(transport === LongPoll ? srv.url('/socket') : srv.wsUrl('/socket'), {
    transport,
    params: { token },
    reconnectAfterMs: () => 50,
    rejoinAfterMs: () => 50,
    heartbeatIntervalMs: 30000,
    timeout: 10000 * slow(),
  });
  c.channel = c.socket.channel(`user:${uid}`, () => (c.cursor ? { cursor: c.cursor } : {}));
  for (const ev of ['message:new', 'conversation:updated', 'conversation:removed']) {
    c.channel.on(ev, (p) => {
      if (typeof p.cursor !== 'string') c.errors.push(`event without cursor: ${JSON.stringify(p)}`);
      c.events.push({ type: ev, p });
      c.cursor = p.cursor;
    });
  }
  c.join = () => new Promise((resolve, reject) => {
    c.channel.join()
      .receive('ok', (r) => { c.joins.push(r); if (!c.cursor && r.cursor) c.cursor = r.cursor; resolve(r); })
      .receive('error', (r) => reject(new Error(`join refused: ${JSON.stringify(r)}`)))
      .receive('timeout', () => reject(new Error('join timeout')));
  });
  c.socket.onError(() => {});
  c.socket.connect();
  return c;
}

/** Message numbers of conversation s in the order received. */
const nums = (c, s) => c.events.filter((e) => e.type === 'message:new' && e.p.message.conv === s).map((e) => e.p.message.n);

function assertExactly(got, n, what) {
  const dup = got.filter((x, i) => got.indexOf(x) !== i);
  assert.deepEqual(dup, [], `${what}: duplicates`);
  assert.deepEqual(got, Array.from({ length: n }, (_, i) => i + 1), `${what}: in order, none missing`);
}

describe('user:<id> join with a cursor', () => {
  let srv;
  before(async () => { srv = await startServer({ env: { SB_MIGRATE: '1' } }); });
  after(async () => { if (srv) await srv.stop(); });

  test('500 messages while disconnected arrive once, in order, then live; writes during the rejoin', T, async () => {
    const u = await mkUser();
    const s1 = streamId();
    const s2 = streamId();
    await sql(joinTx(s1, u));
    await sql(joinTx(s2, u));
    const c = client(srv, u, srv.token(u));
    try {
      const r = await c.join();
      assert.equal(typeof r.cursor, 'string', 'a join without cursor answers the live cursor');
      assert.equal(r.user.id, u);
      // live
      let n1 = 0;
      let n2 = 0;
      const msg = (s, n) => ({ message: { conv: s, n } });
      await sql(appendTx(s1, 'message:new', [msg(s1, ++n1), msg(s1, ++n1)]));
      await sql(appendTx(s2, 'message:new', [msg(s2, ++n2)]));
      await waitFor(() => nums(c, s1).length === 2 && nums(c, s2).length === 1, 10000, 'live events');

      // offline: 500 messages in 50 transactions over two conversations
      c.socket.disconnect();
      await waitFor(() => !c.socket.isConnected(), 5000, 'disconnect');
      const before = c.events.length;
      const txs = [];
      for (let t = 0; t < 50; t++) {
        const s = t % 2 ? s2 : s1;
        const batch = [];
        for (let k = 0; k < 10; k++) batch.push(msg(s, s === s1 ? ++n1 : ++n2));
        txs.push(appendTx(s, 'message:new', batch));
      }
      await sql(txs.join('\n'));
      assert.equal(c.events.length, before, 'nothing arrives while disconnected');

      // reconnect while a writer keeps sending (one message per transaction)
      const w = new Psql();
      let writing = true;
      const writer = (async () => {
        while (writing) {
          await w.query(appendTx(s1, 'message:new', [msg(s1, ++n1)]));
          await sleep(2);
        }
      })();
      await sleep(30);
      c.socket.connect();
      await waitFor(() => c.joins.length === 2, 15000, 'rejoin');
      assert.equal(typeof c.joins[1].cursor, 'string');
      await sleep(300);
      writing = false;
      await writer;
      await w.close();
      const total1 = n1;
      await waitFor(() => nums(c, s1).length >= total1 && nums(c, s2).length >= n2, 20000,
        `all messages (${nums(c, s1).length}/${total1}, ${nums(c, s2).length}/${n2})`);
      await sleep(200);
      assertExactly(nums(c, s1), total1, 'conversation 1');
      assertExactly(nums(c, s2), n2, 'conversation 2');
      assert.ok(total1 + n2 >= 503, `${total1 + n2} messages`);
      assert.deepEqual(c.errors, []);

      // and live after the catch-up
      await sql(appendTx(s2, 'message:new', [msg(s2, ++n2)]));
      await waitFor(() => nums(c, s2).length === n2, 10000, 'live after catch-up');
      assertExactly(nums(c, s2), n2, 'conversation 2 live');
      // every cursor is distinct, and resuming from the last one gives nothing more
      const cursors = c.events.map((e) => e.p.cursor);
      assert.equal(new Set(cursors).size, cursors.length);
      const res = await fetch(srv.url(`/api/v1/sync?cursor=${c.cursor}`), { headers: { authorization: `Bearer ${srv.token(u)}` } });
      const body = await res.json();
      assert.equal(res.status, 200);
      assert.deepEqual(body.events, []);
    } finally {
      c.socket.disconnect();
    }
  });

  test('joins with a cursor while a stream is busy: no gap, no duplicate, repeatedly', T, async () => {
    const u = await mkUser();
    const s = streamId();
    await sql(joinTx(s, u));
    const token = srv.token(u);
    const start = (await (await fetch(srv.url('/api/v1/sync'), { headers: { authorization: `Bearer ${token}` } })).json()).cursor;
    const w = new Psql();
    let n = 0;
    let writing = true;
    const writer = (async () => {
      while (writing) {
        const k = ++n;
        await w.query(appendTx(s, 'message:new', [{ message: { conv: s, n: k } }]));
      }
    })();
    try {
      for (let round = 0; round < 6; round++) {
        await sleep(40 + round * 25);
        const c = client(srv, u, token);
        c.cursor = start; // every round catches up from the same old cursor
        try {
          await c.join();
          await sleep(100);
          const upTo = n;
          await waitFor(() => nums(c, s).length >= upTo - 1, 15000, `round ${round}: ${nums(c, s).length}/${upTo}`);
          const got = nums(c, s);
          const dup = got.filter((x, i) => got.indexOf(x) !== i);
          assert.deepEqual(dup, [], `round ${round}: duplicates`);
          assert.deepEqual(got, Array.from({ length: got.length }, (_, i) => i + 1), `round ${round}: gap or disorder`);
          assert.deepEqual(c.errors, []);
        } finally {
          c.socket.disconnect();
        }
      }
    } finally {
      writing = false;
      await writer;
      await w.close();
    }
  });

  test('a catch-up bigger than the outbound cap is paced to a client that reads slowly (no 1013)', T, async () => {
    const small = await startServer({ env: { SB_MIGRATE: '1', SB_OUTBOUND_MAX: '262144' } });
    try {
      const u = await mkUser();
      const s = streamId();
      await sql(joinTx(s, u));
      const token = small.token(u);
      const start = (await (await fetch(small.url('/api/v1/sync'), { headers: { authorization: `Bearer ${token}` } })).json()).cursor;
      // 4000 messages of 2 kB in 40 transactions (the padding made by Postgres)
      const txs = [];
      for (let t = 0; t < 40; t++) {
        txs.push(`BEGIN; SELECT sb_stream_lock(${s});
          SELECT count(sb_event_append(${s}, 'message:new', jsonb_build_object('message',
            jsonb_build_object('conv', '${s}', 'n', g, 'pad', repeat('x', 2000)))))
          FROM generate_series(${t * 100 + 1}, ${t * 100 + 100}) g; COMMIT;`);
      }
      await sql(txs.join('\n'), { timeoutMs: 60000 });
      const c = client(small, u, token);
      let opens = 0;
      c.socket.onOpen(() => { opens++; });
      c.cursor = start;
      const joined = c.join();
      // stop reading for a while: the server's queue to this client fills
      await waitFor(() => c.socket.conn && c.socket.conn._socket, 5000, 'transport');
      await joined;
      c.socket.conn._socket.pause();
      await sleep(1500);
      c.socket.conn._socket.resume();
      try {
        await waitFor(() => nums(c, s).length >= 4000, 60000, `catch-up (${nums(c, s).length}/4000)`);
        assertExactly(nums(c, s), 4000, 'paced catch-up');
        assert.equal(opens, 1, 'the socket was never closed and reopened');
        assert.equal(small.logsMatching(/slow_consumer/).length, 0, 'no slow-consumer close');
      } finally {
        c.socket.disconnect();
      }
    } finally {
      await small.stop();
    }
  });

  test('catch-up and live over the long-poll transport', T, async () => {
    const u = await mkUser();
    const s = streamId();
    await sql(joinTx(s, u));
    const token = srv.token(u);
    const start = (await (await fetch(srv.url('/api/v1/sync'), { headers: { authorization: `Bearer ${token}` } })).json()).cursor;
    const txs = [];
    for (let t = 0; t < 6; t++) txs.push(appendTx(s, 'message:new', Array.from({ length: 50 }, (_, k) => ({ message: { conv: s, n: t * 50 + k + 1 } }))));
    await sql(txs.join('\n'));
    const c = client(srv, u, token, LongPoll);
    c.cursor = start;
    try {
      const r = await c.join();
      assert.equal(r.cursor, start);
      assert.ok(c.socket.conn instanceof LongPoll);
      await waitFor(() => nums(c, s).length >= 300, 20000, `catch-up over long-poll (${nums(c, s).length}/300)`);
      await sql(appendTx(s, 'message:new', [{ message: { conv: s, n: 301 } }]));
      await waitFor(() => nums(c, s).length >= 301, 15000, 'live over long-poll');
      await sleep(200);
      assertExactly(nums(c, s), 301, 'long-poll');
      assert.deepEqual(c.errors, []);
    } finally {
      c.socket.disconnect();
    }
  });
});
