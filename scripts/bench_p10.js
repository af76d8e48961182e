'use strict';
// P10 (issue 14): pushes per second from the server to the fake FCM
// (tests/e2e/lib/fake_fcm.js: HTTP/2 over TLS, the tests' fake) beside
// h2load against the same fake endpoint in the same run.
//
//   node scripts/bench_p10.js --bin build/release/switchboard --members 50 --messages 200 --out p10.json
//
// The fake runs in a child process of its own (so the load this driver makes
// does not share its thread). Measured first: the server with push on, one
// group conversation of `members` members (each offline, one device each);
// `messages` sends by 8 concurrent senders: every send makes `members - 1`
// pushes. The fake holds every push until all are decided (the server's
// queue full, SB_FCM_CONCURRENCY requests held in flight), then releases
// them: the rate is the pushes the fake accepted after the release (not the
// held ones) divided by the time from the release to the last one, i.e. the
// push service's own throughput (TLS, HTTP/2, libcurl multi, answers
// parsed), not the send path's. During this phase the fake ends each
// connection gracefully (GOAWAY, NO_ERROR) after --cap streams (800):
// libcurl 7.88 sends an RST_STREAM after each finished request, and the
// nghttp2 inside Node (>= 1.57, rapid-reset protection: 1,000 resets, then
// 33/s) would otherwise end the connection abruptly (GOAWAY INTERNAL_ERROR)
// every ~1,100 requests, cutting answered requests off; real front ends cap
// a connection's requests the same way. Then the reference: h2load sends
// `requests` FCM v1 requests with the body the server sent (the same size)
// and a valid bearer token over 2 connections with 100 streams each (what
// the server uses: at most 2 HTTP/2 connections, SB_FCM_CONCURRENCY=200);
// h2load sends no RST_STREAM and does not reconnect, so no cap then.
// Reported beside the rates: the fake's CPU share in each phase (1.0 = one
// core busy all along: the fake is the ceiling), its CPU per request, and
// the server's CPU per push. Writes one RESULT json.
const { spawn, execFileSync } = require('node:child_process');
const path = require('node:path');
const fs = require('node:fs');
const crypto = require('node:crypto');
const readline = require('node:readline');

const REPO = path.resolve(__dirname, '..');
const args = Object.fromEntries(process.argv.slice(2).reduce((a, v, i, all) => (v.startsWith('--') ? [...a, [v.slice(2), all[i + 1]]] : a), []));
const members = Number(args.members || 50);
const messages = Number(args.messages || 200);
const out = args.out || 'p10.json';
process.env.SB_BIN = path.resolve(args.bin || path.join(REPO, 'build/release/switchboard'));
const logDir = args.log || path.dirname(path.resolve(out));
// the fake closes a connection gracefully (GOAWAY) after this many streams
// during the server's phase: see the header
const CAP = Number(args.cap || 800);

// ---- the fake, in its own process -------------------------------------------
if (args.fake) {
  const { FakeFcm } = require(path.join(REPO, 'tests/e2e/lib/fake_fcm'));
  (async () => {
    const f = await FakeFcm.start();
    // what the connections did: sessions opened, GOAWAYs received, streams
    // reset, the most streams in flight at once
    const conn = { sessions: 0, goaway_recv: 0, streams: 0, max_streams: 0 };
    f.server.on('session', (ss) => {
      conn.sessions++;
      ss.on('goaway', () => { conn.goaway_recv++; });
    });
    f.server.on('stream', (st) => {
      conn.streams++;
      if (conn.streams > conn.max_streams) conn.max_streams = conn.streams;
      st.on('close', () => { conn.streams--; if (st.rstCode) { const k = `rst_${st.rstCode}_${st.headersSent ? 'answered' : 'open'}`; conn[k] = (conn[k] || 0) + 1; } });
    });
    let cpu0 = process.cpuUsage();
    let t0 = Date.now();
    const rl = readline.createInterface({ input: process.stdin });
    const say = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);
    say({ url: f.url, keyFile: f.keyFile, caFile: f.caFile, projectId: f.projectId });
    rl.on('line', (l) => {
      const [cmd, arg] = l.split(' ');
      if (cmd === 'token') {
        const t = crypto.randomBytes(24).toString('base64url');
        f.tokens.set(t, { exp: Date.now() + 3600e3, revoked: false });
        say({ token: t });
      } else if (cmd === 'count') { // cheap (polled while pushes flow): no scan of the records
        const last = f.sends.length ? f.sends[f.sends.length - 1].at : 0;
        say({ requests: f.requests.length, accepted: f.sends.length, last });
      } else if (cmd === 'stats') { // the whole picture, once at the end of a phase
        const seen = new Set();
        let dups = 0;
        for (const x of f.sends) { const k = `${x.token} ${x.message.data && x.message.data.message_id}`; if (seen.has(k)) dups++; seen.add(k); }
        const c = process.cpuUsage(cpu0);
        say({ conn: { ...conn }, dups, kinds: [...new Set(f.sends.map((x) => x.message.data && x.message.data.type))], requests: f.requests.length, accepted: f.sends.length, last: f.sends.length ? f.sends[f.sends.length - 1].at : 0, problems: f.problems.slice(0, 5), sample: f.sends.length ? f.sends[0].message : null, cpu_ms: Math.round((c.user + c.system) / 1000), wall_ms: Date.now() - t0 });
      } else if (cmd === 'cpu') { // the fake's CPU time from now on (cpu_ms in stats)
        cpu0 = process.cpuUsage(); t0 = Date.now();
        say({ cpu: true });
      } else if (cmd === 'cap') { // a graceful GOAWAY after this many streams on a connection (0: none)
        f.maxStreamsPerSession = Number(arg) || 0;
        say({ cap: f.maxStreamsPerSession });
      } else if (cmd === 'hold') { // every push waits until 'release'
        f.hold();
        say({ hold: true });
      } else if (cmd === 'release') {
        const at = Date.now();
        f.release();
        say({ released: at });
      } else if (cmd === 'reset') {
        f.requests = []; f.sends = []; f.problems = []; f.held = [];
        for (const k of Object.keys(conn)) if (k !== 'streams') conn[k] = 0;
        say({ reset: true });
      }
    });
    rl.on('close', async () => { await f.close(); process.exit(0); });
  })();
  return;
}

function startFake() {
  const child = spawn(process.execPath, [__filename, '--fake', '1'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const rl = readline.createInterface({ input: child.stdout });
  const waiting = [];
  rl.on('line', (l) => { const w = waiting.shift(); if (w) w(JSON.parse(l)); });
  const ask = (cmd) => new Promise((resolve) => { waiting.push(resolve); if (cmd) child.stdin.write(`${cmd}\n`); });
  return { child, ask, close: () => child.stdin.end() };
}

// CPU time (ms) the process pid has used so far (utime + stime)
function cpuMs(pid) {
  try {
    const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / 100; // clock ticks: 100/s on Linux
  } catch { return 0; }
}

(async () => {
  const fake = startFake();
  const info = await fake.ask(null);
  const { startServer } = require(path.join(REPO, 'tests/e2e/lib/server'));
  const { BASE_ENV, api, signupMany, waitForDatabase } = require(path.join(REPO, 'tests/e2e/lib/api'));
  const result = { scenario: 'p10_push', members, messages, cap_streams_per_connection: CAP };
  let srv;
  try {
    // measured: the server with push on
    await waitForDatabase();
    srv = await startServer({
      name: 'p10',
      env: { ...BASE_ENV, SB_RATELIMIT_SEND: '1000000/1', SB_FCM_CREDENTIALS: info.keyFile, SB_FCM_ENDPOINT: info.url, SB_FCM_CA_FILE: info.caFile, SB_FCM_QUEUE_MAX: String(members * messages * 2), SB_FCM_ALERT_INTERVAL_MS: '0', SB_FCM_TIMEOUT_MS: '120000', SB_METRICS_OPEN: '1', ...(args.concurrency ? { SB_FCM_CONCURRENCY: args.concurrency } : {}), ...(args.connections ? { SB_FCM_CONNECTIONS: args.connections } : {}) },
    });
    const users = await signupMany(srv, members);
    for (let i = 1; i < users.length; i += 10) {
      await Promise.all(users.slice(i, i + 10).map(async (u) => {
        const r = await api(srv, 'POST', '/devices', { token: u.token, body: { platform: 'android', push_token: `bench-${crypto.randomBytes(16).toString('base64url')}` } });
        if (r.status !== 201) throw new Error(`device: ${r.status} ${r.text}`);
      }));
    }
    const g = await api(srv, 'POST', '/conversations', { token: users[0].token, body: { kind: 'group', title: 'P10', member_ids: users.slice(1).map((u) => u.id) } });
    if (g.status !== 201 && g.status !== 200) throw new Error(`group: ${g.status} ${g.text}`);
    const conv = g.json.conversation.id;
    const want = messages * (members - 1);
    await fake.ask(`cap ${CAP}`);
    await fake.ask('hold');
    const t0 = Date.now();
    let next = 0;
    await Promise.all(Array.from({ length: 8 }, async () => {
      while (next < messages) {
        next++;
        const r = await api(srv, 'POST', `/conversations/${conv}/messages`, { token: users[0].token, body: { client_id: crypto.randomUUID(), kind: 'text', body: 'hello from the bench' } });
        if (r.status !== 201) throw new Error(`send: ${r.status} ${r.text}`);
      }
    }));
    result.send_s = (Date.now() - t0) / 1000;
    // the backlog: every push decided, up to SB_FCM_CONCURRENCY of them in
    // flight at the fake (held), the rest in the server's queue
    const queued = async () => {
      const text = await (await fetch(`http://127.0.0.1:${srv.adminPort}/metrics`)).text();
      const line = text.split('\n').find((l) => l.startsWith('sb_push_queued '));
      return line ? Number(line.slice(15)) : -1;
    };
    let s;
    const fill = Date.now() + 120000;
    for (;;) {
      s = await fake.ask('count');
      const q = await queued();
      if (q >= 0 && q + s.requests >= want) break;
      if (Date.now() > fill) throw new Error(`the backlog did not build: ${q} queued, ${s.requests} at the fake, ${want} expected`);
      await new Promise((r) => setTimeout(r, 100));
    }
    result.in_flight_held = s.requests;
    await fake.ask('cpu');
    const srvCpu0 = cpuMs(srv.child.pid);
    const { released } = await fake.ask('release');
    const deadline = Date.now() + 120000;
    for (;;) {
      s = await fake.ask('count');
      if (s.accepted >= want || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const srvCpu = cpuMs(srv.child.pid) - srvCpu0;
    s = await fake.ask('stats');
    result.pushes_expected = want;
    result.pushes_accepted = s.accepted;
    result.push_requests = s.requests;
    result.problems = s.problems;
    result.duplicates = s.dups;
    result.kinds = s.kinds;
    result.fake_conn = s.conn;
    const span = Math.max(1, s.last - released) / 1000;
    result.drain_s = span;
    // the held ones were sent before the release: only those sent after count
    const measured = s.accepted - result.in_flight_held;
    result.pushes_per_s = Math.round(measured / span);
    // who was busy while the pushes flowed: the fake's CPU share (1 = one
    // core all the time: the fake is the ceiling) and the server's CPU per push
    result.fake_cpu_share = +(s.cpu_ms / s.wall_ms).toFixed(2);
    result.fake_cpu_us_per_req = Math.round((s.cpu_ms * 1000) / Math.max(1, s.requests - result.in_flight_held));
    result.server_cpu_us_per_push = Math.round((srvCpu * 1000) / Math.max(1, measured));
    const sample = s.sample;
    await srv.stop();
    srv = null;

    // reference: h2load against the same fake endpoint, with a body the
    // server made (same size), 2 connections x 100 streams (what the server
    // uses: at most 2 connections, SB_FCM_CONCURRENCY = 200)
    const { token } = await fake.ask('token');
    const body = path.join(logDir, 'p10_body.json');
    fs.writeFileSync(body, JSON.stringify({ message: sample ? { ...sample, token: 'h2load-device' } : { token: 'h2load-device', notification: { title: 'Bench', body: 'hello' } } }));
    result.body_bytes = fs.statSync(body).size;
    const refN = Math.max(members * messages, 1000);
    await fake.ask('cap 0'); // h2load does not reconnect after a GOAWAY (and needs no cap: it sends no RST_STREAM)
    await fake.ask('reset');
    await fake.ask('cpu');
    const h2 = execFileSync('h2load', ['-n', String(refN), '-c', '2', '-m', '100', '-d', body,
      '-H', `authorization: Bearer ${token}`, '-H', 'content-type: application/json; charset=UTF-8',
      `${info.url}/v1/projects/${info.projectId}/messages:send`], { encoding: 'utf8', maxBuffer: 1 << 24 });
    fs.writeFileSync(path.join(logDir, 'p10_h2load.out'), h2);
    const rs = await fake.ask('stats');
    const rps = /finished in [^,]+, ([\d.]+) req\/s/.exec(h2);
    const st = /requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed/.exec(h2);
    const status2xx = /status codes: (\d+) 2xx/.exec(h2);
    result.ref_h2load_rps = rps ? Number(rps[1]) : 0;
    result.ref_requests = refN;
    result.ref_2xx = status2xx ? Number(status2xx[1]) : 0;
    result.ref_conn = rs.conn;
    result.ref_fake_cpu_share = +(rs.cpu_ms / rs.wall_ms).toFixed(2);
    result.ref_fake_cpu_us_per_req = Math.round((rs.cpu_ms * 1000) / Math.max(1, rs.requests));
    if (!st || result.ref_2xx !== refN) throw new Error(`h2load: not every request succeeded (${result.ref_2xx}/${refN})`);
    result.ratio_to_h2load = result.ref_h2load_rps ? result.pushes_per_s / result.ref_h2load_rps : 0;
    result.ok = s.accepted >= want && s.dups === 0 && s.problems.length === 0;
    if (!result.ok && !result.error) result.error = s.dups ? `${s.dups} pushes arrived twice` : 'not every push arrived';
  } catch (e) {
    result.error = String(e.message || e);
    result.ok = false;
  } finally {
    if (srv) await srv.stop();
    fake.close();
  }
  fs.writeFileSync(out, JSON.stringify(result));
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
  process.exit(result.ok ? 0 : 1);
})();
