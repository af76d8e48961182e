'use strict';
// The compose stack's load balancer exercised for real (issue 18, R7, R6):
// deploy/haproxy.cfg, unchanged except for the nodes' addresses and ports and
// the bind port, runs on loopback in front of two server processes sharing a
// Redis and the test Postgres. phoenix.js clients connect through it over
// WebSocket and long-poll, joined to user:<id> with the cursor they follow,
// while a sender posts to their group conversation through it.
//   1. one node SIGKILLed: every client reconnects through the balancer to
//      the other node and, in the end, has every acknowledged message once;
//   2. the killed node restarted on its ports (the balancer's health check
//      on /readyz brings it back), then the other node, holding everyone,
//      drained by SIGTERM: the 1001 closes are spread over SB_DRAIN_MS, every
//      client is back on the restarted node, nothing is lost, exit 0.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const WebSocket = require('ws');
const { Socket, LongPoll } = require('phoenix');
const { BASE_ENV, signup, api, waitForDatabase } = require('./lib/api');
const { startRedis, startCluster, startNode, waitClusterUp, stopAll, waitUntil, sleep, freePort } = require('./lib/cluster');
const { slow, REPO } = require('./lib/server');

const T = { timeout: 240000 };
const DRAIN_MS = 3000;
const N_WS = 10;
const N_LP = 6;

/** Established TCP connections whose local port is `port` (the server side
 * of the balancer's connections to a node), from /proc/net/tcp{,6}. */
function established(port) {
  let n = 0;
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  for (const f of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try { text = fs.readFileSync(f, 'utf8'); } catch { continue; }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length > 3 && cols[1].endsWith(`:${hex}`) && cols[3] === '01') n++;
    }
  }
  return n;
}

/** deploy/haproxy.cfg with only the addresses/ports of the two nodes and the bind port rewritten. */
function balancerConfig(nodes, port) {
  const src = fs.readFileSync(path.join(REPO, 'deploy', 'haproxy.cfg'), 'utf8');
  let changes = 0;
  let out = src.replace(/^(\s*bind\s+):80$/m, (_, a) => { changes++; return `${a}127.0.0.1:${port}`; });
  out = out.replace(/switchboard-([12]):4000 check port 4001/g, (_, i) => {
    changes++;
    const n = nodes[Number(i) - 1];
    return `127.0.0.1:${n.port} check port ${n.adminPort}`;
  });
  assert.equal(changes, 5, 'the bind line and four server lines rewritten');
  assert.equal(out.split('\n').length, src.split('\n').length);
  return out;
}

/** A phoenix.js client through the balancer, following its user's cursor. */
class Client {
  constructor(user, lbPort, transport, label) {
    Object.assign(this, { user, label, transport, lbPort });
    this.msgs = new Map(); // message id -> times received
    this.closes = []; // {code, at}
    this.cursor = null;
  }

  async start() {
    const r = await fetch(`http://127.0.0.1:${this.lbPort}/api/v1/sync`, { headers: { authorization: `Bearer ${this.user.token}` } });
    this.cursor = (await r.json()).cursor;
    assert.ok(this.cursor, `${this.label}: a cursor`);
    this.socket = new Socket(`ws://127.0.0.1:${this.lbPort}/socket`, {
      transport: this.transport === 'ws' ? WebSocket : LongPoll,
      params: { token: this.user.token },
      heartbeatIntervalMs: 5000,
      // phoenix.js's default back-off, shortened for the test
      reconnectAfterMs: (tries) => [50, 100, 200, 500, 1000][tries - 1] || 1000,
      rejoinAfterMs: (tries) => [100, 300, 1000][tries - 1] || 1000,
      timeout: 5000 * slow(),
      longpollerTimeout: 20000 * slow(),
    });
    this.socket.onClose((e) => { this.closes.push({ code: e && e.code, at: Date.now() }); });
    this.socket.connect();
    this.ch = this.socket.channel(`user:${this.user.id}`, () => ({ cursor: this.cursor }));
    this.ch.on('message:new', (p) => {
      this.msgs.set(p.message.id, (this.msgs.get(p.message.id) || 0) + 1);
      if (p.cursor) this.cursor = p.cursor;
    });
    for (const ev of ['message:updated', 'message:deleted', 'receipt', 'conversation:updated']) {
      this.ch.on(ev, (p) => { if (p && p.cursor) this.cursor = p.cursor; });
    }
    await new Promise((resolve, reject) => {
      this.ch.join(10000 * slow()).receive('ok', resolve)
        .receive('error', (e) => reject(new Error(`${this.label} join: ${JSON.stringify(e)}`)))
        .receive('timeout', () => reject(new Error(`${this.label} join timed out`)));
    });
  }

  joined() { return this.ch.state === 'joined' && this.socket.isConnected(); }
  stop() { try { this.socket.disconnect(); } catch { /* gone */ } }
}

describe('the compose balancer (deploy/haproxy.cfg) in front of two nodes', () => {
  let redis;
  let nodes = [];
  let haproxy;
  let lbPort;
  let cfgDir;
  const clients = [];
  let conv;
  let sender;
  const acked = new Set();
  const failed = [];
  let sending = false;
  let senderLoop;
  const env = { ...BASE_ENV, SB_TRUSTED_PROXIES: '127.0.0.1', SB_DRAIN_MS: String(DRAIN_MS), SB_SHUTDOWN_MS: '8000' };

  before(async () => {
    await waitForDatabase();
    redis = await startRedis();
    nodes = await startCluster(2, { redis, name: 'balancer', env });
    await waitClusterUp(nodes);
    lbPort = await freePort();
    cfgDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-lb-'));
    const cfg = path.join(cfgDir, 'haproxy.cfg');
    fs.writeFileSync(cfg, balancerConfig(nodes, lbPort));
    execFileSync('haproxy', ['-c', '-q', '-f', cfg]);
    const logDir = path.join(REPO, 'tests', 'artifacts', 'e2e');
    fs.mkdirSync(logDir, { recursive: true });
    const log = fs.openSync(path.join(logDir, `haproxy-${lbPort}.log`), 'a');
    haproxy = spawn('haproxy', ['-db', '-f', cfg], { stdio: ['ignore', log, log] });
    fs.closeSync(log);
    haproxy.exited = new Promise((r) => haproxy.on('exit', r));
    await waitUntil(async () => {
      try { return (await fetch(`http://127.0.0.1:${lbPort}/healthz`)).status === 200; } catch { return false; }
    }, 10000, 'the balancer answering');

    const lbNode = { url: (p) => `http://127.0.0.1:${lbPort}${p}` };
    sender = await signup(lbNode);
    const users = [];
    for (let i = 0; i < N_WS + N_LP; i++) users.push(await signup(lbNode));
    const r = await api(lbNode, 'POST', '/conversations', { token: sender.token, body: { kind: 'group', title: 'lb', member_ids: users.map((u) => u.id) } });
    assert.equal(r.status, 201, r.text);
    conv = r.json.conversation;
    for (const [i, u] of users.entries()) {
      const c = new Client(u, lbPort, i < N_WS ? 'ws' : 'lp', `${i < N_WS ? 'ws' : 'lp'}${i}`);
      await c.start();
      clients.push(c);
    }
    // the sender posts through the balancer all along, retrying with the same client_id
    let k = 0;
    sending = true;
    senderLoop = (async () => {
      while (sending) {
        const cid = `lb-${process.pid}-${++k}`;
        let id = null;
        for (let t = 0; t < 20 && !id; t++) {
          try {
            const s = await api(lbNode, 'POST', `/conversations/${conv.id}/messages`, { token: sender.token, body: { client_id: cid, kind: 'text', body: cid } });
            if (s.status === 200 || s.status === 201) id = s.json.message.id;
          } catch { /* the balancer had no node for a moment */ }
          if (!id) await sleep(100);
        }
        if (id) acked.add(id); else failed.push(cid);
        await sleep(100);
      }
    })();
  });

  after(async () => {
    sending = false;
    if (senderLoop) await senderLoop;
    for (const c of clients) c.stop();
    if (haproxy) { haproxy.kill('SIGTERM'); await Promise.race([haproxy.exited, sleep(3000)]); }
    await stopAll(nodes);
    if (redis) await redis.stop();
    if (cfgDir) fs.rmSync(cfgDir, { recursive: true, force: true });
  });

  /** Every client has every acknowledged message, once. */
  async function nothingMissed(what) {
    const ids = [...acked];
    assert.ok(ids.length > 10, `messages were sent (${ids.length})`);
    await waitUntil(() => clients.every((c) => ids.every((id) => c.msgs.has(id))), 30000,
      `${what}: every client has all ${ids.length} acknowledged messages (short: ${clients.filter((c) => !ids.every((id) => c.msgs.has(id))).map((c) => c.label)})`);
    for (const c of clients) {
      const dup = [...c.msgs].filter(([, n]) => n !== 1);
      assert.deepEqual(dup, [], `${c.label}: each message once`);
    }
    assert.deepEqual(failed, [], 'every send was acknowledged through the balancer');
  }

  test('R7: one node SIGKILLed; every client reconnects through the balancer to the other and misses nothing', T, async () => {
    const [n1, n2] = nodes;
    await waitUntil(() => established(n1.port) >= 1 && established(n2.port) >= 1, 10000, 'WebSockets on both nodes');
    const onVictim = established(n2.port);
    await sleep(1000);
    await n2.stop({ signal: 'SIGKILL' });
    const moved = () => clients.filter((c) => c.closes.length > 0 || c.transport === 'lp');
    await sleep(2000); // traffic goes on meanwhile
    await waitUntil(() => clients.every((c) => c.joined()), 30000, 'every client joined again');
    assert.ok(onVictim >= 1 && moved().length >= 1);
    assert.ok(clients.filter((c) => c.transport === 'ws' && c.closes.length > 0).length >= 1, 'some WebSocket clients were on the killed node');
    const before = acked.size;
    await waitUntil(() => acked.size >= before + 10, 15000, 'sending goes on through the balancer');
    await nothingMissed('after the kill');
    await waitUntil(() => established(n1.port) >= N_WS, 10000, `all ${N_WS} WebSockets on the surviving node`);
  });

  test('R6: the node holding every client drained by SIGTERM; closes spread over SB_DRAIN_MS, all back on the other node, nothing lost', T, async () => {
    const [n1, dead] = nodes;
    // the killed node restarts on its ports; the balancer's /readyz check brings it back
    const n2 = await startNode({ redis, secret: n1.secret, id: dead.nodeId, name: 'balancer', env: { ...env, SB_PORT: String(dead.port), SB_ADMIN_PORT: String(dead.adminPort) } });
    nodes[1] = n2;
    await waitClusterUp(nodes);
    await waitUntil(async () => {
      const ws = new WebSocket(`ws://127.0.0.1:${lbPort}/socket/websocket?vsn=2.0.0&token=${encodeURIComponent(clients[0].user.token)}`);
      const ok = await new Promise((res) => { ws.on('open', () => res(true)); ws.on('error', () => res(false)); });
      const there = ok && established(n2.port) >= 1;
      ws.terminate();
      return there;
    }, 15000, 'the balancer sending new sockets to the restarted node');
    assert.ok(established(n1.port) >= N_WS, 'everyone still on the surviving node');

    const wsClients = clients.filter((c) => c.transport === 'ws');
    const closesBefore = new Map(wsClients.map((c) => [c, c.closes.length]));
    const t0 = Date.now();
    process.kill(n1.pid, 'SIGTERM');
    await waitUntil(() => wsClients.every((c) => c.closes.length > closesBefore.get(c)), 15000, 'every WebSocket client closed by the draining node');
    const closes = wsClients.map((c) => c.closes[closesBefore.get(c)]);
    assert.deepEqual([...new Set(closes.map((c) => c.code))], [1001], 'closed with 1001');
    const at = closes.map((c) => c.at - t0).sort((a, b) => a - b);
    assert.ok(at[0] < DRAIN_MS * 0.4, `first close at ${at[0]} ms (${at})`);
    assert.ok(at[at.length - 1] >= DRAIN_MS * 0.6, `the closes are spread over the window, not all at once: ${at} ms`);
    const exit = await Promise.race([n1.exited, sleep(10000 * slow()).then(() => null)]);
    assert.ok(exit && exit.code === 0, `drained node exit ${JSON.stringify(exit)}`);
    assert.ok(exit.at - t0 <= 10000 * slow(), `exited ${exit.at - t0} ms after SIGTERM`);
    await waitUntil(() => clients.every((c) => c.joined()), 30000, 'every client joined again');
    await waitUntil(() => established(n2.port) >= N_WS, 15000, `all ${N_WS} WebSockets on the restarted node`);
    const before = acked.size;
    await waitUntil(() => acked.size >= before + 10, 15000, 'sending goes on through the balancer');
    sending = false;
    await senderLoop;
    await nothingMissed('after the drain');
  });
});
