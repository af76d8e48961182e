'use strict';
// R3: the cluster's Redis (a private redis-server started by this file, never
// the shared one) is killed for 10 s under traffic, then restarted on the
// same port. Three nodes, six phoenix.js clients (two per node), one group
// conversation; every 100 ms one sender per node shouts on echo:r3 (the
// ephemeral, Redis-carried path) and every 300 ms sends a message (the
// durable path: Postgres and each node's tailer).
//
// Checked: no node crashes; /readyz says redis "down" (status "degraded",
// still 200) during the outage and "ok" after; Phoenix Presence on the
// conversation lists every node's viewers exactly once again after the
// outage, by itself; same-node shouts never stop
// (every one arrives exactly once); cross-node shouts resume by themselves
// once Redis is back (the last ones of every sender reach every client) and
// are never doubled; every client, following its cursor, ends with every
// acknowledged message, each received live at most once.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { BASE_ENV, signup, api, waitForDatabase } = require('./lib/api');
const {
  startRedis, startCluster, waitClusterUp, stopAll, readyz, waitUntil, sleep, pushResult, ChatClient,
} = require('./lib/cluster');
const { slow } = require('./lib/server');

const T = { timeout: 180000 };

describe('R3: Redis stopped for 10 s under traffic', () => {
  let redis;
  let nodes = [];
  const clients = [];
  let conv;

  before(async () => {
    await waitForDatabase();
    redis = await startRedis();
    nodes = await startCluster(3, { redis, name: 'cluster_r3', env: BASE_ENV });
    await waitClusterUp(nodes);
    for (let i = 0; i < 6; i++) {
      const u = await signup(nodes[i % 3]);
      clients.push(new ChatClient(u, `user${i}@${nodes[i % 3].nodeId}`));
    }
    const r = await api(nodes[0], 'POST', '/conversations', {
      token: clients[0].user.token,
      body: { kind: 'group', title: 'r3', member_ids: clients.slice(1).map((c) => c.user.id) },
    });
    assert.equal(r.status, 201, r.text);
    conv = r.json.conversation;
    for (const [i, c] of clients.entries()) {
      await c.bootstrap(nodes[i % 3]);
      await c.attach(nodes[i % 3], { room: 'r3', conv: conv.id });
    }
  });
  after(async () => {
    for (const c of clients) c.detach();
    await stopAll(nodes);
    if (redis) await redis.stop();
  });

  test('same-node delivery never stops, cross-node resumes, cursors catch up', T, async () => {
    const senders = [0, 1, 2].map((i) => clients[i]); // one per node
    const sent = senders.map(() => []); // per sender: {k, at}
    const acked = new Set();
    const failedSends = [];
    let running = true;
    let seq = 0;

    const shoutLoop = (async () => {
      for (let k = 0; running; k++) {
        senders.forEach((s, i) => {
          s.echoCh.push('shout', { from: i, k });
          sent[i].push({ k, at: Date.now() });
        });
        await sleep(100);
      }
    })();
    const sendLoop = (async () => {
      while (running) {
        await Promise.all(senders.map(async (s) => {
          const client_id = `r3-${process.pid}-${++seq}`;
          const [st, resp] = await pushResult(s.userCh.push('message:send', {
            conversation_id: conv.id, client_id, kind: 'text', body: client_id,
          }), 10000);
          if (st === 'ok') acked.add(resp.message.id);
          else failedSends.push([st, resp]);
        }));
        await sleep(300);
      }
    })();

    await sleep(2000);
    const tStop = Date.now();
    await redis.stop();
    // every node notices and says so, without going unready
    await waitUntil(async () => {
      const rs = await Promise.all(nodes.map(readyz));
      return rs.every((r) => r && r.checks.redis === 'down' && r.status === 'degraded' && r.httpStatus === 200);
    }, 5000, 'every /readyz reporting redis down');
    await sleep(Math.max(0, 10000 - (Date.now() - tStop)));
    await redis.start();
    await waitUntil(async () => {
      const rs = await Promise.all(nodes.map(readyz));
      return rs.every((r) => r && r.checks.redis === 'ok' && r.status === 'ok');
    }, 15000, 'every /readyz reporting redis ok again');
    const tUp = Date.now();
    // cross-node shouts flow again by themselves: each client hears each other node's sender
    await waitUntil(() => clients.every((c, ci) => senders.every((s, si) => si === ci % 3
      || c.shouts.some((x) => x.from === si && sent[si].find((y) => y.k === x.k).at > tUp))), 10000,
    'cross-node shouts sent after the restart reaching every client');
    // Phoenix Presence heals by itself: the other nodes' viewers (dropped while
    // their heartbeats were silent) are listed again, each exactly once
    const all = JSON.stringify(Object.fromEntries(clients.map((c) => [c.user.id, 1]).sort()));
    const seen = (c) => JSON.stringify(Object.fromEntries(Object.entries(c.viewers()).sort()));
    for (const c of clients) await waitUntil(() => seen(c) === all, 10000, `${c.label}: all 6 viewers again (has ${seen(c)})`);
    await sleep(2000);
    running = false;
    await shoutLoop;
    await sendLoop;
    await sleep(1500 * slow());

    for (const n of nodes) assert.ok(n.alive(), `${n.nodeId} still running`);
    assert.deepEqual(failedSends, [], 'no message:send failed (Redis is not on the durable path)');
    assert.ok(acked.size > 40, `messages were sent throughout (${acked.size})`);

    for (const [ci, c] of clients.entries()) {
      for (const [si] of senders.entries()) {
        const ks = c.shouts.filter((x) => x.from === si).map((x) => x.k);
        assert.equal(new Set(ks).size, ks.length, `${c.label}: no shout of sender ${si} twice`);
        const total = sent[si].length;
        if (si === ci % 3) {
          // same node: every single shout, outage or not
          assert.deepEqual(ks, [...Array(total).keys()], `${c.label}: every shout of same-node sender ${si}, in order`);
        } else {
          // cross node: everything from 1 s after the restart on
          const want = sent[si].filter((x) => x.at > tUp + 1000).map((x) => x.k);
          assert.ok(want.length >= 10, 'traffic continued after the restart');
          const got = new Set(ks);
          const missing = want.filter((k) => !got.has(k));
          assert.deepEqual(missing, [], `${c.label}: shouts of node ${si} after the restart`);
        }
      }
    }

    // durable path: every acknowledged message, live at most once, the rest through the cursor
    for (const c of clients) {
      for (const [id, n] of c.live) assert.equal(n, 1, `${c.label}: message ${id} live once`);
      await c.catchUp(c.node);
      const missing = [...acked].filter((id) => !c.all().has(id));
      assert.deepEqual(missing, [], `${c.label}: every acknowledged message (live ${c.live.size}, synced ${c.synced.size})`);
      for (const id of c.synced.keys()) assert.ok(!c.live.has(id), `${c.label}: ${id} not both live and after the cursor`);
    }

    // the nodes saw the outage and the recovery
    for (const n of nodes) {
      assert.ok(n.logsMatching(/"msg":"redis_disconnected"/).length >= 1, `${n.nodeId} logged the disconnect`);
      assert.ok(n.logsMatching(/"msg":"redis_bus_up"/).length >= 2, `${n.nodeId} came up twice`);
    }
  });
});
