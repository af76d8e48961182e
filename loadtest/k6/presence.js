// presence.js — P8: VUS members of one group conversation join
// conversation:<id> one by one (Phoenix Presence) and record how long each
// presence_diff takes to reach them. The members and their tokens come from
// a file of "user_id token" lines (SB_TOKENS) and the group id (SB_CONV):
// `scripts/bench_provision.py group` makes the group and users.txt through
// the REST API; mint each member's token with `switchboard token <id>`.
//   k6 run -e SB_URL=... -e SB_TOKENS=members.txt -e SB_CONV=42 presence.js
import { check } from 'k6';
import { Counter, Trend } from 'k6/metrics';
import { SharedArray } from 'k6/data';
import { connect } from './lib.js';

const HOLD = Number(__ENV.HOLD || 30);
const diffs = new Counter('presence_diffs');
const stateTime = new Trend('presence_state_ms', true);
const members = new SharedArray('members', () => open(__ENV.SB_TOKENS).split('\n').filter(Boolean).map((l) => l.split(' ')));

export const options = {
  scenarios: {
    viewers: { executor: 'ramping-vus', startVUs: 0, stages: [{ duration: __ENV.RAMP || '60s', target: Number(__ENV.VUS || members.length) }], gracefulRampDown: `${HOLD}s` },
  },
};

export default function () {
  const [, token] = members[(__VU - 1) % members.length];
  const t0 = Date.now();
  connect(token, (phx, socket) => {
    phx.on('presence_state', () => stateTime.add(Date.now() - t0));
    phx.on('presence_diff', () => diffs.add(1));
    phx.join(`conversation:${__ENV.SB_CONV}`, {}, (status) => check(status, { 'joined conversation': (s) => s === 'ok' }));
    socket.setTimeout(() => socket.close(), HOLD * 1000);
  });
}
