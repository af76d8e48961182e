'use strict';
// A real coturn (Debian's `turnserver`) on loopback for the TURN suites,
// started with deploy/turnserver.conf (use-auth-secret, realm, quotas, denied
// private peer ranges) except that 127.0.0.1 peers are allowed: every test
// peer is local.
//
//   const turn = await startCoturn({ secret });   // its own port, relay port window and log
//   turn.port, turn.uri ('turn:127.0.0.1:<port>?transport=udp'), turn.log()
//   const r = await uclient(turn, { username, credential });  // turnutils_uclient: allocate + relay
//   r.ok, r.code, r.sent, r.received, r.output
//   await turn.stop();
//
// The log goes to tests/artifacts/e2e/<variant>/coturn-<pid>-<n>.log. Every wait is bounded.

const { spawn, execFile } = require('node:child_process');
const crypto = require('node:crypto');
const dgram = require('node:dgram');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { slow, REPO } = require('./server');

const TURNSERVER = process.env.SB_TURNSERVER || '/usr/bin/turnserver';
const UCLIENT = process.env.SB_TURN_UCLIENT || '/usr/bin/turnutils_uclient';
const STUNCLIENT = process.env.SB_TURN_STUNCLIENT || '/usr/bin/turnutils_stunclient';
const ARTIFACTS = process.env.SB_E2E_ARTIFACTS
  || path.join(REPO, 'tests', 'artifacts', 'e2e', path.basename(path.dirname(path.resolve(process.env.SB_BIN || 'build/release/x'))));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let serial = 0;

/** A port free for both UDP and TCP on 127.0.0.1 (coturn listens on both). */
async function freeUdpTcpPort() {
  for (let i = 0; i < 50; i++) {
    const port = await new Promise((resolve, reject) => {
      const s = dgram.createSocket('udp4');
      s.once('error', reject);
      s.bind(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
    });
    const tcpFree = await new Promise((resolve) => {
      const t = net.createServer();
      t.once('error', () => resolve(false));
      t.listen(port, '127.0.0.1', () => t.close(() => resolve(true)));
    });
    if (tcpFree) return port;
  }
  throw new Error('no free UDP+TCP port');
}

function run(file, args, timeoutMs) {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: timeoutMs, encoding: 'utf8', maxBuffer: 8 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, output: `${stdout}${stderr}` });
    });
  });
}

/** Starts turnserver with `secret` on a fresh loopback port; resolves once it answers STUN. */
async function startCoturn({ secret, realm = 'switchboard', extraArgs = [] } = {}) {
  if (!fs.existsSync(TURNSERVER)) throw new Error(`${TURNSERVER} not found (apt-get install coturn; scripts/deps.sh does)`);
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const n = ++serial;
  const dir = fs.mkdtempSync(path.join(require('node:os').tmpdir(), 'sb-coturn-'));
  const logFile = path.join(ARTIFACTS, `coturn-${process.pid}-${n}.log`);
  const port = await freeUdpTcpPort();
  // a relay port window of its own, so parallel suites do not compete
  const minPort = 20000 + crypto.randomInt(0, 400) * 100;
  // deploy/turnserver.conf itself (use-auth-secret, realm, quotas, the denied
  // private ranges), with this test's ports and secret, no TLS, and the one
  // exception the tests need: peers on 127.0.0.1 (every test peer is local)
  const args = [
    '-c', path.join(REPO, 'deploy', 'turnserver.conf'),
    '--listening-ip=127.0.0.1', '--relay-ip=127.0.0.1', `--listening-port=${port}`,
    `--min-port=${minPort}`, `--max-port=${minPort + 99}`,
    `--static-auth-secret=${secret}`, `--realm=${realm}`, '--no-tls', '--no-dtls',
    '--allow-loopback-peers', '--allowed-peer-ip=127.0.0.1',
    '--log-file=stdout', '--simple-log', '--verbose', `--pidfile=${path.join(dir, 'pid')}`, `--userdb=${path.join(dir, 'db')}`,
    ...extraArgs,
  ];
  const child = spawn(TURNSERVER, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const out = fs.createWriteStream(logFile);
  let text = '';
  const onData = (c) => { out.write(c); text += c.toString('utf8'); if (text.length > 4e6) text = text.slice(-2e6); };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  let exited = null;
  const done = new Promise((resolve) => child.on('exit', (code, sig) => { exited = { code, sig }; out.end(); resolve(exited); }));
  const turn = {
    port, uri: `turn:127.0.0.1:${port}?transport=udp`, stunUri: `stun:127.0.0.1:${port}`, secret, logFile,
    log: () => text,
    alive: () => exited === null,
    async stop() {
      if (exited) return exited;
      child.kill('SIGTERM');
      const t = setTimeout(() => { try { child.kill('SIGKILL'); } catch { /* gone */ } }, 5000);
      const r = await done;
      clearTimeout(t);
      fs.rmSync(dir, { recursive: true, force: true });
      return r;
    },
  };
  process.on('exit', () => { if (!exited) try { child.kill('SIGKILL'); } catch { /* gone */ } });
  // ready when a STUN binding request is answered
  const deadline = Date.now() + 20000 * slow();
  for (;;) {
    if (exited) throw new Error(`turnserver exited (${JSON.stringify(exited)}):\n${text.slice(-3000)}`);
    const r = await run(STUNCLIENT, ['-p', String(port), '127.0.0.1'], 3000 * slow());
    if (r.code === 0 && /UDP reflexive addr/i.test(r.output)) break;
    if (Date.now() > deadline) { await turn.stop(); throw new Error(`turnserver not answering STUN on ${port}:\n${r.output}\n${text.slice(-3000)}`); }
    await sleep(100);
  }
  return turn;
}

/**
 * turnutils_uclient with -u/-w: allocates relays on `turn` (two clients
 * talking through their relays, -y) and sends `messages` packets each way.
 * ok is true when it exited 0 and every packet came back.
 */
async function uclient(turn, { username, credential, messages = 10, tcp = false, peer = null }) {
  // -y: two clients talking through their relays; with `peer`: one client
  // asking for a channel to that address (no one answers there)
  const args = ['-p', String(turn.port), '-u', username, '-w', credential, '-c', '-n', String(messages), '-m', '1', '-l', '120'];
  if (peer) args.push('-e', peer);
  else args.push('-y');
  if (tcp) args.unshift('-t');
  args.push('127.0.0.1');
  const r = await run(UCLIENT, args, 30000 * slow());
  const m = r.output.match(/start_mclient: tot_send_msgs=(\d+), tot_recv_msgs=(\d+)\s*$/m);
  const sent = m ? Number(m[1]) : 0;
  const received = m ? Number(m[2]) : 0;
  return { ...r, sent, received, ok: r.code === 0 && sent > 0 && received === sent };
}

/** coturn's REST-API credential, computed independently of the server. */
function credentialFor(secret, username) {
  return crypto.createHmac('sha1', secret).update(username).digest('base64');
}

module.exports = { startCoturn, uclient, credentialFor };
