'use strict';
// Starts the Switchboard binary (env SB_BIN) on fresh ports for one test file,
// waits for its "listening" log line, mints tokens with the same secret, and
// stops it afterwards. Every wait is bounded.
//
//   const { startServer } = require('./lib/server');
//   const srv = await startServer({ env: { SB_IDLE_TIMEOUT_MS: '1500' } });
//   srv.port, srv.adminPort, srv.pid, srv.wsUrl('/socket/websocket?vsn=2.0.0&token=..')
//   srv.token('alice'), srv.token('alice', { ttl: -60 }), forgeToken(tok)
//   await srv.stop()
//
// Each server's stderr goes to tests/artifacts/e2e/<file>-<n>.log (gitignored),
// so a failing run leaves the server's side of the story behind.

const { spawn } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { mintToken, forgeToken } = require('./token');

const REPO = path.resolve(__dirname, '..', '..', '..');
// one folder per binary's build variant (release, asan, ...), so two runs do not mix
const ARTIFACTS = process.env.SB_E2E_ARTIFACTS
  || path.join(REPO, 'tests', 'artifacts', 'e2e', path.basename(path.dirname(path.resolve(process.env.SB_BIN || 'build/release/x'))));

function binPath() {
  const bin = process.env.SB_BIN || path.join(REPO, 'build', 'release', 'switchboard');
  const abs = path.resolve(bin);
  if (!fs.existsSync(abs)) {
    throw new Error(`server binary not found: ${abs} (set SB_BIN to the switchboard binary)`);
  }
  return abs;
}

/** True when the binary under test is a sanitizer build (slower, more memory). */
function isSanitizerBuild() {
  if (process.env.SB_E2E_SANITIZER) return process.env.SB_E2E_SANITIZER === '1';
  return /asan|sanitiz/i.test(process.env.SB_BIN || '');
}

/** Multiplier for timing bounds (sanitizer builds run several times slower). */
function slow() {
  const f = Number(process.env.SB_E2E_TIME_FACTOR || (isSanitizerBuild() ? 3 : 1));
  return f > 0 ? f : 1;
}

const live = new Set();
process.on('exit', () => {
  for (const child of live) {
    try { child.kill('SIGKILL'); } catch { /* gone */ }
  }
});

let serial = 0;

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timeout after ${ms} ms: ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

class Server {
  constructor(child, env, logFile) {
    this.child = child;
    this.pid = child.pid;
    this.env = env;
    this.logFile = logFile;
    this.lines = [];
    this.port = 0;
    this.adminPort = 0;
    this.exitInfo = null;
    this.stopping = false;
    this.exited = new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        this.exitInfo = { code, signal, at: Date.now() };
        live.delete(child);
        resolve(this.exitInfo);
      });
    });
  }

  /** Base URL of the public listener, e.g. http://127.0.0.1:PORT */
  get http() { return `http://127.0.0.1:${this.port}`; }
  url(p = '/') { return `${this.http}${p}`; }
  wsUrl(p = '/') { return `ws://127.0.0.1:${this.port}${p}`; }

  /** Mints an access token with the server's secret: `switchboard token <user> [--ttl s]`. */
  token(userId, { ttl } = {}) {
    return mintToken(binPath(), this.env, userId, { ttl, timeoutMs: 10000 * slow() });
  }

  /** True while the process has not exited. */
  alive() { return this.exitInfo === null; }

  /** Peak and current RSS in kB from /proc/<pid>/status (VmHWM, VmRSS). */
  memory() {
    const status = fs.readFileSync(`/proc/${this.pid}/status`, 'utf8');
    const kb = (k) => {
      const m = status.match(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm'));
      return m ? Number(m[1]) : NaN;
    };
    return { rssKb: kb('VmRSS'), hwmKb: kb('VmHWM') };
  }

  /** Log lines (parsed JSON objects where possible) whose msg matches. */
  logsMatching(re) {
    return this.lines.filter((l) => re.test(l.raw));
  }

  tail(n = 40) {
    return this.lines.slice(-n).map((l) => l.raw).join('\n');
  }

  /**
   * Sends `signal` (SIGTERM by default) and waits for the exit; SIGKILL after
   * timeoutMs. Returns { code, signal, ms, killed }.
   */
  async stop({ signal = 'SIGTERM', timeoutMs = 10000 } = {}) {
    if (!this.alive()) return { ...this.exitInfo, ms: 0, killed: false, alreadyExited: !this.stopping };
    this.stopping = true;
    const t0 = Date.now();
    try { this.child.kill(signal); } catch { /* raced an exit */ }
    let killed = false;
    try {
      await withTimeout(this.exited, timeoutMs, `server exit after ${signal}`);
    } catch {
      killed = true;
      try { this.child.kill('SIGKILL'); } catch { /* gone */ }
      await withTimeout(this.exited, 5000, 'server exit after SIGKILL').catch(() => {});
    }
    return { ...this.exitInfo, ms: Date.now() - t0, killed };
  }
}

// Ports Node's fetch refuses to connect to (the WHATWG "bad port" list, the
// part above 1023): a kernel-chosen port can land on one when the ephemeral
// range is widened (make bench widens it to 1024-65535 while it runs).
const FETCH_BAD_PORTS = new Set([1719, 1720, 1723, 2049, 3659, 4045, 4190, 5060, 5061, 6000, 6566,
  6665, 6666, 6667, 6668, 6669, 6679, 6697, 10080]);

/**
 * Spawns `$SB_BIN serve` with the test environment (plus `env` overrides) and
 * resolves once the "listening" line with the bound port has been logged. A
 * server that got a port fetch refuses is stopped and started again (at most
 * 5 times) unless the caller chose the ports.
 */
async function startServer(opts = {}) {
  for (let attempt = 1; ; attempt++) {
    const srv = await startServerOnce(opts);
    const bad = FETCH_BAD_PORTS.has(srv.port) || FETCH_BAD_PORTS.has(srv.adminPort);
    const chosen = opts.env && (Number(opts.env.SB_PORT) > 0 || Number(opts.env.SB_ADMIN_PORT) > 0);
    if (!bad || chosen || attempt === 5) return srv;
    await srv.stop({ signal: 'SIGKILL', timeoutMs: 2000 });
  }
}

async function startServerOnce({ env = {}, name, startTimeoutMs = 20000 } = {}) {
  const bin = binPath();
  const secret = crypto.randomBytes(24).toString('hex'); // 48 chars
  const fullEnv = {
    ...process.env,
    SB_HOST: '127.0.0.1',
    SB_PORT: '0',
    SB_ADMIN_PORT: '0',
    SB_SECRET: secret,
    SB_TEST_CHANNELS: '1',
    SB_REACTORS: '2',
    SB_LOG_LEVEL: 'info',
  };
  // uploaded media go to a fresh folder per server unless the test names one
  fullEnv.SB_MEDIA_DIR = fs.mkdtempSync(path.join(require('node:os').tmpdir(), 'sb-media-'));
  if (process.env.SB_TEST_DATABASE_URL) fullEnv.SB_DATABASE_URL = process.env.SB_TEST_DATABASE_URL;
  else delete fullEnv.SB_DATABASE_URL;
  Object.assign(fullEnv, env);
  for (const [k, v] of Object.entries(fullEnv)) if (v === undefined || v === null) delete fullEnv[k];

  const caller = name || path.basename(require.main ? require.main.filename : 'e2e', '.js');
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const logFile = path.join(ARTIFACTS, `${caller}-${process.pid}-${++serial}.log`);
  const logStream = fs.createWriteStream(logFile);

  const child = spawn(bin, ['serve'], { env: fullEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  const srv = new Server(child, fullEnv, logFile);

  let buf = '';
  let onListening;
  const listening = new Promise((resolve) => { onListening = resolve; });
  const onData = (chunk) => {
    logStream.write(chunk);
    buf += chunk.toString('utf8');
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const raw = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      let obj = null;
      try { obj = JSON.parse(raw); } catch { /* not JSON */ }
      srv.lines.push({ raw, obj });
      if (srv.lines.length > 5000) srv.lines.splice(0, 1000);
      if (obj && obj.msg === 'listening' && Number(obj.port) > 0) {
        srv.port = Number(obj.port);
        srv.adminPort = Number(obj.admin_port) || 0;
        onListening();
      }
    }
  };
  child.stderr.on('data', onData);
  child.stdout.on('data', (c) => logStream.write(c));
  child.on('exit', () => logStream.end());

  try {
    await withTimeout(
      Promise.race([
        listening,
        srv.exited.then((e) => {
          throw new Error(`server exited before listening (code ${e.code}, signal ${e.signal}):\n${srv.tail()}`);
        }),
      ]),
      startTimeoutMs * slow(),
      `"listening" log line from ${bin} serve`,
    );
  } catch (err) {
    await srv.stop({ signal: 'SIGKILL', timeoutMs: 2000 });
    throw new Error(`${err.message}\nlast log lines:\n${srv.tail()}`);
  }
  return srv;
}

module.exports = { startServer, forgeToken, withTimeout, isSanitizerBuild, slow, binPath, REPO };
