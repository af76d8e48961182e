'use strict';
// GET /api/v1/sync from the node's in-memory window of recent events
// (server/src/sync_window.c, docs/sync.md "Sync from memory"): recent cursors
// are answered from memory, older ones by Postgres, and the boundary between
// the two is exact; a last page is as fresh as a Postgres read even when the
// tailer polls rarely. To see which path answered, the tests delete the
// events from Postgres behind the server's back (only the window still has
// them) and compare with a server whose window is off (same secret, so the
// same cursors are valid on both).

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { startServer, slow } = require('./lib/server');
const { sql, mkUser, streamId, appendTx, joinTx } = require('./lib/sync_db');

const T = { timeout: 120000 };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function get(srv, token, query) {
  const res = await fetch(srv.url(`/api/v1/sync${query}`), {
    headers: { authorization: `Bearer ${token}` },
  });
  const text = await res.text();
  let body;
  try { body = JSON.parse(text); } catch { body = text; }
  return { status: res.status, body };
}

/** Follows cursors from `cursor` until has_more is false. Bounded. */
async function follow(srv, token, cursor, limit) {
  const events = [];
  for (let i = 0; i < 2000; i++) {
    const r = await get(srv, token, `?cursor=${encodeURIComponent(cursor)}&limit=${limit}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.ok(r.body.events.length <= limit);
    events.push(...r.body.events);
    cursor = r.body.cursor;
    if (!r.body.has_more) return { events, cursor };
  }
  throw new Error('has_more never ended');
}

/** Follows from `cursor` until at least n events arrived (bounded wait). */
async function followUntil(srv, token, cursor, n, limit, ms = 15000) {
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

const keys = (events) => events.map((e) => e.message && e.message.n);
const strip = (events) => events.map(({ cursor: _c, ...e }) => JSON.stringify(e));

describe('sync from the in-memory window', () => {
  const secret = crypto.randomBytes(24).toString('hex');
  let win; // window on, tailer polling only every 5 s (kicks and waiting requests wake it)
  let small; // a small window: the oldest events are evicted
  let pg; // window off: every read goes to Postgres
  before(async () => {
    win = await startServer({ env: { SB_MIGRATE: '1', SB_SECRET: secret, SB_TAILER_POLL_MS: '5000' } });
    small = await startServer({ env: { SB_SECRET: secret, SB_SYNC_WINDOW_BYTES: '131072' } });
    pg = await startServer({ env: { SB_SECRET: secret, SB_SYNC_WINDOW_BYTES: '0' } });
  });
  after(async () => {
    for (const s of [win, small, pg]) if (s) await s.stop();
  });

  test('a last page includes what committed before the request, though the tailer polls every 5 s', T, async () => {
    const u = await mkUser();
    const tok = win.token(u);
    const s = streamId();
    let cursor = (await get(win, tok, '')).body.cursor;
    await sql(joinTx(s, u));
    for (let n = 1; n <= 5; n++) {
      // written behind the server's back (no kick), read at once
      await sql(appendTx(s, 'message:new', [{ message: { n } }]));
      const t0 = Date.now();
      const { events, cursor: next } = await follow(win, tok, cursor, 50);
      assert.ok(Date.now() - t0 < 4000 * slow(), 'answered without waiting for the poll');
      assert.deepEqual(keys(events.filter((e) => e.type === 'message:new')), [n]);
      cursor = next;
    }
  });

  test('recent cursors are answered from memory, identical to Postgres', T, async () => {
    const u = await mkUser();
    const tok = win.token(u);
    const s = streamId();
    const start = (await get(win, tok, '')).body.cursor;
    await sql(joinTx(s, u));
    for (let t = 0; t < 6; t++) {
      await sql(appendTx(s, 'message:new', [1, 2, 3, 4, 5].map((k) => ({ message: { n: t * 5 + k, pad: 'x'.repeat(k * 40) } }))));
    }
    const fromMem = await followUntil(win, tok, start, 31, 4);
    const fromPg = await follow(pg, tok, start, 7);
    assert.deepEqual(strip(fromMem.events), strip(fromPg.events), 'same events, same payloads, same order');
    assert.deepEqual(keys(fromMem.events.slice(1)), Array.from({ length: 30 }, (_, i) => i + 1));
    // every cursor resumes right after its event, on either server
    for (const i of [0, 7, 29]) {
      const a = await follow(win, tok, fromMem.events[i].cursor, 100);
      const b = await follow(pg, tok, fromMem.events[i].cursor, 100);
      assert.deepEqual(strip(a.events), strip(fromMem.events.slice(i + 1)));
      assert.deepEqual(strip(b.events), strip(a.events));
    }
    // Postgres loses them (behind the server's back): the window still answers
    await sql(`DELETE FROM events WHERE stream = ${s}`);
    assert.deepEqual((await follow(pg, tok, start, 50)).events, []);
    const again = await follow(win, tok, start, 50);
    assert.deepEqual(strip(again.events), strip(fromMem.events));
  });

  test('the boundary: below the window Postgres answers, from it on memory; nothing missed or doubled', T, async () => {
    const u = await mkUser();
    const tok = small.token(u);
    const s = streamId();
    const start = (await get(small, tok, '')).body.cursor;
    await sql(joinTx(s, u));
    // 300 events of ~600 bytes: more than 128 KiB
    for (let t = 0; t < 30; t++) {
      await sql(appendTx(s, 'message:new', Array.from({ length: 10 }, (_, k) => ({ message: { n: t * 10 + k + 1, pad: 'y'.repeat(500) } }))));
    }
    // a chain of pages from the start crosses from Postgres into the window
    const all = await followUntil(small, tok, start, 301, 7);
    assert.equal(all.events.length, 301);
    assert.deepEqual(keys(all.events.slice(1)), Array.from({ length: 300 }, (_, i) => i + 1));
    assert.deepEqual(strip(all.events), strip((await follow(pg, tok, start, 50)).events));
    await sleep(100);
    // now only the window has them: each event's cursor is answered either by
    // Postgres (nothing) or by the window, and then with every later event
    await sql(`DELETE FROM events WHERE stream = ${s}`);
    // (newest first: eviction by other traffic meanwhile only moves the
    // boundary up, towards the cursors already checked)
    let boundary = all.events.length; // the oldest event whose cursor the window answered
    for (let i = all.events.length - 1; i >= 0; i--) {
      const r = await follow(small, tok, all.events[i].cursor, 1000);
      if (r.events.length === 0 && i < all.events.length - 1) break; // Postgres: below the window
      assert.equal(boundary, i + 1);
      boundary = i;
      assert.deepEqual(strip(r.events), strip(all.events.slice(i + 1)), `from event ${i}: the window's suffix, complete`);
    }
    // below the boundary Postgres answers every cursor (nothing: deleted)
    for (const i of [0, Math.floor(boundary / 2), boundary - 1].filter((k) => k >= 0)) {
      assert.deepEqual((await follow(small, tok, all.events[i].cursor, 1000)).events, [], `event ${i} below the window`);
    }
    assert.ok(boundary > 0, `the oldest events were evicted (boundary ${boundary})`);
    // (other tests' events share the window: only the newest few are sure to be there)
    assert.ok(boundary < 295, `the window holds the recent events (boundary ${boundary})`);
    // and the start cursor (below the window) goes to Postgres
    assert.deepEqual((await follow(small, tok, start, 50)).events, []);
  });
});
