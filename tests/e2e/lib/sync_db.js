'use strict';
// Direct SQL for the sync suites: throwaway users, event streams written the
// way the chat core writes them (sb_stream_lock + sb_event_append in one
// transaction), membership periods, and long-lived psql sessions that can
// hold a transaction open (to make transactions commit out of order).
//
//   const { sql, Psql, mkUser, streamId, appendTx } = require('./lib/sync_db');
//
// Node has no Postgres driver here: everything goes through `psql` child
// processes. Every wait is bounded.

const crypto = require('node:crypto');
const { spawn, execFile } = require('node:child_process');

const DB_URL = process.env.SB_TEST_DATABASE_URL || '';

/** Runs SQL in a fresh psql (one implicit transaction per statement unless
 * BEGIN/COMMIT); resolves with the output lines (unaligned, tuples only). */
function sql(text, { timeoutMs = 20000 } = {}) {
  return new Promise((resolve, reject) => {
    execFile('psql', [DB_URL, '-qtAX', '-v', 'ON_ERROR_STOP=1', '-c', text],
      { encoding: 'utf8', timeout: timeoutMs, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
        if (err) reject(new Error(`psql failed: ${stderr || err.message}\n${text.slice(0, 300)}`));
        else resolve(stdout.split('\n').filter((l) => l.length > 0));
      });
  });
}

/** A psql process kept open: statements run one after another in the same
 * session, so `BEGIN` ... (wait) ... `COMMIT` holds a transaction open. */
class Psql {
  constructor() {
    this.child = spawn('psql', [DB_URL, '-qtAX'], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.out = '';
    this.err = '';
    this.n = 0;
    this.waiting = null;
    this.exited = false;
    this.child.stdout.on('data', (d) => { this.out += d.toString('utf8'); this._check(); });
    this.child.stderr.on('data', (d) => { this.err += d.toString('utf8'); });
    this.child.on('exit', () => {
      this.exited = true;
      if (this.waiting) this.waiting.reject(new Error(`psql exited: ${this.err}`));
    });
  }

  _check() {
    if (!this.waiting) return;
    const i = this.out.indexOf(this.waiting.marker);
    if (i < 0) return;
    const text = this.out.slice(0, i);
    this.out = this.out.slice(i + this.waiting.marker.length + 1);
    const w = this.waiting;
    this.waiting = null;
    clearTimeout(w.timer);
    const err = this.err;
    this.err = '';
    if (/ERROR/.test(err)) w.reject(new Error(`psql: ${err}`));
    else w.resolve(text.split('\n').filter((l) => l.length > 0));
  }

  /** Runs statements (ending in ;) and resolves with their output lines. */
  query(text, timeoutMs = 20000) {
    if (this.waiting) return Promise.reject(new Error('one query at a time'));
    if (this.exited) return Promise.reject(new Error('psql is gone'));
    const marker = `__sync_done_${++this.n}_${crypto.randomBytes(4).toString('hex')}__`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting = null;
        reject(new Error(`psql query timed out: ${text.slice(0, 200)}`));
      }, timeoutMs);
      this.waiting = { marker, resolve, reject, timer };
      this.child.stdin.write(`${text}\n\\echo ${marker}\n`);
    });
  }

  async close() {
    if (this.exited) return;
    const done = new Promise((r) => this.child.once('exit', r));
    this.child.stdin.end('\\q\n');
    const t = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await done;
    clearTimeout(t);
  }
}

/** Inserts a throwaway user; resolves with its id (decimal string). */
async function mkUser(prefix = 'sy') {
  const name = `${prefix}${crypto.randomBytes(6).toString('hex')}`;
  const rows = await sql(`INSERT INTO users (username, display_name, password_hash)
    VALUES ('${name}', '${name}', 'x') RETURNING id`);
  return rows[0];
}

/** A conversation stream id no real conversation will have (conversation ids
 * are small identities): 7e15 plus a random number. */
function streamId() {
  return String(7000000000000000n + BigInt(crypto.randomInt(1, 2 ** 47)));
}

/** SQL of one write transaction appending `payloads` (objects) of `type` to
 * `stream`, as the write rule says: the stream lock first. Each payload is
 * inserted as jsonb. Returns the SQL text (BEGIN ... COMMIT). */
function appendTx(stream, type, payloads, extra = '') {
  const lines = [`BEGIN; SELECT sb_stream_lock(${stream});`];
  for (const p of payloads) {
    const j = JSON.stringify(p).replace(/'/g, "''");
    lines.push(`SELECT sb_event_append(${stream}, '${type}', '${j}'::jsonb);`);
  }
  if (extra) lines.push(extra);
  lines.push('COMMIT;');
  return lines.join('\n');
}

/** SQL that makes `user` a member of conversation `stream` from the stream's
 * next seq on, with a conversation:updated event that opens the period (as
 * the chat core does), in one transaction. */
function joinTx(stream, user) {
  return `BEGIN; SELECT sb_stream_lock(${stream});
    INSERT INTO memberships (conversation_id, user_id, from_seq)
      VALUES (${stream}, ${user}, COALESCE((SELECT last_seq FROM streams WHERE stream = ${stream}), 0) + 1);
    SELECT sb_event_append(${stream}, 'conversation:updated',
      jsonb_build_object('conversation', jsonb_build_object('id', '${stream}', 'joined', '${user}')));
    COMMIT;`;
}

/** SQL that removes `user` from `stream`: the removal event closes the period
 * (to_seq = its seq, so the user sees it) and conversation:removed goes to
 * the user's private stream, as sb_member_remove does. */
function removeTx(stream, user) {
  return `BEGIN; SELECT sb_stream_lock(${stream}); SELECT sb_stream_lock(-${user});
    UPDATE memberships SET to_seq = sb_event_append(${stream}, 'conversation:updated',
      jsonb_build_object('conversation', jsonb_build_object('id', '${stream}', 'removed', '${user}')))
      WHERE conversation_id = ${stream} AND user_id = ${user} AND to_seq IS NULL;
    SELECT sb_event_append(-${user}, 'conversation:removed', jsonb_build_object('conversation_id', '${stream}'));
    COMMIT;`;
}

module.exports = { DB_URL, sql, Psql, mkUser, streamId, appendTx, joinTx, removeTx };
