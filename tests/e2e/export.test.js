'use strict';
// The conversation export (api.md "Messages", GET /api/v1/conversations/:id/export;
// docs/export.md): one JSON document (conversation, members, messages oldest
// first with reactions and media references) as an attachment, streamed:
// 100,000 messages with the server's RSS flat (sampled from /proc) and the
// document valid and complete; a client that reads slowly (the server waits,
// holds no database connection busy, keeps serving others, memory flat);
// a non-member 404; what the caller may see (deleted for me left out,
// tombstones kept, periods). Needs the test database.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const http = require('node:http');
const { execFileSync } = require('node:child_process');
const { startServer, slow } = require('./lib/server');
const {
  DB_URL, BASE_ENV, waitForDatabase, api, assertError, signupMany, sleep,
} = require('./lib/api');

const T = { timeout: 300000 };
const cid = () => crypto.randomUUID();
const N = 100000;

function psql(text, timeoutMs = 180000) {
  return execFileSync('psql', [DB_URL, '-qtAX', '-v', 'ON_ERROR_STOP=1', '-c', text], {
    encoding: 'utf8', timeout: timeoutMs * slow(),
  }).trim();
}

/** Inserts n messages into conv (members a, b) in one statement, as the
 * chat core would have numbered them (seq, event_seq inside the members'
 * period), under the stream lock. */
function seedMessages(conv, a, b, n) {
  psql(`BEGIN;
    SELECT sb_stream_lock(${conv});
    INSERT INTO messages (conversation_id, seq, event_seq, sender_id, client_id, kind, body)
    SELECT ${conv}, c.last_seq + g, s.last_seq + g, CASE WHEN g % 2 = 0 THEN ${a} ELSE ${b} END,
           'seed-${conv}-' || g, 'text',
           'message ' || g || ' ' || repeat('lorem ipsum dolor sit amet ', 12)
    FROM generate_series(1, ${n}) g, conversations c, streams s
    WHERE c.id = ${conv} AND s.stream = ${conv};
    UPDATE conversations SET last_seq = last_seq + ${n} WHERE id = ${conv};
    UPDATE streams SET last_seq = last_seq + ${n} WHERE stream = ${conv};
    COMMIT;
    ANALYZE messages;`); // as autovacuum would after a bulk load
}

/** GET the export with node:http; onChunk may delay (back-pressure). */
function download(srv, conv, token, { onChunk, onSample } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.get(srv.url(`/api/v1/conversations/${conv}/export`), { headers: { authorization: `Bearer ${token}` } }, (res) => {
      const chunks = [];
      let bytes = 0;
      const timer = onSample ? setInterval(onSample, 25) : null;
      (async () => {
        for await (const c of res) {
          chunks.push(c);
          bytes += c.length;
          if (onChunk) await onChunk(bytes);
        }
      })().then(() => {
        if (timer) clearInterval(timer);
        resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8'), bytes });
      }, (e) => { if (timer) clearInterval(timer); reject(e); });
    });
    req.on('error', reject);
  });
}

describe('conversation export', () => {
  let srv;
  let a; let b; let c;
  let big; // a conversation of N seeded messages

  before(async () => {
    assert.ok(DB_URL, 'no test database URL');
    await waitForDatabase();
    srv = await startServer({
      name: 'export',
      env: {
        ...BASE_ENV,
        SB_RATELIMIT_SEND: '100000/1',
        // ASan's quarantine would hold freed pages: keep it small so RSS is about live memory
        ASAN_OPTIONS: `${process.env.ASAN_OPTIONS || ''}:quarantine_size_mb=4:thread_local_quarantine_size_kb=64`,
      },
    });
    [a, b, c] = await signupMany(srv, 3);
    const r = await api(srv, 'POST', '/conversations', { token: a.token, body: { kind: 'group', title: 'Big', member_ids: [b.id] } });
    assert.equal(r.status, 201, r.text);
    big = r.json.conversation.id;
    seedMessages(big, a.id, b.id, N);
  });
  after(async () => { if (srv) await srv.stop(); });

  test('100,000 messages: one valid, complete document, oldest first, RSS flat', T, async () => {
    // warm-up: allocator pools and the pool's connections exist before the baseline
    const warm = await download(srv, big, a.token, { onChunk: async (n) => { if (n > 4e6) await sleep(0); } });
    assert.equal(warm.status, 200);
    await sleep(200);
    const base = srv.memory().rssKb;
    let peak = base;
    const t0 = Date.now();
    const r = await download(srv, big, b.token, { onSample: () => { peak = Math.max(peak, srv.memory().rssKb); } });
    const secs = (Date.now() - t0) / 1000;
    peak = Math.max(peak, srv.memory().rssKb);
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type'], /^application\/json/);
    assert.match(r.headers['content-disposition'], new RegExp(`^attachment; filename="conversation-${big}\\.json"$`));
    assert.equal(r.headers['transfer-encoding'], 'chunked');
    const doc = JSON.parse(r.body);
    assert.equal(doc.conversation.id, big);
    assert.equal(doc.conversation.title, 'Big');
    assert.deepEqual(doc.members.map((m) => m.user_id).sort(), [a.id, b.id].sort());
    assert.equal(doc.members.find((m) => m.user_id === a.id).role, 'owner');
    assert.equal(doc.members.find((m) => m.user_id === a.id).username, a.username);
    assert.equal(doc.exported_by, b.id);
    assert.equal(doc.messages.length, N);
    for (let i = 0; i < N; i++) {
      const m = doc.messages[i];
      if (m.seq !== i + 1) assert.fail(`message ${i} has seq ${m.seq}`);
    }
    assert.equal(doc.messages[41].body.startsWith('message 42 lorem'), true);
    assert.equal(doc.messages[41].sender_id, a.id);
    assert.deepEqual(doc.messages[41].reactions, {});
    const growthMb = (peak - base) / 1024;
    const docMb = r.bytes / 1048576;
    console.log(`export: ${docMb.toFixed(1)} MB in ${secs.toFixed(2)} s; RSS ${(base / 1024).toFixed(1)} MB -> peak ${(peak / 1024).toFixed(1)} MB`);
    assert.ok(docMb > 40, `the document is large (${docMb.toFixed(1)} MB)`);
    assert.ok(growthMb < 16, `RSS grew ${growthMb.toFixed(1)} MB while streaming ${docMb.toFixed(1)} MB`);
  });

  test('a slow reader: the server waits for it, holds no database connection busy, serves others, memory flat', T, async () => {
    const base = srv.memory().rssKb;
    let peak = base;
    let stalled = false;
    let checks = null;
    const r = await download(srv, big, a.token, {
      onSample: () => { peak = Math.max(peak, srv.memory().rssKb); },
      onChunk: async (bytes) => {
        if (!stalled && bytes > 1e6) {
          stalled = true;
          await sleep(1500 * slow()); // the socket buffers fill, the server must stop
          const t0 = Date.now();
          const other = await api(srv, 'GET', `/conversations/${big}/messages?limit=5`, { token: b.token });
          // the server stops once the socket is full: no page query running, no transaction open
          const busyNow = () => psql("SELECT COALESCE(string_agg(state || ': ' || left(query, 60), ' | '), '') FROM pg_stat_activity WHERE datname = current_database() AND ((query LIKE '%sb_export_page%' AND state <> 'idle') OR state LIKE 'idle in transaction%') AND pid <> pg_backend_pid()");
          let act = busyNow();
          for (let i = 0; act !== '' && i < 50; i++) { await sleep(200 * slow()); act = busyNow(); }
          checks = { other: other.status, ms: Date.now() - t0, busy: act };
        } else if (bytes % 4 === 0) {
          await sleep(1); // keeps reading slowly
        }
      },
    });
    assert.equal(r.status, 200);
    assert.ok(checks, 'stalled mid-download');
    assert.equal(checks.other, 200, 'another request is served while the export waits');
    assert.equal(checks.busy, '', 'no export query running or transaction open while the client is stalled');
    const doc = JSON.parse(r.body);
    assert.equal(doc.messages.length, N);
    assert.equal(doc.messages[N - 1].seq, N);
    const growthMb = (peak - base) / 1024;
    assert.ok(growthMb < 16, `RSS grew ${growthMb.toFixed(1)} MB`);
  });

  test('a client that goes away mid-export: the server stops and keeps serving', T, async () => {
    await new Promise((resolve, reject) => {
      const req = http.get(srv.url(`/api/v1/conversations/${big}/export`), { headers: { authorization: `Bearer ${a.token}` } }, (res) => {
        let n = 0;
        res.on('data', (d) => { n += d.length; if (n > 2e6) { req.destroy(); resolve(); } });
        res.on('error', () => {});
      });
      req.on('error', (e) => (e.code === 'ECONNRESET' ? resolve() : reject(e)));
    });
    const r = await api(srv, 'GET', `/conversations/${big}/messages?limit=1`, { token: a.token });
    assert.equal(r.status, 200);
    assert.ok(srv.alive());
  });

  test('what the caller may see: deleted for me left out, tombstones kept, reactions and media', T, async () => {
    const g = await api(srv, 'POST', '/conversations', { token: a.token, body: { kind: 'group', title: 'Small', member_ids: [b.id] } });
    const conv = g.json.conversation.id;
    const send = async (u, body) => {
      const r = await api(srv, 'POST', `/conversations/${conv}/messages`, { token: u.token, body: { client_id: cid(), ...body } });
      assert.equal(r.status, 201, r.text);
      return r.json.message;
    };
    const m1 = await send(a, { kind: 'text', body: 'first' });
    const up = await api(srv, 'POST', '/media', { token: b.token, raw: Buffer.from('89504e470d0a1a0a0000000d4948445200000002000000030000', 'hex'), headers: { 'content-type': 'image/png' } });
    assert.equal(up.status, 201, up.text);
    const med = up.json.media.id;
    const m2 = await send(b, { kind: 'image', media_id: med, body: 'a caption' });
    const m3 = await send(a, { kind: 'text', body: 'gone' });
    const m4 = await send(a, { kind: 'text', body: 'hidden for b' });
    const m5 = await send(a, { kind: 'ciphertext', body: 'b64ciphertext==' });
    await api(srv, 'POST', `/messages/${m1.id}/reactions`, { token: b.token, body: { emoji: '👍' } });
    await api(srv, 'DELETE', `/messages/${m3.id}?for=everyone`, { token: a.token });
    await api(srv, 'DELETE', `/messages/${m4.id}?for=me`, { token: b.token });
    const r = await download(srv, conv, b.token);
    assert.equal(r.status, 200);
    const doc = JSON.parse(r.body);
    assert.deepEqual(doc.messages.map((m) => m.id), [m1.id, m2.id, m3.id, m5.id]);
    assert.deepEqual(doc.messages[0].reactions, { '👍': [b.id] });
    assert.deepEqual(doc.messages[1].media, { id: med, mime: 'image/png', size: 26, width: 2, height: 3 });
    assert.equal(doc.messages[2].deleted, true);
    assert.equal(doc.messages[2].body, null);
    assert.equal(doc.messages[3].body, 'b64ciphertext==', 'ciphertext exported untouched');
    const ra = JSON.parse((await download(srv, conv, a.token)).body);
    assert.equal(ra.messages.length, 5);
    // an empty conversation is a valid document too
    const e = await api(srv, 'POST', '/conversations', { token: a.token, body: { kind: 'direct', user_id: c.id } });
    const de = JSON.parse((await download(srv, e.json.conversation.id, c.token)).body);
    assert.deepEqual(de.messages, []);
    assert.equal(de.conversation.kind, 'direct');
  });

  test('non-members, removed members, bad ids: 404; no token: 401', T, async () => {
    assertError(await api(srv, 'GET', `/conversations/${big}/export`, { token: c.token }), 404, 'not_found');
    assertError(await api(srv, 'GET', '/conversations/abc/export', { token: c.token }), 404, 'not_found');
    assertError(await api(srv, 'GET', '/conversations/99999999999/export', { token: c.token }), 404, 'not_found');
    assertError(await api(srv, 'GET', `/conversations/${big}/export`), 401, 'unauthorized');
    const g = await api(srv, 'POST', '/conversations', { token: a.token, body: { kind: 'group', title: 'x', member_ids: [c.id] } });
    const conv = g.json.conversation.id;
    assert.equal((await api(srv, 'DELETE', `/conversations/${conv}/members/${c.id}`, { token: a.token })).status, 204);
    assertError(await api(srv, 'GET', `/conversations/${conv}/export`, { token: c.token }), 404, 'not_found');
  });
});
