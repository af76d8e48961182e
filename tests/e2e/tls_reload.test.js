'use strict';
// Production TLS (issue 18, S7): a test CA made here with the openssl command
// (nothing secret is committed) signs the server's certificates. Checks:
// phoenix.js over wss:// trusting the CA; a client that does not trust it
// refused; ALPN http/1.1; TLS 1.2 limited to SB_TLS_CIPHERS; SIGHUP with a
// new certificate while 1,000 WSS clients stay connected (none dropped, each
// still served, new connections see the new certificate); a broken new pair
// (garbage, or a key that does not match) refused with a log line and the old
// one kept; the files watched (SB_TLS_RELOAD_CHECK_S) for certbot-style
// renewals; a resumed handshake (session ticket) measured as resumed by
// `openssl s_client -sess_out/-sess_in` and by /readyz's counters, also on
// another node sharing SB_TLS_TICKET_KEY_FILE (and not without it).

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync, spawn } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const tls = require('node:tls');
const http = require('node:http');
const WebSocket = require('ws');
const { Socket } = require('phoenix');
const { startServer, slow } = require('./lib/server');
const { pushResult, waitFor, sleep } = require('./lib/phx');

const T = { timeout: 120000 };
const ossl = (args) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });

/** A throwaway CA in a fresh temp dir; .leaf(name, serial) issues a server
 * certificate for 127.0.0.1/localhost -> { cert, key, serial } (paths). */
function makeCA() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-ca-'));
  const caKey = path.join(dir, 'ca.key');
  const caCert = path.join(dir, 'ca.pem');
  ossl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', caKey,
    '-out', caCert, '-days', '2', '-subj', '/CN=Switchboard test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  const ext = path.join(dir, 'leaf.ext');
  fs.writeFileSync(ext, 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n');
  return {
    dir,
    caCert,
    ca: fs.readFileSync(caCert),
    leaf(name, serial) {
      const key = path.join(dir, `${name}.key`);
      const csr = path.join(dir, `${name}.csr`);
      const cert = path.join(dir, `${name}.pem`);
      ossl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', csr, '-subj', `/CN=${name}`]);
      ossl(['x509', '-req', '-in', csr, '-CA', caCert, '-CAkey', caKey, '-set_serial', String(serial), '-days', '1', '-out', cert, '-extfile', ext]);
      return { cert, key, serial: Number(serial).toString(16).toUpperCase().padStart(2, '0') };
    },
  };
}

/** Puts a leaf's files at the paths the server reads, each by an atomic rename. */
function install(leaf, dst) {
  for (const [from, to] of [[leaf.cert, dst.cert], [leaf.key, dst.key]]) {
    const tmp = `${to}.tmp${process.pid}`;
    fs.copyFileSync(from, tmp);
    fs.renameSync(tmp, to);
  }
}

/** The serial of the certificate a fresh TLS connection gets (hex, upper case). */
function peerSerial(port, ca) {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => {
      const serial = s.getPeerCertificate().serialNumber;
      s.end();
      resolve(serial.replace(/^0+(?=.)/, '').toUpperCase());
    });
    s.setTimeout(10000 * slow(), () => s.destroy(new Error('TLS connect timed out')));
    s.on('error', reject);
  });
}
const norm = (hex) => hex.replace(/^0+(?=.)/, '').toUpperCase();

/** GET /readyz on the admin port -> JSON. */
function readyz(srv) {
  return new Promise((resolve, reject) => {
    http.get(`http://127.0.0.1:${srv.adminPort}/readyz`, (res) => {
      let b = '';
      res.on('data', (c) => { b += c; });
      res.on('end', () => { try { resolve(JSON.parse(b)); } catch (e) { reject(e); } });
    }).on('error', reject);
  });
}

/** Runs openssl s_client sending one HTTP request -> its stdout + stderr. */
function sClient(port, args) {
  return new Promise((resolve, reject) => {
    const p = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'localhost', '-ign_eof', ...args],
      { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (c) => { out += c; });
    p.stderr.on('data', (c) => { out += c; });
    const timer = setTimeout(() => p.kill('SIGKILL'), 15000 * slow());
    p.on('error', reject);
    p.on('exit', () => { clearTimeout(timer); resolve(out); });
    p.stdin.end('GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
  });
}

/** One raw WSS client joined to echo:<topic>; records its close. */
function wssClient(srv, ca, i) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`wss://127.0.0.1:${srv.port}/socket/websocket?vsn=2.0.0&token=${encodeURIComponent(srv.tokens[i % srv.tokens.length])}`,
      { ca, handshakeTimeout: 30000 * slow() });
    const c = { ws, closed: null, replies: 0, serial: null };
    ws.on('message', (m) => { if (String(m).includes('"phx_reply"')) c.replies++; });
    ws.on('close', (code) => { c.closed = code; });
    ws.on('error', (e) => { if (c.serial === null) reject(e); });
    ws.on('open', () => {
      c.serial = norm(ws._socket.getPeerCertificate().serialNumber);
      ws.send(JSON.stringify(['1', '1', `echo:t${i % 20}`, 'phx_join', {}]));
      resolve(c);
    });
  });
}

describe('TLS with a test CA: trust, ALPN, ciphers, reloads', () => {
  let ca;
  let live; // the paths the server reads
  let leaf1;
  let leaf2;
  let srv;

  before(async () => {
    ca = makeCA();
    leaf1 = ca.leaf('node-a-2024', 0x11);
    leaf2 = ca.leaf('node-a-2025', 0x22);
    live = { cert: path.join(ca.dir, 'live.pem'), key: path.join(ca.dir, 'live.key') };
    install(leaf1, live);
    srv = await startServer({
      name: 'tls_reload',
      env: { SB_TLS_CERT: live.cert, SB_TLS_KEY: live.key, SB_TLS_RELOAD_CHECK_S: '0', SB_REACTORS: '2', SB_IDLE_TIMEOUT_MS: '600000' },
    });
    srv.tokens = [];
    for (let i = 0; i < 20; i++) srv.tokens.push(srv.token(`w${i}`));
  });
  after(async () => {
    if (srv) await srv.stop();
    if (ca) fs.rmSync(ca.dir, { recursive: true, force: true });
  });

  test('phoenix.js over wss:// trusting the test CA: join and a reply; ALPN http/1.1', T, async () => {
    class CaWebSocket extends WebSocket { constructor(url, p) { super(url, p, { ca: ca.ca }); } }
    const s = new Socket(`wss://localhost:${srv.port}/socket`, { transport: CaWebSocket, params: { token: srv.token('alice') }, reconnectAfterMs: () => 500 });
    s.connect();
    try {
      const ch = s.channel('echo:wss', {});
      const [st] = await pushResult(ch.join(), 10000);
      assert.equal(st, 'ok');
      const [st2, r] = await pushResult(ch.push('ping', { n: 7 }), 10000);
      assert.equal(st2, 'ok');
      assert.deepEqual(r, { n: 7 });
    } finally { s.disconnect(); }
    const alpn = await new Promise((resolve, reject) => {
      const c = tls.connect({ host: '127.0.0.1', port: srv.port, ca: ca.ca, servername: 'localhost', ALPNProtocols: ['h2', 'http/1.1'] }, () => { resolve(c.alpnProtocol); c.end(); });
      c.on('error', reject);
    });
    assert.equal(alpn, 'http/1.1');
  });

  test('a client that does not trust the certificate refuses it; TLS 1.2 only with the configured ciphers', T, async () => {
    await assert.rejects(peerSerial(srv.port, undefined), (e) => /UNABLE_TO_VERIFY|unable to verify|self.signed/i.test(`${e.code} ${e.message}`));
    const other = makeCA();
    try {
      await assert.rejects(peerSerial(srv.port, other.ca), (e) => /UNABLE_TO_VERIFY|unable to verify|signature/i.test(`${e.code} ${e.message}`));
    } finally { fs.rmSync(other.dir, { recursive: true, force: true }); }
    const tryTls12 = (ciphers) => new Promise((resolve) => {
      const c = tls.connect({ host: '127.0.0.1', port: srv.port, ca: ca.ca, servername: 'localhost', maxVersion: 'TLSv1.2', ciphers }, () => { resolve(c.getCipher().name); c.end(); });
      c.on('error', (e) => resolve(`error: ${e.code || e.message}`));
    });
    assert.match(await tryTls12('ECDHE-ECDSA-AES128-GCM-SHA256'), /^ECDHE-ECDSA-AES128-GCM-SHA256$/);
    assert.match(await tryTls12('ECDHE-ECDSA-AES128-SHA'), /^error/, 'a CBC suite outside SB_TLS_CIPHERS is refused');
    assert.match(await tryTls12('AES128-GCM-SHA256'), /^error/, 'a suite without forward secrecy is refused');
  });

  test('SIGHUP with a new certificate while 1,000 WSS clients are connected: none dropped, new connections get the new one', T, async () => {
    assert.equal(await peerSerial(srv.port, ca.ca), leaf1.serial);
    const N = 1000;
    const clients = [];
    for (let i = 0; i < N; i += 50) {
      const batch = [];
      for (let j = i; j < Math.min(N, i + 50); j++) batch.push(wssClient(srv, ca.ca, j));
      clients.push(...await Promise.all(batch));
    }
    await waitFor(() => clients.every((c) => c.replies >= 1), 60000 * slow(), 'every client joined');
    assert.ok(clients.every((c) => c.serial === leaf1.serial));
    const before = srv.logsMatching(/"tls_reloaded"/).length;
    install(leaf2, live);
    process.kill(srv.pid, 'SIGHUP');
    await waitFor(() => srv.logsMatching(/"tls_reloaded"/).length > before, 10000 * slow(), 'the reload log line');
    const line = srv.logsMatching(/"tls_reloaded"/).pop().obj;
    assert.equal(line.reason, 'sighup');
    assert.equal(norm(line.certificate.serial), leaf2.serial);
    // new connections (on every reactor: several of them) see the new certificate
    for (let k = 0; k < 6; k++) assert.equal(await peerSerial(srv.port, ca.ca), leaf2.serial);
    const fresh = await wssClient(srv, ca.ca, 0);
    assert.equal(fresh.serial, leaf2.serial);
    await waitFor(() => fresh.replies >= 1, 10000 * slow(), 'a new client joins');
    // the 1,000 old ones: still open, still served on their old sessions
    for (const c of clients) c.ws.send(JSON.stringify([null, 'hb', 'phoenix', 'heartbeat', {}]));
    await waitFor(() => clients.every((c) => c.replies >= 2), 60000 * slow(), 'every old client answered after the reload');
    assert.equal(clients.filter((c) => c.closed !== null).length, 0, 'no client dropped');
    assert.equal(srv.alive(), true);
    for (const c of [...clients, fresh]) c.ws.terminate();
  });

  test('a broken new pair is refused with a log line and the pair in use is kept', T, async () => {
    const serialNow = await peerSerial(srv.port, ca.ca);
    const failed = () => srv.logsMatching(/"tls_reload_failed"/).length;
    // 1. garbage in the certificate file
    let n = failed();
    fs.writeFileSync(`${live.cert}.tmp`, '-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n');
    fs.renameSync(`${live.cert}.tmp`, live.cert);
    process.kill(srv.pid, 'SIGHUP');
    await waitFor(() => failed() > n, 10000 * slow(), 'a tls_reload_failed line');
    assert.match(srv.logsMatching(/"tls_reload_failed"/).pop().raw, /certificate/i);
    assert.equal(await peerSerial(srv.port, ca.ca), serialNow, 'still the old certificate');
    // 2. a certificate with a key that is not its own
    const leaf3 = ca.leaf('node-a-2026', 0x33);
    n = failed();
    install({ cert: leaf3.cert, key: leaf2.key }, live);
    process.kill(srv.pid, 'SIGHUP');
    await waitFor(() => failed() > n, 10000 * slow(), 'a tls_reload_failed line');
    assert.match(srv.logsMatching(/"tls_reload_failed"/).pop().raw, /key/i);
    assert.equal(await peerSerial(srv.port, ca.ca), serialNow, 'still the old certificate');
    // 3. the files fixed: the next SIGHUP takes them
    install(leaf3, live);
    process.kill(srv.pid, 'SIGHUP');
    await waitFor(async () => (await peerSerial(srv.port, ca.ca)) === leaf3.serial, 10000 * slow(), 'the fixed pair in use');
  });
});

describe('TLS renewals noticed on disk, and resumption', () => {
  test('SB_TLS_RELOAD_CHECK_S: a renewed certificate is picked up without a signal', T, async () => {
    const ca = makeCA();
    const a = ca.leaf('renew-1', 0x41);
    const b = ca.leaf('renew-2', 0x42);
    const live = { cert: path.join(ca.dir, 'live.pem'), key: path.join(ca.dir, 'live.key') };
    install(a, live);
    const srv = await startServer({ name: 'tls_watch', env: { SB_TLS_CERT: live.cert, SB_TLS_KEY: live.key, SB_TLS_RELOAD_CHECK_S: '1' } });
    try {
      assert.equal(await peerSerial(srv.port, ca.ca), a.serial);
      await sleep(1100); // a different mtime second even on coarse file systems
      install(b, live);
      await waitFor(async () => (await peerSerial(srv.port, ca.ca)) === b.serial, 15000 * slow(), 'the renewed certificate served');
      assert.equal(srv.logsMatching(/"tls_reloaded"/).pop().obj.reason, 'files_changed');
    } finally {
      await srv.stop();
      fs.rmSync(ca.dir, { recursive: true, force: true });
    }
  });

  test('a session ticket resumes (openssl s_client "Reused"), on this node and on another sharing SB_TLS_TICKET_KEY_FILE', T, async () => {
    const ca = makeCA();
    const leaf = ca.leaf('resume', 0x51);
    const keyFile = path.join(ca.dir, 'tickets.key');
    fs.writeFileSync(keyFile, crypto.randomBytes(160), { mode: 0o600 }); // two keys
    const env = { SB_TLS_CERT: leaf.cert, SB_TLS_KEY: leaf.key, SB_TLS_TICKET_KEY_FILE: keyFile };
    const a = await startServer({ name: 'tls_resume_a', env });
    const b = await startServer({ name: 'tls_resume_b', env });
    const c = await startServer({ name: 'tls_resume_c', env: { SB_TLS_CERT: leaf.cert, SB_TLS_KEY: leaf.key } });
    try {
      for (const ver of ['-tls1_3', '-tls1_2']) {
        const sess = path.join(ca.dir, `sess${ver}.pem`);
        const first = await sClient(a.port, [ver, '-CAfile', ca.caCert, '-sess_out', sess]);
        assert.match(first, /^New, TLSv1\.[23]/m, first);
        assert.match(first, /HTTP\/1\.1 200/);
        assert.match(first, /Verify return code: 0 \(ok\)/);
        const again = await sClient(a.port, [ver, '-CAfile', ca.caCert, '-sess_in', sess]);
        assert.match(again, /^Reused, TLSv1\.[23]/m, `${ver} not resumed on the same node:\n${again}`);
        const other = await sClient(b.port, [ver, '-CAfile', ca.caCert, '-sess_in', sess]);
        assert.match(other, /^Reused, TLSv1\.[23]/m, `${ver} not resumed on the node sharing the ticket keys:\n${other}`);
        const stranger = await sClient(c.port, [ver, '-CAfile', ca.caCert, '-sess_in', sess]);
        assert.match(stranger, /^New, TLSv1\.[23]/m, `${ver}: a node with its own keys must not resume:\n${stranger}`);
        assert.match(stranger, /HTTP\/1\.1 200/, 'it falls back to a full handshake');
      }
      const ra = await readyz(a);
      assert.equal(ra.tls.handshakes_full, 2);
      assert.equal(ra.tls.handshakes_resumed, 2);
      const rb = await readyz(b);
      assert.deepEqual(rb.tls, { handshakes_full: 0, handshakes_resumed: 2 });
      const rc = await readyz(c);
      assert.deepEqual(rc.tls, { handshakes_full: 2, handshakes_resumed: 0 });
    } finally {
      await a.stop();
      await b.stop();
      await c.stop();
      fs.rmSync(ca.dir, { recursive: true, force: true });
    }
  });

  test('a ticket key file of the wrong size stops the start', T, async () => {
    const ca = makeCA();
    const leaf = ca.leaf('bad', 0x61);
    const keyFile = path.join(ca.dir, 'tickets.key');
    fs.writeFileSync(keyFile, crypto.randomBytes(79));
    try {
      const r = await new Promise((resolve) => {
        const child = spawn(require('./lib/server').binPath(), ['serve'], {
          env: { ...process.env, SB_SECRET: 'x'.repeat(40), SB_PORT: '0', SB_ADMIN_PORT: '-1', SB_HOST: '127.0.0.1', SB_DATABASE_URL: '', SB_TLS_CERT: leaf.cert, SB_TLS_KEY: leaf.key, SB_TLS_TICKET_KEY_FILE: keyFile },
          stdio: ['ignore', 'ignore', 'pipe'],
        });
        let err = '';
        child.stderr.on('data', (d) => { err += d; });
        const timer = setTimeout(() => child.kill('SIGKILL'), 10000 * slow());
        child.on('exit', (code) => { clearTimeout(timer); resolve({ code, err }); });
      });
      assert.equal(r.code, 2);
      assert.match(r.err, /SB_TLS_TICKET_KEY_FILE.*79 bytes/);
    } finally { fs.rmSync(ca.dir, { recursive: true, force: true }); }
  });
});
