// fanout.js — P3: VUS subscribers on one echo:<topic> (a server started with
// SB_TEST_CHANNELS=1, so never a production deployment) and one publisher
// VU shouting back to back; reports the delivery latency of every frame.
//   k6 run -e SB_URL=http://127.0.0.1:4000 -e SB_TOKEN=<any valid token> fanout.js
import { check } from 'k6';
import { Counter, Trend } from 'k6/metrics';
import { connect } from './lib.js';

const TOPIC = __ENV.TOPIC || 'echo:k6fanout';
const RUN = Number(__ENV.RUN || 30);
const latency = new Trend('delivery_ms', true);
const deliveries = new Counter('deliveries');

export const options = {
  scenarios: {
    subscribers: { executor: 'per-vu-iterations', vus: Number(__ENV.VUS || 1000), iterations: 1, maxDuration: `${RUN + 60}s`, exec: 'subscriber' },
    publisher: { executor: 'per-vu-iterations', vus: 1, iterations: 1, startTime: '10s', maxDuration: `${RUN + 30}s`, exec: 'publisher' },
  },
};

export function subscriber() {
  connect(__ENV.SB_TOKEN, (phx, socket) => {
    phx.join(TOPIC, {}, (status) => check(status, { 'joined': (s) => s === 'ok' }));
    phx.on('shout', (p) => { deliveries.add(1); latency.add(Date.now() - p.t); });
    socket.setTimeout(() => socket.close(), (RUN + 20) * 1000);
  });
}

export function publisher() {
  connect(__ENV.SB_TOKEN, (phx, socket) => {
    const end = Date.now() + RUN * 1000;
    const next = () => {
      if (Date.now() >= end) { socket.close(); return; }
      phx.push(TOPIC, 'shout', { t: Date.now() }, next); // the next one as soon as this is answered
    };
    phx.join(TOPIC, {}, (status) => { if (status === 'ok') next(); });
  });
}
