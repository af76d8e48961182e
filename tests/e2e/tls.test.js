'use strict';
// S7: TLS served natively (OpenSSL) on the public port when SB_TLS_CERT and
// SB_TLS_KEY are set. A throwaway self-signed certificate is made with the
// openssl command at test time (nothing secret is committed). Checks:
// phoenix.js over wss (join, ping reply, a 300 KB reply that spans many
// records, shout broadcast between two clients), back-pressure (a
// subscriber that pauses gets everything, one that never reads gets 1013),
// HTTPS /healthz with keep-alive, the admin port staying plain HTTP, TLS 1.1
// refused by the
// server (TLS 1.2 accepted), plain HTTP on the TLS port closed without a
// crash, a stalled handshake timed out, and a bad TLS configuration refused
// at start. TLS 1.3's records after the handshake (the server's own record
// layer, net/tls13.c): each suite with the client's KeyUpdates (s_client),
// records split into one-byte segments, several requests in one record, and
// the same with SB_TLS13_OWN_RECORDS=0.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync, spawn } = require('node:child_process');
const fs = require('node:fs');
const https = require('node:https');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const tls = require('node:tls');
const WebSocket = require('ws');
const { Socket } = require('phoenix');
const { startServer, slow, binPath } = require('./lib/server');

const T = { timeout: 60000 };

/** A self-signed certificate for 127.0.0.1 / localhost in a fresh temp dir. */
function makeCert() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-tls-'));
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256',
    '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'], { stdio: 'ignore' });
  return { dir, cert, key, ca: fs.readFileSync(cert) };
}

/** GET over HTTPS (or HTTP when `mod` is http) -> { status, body, conn:
 * { localPort, protocol, authorized } }. Bounded. */
function get(mod, url, opts = {}) {
  return new Promise((resolve, reject) => {
    const req = mod.get(url, { timeout: 5000 * slow(), ...opts }, (res) => {
      const sock = res.socket;
      const conn = {
        localPort: sock.localPort,
        protocol: sock.getProtocol ? sock.getProtocol() : null,
        authorized: sock.authorized,
      };
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode, body, conn }));
    });
    req.on('timeout', () => req.destroy(new Error(`timeout: GET ${url}`)));
    req.on('error', reject);
  });
}

/** Resolves with [status, response] of a phoenix.js Push, bounded. */
function pushResult(push, ms = 5000) {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(['client_timeout', null]), ms * slow());
    push
      .receive('ok', (r) => { clearTimeout(t); resolve(['ok', r]); })
      .receive('error', (r) => { clearTimeout(t); resolve(['error', r]); })
      .receive('timeout', () => { clearTimeout(t); resolve(['timeout', null]); });
  });
}

/** Opens a raw TCP connection, writes `data` (if any), and resolves when the
 * server closes it: { ms, bytes } (bounded by `limitMs`). */
function rawUntilClosed(port, data, limitMs) {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const chunks = [];
    const s = net.connect(port, '127.0.0.1', () => { if (data) s.write(data); });
    const timer = setTimeout(() => { s.destroy(); reject(new Error(`server did not close within ${limitMs} ms`)); }, limitMs);
    s.on('data', (c) => chunks.push(c));
    s.on('error', () => {}); // a reset counts as closed
    s.on('close', () => { clearTimeout(timer); resolve({ ms: Date.now() - t0, bytes: Buffer.concat(chunks) }); });
  });
}

describe('TLS on the public listener', () => {
  let srv;
  let cert;

  before(async () => {
    cert = makeCert();
    srv = await startServer({
      env: {
        SB_TLS_CERT: cert.cert, SB_TLS_KEY: cert.key, SB_TLS_HANDSHAKE_MS: '1000',
        SB_OUTBOUND_MAX: String(8 * 1024 * 1024), // room for the back-pressure tests
      },
    });
  });

  after(async () => {
    if (srv) {
      const r = await srv.stop();
      assert.equal(r.killed, false, 'server stopped on SIGTERM');
    }
    if (cert) fs.rmSync(cert.dir, { recursive: true, force: true });
  });

  test('HTTPS /healthz, with keep-alive over one TLS session', T, async () => {
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca: cert.ca });
    const sockets = new Set();
    for (let i = 0; i < 20; i++) {
      const r = await get(https, `https://127.0.0.1:${srv.port}/healthz`, { agent });
      assert.equal(r.status, 200);
      assert.deepEqual(JSON.parse(r.body), { status: 'ok' });
      sockets.add(r.conn.localPort);
      assert.ok(['TLSv1.2', 'TLSv1.3'].includes(r.conn.protocol), r.conn.protocol);
      assert.equal(r.conn.authorized, true, 'the certificate verifies against the CA given');
    }
    assert.equal(sockets.size, 1, 'all 20 requests went over one connection');
    agent.destroy();
  });

  test('an untrusted certificate is refused by a verifying client (it really is TLS)', T, async () => {
    await assert.rejects(get(https, `https://127.0.0.1:${srv.port}/healthz`),
      (e) => /self.signed|DEPTH_ZERO|unable to verify/i.test(e.code + ' ' + e.message));
  });

  test('the admin listener stays plain HTTP', T, async () => {
    const r = await get(http, `http://127.0.0.1:${srv.adminPort}/healthz`);
    assert.equal(r.status, 200);
    assert.deepEqual(JSON.parse(r.body), { status: 'ok' });
  });

  test('phoenix.js over wss: join, ping, a 300 KB reply, broadcast to another client', T, async () => {
    const ca = cert.ca;
    class TlsWebSocket extends WebSocket {
      constructor(url, protocols) { super(url, protocols, { ca }); }
    }
    const mk = (user) => new Socket(`wss://127.0.0.1:${srv.port}/socket`, {
      transport: TlsWebSocket,
      params: { token: srv.token(user) },
      heartbeatIntervalMs: 30000,
      reconnectAfterMs: () => 200,
      timeout: 10000 * slow(),
    });
    const a = mk('alice');
    const b = mk('bob');
    try {
      a.connect();
      b.connect();
      const cha = a.channel('echo:tls', {});
      const chb = b.channel('echo:tls', {});
      assert.deepEqual(await pushResult(cha.join()), ['ok', { joined: 'echo:tls' }]);
      assert.deepEqual(await pushResult(chb.join()), ['ok', { joined: 'echo:tls' }]);
      assert.deepEqual(await pushResult(cha.push('ping', { hello: 'tls' })), ['ok', { hello: 'tls' }]);

      const big = 'x'.repeat(300 * 1024);
      const [st, resp] = await pushResult(cha.push('ping', { big }), 10000);
      assert.equal(st, 'ok');
      assert.equal(resp.big.length, big.length);
      assert.equal(resp.big, big);

      const got = new Promise((resolve) => chb.on('shout', resolve));
      cha.push('shout', { n: 42 });
      const msg = await Promise.race([got, new Promise((_, rej) => setTimeout(() => rej(new Error('no shout')), 5000 * slow()))]);
      assert.deepEqual(msg, { n: 42 });
    } finally {
      a.disconnect();
      b.disconnect();
    }
  });

  /** A TCP relay to the server whose server-to-client direction can be
   * paused: the server sees a client that stops reading (pausing a node TLS
   * socket itself does not stop it reading from TCP). */
  async function relay() {
    const conns = [];
    let paused = false;
    const server = net.createServer((down) => {
      const up = net.connect(srv.port, '127.0.0.1');
      conns.push({ up, down });
      if (paused) up.pause();
      down.pipe(up);
      up.pipe(down); // an end on one side ends the other once its data is through
      up.on('error', () => down.destroy());
      down.on('error', () => up.destroy());
      down.on('close', () => up.destroy());
    });
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    return {
      port: server.address().port,
      pause() { paused = true; for (const c of conns) { c.up.unpipe(c.down); c.up.pause(); } },
      resume() { paused = false; for (const c of conns) { c.up.pipe(c.down); c.up.resume(); } },
      close() { for (const c of conns) { c.up.destroy(); c.down.destroy(); } server.close(); },
    };
  }

  /** A raw wss client (ws) to `port` (the server's, or a relay's), joined
   * to `topic` on V2; collects text frames. */
  async function rawWss(port, topic, user) {
    const ws = new WebSocket(`wss://127.0.0.1:${port}/socket/websocket?vsn=2.0.0&token=${srv.token(user)}`,
      { ca: cert.ca });
    const frames = [];
    let closed = null;
    ws.on('message', (d, isBinary) => { if (!isBinary) frames.push(JSON.parse(d.toString())); });
    ws.on('close', (code) => { closed = code; });
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
    ws.send(JSON.stringify(['1', '1', topic, 'phx_join', {}]));
    await waitUntil(() => frames.length >= 1, 5000, 'join reply');
    assert.equal(frames[0][4].status, 'ok');
    return { ws, frames, closed: () => closed };
  }

  async function waitUntil(pred, ms, what) {
    const deadline = Date.now() + ms * slow();
    while (!pred()) {
      if (Date.now() > deadline) throw new Error(`timeout waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** Queues `n` shouts of about 900 KB on `topic` from client `from`;
   * returns the payload text. */
  function shout(from, topic, n) {
    const big = 'y'.repeat(900 * 1024);
    for (let i = 0; i < n; i++) from.ws.send(JSON.stringify(['1', String(10 + i), topic, 'shout', { i, big }]));
    return big;
  }

  // The subscriber reads through a relay that stops reading from the server,
  // so only the server's side is stalled (a client that sends nothing big);
  // a second client, read normally, does the broadcasting.
  test('a wss subscriber that pauses reading gets every broadcast intact after it resumes (TLS back-pressure)', T, async () => {
    const r = await relay();
    const sub = await rawWss(r.port, 'echo:bp', 'carol');
    const pub = await rawWss(srv.port, 'echo:bp', 'dave');
    r.pause(); // the server's TLS backlog to `sub` fills, its flush must wait
    const big = shout(pub, 'echo:bp', 6);
    await waitUntil(() => pub.ws.bufferedAmount === 0, 20000, 'the shouts to leave');
    await new Promise((res) => setTimeout(res, 1000));
    r.resume();
    const shouts = () => sub.frames.filter((f) => f[3] === 'shout');
    await waitUntil(() => shouts().length >= 6 || sub.closed() !== null, 20000, 'six 900 KB broadcasts');
    assert.equal(sub.closed(), null, 'not closed');
    assert.deepEqual(shouts().map((f) => f[4].i), [0, 1, 2, 3, 4, 5], 'all, in order');
    for (const f of shouts()) assert.equal(f[4].big, big);
    sub.ws.close();
    pub.ws.close();
    r.close();
  });

  test('a wss subscriber that never reads is closed with 1013 once its queue passes the cap', T, async () => {
    const r = await relay();
    const sub = await rawWss(r.port, 'echo:slow', 'carol');
    const pub = await rawWss(srv.port, 'echo:slow', 'dave');
    r.pause();
    // 30 broadcasts of 900 KB: more than the relay's socket buffers and the 8 MiB cap together
    shout(pub, 'echo:slow', 30);
    await waitUntil(() => srv.logsMatching(/slow_consumer_closed/).length > 0, 20000, 'the slow consumer close');
    // now read what was sent before the close, soon: the server waits only
    // briefly (2 s) for a closed client to take its last bytes
    r.resume();
    await waitUntil(() => sub.closed() !== null, 20000, 'the close');
    assert.equal(sub.closed(), 1013);
    const got = sub.frames.filter((f) => f[3] === 'shout').length;
    assert.ok(got < 30, `fewer than all broadcasts (${got})`);
    assert.equal(pub.closed(), null, 'the publisher, which reads, is not closed');
    assert.ok(srv.alive());
    pub.ws.close();
    r.close();
  });

  test('TLS 1.1 is refused by the server, TLS 1.2 is accepted', T, async () => {
    const attempt = (version) => new Promise((resolve) => {
      const s = tls.connect({
        host: '127.0.0.1', port: srv.port, ca: cert.ca, servername: 'localhost',
        minVersion: version, maxVersion: version,
        ciphers: 'DEFAULT@SECLEVEL=0', // let the client offer TLS 1.1 at all
      });
      const timer = setTimeout(() => { s.destroy(); resolve({ error: 'client timeout' }); }, 5000 * slow());
      s.on('secureConnect', () => { clearTimeout(timer); const p = s.getProtocol(); s.end(); resolve({ protocol: p }); });
      s.on('error', (e) => { clearTimeout(timer); resolve({ error: e.code || e.message, message: e.message }); });
    });
    const old = await attempt('TLSv1.1');
    assert.equal(old.protocol, undefined, 'no TLS 1.1 session');
    // the server's protocol_version alert (not a client-side refusal)
    assert.match(String(old.error) + ' ' + String(old.message), /ALERT_PROTOCOL_VERSION|alert protocol version/i);
    const ok = await attempt('TLSv1.2');
    assert.equal(ok.protocol, 'TLSv1.2');
  });

  test('plain HTTP on the TLS port is closed without an HTTP answer, and the server lives on', T, async () => {
    const r = await rawUntilClosed(srv.port, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n', 5000 * slow());
    assert.ok(!r.bytes.toString('latin1').startsWith('HTTP/'), 'no plaintext HTTP response');
    if (r.bytes.length) assert.equal(r.bytes[0], 0x15, 'a TLS alert record, if anything');
    // garbage that looks like a TLS record header with a huge length
    const r2 = await rawUntilClosed(srv.port, Buffer.from([0x16, 0x03, 0x01, 0xff, 0xff, 0x01, 0, 0, 0]), 5000 * slow());
    assert.ok(r2.ms >= 0);
    assert.ok(srv.alive(), 'server still running');
    const h = await get(https, `https://127.0.0.1:${srv.port}/healthz`, { ca: cert.ca });
    assert.equal(h.status, 200);
  });

  test('a stalled handshake is timed out (SB_TLS_HANDSHAKE_MS=1000)', T, async () => {
    // connects and says nothing
    const silent = await rawUntilClosed(srv.port, null, 6000 * slow());
    assert.ok(silent.ms >= 900, `closed after ${silent.ms} ms, not before the limit`);
    // sends half a ClientHello and stops
    const hello = Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]);
    const half = await rawUntilClosed(srv.port, hello, 6000 * slow());
    assert.ok(half.ms >= 900, `closed after ${half.ms} ms`);
    assert.ok(srv.alive());
  });

  test('a finished handshake is not subject to the handshake limit', T, async () => {
    const s = tls.connect({ host: '127.0.0.1', port: srv.port, ca: cert.ca, servername: 'localhost' });
    await new Promise((resolve, reject) => { s.once('secureConnect', resolve); s.once('error', reject); });
    await new Promise((r) => setTimeout(r, 2500));
    assert.equal(s.destroyed, false, 'an idle TLS connection outlives the handshake limit');
    s.write('GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    const text = await new Promise((resolve) => {
      let b = '';
      s.on('data', (c) => { b += c; });
      s.on('end', () => resolve(b));
      s.on('close', () => resolve(b));
      setTimeout(() => resolve(b), 5000 * slow());
    });
    assert.match(text, /^HTTP\/1\.1 200 /);
    s.destroy();
  });

  // After a TLS 1.3 handshake the server frees OpenSSL's SSL object and runs
  // the records with its own layer (server/src/net/tls13.c).
  for (const suite of ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256']) {
    test(`TLS 1.3 ${suite}: requests before and after the client's KeyUpdates (asking for ours, then not)`, T, async () => {
      const out = await sClient(srv.port, ['-tls1_3', '-ciphersuites', suite],
        ['GET /healthz HTTP/1.1\nHost: x\n\n', 'K\n', 'GET /healthz HTTP/1.1\nHost: x\n\n', 'k\n',
          'GET /healthz HTTP/1.1\nHost: x\n\n']);
      assert.match(out, new RegExp(`Cipher is ${suite}`));
      assert.equal((out.match(/KEYUPDATE/g) || []).length, 2, out);
      assert.equal((out.match(/HTTP\/1\.1 200 /g) || []).length, 3, out);
    });
  }

  test('TLS 1.3: records that arrive one byte per segment, and several requests in one record', T, async () => {
    const raw = net.connect(srv.port, '127.0.0.1');
    raw.setNoDelay(true);
    await new Promise((resolve, reject) => { raw.once('connect', resolve); raw.once('error', reject); });
    const { Duplex } = require('node:stream');
    let dribble = false;
    const wire = new Duplex({
      read() {},
      write(chunk, enc, cb) {
        if (!dribble) { raw.write(chunk, cb); return; }
        (async () => {
          for (let i = 0; i < chunk.length; i++) {
            raw.write(chunk.subarray(i, i + 1));
            await new Promise((r) => setTimeout(r, 1));
          }
          cb();
        })();
      },
    });
    raw.on('data', (d) => wire.push(d));
    raw.on('end', () => wire.push(null));
    const s = tls.connect({ socket: wire, ca: cert.ca, servername: 'localhost', minVersion: 'TLSv1.3' });
    await new Promise((resolve, reject) => { s.once('secureConnect', resolve); s.once('error', reject); });
    let got = '';
    s.on('data', (c) => { got += c; });
    const until = async (n) => {
      for (let i = 0; i < 500 && (got.match(/HTTP\/1\.1 200 /g) || []).length < n; i++) {
        await new Promise((r) => setTimeout(r, 10 * slow()));
      }
      return (got.match(/HTTP\/1\.1 200 /g) || []).length;
    };
    dribble = true; // one request, its record split into one-byte segments
    s.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.equal(await until(1), 1, got);
    dribble = false; // three requests in one record
    s.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(3));
    assert.equal(await until(4), 4, got);
    s.destroy();
    raw.destroy();
  });

  test('TLS 1.3 with SB_TLS13_OWN_RECORDS=0 (the SSL object kept) serves the same', T, async () => {
    const srv2 = await startServer({ env: { SB_TLS_CERT: cert.cert, SB_TLS_KEY: cert.key, SB_TLS13_OWN_RECORDS: '0' } });
    try {
      const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca: cert.ca });
      for (let i = 0; i < 3; i++) {
        const r = await get(https, `https://127.0.0.1:${srv2.port}/healthz`, { agent });
        assert.equal(r.status, 200);
        assert.equal(r.conn.protocol, 'TLSv1.3');
      }
      agent.destroy();
      const out = await sClient(srv2.port, ['-tls1_3'], ['GET /healthz HTTP/1.1\nHost: x\n\n', 'K\n',
        'GET /healthz HTTP/1.1\nHost: x\n\n']);
      assert.equal((out.match(/HTTP\/1\.1 200 /g) || []).length, 2, out);
    } finally {
      await srv2.stop();
    }
  });
});

/** Runs `openssl s_client` against the port, typing `lines` one at a time
 * (s_client's "K" / "k" lines send a KeyUpdate with / without a request for
 * the server's), then resolves with what it printed. Bounded. */
function sClient(port, args, lines) {
  return new Promise((resolve, reject) => {
    const p = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-crlf', ...args],
      { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { out += d; });
    const kill = setTimeout(() => p.kill('SIGKILL'), 15000 * slow());
    p.on('error', reject);
    p.on('close', () => { clearTimeout(kill); resolve(out); });
    (async () => {
      for (const l of lines) {
        await new Promise((r) => setTimeout(r, 300 * slow()));
        p.stdin.write(l);
      }
      await new Promise((r) => setTimeout(r, 500 * slow()));
      p.stdin.end();
      setTimeout(() => p.kill('SIGTERM'), 500 * slow());
    })();
  });
}

describe('TLS configuration', () => {
  test('a certificate without its key, or an unreadable file, stops the start', T, async () => {
    const run = (env) => new Promise((resolve) => {
      const child = spawn(binPath(), ['serve'], {
        env: { ...process.env, SB_SECRET: 'x'.repeat(40), SB_PORT: '0', SB_ADMIN_PORT: '-1', SB_HOST: '127.0.0.1', SB_DATABASE_URL: '', ...env },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let err = '';
      child.stderr.on('data', (c) => { err += c; });
      const timer = setTimeout(() => child.kill('SIGKILL'), 10000 * slow());
      child.on('exit', (code) => { clearTimeout(timer); resolve({ code, err }); });
    });
    const a = await run({ SB_TLS_CERT: '/nonexistent/cert.pem' });
    assert.equal(a.code, 2);
    assert.match(a.err, /SB_TLS_CERT and SB_TLS_KEY/);
    const b = await run({ SB_TLS_CERT: '/nonexistent/cert.pem', SB_TLS_KEY: '/nonexistent/key.pem' });
    assert.equal(b.code, 2);
    assert.match(b.err, /TLS certificate/);
  });
});
