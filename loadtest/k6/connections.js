// connections.js — P1/P2: VUs connect, join user:<id>, and stay idle with
// phoenix.js-style heartbeats for HOLD seconds.
//   k6 run -e SB_URL=https://chat.example.com -e SB_TOKENS=tokens.txt connections.js
// SB_TOKENS: a file of "user_id token" lines (one per VU; mint them with
// `switchboard token <id>` on the server host) — or leave it out and each VU
// signs up a fresh user through REST (slower: password hashing per VU).
import { check } from 'k6';
import { Counter, Trend } from 'k6/metrics';
import { SharedArray } from 'k6/data';
import { connect, signup } from './lib.js';

const HOLD = Number(__ENV.HOLD || 60);
const joinTime = new Trend('phx_join_ms', true);
const joined = new Counter('phx_joined');
const tokens = __ENV.SB_TOKENS
  ? new SharedArray('tokens', () => open(__ENV.SB_TOKENS).split('\n').filter(Boolean).map((l) => l.split(' ')))
  : null;

export const options = {
  scenarios: {
    idle: { executor: 'per-vu-iterations', vus: Number(__ENV.VUS || 1000), iterations: 1, maxDuration: `${HOLD + 120}s` },
  },
  thresholds: { checks: ['rate>0.99'] },
};

export default function () {
  let user;
  if (tokens) { const [id, token] = tokens[(__VU - 1) % tokens.length]; user = { id, token }; }
  else user = signup('k6c');
  const t0 = Date.now();
  connect(user.token, (phx, socket) => {
    phx.join(`user:${user.id}`, {}, (status) => {
      check(status, { 'joined user:<id>': (s) => s === 'ok' });
      if (status === 'ok') { joined.add(1); joinTime.add(Date.now() - t0); }
    });
    socket.setTimeout(() => socket.close(), HOLD * 1000);
  });
}
