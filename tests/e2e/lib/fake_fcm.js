'use strict';
// A fake of Google's OAuth2 token endpoint and FCM HTTP v1 (issue 14), the
// one stand-in the project allows (Google is not reachable here). It speaks
// HTTP/2 over TLS (ALPN h2) with Node's http2 module and a certificate made
// at run time (openssl), trusted by the server through SB_FCM_CA_FILE: the
// server's real production path (libcurl multi, TLS, HTTP/2 multiplexing).
// (Cleartext h2c is not used: Debian bookworm's libcurl 7.88.1 breaks a
// reused prior-knowledge connection, curl#10634.)
//
//   const fake = await FakeFcm.start();           // key pair generated now
//   fake.keyFile                                  // service-account key for SB_FCM_CREDENTIALS
//   fake.url, fake.caFile                         // for SB_FCM_ENDPOINT, SB_FCM_CA_FILE
//   fake.sends                                    // accepted pushes: {token, message, at, accessToken}
//   fake.requests                                 // every push request: {token, status, at}
//   fake.tokenRequests                            // {ok, claims, at, why}
//   fake.problems                                 // what the server sent wrong (tests assert it stays empty)
//   fake.script(token, [{status, errorCode, message, retryAfter, delayMs, hang, body}])
//   fake.revokeTokens()                           // every access token issued so far answers 401
//   fake.hold() / fake.release()                  // every push waits (in flight) until release
//   fake.cutConnections({ processed })            // GOAWAY mid-flight: see below
//   fake.maxStreamsPerSession = n                 // a graceful GOAWAY after n streams on a connection
//   await fake.close()
//   fake.sessions, fake.maxStreams               // HTTP/2 sessions (connections) accepted; most streams open at once
//   FakeFcm.start({ cleartext: true })            // h2c on http:// (the server's SB_FCM_ENDPOINT http:// path)
//
// The token endpoint checks the JWT: RS256 signature with the key's public
// half, iss, scope, aud (= token_uri), iat, exp <= iat + 3600. FCM checks the
// bearer token (issued, not expired, not revoked), the path's project and
// the body (message.token, data values strings, notification shape).
// `wrongKey: true` writes a key file whose private key is not the one the
// fake verifies with: every JWT is refused (invalid_grant).
//
// cutConnections({ processed }): on every connection with held pushes, the
// first `processed` of them (by stream id) count as processed (recorded in
// `sends`, never answered), a GOAWAY (NO_ERROR) names the last of them as
// its last-stream-id, and the connection is closed at once: the held pushes
// above it were not processed (RFC 9113 §6.8: safe to send again); the ones
// at or below it must not be sent again. maxStreamsPerSession: after that
// many streams a connection is closed gracefully (session.close(): GOAWAY
// with the last stream received, those answered, later ones refused), as
// real front ends cap a connection's requests (and as nghttp2 >= 1.57 in
// Node would otherwise end a connection abruptly, GOAWAY INTERNAL_ERROR,
// once a client has sent ~1,000 RST_STREAM frames on it: libcurl 7.88
// sends one per finished request).

const http2 = require('node:http2');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFileSync } = require('node:child_process');

const SCOPE = 'https://www.googleapis.com/auth/firebase.messaging';

function b64urlJson(s) { return JSON.parse(Buffer.from(s, 'base64url').toString('utf8')); }

class FakeFcm {
  static async start({ projectId = 'sb-test-project', tokenTtlS = 3600, wrongKey = false, cleartext = false } = {}) {
    const f = new FakeFcm();
    f.projectId = projectId;
    f.tokenTtlS = tokenTtlS;
    f.sends = [];
    f.requests = [];
    f.tokenRequests = [];
    f.problems = [];
    f.scripts = new Map();
    f.tokens = new Map(); // access token -> {exp, revoked}
    f.hung = [];
    f.defaultReply = null;
    const { publicKey, privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
    f.publicKey = publicKey;
    let signing = privateKey;
    if (wrongKey) signing = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    f.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-fcm-'));
    f.caFile = path.join(f.dir, 'cert.pem');
    const tlsKey = path.join(f.dir, 'tls-key.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', tlsKey, '-out', f.caFile,
      '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    const h2opts = { peerMaxConcurrentStreams: 1000, maxSessionInvalidFrames: 1e9, maxSessionRejectedStreams: 1e9 };
    f.server = cleartext
      ? http2.createServer(h2opts)
      : http2.createSecureServer({ key: fs.readFileSync(tlsKey), cert: fs.readFileSync(f.caFile), ...h2opts });
    f.sessions = 0;
    f.openStreams = 0;
    f.maxStreams = 0;
    f.held = [];
    f.maxStreamsPerSession = 0;
    const fresh = [];
    f.server.on('session', (ss) => {
      f.sessions++;
      fresh.push(ss);
      ss.streamCount = 0;
      ss.on('error', () => {});
    });
    // Node emits 'session' inside its own 'secureConnection' listener, before ours
    f.server.on('secureConnection', (sock) => { const ss = fresh.pop(); fresh.length = 0; if (ss) ss.rawSocket = sock; });
    f.server.on('stream', (stream, headers) => {
      f.openStreams++;
      f.maxStreams = Math.max(f.maxStreams, f.openStreams);
      stream.on('close', () => { f.openStreams--; });
      const ss = stream.session;
      if (ss) {
        ss.streamCount++;
        if (f.maxStreamsPerSession && ss.streamCount === f.maxStreamsPerSession && !ss.closed) ss.close();
      }
      f.onStream(stream, headers);
    });
    f.server.on('sessionError', () => {});
    await new Promise((resolve) => f.server.listen(0, '127.0.0.1', resolve));
    f.port = f.server.address().port;
    f.url = `${cleartext ? 'http' : 'https'}://127.0.0.1:${f.port}`;
    f.tokenUri = `${f.url}/token`;
    f.clientEmail = `switchboard@${projectId}.iam.gserviceaccount.com`;
    f.keyFile = path.join(f.dir, 'service-account.json');
    fs.writeFileSync(f.keyFile, JSON.stringify({
      type: 'service_account',
      project_id: projectId,
      private_key_id: crypto.randomBytes(8).toString('hex'),
      private_key: signing.export({ type: 'pkcs8', format: 'pem' }),
      client_email: f.clientEmail,
      client_id: '1234567890',
      token_uri: f.tokenUri,
    }), { mode: 0o600 });
    return f;
  }

  script(token, replies) { this.scripts.set(token, [...(this.scripts.get(token) || []), ...replies]); }

  revokeTokens() { for (const t of this.tokens.values()) t.revoked = true; }

  hold() {
    this.defaultReply = { until: new Promise((r) => { this.releaseHold = r; }) };
  }

  release() {
    this.defaultReply = null;
    if (this.releaseHold) this.releaseHold();
  }

  // Pushes held in flight now (stream ids known), by connection.
  heldBySession() {
    const by = new Map();
    for (const h of this.held) {
      if (h.cut || h.answered || h.stream.destroyed || !h.stream.session) continue;
      const ss = h.stream.session;
      if (!by.has(ss)) by.set(ss, []);
      by.get(ss).push(h);
    }
    for (const l of by.values()) l.sort((a, b) => a.stream.id - b.stream.id);
    return by;
  }

  cutConnections({ processed = 1 } = {}) {
    const out = { processed: 0, unprocessed: 0, goaways: [] };
    for (const [ss, list] of this.heldBySession()) {
      const done = list.slice(0, processed);
      const last = done.length ? done[done.length - 1].stream.id : 0;
      for (const h of list) {
        h.cut = true;
        if (h.stream.id <= last) {
          h.req.status = 200; // processed: FCM would have delivered it
          this.sends.push({ token: h.token, message: h.msg, at: Date.now(), accessToken: h.bearer });
          out.processed++;
        } else {
          h.req.status = -1; // never processed
          out.unprocessed++;
        }
      }
      out.goaways.push(last);
      try { ss.goaway(http2.constants.NGHTTP2_NO_ERROR, last); } catch { /* gone */ }
      // the connection dies without the answers (the GOAWAY is flushed first)
      setTimeout(() => { if (ss.rawSocket) ss.rawSocket.destroy(); else ss.destroy(); }, 50);
    }
    return out;
  }

  sendsTo(token) { return this.sends.filter((s) => s.token === token); }

  requestsTo(token) { return this.requests.filter((r) => r.token === token); }

  problem(what) { this.problems.push(what); }

  onStream(stream, headers) {
    const chunks = [];
    stream.on('data', (c) => chunks.push(c));
    stream.on('error', () => {});
    stream.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      try {
        if (headers[':method'] === 'POST' && headers[':path'] === '/token') this.onToken(stream, headers, body);
        else if (headers[':method'] === 'POST' && /^\/v1\/projects\/[^/]+\/messages:send$/.test(headers[':path'])) this.onSend(stream, headers, body);
        else this.reply(stream, 404, { error: { code: 404, message: 'no such route', status: 'NOT_FOUND' } });
      } catch (e) {
        this.problem(`fake crashed: ${e.stack}`);
        this.reply(stream, 500, { error: { code: 500, status: 'INTERNAL' } });
      }
    });
  }

  reply(stream, status, obj, extra = {}) {
    if (stream.destroyed || stream.closed) return;
    try {
      stream.respond({ ':status': status, 'content-type': 'application/json; charset=UTF-8', ...extra });
      stream.end(typeof obj === 'string' ? obj : JSON.stringify(obj));
    } catch { /* the client went away */ }
  }

  onToken(stream, headers, body) {
    const rec = { ok: false, at: Date.now(), claims: null, why: '' };
    this.tokenRequests.push(rec);
    const refuse = (why) => {
      rec.why = why;
      this.reply(stream, 400, { error: 'invalid_grant', error_description: why });
    };
    if (!String(headers['content-type'] || '').startsWith('application/x-www-form-urlencoded')) return refuse('content-type');
    const form = new URLSearchParams(body);
    if (form.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:jwt-bearer') return refuse('grant_type');
    const jwt = form.get('assertion') || '';
    const parts = jwt.split('.');
    if (parts.length !== 3) return refuse('assertion is not a JWT');
    let h;
    let c;
    try { h = b64urlJson(parts[0]); c = b64urlJson(parts[1]); } catch { return refuse('JWT parts are not JSON'); }
    rec.claims = c;
    if (h.alg !== 'RS256' || h.typ !== 'JWT') return refuse(`JWT header ${JSON.stringify(h)}`);
    const okSig = crypto.verify('sha256', Buffer.from(`${parts[0]}.${parts[1]}`), this.publicKey, Buffer.from(parts[2], 'base64url'));
    if (!okSig) return refuse('Invalid JWT Signature.');
    const now = Math.floor(Date.now() / 1000);
    if (c.iss !== this.clientEmail) return refuse('iss');
    if (c.scope !== SCOPE) return refuse('scope');
    if (c.aud !== this.tokenUri) return refuse('aud');
    if (!Number.isInteger(c.iat) || Math.abs(c.iat - now) > 120) return refuse('iat');
    if (!Number.isInteger(c.exp) || c.exp <= now || c.exp - c.iat > 3600) return refuse('exp');
    const token = `ya29.fake-${crypto.randomBytes(12).toString('hex')}`;
    this.tokens.set(token, { exp: Date.now() + this.tokenTtlS * 1000, revoked: false });
    rec.ok = true;
    rec.token = token;
    this.reply(stream, 200, { access_token: token, expires_in: this.tokenTtlS, token_type: 'Bearer' });
  }

  checkMessage(m) {
    if (!m || typeof m !== 'object') return 'no message';
    if (typeof m.token !== 'string' || !m.token) return 'message.token';
    if (m.data) {
      for (const [k, v] of Object.entries(m.data)) if (typeof v !== 'string') return `data.${k} is not a string`;
    }
    if (m.notification && typeof m.notification.title !== 'string') return 'notification.title';
    if (m.android && m.android.ttl !== undefined && !/^\d+(\.\d+)?s$/.test(m.android.ttl)) return 'android.ttl';
    if (Buffer.byteLength(JSON.stringify({ ...m, token: '' })) > 4096) return 'payload over 4 KB';
    return null;
  }

  onSend(stream, headers, body) {
    const auth = String(headers.authorization || '');
    const bearer = auth.startsWith('Bearer ') ? auth.slice(7) : '';
    const t = this.tokens.get(bearer);
    let msg;
    try { msg = JSON.parse(body).message; } catch { msg = null; }
    const token = msg && typeof msg.token === 'string' ? msg.token : '';
    const req = { token, at: Date.now(), status: 0 };
    this.requests.push(req);
    if (!t || t.revoked || Date.now() > t.exp) {
      req.status = 401;
      return this.reply(stream, 401, { error: { code: 401, message: 'Request had invalid authentication credentials.', status: 'UNAUTHENTICATED' } });
    }
    if (!headers[':path'].includes(`/projects/${this.projectId}/`)) this.problem(`wrong project path ${headers[':path']}`);
    const bad = this.checkMessage(msg);
    if (bad) {
      this.problem(`bad body: ${bad}`);
      req.status = 400;
      return this.reply(stream, 400, { error: { code: 400, message: `Invalid JSON payload: ${bad}`, status: 'INVALID_ARGUMENT' } });
    }
    const queue = this.scripts.get(token);
    const step = (queue && queue.length ? queue.shift() : null) || this.defaultReply;
    const held = step && step.until ? { stream, req, msg, token, bearer, cut: false, answered: false } : null;
    const answer = () => {
      if (held) {
        if (held.cut) return undefined;
        held.answered = true;
      }
      if (!step || !step.status || step.status === 200) {
        req.status = 200;
        this.sends.push({ token, message: msg, at: Date.now(), accessToken: bearer });
        return this.reply(stream, 200, step && step.body !== undefined ? step.body : { name: `projects/${this.projectId}/messages/${crypto.randomBytes(6).toString('hex')}` });
      }
      req.status = step.status;
      const status = { 400: 'INVALID_ARGUMENT', 403: 'PERMISSION_DENIED', 404: 'NOT_FOUND', 429: 'RESOURCE_EXHAUSTED', 503: 'UNAVAILABLE' }[step.status] || 'UNKNOWN';
      const extra = step.retryAfter !== undefined ? { 'retry-after': String(step.retryAfter) } : {};
      const err = step.body !== undefined ? step.body : {
        error: {
          code: step.status, message: step.message || status, status,
          details: [{ '@type': 'type.googleapis.com/google.firebase.fcm.v1.FcmError', errorCode: step.errorCode || status }],
        },
      };
      return this.reply(stream, step.status, err, extra);
    };
    if (step && step.hang) { this.hung.push(stream); return undefined; }
    if (step && step.delayMs) { setTimeout(answer, step.delayMs); return undefined; }
    if (step && step.until) { this.held.push(held); step.until.then(answer); return undefined; }
    return answer();
  }

  async close() {
    for (const s of this.hung) { try { s.close(); } catch { /* gone */ } }
    await new Promise((resolve) => { this.server.close(() => resolve()); setTimeout(resolve, 1000); });
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

module.exports = { FakeFcm, SCOPE };
