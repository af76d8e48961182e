// sync.js — P6: GET /api/v1/sync for one user with pending events, as fast as
// the VUs go; compare with healthz.js against the same deployment.
//   k6 run -e SB_URL=... -e SB_TOKEN=<access token> -e SB_CURSOR=<cursor> sync.js
import http from 'k6/http';
import { check } from 'k6';
import { BASE } from './lib.js';

export const options = { vus: Number(__ENV.VUS || 8), duration: __ENV.DURATION || '30s' };

export default function () {
  const q = __ENV.SB_CURSOR ? `?cursor=${encodeURIComponent(__ENV.SB_CURSOR)}` : '';
  const r = http.get(`${BASE}/api/v1/sync${q}`, { headers: { authorization: `Bearer ${__ENV.SB_TOKEN}` } });
  check(r, { 'sync 200': (x) => x.status === 200 });
}
