// lib.js — Phoenix Channels (V2 JSON) over k6's WebSocket API, and the
// Switchboard REST calls the scenarios need. Shared by every script here.
import ws from 'k6/ws';
import http from 'k6/http';
import { check, fail } from 'k6';

export const BASE = __ENV.SB_URL || 'http://127.0.0.1:4000';          // REST base
export const WS = (__ENV.SB_WS || BASE.replace(/^http/, 'ws')) + '/socket/websocket';

// A Phoenix V2 client on one k6 WebSocket: join, push with replies, heartbeats.
export class Phx {
  constructor(socket) {
    this.s = socket; this.ref = 0; this.pending = {}; this.handlers = {}; this.joinRefs = {};
    socket.on('message', (data) => this._onMessage(data));
    socket.setInterval(() => this.push('phoenix', 'heartbeat', {}, null), 30000);
  }
  _onMessage(data) {
    let m; try { m = JSON.parse(data); } catch (e) { return; }
    const [, ref, topic, event, payload] = m;
    if (event === 'phx_reply' && ref !== null && this.pending[ref]) {
      const cb = this.pending[ref]; delete this.pending[ref]; cb(payload.status, payload.response);
      return;
    }
    const h = this.handlers[event]; if (h) h(payload, topic);
  }
  on(event, cb) { this.handlers[event] = cb; }
  push(topic, event, payload, cb, joinRef) {
    const ref = String(++this.ref);
    if (cb) this.pending[ref] = cb;
    const jr = joinRef !== undefined ? joinRef : (this.joinRefs[topic] || null);
    this.s.send(JSON.stringify([jr, ref, topic, event, payload]));
    return ref;
  }
  join(topic, payload, cb) {
    const jr = String(this.ref + 1);
    this.joinRefs[topic] = jr;
    this.push(topic, 'phx_join', payload || {}, cb, jr);
  }
}

// Opens the socket with a token and runs fn(phx, socket) once it is open.
export function connect(token, fn, params) {
  const url = `${WS}?vsn=2.0.0&token=${encodeURIComponent(token)}`;
  const res = ws.connect(url, params || {}, (socket) => {
    socket.on('open', () => fn(new Phx(socket), socket));
    socket.on('error', (e) => console.error('ws error: ' + e.error()));
  });
  check(res, { 'upgraded (101)': (r) => r && r.status === 101 });
  return res;
}

function post(path, body, token) {
  const headers = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  return http.post(BASE + path, JSON.stringify(body), { headers });
}

// Signs a user up (a random name) and returns {id, token}.
export function signup(prefix) {
  const name = `${prefix}${Math.random().toString(36).slice(2, 10)}`;
  const r = post('/api/v1/auth/signup', { username: name, password: 'k6-load-password-1' });
  if (r.status !== 201 && r.status !== 200) fail(`signup ${r.status}: ${r.body}`);
  const j = r.json();
  return { id: j.user.id, token: j.access_token };
}

// The direct conversation between `me` and `otherId` (created if needed).
export function direct(me, otherId) {
  const r = post('/api/v1/conversations', { kind: 'direct', user_id: otherId }, me.token);
  if (r.status !== 201 && r.status !== 200) fail(`conversation ${r.status}: ${r.body}`);
  return r.json().conversation.id;
}

export { post };
