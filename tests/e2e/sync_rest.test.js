'use strict';
// GET /api/v1/sync against the real server and Postgres: paging with small
// limits (every event once, in order), the horizon cursor of an empty page,
// forged / altered / foreign / malformed cursors (400), bad limits (422),
// no token (401), expired cursors (410 cursor_expired, also on join), and
// membership over time (events only from joining until the removal, the
// removal itself included). Events are written with SQL the way the chat
// core writes them (sb_stream_lock + sb_event_append, docs/sync.md).

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const WebSocket = require('ws');
const { Socket } = require('phoenix');
const { startServer, slow } = require('./lib/server');
const { pushResult: phxPushResult } = require('./lib/phx');
const { sql, mkUser, streamId, appendTx, joinTx, removeTx } = require('./lib/sync_db');

const T = { timeout: 60000 };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function get(srv, token, query) {
  const res = await fetch(srv.url(`/api/v1/sync${query}`), {
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });
  const text = await res.text();
  let body;
  try { body = JSON.parse(text); } catch { body = text; }
  return { status: res.status, body };
}

/** Follows cursors from `cursor` until has_more is false; returns every
 * event and the last cursor. Bounded. */
async function follow(srv, token, cursor, limit) {
  const events = [];
  for (let i = 0; i < 1000; i++) {
    const r = await get(srv, token, `?cursor=${encodeURIComponent(cursor)}&limit=${limit}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.ok(r.body.events.length <= limit);
    events.push(...r.body.events);
    cursor = r.body.cursor;
    if (!r.body.has_more) return { events, cursor };
    assert.ok(r.body.events.length >= 1, 'a page with has_more is not empty');
  }
  throw new Error('has_more never ended');
}

/** Waits until following from cursor yields at least n events. */
async function followUntil(srv, token, cursor, n, limit = 50, ms = 10000) {
  const deadline = Date.now() + ms * slow();
  const all = [];
  for (;;) {
    const r = await follow(srv, token, cursor, limit);
    all.push(...r.events);
    cursor = r.cursor;
    if (all.length >= n) return { events: all, cursor };
    if (Date.now() > deadline) throw new Error(`only ${all.length} of ${n} events arrived`);
    await sleep(50);
  }
}

const pushResult = (push, ms = 8000) => phxPushResult(push, ms);

describe('GET /api/v1/sync', () => {
  let srv;
  before(async () => { srv = await startServer({ env: { SB_MIGRATE: '1' } }); });
  after(async () => { if (srv) await srv.stop(); });

  test('paging with small limits returns every event once, in order', T, async () => {
    const u = await mkUser();
    const tok = srv.token(u);
    const s = streamId();
    const start = (await get(srv, tok, '')).body.cursor;
    assert.equal(typeof start, 'string');
    await sql(joinTx(s, u));
    // 25 messages in 5 transactions, plus 3 on the private stream
    for (let t = 0; t < 5; t++) {
      await sql(appendTx(s, 'message:new', [1, 2, 3, 4, 5].map((k) => ({ message: { n: t * 5 + k } }))));
    }
    await sql(appendTx(`-${u}`, 'conversation:removed', [{ conversation_id: 'a' }, { conversation_id: 'b' }, {}]));
    for (const limit of [1, 3, 7]) {
      const { events, cursor } = await followUntil(srv, tok, start, 29, limit);
      assert.equal(events.length, 29, `limit ${limit}`);
      const msgs = events.filter((e) => e.type === 'message:new').map((e) => e.message.n);
      assert.deepEqual(msgs, Array.from({ length: 25 }, (_, i) => i + 1));
      assert.equal(events[0].type, 'conversation:updated');
      assert.deepEqual(events.slice(-3).map((e) => e.type), ['conversation:removed', 'conversation:removed', 'conversation:removed']);
      assert.deepEqual(events.slice(-3).map((e) => e.conversation_id), ['a', 'b', undefined]);
      for (const e of events) assert.equal(typeof e.cursor, 'string');
      assert.equal(new Set(events.map((e) => e.cursor)).size, 29, 'every event has its own cursor');
      // the cursor of an event resumes right after it
      const mid = events[10];
      const rest = await follow(srv, tok, mid.cursor, 100);
      // (cursors carry their issue time: compare the events without them)
      const strip = (list) => list.map(({ cursor: _c, ...e }) => JSON.stringify(e));
      assert.deepEqual(strip(rest.events), strip(events.slice(11)));
      // the end cursor has nothing after it
      const end = await get(srv, tok, `?cursor=${cursor}`);
      assert.equal(end.status, 200);
      assert.deepEqual(end.body.events, []);
      assert.equal(end.body.has_more, false);
    }
  });

  test('other streams and other users are not visible', T, async () => {
    const [u, v] = [await mkUser(), await mkUser()];
    const tu = srv.token(u);
    const start = (await get(srv, tu, '')).body.cursor;
    const s = streamId();
    await sql(joinTx(s, v)); // v only
    await sql(appendTx(s, 'message:new', [{ message: { n: 1 } }]));
    await sql(appendTx(`-${v}`, 'conversation:removed', [{ conversation_id: 'x' }]));
    await sql(appendTx(`-${u}`, 'conversation:removed', [{ conversation_id: 'mine' }]));
    const { events } = await followUntil(srv, tu, start, 1);
    await sleep(300);
    const again = await follow(srv, tu, start, 50);
    assert.deepEqual(again.events.map((e) => e.conversation_id), ['mine']);
    assert.equal(events.length, 1);
  });

  test('a page stops at about 4 MiB of payload and says has_more', T, async () => {
    const u = await mkUser();
    const tok = srv.token(u);
    const start = (await get(srv, tok, '')).body.cursor;
    // 7 events of about 960 kB each (incompressible), then 3 small ones
    await sql(`BEGIN; SELECT sb_stream_lock(-${u});
      SELECT count(sb_event_append(-${u}, 'conversation:removed', jsonb_build_object('conversation_id', g::text,
        'pad', (SELECT string_agg(md5(g::text || i::text), '') FROM generate_series(1, 30000) i))))
      FROM generate_series(1, 7) g;
      SELECT count(sb_event_append(-${u}, 'conversation:removed', jsonb_build_object('conversation_id', g::text)))
      FROM generate_series(8, 10) g; COMMIT;`);
    await sleep(200);
    const first = await get(srv, tok, `?cursor=${start}&limit=100`);
    assert.equal(first.status, 200);
    assert.ok(first.body.events.length >= 1 && first.body.events.length <= 5, `${first.body.events.length} events`);
    assert.equal(first.body.has_more, true);
    const { events } = await follow(srv, tok, start, 100);
    assert.deepEqual(events.map((e) => e.conversation_id), ['1', '2', '3', '4', '5', '6', '7', '8', '9', '10']);
    assert.equal(events[0].pad.length, 960000);
  });

  test('forged, altered, foreign and malformed cursors are 400; bad limits 422; no token 401', T, async () => {
    const [u, v] = [await mkUser(), await mkUser()];
    const tu = srv.token(u);
    const tv = srv.token(v);
    const c = (await get(srv, tu, '')).body.cursor;
    assert.equal((await get(srv, tu, `?cursor=${c}`)).status, 200);
    const foreign = await get(srv, tv, `?cursor=${c}`);
    assert.equal(foreign.status, 400);
    assert.equal(foreign.body.error.code, 'bad_request');
    const flip = (s, i) => s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1);
    for (const i of [0, 5, 12, 20, 30, 40, c.length - 2]) {
      const r = await get(srv, tu, `?cursor=${flip(c, i)}`);
      assert.equal(r.status, 400, `altered at ${i}`);
      assert.equal(r.body.error.code, 'bad_request');
    }
    // a position made up by the client, with a made-up signature
    const raw = Buffer.alloc(37);
    raw[0] = 1;
    raw.writeBigUInt64BE(1n, 1);
    const forged = raw.toString('base64url');
    for (const bad of [forged, 'abc', c + 'A', c.slice(1), '%00', 'x'.repeat(5000), encodeURIComponent('{"tx":1}')]) {
      const r = await get(srv, tu, `?cursor=${bad}`);
      assert.equal(r.status, 400, `cursor ${bad.slice(0, 30)}`);
      assert.equal(r.body.error.code, 'bad_request');
    }
    for (const lim of ['0', '-1', '1001', 'abc', '1.5', '']) {
      const r = await get(srv, tu, `?cursor=${c}&limit=${lim}`);
      assert.equal(r.status, 422, `limit ${lim}`);
      assert.equal(r.body.error.code, 'validation_failed');
      assert.ok(r.body.error.details.limit);
    }
    const none = await get(srv, null, `?cursor=${c}`);
    assert.equal(none.status, 401);
  });

  test('a removed user sees the removal and nothing after it; nothing before joining', T, async () => {
    const [u, v] = [await mkUser(), await mkUser()];
    const tu = srv.token(u);
    const start = (await get(srv, tu, '')).body.cursor;
    const s = streamId();
    await sql(joinTx(s, v));
    await sql(appendTx(s, 'message:new', [{ message: { n: 'before-join' } }]));
    await sql(joinTx(s, u));
    await sql(appendTx(s, 'message:new', [{ message: { n: 'member-1' } }, { message: { n: 'member-2' } }]));
    await sql(removeTx(s, u));
    await sql(appendTx(s, 'message:new', [{ message: { n: 'after-removal' } }]));
    // rejoin later: visible again from the new period on
    await sql(appendTx(s, 'message:new', [{ message: { n: 'still-out' } }]));
    const { events } = await followUntil(srv, tu, start, 5);
    await sleep(300);
    const all = (await follow(srv, tu, start, 100)).events;
    const seen = all.map((e) => (e.type === 'message:new' ? e.message.n : e.type === 'conversation:updated' ? `upd:${Object.keys(e.conversation).filter((k) => k !== 'id').join()}` : e.type));
    assert.deepEqual(seen, ['upd:joined', 'member-1', 'member-2', 'upd:removed', 'conversation:removed']);
    assert.equal(events.length, 5);
    await sql(joinTx(s, u));
    await sql(appendTx(s, 'message:new', [{ message: { n: 'back' } }]));
    const again = await followUntil(srv, tu, start, 7);
    assert.deepEqual(again.events.slice(5).map((e) => (e.type === 'message:new' ? e.message.n : e.type)), ['conversation:updated', 'back']);
  });
});

describe('cursor retention', () => {
  let srv;
  before(async () => {
    srv = await startServer({ env: { SB_MIGRATE: '1', SB_SYNC_RETENTION: '2', SB_SYNC_PRUNE_INTERVAL: '0' } });
  });
  after(async () => { if (srv) await srv.stop(); });

  test('a cursor older than the retention answers 410 cursor_expired, on REST and on join', T, async () => {
    const u = await mkUser();
    const tok = srv.token(u);
    const old = (await get(srv, tok, '')).body.cursor;
    assert.equal((await get(srv, tok, `?cursor=${old}`)).status, 200);
    await sleep(3200);
    const r = await get(srv, tok, `?cursor=${old}`);
    assert.equal(r.status, 410);
    assert.equal(r.body.error.code, 'cursor_expired');
    // a fresh cursor works
    const fresh = (await get(srv, tok, '')).body.cursor;
    assert.equal((await get(srv, tok, `?cursor=${fresh}`)).status, 200);

    const socket = new Socket(srv.wsUrl('/socket'), { transport: WebSocket, params: { token: tok }, reconnectAfterMs: () => 100 });
    socket.connect();
    try {
      const ch = socket.channel(`user:${u}`, { cursor: old });
      const [st, resp] = await pushResult(ch.join());
      assert.equal(st, 'error');
      assert.equal(resp.reason, 'cursor_expired');
      ch.leave();
      const ch2 = socket.channel(`user:${u}`, { cursor: 'AAAA' + fresh.slice(4) });
      const [st2, resp2] = await pushResult(ch2.join());
      assert.equal(st2, 'error');
      assert.equal(resp2.reason, 'bad_request');
      ch2.leave();
      const ch3 = socket.channel(`user:${u}`, { cursor: fresh });
      const [st3, resp3] = await pushResult(ch3.join());
      assert.equal(st3, 'ok');
      assert.equal(resp3.cursor, fresh);
    } finally {
      socket.disconnect();
    }
  });
});
