'use strict';
// P10 (issue 14): pushes per second from the server to the fake FCM
// (tests/e2e/lib/fake_fcm.js: HTTP/2 over TLS, the tests' fake) beside
// h2load against the same fake endpoint in the same run.
//
//   node scripts/bench_p10.js --bin build/release/switchboard --members 50 --messages 200 --out p10.json
//
// The fake runs in a child process of its own (so the load this driver makes
// does not share its thread). Reference: h2load sends `requests` FCM v1
// requests (a real message body and a valid bearer token) over 2 connections
// with 100 streams each (what the server uses: at most 2 HTTP/2 connections,
// SB_FCM_CONCURRENCY=200 streams). Measured: the server with push on, one
// group conversation of `members` members (each offline, one device each);
// `messages` sends by 8 concurrent senders: every send makes `members - 1`
// pushes. The fake holds every push until all are decided (the server's
// queue full, SB_FCM_CONCURRENCY requests held in flight), then releases
// them: the rate is the pushes the fake accepted after the release (not the
// held ones) divided by the time from the release to the last one, i.e. the push service's own throughput (TLS,
// HTTP/2, libcurl multi, answers parsed), not the send path's. Writes one
// RESULT json.
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

// ---- the fake, in its own process -------------------------------------------
if (args.fake) {
  const { FakeFcm } = require(path.join(REPO, 'tests/e2e/lib/fake_fcm'));
  (async () => {
    const f = await FakeFcm.start();
    const rl = readline.createInterface({ input: process.stdin });
    const say = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);
    say({ url: f.url, keyFile: f.keyFile, caFile: f.caFile, projectId: f.projectId });
    rl.on('line', (l) => {
      if (l === 'token') {
        const t = crypto.randomBytes(24).toString('base64url');
        f.tokens.set(t, { exp: Date.now() + 3600e3, revoked: false });
        say({ token: t });
      } else if (l === 'stats') {
        const ok = f.requests.filter((r) => r.status === 200);
        const seen = new Set();
        let dups = 0;
        for (const x of f.sends) { const k = `${x.token} ${x.message.data && x.message.data.message_id}`; if (seen.has(k)) dups++; seen.add(k); }
        say({ dups, kinds: [...new Set(f.sends.map((x) => x.message.data && x.message.data.type))], requests: f.requests.length, accepted: ok.length, first: ok.length ? ok[0].at : 0, last: ok.length ? ok[ok.length - 1].at : 0, problems: f.problems.slice(0, 5) });
      } else if (l === 'hold') { // every push waits until 'release'
        f.defaultReply = { until: new Promise((r) => { f.releaseHold = r; }) };
        say({ hold: true });
      } else if (l === 'release') {
        f.defaultReply = null;
        const at = Date.now();
        f.releaseHold();
        say({ released: at });
      } else if (l === 'reset') {
        f.requests = []; f.sends = []; f.problems = [];
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

(async () => {
  const fake = startFake();
  const info = await fake.ask(null);
  const { startServer } = require(path.join(REPO, 'tests/e2e/lib/server'));
  const { BASE_ENV, api, signupMany, waitForDatabase } = require(path.join(REPO, 'tests/e2e/lib/api'));
  const result = { scenario: 'p10_push', members, messages };
  let srv;
  try {
    // reference: h2load against the fake's FCM endpoint
    const { token } = await fake.ask('token');
    const body = path.join(logDir, 'p10_body.json');
    fs.writeFileSync(body, JSON.stringify({ message: { token: 'h2load-device', notification: { title: 'Bench', body: 'hello' }, data: { type: 'message', conversation_id: 'c', message_id: 'm', seq: '1' }, android: { collapse_key: 'conversation:c', priority: 'high' } } }));
    const refN = Math.max(members * messages, 1000);
    const h2 = execFileSync('h2load', ['-n', String(refN), '-c', '2', '-m', '100', '-d', body,
      '-H', `authorization: Bearer ${token}`, '-H', 'content-type: application/json',
      `${info.url}/v1/projects/${info.projectId}/messages:send`], { encoding: 'utf8', maxBuffer: 1 << 24 });
    fs.writeFileSync(path.join(logDir, 'p10_h2load.out'), h2);
    const rps = /finished in [^,]+, ([\d.]+) req\/s/.exec(h2);
    const st = /requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed/.exec(h2);
    const status2xx = /status codes: (\d+) 2xx/.exec(h2);
    result.ref_h2load_rps = rps ? Number(rps[1]) : 0;
    result.ref_requests = refN;
    result.ref_2xx = status2xx ? Number(status2xx[1]) : 0;
    if (!st || result.ref_2xx !== refN) throw new Error(`h2load: not every request succeeded (${result.ref_2xx}/${refN})`);
    await fake.ask('reset');

    // the server with push on
    await waitForDatabase();
    srv = await startServer({
      name: 'p10',
      env: { ...BASE_ENV, SB_RATELIMIT_SEND: '1000000/1', SB_FCM_CREDENTIALS: info.keyFile, SB_FCM_ENDPOINT: info.url, SB_FCM_CA_FILE: info.caFile, SB_FCM_QUEUE_MAX: String(members * messages * 2), SB_FCM_TIMEOUT_MS: '120000', SB_METRICS_OPEN: '1' },
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
      s = await fake.ask('stats');
      const q = await queued();
      if (q >= 0 && q + s.requests >= want) break;
      if (Date.now() > fill) throw new Error(`the backlog did not build: ${q} queued, ${s.requests} at the fake, ${want} expected`);
      await new Promise((r) => setTimeout(r, 100));
    }
    result.in_flight_held = s.requests;
    const { released } = await fake.ask('release');
    const deadline = Date.now() + 120000;
    for (;;) {
      s = await fake.ask('stats');
      if (s.accepted >= want || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    result.pushes_expected = want;
    result.pushes_accepted = s.accepted;
    result.push_requests = s.requests;
    result.problems = s.problems;
    result.duplicates = s.dups;
    result.kinds = s.kinds;
    const span = Math.max(1, s.last - released) / 1000;
    result.drain_s = span;
    // the held ones were sent before the release: only those sent after count
    result.pushes_per_s = Math.round((s.accepted - result.in_flight_held) / span);
    result.ratio_to_h2load = result.ref_h2load_rps ? result.pushes_per_s / result.ref_h2load_rps : 0;
    // duplicates (the same message to the same device twice) are reported:
    // libcurl replays requests in flight when a connection dies (GOAWAY)
    result.ok = s.accepted >= want && s.problems.length === 0;
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
