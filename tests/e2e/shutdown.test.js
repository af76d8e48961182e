'use strict';
// Target R6: on SIGTERM the server stops accepting, closes every socket with
// 1001 (going away; phoenix.js reconnects elsewhere) and exits with code 0
// within 10 s.

const { describe, test } = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const WebSocket = require('ws');
const { Socket } = require('phoenix');
const { startServer, slow } = require('./lib/server');
const { Client, joinEcho } = require('./lib/frames');
const { RawWs, get } = require('./lib/raw');
const { socketPath, v1Reply, sleep } = require('./lib/phx');

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
});
