'use strict';
// Several Switchboard nodes on one private Redis, for the cluster_* suites.
//
//   const redis = await startRedis();             // its own redis-server on a free loopback port
//   const nodes = await startCluster(3, { redis, env });  // node-a, node-b, node-c, one shared secret
//   await waitClusterUp(nodes);                  // every node's /readyz says redis "ok" and sees its peers
//   await redis.stop(); await redis.start();     // an outage of THIS Redis only (same port)
//   await stopAll(nodes); await redis.stop();
//
// The shared Redis of the other suites (SB_TEST_REDIS_URL) is never touched:
// each file starts its own redis-server (no persistence) and kills only it.
// Every wait is bounded.

const { spawn, execFileSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const WebSocket = require('ws');
const { Socket, Presence } = require('phoenix');
const { startServer, slow, REPO } = require('./server');
const { pushResult } = require('./phx');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A free TCP port on 127.0.0.1 (bound then released). */
function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Sends one inline command to Redis and resolves with its first reply line (or null). */
function redisCommand(port, cmd, ms = 1000) {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    let buf = '';
    const done = (v) => { clearTimeout(t); sock.destroy(); resolve(v); };
    const t = setTimeout(() => done(null), ms);
    sock.on('connect', () => sock.write(`${cmd}\r\n`));
    sock.on('data', (d) => {
      buf += d.toString();
      const nl = buf.indexOf('\r\n');
      if (nl >= 0) done(buf.slice(0, nl));
    });
    sock.on('error', () => done(null));
  });
}

async function waitUntil(pred, ms, what) {
  const deadline = Date.now() + ms * slow();
  for (;;) {
    // eslint-disable-next-line no-await-in-loop
    const v = await pred();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timeout after ${ms * slow()} ms waiting for ${what}`);
    // eslint-disable-next-line no-await-in-loop
    await sleep(25);
  }
}

const ARTIFACTS = process.env.SB_E2E_ARTIFACTS || path.join(REPO, 'tests', 'artifacts', 'e2e');

/**
 * A private redis-server on a free loopback port (extra server `args`, e.g.
 * ['--requirepass', 'pw']); stop() kills it, start() brings it back on the
 * same port.
 */
async function startRedis({ args = [] } = {}) {
  const port = await freePort();
  const r = {
    port,
    url: `redis://127.0.0.1:${port}`,
    child: null,
    async start() {
      fs.mkdirSync(ARTIFACTS, { recursive: true });
      const log = fs.openSync(path.join(ARTIFACTS, `redis-${port}.log`), 'a');
      this.child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '',
        '--appendonly', 'no', '--daemonize', 'no', ...args], { stdio: ['ignore', log, log] });
      fs.closeSync(log);
      const child = this.child;
      this.exited = new Promise((res) => child.on('exit', res));
      await waitUntil(async () => /^(\+PONG|-NOAUTH)/.test((await redisCommand(port, 'PING')) || ''), 10000, `redis-server on ${port}`);
    },
    /** Kills this redis-server (SIGKILL: an outage, not a goodbye) and waits for its exit. */
    async stop() {
      if (!this.child || this.child.exitCode !== null || this.child.signalCode) return;
      this.child.kill('SIGKILL');
      await Promise.race([this.exited, sleep(5000)]);
      this.child = null;
    },
    command(cmd) { return redisCommand(port, cmd); },
  };
  await r.start();
  process.on('exit', () => { try { if (r.child) r.child.kill('SIGKILL'); } catch { /* gone */ } });
  return r;
}

/** How long a silent node stays up for the others in these suites (ms). */
const NODE_TIMEOUT_MS = 2000 * slow();

const NAMES = ['node-a', 'node-b', 'node-c', 'node-d', 'node-e'];

/** Starts n nodes on redis (one shared SB_SECRET), named node-a, node-b, ... */
async function startCluster(n, { redis, env = {}, name = 'cluster' } = {}) {
  const secret = crypto.randomBytes(24).toString('hex');
  const nodes = [];
  for (let i = 0; i < n; i++) {
    // eslint-disable-next-line no-await-in-loop
    nodes.push(await startNode({ redis, secret, id: NAMES[i], env, name }));
  }
  return nodes;
}

/** Starts one node of a cluster (also used to restart a killed one). */
async function startNode({ redis, secret, id, env = {}, name = 'cluster' }) {
  const srv = await startServer({
    name: `${name}-${id}`,
    env: {
      SB_SECRET: secret,
      SB_REDIS_URL: redis ? redis.url : undefined,
      SB_NODE_ID: id,
      SB_REDIS_HEARTBEAT_MS: '250',
      SB_REDIS_NODE_TIMEOUT_MS: String(NODE_TIMEOUT_MS),
      SB_REDIS_RETRY_MAX_MS: '500',
      ...env,
    },
  });
  srv.nodeId = id;
  srv.secret = secret;
  return srv;
}

/** GET /readyz on the admin port: {status, checks, bus} (null when unreachable). */
async function readyz(srv) {
  try {
    const r = await fetch(`http://127.0.0.1:${srv.adminPort}/readyz`, { signal: AbortSignal.timeout(2000) });
    return { httpStatus: r.status, ...(await r.json()) };
  } catch {
    return null;
  }
}

/** Waits until every live node reports redis "ok" and has heard every other node's heartbeat. */
async function waitClusterUp(nodes, ms = 15000) {
  const live = nodes.filter((n) => n.alive());
  await waitUntil(async () => {
    for (const n of live) {
      // eslint-disable-next-line no-await-in-loop
      const r = await readyz(n);
      if (!r || r.checks.redis !== 'ok') return false;
      const peers = live.filter((o) => o !== n).map((o) => o.nodeId);
      if (!peers.every((p) => n.lines.some((l) => l.obj && l.obj.msg === 'redis_peer_up' && l.obj.peer === p))) return false;
    }
    return true;
  }, ms, 'every node connected to Redis and seeing its peers');
}

async function stopAll(nodes) {
  await Promise.all(nodes.map((n) => n.stop().catch(() => {})));
}

/** A phoenix.js Socket to srv for token (ws transport, quick reconnects). */
function phxSocket(srv, token, opts = {}) {
  const socket = new Socket(srv.wsUrl('/socket'), {
    transport: WebSocket,
    params: { token },
    heartbeatIntervalMs: 30000,
    reconnectAfterMs: () => 200,
    rejoinAfterMs: () => 200,
    timeout: 5000 * slow(),
    ...opts,
  });
  socket.connect();
  return socket;
}

/** Joins a phoenix.js channel; resolves with the join response or rejects. */
function join(channel, ms = 5000) {
  return new Promise((resolve, reject) => {
    channel.join(ms * slow())
      .receive('ok', resolve)
      .receive('error', (r) => reject(new Error(`join ${channel.topic} refused: ${JSON.stringify(r)}`)))
      .receive('timeout', () => reject(new Error(`join ${channel.topic} timed out`)));
  });
}

/** psql one statement on the test database (for setup that has no REST route). */
function psql(url, sql) {
  return execFileSync('psql', [url, '-qtAXc', sql], { encoding: 'utf8', timeout: 10000 }).trim();
}

module.exports = {
  startRedis, startCluster, startNode, waitClusterUp, stopAll, readyz, phxSocket, join, NODE_TIMEOUT_MS,
  pushResult, waitUntil, sleep, freePort, psql,
};

/**
 * A chat user's client as the cluster suites drive it: one phoenix.js socket
 * to one node, user:<id> joined (message:new counted by id, the latest
 * cursor kept), an echo:<room> channel recording shouts, and catch-up
 * through GET /api/v1/sync from the cursor it follows.
 */
class ChatClient {
  constructor(user, label) {
    this.user = user;
    this.label = label;
    this.live = new Map(); // message id -> times received live
    this.synced = new Map(); // message id -> times received through /sync catch-up
    this.shouts = []; // {from, k}
    this.cursor = null;
    this.node = null;
    this.socket = null;
    this.closes = 0;
    this.presenceEvents = []; // `presence` pushes on user:<id>
  }

  /** Takes the current cursor from GET /api/v1/sync (before any traffic). */
  async bootstrap(node) {
    const r = await fetch(node.url('/api/v1/sync'), { headers: { authorization: `Bearer ${this.user.token}` } });
    const j = await r.json();
    if (!j.cursor) throw new Error(`${this.label}: no cursor from /sync: ${JSON.stringify(j)}`);
    this.cursor = j.cursor;
  }

  /**
   * Connects to node and joins user:<id> with the cursor it follows (the
   * server replays what came after it, then goes live), echo:<room> and
   * conversation:<conv> with phoenix.js Presence when given.
   */
  async attach(node, { room, conv } = {}) {
    this.node = node;
    this.socket = phxSocket(node, this.user.token, { reconnectAfterMs: () => 60000 });
    this.socket.onClose(() => { this.closes++; });
    this.userCh = this.socket.channel(`user:${this.user.id}`, () => (this.cursor ? { cursor: this.cursor } : {}));
    this.userCh.on('message:new', (p) => {
      const id = p.message.id;
      this.live.set(id, (this.live.get(id) || 0) + 1);
      if (p.cursor) this.cursor = p.cursor;
    });
    this.userCh.on('presence', (p) => { this.presenceEvents.push(p); });
    for (const ev of ['message:updated', 'message:deleted', 'receipt', 'conversation:updated']) {
      this.userCh.on(ev, (p) => { if (p.cursor) this.cursor = p.cursor; });
    }
    await join(this.userCh);
    if (room) {
      this.echoCh = this.socket.channel(`echo:${room}`, {});
      this.echoCh.on('shout', (p) => { if (p && p.from !== undefined) this.shouts.push({ from: p.from, k: p.k, at: Date.now() }); });
      await join(this.echoCh);
    }
    if (conv) {
      this.convCh = this.socket.channel(`conversation:${conv}`, {});
      this.presence = new Presence(this.convCh);
      await join(this.convCh);
    }
  }

  /** user id -> number of metas in its phoenix.js Presence. */
  viewers() {
    const out = {};
    if (this.presence) this.presence.list((id, { metas }) => { out[id] = metas.length; });
    return out;
  }

  /**
   * Sends a text message on its user channel, retrying with the same
   * client_id (idempotent) up to `tries` times; resolves with the message
   * id, or null when no attempt was acknowledged.
   */
  async send(convId, clientId, tries = 3) {
    for (let t = 0; t < tries; t++) {
      const ch = this.userCh;
      if (ch && ch.state === 'joined') {
        // eslint-disable-next-line no-await-in-loop
        const [st, resp] = await pushResult(ch.push('message:send', {
          conversation_id: convId, client_id: clientId, kind: 'text', body: clientId,
        }), 5000);
        if (st === 'ok') return resp.message.id;
      }
      // eslint-disable-next-line no-await-in-loop
      await sleep(200);
    }
    return null;
  }

  /** Drops the socket without waiting for anything (the node died). */
  detach() {
    if (this.socket) {
      this.socket.onClose(() => {});
      try { this.socket.disconnect(); } catch { /* gone */ }
    }
    this.socket = null;
  }

  /**
   * Reads every event after cursor `from` (default: the one it follows) from
   * node's /api/v1/sync, bounded pages. With the default it then follows the
   * cursor /sync returns; with an explicit `from` (a gap to fill after
   * moving to another node) its own cursor is left alone.
   */
  async catchUp(node, from) {
    const follow = from === undefined;
    let cur = follow ? this.cursor : from;
    for (let page = 0; page < 100; page++) {
      // eslint-disable-next-line no-await-in-loop
      const r = await fetch(node.url(`/api/v1/sync?cursor=${encodeURIComponent(cur)}&limit=500`), {
        headers: { authorization: `Bearer ${this.user.token}` },
      });
      // eslint-disable-next-line no-await-in-loop
      const j = await r.json();
      if (r.status !== 200) throw new Error(`${this.label}: /sync ${r.status} ${JSON.stringify(j)}`);
      for (const e of j.events) {
        if (e.type === 'message:new') this.synced.set(e.message.id, (this.synced.get(e.message.id) || 0) + 1);
      }
      cur = j.cursor;
      if (follow) this.cursor = cur;
      if (!j.has_more) return;
    }
    throw new Error(`${this.label}: /sync did not end in 100 pages`);
  }

  /** Every message id seen live or caught up. */
  all() { return new Set([...this.live.keys(), ...this.synced.keys()]); }
}

module.exports.ChatClient = ChatClient;
