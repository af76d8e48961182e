'use strict';
// Target R6: on SIGTERM the server stops accepting, closes every socket with
// 1001 (going away; phoenix.js reconnects elsewhere) and exits with code 0
// within 10 s. The closes are spread over SB_DRAIN_MS (issue 18), so the
// reconnect wave reaching the other nodes is spread too; the sockets not yet
// closed keep working meanwhile.

const { describe, test } = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const WebSocket = require('ws');
const { Socket } = require('phoenix');
const { startServer, slow } = require('./lib/server');
const { Client, joinEcho } = require('./lib/frames');
const { RawWs, get } = require('./lib/raw');
const { socketPath, v1Reply, sleep, waitFor } = require('./lib/phx');

function connectRefusedOrRejected(port) {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    const t = setTimeout(() => { s.destroy(); resolve('no answer'); }, 3000);
    s.on('error', (e) => { clearTimeout(t); resolve(e.code); });
    s.on('connect', () => {
      s.write(`GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n`);
    });
    let data = '';
    s.on('data', (d) => { data += d; });
    s.on('close', () => { clearTimeout(t); resolve(data ? `answered: ${data.split('\r\n')[0]}` : 'closed'); });
  });
}

describe('shutdown on SIGTERM', () => {
  test('every connected client gets close 1001 and the process exits 0 within 10 s', { timeout: 40000 }, async () => {
    const srv = await startServer({ name: 'shutdown' });
    try {
      const clients = [];
      for (let i = 0; i < 6; i++) {
        const c = await Client.open(srv.wsUrl(socketPath({ token: srv.token(`u${i}`) })));
        await joinEcho(c, 'echo:bye', '1');
        clients.push(c);
      }
      for (let i = 0; i < 2; i++) {
        const c = await Client.open(srv.wsUrl(socketPath({ token: srv.token(`v1u${i}`), vsn: '1.0.0' })));
        c.send('{"topic":"echo:bye","event":"phx_join","payload":{},"ref":"1"}');
        await c.expectText(v1Reply('1', 'echo:bye', 'ok', { joined: 'echo:bye' }));
        clients.push(c);
      }
      // one that never joined anything
      clients.push(await Client.open(srv.wsUrl(socketPath({ token: srv.token('bare') }))));
      // a phoenix.js client
      const js = new Socket(srv.wsUrl('/socket'), { transport: WebSocket, params: { token: srv.token('js') }, reconnectAfterMs: () => 60000 });
      const jsCloses = [];
      js.onClose((e) => jsCloses.push(e.code));
      js.connect();
      const ch = js.channel('echo:bye', {});
      await new Promise((resolve, reject) => {
        ch.join().receive('ok', resolve).receive('error', reject).receive('timeout', () => reject(new Error('join timeout')));
      });
      // and a plain idle HTTP keep-alive connection
      const idleHttp = net.connect({ port: srv.port, host: '127.0.0.1' });
      idleHttp.on('error', () => {});

      const t0 = Date.now();
      process.kill(srv.pid, 'SIGTERM');

      for (const [i, c] of clients.entries()) {
        try {
          await c.expectClose(1001, { timeoutMs: 10000 });
        } catch (e) {
          e.message = `client #${i}: ${e.message}`;
          throw e;
        }
      }
      const exit = await Promise.race([srv.exited, sleep(10000 * slow()).then(() => null)]);
      const ms = Date.now() - t0;
      assert.ok(exit, `process still running ${ms} ms after SIGTERM`);
      assert.equal(exit.signal, null, `exited by signal ${exit.signal}`);
      assert.equal(exit.code, 0, `exit code ${exit.code}\n${srv.tail()}`);
      assert.ok(ms <= 10000 * slow(), `exited after ${ms} ms`);
      assert.deepEqual(jsCloses.slice(0, 1), [1001], 'phoenix.js saw close 1001');
      js.disconnect();
      idleHttp.destroy();

      const after = await connectRefusedOrRejected(srv.port);
      assert.ok(!/^answered: HTTP\/1\.1 200/.test(after), `no longer accepting: ${after}`);
    } finally {
      await srv.stop({ signal: 'SIGKILL' });
    }
  });

  test('listeners close first: new connections are refused while clients are being closed', { timeout: 40000 }, async () => {
    const srv = await startServer({ name: 'shutdown_accept' });
    try {
      const c = await Client.open(srv.wsUrl(socketPath({ token: srv.token('a') })));
      await joinEcho(c, 'echo:bye', '1');
      process.kill(srv.pid, 'SIGTERM');
      await c.expectClose(1001, { timeoutMs: 10000 });
      let upgraded = false;
      try {
        const w = await RawWs.connect(srv.port, socketPath({ token: srv.token('b') }), { timeoutMs: 2000 });
        upgraded = true;
        w.destroy();
      } catch { /* refused, reset or rejected: fine */ }
      assert.equal(upgraded, false, 'a WebSocket upgrade was accepted after SIGTERM');
      const exit = await Promise.race([srv.exited, sleep(10000 * slow()).then(() => null)]);
      assert.ok(exit && exit.code === 0, `exit ${JSON.stringify(exit)}`);
    } finally {
      await srv.stop({ signal: 'SIGKILL' });
    }
  });

  test('an idle server exits 0 promptly on SIGTERM', { timeout: 30000 }, async () => {
    const srv = await startServer({ name: 'shutdown_idle' });
    try {
      assert.equal((await get(srv.port, '/healthz')).status, 200);
      const r = await srv.stop({ signal: 'SIGTERM', timeoutMs: 10000 * slow() });
      assert.equal(r.killed, false, 'needed SIGKILL');
      assert.equal(r.signal, null);
      assert.equal(r.code, 0);
      assert.ok(r.ms < 10000 * slow(), `took ${r.ms} ms`);
    } finally {
      await srv.stop({ signal: 'SIGKILL' });
    }
  });

  test('a long-poll client does not hold the shutdown past 10 s', { timeout: 40000 }, async () => {
    const srv = await startServer({ name: 'shutdown_lp' });
    try {
      const tok = srv.token('lp');
      const first = await get(srv.port, `/socket/longpoll?token=${encodeURIComponent(tok)}&vsn=2.0.0`);
      const session = first.json().token;
      assert.ok(session, first.text);
      const q = `/socket/longpoll?token=${encodeURIComponent(tok)}&vsn=2.0.0&token=${encodeURIComponent(session)}`;
      await get(srv.port, q, { method: 'POST', body: '["1","1","echo:bye","phx_join",{}]', headers: { 'content-type': 'application/json' } });
      await get(srv.port, q); // the join reply
      const held = get(srv.port, q, { timeoutMs: 15000 }).catch((e) => ({ error: e }));
      await sleep(200);
      const r = await srv.stop({ signal: 'SIGTERM', timeoutMs: 10000 * slow() });
      assert.equal(r.killed, false, 'needed SIGKILL');
      assert.equal(r.code, 0);
      await held;
    } finally {
      await srv.stop({ signal: 'SIGKILL' });
    }
  });

  test('the 1001 closes are spread evenly over SB_DRAIN_MS; sockets still open keep working', { timeout: 60000 }, async () => {
    const DRAIN = 3000;
    const N = 60;
    const srv = await startServer({ name: 'shutdown_drain', env: { SB_DRAIN_MS: String(DRAIN), SB_SHUTDOWN_MS: '8000' } });
    const socks = [];
    try {
      for (let i = 0; i < N; i++) {
        const ws = new WebSocket(srv.wsUrl(socketPath({ token: srv.token(`d${i}`) })));
        const rec = { ws, code: null, at: null, replies: 0 };
        ws.on('close', (code) => { rec.code = code; rec.at = Date.now(); });
        ws.on('message', (m) => { if (String(m).includes('phx_reply')) rec.replies++; });
        ws.on('error', () => {});
        await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
        socks.push(rec);
      }
      const t0 = Date.now();
      process.kill(srv.pid, 'SIGTERM');
      // while the drain runs, the sockets not yet closed are served: each
      // open socket sends a heartbeat every 100 ms and must get its reply
      let ref = 0;
      const pinger = setInterval(() => {
        for (const s of socks) if (s.code === null && s.ws.readyState === WebSocket.OPEN) s.ws.send(JSON.stringify([null, String(++ref), 'phoenix', 'heartbeat', {}]));
      }, 100);
      await waitFor(() => socks.every((s) => s.code !== null), 12000 * slow(), 'every socket closed');
      clearInterval(pinger);
      const exit = await Promise.race([srv.exited, sleep(10000 * slow()).then(() => null)]);
      assert.ok(exit && exit.code === 0, `exit ${JSON.stringify(exit)}\n${srv.tail()}`);
      assert.ok(exit.at - t0 <= 10000 * slow(), `exited ${exit.at - t0} ms after SIGTERM (R6: 10 s)`);
      const codes = socks.map((s) => s.code);
      assert.deepEqual([...new Set(codes)], [1001], `close codes ${codes}`);
      const at = socks.map((s) => s.at - t0).sort((a, b) => a - b);
      // evenly: a quarter of the window holds about a quarter of the closes
      const quarters = [0, 0, 0, 0];
      for (const t of at) quarters[Math.min(3, Math.floor((t / DRAIN) * 4))]++;
      const report = `closes at ${at.join(',')} ms; per quarter ${quarters}`;
      assert.ok(at[0] < DRAIN * 0.25, `first close late: ${report}`);
      assert.ok(at[N - 1] >= DRAIN * 0.75, `the closes are not spread (all within ${at[N - 1]} ms): ${report}`);
      assert.ok(at[N - 1] <= DRAIN + 2000 * slow(), `last close too late: ${report}`);
      for (const q of quarters) assert.ok(q >= N * 0.1 && q <= N * 0.45, `uneven: ${report}`);
      // the late ones were served while they waited
      const late = socks.filter((s) => s.at - t0 > DRAIN / 2);
      assert.ok(late.length > 0);
      for (const s of late) assert.ok(s.replies >= 3, `a socket still open during the drain got ${s.replies} heartbeat replies`);
      assert.equal(srv.logsMatching(/"draining"/).length, 1, 'the drain is logged');
    } finally {
      for (const s of socks) s.ws.terminate();
      await srv.stop({ signal: 'SIGKILL' });
    }
  });
});
