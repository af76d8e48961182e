'use strict';
// V2 (vsn=2.0.0) socket: every case of the "Raw ws transcripts / vsn=2.0.0"
// section of phoenix-transcripts.md, frame by frame, on the echo:* test
// channel (no Presence, so no presence_diff/presence_state after joins),
// plus connect authentication and the idle timeout.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { startServer, forgeToken, slow } = require('./lib/server');
const { Client, joinEcho, closeAll } = require('./lib/frames');
const { RawWs, httpExchange, OP, encodeFrame, closePayload, describeRaw } = require('./lib/raw');
const { binPush, binReply, binBroadcast, okReply, unmatched, socketPath, sleep } = require('./lib/phx');

const T = { timeout: 20000 };

describe('V2 socket (echo channel)', () => {
  let srv;
  let alice;
  const open = (opts = {}) => Client.open(srv.wsUrl(socketPath({ token: alice, ...opts })));

  before(async () => {
    srv = await startServer({ name: 'socket_v2' });
    alice = srv.token('alice');
  });
  after(async () => { if (srv) await srv.stop(); });

  test('handshake: 101 like Cowboy, no subprotocol, no permessage-deflate even when offered', T, async () => {
    const w = await RawWs.connect(srv.port, socketPath({ token: alice }), {
      headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate; client_max_window_bits' },
    });
    const h = w.response.headers;
    assert.equal(w.response.status, 101);
    assert.match(h.connection || '', /^upgrade$/i, 'connection: Upgrade');
    assert.match(h.upgrade || '', /^websocket$/i, 'upgrade: websocket');
    assert.equal(h['sec-websocket-protocol'], undefined, 'no subprotocol selected when none was offered');
    assert.equal(h['sec-websocket-extensions'], undefined, 'Phoenix does not negotiate permessage-deflate');
    // frames from the server are never masked and the socket works
    w.sendText('[null,"1","phoenix","heartbeat",{}]');
    const f = await w.nextFrame();
    assert.equal(f.masked, false, 'server frames must not be masked');
    assert.equal(f.opcode, OP.TEXT);
    assert.equal(f.payload.toString(), '[null,"1","phoenix","phx_reply",{"response":{},"status":"ok"}]');
    w.destroy();
  });

  test('join reply', T, async () => {
    const c = await open();
    c.send('["1","1","echo:lobby","phx_join",{"x":1}]');
    await c.expectText('["1","1","echo:lobby","phx_reply",{"response":{"joined":"echo:lobby"},"status":"ok"}]');
    await c.expectNothing(150); // the echo channel has no presence: nothing follows the reply
    c.terminate();
  });

  test('ping: reply {:ok, payload} (UTF-8 payload echoed)', T, async () => {
    const c = await open();
    await joinEcho(c, 'echo:lobby', '1');
    c.send('["1","2","echo:lobby","ping",{"n":1,"s":"héllo"}]');
    await c.expectText('["1","2","echo:lobby","phx_reply",{"response":{"n":1,"s":"héllo"},"status":"ok"}]');
    c.send('["1","3","echo:lobby","ping",{}]');
    await c.expectText('["1","3","echo:lobby","phx_reply",{"response":{},"status":"ok"}]');
    c.terminate();
  });

  test('ping: payload values survive the round trip (JSON value equality)', T, async () => {
    const c = await open();
    await joinEcho(c, 'echo:values', '1');
    const payload = {
      a: [1, -2, 3.5, 1e21, true, false, null, 'x'],
      b: { nested: { deeper: ['\u0001\u001f"\\/\b\f\n\r\t', '\u2028\u2029', '😀', 'ü'] } },
      c: 9007199254740991,
      z: '',
    };
    c.sendJSON(['1', '2', 'echo:values', 'ping', payload]);
    const got = await c.nextJSON();
    assert.deepEqual(got, ['1', '2', 'echo:values', 'phx_reply', { response: payload, status: 'ok' }]);
    c.terminate();
  });

  test('ping: a string holding U+0000 is valid JSON and is echoed', T, async () => {
    const c = await open();
    await joinEcho(c, 'echo:nul', '1');
    c.send('["1","2","echo:nul","ping",{"s":"a\\u0000b"}]');
    const got = await c.nextJSON();
    assert.deepEqual(got, ['1', '2', 'echo:nul', 'phx_reply', { response: { s: 'a\u0000b' }, status: 'ok' }]);
    c.terminate();
  });

  test('shout: broadcast first, then the empty ok reply', T, async () => {
    const c = await open();
    await joinEcho(c, 'echo:lobby', '1');
    c.send('["1","3","echo:lobby","shout",{"msg":"hi"}]');
    await c.expectText('[null,null,"echo:lobby","shout",{"msg":"hi"}]');
    await c.expectText('["1","3","echo:lobby","phx_reply",{"response":{},"status":"ok"}]');
    await c.expectNothing(150);
    c.terminate();
  });

  test('heartbeat (string and numeric refs), on a fresh socket and on topic phoenix only', T, async () => {
    const c = await open();
    c.send('[null,"4","phoenix","heartbeat",{}]');
    await c.expectText('[null,"4","phoenix","phx_reply",{"response":{},"status":"ok"}]');
    c.send('[null,5,"phoenix","heartbeat",{}]');
    await c.expectText('[null,5,"phoenix","phx_reply",{"response":{},"status":"ok"}]');
    // any other event on "phoenix" is a push to an unjoined topic
    c.send('[null,"6","phoenix","ping",{}]');
    await c.expectText(unmatched('6', 'phoenix'));
    c.terminate();
  });

  test('push to an unjoined topic: unmatched topic, join_ref null', T, async () => {
    const c = await open();
    await joinEcho(c, 'echo:lobby', '1');
    c.send('["1","5","echo:other","ping",{}]');
    await c.expectText('[null,"5","echo:other","phx_reply",{"response":{"reason":"unmatched topic"},"status":"error"}]');
    c.terminate();
  });

  test('join of a topic no channel route matches: unmatched topic', T, async () => {
    const c = await open();
    c.send('["6","6","nochannel:x","phx_join",{}]');
    await c.expectText('[null,"6","nochannel:x","phx_reply",{"response":{"reason":"unmatched topic"},"status":"error"}]');
    c.send('["6","7","nochannel:x","ping",{}]');
    await c.expectText(unmatched('7', 'nochannel:x'));
    c.terminate();
  });

  test('duplicate join: new reply first, then phx_close for the old join_ref; stale join_ref routed with the current one', T, async () => {
    const c = await open();
    await joinEcho(c, 'echo:lobby', '1');
    c.send('["7","7","echo:lobby","phx_join",{}]');
    await c.expectText('["7","7","echo:lobby","phx_reply",{"response":{"joined":"echo:lobby"},"status":"ok"}]');
    await c.expectText('["1","1","echo:lobby","phx_close",{}]');
    await c.expectNothing(150);
    // a message still carrying the OLD join_ref is accepted; the reply carries the current one
    c.send('["1","8","echo:lobby","ping",{"old":true}]');
    await c.expectText('["7","8","echo:lobby","phx_reply",{"response":{"old":true},"status":"ok"}]');
    // the replaced channel left no subscription behind: one shout, one broadcast
    c.send('["7","9","echo:lobby","shout",{"once":1}]');
    await c.expectText('[null,null,"echo:lobby","shout",{"once":1}]');
    await c.expectText('["7","9","echo:lobby","phx_reply",{"response":{},"status":"ok"}]');
    await c.expectNothing(200);
    c.terminate();
  });

  test('binary push ping 01 02 03 ff -> binary reply kind 1', T, async () => {
    const c = await open();
    await joinEcho(c, 'echo:lobby', '7');
    const push = binPush('7', '9', 'echo:lobby', 'ping', [0x01, 0x02, 0x03, 0xff]);
    // the transcript's layout with room:lobby replaced by echo:lobby (same length)
    assert.equal(push.toString('hex'), `0001010a043739${Buffer.from('echo:lobby').toString('hex')}70696e67010203ff`);
    c.sendBinary(push);
    await c.expectBinary(binReply('7', '9', 'echo:lobby', 'ok', [0x01, 0x02, 0x03, 0xff]));
    // empty binary payload
    c.sendBinary(binPush('7', '10', 'echo:lobby', 'ping', []));
    await c.expectBinary(binReply('7', '10', 'echo:lobby', 'ok', []));
    c.terminate();
  });

  test('binary shout 0a 0b -> binary broadcast kind 2, then TEXT reply', T, async () => {
    const c = await open();
    await joinEcho(c, 'echo:lobby', '7');
    c.sendBinary(binPush('7', '10', 'echo:lobby', 'shout', [0x0a, 0x0b]));
    const expected = binBroadcast('echo:lobby', 'shout', [0x0a, 0x0b]);
    assert.equal(expected.toString('hex'), '020a056563686f3a6c6f62627973686f75740a0b');
    await c.expectBinary(expected);
    await c.expectText('["7","10","echo:lobby","phx_reply",{"response":{},"status":"ok"}]');
    c.terminate();
  });

  test('binary push to an unjoined topic: TEXT unmatched-topic reply', T, async () => {
    const c = await open();
    c.sendBinary(binPush('3', '4', 'echo:nobody', 'ping', [1, 2]));
    await c.expectText(unmatched('4', 'echo:nobody'));
    c.terminate();
  });

  test('phx_leave: reply, then phx_close (ref = join_ref); push after leave is unmatched', T, async () => {
    const c = await open();
    await joinEcho(c, 'echo:lobby', '7');
    c.send('["7","11","echo:lobby","phx_leave",{}]');
    await c.expectText('["7","11","echo:lobby","phx_reply",{"response":{},"status":"ok"}]');
    await c.expectText('["7","7","echo:lobby","phx_close",{}]');
    c.send('["7","12","echo:lobby","ping",{}]');
    await c.expectText('[null,"12","echo:lobby","phx_reply",{"response":{"reason":"unmatched topic"},"status":"error"}]');
    // left channels get no broadcasts: another socket shouts, this one hears nothing
    const d = await open();
    await joinEcho(d, 'echo:lobby', '1');
    d.send('["1","2","echo:lobby","shout",{"after":"leave"}]');
    await d.expectText('[null,null,"echo:lobby","shout",{"after":"leave"}]');
    await d.expectText(okReply('1', '2', 'echo:lobby'));
    await c.expectNothing(200);
    // and it can join again
    await joinEcho(c, 'echo:lobby', '13');
    closeAll(c, d);
  });

  test('phx_leave on a never-joined topic: ok with join_ref echoed', T, async () => {
    const c = await open();
    c.send('["13","13","echo:nope","phx_leave",{}]');
    await c.expectText('["13","13","echo:nope","phx_reply",{"response":{},"status":"ok"}]');
    await c.expectNothing(150);
    c.terminate();
  });

  test('phx_leave carrying another join_ref than the channel\'s: no reply, channel stays joined (Phoenix socket.ex)', T, async () => {
    const c = await open();
    await joinEcho(c, 'echo:race', '20');
    c.send('["19","21","echo:race","phx_leave",{}]');
    await c.expectNothing(200);
    c.send('["20","22","echo:race","ping",{"still":"joined"}]');
    await c.expectText('["20","22","echo:race","phx_reply",{"response":{"still":"joined"},"status":"ok"}]');
    c.terminate();
  });

  test('channel crash: phx_error [join_ref, join_ref, topic, "phx_error", {}], channel gone, socket open', T, async () => {
    const c = await open();
    await joinEcho(c, 'echo:crash', '14');
    c.send('["14","15","echo:crash","nosuchevent",{}]');
    await c.expectText('["14","14","echo:crash","phx_error",{}]');
    await c.expectNothing(150); // no reply for ref 15
    c.send('["14","16","echo:crash","ping",{}]');
    await c.expectText(unmatched('16', 'echo:crash'));
    c.send('[null,"17","phoenix","heartbeat",{}]');
    await c.expectText('[null,"17","phoenix","phx_reply",{"response":{},"status":"ok"}]');
    // a crashed channel can be joined again (phoenix.js rejoins after phx_error)
    await joinEcho(c, 'echo:crash', '18');
    c.terminate();
  });

  test('numeric refs echoed as JSON numbers (join, ping, leave, close)', T, async () => {
    const c = await open();
    c.send('[16,16,"echo:num","phx_join",{}]');
    await c.expectText('[16,16,"echo:num","phx_reply",{"response":{"joined":"echo:num"},"status":"ok"}]');
    c.send('[16,17,"echo:num","ping",{"k":"v"}]');
    await c.expectText('[16,17,"echo:num","phx_reply",{"response":{"k":"v"},"status":"ok"}]');
    c.send('[16,18,"echo:num","phx_leave",{}]');
    await c.expectText('[16,18,"echo:num","phx_reply",{"response":{},"status":"ok"}]');
    await c.expectText('[16,16,"echo:num","phx_close",{}]');
    c.send('[null,19,"echo:num","ping",{}]');
    await c.expectText('[null,19,"echo:num","phx_reply",{"response":{"reason":"unmatched topic"},"status":"error"}]');
    c.terminate();
  });

  test('numeric join_ref: crash reports phx_error with the number', T, async () => {
    const c = await open();
    c.send('[30,30,"echo:numcrash","phx_join",{}]');
    await c.expectText('[30,30,"echo:numcrash","phx_reply",{"response":{"joined":"echo:numcrash"},"status":"ok"}]');
    c.send('[30,31,"echo:numcrash","boom",{}]');
    await c.expectText('[30,30,"echo:numcrash","phx_error",{}]');
    c.terminate();
  });

  test('join with a null join_ref', T, async () => {
    const c = await open();
    c.send('[null,"40","echo:nulljr","phx_join",{}]');
    await c.expectText('[null,"40","echo:nulljr","phx_reply",{"response":{"joined":"echo:nulljr"},"status":"ok"}]');
    c.send('[null,"41","echo:nulljr","ping",{}]');
    await c.expectText('[null,"41","echo:nulljr","phx_reply",{"response":{},"status":"ok"}]');
    c.terminate();
  });

  test('user:<id> of another user: error reply forbidden, channel not joined', T, async () => {
    const c = await open();
    c.send('["5","5","user:bob","phx_join",{}]');
    const text = await c.nextText();
    const m = JSON.parse(text);
    assert.equal(m.length, 5, text);
    assert.deepEqual(m.slice(0, 4), ['5', '5', 'user:bob', 'phx_reply'], `refused join echoes join_ref and ref: ${text}`);
    assert.deepEqual(Object.keys(m[4]).sort(), ['response', 'status'], text);
    assert.equal(m[4].status, 'error', text);
    assert.equal(m[4].response.reason, 'forbidden', text);
    c.send('["5","6","user:bob","ping",{}]');
    await c.expectText(unmatched('6', 'user:bob'));
    c.terminate();
  });

  test('WebSocket ping control frame -> pong with the same payload', T, async () => {
    const c = await open();
    const pong = await c.ping('abc');
    assert.equal(pong.toString(), 'abc');
    const pong2 = await c.ping('');
    assert.equal(pong2.length, 0);
    const big = crypto.randomBytes(125);
    assert.ok((await c.ping(big)).equals(big));
    c.terminate();
  });

  test('client close 1000 "bye": server echoes close 1000 with an empty reason and ends TCP', T, async () => {
    const w = await RawWs.connect(srv.port, socketPath({ token: alice }));
    w.sendFrame({ opcode: OP.CLOSE, payload: closePayload(1000, 'bye') });
    const r = await w.waitCloseFrame();
    assert.ok(r.closeFrame, `expected a close frame, got ${JSON.stringify(r)}`);
    assert.equal(r.code, 1000);
    assert.equal(r.reason, '');
    assert.deepEqual(r.before.map(describeRaw), []);
    assert.ok(await w.waitEnd(3000), 'server closes the TCP connection after the closing handshake');
    // same with the ws client
    const c = await open();
    c.close(1000, 'bye');
    await c.expectClose(1000, { reason: '' });
  });

  test('fragmented text message is reassembled', T, async () => {
    const w = await RawWs.connect(srv.port, socketPath({ token: alice }));
    const msg = '[null,"77","phoenix","heartbeat",{}]';
    w.write(Buffer.concat([
      encodeFrame({ fin: false, opcode: OP.TEXT, payload: msg.slice(0, 5) }),
      encodeFrame({ fin: false, opcode: OP.CONT, payload: msg.slice(5, 20) }),
      encodeFrame({ opcode: OP.PING, payload: 'mid' }), // control frames may be interleaved
      encodeFrame({ fin: true, opcode: OP.CONT, payload: msg.slice(20) }),
    ]));
    // the pong and the reply, in either order (RFC 6455 only asks for the pong "as soon as practical")
    const got = [describeRaw(await w.nextFrame()), describeRaw(await w.nextFrame())].sort();
    assert.deepEqual(got, [
      describeRaw({ opcode: OP.PONG, payload: Buffer.from('mid') }),
      'TEXT [null,"77","phoenix","phx_reply",{"response":{},"status":"ok"}]',
    ].sort());
    w.destroy();
  });

  test('several messages in one TCP write are all answered, in order', T, async () => {
    const w = await RawWs.connect(srv.port, socketPath({ token: alice }));
    const frames = [];
    for (let i = 1; i <= 20; i++) frames.push(encodeFrame({ payload: `[null,"${i}","phoenix","heartbeat",{}]` }));
    w.write(Buffer.concat(frames));
    for (let i = 1; i <= 20; i++) {
      const f = await w.nextFrame();
      assert.equal(f.payload.toString(), `[null,"${i}","phoenix","phx_reply",{"response":{},"status":"ok"}]`);
    }
    w.destroy();
  });
});

describe('connect authentication and rejected connects', () => {
  let srv;
  let alice;
  before(async () => {
    srv = await startServer({ name: 'socket_v2_auth' });
    alice = srv.token('alice');
  });
  after(async () => { if (srv) await srv.stop(); });

  const upgradeReq = (path, extra = '') => `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n`
    + `Sec-WebSocket-Key: ${crypto.randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`;

  async function expectRejected(path, status, extra = '') {
    const r = await httpExchange(srv.port, upgradeReq(path, extra));
    assert.equal(r.responses.length, 1, `one HTTP response to ${path}, got raw: ${JSON.stringify(r.raw.toString('latin1'))}`);
    const res = r.responses[0];
    assert.equal(res.status, status, `${path}: expected HTTP ${status}, got ${res.status}`);
    assert.equal(res.headers.upgrade, undefined, 'no upgrade');
    assert.equal(res.headers['sec-websocket-accept'], undefined, 'no upgrade');
    return res;
  }

  async function expectForbidden(path, extra = '') {
    const res = await expectRejected(path, 403, extra);
    assert.equal(res.body.length, 0, `403 has an empty body, got ${JSON.stringify(res.text())}`);
    assert.equal(res.headers['content-length'], '0', 'content-length: 0');
    return res;
  }

  test('missing token: 403 (v2, v1 and no vsn)', T, async () => {
    await expectForbidden('/socket/websocket?vsn=2.0.0');
    await expectForbidden('/socket/websocket?vsn=1.0.0');
    await expectForbidden('/socket/websocket');
  });

  test('empty token: 403', T, async () => {
    await expectForbidden('/socket/websocket?token=&vsn=2.0.0');
  });

  test('forged token (one signature character changed): 403', T, async () => {
    await expectForbidden(socketPath({ token: forgeToken(alice) }));
  });

  test('expired token: 403', T, async () => {
    await expectForbidden(socketPath({ token: srv.token('alice', { ttl: -60 }) }));
  });

  test('garbage and truncated tokens: 403', T, async () => {
    await expectForbidden(socketPath({ token: 'u1' }));
    await expectForbidden(socketPath({ token: alice.slice(0, alice.lastIndexOf('.')) }));
    await expectForbidden(socketPath({ token: `${alice}x` }));
    await expectForbidden(socketPath({ token: '....' }));
  });

  test('token signed with another secret: 403', T, async () => {
    const other = await startServer({ name: 'socket_v2_othersecret' });
    try {
      await expectForbidden(socketPath({ token: other.token('alice') }));
    } finally {
      await other.stop();
    }
  });

  test('unsupported vsn=3.0.0 and invalid vsn=banana with a valid token: 403', T, async () => {
    await expectForbidden(socketPath({ token: alice, vsn: '3.0.0' }));
    await expectForbidden(socketPath({ token: alice, vsn: 'banana' }));
  });

  test('plain GET without Upgrade: 400 with a valid token, 403 without', T, async () => {
    let r = await httpExchange(srv.port, `GET ${socketPath({ token: alice })} HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n`);
    assert.equal(r.responses[0] && r.responses[0].status, 400, `got ${r.raw.toString('latin1').slice(0, 200)}`);
    r = await httpExchange(srv.port, 'GET /socket/websocket?vsn=2.0.0 HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n');
    assert.equal(r.responses[0] && r.responses[0].status, 403, `got ${r.raw.toString('latin1').slice(0, 200)}`);
  });

  test('wrong socket path /socket/nosuch: 404', T, async () => {
    await expectRejected(`/socket/nosuch?token=${alice}`, 404);
  });

  test('token in Sec-WebSocket-Protocol (base64url.bearer.phx.): 101 selecting "phoenix"', T, async () => {
    const b64url = Buffer.from(alice).toString('base64url');
    const w = await RawWs.connect(srv.port, '/socket/websocket?vsn=2.0.0', {
      headers: { 'Sec-WebSocket-Protocol': `phoenix, base64url.bearer.phx.${b64url}` },
    });
    assert.equal(w.response.headers['sec-websocket-protocol'], 'phoenix');
    w.sendText('["1","1","echo:sp","phx_join",{}]');
    const f = await w.nextFrame();
    assert.equal(f.payload.toString(), '["1","1","echo:sp","phx_reply",{"response":{"joined":"echo:sp"},"status":"ok"}]');
    w.destroy();
    // the ws client checks that the selected subprotocol is one it offered
    const c = await Client.open(srv.wsUrl('/socket/websocket?vsn=2.0.0'), { protocols: ['phoenix', `base64url.bearer.phx.${b64url}`] });
    assert.equal(c.ws.protocol, 'phoenix');
    c.send('[null,"1","phoenix","heartbeat",{}]');
    await c.expectText('[null,"1","phoenix","phx_reply",{"response":{},"status":"ok"}]');
    c.terminate();
  });

  test('token in Sec-WebSocket-Protocol: forged, expired or empty -> 403', T, async () => {
    const enc = (t) => Buffer.from(t).toString('base64url');
    await expectForbidden('/socket/websocket?vsn=2.0.0', `Sec-WebSocket-Protocol: phoenix, base64url.bearer.phx.${enc(forgeToken(alice))}\r\n`);
    await expectForbidden('/socket/websocket?vsn=2.0.0', `Sec-WebSocket-Protocol: phoenix, base64url.bearer.phx.${enc(srv.token('alice', { ttl: -5 }))}\r\n`);
    await expectForbidden('/socket/websocket?vsn=2.0.0', 'Sec-WebSocket-Protocol: phoenix, base64url.bearer.phx.\r\n');
    await expectForbidden('/socket/websocket?vsn=2.0.0', 'Sec-WebSocket-Protocol: phoenix, base64url.bearer.phx.!!!notbase64\r\n');
  });

  test('server still serves after the rejections', T, async () => {
    assert.ok(srv.alive(), 'server process alive');
    const r = await fetch(srv.url('/healthz'));
    assert.equal(r.status, 200);
  });
});

describe('idle timeout (SB_IDLE_TIMEOUT_MS=1500)', () => {
  let srv;
  let alice;
  before(async () => {
    srv = await startServer({ name: 'socket_v2_idle', env: { SB_IDLE_TIMEOUT_MS: '1500' } });
    alice = srv.token('alice');
  });
  after(async () => { if (srv) await srv.stop(); });

  test('a joined socket that sends nothing is closed with 1000 and an empty reason', T, async () => {
    const c = await Client.open(srv.wsUrl(socketPath({ token: alice })));
    const t0 = Date.now();
    await joinEcho(c, 'echo:idle', '1');
    const r = await c.expectClose(1000, { timeoutMs: 6000, reason: '' });
    const ms = Date.now() - t0;
    assert.ok(ms >= 1200, `closed after ${ms} ms, before the 1500 ms idle timeout`);
    assert.ok(ms <= 1500 + 3000 * slow(), `closed after ${ms} ms`);
    assert.equal(r.frames.length, 0);
  });

  test('a socket that never sends anything is closed too', T, async () => {
    const w = await RawWs.connect(srv.port, socketPath({ token: alice }));
    const r = await w.waitCloseFrame(6000);
    assert.ok(r.closeFrame, `expected a close frame, got ${JSON.stringify(r)}`);
    assert.equal(r.code, 1000);
    assert.equal(r.reason, '');
    w.destroy();
  });

  test('heartbeats keep a socket open past the idle timeout', T, async () => {
    const c = await Client.open(srv.wsUrl(socketPath({ token: alice })));
    for (let i = 1; i <= 8; i++) {
      c.send(`[null,"${i}","phoenix","heartbeat",{}]`);
      await c.expectText(`[null,"${i}","phoenix","phx_reply",{"response":{},"status":"ok"}]`);
      await sleep(500);
    }
    assert.equal(c.closeInfo, null, 'still open after 4 s of heartbeats');
    c.terminate();
  });

  test('WebSocket pings count as activity too (Cowboy resets its timeout on any data)', T, async () => {
    const c = await Client.open(srv.wsUrl(socketPath({ token: alice })));
    for (let i = 0; i < 8; i++) {
      await c.ping(`p${i}`);
      await sleep(500);
    }
    assert.equal(c.closeInfo, null, 'still open after 4 s of pings');
    c.terminate();
  });
});
