'use strict';
// Broadcast across reactors: with SB_REACTORS=2 the listening sockets share
// the port through SO_REUSEPORT, so ~24 connections land on both reactors.
// Every subscriber gets every broadcast exactly once, in the sender's order,
// in its own serializer's encoding.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startServer } = require('./lib/server');
const { Client, joinEcho, closeAll } = require('./lib/frames');
const { binPush, binBroadcast, socketPath, v1, v1Reply, sleep } = require('./lib/phx');

const T = { timeout: 30000 };
const N = 24;

describe('broadcast across reactors (SB_REACTORS=2)', () => {
  let srv;
  let clients = [];

  before(async () => {
    srv = await startServer({ name: 'broadcast', env: { SB_REACTORS: '2' } });
    for (let i = 0; i < N; i++) {
      clients.push(await Client.open(srv.wsUrl(socketPath({ token: srv.token(`member${i}`) }))));
    }
  });
  after(async () => {
    closeAll(clients);
    if (srv) await srv.stop();
  });

  /** Collects frames from every client until each has `n` or the time is up. */
  async function collect(cs, n, ms = 5000) {
    return Promise.all(cs.map(async (c) => {
      const got = [];
      for (let k = 0; k < n; k++) got.push(await c.next(ms));
      return got;
    }));
  }

  test('all subscribers join; one shout reaches each exactly once', T, async () => {
    for (const c of clients) await joinEcho(c, 'echo:room', '1');
    const sender = clients[0];
    sender.send('["1","2","echo:room","shout",{"msg":"to all"}]');
    await sender.expectText('[null,null,"echo:room","shout",{"msg":"to all"}]');
    await sender.expectText('["1","2","echo:room","phx_reply",{"response":{},"status":"ok"}]');
    for (const [i, c] of clients.slice(1).entries()) {
      try {
        await c.expectText('[null,null,"echo:room","shout",{"msg":"to all"}]');
      } catch (e) {
        e.message = `subscriber #${i + 1}: ${e.message}`;
        throw e;
      }
    }
    await sleep(300);
    for (const c of clients) await c.expectNothing(0);
  });

  test('every subscriber shouts once: everyone gets all N broadcasts exactly once', T, async () => {
    clients.forEach((c, i) => c.send(`["1","s${i}","echo:room","shout",{"from":${i}}]`));
    const all = await collect(clients, N + 1); // N broadcasts + own reply
    all.forEach((frames, i) => {
      const texts = frames.map((f) => f.data);
      const reply = `["1","s${i}","echo:room","phx_reply",{"response":{},"status":"ok"}]`;
      assert.equal(texts.filter((t) => t === reply).length, 1, `subscriber #${i}: own reply once`);
      const ownBroadcast = texts.indexOf(`[null,null,"echo:room","shout",{"from":${i}}]`);
      assert.ok(ownBroadcast >= 0 && ownBroadcast < texts.indexOf(reply), `subscriber #${i}: own broadcast before own reply`);
      const froms = texts.filter((t) => t !== reply).map((t) => {
        const m = t.match(/^\[null,null,"echo:room","shout",\{"from":(\d+)\}\]$/);
        assert.ok(m, `subscriber #${i}: unexpected frame ${t}`);
        return Number(m[1]);
      }).sort((a, b) => a - b);
      assert.deepEqual(froms, [...Array(N).keys()], `subscriber #${i}: each broadcast exactly once`);
    });
    await sleep(300);
    for (const c of clients) await c.expectNothing(0);
  });

  test('50 back-to-back shouts from one sender arrive everywhere in order', T, async () => {
    const sender = clients[3];
    for (let k = 0; k < 50; k++) sender.send(`["1","b${k}","echo:room","shout",{"k":${k}}]`);
    const all = await collect(clients, 50, 8000);
    all.forEach((frames, i) => {
      if (i === 3) return;
      assert.deepEqual(frames.map((f) => f.data), [...Array(50).keys()].map((k) => `[null,null,"echo:room","shout",{"k":${k}}]`), `subscriber #${i}`);
    });
    // the sender: its 50 broadcasts in order, each before its reply
    const own = all[3].map((f) => f.data);
    const rest = [];
    for (let k = 0; k < 50; k++) rest.push(await sender.nextText());
    const texts = own.concat(rest);
    let lastK = -1;
    for (const t of texts) {
      const m = t.match(/"k":(\d+)/);
      if (m) { assert.equal(Number(m[1]), lastK + 1, 'sender sees its broadcasts in order'); lastK++; }
    }
    assert.equal(lastK, 49);
    await sleep(200);
    for (const c of clients) await c.expectNothing(0);
  });

  test('binary broadcast reaches every subscriber with the same bytes', T, async () => {
    const sender = clients[5];
    sender.sendBinary(binPush('1', '77', 'echo:room', 'shout', [0xde, 0xad, 0xbe, 0xef]));
    const expected = binBroadcast('echo:room', 'shout', [0xde, 0xad, 0xbe, 0xef]);
    for (const [i, c] of clients.entries()) {
      const f = await c.next();
      assert.equal(f.type, 'binary', `subscriber #${i}`);
      assert.ok(f.data.equals(expected), `subscriber #${i}: ${f.data.toString('hex')}`);
    }
    await sender.expectText('["1","77","echo:room","phx_reply",{"response":{},"status":"ok"}]');
  });

  test('V1 subscribers on both reactors get the V1 encoding', T, async () => {
    const v1s = [];
    for (let i = 0; i < 8; i++) {
      const c = await Client.open(srv.wsUrl(socketPath({ token: srv.token(`v1m${i}`), vsn: '1.0.0' })));
      c.send('{"topic":"echo:room","event":"phx_join","payload":{},"ref":"1"}');
      await c.expectText(v1Reply('1', 'echo:room', 'ok', { joined: 'echo:room' }));
      v1s.push(c);
    }
    clients[1].send('["1","v","echo:room","shout",{"to":"v1 too"}]');
    for (const c of v1s) await c.expectText(v1('shout', { to: 'v1 too' }, null, 'echo:room'));
    for (const c of clients) {
      await c.expectText('[null,null,"echo:room","shout",{"to":"v1 too"}]');
    }
    await clients[1].expectText('["1","v","echo:room","phx_reply",{"response":{},"status":"ok"}]');
    closeAll(v1s);
  });

  test('subscribers that left or disconnected get nothing; the others still get everything', T, async () => {
    const leavers = clients.slice(0, 6);
    const gone = clients.slice(6, 12);
    const stay = clients.slice(12);
    for (const c of leavers) {
      c.send('["1","l","echo:room","phx_leave",{}]');
      await c.expectText('["1","l","echo:room","phx_reply",{"response":{},"status":"ok"}]');
      await c.expectText('["1","1","echo:room","phx_close",{}]');
    }
    for (const c of gone) c.terminate();
    await sleep(200);
    const sender = stay[0];
    sender.send('["1","z","echo:room","shout",{"after":"leave"}]');
    for (const c of stay) await c.expectText('[null,null,"echo:room","shout",{"after":"leave"}]');
    await sender.expectText('["1","z","echo:room","phx_reply",{"response":{},"status":"ok"}]');
    await sleep(200);
    for (const c of leavers) await c.expectNothing(0);
    clients = leavers.concat(stay);
  });

  test('topics are isolated: a shout on echo:other reaches only its subscribers', T, async () => {
    const [a, b, c] = clients;
    await joinEcho(a, 'echo:other', '9');
    await joinEcho(b, 'echo:other', '9');
    a.send('["9","10","echo:other","shout",{"only":"other"}]');
    await a.expectText('[null,null,"echo:other","shout",{"only":"other"}]');
    await a.expectText('["9","10","echo:other","phx_reply",{"response":{},"status":"ok"}]');
    await b.expectText('[null,null,"echo:other","shout",{"only":"other"}]');
    await c.expectNothing(200);
  });

  test('server alive', T, async () => {
    assert.ok(srv.alive());
    assert.equal((await fetch(srv.url('/healthz'))).status, 200);
  });
});
