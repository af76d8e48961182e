'use strict';
// A calling device as the calls suites drive it: one phoenix.js socket for
// one user (one session: its own sign-in), user:<id> joined (call:incoming /
// call:updated recorded), and call:<id> channels joined on demand (state and
// signal events recorded per call).
//
//   const d = await Device.open(srv, user);          // user from signup()/signin()
//   const ch = await d.joinCall(callId);              // {call} join reply in d.joinReply
//   await d.push(callId, 'accept');                   // {status, response}
//   await d.waitState(callId, 'connected');
//   d.signals(callId)                                  // signal payloads received
//   d.close()

const assert = require('node:assert/strict');
const { api, connect, join, push, until } = require('./api');

class Device {
  constructor(srv, user) {
    this.srv = srv;
    this.user = user;
    this.userEvents = [];
    this.calls = new Map(); // call id -> { ch, states: [], signals: [] }
  }

  static async open(srv, user) {
    const d = new Device(srv, user);
    d.sock = await connect(srv, user);
    const { ch, resp } = await join(d.sock, `user:${user.id}`);
    d.userCh = ch;
    d.cursor = resp.cursor; // where live delivery started: GET /sync from here
    for (const ev of ['call:incoming', 'call:updated']) {
      ch.on(ev, (p) => d.userEvents.push({ ...p, event: ev })); // the whole payload as pushed
    }
    return d;
  }

  async joinCall(callId) {
    const ch = this.sock.channel(`call:${callId}`, {});
    const rec = { ch, states: [], signals: [] };
    ch.on('state', (p) => rec.states.push(p.call));
    ch.on('signal', (p) => rec.signals.push(p));
    this.calls.set(String(callId), rec);
    return new Promise((resolve, reject) => {
      ch.join(15000)
        .receive('ok', (resp) => { this.joinReply = resp; resolve(ch); })
        .receive('error', (resp) => { ch.leave(); reject(Object.assign(new Error(`join refused: ${JSON.stringify(resp)}`), { resp })); })
        .receive('timeout', () => reject(new Error('call join timeout')));
    });
  }

  rec(callId) {
    const r = this.calls.get(String(callId));
    assert.ok(r, `device joined call ${callId}`);
    return r;
  }

  push(callId, event, payload = {}) { return push(this.rec(callId).ch, event, payload); }

  states(callId) { return this.rec(callId).states; }

  signals(callId) { return this.rec(callId).signals; }

  lastState(callId) {
    const s = this.rec(callId).states;
    return s.length ? s[s.length - 1] : null;
  }

  async waitState(callId, state, ms = 10000) {
    await until(() => this.rec(callId).states.some((c) => c.state === state), ms,
      `${this.user.username} sees call ${callId} ${state}`);
    return this.rec(callId).states.find((c) => c.state === state);
  }

  async waitUserEvent(pred, ms = 10000, what = 'user event') {
    await until(() => this.userEvents.some(pred), ms, `${this.user.username}: ${what}`);
    return this.userEvents.find(pred);
  }

  close() {
    try { this.sock.disconnect(); } catch { /* gone */ }
  }
}

/** Signs the user in again: a second session (another device). */
async function signin(srv, user) {
  const r = await api(srv, 'POST', '/auth/login', { body: { username: user.username, password: user.password } });
  assert.equal(r.status, 200, r.text);
  return { ...user, token: r.json.access_token };
}

/** POST /calls; asserts the status and returns the body. */
async function startCall(srv, from, body, status = 201) {
  const r = await api(srv, 'POST', '/calls', { token: from.token, body });
  assert.equal(r.status, status, r.text);
  return r.json;
}

/** The caller hangs up callId from a device of its own (so that no call is
 * left ringing in the shared test database for a later test's server to end,
 * pushing call_cancel to that test's fake); asserts the reply is ok. */
async function hangUp(srv, user, callId) {
  const d = await Device.open(srv, user);
  try {
    await d.joinCall(callId);
    const h = await d.push(callId, 'hangup');
    assert.equal(h.status, 'ok', JSON.stringify(h.response));
  } finally { d.close(); }
}

module.exports = { Device, signin, startCall, hangUp };
