'use strict';
// Raw TCP helpers: hand-built HTTP requests and hand-built WebSocket frames,
// for what well-behaved clients (fetch, ws) cannot send.
//
//   const r = await httpExchange(port, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n', { responses: 1 });
//   r.responses[0].status, .headers['content-type'], .body (Buffer); r.closed
//
//   const w = await RawWs.connect(port, `/socket/websocket?vsn=2.0.0&token=${tok}`);
//   w.sendFrame({ opcode: 0x1, payload: '[null,"1","phoenix","heartbeat",{}]' });
//   const f = await w.nextFrame();           // {fin, rsv, opcode, masked, payload}
//   const c = await w.expectCloseFrame();    // {code, reason}

const net = require('node:net');
const crypto = require('node:crypto');
const { slow } = require('./server');

const OP = { CONT: 0x0, TEXT: 0x1, BINARY: 0x2, CLOSE: 0x8, PING: 0x9, PONG: 0xa };

// ---------------------------------------------------------------- HTTP ----

/**
 * Incremental HTTP/1.1 response parser (status line, headers, body by
 * Content-Length or chunked; a response without either to a non-HEAD request
 * runs to the connection's end).
 */
class ResponseParser {
  constructor() {
    this.buf = Buffer.alloc(0);
    this.responses = [];
    this.error = null;
  }

  push(chunk) {
    this.buf = Buffer.concat([this.buf, chunk]);
    this._parse(false);
  }

  end() { this._parse(true); }

  _parse(eof) {
    for (;;) {
      const headEnd = this.buf.indexOf('\r\n\r\n');
      if (headEnd < 0) return;
      const head = this.buf.subarray(0, headEnd).toString('latin1');
      const lines = head.split('\r\n');
      const m = lines[0].match(/^HTTP\/(\d\.\d) (\d{3})(?: (.*))?$/);
      if (!m) { this.error = `bad status line: ${JSON.stringify(lines[0])}`; return; }
      const headers = {};
      const rawHeaders = [];
      for (const line of lines.slice(1)) {
        const i = line.indexOf(':');
        if (i <= 0) { this.error = `bad header line: ${JSON.stringify(line)}`; return; }
        const k = line.slice(0, i).trim().toLowerCase();
        const v = line.slice(i + 1).trim();
        rawHeaders.push([k, v]);
        headers[k] = k in headers ? `${headers[k]}, ${v}` : v;
      }
      const status = Number(m[2]);
      let bodyStart = headEnd + 4;
      let body;
      let consumed;
      const noBody = status === 101 || status === 204 || status === 304 || (status >= 100 && status < 200);
      if (noBody) {
        body = Buffer.alloc(0);
        consumed = bodyStart;
      } else if (/chunked/i.test(headers['transfer-encoding'] || '')) {
        const chunks = [];
        let p = bodyStart;
        let done = false;
        for (;;) {
          const le = this.buf.indexOf('\r\n', p);
          if (le < 0) break;
          const size = parseInt(this.buf.subarray(p, le).toString('latin1'), 16);
          if (Number.isNaN(size)) { this.error = 'bad chunk size'; return; }
          if (size === 0) {
            const trailerEnd = this.buf.indexOf('\r\n\r\n', le);
            const simpleEnd = this.buf.subarray(le, le + 4).toString('latin1') === '\r\n\r\n';
            if (simpleEnd) { p = le + 4; done = true; break; }
            if (trailerEnd < 0) break;
            p = trailerEnd + 4; done = true; break;
          }
          if (this.buf.length < le + 2 + size + 2) break;
          chunks.push(this.buf.subarray(le + 2, le + 2 + size));
          p = le + 2 + size + 2;
        }
        if (!done) return;
        body = Buffer.concat(chunks);
        consumed = p;
      } else if (headers['content-length'] !== undefined) {
        const len = Number(headers['content-length']);
        if (this.buf.length < bodyStart + len) return;
        body = this.buf.subarray(bodyStart, bodyStart + len);
        consumed = bodyStart + len;
      } else {
        if (!eof) return;
        body = this.buf.subarray(bodyStart);
        consumed = this.buf.length;
      }
      this.responses.push({
        version: m[1], status, reason: m[3] || '', headers, rawHeaders, body: Buffer.from(body),
        text() { return this.body.toString('utf8'); },
      });
      this.buf = this.buf.subarray(consumed);
      if (noBody && status === 101) return; // the rest is WebSocket data
    }
  }
}

/**
 * Opens a TCP connection, writes `data` (a string/Buffer, or an array of them
 * written one after another with `gapMs` between), and collects responses.
 * Resolves when `responses` responses have arrived (and, with waitClose, when
 * the server has closed the connection) or when the timeout passes; never rejects
 * on timeout: the caller asserts on what came back.
 *   -> { responses, closed, reset, raw, socket }
 */
function httpExchange(port, data, { responses = 1, waitClose = false, timeoutMs = 5000, gapMs = 0, keepOpen = false } = {}) {
  return new Promise((resolve) => {
    const sock = net.connect({ port, host: '127.0.0.1' });
    const parser = new ResponseParser();
    const raw = [];
    let closed = false;
    let reset = false;
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      if (!keepOpen || closed) sock.destroy();
      resolve({ responses: parser.responses, closed, reset, raw: Buffer.concat(raw), parseError: parser.error, socket: sock });
    };
    const check = () => {
      if (parser.responses.length >= responses && (!waitClose || closed)) finish();
    };
    const timer = setTimeout(finish, timeoutMs * slow());
    sock.on('data', (d) => { raw.push(d); parser.push(d); check(); });
    sock.on('end', () => { closed = true; parser.end(); check(); finish(); });
    sock.on('close', () => { closed = true; parser.end(); finish(); });
    sock.on('error', (e) => { if (e.code === 'ECONNRESET') reset = true; closed = true; });
    sock.on('connect', async () => {
      const parts = Array.isArray(data) ? data : [data];
      for (let i = 0; i < parts.length; i++) {
        if (sock.destroyed) return;
        sock.write(parts[i]);
        if (gapMs && i < parts.length - 1) await new Promise((r) => setTimeout(r, gapMs));
      }
    });
  });
}

/** GET path with fetch, bounded; returns { status, headers, text, json() }. */
async function get(port, path, { headers = {}, timeoutMs = 5000, method = 'GET', body } = {}) {
  const ctl = new AbortController();
  const t = setTimeout(() => ctl.abort(), timeoutMs * slow());
  try {
    const res = await fetch(`http://127.0.0.1:${port}${path}`, { method, headers, body, signal: ctl.signal });
    const text = await res.text();
    return {
      status: res.status,
      headers: res.headers,
      text,
      json() { return JSON.parse(text); },
    };
  } finally {
    clearTimeout(t);
  }
}

// ----------------------------------------------------------- WebSocket ----

/** Encodes one client frame. mask: true (random key), false, or a 4-byte Buffer. */
function encodeFrame({ fin = true, rsv = 0, opcode = OP.TEXT, payload = Buffer.alloc(0), mask = true, length } = {}) {
  const data = Buffer.isBuffer(payload) ? payload : Buffer.from(payload, 'utf8');
  const len = length === undefined ? data.length : length;
  let header;
  if (len < 126) {
    header = Buffer.alloc(2);
    header[1] = len;
  } else if (len < 65536) {
    header = Buffer.alloc(4);
    header[1] = 126;
    header.writeUInt16BE(len, 2);
  } else {
    header = Buffer.alloc(10);
    header[1] = 127;
    header.writeBigUInt64BE(BigInt(len), 2);
  }
  header[0] = (fin ? 0x80 : 0) | ((rsv & 0x7) << 4) | (opcode & 0xf);
  if (!mask) return Buffer.concat([header, data]);
  const key = Buffer.isBuffer(mask) ? mask : crypto.randomBytes(4);
  header[1] |= 0x80;
  const masked = Buffer.alloc(data.length);
  for (let i = 0; i < data.length; i++) masked[i] = data[i] ^ key[i & 3];
  return Buffer.concat([header, key, masked]);
}

/** Close frame payload: 2-byte code + reason. */
function closePayload(code, reason = '') {
  const r = Buffer.from(reason, 'utf8');
  const b = Buffer.alloc(2 + r.length);
  b.writeUInt16BE(code, 0);
  r.copy(b, 2);
  return b;
}

/** Incremental server-frame parser. */
class FrameParser {
  constructor() { this.buf = Buffer.alloc(0); this.frames = []; this.error = null; }
  push(chunk) {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : Buffer.from(chunk);
    for (;;) {
      if (this.buf.length < 2) return;
      const b0 = this.buf[0];
      const b1 = this.buf[1];
      let len = b1 & 0x7f;
      let p = 2;
      if (len === 126) {
        if (this.buf.length < 4) return;
        len = this.buf.readUInt16BE(2); p = 4;
      } else if (len === 127) {
        if (this.buf.length < 10) return;
        const big = this.buf.readBigUInt64BE(2);
        if (big > BigInt(Number.MAX_SAFE_INTEGER)) { this.error = 'absurd frame length'; return; }
        len = Number(big); p = 10;
      }
      const masked = !!(b1 & 0x80);
      let key = null;
      if (masked) {
        if (this.buf.length < p + 4) return;
        key = this.buf.subarray(p, p + 4); p += 4;
      }
      if (this.buf.length < p + len) return;
      let payload = Buffer.from(this.buf.subarray(p, p + len));
      if (key) for (let i = 0; i < payload.length; i++) payload[i] ^= key[i & 3];
      this.frames.push({ fin: !!(b0 & 0x80), rsv: (b0 >> 4) & 7, opcode: b0 & 0xf, masked, payload });
      this.buf = this.buf.subarray(p + len);
    }
  }
}

function describeRaw(f) {
  if (!f) return String(f);
  const name = { 0: 'CONT', 1: 'TEXT', 2: 'BINARY', 8: 'CLOSE', 9: 'PING', 10: 'PONG' }[f.opcode] || `OP${f.opcode}`;
  if (f.opcode === OP.CLOSE) {
    const code = f.payload.length >= 2 ? f.payload.readUInt16BE(0) : null;
    return `CLOSE code=${code} reason=${JSON.stringify(f.payload.subarray(2).toString('utf8'))}`;
  }
  if (f.opcode === OP.TEXT) return `${name} ${f.payload.toString('utf8').slice(0, 300)}`;
  return `${name} hex=${f.payload.toString('hex').slice(0, 300)}`;
}

class RawWs {
  constructor(sock, parser, response) {
    this.sock = sock;
    this.parser = parser;
    this.response = response;
    this.frames = parser.frames; // shared queue
    this.ended = false;
    this.waiters = [];
    const wake = () => { const w = this.waiters; this.waiters = []; w.forEach((f) => f()); };
    this._wake = wake;
    sock.on('data', (d) => { parser.push(d); wake(); });
    sock.on('end', () => { this.ended = true; wake(); });
    sock.on('close', () => { this.ended = true; wake(); });
    sock.on('error', () => { this.ended = true; wake(); });
  }

  /**
   * Performs the opening handshake by hand. Resolves with a RawWs on 101;
   * rejects with err.response for any other answer.
   */
  static connect(port, path, { headers = {}, timeoutMs = 5000 } = {}) {
    return new Promise((resolve, reject) => {
      const sock = net.connect({ port, host: '127.0.0.1' });
      sock.setNoDelay(true);
      const key = crypto.randomBytes(16).toString('base64');
      const hdrs = {
        Host: `127.0.0.1:${port}`,
        Upgrade: 'websocket',
        Connection: 'Upgrade',
        'Sec-WebSocket-Key': key,
        'Sec-WebSocket-Version': '13',
        ...headers,
      };
      const req = `GET ${path} HTTP/1.1\r\n${Object.entries(hdrs).filter(([, v]) => v !== null).map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\n\r\n`;
      const hp = new ResponseParser();
      const timer = setTimeout(() => { sock.destroy(); reject(new Error('handshake timeout')); }, timeoutMs * slow());
      const onData = (d) => {
        hp.push(d);
        if (!hp.responses.length) return;
        clearTimeout(timer);
        sock.removeListener('data', onData);
        const res = hp.responses[0];
        if (res.status !== 101) {
          const err = new Error(`handshake answered HTTP ${res.status}`);
          err.response = res;
          sock.destroy();
          reject(err);
          return;
        }
        const expectAccept = crypto.createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
        if (res.headers['sec-websocket-accept'] !== expectAccept) {
          sock.destroy();
          reject(new Error(`bad Sec-WebSocket-Accept ${res.headers['sec-websocket-accept']}`));
          return;
        }
        const fp = new FrameParser();
        const w = new RawWs(sock, fp, res);
        if (hp.buf.length) fp.push(hp.buf);
        resolve(w);
      };
      sock.on('data', onData);
      sock.on('error', (e) => { clearTimeout(timer); reject(e); });
      sock.on('connect', () => sock.write(req));
    });
  }

  write(buf) { if (!this.sock.destroyed) this.sock.write(buf); }

  sendFrame(opts) { this.write(encodeFrame(opts)); }

  sendText(text) { this.sendFrame({ opcode: OP.TEXT, payload: text }); }

  async _wait(ms) {
    return new Promise((resolve) => {
      const t = setTimeout(() => { this.waiters = this.waiters.filter((f) => f !== done); resolve(false); }, ms);
      const done = () => { clearTimeout(t); resolve(true); };
      this.waiters.push(done);
    });
  }

  /** Next server frame; throws on timeout or on the end of the TCP stream. */
  async nextFrame(timeoutMs = 3000) {
    const deadline = Date.now() + timeoutMs * slow();
    for (;;) {
      if (this.frames.length) return this.frames.shift();
      if (this.ended) throw new Error('connection ended while waiting for a frame');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no frame within ${timeoutMs * slow()} ms`);
      await this._wait(left);
    }
  }

  /**
   * Waits for a close frame. Returns {code, reason, before: [frames before it], tcpClosed}.
   * code is null for a close frame with no payload; the whole result is
   * {closeFrame: false} when the TCP stream ended without a close frame.
   */
  async waitCloseFrame(timeoutMs = 3000) {
    const before = [];
    const deadline = Date.now() + timeoutMs * slow();
    for (;;) {
      while (this.frames.length) {
        const f = this.frames.shift();
        if (f.opcode === OP.CLOSE) {
          const code = f.payload.length >= 2 ? f.payload.readUInt16BE(0) : null;
          return { closeFrame: true, code, reason: f.payload.subarray(2).toString('utf8'), before, frame: f };
        }
        before.push(f);
      }
      if (this.ended) return { closeFrame: false, code: null, before, ended: true };
      const left = deadline - Date.now();
      if (left <= 0) return { closeFrame: false, code: null, before, timeout: true };
      await this._wait(left);
    }
  }

  /** Waits until the server closes the TCP connection; true if it did in time. */
  async waitEnd(timeoutMs = 3000) {
    const deadline = Date.now() + timeoutMs * slow();
    while (!this.ended) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await this._wait(left);
    }
    return true;
  }

  destroy() { this.sock.destroy(); }
}

module.exports = {
  OP, encodeFrame, closePayload, FrameParser, ResponseParser, RawWs, httpExchange, get, describeRaw,
};
