// healthz.js — the reference for sync.js: GET /healthz on the admin listener.
//   k6 run -e SB_ADMIN_URL=http://127.0.0.1:4001 healthz.js
import http from 'k6/http';
import { check } from 'k6';

export const options = { vus: Number(__ENV.VUS || 8), duration: __ENV.DURATION || '30s' };

export default function () {
  const r = http.get(`${__ENV.SB_ADMIN_URL || 'http://127.0.0.1:4001'}/healthz`);
  check(r, { 'healthz 200': (x) => x.status === 200 });
}
