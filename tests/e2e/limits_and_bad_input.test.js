'use strict';
// Target S2: malformed HTTP, oversize headers and bodies, bad WebSocket frames
// (unmasked, bad opcode, RSV bits, fragmented or oversize control frames,
// invalid UTF-8, oversize messages), malformed Phoenix messages, deeply
// nested and huge JSON. Each gets a clear error or close, never a crash:
// after each case a fresh request to /healthz still answers 200.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const { startServer, slow } = require('./lib/server');
const { Client } = require('./lib/frames');
const { RawWs, httpExchange, get, OP, encodeFrame, closePayload, describeRaw, ResponseParser } = require('./lib/raw');
const { binPush, socketPath, sleep } = require('./lib/phx');

const T = { timeout: 20000 };
const WS_MAX = 4096;
const BODY_MAX = 65536;

async function healthy(srv) {
  assert.ok(srv.alive(), `server process died:\n${srv.tail()}`);
  const r = await get(srv.port, '/healthz');
  assert.equal(r.status, 200, 'GET /healthz on a fresh connection');
}

/** Asserts a raw WebSocket gets a close frame with `code` (no data frame first) and then TCP end. */
async function expectWsClose(w, code, what) {
  const r = await w.waitCloseFrame(3000);
  assert.ok(r.closeFrame, `${what}: expected close ${code}, got ${r.timeout ? 'nothing (timeout)' : 'TCP end without a close frame'}; frames: ${r.before.map(describeRaw).join(' | ')}`);
  assert.deepEqual(r.before.map(describeRaw), [], `${what}: no frame before the close`);
  assert.equal(r.code, code, `${what}: close code`);
  assert.equal(r.frame.masked, false, 'server close frame is unmasked');
  // a failed connection is closed by the server; give it the client's close reply
  // too, in case it waits for the closing handshake
  if (!(await w.waitEnd(1000))) {
    w.sendFrame({ opcode: OP.CLOSE, payload: closePayload(code) });
    assert.ok(await w.waitEnd(3000), `${what}: server closes TCP after the close frame`);
  }
  w.destroy();
}

describe('HTTP bad input (SB_HTTP_MAX_BODY=65536, default 16 KiB header limit)', () => {
  let srv;
  let alice;
  before(async () => {
    srv = await startServer({ name: 'limits_http', env: { SB_HTTP_MAX_BODY: String(BODY_MAX), SB_WS_MAX_MESSAGE: String(WS_MAX) } });
    alice = srv.token('alice');
  });
  after(async () => { if (srv) await srv.stop(); });

  for (const [name, req, inBody] of [
    ['garbage request line', 'GARBAGE\r\n\r\n'],
    ['unknown protocol in the request line', 'GET /healthz HTTX/1.1\r\nHost: x\r\n\r\n'],
    ['spaces inside the request target', 'GET /health z HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['bad method characters', 'G(T /healthz HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['binary junk', Buffer.from([0x00, 0x01, 0x02, 0xff, 0xfe, 0x0d, 0x0a, 0x0d, 0x0a])],
    ['header line without colon', 'GET /healthz HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n'],
    ['bad Content-Length', 'POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n'],
    ['two different Content-Lengths', 'POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab'],
    // the error is in the body: a server may have answered the headers already
    ['bad chunk size', 'POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n', true],
  ]) {
    test(`malformed request (${name}) -> 400 and the connection is closed`, T, async () => {
      const r = await httpExchange(srv.port, req, { waitClose: true });
      const rawText = JSON.stringify(r.raw.toString('latin1').slice(0, 300));
      if (inBody) assert.ok(r.responses.length >= 1 && r.responses.length <= 2, `one or two responses, got raw ${rawText}`);
      else assert.equal(r.responses.length, 1, `one response, got raw ${rawText}`);
      assert.equal(r.responses[r.responses.length - 1].status, 400, rawText);
      assert.ok(r.closed, 'connection closed after the 400');
      await healthy(srv);
    });
  }

  test('header section over 16 KiB -> 431', T, async () => {
    const r = await httpExchange(srv.port, `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20000)}\r\n\r\n`, { waitClose: true });
    assert.equal(r.responses[0] && r.responses[0].status, 431, `got ${JSON.stringify(r.raw.toString('latin1').slice(0, 200))}`);
    await healthy(srv);
  });

  test('many small headers adding up over 16 KiB -> 431', T, async () => {
    let h = '';
    for (let i = 0; i < 1000; i++) h += `X-H${i}: ${'v'.repeat(20)}\r\n`;
    const r = await httpExchange(srv.port, `GET /healthz HTTP/1.1\r\nHost: x\r\n${h}\r\n`, { waitClose: true });
    assert.equal(r.responses[0] && r.responses[0].status, 431);
    await healthy(srv);
  });

  test('a header section that never ends is cut off at the limit (431), not buffered', T, async () => {
    // 64 KiB of header bytes without the blank line; the server must answer
    // without waiting for the end of the headers
    const parts = ['GET /healthz HTTP/1.1\r\nHost: x\r\n'];
    for (let i = 0; i < 64; i++) parts.push(`X-Endless-${i}: ${'z'.repeat(1000)}\r\n`);
    const r = await httpExchange(srv.port, parts, { gapMs: 2, timeoutMs: 5000 });
    assert.equal(r.responses[0] && r.responses[0].status, 431, `got ${JSON.stringify(r.raw.toString('latin1').slice(0, 200))}`);
    await healthy(srv);
  });

  test('request line over the limit -> 414 or 431, not a crash', T, async () => {
    const r = await httpExchange(srv.port, `GET /${'p'.repeat(40000)} HTTP/1.1\r\nHost: x\r\n\r\n`, { waitClose: true });
    assert.ok(r.responses[0], 'a response');
    assert.ok([414, 431].includes(r.responses[0].status), `status ${r.responses[0].status}`);
    await healthy(srv);
  });

  async function lpSession() {
    const r = await get(srv.port, `/socket/longpoll?token=${encodeURIComponent(alice)}&vsn=2.0.0`);
    const m = r.text.match(/"token":"([^"]+)"/);
    assert.ok(m, `long-poll session: ${r.text}`);
    return `/socket/longpoll?token=${encodeURIComponent(alice)}&vsn=2.0.0&token=${encodeURIComponent(m[1])}`;
  }

  test('declared body over SB_HTTP_MAX_BODY -> 413 without waiting for the body', T, async () => {
    const path = await lpSession();
    const r = await httpExchange(srv.port, `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${BODY_MAX + 1}\r\n\r\n`, { timeoutMs: 3000 });
    assert.equal(r.responses[0] && r.responses[0].status, 413, `got ${JSON.stringify(r.raw.toString('latin1').slice(0, 200))}`);
    await healthy(srv);
  });

  test('declared body far over the limit (Content-Length 10^15) -> 413', T, async () => {
    const path = await lpSession();
    const r = await httpExchange(srv.port, `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000000000000000\r\n\r\n`, { timeoutMs: 3000 });
    assert.equal(r.responses[0] && r.responses[0].status, 413);
    await healthy(srv);
  });

  test('chunked body growing over SB_HTTP_MAX_BODY -> 413', T, async () => {
    const path = await lpSession();
    const result = await new Promise((resolve) => {
      const sock = net.connect({ port: srv.port, host: '127.0.0.1' });
      const parser = new ResponseParser();
      let sent = 0;
      let timer = null;
      const done = () => { clearInterval(timer); sock.destroy(); resolve({ responses: parser.responses, sent }); };
      const giveUp = setTimeout(done, 8000 * slow());
      sock.on('data', (d) => { parser.push(d); if (parser.responses.length) { clearTimeout(giveUp); done(); } });
      sock.on('error', () => {});
      sock.on('close', () => { clearTimeout(giveUp); done(); });
      sock.on('connect', () => {
        sock.write(`POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`);
        const chunk = `2000\r\n${' '.repeat(0x2000)}\r\n`;
        timer = setInterval(() => {
          if (sent >= 4 * BODY_MAX) { sock.write('0\r\n\r\n'); clearInterval(timer); return; }
          sock.write(chunk);
          sent += 0x2000;
        }, 10);
      });
    });
    assert.equal(result.responses[0] && result.responses[0].status, 413, `after ${result.sent} body bytes`);
    assert.ok(result.sent <= 2 * BODY_MAX, `answered only after ${result.sent} bytes`);
    await healthy(srv);
  });

  test('unknown path -> 404 with a JSON error body', T, async () => {
    const r = await get(srv.port, '/no/such/path');
    assert.equal(r.status, 404);
    assert.match(r.headers.get('content-type') || '', /^application\/json/);
    const body = r.json();
    assert.equal(body.error && body.error.code, 'not_found', r.text);
    assert.equal(typeof body.error.message, 'string');
    await healthy(srv);
  });

  test('a known path with the wrong method -> 405 with an Allow header', T, async () => {
    const r = await fetch(`${srv.http}/healthz`, { method: 'DELETE' });
    assert.equal(r.status, 405);
    assert.equal(r.headers.get('allow'), 'GET, HEAD');
    assert.equal((await r.json()).error.code, 'method_not_allowed');
    await healthy(srv);
  });

  test('keep-alive: two requests one after the other on one connection', T, async () => {
    const r = await httpExchange(srv.port, ['GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n', 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'], { responses: 2, gapMs: 200 });
    assert.deepEqual(r.responses.map((x) => x.status), [200, 200]);
    assert.equal(r.closed, false, 'connection kept open');
  });

  test('pipelining: two requests in one write get two responses, in order', T, async () => {
    const r = await httpExchange(srv.port, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n', { responses: 3 });
    assert.deepEqual(r.responses.map((x) => x.status), [200, 404, 200]);
  });

  test('a request dribbled one byte at a time is parsed', T, async () => {
    const req = 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n';
    const r = await httpExchange(srv.port, [...req], { gapMs: 2 });
    assert.equal(r.responses[0] && r.responses[0].status, 200);
  });

  test('Connection: close and HTTP/1.0 -> response, then the server closes', T, async () => {
    let r = await httpExchange(srv.port, 'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', { waitClose: true });
    assert.equal(r.responses[0] && r.responses[0].status, 200);
    assert.ok(r.closed, 'closed after Connection: close');
    r = await httpExchange(srv.port, 'GET /healthz HTTP/1.0\r\n\r\n', { waitClose: true });
    assert.equal(r.responses[0] && r.responses[0].status, 200);
    assert.ok(r.closed, 'closed after an HTTP/1.0 request');
  });

  test('a client that connects and sends nothing does not hurt anyone', T, async () => {
    const idle = [];
    for (let i = 0; i < 50; i++) {
      const s = net.connect({ port: srv.port, host: '127.0.0.1' });
      s.on('error', () => {});
      idle.push(s);
    }
    await sleep(100);
    await healthy(srv);
    idle.forEach((s) => s.destroy());
  });

  test('server alive after all HTTP cases', T, async () => { await healthy(srv); });
});

describe('WebSocket frame violations (SB_WS_MAX_MESSAGE=4096)', () => {
  let srv;
  let alice;
  const raw = () => RawWs.connect(srv.port, socketPath({ token: alice }));

  before(async () => {
    srv = await startServer({ name: 'limits_ws', env: { SB_WS_MAX_MESSAGE: String(WS_MAX) } });
    alice = srv.token('alice');
  });
  after(async () => { if (srv) await srv.stop(); });

  const HB = '[null,"1","phoenix","heartbeat",{}]';

  const cases = [
    ['unmasked client frame', 1002, () => encodeFrame({ payload: HB, mask: false })],
    ['reserved data opcode 0x3', 1002, () => encodeFrame({ opcode: 0x3, payload: 'x' })],
    ['reserved control opcode 0xB', 1002, () => encodeFrame({ opcode: 0xb, payload: '' })],
    ['fragmented control frame (ping with FIN=0)', 1002, () => encodeFrame({ fin: false, opcode: OP.PING, payload: 'abc' })],
    ['control frame over 125 bytes (ping of 126)', 1002, () => encodeFrame({ opcode: OP.PING, payload: Buffer.alloc(126, 0x61) })],
    ['RSV1 set without an extension', 1002, () => encodeFrame({ rsv: 4, payload: HB })],
    ['RSV2 set', 1002, () => encodeFrame({ rsv: 2, payload: HB })],
    ['RSV3 set', 1002, () => encodeFrame({ rsv: 1, payload: HB })],
    ['continuation frame with no message started', 1002, () => encodeFrame({ opcode: OP.CONT, payload: HB })],
    ['new text frame inside a fragmented message', 1002, () => Buffer.concat([
      encodeFrame({ fin: false, opcode: OP.TEXT, payload: '[null,' }),
      encodeFrame({ fin: true, opcode: OP.TEXT, payload: HB }),
    ])],
    ['close frame with a 1-byte payload', 1002, () => encodeFrame({ opcode: OP.CLOSE, payload: Buffer.from([0x03]) })],
    ['close frame with code 1005 (must not be sent)', 1002, () => encodeFrame({ opcode: OP.CLOSE, payload: closePayload(1005) })],
    ['close frame with code 999', 1002, () => encodeFrame({ opcode: OP.CLOSE, payload: closePayload(999) })],
    ['invalid UTF-8 in a text message', 1007, () => encodeFrame({ payload: Buffer.concat([Buffer.from('[null,"1","phoenix","heartbeat",{"s":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}]')]) })],
    ['overlong UTF-8 encoding in a text message', 1007, () => encodeFrame({ payload: Buffer.concat([Buffer.from('[null,"1","phoenix","heartbeat",{"s":"'), Buffer.from([0xc0, 0xaf]), Buffer.from('"}]')]) })],
    ['UTF-16 surrogate encoded in UTF-8', 1007, () => encodeFrame({ payload: Buffer.concat([Buffer.from('[null,"1","phoenix","heartbeat",{"s":"'), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('"}]')]) })],
    ['invalid UTF-8 split over fragments', 1007, () => Buffer.concat([
      encodeFrame({ fin: false, opcode: OP.TEXT, payload: Buffer.concat([Buffer.from('[null,"1","phoenix","heartbeat",{"s":"'), Buffer.from([0xe2, 0x82])]) }),
      encodeFrame({ fin: true, opcode: OP.CONT, payload: Buffer.concat([Buffer.from([0x28]), Buffer.from('"}]')]) }),
    ])],
    ['text message over SB_WS_MAX_MESSAGE in one frame', 1009, () => encodeFrame({ payload: `[null,"1","phoenix","heartbeat",{"pad":"${'x'.repeat(WS_MAX)}"}]` })],
    ['binary message over SB_WS_MAX_MESSAGE', 1009, () => encodeFrame({ opcode: OP.BINARY, payload: binPush('1', '1', 'echo:x', 'ping', Buffer.alloc(WS_MAX)) })],
    ['fragmented message adding up over SB_WS_MAX_MESSAGE', 1009, () => Buffer.concat([
      encodeFrame({ fin: false, opcode: OP.TEXT, payload: '[null,"1","phoenix","heartbeat",{"pad":"' }),
      encodeFrame({ fin: false, opcode: OP.CONT, payload: 'y'.repeat(2000) }),
      encodeFrame({ fin: false, opcode: OP.CONT, payload: 'y'.repeat(2000) }),
      encodeFrame({ fin: true, opcode: OP.CONT, payload: `${'y'.repeat(2000)}"}]` }),
    ])],
  ];

  for (const [name, code, build] of cases) {
    test(`${name} -> close ${code}`, T, async () => {
      const w = await raw();
      w.write(build());
      await expectWsClose(w, code, name);
      await healthy(srv);
    });
  }

  test('a frame header announcing 2^62 bytes -> close 1009 at once (no waiting for the payload)', T, async () => {
    const w = await raw();
    const hdr = Buffer.alloc(14);
    hdr[0] = 0x81;
    hdr[1] = 0x80 | 127;
    hdr.writeBigUInt64BE(1n << 62n, 2);
    w.write(hdr); // mask key left zero, no payload follows
    await expectWsClose(w, 1009, 'huge length');
    await healthy(srv);
  });

  test('a frame header announcing 2^63+ bytes (MSB set, invalid) -> close 1002 or 1009', T, async () => {
    const w = await raw();
    const hdr = Buffer.alloc(14);
    hdr[0] = 0x81;
    hdr[1] = 0x80 | 127;
    hdr.writeBigUInt64BE(0xffffffffffffffffn, 2);
    w.write(hdr);
    const r = await w.waitCloseFrame(3000);
    assert.ok(r.closeFrame, 'a close frame');
    assert.ok([1002, 1009].includes(r.code), `close code ${r.code}`);
    w.destroy();
    await healthy(srv);
  });

  test('a text message of exactly SB_WS_MAX_MESSAGE bytes is accepted', T, async () => {
    const w = await raw();
    const head = '[null,"1","phoenix","heartbeat",{}]';
    const msg = head + ' '.repeat(WS_MAX - head.length); // JSON allows trailing whitespace
    assert.equal(Buffer.byteLength(msg), WS_MAX);
    w.sendText(msg);
    const f = await w.nextFrame();
    assert.equal(describeRaw(f), 'TEXT [null,"1","phoenix","phx_reply",{"response":{},"status":"ok"}]');
    w.destroy();
  });

  test('valid UTF-8 split across fragments (inside one code point) is accepted', T, async () => {
    const w = await raw();
    const euro = Buffer.from('€'); // e2 82 ac
    w.write(Buffer.concat([
      encodeFrame({ fin: false, opcode: OP.TEXT, payload: Buffer.concat([Buffer.from('[null,"1","phoenix","heartbeat",{"s":"'), euro.subarray(0, 1)]) }),
      encodeFrame({ fin: false, opcode: OP.CONT, payload: euro.subarray(1, 2) }),
      encodeFrame({ fin: true, opcode: OP.CONT, payload: Buffer.concat([euro.subarray(2), Buffer.from('"}]')]) }),
    ]));
    const f = await w.nextFrame();
    assert.equal(describeRaw(f), 'TEXT [null,"1","phoenix","phx_reply",{"response":{},"status":"ok"}]');
    w.destroy();
  });

  test('a 125-byte ping is answered with the same 125 bytes', T, async () => {
    const w = await raw();
    const p = Buffer.alloc(125, 0x5a);
    w.sendFrame({ opcode: OP.PING, payload: p });
    const f = await w.nextFrame();
    assert.equal(f.opcode, OP.PONG);
    assert.ok(f.payload.equals(p));
    w.destroy();
  });

  test('an unsolicited pong is ignored', T, async () => {
    const w = await raw();
    w.sendFrame({ opcode: OP.PONG, payload: 'unsolicited' });
    w.sendText(HB);
    const f = await w.nextFrame();
    assert.equal(describeRaw(f), 'TEXT [null,"1","phoenix","phx_reply",{"response":{},"status":"ok"}]');
    w.destroy();
  });

  test('close with an application code 4000 and a reason is echoed with 4000', T, async () => {
    const w = await raw();
    w.sendFrame({ opcode: OP.CLOSE, payload: closePayload(4000, 'app') });
    const r = await w.waitCloseFrame(3000);
    assert.ok(r.closeFrame);
    assert.equal(r.code, 4000);
    w.destroy();
  });

  test('empty close frame is answered with a close frame', T, async () => {
    const w = await raw();
    w.sendFrame({ opcode: OP.CLOSE, payload: Buffer.alloc(0) });
    const r = await w.waitCloseFrame(3000);
    assert.ok(r.closeFrame, 'close frame back');
    assert.ok(r.code === null || r.code === 1000, `code ${r.code}`);
    assert.ok(await w.waitEnd(3000));
    w.destroy();
  });

  test('TCP dropped in the middle of a frame leaves the server fine', T, async () => {
    for (let i = 0; i < 20; i++) {
      const w = await raw();
      const f = encodeFrame({ payload: HB });
      w.write(f.subarray(0, 1 + (i % (f.length - 1))));
      w.destroy();
    }
    await sleep(100);
    await healthy(srv);
  });

  test('server alive after all frame violations', T, async () => { await healthy(srv); });
});

describe('malformed Phoenix messages, deep and huge JSON (default 1 MiB message limit)', () => {
  let srv;
  let alice;
  const open = (vsn = '2.0.0') => Client.open(srv.wsUrl(socketPath({ token: alice, vsn })));

  before(async () => {
    srv = await startServer({ name: 'limits_phx' });
    alice = srv.token('alice');
  });
  after(async () => { if (srv) await srv.stop(); });

  const nested = (n) => '['.repeat(n) + ']'.repeat(n);
  const nestedObj = (n) => '{"a":'.repeat(n) + '1' + '}'.repeat(n);

  const malformed = [
    ['non-JSON text', 'hello'],
    ['empty text frame', ''],
    ['V1 object on a V2 socket', '{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"1"}'],
    ['4-element array', '[null,"1","phoenix","heartbeat"]'],
    ['empty array', '[]'],
    ['JSON null', 'null'],
    ['JSON number', '1'],
    ['JSON string', '"[null,\\"1\\",\\"phoenix\\",\\"heartbeat\\",{}]"'],
    ['truncated JSON', '[null,"1","phoenix","heartbeat",{'],
    ['trailing garbage after the array', '[null,"1","phoenix","heartbeat",{}] x'],
    ['100k unbalanced "["', '['.repeat(100000)],
    ['100k-deep nested array as payload', `[null,"1","phoenix","heartbeat",${nested(100000)}]`],
    ['50k-deep nested object as payload', `[null,"1","phoenix","heartbeat",${nestedObj(50000)}]`],
    ['100k-deep nested array as the message', nested(100000)],
  ];
  for (const [name, text] of malformed) {
    test(`${name} -> close 1011, no reply`, T, async () => {
      const c = await open();
      c.send(text);
      await c.expectClose(1011);
      await healthy(srv);
    });
  }

  test('malformed binary messages -> close 1011', T, async () => {
    for (const [name, buf] of [
      ['truncated header', Buffer.from([0x00, 0x05, 0x01])],
      ['sizes past the end', Buffer.from([0x00, 0x01, 0x01, 0x20, 0x04, 0x31, 0x32, 0x65])],
      ['kind 1 (reply) from a client', Buffer.concat([Buffer.from([0x01, 0x01, 0x01, 0x06, 0x02]), Buffer.from('12echo:xok')])],
      ['kind 2 (broadcast) from a client', Buffer.concat([Buffer.from([0x02, 0x06, 0x04]), Buffer.from('echo:xping')])],
      ['empty binary frame', Buffer.alloc(0)],
    ]) {
      const c = await open();
      c.sendBinary(buf);
      try {
        await c.expectClose(1011);
      } catch (e) {
        e.message = `${name}: ${e.message}`;
        throw e;
      }
    }
    await healthy(srv);
  });

  test('huge but valid JSON (100k-element array, ~600 KB) is answered or refused cleanly', T, async () => {
    const c = await open();
    const arr = Array.from({ length: 100000 }, (_, i) => i);
    c.send('["1","1","echo:huge","phx_join",{}]');
    await c.expectText('["1","1","echo:huge","phx_reply",{"response":{"joined":"echo:huge"},"status":"ok"}]');
    c.sendJSON(['1', '2', 'echo:huge', 'ping', { arr }]);
    let outcome;
    try {
      const got = await c.nextJSON(10000);
      assert.deepEqual(got, ['1', '2', 'echo:huge', 'phx_reply', { response: { arr }, status: 'ok' }]);
      outcome = 'echoed';
    } catch (e) {
      if (!c.closeInfo) throw e;
      assert.ok([1009, 1011].includes(c.closeInfo.code), `closed with ${c.closeInfo.code}`);
      outcome = `closed ${c.closeInfo.code}`;
    }
    assert.ok(outcome);
    c.terminate();
    await healthy(srv);
  });

  test('many keys and long strings in one payload are echoed intact', T, async () => {
    const c = await open();
    const payload = {};
    for (let i = 0; i < 2000; i++) payload[`k${String(i).padStart(5, '0')}`] = 'v'.repeat(i % 50);
    payload.long = 'é'.repeat(100000);
    c.send('["1","1","echo:keys","phx_join",{}]');
    await c.nextText();
    c.sendJSON(['1', '2', 'echo:keys', 'ping', payload]);
    const got = await c.nextJSON(10000);
    assert.deepEqual(got, ['1', '2', 'echo:keys', 'phx_reply', { response: payload, status: 'ok' }]);
    c.terminate();
  });

  test('a message over the default 1 MiB limit -> close 1009', T, async () => {
    const c = await open();
    c.send(`[null,"1","phoenix","heartbeat",{"pad":"${'x'.repeat(1024 * 1024)}"}]`);
    await c.expectClose(1009, { timeoutMs: 5000 });
    await healthy(srv);
  });

  test('many sockets sending garbage at once leave the server serving', T, async () => {
    const clients = await Promise.all(Array.from({ length: 30 }, () => open()));
    clients.forEach((c, i) => c.send(i % 2 ? '['.repeat(50000) : 'garbage'));
    for (const c of clients) await c.expectClose(1011, { timeoutMs: 5000 });
    await healthy(srv);
    const c = await open();
    c.send('[null,"1","phoenix","heartbeat",{}]');
    await c.expectText('[null,"1","phoenix","phx_reply",{"response":{},"status":"ok"}]');
    c.terminate();
  });

  test('server alive after all malformed messages', T, async () => { await healthy(srv); });
});
