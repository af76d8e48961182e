'use strict';
// Helpers for the reconnect-storm suite (R8): many phoenix.js clients spread
// over loopback addresses, each following its user:<id> cursor, and a
// sampler that watches a node's Postgres connections while the storm runs.
//
//   const { StormClient, pgWatch, pmap, withAppName } = require('./lib/storm');
//   const c = new StormClient(user, srv.wsUrl('/socket'), '127.0.0.7'); c.start();
//   const w = pgWatch('sb-r8-a'); ... const stats = await w.stop();
//
// Every wait is bounded.

const WebSocket = require('ws');
const { Socket } = require('phoenix');
const { Psql } = require('./sync_db');
const { slow } = require('./server');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A ws WebSocket class whose connections leave from `localAddress`
 * (phoenix.js calls `new transport(url, protocols)`; ws takes the source
 * address as an option). One class per address. */
const transports = new Map();
function localTransport(localAddress) {
  if (!transports.has(localAddress)) {
    transports.set(localAddress, class LocalWebSocket extends WebSocket {
      constructor(url, protocols) { super(url, protocols, { localAddress }); }
    });
  }
  return transports.get(localAddress);
}

/** A database URL with `application_name` set, so a node's connections can
 * be told apart in pg_stat_activity (libpq: the URL's setting wins). */
function withAppName(url, name) {
  return `${url}${url.includes('?') ? '&' : '?'}application_name=${encodeURIComponent(name)}`;
}

/** Runs fn over items, `conc` at a time; resolves with the results in order. */
async function pmap(items, conc, fn) {
  const out = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      // eslint-disable-next-line no-await-in-loop
      out[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(conc, items.length) }, worker));
  return out;
}

const DURABLE = ['message:new', 'message:updated', 'message:deleted', 'receipt',
  'conversation:updated', 'conversation:removed'];

/**
 * One user's phoenix.js client as the web client runs it: a Socket with
 * phoenix.js's own reconnect and rejoin schedules (no jitter), user:<id>
 * joined with the last cursor it saw (params closure), every durable event
 * recorded. Records every join reply (time, status, reason), every socket
 * open and every transport error (a refused upgrade shows as "Unexpected
 * server response: 429").
 */
class StormClient {
  constructor(user, url, localAddress) {
    this.user = user;
    this.url = url;
    this.localAddress = localAddress;
    this.cursor = null;
    this.msgs = new Map(); // message id -> times received
    this.seqs = new Map(); // conversation id -> message seqs in the order received
    this.joins = []; // {at, status, reason}
    this.opens = []; // times
    this.errors = []; // {at, message}
    this.noCursor = 0; // durable events without a cursor
  }

  start() {
    this.socket = new Socket(this.url, {
      transport: localTransport(this.localAddress),
      params: { token: this.user.token },
      heartbeatIntervalMs: 30000,
      timeout: 10000 * slow(),
    });
    this.socket.onOpen(() => { this.opens.push(Date.now()); });
    this.socket.onError((e) => {
      this.errors.push({ at: Date.now(), message: String((e && (e.message || (e.error && e.error.message) || e.type)) || e) });
    });
    this.channel = this.socket.channel(`user:${this.user.id}`, () => (this.cursor ? { cursor: this.cursor } : {}));
    for (const ev of DURABLE) {
      this.channel.on(ev, (p) => {
        if (typeof p.cursor === 'string') this.cursor = p.cursor; else this.noCursor++;
        if (ev === 'message:new' && p.message) {
          const m = p.message;
          this.msgs.set(String(m.id), (this.msgs.get(String(m.id)) || 0) + 1);
          const k = String(m.conversation_id);
          if (!this.seqs.has(k)) this.seqs.set(k, []);
          this.seqs.get(k).push(Number(m.seq));
        }
      });
    }
    this.channel.join()
      .receive('ok', (r) => {
        this.joins.push({ at: Date.now(), status: 'ok' });
        if (!this.cursor && r && r.cursor) this.cursor = r.cursor;
      })
      .receive('error', (r) => { this.joins.push({ at: Date.now(), status: 'error', reason: r && r.reason }); })
      .receive('timeout', () => { this.joins.push({ at: Date.now(), status: 'timeout' }); });
    this.socket.connect();
  }

  /** Joined now (the last join reply was ok and the socket is open). */
  joined() { return this.socket.isConnected() && this.channel.state === 'joined'; }

  /** The first ok join reply at or after time t, or null. */
  joinedAfter(t) {
    const j = this.joins.find((x) => x.at >= t && x.status === 'ok');
    return j ? j.at : null;
  }

  stop() { try { this.socket.disconnect(); } catch { /* gone */ } }
}

/**
 * Samples Postgres every `everyMs` through one psql session: the number of
 * connections whose application_name is `app`, and how long each sample
 * took (Postgres's responsiveness). `stats` is live; stop() resolves with
 * it: { samples, maxConns, lastConns, maxMs, failures }.
 */
function pgWatch(app, everyMs = 100) {
  const psql = new Psql();
  const st = { samples: 0, maxConns: 0, lastConns: 0, maxMs: 0, failures: [] };
  let running = true;
  const q = `SELECT count(*) FROM pg_stat_activity WHERE application_name = '${app.replace(/'/g, "''")}';`;
  const loop = (async () => {
    while (running) {
      const t0 = Date.now();
      try {
        // eslint-disable-next-line no-await-in-loop
        const rows = await psql.query(q, 10000 * slow());
        const n = Number(rows[0]);
        st.samples++;
        st.lastConns = n;
        if (n > st.maxConns) st.maxConns = n;
      } catch (e) {
        st.failures.push(e.message);
        if (st.failures.length > 5) break;
      }
      const ms = Date.now() - t0;
      if (ms > st.maxMs) st.maxMs = ms;
      // eslint-disable-next-line no-await-in-loop
      await sleep(everyMs);
    }
  })();
  return {
    stats: st,
    async stop() {
      running = false;
      await loop;
      await psql.close();
      return st;
    },
  };
}

/**
 * A TCP relay between one node and Postgres, so that Postgres can be made
 * slow for that node alone (the test database is shared): pause() stops
 * forwarding what the node sends (its queries wait, its connections stay
 * up), resume() lets everything through. Resolves with { url, pause,
 * resume, close } once listening on a free 127.0.0.1 port; url is dbUrl
 * with the relay's address.
 */
async function pgRelay(dbUrl) {
  const net = require('node:net');
  const target = new URL(dbUrl);
  const conns = new Set();
  let paused = false;
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port || 5432), target.hostname);
    const pair = { client, upstream };
    conns.add(pair);
    const end = () => { conns.delete(pair); client.destroy(); upstream.destroy(); };
    client.on('data', (d) => upstream.write(d));
    upstream.on('data', (d) => client.write(d));
    client.on('error', end);
    upstream.on('error', end);
    client.on('close', end);
    upstream.on('close', end);
    if (paused) client.pause();
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const url = new URL(dbUrl);
  url.host = `127.0.0.1:${server.address().port}`;
  return {
    url: url.toString(),
    pause() { paused = true; for (const c of conns) c.client.pause(); },
    resume() { paused = false; for (const c of conns) c.client.resume(); },
    async close() {
      for (const c of conns) { c.client.destroy(); c.upstream.destroy(); }
      await new Promise((r) => server.close(r));
    },
  };
}

module.exports = { StormClient, localTransport, withAppName, pmap, pgWatch, pgRelay, sleep };
