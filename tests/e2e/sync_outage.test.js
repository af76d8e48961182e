'use strict';
// The event tailer and retention against a private database (created for
// this file on the shared test Postgres, dropped afterwards, so nothing here
// touches the other suites' data):
// - every Postgres connection of the server is killed while events are
//   being written: the server stays up, the tailer reconnects by itself and
//   a live client receives every event once, in order (R4 for live delivery);
// - pruning: events older than the retention are deleted in order, the
//   watermark moves, and a cursor from before it answers 410 even though it
//   was issued recently; a fresh bootstrap cursor works.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { execFile } = require('node:child_process');
const WebSocket = require('ws');
const { Socket } = require('phoenix');
const { startServer, slow } = require('./lib/server');
const { waitFor: phxWaitFor } = require('./lib/phx');
const { sql: sharedSql, DB_URL } = require('./lib/sync_db');

const T = { timeout: 120000 };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const DB = `sbsync_${crypto.randomBytes(5).toString('hex')}`;
const url = (() => { const u = new URL(DB_URL); u.pathname = `/${DB}`; return u.toString(); })();

function sql(text) {
  return new Promise((resolve, reject) => {
    execFile('psql', [url, '-qtAX', '-v', 'ON_ERROR_STOP=1', '-c', text], { encoding: 'utf8', timeout: 20000 },
      (err, out, stderr) => (err ? reject(new Error(stderr || err.message)) : resolve(out.split('\n').filter(Boolean))));
  });
}

const waitFor = (pred, ms, what) => phxWaitFor(pred, ms, what, 50);

async function mkUser() {
  const name = `so${crypto.randomBytes(6).toString('hex')}`;
  return (await sql(`INSERT INTO users (username, display_name, password_hash) VALUES ('${name}', 'x', 'x') RETURNING id`))[0];
}

const append = (stream, n, tag) => {
  const rows = Array.from({ length: n }, (_, i) => `SELECT sb_event_append(${stream}, 'conversation:removed', '{"conversation_id":"${tag}${i + 1}"}'::jsonb);`);
  return `BEGIN; SELECT sb_stream_lock(${stream}); ${rows.join(' ')} COMMIT;`;
};

async function get(srv, token, q) {
  const res = await fetch(srv.url(`/api/v1/sync${q}`), { headers: { authorization: `Bearer ${token}` } });
  return { status: res.status, body: await res.json() };
}

describe('tailer and retention on a private database', () => {
  let srv;
  before(async () => {
    await sharedSql(`CREATE DATABASE ${DB}`);
    srv = await startServer({
      env: {
        SB_DATABASE_URL: url, SB_MIGRATE: '1', SB_SYNC_RETENTION: '6', SB_SYNC_PRUNE_INTERVAL: '1',
        SB_TAILER_POLL_MS: '100', SB_OUTBOUND_MAX: '16777216',
      },
    });
  });
  after(async () => {
    if (srv) await srv.stop();
    await sharedSql(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
  });

  test('connections killed while events are written: the server stays up, live delivery misses nothing', T, async () => {
    const u = await mkUser();
    const token = srv.token(u);
    const got = [];
    const socket = new Socket(srv.wsUrl('/socket'), { transport: WebSocket, params: { token }, reconnectAfterMs: () => 100 });
    socket.connect();
    const ch = socket.channel(`user:${u}`, {});
    ch.on('conversation:removed', (p) => got.push(p.conversation_id));
    await new Promise((resolve, reject) => ch.join().receive('ok', resolve).receive('error', reject));
    try {
      await sql(append(`-${u}`, 5, 'a'));
      await waitFor(() => got.length === 5, 10000, 'first events');
      for (let round = 0; round < 3; round++) {
        const killed = await sql(`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '${DB}' AND pid <> pg_backend_pid()`);
        assert.ok(Number(killed[0]) >= 1, 'server connections were killed');
        await sql(append(`-${u}`, 5, `k${round}-`));
        await sleep(100);
      }
      const expected = ['a1', 'a2', 'a3', 'a4', 'a5'];
      for (let round = 0; round < 3; round++) for (let i = 1; i <= 5; i++) expected.push(`k${round}-${i}`);
      await waitFor(() => got.length >= expected.length, 20000, `events after the outages (${got.length}/${expected.length})`);
      await sleep(300);
      assert.deepEqual(got, expected);
      assert.ok(srv.alive());
      assert.ok(srv.logsMatching(/tailer_connection_lost/).length >= 1, 'the tailer saw its connection go');
      // REST works again once the pool is back
      const r = await waitFor(async () => { const x = await get(srv, token, ''); return x.status === 200 && x; }, 10000, 'sync after the outage');
      assert.equal(typeof r.body.cursor, 'string');
    } finally {
      socket.disconnect();
    }
  });

  test('the tailer reads big events in batches cut at about 4 MiB, in order', T, async () => {
    const u = await mkUser();
    const token = srv.token(u);
    const got = [];
    const socket = new Socket(srv.wsUrl('/socket'), { transport: WebSocket, params: { token }, reconnectAfterMs: () => 100 });
    socket.connect();
    const ch = socket.channel(`user:${u}`, {});
    ch.on('conversation:removed', (p) => got.push({ id: p.conversation_id, len: p.pad ? p.pad.length : 0 }));
    await new Promise((resolve, reject) => ch.join().receive('ok', resolve).receive('error', reject));
    try {
      // 9 events of about 960 kB (incompressible) and 3 small ones, in one transaction
      await sql(`BEGIN; SELECT sb_stream_lock(-${u});
        SELECT count(sb_event_append(-${u}, 'conversation:removed', jsonb_build_object('conversation_id', g::text,
          'pad', (SELECT string_agg(md5(g::text || i::text), '') FROM generate_series(1, 30000) i))))
        FROM generate_series(1, 9) g;
        SELECT count(sb_event_append(-${u}, 'conversation:removed', jsonb_build_object('conversation_id', g::text)))
        FROM generate_series(10, 12) g; COMMIT;`);
      await waitFor(() => got.length >= 12, 20000, `big events (${got.length}/12)`);
      assert.deepEqual(got.map((e) => e.id), ['1', '2', '3', '4', '5', '6', '7', '8', '9', '10', '11', '12']);
      assert.ok(got.slice(0, 9).every((e) => e.len === 960000));
    } finally {
      socket.disconnect();
    }
  });

  test('pruning deletes old events in order and expires cursors before the watermark', T, async () => {
    const u = await mkUser();
    const token = srv.token(u);
    const c0 = (await get(srv, token, '')).body.cursor;
    await sql(append(`-${u}`, 3, 'old'));
    const t0 = Date.now();
    // a cursor at the first old event, issued 3 s later (young by age)
    await sleep(3000);
    const page = await get(srv, token, `?cursor=${c0}&limit=1`);
    assert.equal(page.status, 200, JSON.stringify(page.body));
    assert.equal(page.body.events[0].conversation_id, 'old1');
    const c1 = page.body.cursor;
    assert.ok(Date.now() - t0 < 5500, 'the cursor was issued before the events could be pruned');
    // the prune (every second, retention 6 s) deletes them
    await waitFor(async () => Number((await sql(`SELECT count(*) FROM events WHERE stream = -${u}`))[0]) === 0, 15000, 'prune');
    const wm = await sql('SELECT id FROM sync_prune');
    assert.ok(Number(wm[0]) > 0, 'the watermark moved');
    const r = await get(srv, token, `?cursor=${c1}`);
    assert.equal(r.status, 410, JSON.stringify(r.body));
    assert.equal(r.body.error.code, 'cursor_expired');
    // bootstrap again: a fresh cursor works, and new events arrive after it
    const fresh = (await get(srv, token, '')).body.cursor;
    await sql(append(`-${u}`, 2, 'new'));
    const after = await waitFor(async () => {
      const x = await get(srv, token, `?cursor=${fresh}`);
      return x.status === 200 && x.body.events.length === 2 && x;
    }, 10000, 'events after the fresh cursor');
    assert.deepEqual(after.body.events.map((e) => e.conversation_id), ['new1', 'new2']);
    assert.ok(srv.logsMatching(/events_pruned/).length >= 1);
  });
});
