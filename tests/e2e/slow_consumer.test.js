'use strict';
// Target R5: a client that stops reading is closed with 1013 once its
// outbound queue passes SB_OUTBOUND_MAX, and the server's memory stays
// bounded however much is broadcast to it meanwhile.
//
// The subscriber "stops reading" by pausing its TCP socket (ws._socket.pause()),
// so the kernel buffers fill and the server has to queue. Another client shouts
// 128 KiB payloads, one at a time (it waits for each reply, so it never has
// more than one broadcast queued itself).

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startServer, isSanitizerBuild } = require('./lib/server');
const { Client, joinEcho, closeAll } = require('./lib/frames');
const { socketPath, sleep } = require('./lib/phx');

const OUTBOUND_MAX = 262144;
const PAYLOAD = 128 * 1024;
const RSS_LIMIT_MB = Number(process.env.SB_E2E_RSS_LIMIT_MB || (isSanitizerBuild() ? 1024 : 200));
// growth over the RSS before the flood: far below the 3 x 160 MiB an unbounded queue would hold.
// Under ASan, plus its quarantine: freed memory is kept until 256 MB of it
// (quarantine_size_mb's default on x86_64) before it is reused, and the flood
// frees a 128 KiB frame per broadcast, so the quarantine fills whole; and
// plus the shadow memory of all that (1/8): (100 + 256) x 1.125 = 400 MB,
// still below the 503 MB of one unbounded queue (runs measured 303.9 and
// 308.3 MB of growth)
const RSS_GROWTH_LIMIT_MB = isSanitizerBuild() ? 400 : 100;

describe('slow consumer (SB_OUTBOUND_MAX=262144)', () => {
  let srv;
  before(async () => {
    srv = await startServer({ name: 'slow_consumer', env: { SB_OUTBOUND_MAX: String(OUTBOUND_MAX) } });
  });
  after(async () => { if (srv) await srv.stop(); });

  /** Shouts up to `count` payloads from `b` on `topic`, each awaited
   * (broadcast + reply); stops early once until() is true. Returns how many. */
  async function shout(b, topic, count, { onEach, until } = {}) {
    const pad = 'x'.repeat(PAYLOAD);
    for (let i = 0; i < count; i++) {
      if (until && until()) return i;
      const ref = String(100 + i);
      b.send(`["1","${ref}","${topic}","shout",{"i":${i},"pad":"${pad}"}]`);
      await b.expectText(`[null,null,"${topic}","shout",{"i":${i},"pad":"${pad}"}]`, 10000);
      await b.expectText(`["1","${ref}","${topic}","phx_reply",{"response":{},"status":"ok"}]`, 10000);
      if (onEach) onEach(i);
    }
    return count;
  }

  test('a paused subscriber is closed with 1013; what it got before is intact and in order', { timeout: 60000 }, async () => {
    const a = await Client.open(srv.wsUrl(socketPath({ token: srv.token('slowpoke') })));
    const b = await Client.open(srv.wsUrl(socketPath({ token: srv.token('shouter') })));
    await joinEcho(a, 'echo:slow', '1');
    await joinEcho(b, 'echo:slow', '1');
    a.ws._socket.pause();

    // up to 32 MiB: far more than the kernel's socket buffers plus the 256 KiB
    // cap; the paused client resumes as soon as the server has given up on it
    // (a closing connection waits 10 s at most for a reader that stalls)
    const count = 256;
    const overflowed = () => srv.logsMatching(/"msg":"slow_consumer_closed"/).length > 0;
    const sent = await shout(b, 'echo:slow', count, { until: overflowed });
    assert.ok(overflowed(), `the server never closed the paused client (${sent} broadcasts of ${PAYLOAD} bytes)`);

    a.ws._socket.resume();
    const r = await a.expectClose(1013, { timeoutMs: 10000, allowFrames: true });
    assert.ok(r.frames.length < count, `the slow client was cut off (got ${r.frames.length} of ${count} broadcasts)`);
    const pad = 'x'.repeat(PAYLOAD);
    r.frames.forEach((f, i) => {
      const ok = f.type === 'text' && f.data === `[null,null,"echo:slow","shout",{"i":${i},"pad":"${pad}"}]`;
      assert.ok(ok, `broadcast #${i} intact and in order, got ${f.type} of ${f.data.length} starting ${String(f.data.slice(0, 60))}`);
    });

    // the shouter was never affected
    assert.equal(b.closeInfo, null);
    b.send('[null,"9","phoenix","heartbeat",{}]');
    await b.expectText('[null,"9","phoenix","phx_reply",{"response":{},"status":"ok"}]');
    closeAll(a, b);
  });

  test(`server memory stays bounded (peak RSS < ${RSS_LIMIT_MB} MB) while 160 MiB are broadcast to a client that never reads`, { timeout: 120000 }, async (t) => {
    const before = srv.memory();
    const paused = [];
    for (let i = 0; i < 3; i++) {
      const p = await Client.open(srv.wsUrl(socketPath({ token: srv.token(`paused${i}`) })));
      await joinEcho(p, 'echo:flood', '1');
      p.ws._socket.pause();
      paused.push(p);
    }
    const b = await Client.open(srv.wsUrl(socketPath({ token: srv.token('flooder') })));
    await joinEcho(b, 'echo:flood', '1');

    let maxRss = before.rssKb;
    const count = 1280; // 1280 x 128 KiB = 160 MiB per paused subscriber
    await shout(b, 'echo:flood', count, {
      onEach: (i) => { if (i % 32 === 0) maxRss = Math.max(maxRss, srv.memory().rssKb); },
    });
    const end = srv.memory();
    maxRss = Math.max(maxRss, end.rssKb);
    const peakMb = Math.max(end.hwmKb, maxRss) / 1024;
    t.diagnostic(`server RSS: ${(before.rssKb / 1024).toFixed(1)} MB before, peak ${peakMb.toFixed(1)} MB, ${(end.rssKb / 1024).toFixed(1)} MB after`);
    assert.ok(peakMb < RSS_LIMIT_MB,
      `server peak RSS ${peakMb.toFixed(1)} MB (start ${(before.rssKb / 1024).toFixed(1)} MB) over ${RSS_LIMIT_MB} MB`);
    const growthMb = maxRss / 1024 - before.rssKb / 1024;
    assert.ok(growthMb < RSS_GROWTH_LIMIT_MB, `server RSS grew ${growthMb.toFixed(1)} MB during the flood (limit ${RSS_GROWTH_LIMIT_MB} MB)`);

    // every paused client was closed; once it reads again it sees the close
    for (const p of paused) {
      p.ws._socket.resume();
      const r = await p.expectClose(undefined, { timeoutMs: 15000, allowFrames: true });
      assert.ok([1013, 1006].includes(r.code), `paused client closed with ${r.code}`);
    }
    assert.equal(b.closeInfo, null, 'the reading client stays connected');
    b.send('[null,"9","phoenix","heartbeat",{}]');
    await b.expectText('[null,"9","phoenix","phx_reply",{"response":{},"status":"ok"}]');
    closeAll(b);
  });

  test('server alive and serving after the floods', { timeout: 20000 }, async () => {
    assert.ok(srv.alive());
    await sleep(100);
    assert.equal((await fetch(srv.url('/healthz'))).status, 200);
    const c = await Client.open(srv.wsUrl(socketPath({ token: srv.token('late') })));
    await joinEcho(c, 'echo:slow', '1');
    c.terminate();
  });
});
