'use strict';
// Phoenix V2 binary message layouts (Phoenix.Socket.V2.JSONSerializer) and
// small helpers shared by the socket tests.

/** Client push, kind 0: <<0, jr_size, ref_size, topic_size, event_size, jr, ref, topic, event, data>> */
function binPush(joinRef, ref, topic, event, data) {
  const jr = Buffer.from(joinRef);
  const r = Buffer.from(ref);
  const t = Buffer.from(topic);
  const e = Buffer.from(event);
  return Buffer.concat([Buffer.from([0, jr.length, r.length, t.length, e.length]), jr, r, t, e, Buffer.from(data)]);
}

/** Server reply, kind 1: <<1, jr_size, ref_size, topic_size, status_size, jr, ref, topic, status, data>> */
function binReply(joinRef, ref, topic, status, data) {
  const jr = Buffer.from(joinRef);
  const r = Buffer.from(ref);
  const t = Buffer.from(topic);
  const s = Buffer.from(status);
  return Buffer.concat([Buffer.from([1, jr.length, r.length, t.length, s.length]), jr, r, t, s, Buffer.from(data)]);
}

/** Server broadcast, kind 2: <<2, topic_size, event_size, topic, event, data>> */
function binBroadcast(topic, event, data) {
  const t = Buffer.from(topic);
  const e = Buffer.from(event);
  return Buffer.concat([Buffer.from([2, t.length, e.length]), t, e, Buffer.from(data)]);
}

/** V2 phx_reply text exactly as Phoenix encodes it. */
function reply(joinRef, ref, topic, status, response) {
  return JSON.stringify([joinRef, ref, topic, 'phx_reply', { response, status }]);
}

function okReply(joinRef, ref, topic, response = {}) { return reply(joinRef, ref, topic, 'ok', response); }

function unmatched(ref, topic) { return reply(null, ref, topic, 'error', { reason: 'unmatched topic' }); }

/** V1 message text exactly as Phoenix encodes it (keys in order event, payload, ref, topic). */
function v1(event, payload, ref, topic) {
  return `{"event":${JSON.stringify(event)},"payload":${JSON.stringify(payload)},"ref":${JSON.stringify(ref)},"topic":${JSON.stringify(topic)}}`;
}

function v1Reply(ref, topic, status, response) { return v1('phx_reply', { response, status }, ref, topic); }

/** The socket path with query. */
function socketPath({ vsn = '2.0.0', token } = {}) {
  const q = [];
  if (token !== undefined) q.push(`token=${encodeURIComponent(token)}`);
  if (vsn !== null) q.push(`vsn=${vsn}`);
  return `/socket/websocket${q.length ? `?${q.join('&')}` : ''}`;
}

function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

/** Unique topic suffix, so tests sharing a server never share a topic. */
let n = 0;
function uniq(prefix) { return `${prefix}${process.pid}-${Date.now().toString(36)}-${++n}`; }


/** Resolves with [status, response] of a phoenix.js Push: 'ok', 'error',
 * 'timeout' (phoenix.js gave up) or 'client_timeout' (nothing within ms,
 * scaled by the build's slowness). */
function pushResult(push, ms = 5000) {
  const { slow } = require('./server');
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(['client_timeout', null]), ms * slow());
    push
      .receive('ok', (r) => { clearTimeout(t); resolve(['ok', r]); })
      .receive('error', (r) => { clearTimeout(t); resolve(['error', r]); })
      .receive('timeout', () => { clearTimeout(t); resolve(['timeout', null]); });
  });
}

/** Polls pred (sync or async) every `every` ms until it returns a truthy
 * value, which it resolves with; rejects when pred throws or after ms
 * (scaled by the build's slowness) with "timeout waiting for <what>". */
async function waitFor(pred, ms, what, every = 10) {
  const { slow } = require('./server');
  const deadline = Date.now() + ms * slow();
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timeout waiting for ${what}`);
    await sleep(every);
  }
}

module.exports = { pushResult, waitFor, binPush, binReply, binBroadcast, reply, okReply, unmatched, v1, v1Reply, socketPath, sleep, uniq };
