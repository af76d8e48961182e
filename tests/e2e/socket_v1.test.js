'use strict';
// V1 (vsn=1.0.0, and no vsn at all) socket: the "vsn=1.0.0" transcript section
// frame by frame. V1 output is an object with keys event, payload, ref, topic
// (in that order) and never a join_ref; phx_close carries "ref":null.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startServer } = require('./lib/server');
const { Client, joinEcho, closeAll } = require('./lib/frames');
const { v1, v1Reply, socketPath } = require('./lib/phx');

const T = { timeout: 20000 };

const join = (topic, ref, payload = {}) => JSON.stringify({ topic, event: 'phx_join', payload, ref });
const push = (topic, event, payload, ref) => JSON.stringify({ topic, event, payload, ref });

describe('V1 socket (echo channel)', () => {
  let srv;
  let alice;
  const open = (vsn = '1.0.0') => Client.open(srv.wsUrl(socketPath({ token: alice, vsn })));

  async function joined(c, topic, ref) {
    c.send(join(topic, ref));
    await c.expectText(v1Reply(ref, topic, 'ok', { joined: topic }));
  }

  before(async () => {
    srv = await startServer({ name: 'socket_v1' });
    alice = srv.token('alice');
  });
  after(async () => { if (srv) await srv.stop(); });

  test('join reply (no join_ref field sent or received)', T, async () => {
    const c = await open();
    c.send('{"topic":"echo:lobby","event":"phx_join","payload":{"x":1},"ref":"1"}');
    await c.expectText('{"event":"phx_reply","payload":{"response":{"joined":"echo:lobby"},"status":"ok"},"ref":"1","topic":"echo:lobby"}');
    await c.expectNothing(150);
    c.terminate();
  });

  test('ping', T, async () => {
    const c = await open();
    await joined(c, 'echo:lobby', '1');
    c.send('{"topic":"echo:lobby","event":"ping","payload":{"n":1},"ref":"2"}');
    await c.expectText('{"event":"phx_reply","payload":{"response":{"n":1},"status":"ok"},"ref":"2","topic":"echo:lobby"}');
    c.terminate();
  });

  test('shout: broadcast (ref null) first, then reply', T, async () => {
    const c = await open();
    await joined(c, 'echo:lobby', '1');
    c.send('{"topic":"echo:lobby","event":"shout","payload":{"msg":"hi"},"ref":"3"}');
    await c.expectText('{"event":"shout","payload":{"msg":"hi"},"ref":null,"topic":"echo:lobby"}');
    await c.expectText('{"event":"phx_reply","payload":{"response":{},"status":"ok"},"ref":"3","topic":"echo:lobby"}');
    c.terminate();
  });

  test('heartbeat', T, async () => {
    const c = await open();
    c.send('{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"4"}');
    await c.expectText('{"event":"phx_reply","payload":{"response":{},"status":"ok"},"ref":"4","topic":"phoenix"}');
    c.terminate();
  });

  test('push to an unjoined topic, and join of an unrouted topic: unmatched topic', T, async () => {
    const c = await open();
    c.send('{"topic":"echo:other","event":"ping","payload":{},"ref":"5"}');
    await c.expectText('{"event":"phx_reply","payload":{"response":{"reason":"unmatched topic"},"status":"error"},"ref":"5","topic":"echo:other"}');
    c.send('{"topic":"nochannel:x","event":"phx_join","payload":{},"ref":"6"}');
    await c.expectText('{"event":"phx_reply","payload":{"response":{"reason":"unmatched topic"},"status":"error"},"ref":"6","topic":"nochannel:x"}');
    c.terminate();
  });

  test('duplicate join: reply, then phx_close with ref null', T, async () => {
    const c = await open();
    await joined(c, 'echo:lobby', '1');
    c.send('{"topic":"echo:lobby","event":"phx_join","payload":{},"ref":"7"}');
    await c.expectText('{"event":"phx_reply","payload":{"response":{"joined":"echo:lobby"},"status":"ok"},"ref":"7","topic":"echo:lobby"}');
    await c.expectText('{"event":"phx_close","payload":{},"ref":null,"topic":"echo:lobby"}');
    await c.expectNothing(150);
    c.terminate();
  });

  test('phx_leave: reply then phx_close (ref null); push after leave is unmatched', T, async () => {
    const c = await open();
    await joined(c, 'echo:lobby', '1');
    c.send('{"topic":"echo:lobby","event":"phx_leave","payload":{},"ref":"8"}');
    await c.expectText('{"event":"phx_reply","payload":{"response":{},"status":"ok"},"ref":"8","topic":"echo:lobby"}');
    await c.expectText('{"event":"phx_close","payload":{},"ref":null,"topic":"echo:lobby"}');
    c.send('{"topic":"echo:lobby","event":"ping","payload":{},"ref":"9"}');
    await c.expectText('{"event":"phx_reply","payload":{"response":{"reason":"unmatched topic"},"status":"error"},"ref":"9","topic":"echo:lobby"}');
    c.terminate();
  });

  test('join with join_ref given: the reply still carries no join_ref', T, async () => {
    const c = await open();
    c.send('{"topic":"echo:jr","event":"phx_join","payload":{},"ref":"10","join_ref":"10"}');
    await c.expectText('{"event":"phx_reply","payload":{"response":{"joined":"echo:jr"},"status":"ok"},"ref":"10","topic":"echo:jr"}');
    c.terminate();
  });

  test('key order of the client object does not matter', T, async () => {
    const c = await open();
    c.send('{"ref":"1","payload":{},"event":"heartbeat","topic":"phoenix"}');
    await c.expectText(v1Reply('1', 'phoenix', 'ok', {}));
    c.terminate();
  });

  test('channel crash: phx_error with ref null (V1 join without join_ref), channel gone', T, async () => {
    const c = await open();
    await joined(c, 'echo:crash', '14');
    c.send(push('echo:crash', 'nosuchevent', {}, '15'));
    await c.expectText(v1('phx_error', {}, null, 'echo:crash'));
    c.send(push('echo:crash', 'ping', {}, '16'));
    await c.expectText(v1Reply('16', 'echo:crash', 'error', { reason: 'unmatched topic' }));
    c.terminate();
  });

  test('V1 and V2 subscribers of one topic each get their own encoding of a broadcast', T, async () => {
    const a = await open();
    const b = await Client.open(srv.wsUrl(socketPath({ token: alice, vsn: '2.0.0' })));
    await joined(a, 'echo:mixed', '1');
    await joinEcho(b, 'echo:mixed', '1');
    b.send('["1","2","echo:mixed","shout",{"from":"v2"}]');
    await b.expectText('[null,null,"echo:mixed","shout",{"from":"v2"}]');
    await b.expectText('["1","2","echo:mixed","phx_reply",{"response":{},"status":"ok"}]');
    await a.expectText('{"event":"shout","payload":{"from":"v2"},"ref":null,"topic":"echo:mixed"}');
    a.send(push('echo:mixed', 'shout', { from: 'v1' }, '3'));
    await a.expectText('{"event":"shout","payload":{"from":"v1"},"ref":null,"topic":"echo:mixed"}');
    await a.expectText(v1Reply('3', 'echo:mixed', 'ok', {}));
    await b.expectText('[null,null,"echo:mixed","shout",{"from":"v1"}]');
    closeAll(a, b);
  });

  test('vsn omitted selects V1', T, async () => {
    const c = await open(null);
    c.send('{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"1"}');
    await c.expectText('{"event":"phx_reply","payload":{"response":{},"status":"ok"},"ref":"1","topic":"phoenix"}');
    c.terminate();
  });

  test('vsn omitted: a V2 array frame is malformed -> close 1011, no reply', T, async () => {
    const c = await open(null);
    c.send('[null,"1","phoenix","heartbeat",{}]');
    await c.expectClose(1011);
  });

  test('vsn=1.0.0: a V2 array frame -> close 1011', T, async () => {
    const c = await open();
    c.send('["1","1","echo:lobby","phx_join",{}]');
    await c.expectClose(1011);
  });

  test('V1 object missing "ref" or "payload" -> close 1011', T, async () => {
    let c = await open();
    c.send('{"topic":"phoenix","event":"heartbeat","payload":{}}');
    await c.expectClose(1011);
    c = await open();
    c.send('{"topic":"phoenix","event":"heartbeat","ref":"1"}');
    await c.expectClose(1011);
  });

  test('V1 non-JSON and empty frames -> close 1011', T, async () => {
    let c = await open();
    c.send('hello');
    await c.expectClose(1011);
    c = await open();
    c.send('');
    await c.expectClose(1011);
  });

  test('client close 1000 is echoed with an empty reason', T, async () => {
    const c = await open();
    c.close(1000, 'bye');
    await c.expectClose(1000, { reason: '' });
  });

  test('server alive after the V1 cases', T, async () => {
    assert.ok(srv.alive());
    assert.equal((await fetch(srv.url('/healthz'))).status, 200);
  });
});
