'use strict';
// R7: one of three nodes is killed with SIGKILL under traffic. Six phoenix.js
// clients (two per node) view one group conversation (Phoenix Presence) and
// send messages all along (retrying with the same client_id, as clients do).
//
// Checked: the killed node's viewers disappear from the other nodes'
// Presence within the node timeout (plus slack), with no goodbye from it, and
// its users' contacts are told once that they went offline;
// its clients reconnect to the surviving nodes (the test plays the load
// balancer), rejoin user:<id> with the cursor they follow and come back in
// Presence exactly once; in the end every client has every acknowledged
// message exactly once (live, or replayed after its cursor on rejoin).

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { BASE_ENV, signup, api, waitForDatabase } = require('./lib/api');
const {
  startRedis, startCluster, waitClusterUp, stopAll, waitUntil, sleep, ChatClient, NODE_TIMEOUT_MS,
} = require('./lib/cluster');
const { slow } = require('./lib/server');

const T = { timeout: 120000 };

describe('R7: a node killed under traffic', () => {
  let redis;
  let nodes = [];
  const clients = [];
  let conv;

  before(async () => {
    await waitForDatabase();
    redis = await startRedis();
    nodes = await startCluster(3, { redis, name: 'cluster_r7', env: BASE_ENV });
    await waitClusterUp(nodes);
    for (let i = 0; i < 6; i++) {
      const u = await signup(nodes[i % 3]);
      clients.push(new ChatClient(u, `user${i}`));
    }
    const r = await api(nodes[0], 'POST', '/conversations', {
      token: clients[0].user.token,
      body: { kind: 'group', title: 'r7', member_ids: clients.slice(1).map((c) => c.user.id) },
    });
    assert.equal(r.status, 201, r.text);
    conv = r.json.conversation;
    for (const [i, c] of clients.entries()) {
      await c.bootstrap(nodes[i % 3]);
      await c.attach(nodes[i % 3], { conv: conv.id });
    }
  });
  after(async () => {
    for (const c of clients) c.detach();
    await stopAll(nodes);
    if (redis) await redis.stop();
  });

  const want = (cs) => JSON.stringify(Object.fromEntries(cs.map((c) => [c.user.id, 1]).sort()));
  const has = (c) => JSON.stringify(Object.fromEntries(Object.entries(c.viewers()).sort()));

  test('its clients move to the others and miss nothing; its presences disappear', T, async () => {
    for (const c of clients) await waitUntil(() => has(c) === want(clients), 5000, `${c.label} sees all 6 viewers`);

    const victim = nodes[2];
    const onVictim = clients.filter((c) => c.node === victim);
    const survivors = clients.filter((c) => c.node !== victim);
    const acked = new Set();
    const lost = [];
    let running = true;
    let n = 0;
    const loops = clients.map(async (c) => {
      while (running) {
        const cid = `r7-${process.pid}-${c.label}-${++n}`;
        // eslint-disable-next-line no-await-in-loop
        const id = await c.send(conv.id, cid, 50);
        if (id) acked.add(id); else lost.push(cid);
        // eslint-disable-next-line no-await-in-loop
        await sleep(150);
      }
    });

    await sleep(2000);
    const tKill = Date.now();
    await victim.stop({ signal: 'SIGKILL' });
    assert.equal(victim.exitInfo.signal, 'SIGKILL');

    // its viewers vanish from every survivor's Presence, no goodbye needed
    for (const c of survivors) {
      await waitUntil(() => has(c) === want(survivors), NODE_TIMEOUT_MS / slow() + 3000,
        `${c.label} dropping the dead node's viewers (has ${has(c)})`);
    }
    const vanishedMs = Date.now() - tKill;
    assert.ok(vanishedMs < NODE_TIMEOUT_MS + 3000 * slow(), `gone in ${vanishedMs} ms (node timeout ${NODE_TIMEOUT_MS} ms)`);
    for (const n2 of nodes.slice(0, 2)) {
      assert.ok(n2.logsMatching(/"msg":"redis_peer_down".*"peer":"node-c"/).length >= 1, `${n2.nodeId} declared node-c down`);
    }

    // their users went offline with the node: one survivor (the lowest-named) says so, once
    const offline = (c, v) => c.presenceEvents.filter((p) => p.user_id === v.user.id && p.online === false).length;
    for (const c of survivors) {
      for (const v of onVictim) await waitUntil(() => offline(c, v) >= 1, 5000, `${c.label} told ${v.label} is offline`);
    }
    await sleep(500);
    for (const c of survivors) for (const v of onVictim) assert.equal(offline(c, v), 1, `${c.label}: one offline for ${v.label}`);

    // the load balancer sends its clients to the survivors; they rejoin with their cursor
    for (const [k, c] of onVictim.entries()) {
      c.detach();
      await c.attach(nodes[k % 2], { conv: conv.id });
    }
    for (const c of clients) {
      await waitUntil(() => has(c) === want(clients), 5000, `${c.label} sees all 6 viewers again, once each (has ${has(c)})`);
    }

    await sleep(2000);
    running = false;
    await Promise.all(loops);
    await sleep(1500 * slow());

    assert.deepEqual(lost, [], 'every send was acknowledged (retried on another node if needed)');
    assert.ok(acked.size > 60, `messages sent throughout (${acked.size})`);
    for (const c of clients) {
      const dup = [...c.live].filter(([, k]) => k !== 1);
      assert.deepEqual(dup, [], `${c.label}: every message at most once`);
      const missing = [...acked].filter((id) => !c.live.has(id));
      assert.deepEqual(missing, [], `${c.label}: every acknowledged message (has ${c.live.size} of ${acked.size})`);
      const extra = [...c.live.keys()].filter((id) => !acked.has(id));
      assert.deepEqual(extra, [], `${c.label}: nothing that was not acknowledged`);
    }
    for (const n2 of nodes.slice(0, 2)) assert.ok(n2.alive(), `${n2.nodeId} still running`);
  });
});
