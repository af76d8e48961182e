'use strict';
// GET /metrics (issue 15): the Prometheus text exposition passes
// `promtool check metrics`, lists every family docs/operations.md names,
// moves with traffic, and a real Prometheus (started here on loopback with
// its own config and storage, scraping every second with the admin token)
// shows sb_messages_sent_total rising through its HTTP API while a client
// sends.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { spawn, spawnSync } = require('node:child_process');
const { BASE_ENV, api, signup, waitForDatabase, uname, connect, join, push, sleep } = require('./lib/api');
const { startServer, slow } = require('./lib/server');
const { admin } = require('./lib/admin');
const { Device, startCall } = require('./lib/calls');

const T = { timeout: 120000 * slow() };
const TOKEN = crypto.randomBytes(24).toString('hex');

const FAMILIES = [
  'sb_connections_accepted_total', 'sb_connections_open', 'sb_channel_joins_total', 'sb_channels_joined',
  'sb_messages_sent_total', 'sb_message_send_seconds', 'sb_fanout_deliveries_total', 'sb_outbound_queue_bytes',
  'sb_slow_consumer_closes_total', 'sb_http_requests_total', 'sb_db_query_seconds', 'sb_db_pool_waits_total',
  'sb_db_queries_refused_total', 'sb_redis_publish_seconds', 'sb_redis_publications_dropped_total',
  'sb_tailer_lag_seconds', 'sb_sync_requests_total', 'sb_rate_limited_total', 'sb_calls_ended_total',
  'sb_call_setup_seconds', 'sb_push_results_total', 'sb_push_request_seconds', 'sb_push_queued',
  'process_resident_memory_bytes', 'process_open_fds',
];

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
    s.on('error', reject);
  });
}

/** The value of the sample `name{labels}` in exposition text (sum over label sets when labels omitted). */
function value(text, name, labels) {
  let v = 0;
  let found = false;
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/);
    if (!m || m[1] !== name) continue;
    if (labels && !(m[2] || '').includes(labels)) continue;
    v += Number(m[3]);
    found = true;
  }
  return found ? v : NaN;
}

describe('metrics', () => {
  let srv, a, b, conv;
  before(async () => {
    await waitForDatabase();
    srv = await startServer({ name: 'metrics', env: { ...BASE_ENV, SB_ADMIN_TOKEN: TOKEN } });
    a = await signup(srv);
    b = await signup(srv);
    conv = (await api(srv, 'POST', '/conversations', { token: a.token, body: { kind: 'direct', user_id: b.id } })).json.conversation.id;
  });
  after(async () => { if (srv) await srv.stop(); });

  const scrape = async () => {
    const r = await admin(srv, 'GET', '/metrics', { token: TOKEN });
    assert.equal(r.status, 200, r.text);
    assert.match(r.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
    return r.text;
  };

  test('the exposition passes promtool check metrics, names every family, and moves with traffic', T, async () => {
    const before0 = await scrape();
    // traffic: a socket, a join, a channel send with a fan-out, a REST send, a sync
    const sb = await connect(srv, b);
    const { ch } = await join(sb, `user:${b.id}`);
    const sa = await connect(srv, a);
    await join(sa, `conversation:${conv}`);
    const { ch: cha } = await join(sa, `user:${a.id}`);
    let got = 0;
    ch.on('message:new', () => { got++; });
    const r = await push(cha, 'message:send', { conversation_id: conv, client_id: uname(), kind: 'text', body: 'one' });
    assert.equal(r.status, 'ok', JSON.stringify(r));
    assert.equal((await api(srv, 'POST', `/conversations/${conv}/messages`, { token: a.token, body: { client_id: uname(), kind: 'text', body: 'two' } })).status, 201);
    assert.equal((await api(srv, 'GET', '/sync', { token: a.token })).status, 200);
    // a call declined: sb_calls_ended_total{reason="declined"}
    const da = await Device.open(srv, a);
    const db = await Device.open(srv, b);
    const { call } = await startCall(srv, a, { user_id: b.id, media: 'audio' });
    await db.joinCall(call.id);
    const dec = await db.push(call.id, 'decline');
    assert.equal(dec.status, 'ok', JSON.stringify(dec));
    da.close();
    db.close();
    const deadline = Date.now() + 10000 * slow();
    while (got < 2 && Date.now() < deadline) await sleep(20); // eslint-disable-line no-await-in-loop
    const text = await scrape();
    for (const f of FAMILIES) assert.match(text, new RegExp(`^# TYPE ${f} `, 'm'), `family ${f}`);
    const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    assert.equal(check.status, 0, `promtool: ${check.stdout}${check.stderr}`);
    assert.equal((check.stdout + check.stderr).trim(), '', 'no lint findings');
    // no per-user or per-topic labels
    assert.doesNotMatch(text, /user_id=|topic=|conversation:|user:\d/);
    const d = (n, l) => value(text, n, l) - (value(before0, n, l) || 0);
    assert.equal(d('sb_messages_sent_total'), 2);
    assert.ok(d('sb_fanout_deliveries_total') >= 2, 'fan-out counted');
    assert.ok(d('sb_channel_joins_total', 'prefix="user"') >= 1);
    assert.ok(d('sb_channel_joins_total', 'prefix="conversation"') >= 1);
    assert.ok(value(text, 'sb_channels_joined', 'prefix="conversation"') >= 1);
    assert.ok(value(text, 'sb_connections_open') >= 2);
    assert.equal(d('sb_message_send_seconds_count'), 2);
    assert.ok(d('sb_sync_requests_total', 'via="rest"') >= 1);
    assert.ok(d('sb_http_requests_total', 'route="/api/v1/conversations/:id/messages",code="2xx"') >= 1);
    assert.ok(d('sb_db_query_seconds_count') > 0);
    assert.equal(d('sb_calls_ended_total', 'reason="declined"'), 1);
    assert.equal(d('sb_calls_ended_total'), 1);
    assert.ok(value(text, 'process_resident_memory_bytes') > 1e6);
    assert.ok(value(text, 'process_open_fds') > 3);
    sa.disconnect();
    sb.disconnect();
  });

  test('a real Prometheus scrapes the admin listener and sees sb_messages_sent_total rise while a client sends', T, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-prom-'));
    const port = await freePort();
    fs.writeFileSync(path.join(dir, 'prometheus.yml'), [
      'global:', '  scrape_interval: 1s', '  scrape_timeout: 1s', 'scrape_configs:',
      '  - job_name: switchboard', '    metrics_path: /metrics', '    authorization:', `      credentials: ${TOKEN}`,
      '    static_configs:', `      - targets: ['127.0.0.1:${srv.adminPort}']`, '',
    ].join('\n'));
    const log = fs.openSync(path.join(dir, 'prometheus.log'), 'w');
    const prom = spawn('prometheus', [`--config.file=${path.join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${path.join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'], { stdio: ['ignore', log, log] });
    const query = async (q) => {
      const r = await fetch(`http://127.0.0.1:${port}/api/v1/query?query=${encodeURIComponent(q)}`, { signal: AbortSignal.timeout(5000) });
      const j = await r.json();
      assert.equal(j.status, 'success', JSON.stringify(j));
      return j.data.result;
    };
    let sending = true;
    try {
      // the target is up and scraped
      let v0 = NaN;
      const deadline = Date.now() + 60000 * slow();
      for (;;) {
        // eslint-disable-next-line no-await-in-loop
        const res = await query('sb_messages_sent_total').catch(() => []);
        if (res.length === 1) { v0 = Number(res[0].value[1]); break; }
        assert.ok(Date.now() < deadline, `Prometheus never scraped: ${fs.readFileSync(path.join(dir, 'prometheus.log'), 'utf8')}`);
        await sleep(250); // eslint-disable-line no-await-in-loop
      }
      assert.equal(Number((await query('up{job="switchboard"}'))[0].value[1]), 1);
      // a client sends, one message every 50 ms, while we watch Prometheus
      let sent = 0;
      const sender = (async () => {
        while (sending) {
          // eslint-disable-next-line no-await-in-loop
          const r = await api(srv, 'POST', `/conversations/${conv}/messages`, { token: a.token, body: { client_id: uname(), kind: 'text', body: `m${sent}` } });
          if (r.status === 201) sent++;
          await sleep(50); // eslint-disable-line no-await-in-loop
        }
      })();
      const seen = [];
      for (;;) {
        // eslint-disable-next-line no-await-in-loop
        const res = await query('sb_messages_sent_total');
        const v = Number(res[0].value[1]);
        if (seen[seen.length - 1] !== v) seen.push(v);
        if (seen.length >= 3 && v >= v0 + 10) break; // rose over at least two scrapes
        assert.ok(Date.now() < deadline + 30000 * slow(), `no rise seen: ${seen.join(' ')}`);
        await sleep(300); // eslint-disable-line no-await-in-loop
      }
      sending = false;
      await sender;
      for (let i = 1; i < seen.length; i++) assert.ok(seen[i] > seen[i - 1], `monotonic: ${seen.join(' ')}`);
      const rate = await query('rate(sb_messages_sent_total[5s])');
      assert.equal(rate.length, 1);
      assert.ok(sent >= 10);
    } finally {
      sending = false;
      prom.kill('SIGTERM');
      await new Promise((r) => { if (prom.exitCode !== null) r(); else prom.once('exit', r); });
      fs.closeSync(log);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
