'use strict';
// A WebSocket client (npm `ws`) that queues every frame the server sends, so a
// test can take them one at a time with a bounded wait and compare them
// byte for byte with the Phoenix transcripts.
//
//   const c = await Client.open(srv.wsUrl(`/socket/websocket?vsn=2.0.0&token=${tok}`));
//   c.send('["1","1","echo:lobby","phx_join",{}]');
//   await c.expectText('["1","1","echo:lobby","phx_reply",{"response":{"joined":"echo:lobby"},"status":"ok"}]');
//   await c.expectNothing(200);
//   const { code } = await c.expectClose(1011);

const assert = require('node:assert/strict');
const WebSocket = require('ws');
const { slow } = require('./server');

const DEFAULT_WAIT = 3000;

const MAX_SHOWN = 600;

function clip(s) {
  return s.length > MAX_SHOWN ? `${s.slice(0, MAX_SHOWN)}... (${s.length} chars)` : s;
}

function describeFrame(f) {
  if (!f) return String(f);
  if (f.type === 'text') return `TEXT ${clip(f.data)}`;
  if (f.type === 'binary') return `BINARY hex=${clip(f.data.toString('hex'))}`;
  if (f.type === 'close') return `CLOSE code=${f.code} reason=${JSON.stringify(f.reason)}`;
  if (f.type === 'error') return `ERROR ${f.error && f.error.message}`;
  return JSON.stringify(f);
}

class Client {
  constructor(ws) {
    this.ws = ws;
    this.queue = [];      // frames not yet taken: {type:'text'|'binary', data}
    this.history = [];    // every frame, for diagnostics
    this.waiters = [];
    this.closeInfo = null;
    this.error = null;
    this.pongs = [];
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        this.closeInfo = { type: 'close', code, reason: reason.toString('utf8') };
        this._remember(this.closeInfo);
        this._wake();
        resolve(this.closeInfo);
      });
    });
    ws.on('message', (data, isBinary) => {
      const f = isBinary
        ? { type: 'binary', data: Buffer.isBuffer(data) ? data : Buffer.concat(data) }
        : { type: 'text', data: data.toString('utf8') };
      this.queue.push(f);
      this._remember(f);
      this._wake();
    });
    ws.on('pong', (data) => {
      this.pongs.push(Buffer.from(data));
      this._wake();
    });
    ws.on('error', (err) => {
      this.error = err;
      this._remember({ type: 'error', error: err });
      this._wake();
    });
  }

  /**
   * Opens a socket; resolves when open. Rejects with err.statusCode / err.body
   * when the server answers the upgrade with a plain HTTP response.
   */
  static open(url, { protocols, headers, timeoutMs = 5000, wsOptions = {} } = {}) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, protocols, { headers, handshakeTimeout: timeoutMs * slow(), ...wsOptions });
      const c = new Client(ws);
      let upgradeHeaders = null;
      ws.on('upgrade', (res) => { upgradeHeaders = res.headers; c.upgradeResponse = res; });
      ws.on('unexpected-response', (req, res) => {
        const chunks = [];
        res.on('data', (d) => chunks.push(d));
        res.on('end', () => {
          const err = new Error(`unexpected HTTP ${res.statusCode} on upgrade`);
          err.statusCode = res.statusCode;
          err.headers = res.headers;
          err.body = Buffer.concat(chunks).toString('utf8');
          reject(err);
          req.destroy();
        });
        res.on('error', reject);
      });
      ws.once('open', () => {
        c.headers = upgradeHeaders;
        resolve(c);
      });
      ws.once('error', (err) => reject(err));
    });
  }

  _remember(f) {
    this.history.push(f);
    this.seen = (this.seen || 0) + 1;
    if (this.history.length > 400) this.history.splice(0, 200);
  }

  _wake() {
    const w = this.waiters;
    this.waiters = [];
    for (const fn of w) fn();
  }

  _waitChange(ms) {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.waiters = this.waiters.filter((f) => f !== done);
        resolve(false);
      }, ms);
      const done = () => { clearTimeout(t); resolve(true); };
      this.waiters.push(done);
    });
  }

  send(data) {
    this.ws.send(data);
  }

  sendJSON(value) {
    this.ws.send(JSON.stringify(value));
  }

  sendBinary(buf) {
    this.ws.send(buf, { binary: true });
  }

  /** Next data frame (text or binary); throws if the socket closes or nothing arrives in time. */
  async next(timeoutMs = DEFAULT_WAIT) {
    const deadline = Date.now() + timeoutMs * slow();
    for (;;) {
      if (this.queue.length) return this.queue.shift();
      if (this.closeInfo) {
        throw new Error(`socket closed (${describeFrame(this.closeInfo)}) while waiting for a frame; frames so far:\n${this.dump()}`);
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(`no frame within ${timeoutMs * slow()} ms; frames so far:\n${this.dump()}`);
      }
      await this._waitChange(left);
    }
  }

  async nextText(timeoutMs) {
    const f = await this.next(timeoutMs);
    assert.equal(f.type, 'text', `expected a text frame, got ${describeFrame(f)}`);
    return f.data;
  }

  async nextJSON(timeoutMs) {
    return JSON.parse(await this.nextText(timeoutMs));
  }

  /** Asserts the next frame is a text frame equal, byte for byte, to `expected`. */
  async expectText(expected, timeoutMs) {
    const f = await this.next(timeoutMs);
    const got = describeFrame(f);
    if (f.type !== 'text' || f.data !== expected) {
      let hint = '';
      if (f.type === 'text' && (f.data.length > MAX_SHOWN || expected.length > MAX_SHOWN)) {
        let i = 0;
        while (i < f.data.length && f.data[i] === expected[i]) i++;
        hint = ` (first difference at char ${i}: expected ...${JSON.stringify(expected.slice(Math.max(0, i - 20), i + 40))}, got ...${JSON.stringify(f.data.slice(Math.max(0, i - 20), i + 40))})`;
      }
      if (f.type === 'text') {
        try {
          assert.deepStrictEqual(JSON.parse(f.data), JSON.parse(expected));
          hint += ' (same JSON value, different bytes)';
        } catch { /* differs as JSON too */ }
      }
      assert.fail(`frame mismatch${hint}\n  expected: TEXT ${clip(expected)}\n  received: ${got}\nframes so far:\n${this.dump()}`);
    }
    return f.data;
  }

  /** Asserts the next frame is a binary frame with exactly these bytes. */
  async expectBinary(expected, timeoutMs) {
    const f = await this.next(timeoutMs);
    if (f.type !== 'binary' || !f.data.equals(expected)) {
      assert.fail(`frame mismatch\n  expected: BINARY hex=${clip(expected.toString('hex'))}\n  received: ${describeFrame(f)}`);
    }
    return f.data;
  }

  /** Asserts no data frame arrives within ms (and the socket stays open unless allowClose). */
  async expectNothing(ms = 200, { allowClose = false } = {}) {
    const deadline = Date.now() + ms;
    for (;;) {
      if (this.queue.length) {
        assert.fail(`unexpected frame: ${describeFrame(this.queue[0])}\nframes so far:\n${this.dump()}`);
      }
      if (this.closeInfo && !allowClose) {
        assert.fail(`unexpected close: ${describeFrame(this.closeInfo)}`);
      }
      const left = deadline - Date.now();
      if (left <= 0) return;
      await this._waitChange(left);
    }
  }

  /**
   * Waits for the close; asserts that no data frame came first (unless
   * allowFrames) and, when `code` is given, the close code. Returns {code, reason, frames}.
   */
  async expectClose(code, { timeoutMs = DEFAULT_WAIT, allowFrames = false, reason } = {}) {
    const ms = timeoutMs * slow();
    let timer;
    const info = await Promise.race([
      this.closed,
      new Promise((resolve) => { timer = setTimeout(() => resolve(null), ms); }),
    ]);
    clearTimeout(timer);
    if (!info) {
      assert.fail(`socket not closed within ${ms} ms (expected close ${code}); frames so far:\n${this.dump()}`);
    }
    const frames = this.queue.splice(0);
    if (!allowFrames && frames.length) {
      assert.fail(`expected close ${code} with no frame before it, got:\n${frames.map(describeFrame).join('\n')}\n${describeFrame(info)}`);
    }
    if (code !== undefined) {
      assert.equal(info.code, code, `close code: expected ${code}, got ${describeFrame(info)}${this.error ? ` (client error: ${this.error.message})` : ''}`);
    }
    if (reason !== undefined) assert.equal(info.reason, reason, 'close reason');
    return { ...info, frames };
  }

  /** Sends a WS ping and waits for the matching pong. */
  async ping(payload, timeoutMs = DEFAULT_WAIT) {
    const buf = Buffer.from(payload);
    this.pongs = [];
    this.ws.ping(buf);
    const deadline = Date.now() + timeoutMs * slow();
    while (!this.pongs.length) {
      if (this.closeInfo) assert.fail(`closed while waiting for pong: ${describeFrame(this.closeInfo)}`);
      const left = deadline - Date.now();
      if (left <= 0) assert.fail(`no pong within ${timeoutMs} ms`);
      await this._waitChange(left);
    }
    return this.pongs.shift();
  }

  close(code = 1000, reason = '') {
    try { this.ws.close(code, reason); } catch { /* already closed */ }
  }

  terminate() {
    try { this.ws.terminate(); } catch { /* gone */ }
  }

  /** The last frames seen (all of them, taken or not), for failure messages. */
  dump(last = 20) {
    const h = this.history;
    const shown = h.slice(-last).map((f) => `  ${describeFrame(f)}`);
    if (this.seen > shown.length) shown.unshift(`  ... ${this.seen - shown.length} earlier frames`);
    return shown.join('\n') || '  (none)';
  }
}

/** Joins `topic` with join_ref = ref = `ref` and asserts the echo channel's exact join reply (V2). */
async function joinEcho(c, topic, ref, payload = {}) {
  c.sendJSON([ref, ref, topic, 'phx_join', payload]);
  const r = JSON.stringify(ref);
  await c.expectText(`[${r},${r},${JSON.stringify(topic)},"phx_reply",{"response":{"joined":${JSON.stringify(topic)}},"status":"ok"}]`);
}

/** Closes every client given, ignoring errors. */
function closeAll(...clients) {
  for (const c of clients.flat()) if (c) c.terminate();
}

module.exports = { Client, joinEcho, closeAll, describeFrame, DEFAULT_WAIT };
