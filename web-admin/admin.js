// Switchboard admin dashboard: polls GET /admin/stats every second with the
// admin token (kept in sessionStorage), draws the last minutes, and offers
// the admin actions (disconnect, ban, unban, broadcast, resolve a report).
'use strict';

const KEY = 'sb_admin_token';
const POLL_MS = 1000;
const KEEP = 300; // points kept per graph: five minutes at one a second
const $ = (id) => document.getElementById(id);
const series = { connections: [], messages: [], deliveries: [], p99: [] };
const snaps = []; // recent stats, for rates and latency quantiles
let timer = null;

function token() { return sessionStorage.getItem(KEY) || ''; }

async function call(method, path, body) {
  const opts = { method, headers: { authorization: `Bearer ${token()}` } };
  if (body !== undefined) {
    opts.headers['content-type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  const res = await fetch(path, opts);
  let json = null;
  try { json = await res.json(); } catch { /* empty */ }
  if (res.status === 401 || res.status === 403) {
    stop(json && json.error ? json.error.message : 'token refused');
  }
  return { status: res.status, json };
}

function fmtRate(v) { return v >= 100 ? v.toFixed(0) : v.toFixed(1); }
function fmtSecs(s) {
  if (s === null || !Number.isFinite(s)) return '–';
  return s < 1 ? `${(s * 1000).toFixed(s < 0.01 ? 1 : 0)} ms` : `${s.toFixed(2)} s`;
}
function fmtBytes(b) { return b > 1 << 30 ? `${(b / (1 << 30)).toFixed(1)} GiB` : `${(b / (1 << 20)).toFixed(0)} MiB`; }

/** The q-quantile of a histogram given as {bounds, counts} (non-cumulative, last = +Inf). */
function quantile(h, q) {
  const total = h.counts.reduce((a, b) => a + b, 0);
  if (!total) return null;
  const want = q * total;
  let cum = 0;
  for (let i = 0; i < h.counts.length; i++) {
    const prev = cum;
    cum += h.counts[i];
    if (cum >= want) {
      if (i >= h.bounds.length) return h.bounds[h.bounds.length - 1]; // in +Inf: at least the last bound
      const lo = i ? h.bounds[i - 1] : 0;
      return lo + (h.bounds[i] - lo) * ((want - prev) / (h.counts[i] || 1));
    }
  }
  return null;
}

/** Counts of h minus those of old (same bounds). */
function diff(h, old) {
  if (!h || !old) return h;
  return { bounds: h.bounds, counts: h.counts.map((c, i) => c - (old.counts[i] || 0)) };
}

function push(name, v) {
  series[name].push(v);
  if (series[name].length > KEEP) series[name].shift();
  draw($(`g-${name}`), series[name]);
}

function draw(canvas, pts) {
  const ctx = canvas.getContext('2d');
  const w = canvas.width, h = canvas.height;
  ctx.clearRect(0, 0, w, h);
  canvas.dataset.points = pts.length;
  if (pts.length < 2) return;
  const max = Math.max(...pts.filter(Number.isFinite), 1e-9);
  ctx.strokeStyle = '#3b5bdb';
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  const span = Math.max(pts.length, 60) - 1; // the first minute fills in, then the graph scrolls
  pts.forEach((v, i) => {
    const x = (i / span) * w;
    const y = h - 2 - ((Number.isFinite(v) ? v : 0) / max) * (h - 4);
    if (i) ctx.lineTo(x, y); else ctx.moveTo(x, y);
  });
  ctx.stroke();
}

function setHealth(el, state) {
  el.textContent = state;
  el.className = state === 'ok' ? 'ok' : state === 'down' ? 'down' : 'degraded';
}

async function poll() {
  let r;
  try { r = await call('GET', '/admin/stats'); } catch (e) { $('status').textContent = `unreachable: ${e.message}`; return; }
  if (r.status !== 200) return;
  const s = r.json;
  const now = Date.now();
  snaps.push({ at: now, s });
  while (snaps.length > 12) snaps.shift();
  const prev = snaps.length > 1 ? snaps[snaps.length - 2] : null;
  const dt = prev ? (now - prev.at) / 1000 : 0;
  $('status').textContent = `live · ${new Date(now).toLocaleTimeString()}`;
  $('node').textContent = `node ${s.node} · up ${s.uptime_s} s`;
  $('fig-connections').textContent = s.connections_open;
  push('connections', s.connections_open);
  const msgs = prev && dt > 0 ? (s.messages_sent_total - prev.s.messages_sent_total) / dt : 0;
  const dels = prev && dt > 0 ? (s.fanout_deliveries_total - prev.s.fanout_deliveries_total) / dt : 0;
  $('fig-messages').textContent = fmtRate(msgs);
  $('fig-deliveries').textContent = fmtRate(dels);
  push('messages', msgs);
  push('deliveries', dels);
  // send->ack latency over the last ~10 s of sends
  const base = snaps[0].s;
  const window = diff(s.send_latency_seconds, base === s ? null : base.send_latency_seconds);
  const p50 = window ? quantile(window, 0.5) : null, p99 = window ? quantile(window, 0.99) : null;
  $('fig-p50').textContent = fmtSecs(p50);
  $('fig-p99').textContent = fmtSecs(p99);
  push('p99', p99 === null ? 0 : p99);
  setHealth($('fig-postgres'), s.postgres);
  const db = diff(s.db_query_seconds, base === s ? null : base.db_query_seconds);
  $('fig-dbp99').textContent = db ? `query p99 ${fmtSecs(quantile(db, 0.99))}` : '';
  setHealth($('fig-redis'), s.redis);
  $('fig-cluster').textContent = s.cluster ? 'cluster' : 'single node';
  $('fig-reports').textContent = s.open_reports === null ? '?' : s.open_reports;
  $('fig-users').textContent = `${s.users ?? '?'} users, ${s.banned_users ?? '?'} banned`;
  $('fig-rss').textContent = fmtBytes(s.rss_bytes);
  $('fig-fds').textContent = `${s.open_fds} descriptors`;
}

function say(text, ok = true) {
  $('result').textContent = text;
  $('result').className = ok ? 'ok' : 'down';
}

async function userAction(what) {
  const id = $('user-id').value.trim();
  if (!/^\d+$/.test(id)) { say('enter a user id (digits)', false); return; }
  if (what === 'ban' && !window.confirm(`Ban user ${id}? Every session ends and the sockets close.`)) return;
  const r = await call('POST', `/admin/users/${id}/${what}`, {});
  if (r.status === 200) say(`${what}: user ${id} done${what === 'ban' ? ` (${r.json.sessions_revoked} sessions revoked)` : ''}`);
  else say(`${what} failed: ${r.json && r.json.error ? r.json.error.message : r.status}`, false);
  poll();
}

function cell(tr, text) {
  const td = document.createElement('td');
  td.textContent = text;
  tr.appendChild(td);
  return td;
}

// The open reports, oldest first, 50 a page; "More" appends the next page.
let reportsCursor = null;
async function loadReports(more = false) {
  const q = more && reportsCursor ? `&cursor=${encodeURIComponent(reportsCursor)}` : '';
  const r = await call('GET', `/admin/reports?state=open&limit=50${q}`);
  if (r.status !== 200) return;
  const tb = $('reports');
  if (!more) tb.replaceChildren();
  reportsCursor = r.json.next_cursor || null;
  $('reports-more').hidden = !reportsCursor;
  for (const rep of r.json.items) {
    const tr = document.createElement('tr');
    tr.dataset.id = rep.id;
    cell(tr, rep.id);
    cell(tr, new Date(rep.created_at).toLocaleString());
    cell(tr, rep.reporter_id ?? '–');
    const target = cell(tr, rep.target_user_id ?? '–');
    if (rep.target_user_id) {
      const pick = document.createElement('button');
      pick.type = 'button';
      pick.textContent = '→';
      pick.title = 'act on this user';
      pick.onclick = () => { $('user-id').value = rep.target_user_id; };
      target.append(' ', pick);
    }
    cell(tr, rep.reason + (rep.note ? ` — ${rep.note}` : ''));
    const ev = cell(tr, rep.snapshot ? `“${rep.snapshot.body ?? ''}” (${rep.snapshot.kind})` : 'user report');
    ev.className = 'evidence';
    const act = document.createElement('td');
    for (const [state, label] of [['actioned', 'Actioned'], ['dismissed', 'Dismiss']]) {
      const b = document.createElement('button');
      b.type = 'button';
      b.textContent = label;
      b.className = `resolve-${state}`;
      b.onclick = async () => {
        const res = await call('POST', `/admin/reports/${rep.id}`, { state });
        if (res.status === 200) { say(`report ${rep.id}: ${state}`); tr.remove(); poll(); } else say(`report ${rep.id}: ${res.json?.error?.message || res.status}`, false);
      };
      act.appendChild(b);
    }
    tr.appendChild(act);
    tb.appendChild(tr);
  }
}

function start() {
  $('login').hidden = true;
  $('dash').hidden = false;
  $('forget').hidden = false;
  poll();
  loadReports();
  timer = setInterval(poll, POLL_MS);
}

function stop(why) {
  if (timer) clearInterval(timer);
  timer = null;
  sessionStorage.removeItem(KEY);
  $('dash').hidden = true;
  $('login').hidden = false;
  $('forget').hidden = true;
  $('status').textContent = why || 'not connected';
}

document.addEventListener('DOMContentLoaded', () => {
  $('login').addEventListener('submit', (e) => {
    e.preventDefault();
    sessionStorage.setItem(KEY, $('token').value.trim());
    $('token').value = '';
    start();
  });
  $('forget').onclick = () => stop('token forgotten');
  $('btn-disconnect').onclick = () => userAction('disconnect');
  $('btn-ban').onclick = () => userAction('ban');
  $('btn-unban').onclick = () => userAction('unban');
  $('btn-reports').onclick = () => loadReports(false);
  $('reports-more').onclick = () => loadReports(true);
  $('broadcast-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const r = await call('POST', '/admin/broadcast', { title: $('bc-title').value, body: $('bc-body').value });
    if (r.status === 202) say('broadcast sent'); else say(`broadcast failed: ${r.json?.error?.message || r.status}`, false);
  });
  if (token()) start();
});
