'use strict';
// Full-text search over the caller's messages (api.md "Messages",
// GET /api/v1/search/messages; docs/search.md): by word and by prefix of the
// last word, words of any script, newest first (message id descending),
// cursor pages (a word in many messages paged through to the end equals the
// brute-force list, through both of sb_search's ways: migrations/170),
// membership periods (a removed member stops finding new messages, a
// non-member finds nothing), never deleted / deleted-for-me / ciphertext
// messages, HTML-safe highlighted snippets, bad queries 422; a message sent
// on one node is found on another. Needs the test database.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { execFileSync } = require('node:child_process');
const { startServer } = require('./lib/server');
const {
  DB_URL, BASE_ENV, waitForDatabase, api, assertError, signupMany,
} = require('./lib/api');
const { startRedis, startCluster, waitClusterUp, stopAll } = require('./lib/cluster');
const { withAppName } = require('./lib/storm');

const T = { timeout: 120000 };
const cid = () => crypto.randomUUID();
const tag = () => `z${crypto.randomBytes(5).toString('hex')}`; // a word no other test uses

describe('search', () => {
  let srv;
  before(async () => {
    assert.ok(DB_URL, 'no test database URL');
    await waitForDatabase();
    srv = await startServer({ name: 'search', env: { ...BASE_ENV, SB_RATELIMIT_SEND: '100000/1' } });
  });
  after(async () => { if (srv) await srv.stop(); });

  const send = async (u, conv, body, kind = 'text') => {
    const r = await api(srv, 'POST', `/conversations/${conv}/messages`, { token: u.token, body: { client_id: cid(), kind, body } });
    assert.equal(r.status, 201, r.text);
    return r.json.message;
  };
  const search = (u, qs) => api(srv, 'GET', `/search/messages?${new URLSearchParams(qs)}`, { token: u.token });
  const ids = (r) => { assert.equal(r.status, 200, r.text); return r.json.items.map((m) => m.id); };
  const group = async (owner, members) => {
    const r = await api(srv, 'POST', '/conversations', { token: owner.token, body: { kind: 'group', title: 'g', member_ids: members.map((m) => m.id) } });
    assert.equal(r.status, 201, r.text);
    return r.json.conversation.id;
  };

  test('finds by word and by prefix of the last word, in any script; items are Messages with a snippet', T, async () => {
    const [a, b] = await signupMany(srv, 2);
    const g = await group(a, [b]);
    const t = tag();
    const m1 = await send(a, g, `Hello ${t} world, see you tomorrow`);
    const m2 = await send(b, g, `Привет ${t} мир`);
    const m3 = await send(b, g, `unrelated ${t}x words`);
    assert.deepEqual(ids(await search(a, { q: `hello ${t}` })), [m1.id]);
    assert.deepEqual(ids(await search(a, { q: `${t} hel` })), [m1.id], 'prefix of the last word');
    assert.deepEqual(ids(await search(a, { q: `HELLO ${t}` })), [m1.id], 'case-insensitive');
    assert.deepEqual(ids(await search(b, { q: `мир ${t}` })), [m2.id]);
    assert.deepEqual(ids(await search(b, { q: `${t} Прив` })), [m2.id]);
    assert.deepEqual(ids(await search(a, { q: `hel ${t}` })), [], 'only the last word is a prefix');
    const all = await search(a, { q: t });
    assert.deepEqual(new Set(ids(all)), new Set([m1.id, m2.id, m3.id]), 'the last word as a prefix also finds longer words');
    const item = (await search(a, { q: `hello ${t}` })).json.items[0];
    assert.equal(item.conversation_id, g);
    assert.equal(item.body, m1.body);
    assert.equal(item.sender_id, a.id);
    assert.equal(item.seq, m1.seq);
    assert.match(item.snippet, /<mark>Hello<\/mark>/);
    assert.match(item.snippet, new RegExp(`<mark>${t}</mark>`));
    assert.equal((await search(a, { q: `hello ${t}` })).json.next_cursor, null);
  });

  test('snippets are HTML-escaped around the marks', T, async () => {
    const [a] = await signupMany(srv, 1);
    const g = await group(a, []);
    const t = tag();
    await send(a, g, `x < y && <script>alert(1)</script> z > 2 ${t}`);
    const s = (await search(a, { q: t })).json.items[0].snippet;
    assert.ok(!s.includes('<script>'), s);
    assert.equal(s.replace(/<\/?mark>/g, '').match(/[<>]/), null, `only <mark> tags: ${s}`);
    assert.match(s, /x &lt; y &amp;&amp;/);
    assert.match(s, /z &gt; 2/);
    assert.match(s, new RegExp(`<mark>${t}</mark>`));
  });

  test('newest first, not by relevance; pages follow next_cursor without repeats', T, async () => {
    const [a] = await signupMany(srv, 1);
    const g = await group(a, []);
    const t = tag();
    const weak = [];
    for (let i = 0; i < 7; i++) weak.push(await send(a, g, `${t} once among many other words here number ${i}`));
    const strong = await send(a, g, `${t} ${t} ${t} ${t}`);
    const last = await send(a, g, `${t} the newest`);
    const first = await search(a, { q: t, limit: 3 });
    assert.equal(first.status, 200, first.text);
    assert.deepEqual(ids(first), [last.id, strong.id, weak[6].id], 'newest first, however often the word occurs');
    const seen = [...ids(first)];
    let cur = first.json.next_cursor;
    while (cur) {
      const r = await search(a, { q: t, limit: 3, cursor: cur });
      seen.push(...ids(r));
      cur = r.json.next_cursor;
    }
    assert.deepEqual(seen, [last.id, strong.id, ...weak.map((m) => m.id).reverse()]);
    assertError(await search(a, { q: t, cursor: 'nonsense' }), 422, 'validation_failed');
    // a cursor of the ranked order before migration 170 ("s:<rank>:<id>")
    // still pages, by its id
    const old = Buffer.from(`s:0.0607927:${weak[4].id}`).toString('base64url');
    assert.deepEqual(ids(await search(a, { q: t, limit: 2, cursor: old })), [weak[3].id, weak[2].id]);
  });

  test('sb_search, the statement of servers before migration 185, still answers the same items (rolling upgrade)', T, async () => {
    const [a] = await signupMany(srv, 1);
    const g = await group(a, []);
    const t = tag();
    for (let i = 0; i < 4; i++) await send(a, g, `${t} number ${i} <b>`);
    const page = await search(a, { q: t, limit: 3 });
    assert.equal(page.status, 200, page.text);
    // the old server asked for its page + 1 rows and took "_pos" as the cursor
    const old = JSON.parse(execFileSync('psql', [DB_URL, '-qtAX', '-v', 'ON_ERROR_STOP=1', '-c',
      `SELECT sb_search(${a.id}, '''${t}'':*', NULL, NULL, NULL, 4)::text`], { encoding: 'utf8' }));
    assert.equal(old.items.length, 4);
    assert.deepEqual(old.items.map((m) => m._pos), old.items.map((m) => m.id));
    assert.deepEqual(old.items.slice(0, 3).map(({ _pos, ...m }) => m), page.json.items);
  });

  // The search statement is prepared once per Postgres connection
  // (store/db.c db_query_prepared): a burst of searches on fresh
  // connections (the Parse pipelined ahead of them) and, after every one of
  // the server's connections is cut, searches on the new sessions (where
  // nothing is prepared yet) answer the same page.
  test('searches on fresh and on re-established Postgres connections (the prepared statement is made again)', T, async () => {
    const app = `sbsearch_${crypto.randomBytes(4).toString('hex')}`;
    const s2 = await startServer({ name: 'search-prep', env: { ...BASE_ENV, SB_DATABASE_URL: withAppName(DB_URL, app) } });
    try {
      const [a] = await signupMany(s2, 1);
      const r = await api(s2, 'POST', '/conversations', { token: a.token, body: { kind: 'group', title: 'g', member_ids: [] } });
      assert.equal(r.status, 201, r.text);
      const g = r.json.conversation.id;
      const t = tag();
      const sent = [];
      for (let i = 0; i < 3; i++) {
        const m = await api(s2, 'POST', `/conversations/${g}/messages`, { token: a.token, body: { client_id: cid(), kind: 'text', body: `${t} n${i}` } });
        assert.equal(m.status, 201, m.text);
        sent.unshift(m.json.message.id);
      }
      const q = () => api(s2, 'GET', `/search/messages?q=${t}`, { token: a.token });
      const burst = async () => {
        for (const res of await Promise.all(Array.from({ length: 20 }, q))) assert.deepEqual(ids(res), sent);
      };
      await burst();
      const conns = () => Number(execFileSync('psql', [DB_URL, '-qtAX', '-c',
        `SELECT count(*) FROM pg_stat_activity WHERE application_name = '${app}'`], { encoding: 'utf8' }));
      const n0 = conns();
      assert.ok(n0 >= 1, 'the server is connected');
      for (let round = 0; round < 2; round++) {
        const killed = Number(execFileSync('psql', [DB_URL, '-qtAX', '-c',
          `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = '${app}'`], { encoding: 'utf8' }));
        assert.equal(killed, n0, 'the server\'s connections were cut');
        // the pool reconnects (with backoff): 503 until then, never another error
        const deadline = Date.now() + 20000;
        for (;;) {
          const res = await q();
          if (res.status === 200) { assert.deepEqual(ids(res), sent); break; }
          assert.equal(res.status, 503, res.text);
          assert.ok(Date.now() < deadline, 'searches answer again after the reconnect');
          await new Promise((ok) => setTimeout(ok, 100));
        }
        while (conns() < n0) {
          assert.ok(Date.now() < deadline, 'every connection is back');
          await new Promise((ok) => setTimeout(ok, 100));
        }
        await burst();
      }
    } finally {
      await s2.stop();
    }
  });

  // sb_search (migrations/170_search_newest.sql) takes a membership period's
  // matches from the GIN when it has fewer than max(8, sqrt(messages of the
  // conversation)) of them, and otherwise reads the conversation newest first
  // (a merge of backward btree scans). Here: a busy conversation where the
  // word is in most messages (read newest first; b leaves it halfway and
  // hides one message), a small one where it is rare (from the GIN), and one
  // in between; every page of 7 is compared with the list computed from what
  // was sent, for a whole word and a prefix.
  test('a common word paged to the end: every visible match once, newest first, across both ways of reading', T, async () => {
    const [a, b] = await signupMany(srv, 2);
    const busy = await group(a, [b]);
    const small = await group(a, [b]);
    const mid = await group(a, [b]);
    const t = tag();
    const sent = []; // {id, conv, words, bSees}
    const put = async (conv, words, bSees = true) => {
      const m = await send(a, conv, `${words} filler ${sent.length}`);
      sent.push({ id: m.id, conv, words: words.split(' '), bSees });
      return m;
    };
    let hidden = null;
    for (let i = 0; i < 40; i++) {
      const m = await put(busy, i % 4 === 3 ? 'nothing here' : `${t}a common ${i}`);
      if (i === 10) hidden = m;
      if (i % 5 === 0) await put(small, i % 10 === 0 ? `${t}b rare` : 'other words');
      if (i % 2 === 0) await put(mid, i % 4 === 0 ? `${t}a middle` : 'plain');
    }
    assert.equal((await api(srv, 'DELETE', `/messages/${hidden.id}?for=me`, { token: b.token })).status, 204);
    sent.find((m) => m.id === hidden.id).bSees = false;
    const rm = await api(srv, 'DELETE', `/conversations/${busy}/members/${b.id}`, { token: a.token });
    assert.equal(rm.status, 204, rm.text);
    for (let i = 40; i < 70; i++) await put(busy, i % 4 === 3 ? 'nothing here' : `${t}a common ${i}`, false);
    await put(small, `${t}b rare after`);

    const newest = (xs) => xs.sort((x, y) => (BigInt(y) > BigInt(x) ? 1 : BigInt(y) < BigInt(x) ? -1 : 0));
    const expect = (who, pred) => newest(sent.filter((m) => (who === a || m.bSees) && pred(m)).map((m) => m.id));
    const all = async (who, q, limit = 7) => {
      const got = [];
      let cur = null;
      for (let n = 0; n < 100; n++) {
        const r = await search(who, cur ? { q, limit, cursor: cur } : { q, limit });
        got.push(...ids(r));
        assert.ok(r.json.items.length <= limit);
        cur = r.json.next_cursor;
        if (!cur) return got;
      }
      assert.fail('more than 100 pages');
    };
    const word = (w) => (m) => m.words.includes(w);
    const prefix = (p) => (m) => m.words.some((w) => w.startsWith(p));
    for (const who of [a, b]) {
      const name = who === a ? 'a' : 'b';
      const dense = await all(who, `${t}a`);
      assert.deepEqual(dense, expect(who, prefix(`${t}a`)), `${name}: the common word, every page`);
      assert.equal(new Set(dense).size, dense.length, 'no repeats');
      assert.deepEqual(await all(who, `${t}a common`, 5), expect(who, (m) => word(`${t}a`)(m) && word('common')(m)), `${name}: two words`);
      assert.deepEqual(await all(who, `${t}b`), expect(who, word(`${t}b`)), `${name}: the rare word`);
      assert.deepEqual(await all(who, `${t}`, 200), expect(who, prefix(t)), `${name}: a prefix of both, one page`);
      assert.deepEqual(ids(await search(who, { q: `${t}a`, conversation_id: mid })), expect(who, (m) => m.conv === mid && prefix(`${t}a`)(m)).slice(0, 50), `${name}: one conversation`);
    }
    // b left the busy conversation: nothing sent there after that, and not
    // the message b hid
    const bBusy = await all(b, `${t}a common`);
    assert.ok(!bBusy.includes(hidden.id), 'hidden for b');
    assert.equal(bBusy.length, 29, '30 messages of the word before b left, one hidden');
  });

  test('membership: a non-member finds nothing; a removed member finds what they saw, nothing after', T, async () => {
    const [a, b, c] = await signupMany(srv, 3);
    const g = await group(a, [b]);
    const t = tag();
    const before1 = await send(a, g, `${t} before`);
    assert.deepEqual(ids(await search(c, { q: t })), [], 'non-member');
    assert.deepEqual(ids(await search(c, { q: t, conversation_id: g })), []);
    assert.deepEqual(ids(await search(b, { q: t })), [before1.id]);
    const rm = await api(srv, 'DELETE', `/conversations/${g}/members/${b.id}`, { token: a.token });
    assert.equal(rm.status, 204, rm.text);
    const after1 = await send(a, g, `${t} after`);
    assert.deepEqual(ids(await search(b, { q: t })), [before1.id], 'removed member: only their period');
    assert.deepEqual(new Set(ids(await search(a, { q: t }))), new Set([before1.id, after1.id]));
    // a member added later does not find what came before they joined
    await api(srv, 'POST', `/conversations/${g}/members`, { token: a.token, body: { user_ids: [c.id] } });
    const late = await send(a, g, `${t} late`);
    assert.deepEqual(ids(await search(c, { q: t })), [late.id]);
  });

  test('conversation_id narrows the search', T, async () => {
    const [a, b] = await signupMany(srv, 2);
    const g1 = await group(a, [b]);
    const g2 = await group(a, [b]);
    const t = tag();
    const x = await send(a, g1, `${t} one`);
    const y = await send(a, g2, `${t} two`);
    assert.deepEqual(ids(await search(b, { q: t, conversation_id: g1 })), [x.id]);
    assert.deepEqual(ids(await search(b, { q: t, conversation_id: g2 })), [y.id]);
  });

  test('never returns deleted, deleted-for-me or ciphertext messages', T, async () => {
    const [a, b] = await signupMany(srv, 2);
    const g = await group(a, [b]);
    const t = tag();
    const gone = await send(a, g, `${t} deleted for everyone`);
    const mine = await send(a, g, `${t} deleted for b only`);
    await send(a, g, `${t} secret`, 'ciphertext');
    const kept = await send(a, g, `${t} kept`);
    assert.equal((await api(srv, 'DELETE', `/messages/${gone.id}?for=everyone`, { token: a.token })).status, 204);
    assert.equal((await api(srv, 'DELETE', `/messages/${mine.id}?for=me`, { token: b.token })).status, 204);
    assert.deepEqual(new Set(ids(await search(b, { q: t }))), new Set([kept.id]));
    assert.deepEqual(new Set(ids(await search(a, { q: t }))), new Set([mine.id, kept.id]));
    assert.deepEqual(ids(await search(a, { q: `${t} secret` })), []);
  });

  // The index namespaces each word by conversation ('c<id>_word',
  // migrations/120_search_scoped.sql): a search reads only the caller's
  // conversations, a prefix never reaches into another conversation (even
  // one whose id extends the caller's: 'c12_' is not a prefix of 'c123_'), words with
  // quotes and backslashes survive, an edit re-indexes, a very long word
  // neither breaks the send nor is found by a bounded query word.
  test('per-conversation index: no leaks across conversations, odd words, edits, long words', T, async () => {
    const [a, b] = await signupMany(srv, 2);
    const t = tag();
    // ten conversations with words of the same prefix; b is a member of the first only
    const gs = [];
    for (let i = 0; i < 10; i++) gs.push(await group(a, i === 0 ? [b] : []));
    const mine = await send(a, gs[0], `${t}q0 only here`);
    for (let i = 1; i < 10; i++) await send(a, gs[i], `${t}q${i} elsewhere ${t}q0x`);
    assert.deepEqual(ids(await search(b, { q: `${t}q` })), [mine.id], 'b: a prefix over its own conversation only');
    assert.equal((await search(a, { q: `${t}q` })).json.items.length, 10);
    assert.equal((await search(a, { q: `${t}q0` })).json.items.length, 10, `${t}q0 and ${t}q0x`);
    assert.deepEqual(ids(await search(a, { q: `${t}q0`, conversation_id: gs[0] })), [mine.id]);
    // quotes, backslashes and operators in the body are indexed as words
    const odd = await send(a, gs[0], `${t}o it's a\\b'c "quoted" x:*y & | ! <-> don''t`);
    for (const q of [`${t}o it`, `${t}o quoted`, `${t}o don`, `${t}o y`]) {
      assert.deepEqual(ids(await search(b, { q })), [odd.id], q);
    }
    // an edit re-indexes: the new words are found, the old ones no longer
    const ed = await send(a, gs[0], `${t}e before`);
    const pr = await api(srv, 'PATCH', `/messages/${ed.id}`, { token: a.token, body: { body: `${t}e after` } });
    assert.equal(pr.status, 200, pr.text);
    assert.deepEqual(ids(await search(b, { q: `${t}e after` })), [ed.id]);
    assert.deepEqual(ids(await search(b, { q: `${t}e before` })), []);
    // a word longer than the index keeps (2000 bytes) is not indexed; the rest is
    const long = await send(a, gs[0], `${t}l ${'w'.repeat(2030)} tail`);
    assert.deepEqual(ids(await search(b, { q: `${t}l tail` })), [long.id]);
    assert.deepEqual(ids(await search(b, { q: `${t}l ${'w'.repeat(60)}` })), []);
  });

  test('bad queries: empty, no word, over-long, too many words, bad ids; 401 without a token', T, async () => {
    const [a] = await signupMany(srv, 1);
    const bad = async (qs, field) => {
      const r = await search(a, qs);
      assertError(r, 422, 'validation_failed');
      assert.ok(field in r.json.error.details, r.text);
    };
    await bad({}, 'q');
    await bad({ q: '' }, 'q');
    await bad({ q: '  !!! ?? ' }, 'q');
    await bad({ q: "'):* <->" }, 'q');
    await bad({ q: 'x'.repeat(257) }, 'q');
    await bad({ q: 'a b c d e f g h i' }, 'q');
    await bad({ q: 'hello', conversation_id: 'abc' }, 'conversation_id');
    await bad({ q: 'hello', limit: '0' }, 'limit');
    await bad({ q: 'hello', limit: '201' }, 'limit');
    const ok = await search(a, { q: 'x'.repeat(256) });
    assert.equal(ok.status, 200, ok.text);
    assert.deepEqual(ok.json, { items: [], next_cursor: null });
    // quotes and tsquery operators are plain separators, never syntax
    for (const q of ["it's", 'a & b | !c', 'x\\y', 'a:*b', "o'neil:*"]) {
      const r = await search(a, { q });
      assert.equal(r.status, 200, `${q}: ${r.text}`);
    }
    assertError(await api(srv, 'GET', '/search/messages?q=hello'), 401, 'unauthorized');
  });
});

describe('search across two nodes', () => {
  let redis; let nodes;
  before(async () => {
    await waitForDatabase();
    redis = await startRedis();
    nodes = await startCluster(2, { redis, name: 'search_cluster', env: { ...BASE_ENV } });
    await waitClusterUp(nodes);
  });
  after(async () => {
    if (nodes) await stopAll(nodes);
    if (redis) await redis.stop();
  });

  test('a message sent on one node is found by a member searching on the other', T, async () => {
    const [a, b] = nodes;
    const [u, v] = await signupMany(a, 2);
    const c = await api(a, 'POST', '/conversations', { token: u.token, body: { kind: 'direct', user_id: v.id } });
    const t = tag();
    const m = await api(a, 'POST', `/conversations/${c.json.conversation.id}/messages`, { token: u.token, body: { client_id: cid(), kind: 'text', body: `${t} across` } });
    assert.equal(m.status, 201, m.text);
    const r = await api(b, 'GET', `/search/messages?q=${t}`, { token: v.token });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json.items.map((x) => x.id), [m.json.message.id]);
  });
});
