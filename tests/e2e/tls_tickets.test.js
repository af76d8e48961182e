'use strict';
// Session-ticket keys (issue 18, point 1; docs/configuration.md
// SB_TLS_TICKET_ROTATE_S / SB_TLS_TICKET_KEY_FILE, docs/deployment.md
// "Resumption"), with node's tls client (`session` option, 'session' event,
// isSessionReused(), getTLSTicket(): a ticket starts with the 16-byte name of
// the key that encrypted it), on TLS 1.2 and TLS 1.3:
// - rotation of the random key: a ticket from before a rotation still
//   resumes while its key is the previous one ("the previous one still
//   decrypts for as long again") and comes back renewed under the new key; a
//   new handshake gets a ticket under the new key; after a second rotation
//   the first ticket no longer resumes (a full handshake, still served);
// - SB_TLS_TICKET_KEY_FILE shared by two servers: each resumes the other's
//   tickets; the file rotated as deployment.md says (a new key prepended,
//   SIGHUP): new tickets under the new key, old tickets still resume on both;
//   the old key dropped (SIGHUP): its tickets fall back to full handshakes,
//   the new key's still resume; a broken file on SIGHUP keeps the keys in use;
// - with a key file, no random rotation, and a ticket lives 2 x
//   SB_TLS_TICKET_ROTATE_S (docs/configuration.md).

const { describe, test } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const tls = require('node:tls');
const { startServer, slow } = require('./lib/server');
const { sleep, waitFor } = require('./lib/phx');

const F = slow();
const T = { timeout: 180000 * F };
const VERSIONS = ['TLSv1.2', 'TLSv1.3'];

/** A throwaway CA and one server certificate for 127.0.0.1 / localhost. */
function makeCert() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-tick-'));
  const o = (args) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const p = (n) => path.join(dir, n);
  o(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', p('ca.key'), '-out', p('ca.pem'),
    '-days', '2', '-subj', '/CN=Switchboard ticket test CA', '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  fs.writeFileSync(p('leaf.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n');
  o(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', p('leaf.key'), '-out', p('leaf.csr'), '-subj', '/CN=tickets']);
  o(['x509', '-req', '-in', p('leaf.csr'), '-CA', p('ca.pem'), '-CAkey', p('ca.key'), '-set_serial', '7', '-days', '1',
    '-out', p('leaf.pem'), '-extfile', p('leaf.ext')]);
  return { dir, ca: fs.readFileSync(p('ca.pem')), cert: p('leaf.pem'), key: p('leaf.key') };
}

/**
 * One TLS connection with an HTTP request (so a TLS 1.3 ticket arrives):
 * resolves { reused, session, name, served }: whether the offered session
 * resumed, the connection's newest session (a TLS 1.2 ticket comes in the
 * handshake, renewed or not; TLS 1.3 ones after it, 'session' event), the hex
 * key name of that session's ticket, and whether /healthz answered 200.
 */
function handshake(port, ca, version, session) {
  return new Promise((resolve, reject) => {
    let got = '';
    let reused = null;
    let sess = null;
    let ticket = null;
    const s = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost', minVersion: version, maxVersion: version, session });
    s.on('secureConnect', () => {
      reused = s.isSessionReused(); // as of the handshake (the handle is gone once closed)
      if (version === 'TLSv1.2') { sess = s.getSession(); ticket = s.getTLSTicket(); }
      s.write('GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
    });
    s.on('session', (x) => { sess = x; ticket = s.getTLSTicket() || ticket; });
    s.on('data', (d) => { got += d.toString('latin1'); });
    s.setTimeout(15000 * F, () => s.destroy(new Error('TLS connection timed out')));
    s.on('error', reject);
    s.on('close', () => resolve({
      reused,
      session: sess || session || null,
      name: ticket ? ticket.subarray(0, 16).toString('hex') : null,
      served: /^HTTP\/1\.1 200 /.test(got),
    }));
  });
}

/** Full handshakes until one gets a ticket whose key name is not in `seen`. */
async function nextKeyName(port, ca, version, seen, what) {
  return waitFor(async () => {
    const h = await handshake(port, ca, version);
    assert.ok(h.served && !h.reused && h.name, 'a full handshake with a ticket');
    return seen.includes(h.name) ? null : h;
  }, 30000, what, 200);
}

describe('TLS session-ticket keys', () => {
  test('SB_TLS_TICKET_ROTATE_S: a ticket resumes across one rotation (renewed under the new key), not across two', T, async () => {
    const c = makeCert();
    const rotate = Math.max(3, Math.round(3 * F));
    const srv = await startServer({ name: 'tls_tickets_rotate', env: { SB_TLS_CERT: c.cert, SB_TLS_KEY: c.key, SB_TLS_TICKET_ROTATE_S: String(rotate) } });
    try {
      const first = {};
      for (const v of VERSIONS) {
        first[v] = await handshake(srv.port, c.ca, v);
        assert.ok(first[v].served && !first[v].reused && first[v].name, `${v}: a ticket from the first handshake`);
        const again = await handshake(srv.port, c.ca, v, first[v].session);
        assert.ok(again.reused && again.served, `${v}: resumed before any rotation`);
      }
      const k1 = first['TLSv1.2'].name;
      assert.equal(first['TLSv1.3'].name, k1, 'one key encrypts tickets of both versions');

      // the first rotation: new handshakes get tickets under k2
      const h2 = await nextKeyName(srv.port, c.ca, 'TLSv1.2', [k1], 'the first rotation');
      const k2 = h2.name;
      const renewed = {};
      for (const v of VERSIONS) {
        const r = await handshake(srv.port, c.ca, v, first[v].session);
        assert.ok(r.reused && r.served, `${v}: a ticket of the previous key still resumes`);
        assert.equal(r.name, k2, `${v}: the resumed connection's ticket is renewed under the new key`);
        renewed[v] = r.session;
        const fresh = await handshake(srv.port, c.ca, v);
        assert.equal(fresh.name, k2, `${v}: a new handshake's ticket is under the new key`);
      }

      // the second rotation: k1 is gone, k2 is the previous key
      await nextKeyName(srv.port, c.ca, 'TLSv1.2', [k1, k2], 'the second rotation');
      for (const v of VERSIONS) {
        const old = await handshake(srv.port, c.ca, v, first[v].session);
        assert.equal(old.reused, false, `${v}: a ticket two rotations old does not resume`);
        assert.ok(old.served, `${v}: it falls back to a full handshake and is served`);
        // TLS 1.3: a resumption makes a new session (its lifetime starts
        // anew). TLS 1.2: OpenSSL keeps the first handshake's session time in
        // the renewed ticket, so it may already be past its 2 x rotate
        // lifetime here, depending on where the first handshake fell between
        // two rotations: only its key is checked above.
        if (v === 'TLSv1.3') {
          const r = await handshake(srv.port, c.ca, v, renewed[v]);
          assert.ok(r.reused, `${v}: the renewed ticket (previous key) still resumes`);
        }
      }
    } finally {
      await srv.stop();
      fs.rmSync(c.dir, { recursive: true, force: true });
    }
  });

  test('SB_TLS_TICKET_KEY_FILE shared by two nodes, rotated in the file and re-read on SIGHUP', T, async () => {
    const c = makeCert();
    const keyFile = path.join(c.dir, 'tickets.key');
    const write = (buf) => { fs.writeFileSync(`${keyFile}.tmp`, buf, { mode: 0o600 }); fs.renameSync(`${keyFile}.tmp`, keyFile); };
    const K1 = crypto.randomBytes(80);
    const K2 = crypto.randomBytes(80);
    const nameOf = (k) => k.subarray(0, 16).toString('hex');
    write(K1);
    const env = { SB_TLS_CERT: c.cert, SB_TLS_KEY: c.key, SB_TLS_TICKET_KEY_FILE: keyFile };
    const a = await startServer({ name: 'tls_tickets_a', env });
    const b = await startServer({ name: 'tls_tickets_b', env });
    const reload = async (what) => {
      const seen = [a, b].map((s) => s.logsMatching(/"tls_reload(ed|_failed)"/).length);
      for (const s of [a, b]) process.kill(s.pid, 'SIGHUP');
      await waitFor(() => [a, b].every((s, i) => s.logsMatching(/"tls_reload(ed|_failed)"/).length > seen[i]), 15000, what);
      return [a, b].map((s) => s.logsMatching(/"tls_reload(ed|_failed)"/).pop().obj);
    };
    try {
      const s1 = {};
      for (const v of VERSIONS) {
        const h = await handshake(a.port, c.ca, v);
        assert.equal(h.name, nameOf(K1), `${v}: the ticket is under the file's first key`);
        s1[v] = h.session;
        assert.ok((await handshake(b.port, c.ca, v, s1[v])).reused, `${v}: node b resumes node a's ticket`);
      }
      // rotate as deployment.md says: the new key first, the old one kept
      write(Buffer.concat([K2, K1]));
      for (const r of await reload('SIGHUP with two keys')) {
        assert.equal(r.msg, 'tls_reloaded');
        assert.equal(r.ticket_keys, 2);
      }
      const s2 = {};
      for (const v of VERSIONS) {
        for (const s of [a, b]) assert.ok((await handshake(s.port, c.ca, v, s1[v])).reused, `${v}: an old-key ticket still resumes on ${s === a ? 'a' : 'b'}`);
        const h = await handshake(b.port, c.ca, v);
        assert.equal(h.name, nameOf(K2), `${v}: new tickets under the new first key`);
        s2[v] = h.session;
        assert.ok((await handshake(a.port, c.ca, v, s2[v])).reused, `${v}: node a resumes node b's new-key ticket`);
      }

      // the old key dropped: its tickets fall back to full handshakes
      write(K2);
      for (const r of await reload('SIGHUP with the old key dropped')) assert.equal(r.ticket_keys, 1);
      for (const v of VERSIONS) {
        for (const s of [a, b]) {
          const old = await handshake(s.port, c.ca, v, s1[v]);
          assert.equal(old.reused, false, `${v}: a dropped key's ticket does not resume`);
          assert.ok(old.served, `${v}: a full handshake instead, served`);
          assert.ok((await handshake(s.port, c.ca, v, s2[v])).reused, `${v}: the kept key's ticket resumes`);
        }
      }

      // a broken file on SIGHUP: refused, the keys in use kept
      write(crypto.randomBytes(79));
      for (const r of await reload('SIGHUP with a broken key file')) {
        assert.equal(r.msg, 'tls_reload_failed');
        assert.match(r.error, /SB_TLS_TICKET_KEY_FILE/);
      }
      for (const v of VERSIONS) {
        assert.ok((await handshake(a.port, c.ca, v, s2[v])).reused, `${v}: the keys in use kept`);
        assert.equal((await handshake(b.port, c.ca, v)).name, nameOf(K2));
      }
    } finally {
      await a.stop();
      await b.stop();
      fs.rmSync(c.dir, { recursive: true, force: true });
    }
  });
  test('with SB_TLS_TICKET_KEY_FILE the file\'s key is never rotated, and a ticket lives 2 x SB_TLS_TICKET_ROTATE_S', T, async () => {
    const c = makeCert();
    const keyFile = path.join(c.dir, 'tickets.key');
    const K = crypto.randomBytes(80);
    fs.writeFileSync(keyFile, K, { mode: 0o600 });
    const rotate = Math.max(2, Math.round(2 * F));
    const srv = await startServer({ name: 'tls_tickets_life', env: { SB_TLS_CERT: c.cert, SB_TLS_KEY: c.key, SB_TLS_TICKET_KEY_FILE: keyFile, SB_TLS_TICKET_ROTATE_S: String(rotate) } });
    try {
      const first = {};
      for (const v of VERSIONS) {
        first[v] = await handshake(srv.port, c.ca, v);
        assert.ok((await handshake(srv.port, c.ca, v, first[v].session)).reused, `${v}: resumed at once`);
      }
      const issued = Date.now();
      await sleep(2 * rotate * 1000 + 1500);
      assert.ok(Date.now() - issued > 2 * rotate * 1000);
      for (const v of VERSIONS) {
        const h = await handshake(srv.port, c.ca, v, first[v].session);
        assert.equal(h.reused, false, `${v}: a ticket older than 2 x ${rotate} s does not resume`);
        assert.ok(h.served);
        assert.equal(h.name, K.subarray(0, 16).toString('hex'), `${v}: still the file's key after ${2 * rotate} s (no random rotation)`);
        assert.ok((await handshake(srv.port, c.ca, v, h.session)).reused, `${v}: the fresh ticket resumes`);
      }
    } finally {
      await srv.stop();
      fs.rmSync(c.dir, { recursive: true, force: true });
    }
  });
});
