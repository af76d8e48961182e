'use strict';
// Long-poll transport at /socket/longpoll: the raw exchange of the
// transcripts' LongPoll section (HTTP 200 always, protocol status in the JSON
// body, session token in the last `token` query parameter), then the official
// phoenix.js client over LongPoll (in Node 20 its Ajax uses the global fetch
// + AbortController, so no XMLHttpRequest shim is needed), directly and
// through longPollFallbackMs.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const WebSocket = require('ws');
const { Socket, LongPoll } = require('phoenix');
const { startServer, forgeToken, slow } = require('./lib/server');
const { Client, joinEcho } = require('./lib/frames');
const { get } = require('./lib/raw');
const { socketPath, sleep, pushResult, waitFor } = require('./lib/phx');

const T = { timeout: 30000 };
const WINDOW_MS = 2000; // SB_LONGPOLL_WINDOW_MS for this server (Phoenix's default is 10 000)
const JSON_CT = 'application/json; charset=utf-8';

describe('long-poll, raw HTTP', () => {
  let srv;
  let alice;
  const lp = (query) => `/socket/longpoll?${query}`;

  before(async () => {
    srv = await startServer({ name: 'longpoll_raw', env: { SB_LONGPOLL_WINDOW_MS: String(WINDOW_MS) } });
    alice = srv.token('alice');
  });
  after(async () => { if (srv) await srv.stop(); });

  /** GET without session: a new session, {"messages":[],"status":410,"token":...} */
  async function newSession(token = alice) {
    const r = await get(srv.port, lp(`token=${encodeURIComponent(token)}&vsn=2.0.0`));
    assert.equal(r.status, 200, 'long-poll answers HTTP 200, status in the body');
    assert.equal(r.headers.get('content-type'), JSON_CT);
    const m = r.text.match(/^\{"messages":\[\],"status":410,"token":"([^"]+)"\}$/);
    assert.ok(m, `new session body: ${r.text}`);
    return m[1];
  }

  const sessionQuery = (session) => `token=${encodeURIComponent(alice)}&vsn=2.0.0&token=${encodeURIComponent(session)}`;

  async function post(session, body, contentType = 'application/json') {
    const r = await get(srv.port, lp(sessionQuery(session)), { method: 'POST', body, headers: { 'content-type': contentType } });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-type'), JSON_CT);
    return r.text;
  }

  async function poll(session, timeoutMs = 5000) {
    const t0 = Date.now();
    const r = await get(srv.port, lp(sessionQuery(session)), { timeoutMs });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-type'), JSON_CT);
    return { ...r, ms: Date.now() - t0, body: r.json() };
  }

  /** Polls until n messages have come (replies may be spread over polls). */
  async function pollMessages(session, n) {
    const msgs = [];
    const deadline = Date.now() + 5000 * slow();
    let last;
    while (msgs.length < n && Date.now() < deadline) {
      last = await poll(session);
      assert.equal(last.body.token, session, 'every poll answer carries the session token');
      assert.ok(last.body.status === 200 || last.body.status === 204, `poll status ${last.text}`);
      msgs.push(...last.body.messages);
    }
    return { msgs, last };
  }

  const messagesBody = (msgs, status, session) => JSON.stringify({ messages: msgs, status, token: session });

  test('the transcript exchange: new session, join, replies, ndjson batch, idle 204', T, async () => {
    const session = await newSession();

    assert.equal(await post(session, '["1","1","echo:lobby","phx_join",{}]'), '{"status":200}');
    let r = await poll(session);
    assert.equal(r.text, messagesBody(['["1","1","echo:lobby","phx_reply",{"response":{"joined":"echo:lobby"},"status":"ok"}]'], 200, session));

    assert.equal(await post(session, '["1","2","echo:lobby","ping",{"n":1}]\n[null,"3","phoenix","heartbeat",{}]', 'application/x-ndjson'), '{"status":200}');
    const { msgs, last } = await pollMessages(session, 2);
    assert.deepEqual(Object.keys(last.body), ['messages', 'status', 'token'], `key order as Phoenix (Jason) writes it: ${last.text}`);
    // Phoenix answered the heartbeat first (socket process) and the ping second
    // (channel process); the order between the two is not part of the protocol.
    assert.deepEqual([...msgs].sort(), [
      '["1","2","echo:lobby","phx_reply",{"response":{"n":1},"status":"ok"}]',
      '[null,"3","phoenix","phx_reply",{"response":{},"status":"ok"}]',
    ].sort());

    // nothing pending: the poll is held for the window, then 204
    r = await poll(session, 15000);
    assert.equal(r.text, messagesBody([], 204, session));
    assert.ok(r.ms >= WINDOW_MS * 0.8, `idle poll held ${r.ms} ms (window ${WINDOW_MS} ms)`);
    assert.ok(r.ms <= 12000 * slow(), `idle poll held ${r.ms} ms`);
  });

  test('responses carry access-control-allow-origin: * (as Phoenix\'s long-poll does)', T, async () => {
    const r = await get(srv.port, lp(`token=${encodeURIComponent(alice)}&vsn=2.0.0`));
    assert.equal(r.headers.get('access-control-allow-origin'), '*');
  });

  test('push to an unjoined topic and a shout, over long-poll', T, async () => {
    const session = await newSession();
    assert.equal(await post(session, '["1","5","echo:other","ping",{}]'), '{"status":200}');
    const r = await poll(session);
    assert.deepEqual(r.body.messages, ['[null,"5","echo:other","phx_reply",{"response":{"reason":"unmatched topic"},"status":"error"}]']);
    assert.equal(await post(session, '["7","7","echo:lp","phx_join",{}]\n["7","8","echo:lp","shout",{"msg":"hi"}]', 'application/x-ndjson'), '{"status":200}');
    const { msgs } = await pollMessages(session, 3);
    assert.deepEqual(msgs, [
      '["7","7","echo:lp","phx_reply",{"response":{"joined":"echo:lp"},"status":"ok"}]',
      '[null,null,"echo:lp","shout",{"msg":"hi"}]',
      '["7","8","echo:lp","phx_reply",{"response":{},"status":"ok"}]',
    ]);
  });

  test('a held poll returns as soon as a broadcast arrives', T, async () => {
    const session = await newSession();
    assert.equal(await post(session, '["1","1","echo:wake","phx_join",{}]'), '{"status":200}');
    const first = await poll(session);
    assert.equal(first.body.messages.length, 1);

    const ws = await Client.open(srv.wsUrl(socketPath({ token: srv.token('bob') })));
    await joinEcho(ws, 'echo:wake', '1');
    const held = poll(session, 15000);
    await sleep(300);
    ws.send('["1","2","echo:wake","shout",{"from":"ws"}]');
    await ws.expectText('[null,null,"echo:wake","shout",{"from":"ws"}]');
    const r = await held;
    assert.equal(r.text, messagesBody(['[null,null,"echo:wake","shout",{"from":"ws"}]'], 200, session));
    assert.ok(r.ms < WINDOW_MS, `held poll answered after ${r.ms} ms, should wake on the broadcast`);
    ws.terminate();
  });

  test('GET without a token, or with a bad token: {"status":403}', T, async () => {
    for (const q of ['vsn=2.0.0', `token=${encodeURIComponent(forgeToken(alice))}&vsn=2.0.0`,
      `token=${encodeURIComponent(srv.token('alice', { ttl: -30 }))}&vsn=2.0.0`, 'token=&vsn=2.0.0', 'token=u1&vsn=2.0.0']) {
      const r = await get(srv.port, lp(q));
      assert.equal(r.status, 200, q);
      assert.equal(r.headers.get('content-type'), JSON_CT, q);
      assert.equal(r.text, '{"status":403}', q);
    }
  });

  test('unsupported vsn: {"status":403}', T, async () => {
    const r = await get(srv.port, lp(`token=${encodeURIComponent(alice)}&vsn=3.0.0`));
    assert.equal(r.text, '{"status":403}');
  });

  test('POST with a bogus session: {"status":410}', T, async () => {
    let r = await get(srv.port, lp(`token=${encodeURIComponent(alice)}&vsn=2.0.0&token=bogus`), { method: 'POST', body: '[]', headers: { 'content-type': 'application/json' } });
    assert.equal(r.status, 200);
    assert.equal(r.text, '{"status":410}');
    // and with no session at all
    r = await get(srv.port, lp(`token=${encodeURIComponent(alice)}&vsn=2.0.0`), { method: 'POST', body: '[]', headers: { 'content-type': 'application/json' } });
    assert.equal(r.text, '{"status":410}');
  });

  test('a tampered session token -> 410', T, async () => {
    const session = await newSession();
    const tampered = forgeToken(session.includes('.') ? session : `${session}.xxxxxxxxxxxxxxxx`);
    const r = await get(srv.port, lp(sessionQuery(tampered)), { method: 'POST', body: '[null,"1","phoenix","heartbeat",{}]', headers: { 'content-type': 'application/json' } });
    assert.equal(r.text, '{"status":410}');
  });

  test('server alive', T, async () => {
    assert.ok(srv.alive());
    assert.equal((await fetch(srv.url('/healthz'))).status, 200);
  });
});

describe('long-poll with phoenix.js', () => {
  let srv;
  let alice;
  const sockets = [];
  let blackhole;
  const held = new Set();

  before(async () => {
    srv = await startServer({ name: 'longpoll_js', env: { SB_LONGPOLL_WINDOW_MS: String(WINDOW_MS) } });
    alice = srv.token('alice');
    // a TCP listener that accepts and never answers: a WebSocket that never opens
    blackhole = net.createServer((s) => { held.add(s); s.on('error', () => {}); s.on('close', () => held.delete(s)); });
    await new Promise((r) => blackhole.listen(0, '127.0.0.1', r));
  });
  after(async () => {
    for (const s of sockets) s.disconnect();
    for (const s of held) s.destroy();
    if (blackhole) blackhole.close();
    if (srv) await srv.stop();
  });

  function lpSocket(opts) {
    const s = new Socket(srv.wsUrl('/socket'), {
      transport: LongPoll,
      params: { token: alice },
      reconnectAfterMs: () => 200,
      rejoinAfterMs: () => 200,
      timeout: 5000 * slow(),
      longpollerTimeout: 20000,
      ...opts,
    });
    sockets.push(s);
    return s;
  }

  test('transport LongPoll: join, ping, own shout, leave', T, async () => {
    const socket = lpSocket();
    const errors = [];
    socket.onError((e) => errors.push(e));
    socket.connect();
    await waitFor(() => socket.isConnected() || errors.length, 5000, 'long-poll open');
    assert.ok(socket.isConnected(), `long-poll connected (errors: ${errors.join(', ')})`);
    assert.ok(socket.conn instanceof LongPoll);

    const ch = socket.channel('echo:lpjs', { hello: 'world' });
    const shouts = [];
    ch.on('shout', (p) => shouts.push(p));
    const [st, resp] = await pushResult(ch.join());
    assert.equal(st, 'ok');
    assert.deepEqual(resp, { joined: 'echo:lpjs' });

    const [pst, presp] = await pushResult(ch.push('ping', { n: 1, s: 'héllo' }));
    assert.equal(pst, 'ok');
    assert.deepEqual(presp, { n: 1, s: 'héllo' });

    const [sst] = await pushResult(ch.push('shout', { msg: 'hi all' }));
    assert.equal(sst, 'ok');
    await waitFor(() => shouts.length >= 1, 3000, 'own shout');
    assert.deepEqual(shouts, [{ msg: 'hi all' }]);

    // several pushes in one event-loop turn go out as one ndjson batch
    const results = await Promise.all([1, 2, 3, 4, 5].map((i) => pushResult(ch.push('ping', { i }))));
    assert.deepEqual(results, [1, 2, 3, 4, 5].map((i) => ['ok', { i }]));

    const [lst] = await pushResult(ch.leave());
    assert.equal(lst, 'ok');
  });

  test('broadcast from a WebSocket client reaches a long-poll client', T, async () => {
    const socket = lpSocket();
    socket.connect();
    const ch = socket.channel('echo:mix', {});
    const got = [];
    ch.on('shout', (p) => got.push(p));
    assert.equal((await pushResult(ch.join()))[0], 'ok');

    const ws = await Client.open(srv.wsUrl(socketPath({ token: srv.token('bob') })));
    await joinEcho(ws, 'echo:mix', '1');
    ws.send('["1","2","echo:mix","shout",{"from":"ws"}]');
    await ws.expectText('[null,null,"echo:mix","shout",{"from":"ws"}]');
    await ws.expectText('["1","2","echo:mix","phx_reply",{"response":{},"status":"ok"}]');
    await waitFor(() => got.length >= 1, 5000, 'broadcast over long-poll');
    await sleep(300);
    assert.deepEqual(got, [{ from: 'ws' }]);

    // and the other way round
    assert.equal((await pushResult(ch.push('shout', { from: 'lp' })))[0], 'ok');
    await ws.expectText('[null,null,"echo:mix","shout",{"from":"lp"}]');
    ws.terminate();
  });

  test('refused join over long-poll: user:<other> -> error forbidden', T, async () => {
    const socket = lpSocket();
    socket.connect();
    const ch = socket.channel('user:bob', {});
    const [st, resp] = await pushResult(ch.join());
    assert.equal(st, 'error');
    assert.equal(resp && resp.reason, 'forbidden');
    ch.leave();
  });

  test('bad token over long-poll: the client gets 403 and never opens', T, async () => {
    const socket = lpSocket({ params: { token: forgeToken(alice) }, reconnectAfterMs: () => 60000 });
    const errors = [];
    let opened = false;
    socket.onError((e) => errors.push(e));
    socket.onOpen(() => { opened = true; });
    socket.connect();
    await waitFor(() => errors.length, 5000, 'error');
    assert.equal(errors[0], 403);
    assert.equal(opened, false);
  });

  test('longPollFallbackMs: a WebSocket that never opens falls back to long-poll', T, async () => {
    const port = blackhole.address().port;
    class NeverOpens extends WebSocket {
      constructor(url, protocols) { super(url.replace(/^ws:\/\/127\.0\.0\.1:\d+/, `ws://127.0.0.1:${port}`), protocols); }
    }
    const s = new Socket(srv.wsUrl('/socket'), {
      transport: NeverOpens,
      longPollFallbackMs: 300,
      params: { token: alice },
      reconnectAfterMs: () => 200,
      timeout: 5000 * slow(),
    });
    sockets.push(s);
    s.connect();
    await waitFor(() => s.isConnected(), 8000, 'connected through the fallback');
    assert.equal(s.transport, LongPoll);
    const ch = s.channel('echo:fallback', {});
    const [st, resp] = await pushResult(ch.join());
    assert.equal(st, 'ok');
    assert.deepEqual(resp, { joined: 'echo:fallback' });
    const [pst, presp] = await pushResult(ch.push('ping', { via: 'fallback' }));
    assert.equal(pst, 'ok');
    assert.deepEqual(presp, { via: 'fallback' });
  });

  test('server alive', T, async () => {
    assert.ok(srv.alive());
    assert.equal((await fetch(srv.url('/healthz'))).status, 200);
  });
});
