// sends.js — P4: pairs of users in direct conversations; every VU sends
// message:send on user:<me> as soon as its previous send is acknowledged
// (acknowledged = committed), and counts the message:new pushes it gets.
//   k6 run -e SB_URL=https://chat.example.com -e VUS=200 sends.js
import { check } from 'k6';
import { Counter, Trend } from 'k6/metrics';
import { connect, signup, direct } from './lib.js';

const RUN = Number(__ENV.RUN || 30);
const ack = new Trend('send_ack_ms', true);
const acks = new Counter('sends_acked');
const received = new Counter('message_new_received');

export const options = {
  scenarios: { senders: { executor: 'per-vu-iterations', vus: Number(__ENV.VUS || 100), iterations: 1, maxDuration: `${RUN + 120}s` } },
  thresholds: { send_ack_ms: ['p(99)<25'] },
};

// Each VU makes its own partner (a second user) and their conversation.
export default function () {
  const me = signup('k6s');
  const other = signup('k6r');
  const conv = direct(me, other.id);
  let n = 0;
  connect(me.token, (phx, socket) => {
    const end = Date.now() + RUN * 1000;
    phx.on('message:new', () => received.add(1));
    const send = () => {
      if (Date.now() >= end) { socket.close(); return; }
      const t0 = Date.now();
      phx.push(`user:${me.id}`, 'message:send',
        { conversation_id: conv, client_id: `k6-${__VU}-${n++}`, kind: 'text', body: 'k6 load message' },
        (status) => { check(status, { 'send acknowledged': (s) => s === 'ok' }); if (status === 'ok') { acks.add(1); ack.add(Date.now() - t0); } send(); });
    };
    phx.join(`user:${me.id}`, {}, (status) => { if (status === 'ok') send(); });
  });
}
