'use strict';
// Access tokens for the tests: minted by the binary under test
// (`switchboard token <user_id> [--ttl <seconds>]`, same SB_SECRET as the
// server), so the tests never re-implement the signing scheme; and forged by
// changing one character of the signature.

const { execFileSync } = require('node:child_process');

/**
 * Mints a token with `bin token user [--ttl s]` under `env` (which must carry
 * the server's SB_SECRET). A negative ttl mints an expired token.
 */
function mintToken(bin, env, userId, { ttl, timeoutMs = 10000 } = {}) {
  const args = ['token', userId];
  if (ttl !== undefined) args.push('--ttl', String(ttl));
  const out = execFileSync(bin, args, { env, encoding: 'utf8', timeout: timeoutMs, stdio: ['ignore', 'pipe', 'pipe'] });
  const tok = out.trim().split('\n').pop().trim();
  if (!tok) throw new Error(`${bin} token ${userId} printed nothing`);
  return tok;
}

/**
 * A forged token: one character of the signature (the part after the last
 * '.') replaced in its middle, where all six bits of the base64url digit are
 * significant (changing the last digit could only touch padding bits).
 */
function forgeToken(tok) {
  const dot = tok.lastIndexOf('.');
  if (dot < 0 || tok.length - dot < 8) throw new Error(`unexpected token shape: ${tok}`);
  const i = dot + 1 + Math.floor((tok.length - dot - 1) / 2);
  const repl = tok[i] === 'A' ? 'Q' : 'A';
  return tok.slice(0, i) + repl + tok.slice(i + 1);
}

module.exports = { mintToken, forgeToken };
