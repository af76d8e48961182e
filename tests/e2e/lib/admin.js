'use strict';
// Admin listener helpers (issue 15): a request to the admin port, a raw
// WebSocket that reports its close code, and the Prometheus tools.
//
//   const { admin, rawSocket, closedCode } = require('./lib/admin');

const WebSocket = require('ws');
const { slow } = require('./server');

/** One request to the admin listener at path p; returns { status, headers, json, text }. */
async function admin(srv, method, p, { token, auth, body, raw } = {}) {
  const h = {};
  if (token) h.authorization = `Bearer ${token}`;
  if (auth !== undefined) h.authorization = auth;
  let payload;
  if (raw !== undefined) payload = raw;
  else if (body !== undefined) {
    payload = JSON.stringify(body);
    h['content-type'] = 'application/json';
  }
  const res = await fetch(`http://127.0.0.1:${srv.adminPort}${p}`, {
    method, headers: h, body: payload, signal: AbortSignal.timeout(15000 * slow()),
  });
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  return { status: res.status, headers: res.headers, json, text };
}

/** A raw V2 WebSocket with token; ws.closedWith resolves with {code, at}. */
async function rawSocket(srv, token) {
  const ws = new WebSocket(srv.wsUrl(`/socket/websocket?vsn=2.0.0&token=${encodeURIComponent(token)}`));
  await new Promise((res, rej) => { ws.once('open', res); ws.once('error', rej); });
  ws.closedWith = new Promise((res) => ws.once('close', (code) => res({ code, at: Date.now() })));
  ws.frames = [];
  ws.on('message', (d) => { try { ws.frames.push(JSON.parse(d.toString())); } catch { /* binary */ } });
  return ws;
}

/** Joins topic on a raw V2 socket; resolves with the reply frame. */
function rawJoin(ws, topic, ref = '1') {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`join timeout ${topic}`)), 10000 * slow());
    const on = (d) => {
      let f;
      try { f = JSON.parse(d.toString()); } catch { return; }
      if (f[2] === topic && f[3] === 'phx_reply' && f[1] === ref) {
        clearTimeout(t);
        ws.off('message', on);
        resolve(f);
      }
    };
    ws.on('message', on);
    ws.send(JSON.stringify([ref, ref, topic, 'phx_join', {}]));
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
/** The close {code, at} of ws, or 'timeout' after ms. */
const closedCode = (ws, ms = 5000) => Promise.race([ws.closedWith, sleep(ms * slow()).then(() => ({ code: 'timeout' }))]);

module.exports = { admin, rawSocket, rawJoin, closedCode };
