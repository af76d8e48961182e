'use strict';
// Three nodes on a private Redis: broadcasts from any node reach every
// subscriber on every node exactly once and in order (a node serves its own
// subscribers first and ignores its own publications), binary broadcasts
// too; Redis subscriptions follow demand (one per node with local
// subscribers, gone when they leave); a logout on one node closes the
// session's sockets on another; /readyz reports Redis. And a node without
// SB_REDIS_URL runs alone, no Redis involved.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startServer } = require('./lib/server');
const { Client, joinEcho, closeAll } = require('./lib/frames');
const { binPush, binBroadcast, socketPath } = require('./lib/phx');
const {
  startRedis, startCluster, startNode, waitClusterUp, stopAll, readyz, waitUntil, sleep, join,
} = require('./lib/cluster');

const T = { timeout: 60000 };
const PER_NODE = 3;

describe('cluster bus: 3 nodes, one private Redis', () => {
  let redis;
  let nodes = [];
  let clients = []; // PER_NODE per node, node i's clients at [i*PER_NODE ..]

  before(async () => {
    redis = await startRedis();
    nodes = await startCluster(3, { redis, name: 'cluster_bus' });
    await waitClusterUp(nodes);
    for (const [i, n] of nodes.entries()) {
      for (let k = 0; k < PER_NODE; k++) {
        // eslint-disable-next-line no-await-in-loop
        const c = await Client.open(n.wsUrl(socketPath({ token: n.token(`u${i}-${k}`) })));
        c.node = i;
        clients.push(c);
      }
    }
  });
  after(async () => {
    closeAll(clients);
    await stopAll(nodes);
    if (redis) await redis.stop();
  });

  async function numsub(topic) {
    const out = await new Promise((resolve) => {
      const net = require('node:net');
      const s = net.connect(redis.port, '127.0.0.1');
      let buf = '';
      const t = setTimeout(() => { s.destroy(); resolve(''); }, 2000);
      s.on('connect', () => s.write(`PUBSUB NUMSUB sb:t:${topic}\r\n`));
      s.on('data', (d) => {
        buf += d;
        if (/:\d+\r\n$/.test(buf)) { clearTimeout(t); s.destroy(); resolve(buf); }
      });
      s.on('error', () => { clearTimeout(t); resolve(''); });
    });
    const m = out.match(/:(\d+)\r\n$/);
    return m ? Number(m[1]) : -1;
  }

  test('/readyz reports redis ok and the bus counters', T, async () => {
    for (const n of nodes) {
      const r = await readyz(n);
      assert.equal(r.httpStatus, 200);
      assert.equal(r.status, 'ok');
      assert.equal(r.checks.redis, 'ok');
      assert.equal(r.bus.node, n.nodeId);
      assert.equal(typeof r.bus.published, 'number');
    }
  });

  test('subscriptions follow demand: one Redis subscriber per node with local subscribers', T, async () => {
    assert.equal(await numsub('echo:room'), 0, 'nobody subscribed yet');
    for (const c of clients) await joinEcho(c, 'echo:room', '1');
    await waitUntil(async () => (await numsub('echo:room')) === 3, 5000, 'NUMSUB echo:room = 3');
    // every client of node-c leaves: node-c unsubscribes, the others stay
    const ofC = clients.filter((c) => c.node === 2);
    for (const c of ofC) {
      c.send('["1","9","echo:room","phx_leave",{}]');
      await c.expectText('["1","9","echo:room","phx_reply",{"response":{},"status":"ok"}]');
      await c.expectText('["1","1","echo:room","phx_close",{}]');
    }
    await waitUntil(async () => (await numsub('echo:room')) === 2, 5000, 'NUMSUB echo:room = 2 after node-c left');
    // one joins again: subscribed again
    for (const c of ofC) await joinEcho(c, 'echo:room', '1');
    await waitUntil(async () => (await numsub('echo:room')) === 3, 5000, 'NUMSUB echo:room = 3 again');
    // a burst of 200 topics joined and left by one client: subscribed, then all gone
    const c = clients[0];
    for (let k = 0; k < 200; k++) c.send(`["j${k}","j${k}","echo:burst${k}","phx_join",{}]`);
    for (let k = 0; k < 200; k++) await c.next(5000);
    await waitUntil(async () => (await numsub('echo:burst199')) === 1 && (await numsub('echo:burst0')) === 1, 5000, 'burst topics subscribed');
    for (let k = 0; k < 200; k++) c.send(`["j${k}","l${k}","echo:burst${k}","phx_leave",{}]`);
    for (let k = 0; k < 400; k++) await c.next(5000); // reply + close each
    await waitUntil(async () => (await numsub('echo:burst199')) === 0 && (await numsub('echo:burst0')) === 0, 5000, 'burst topics unsubscribed');
  });

  test('every client on every node shouts once: each gets all 9 broadcasts exactly once', T, async () => {
    const N = clients.length;
    clients.forEach((c, i) => c.send(`["1","s${i}","echo:room","shout",{"from":${i}}]`));
    await Promise.all(clients.map(async (c, i) => {
      const reply = `["1","s${i}","echo:room","phx_reply",{"response":{},"status":"ok"}]`;
      const froms = [];
      let replies = 0;
      for (let k = 0; k < N + 1; k++) {
        const f = await c.next(8000);
        assert.equal(f.type, 'text', `client ${i}: ${JSON.stringify(f)}`);
        if (f.data === reply) { replies++; continue; }
        const m = f.data.match(/^\[null,null,"echo:room","shout",\{"from":(\d+)\}\]$/);
        assert.ok(m, `client ${i}: unexpected frame ${f.data}`);
        froms.push(Number(m[1]));
      }
      assert.equal(replies, 1, `client ${i}: its own reply once`);
      assert.deepEqual(froms.sort((a, b) => a - b), [...Array(N).keys()], `client ${i} (node ${c.node}): each shout exactly once`);
    }));
    await sleep(500);
    for (const c of clients) await c.expectNothing(0);
  });

  test('200 back-to-back shouts from node-a arrive on nodes b and c in order, once', T, async () => {
    const sender = clients[0];
    for (let k = 0; k < 200; k++) sender.send(`["1","b${k}","echo:room","shout",{"k":${k}}]`);
    await Promise.all(clients.filter((c) => c.node !== 0).map(async (c) => {
      for (let k = 0; k < 200; k++) {
        await c.expectText(`[null,null,"echo:room","shout",{"k":${k}}]`, 8000);
      }
    }));
    for (let k = 0; k < 400; k++) await sender.next(8000);
    for (const c of clients.filter((x) => x.node === 0 && x !== sender)) {
      for (let k = 0; k < 200; k++) await c.expectText(`[null,null,"echo:room","shout",{"k":${k}}]`, 8000);
    }
    await sleep(300);
    for (const c of clients) await c.expectNothing(0);
  });

  test('a long-poll client (phoenix.js LongPoll) on node-c gets a shout from node-a, once', T, async () => {
    const { Socket, LongPoll } = require('phoenix');
    const socket = new Socket(nodes[2].wsUrl('/socket'), {
      transport: LongPoll, params: { token: nodes[2].token('lp') }, reconnectAfterMs: () => 200, longpollerTimeout: 20000,
    });
    try {
      socket.connect();
      const ch = socket.channel('echo:room', {});
      const got = [];
      ch.on('shout', (p) => got.push(p));
      await join(ch);
      await waitUntil(async () => (await numsub('echo:room')) === 3, 5000, 'still 3 nodes following');
      clients[0].send('["1","lp1","echo:room","shout",{"lp":1}]');
      await waitUntil(() => got.length >= 1, 5000, 'long-poll client got the shout');
      await sleep(500);
      assert.deepEqual(got, [{ lp: 1 }]);
      for (const c of clients) {
        await c.expectText('[null,null,"echo:room","shout",{"lp":1}]', 5000);
        if (c === clients[0]) await c.expectText('["1","lp1","echo:room","phx_reply",{"response":{},"status":"ok"}]', 5000);
        await c.expectNothing(0);
      }
    } finally {
      socket.disconnect();
    }
  });

  test('a binary broadcast crosses nodes (V2 binary, kind 2)', T, async () => {
    const sender = clients[PER_NODE]; // node-b
    sender.send(binPush('1', '77', 'echo:room', 'shout', Buffer.from([0x0a, 0x0b, 0x00, 0xff])));
    const expected = binBroadcast('echo:room', 'shout', Buffer.from([0x0a, 0x0b, 0x00, 0xff]));
    await Promise.all(clients.map(async (c) => {
      let got = null;
      for (let k = 0; k < 3 && !got; k++) {
        const f = await c.next(5000);
        if (f.type === 'binary') got = f.data;
      }
      assert.ok(got, `node ${c.node}: binary broadcast received`);
      assert.equal(got.toString('hex'), expected.toString('hex'));
    }));
    await sleep(300);
    for (const c of clients) { while (c.queue.length) { const f = c.queue.shift(); assert.equal(f.type, 'text', 'only the sender reply may remain'); } }
  });
});

describe('two processes under one SB_NODE_ID', () => {
  test('both log redis_duplicate_node_id (they would ignore each other)', T, async () => {
    const redis = await startRedis();
    const secret = 'd'.repeat(40);
    const a = await startNode({ redis, secret, id: 'twin', name: 'cluster_twin' });
    const b = await startNode({ redis, secret, id: 'twin', name: 'cluster_twin' });
    try {
      for (const n of [a, b]) {
        await waitUntil(() => n.logsMatching(/"msg":"redis_duplicate_node_id"/).length > 0, 5000, 'duplicate node id logged');
      }
    } finally {
      await stopAll([a, b]);
      await redis.stop();
    }
  });
});

describe('a node started before its Redis', () => {
  test('serves alone, reports redis down, connects once Redis appears', T, async () => {
    const redis = await startRedis();
    await redis.stop(); // the port is known, nothing listens on it
    const n = await startNode({ redis, secret: 'e'.repeat(40), id: 'early', name: 'cluster_early' });
    try {
      const r = await waitUntil(async () => { const x = await readyz(n); return x && x.checks.redis === 'down' && x.httpStatus === 200 && x; }, 10000, 'redis down, database up');
      assert.equal(r.status, 'degraded');
      await sleep(1500); // a few failed attempts
      await redis.start();
      await waitUntil(async () => { const x = await readyz(n); return x && x.checks.redis === 'ok'; }, 10000, 'redis ok once it runs');
    } finally {
      await n.stop();
      await redis.stop();
    }
  });
});

describe('Redis with a password', () => {
  test('the URL\'s password authenticates; a wrong one is logged and retried, never crashes', T, async () => {
    const redis = await startRedis({ args: ['--requirepass', 's3cret pw'] });
    const good = { ...redis, url: `redis://:s3cret%20pw@127.0.0.1:${redis.port}` };
    const bad = { ...redis, url: `redis://:wrong@127.0.0.1:${redis.port}` };
    const a = await startNode({ redis: good, secret: 'f'.repeat(40), id: 'auth-ok', name: 'cluster_auth' });
    const b = await startNode({ redis: bad, secret: 'f'.repeat(40), id: 'auth-bad', name: 'cluster_auth' });
    try {
      await waitUntil(async () => { const x = await readyz(a); return x && x.checks.redis === 'ok'; }, 10000, 'authenticated node up');
      await waitUntil(() => b.logsMatching(/"msg":"redis_auth_failed"/).length > 0, 10000, 'auth failure logged');
      await sleep(1000);
      const r = await readyz(b);
      assert.equal(r.checks.redis, 'down');
      assert.ok(b.alive(), 'still running');
      const attempts = b.logsMatching(/"msg":"redis_connected"/).length;
      assert.ok(attempts < 30, `reconnects back off (${attempts} connections in ~2 s)`);
      assert.ok(b.logsMatching(/"msg":"redis_auth_failed"/).length <= 2, 'the failure is logged, not once per attempt');
    } finally {
      await stopAll([a, b]);
      await redis.stop();
    }
  });
});

describe('single node, no Redis configured', () => {
  let srv;
  before(async () => { srv = await startServer({ name: 'cluster_single', env: { SB_REDIS_URL: '' } }); });
  after(async () => { if (srv) await srv.stop(); });

  test('serves broadcasts and reports redis not_configured', T, async () => {
    // ready once its database pool connected (no Redis involved)
    const r = await waitUntil(async () => { const x = await readyz(srv); return x && x.httpStatus === 200 && x; }, 10000, '/readyz 200');
    assert.equal(r.status, 'ok');
    assert.equal(r.checks.redis, 'not_configured');
    assert.equal(r.bus, undefined);
    const listening = srv.lines.find((l) => l.obj && l.obj.msg === 'listening');
    assert.equal(listening.obj.cluster, false);
    const a = await Client.open(srv.wsUrl(socketPath({ token: srv.token('a') })));
    const b = await Client.open(srv.wsUrl(socketPath({ token: srv.token('b') })));
    try {
      await joinEcho(a, 'echo:solo', '1');
      await joinEcho(b, 'echo:solo', '1');
      a.send('["1","2","echo:solo","shout",{"x":1}]');
      await b.expectText('[null,null,"echo:solo","shout",{"x":1}]');
      await a.expectText('[null,null,"echo:solo","shout",{"x":1}]');
      await a.expectText('["1","2","echo:solo","phx_reply",{"response":{},"status":"ok"}]');
      await b.expectNothing(300);
    } finally {
      closeAll([a, b]);
    }
  });
});
