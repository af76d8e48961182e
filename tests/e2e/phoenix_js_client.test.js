'use strict';
// The official phoenix.js client (npm `phoenix`, latest) over WebSocket, with
// `ws` as its transport: what js_client_test.js did against real Phoenix
// (join, ping reply, own shout, binary push), plus authToken, refused
// connects, refused joins, channel crash + automatic rejoin, leave, and the
// frames the client sent and received (captured through its logger).

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const WebSocket = require('ws');
const { Socket } = require('phoenix');
const { startServer, forgeToken, slow } = require('./lib/server');
const { sleep, pushResult, waitFor } = require('./lib/phx');

const T = { timeout: 30000 };

/** A Socket with ws as transport and a logger that records transport frames. */
function makeSocket(srv, opts = {}) {
  const log = [];
  const socket = new Socket(srv.wsUrl('/socket'), {
    transport: WebSocket,
    heartbeatIntervalMs: 30000,
    reconnectAfterMs: () => 100,
    rejoinAfterMs: () => 100,
    timeout: 5000 * slow(),
    logger: (kind, msg, data) => log.push({ kind, msg, data }),
    ...opts,
  });
  socket.frameLog = log;
  return socket;
}

describe('phoenix.js client over WebSocket', () => {
  let srv;
  let alice;
  const sockets = [];
  const track = (s) => { sockets.push(s); return s; };

  before(async () => {
    srv = await startServer({ name: 'phoenix_js_client' });
    alice = srv.token('alice');
  });
  after(async () => {
    for (const s of sockets) s.disconnect();
    if (srv) await srv.stop();
  });

  test('join, ping reply, own shout, binary ping, leave (js_client_test.js)', T, async () => {
    const socket = track(makeSocket(srv, { params: { token: alice } }));
    const opened = new Promise((r) => socket.onOpen(r));
    socket.connect();
    await waitFor(() => socket.isConnected(), 5000, 'socket open');
    await opened;
    assert.equal(socket.endPointURL(), srv.wsUrl(`/socket/websocket?token=${encodeURIComponent(alice)}&vsn=2.0.0`));

    const ch = socket.channel('echo:lobby', { hello: 'world' });
    const shouts = [];
    ch.on('shout', (p) => shouts.push(p));
    const [st, resp] = await pushResult(ch.join());
    assert.equal(st, 'ok');
    assert.deepEqual(resp, { joined: 'echo:lobby' });
    assert.equal(ch.state, 'joined');

    const [pst, presp] = await pushResult(ch.push('ping', { n: 1 }));
    assert.equal(pst, 'ok');
    assert.deepEqual(presp, { n: 1 });

    const [sst, sresp] = await pushResult(ch.push('shout', { msg: 'hi all' }));
    assert.equal(sst, 'ok');
    assert.deepEqual(sresp, {});
    // the broadcast precedes the reply on the wire, so it is already here
    assert.deepEqual(shouts, [{ msg: 'hi all' }]);

    const bytes = new Uint8Array([1, 2, 3]).buffer;
    const [bst, bresp] = await pushResult(ch.push('ping', bytes));
    assert.equal(bst, 'ok');
    assert.ok(bresp instanceof ArrayBuffer, `binary reply decoded as ArrayBuffer, got ${Object.prototype.toString.call(bresp)}`);
    assert.deepEqual([...new Uint8Array(bresp)], [1, 2, 3]);

    const [bsst] = await pushResult(ch.push('shout', new Uint8Array([9, 8]).buffer));
    assert.equal(bsst, 'ok');
    assert.equal(shouts.length, 2, 'binary shout broadcast arrives as event "shout"');
    assert.ok(shouts[1] instanceof ArrayBuffer);
    assert.deepEqual([...new Uint8Array(shouts[1])], [9, 8]);

    const [lst] = await pushResult(ch.leave());
    assert.equal(lst, 'ok');
    await waitFor(() => ch.state === 'closed', 3000, 'channel closed after leave');

    // what the client logged: replies matched to its refs, the broadcast, and
    // nothing dropped as "outdated" (a wrong join_ref in a server frame)
    const received = socket.frameLog.filter((l) => l.kind === 'receive').map((l) => l.msg.trim());
    assert.ok(received.some((m) => /^ok echo:lobby phx_reply \(\d+\)$/.test(m)), `receive log: ${received.join(' | ')}`);
    assert.ok(received.includes('echo:lobby shout'), `receive log: ${received.join(' | ')}`);
    const dropped = socket.frameLog.filter((l) => /outdated/.test(l.msg));
    assert.deepEqual(dropped, [], 'phoenix.js dropped no message as outdated');
  });

  test('heartbeats are answered (client keeps the connection)', T, async () => {
    const socket = track(makeSocket(srv, { params: { token: alice }, heartbeatIntervalMs: 100 }));
    const errors = [];
    socket.onError((e) => errors.push(e));
    const closes = [];
    socket.onClose((e) => closes.push(e));
    socket.connect();
    await waitFor(() => socket.isConnected(), 5000, 'socket open');
    const rtts = [];
    for (let i = 0; i < 3; i++) {
      rtts.push(await new Promise((resolve) => socket.ping(resolve)));
    }
    await sleep(600); // several heartbeat intervals: a missing reply would make the client close
    assert.equal(rtts.length, 3);
    assert.deepEqual(closes, [], 'no close');
    assert.deepEqual(errors, [], 'no error');
    const heartbeats = socket.frameLog.filter((l) => l.kind === 'receive' && /^ok phoenix phx_reply/.test(l.msg));
    assert.ok(heartbeats.length >= 3, `heartbeat replies received: ${heartbeats.length}`);
  });

  test('authToken option (Sec-WebSocket-Protocol, as phoenix.js encodes it)', T, async () => {
    const socket = track(makeSocket(srv, { authToken: alice }));
    const errors = [];
    socket.onError((e) => errors.push(e));
    socket.connect();
    await waitFor(() => socket.isConnected() || errors.length, 5000, 'socket open or error');
    assert.ok(socket.isConnected(), `connected with authToken (errors: ${errors.map(String).join(', ')})`);
    assert.equal(socket.conn.protocol, 'phoenix', 'server selected the "phoenix" subprotocol');
    const ch = socket.channel('echo:auth', {});
    const [st, resp] = await pushResult(ch.join());
    assert.equal(st, 'ok');
    assert.deepEqual(resp, { joined: 'echo:auth' });
  });

  test('authToken of every length mod 3 (phoenix.js strips the base64 "=" padding)', T, async () => {
    const byMod = new Map();
    for (let i = 1; i < 40 && byMod.size < 3; i++) {
      const t = srv.token('u'.repeat(i));
      if (!byMod.has(t.length % 3)) byMod.set(t.length % 3, t);
    }
    assert.equal(byMod.size, 3, 'tokens of all three lengths mod 3');
    for (const [mod, tok] of byMod) {
      const socket = track(makeSocket(srv, { authToken: tok }));
      const errors = [];
      socket.onError((e) => errors.push(e));
      socket.connect();
      await waitFor(() => socket.isConnected() || errors.length, 5000, 'socket open or error');
      assert.ok(socket.isConnected(), `token length % 3 = ${mod}: connected (errors: ${errors.map(String).join(', ')})`);
      socket.disconnect();
    }
  });

  test('refused connects: forged, expired or missing token -> error, never open', T, async () => {
    for (const params of [{ token: forgeToken(alice) }, { token: srv.token('alice', { ttl: -30 }) }, {}]) {
      const socket = makeSocket(srv, { params, reconnectAfterMs: () => 60000 });
      const errors = [];
      let opened = false;
      socket.onError((e) => errors.push(e));
      socket.onOpen(() => { opened = true; });
      socket.connect();
      await waitFor(() => errors.length > 0 || opened, 5000, 'error or open');
      await sleep(50);
      socket.disconnect();
      assert.equal(opened, false, `must not open with params ${JSON.stringify(params)}`);
    }
  });

  test('refused join: user:<other> -> error "forbidden", channel not joined', T, async () => {
    const socket = track(makeSocket(srv, { params: { token: alice } }));
    socket.connect();
    const ch = socket.channel('user:bob', {});
    const [st, resp] = await pushResult(ch.join());
    assert.equal(st, 'error');
    assert.equal(resp && resp.reason, 'forbidden');
    assert.notEqual(ch.state, 'joined');
    ch.leave();
  });

  test('channel crash: onError fires, phoenix.js rejoins and the channel works again', T, async () => {
    const socket = track(makeSocket(srv, { params: { token: alice } }));
    socket.connect();
    const ch = socket.channel('echo:crash', {});
    let joins = 0;
    const errors = [];
    ch.onError((e) => errors.push(e));
    ch.join().receive('ok', () => { joins++; });
    await waitFor(() => joins === 1, 5000, 'first join');
    ch.push('nosuchevent', {});
    await waitFor(() => errors.length === 1, 5000, 'channel onError');
    await waitFor(() => joins === 2, 5000, 'automatic rejoin');
    const [st, resp] = await pushResult(ch.push('ping', { again: true }));
    assert.equal(st, 'ok');
    assert.deepEqual(resp, { again: true });
  });

  test('two clients: a shout reaches the other one exactly once', T, async () => {
    const s1 = track(makeSocket(srv, { params: { token: alice } }));
    const s2 = track(makeSocket(srv, { params: { token: srv.token('bob') } }));
    s1.connect();
    s2.connect();
    const c1 = s1.channel('echo:pair', {});
    const c2 = s2.channel('echo:pair', {});
    const got = [];
    c2.on('shout', (p) => got.push(p));
    assert.equal((await pushResult(c1.join()))[0], 'ok');
    assert.equal((await pushResult(c2.join()))[0], 'ok');
    assert.equal((await pushResult(c1.push('shout', { k: 1 })))[0], 'ok');
    await waitFor(() => got.length >= 1, 3000, 'broadcast at the second client');
    await sleep(200);
    assert.deepEqual(got, [{ k: 1 }]);
  });

  test('server closing with 1000 on idle makes phoenix.js reconnect and rejoin', T, async () => {
    const idle = await startServer({ name: 'phoenix_js_idle', env: { SB_IDLE_TIMEOUT_MS: '800' } });
    try {
      const socket = makeSocket(idle, { params: { token: idle.token('alice') }, heartbeatIntervalMs: 60000 });
      const closes = [];
      socket.onClose((e) => closes.push(e.code));
      socket.connect();
      const ch = socket.channel('echo:idle', {});
      let joins = 0;
      ch.join().receive('ok', () => { joins++; });
      await waitFor(() => joins === 1, 5000, 'join');
      await waitFor(() => closes.length >= 1, 5000, 'server idle close');
      assert.equal(closes[0], 1000);
      await waitFor(() => joins >= 2, 5000, 'rejoin after reconnect');
      socket.disconnect();
    } finally {
      await idle.stop();
    }
  });

  test('server alive', T, async () => {
    assert.ok(srv.alive());
    assert.equal((await fetch(srv.url('/healthz'))).status, 200);
  });
});
