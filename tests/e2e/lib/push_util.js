'use strict';
// Shared by the push e2e files: a /metrics reader, an async wait, and a
// device token in FCM's shape.
const crypto = require('node:crypto');
const { slow } = require('./server');
const { sleep } = require('./api');

/** One series of the node's /metrics (admin listener), 0 when absent. */
async function metric(srv, name, labels = '') {
  const text = await (await fetch(`http://127.0.0.1:${srv.adminPort}/metrics`)).text();
  const want = labels ? `${name}{${labels}} ` : `${name} `;
  const line = text.split('\n').find((l) => l.startsWith(want));
  return line ? Number(line.slice(want.length)) : 0;
}

/** until() for an async predicate (a /metrics read); ms scaled by slow(). */
async function untilAsync(pred, ms, what) {
  const deadline = Date.now() + ms * slow();
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timeout waiting for ${what}`);
    await sleep(50);
  }
}

/** A fresh random device token. */
const ptoken = () => `fcm-${crypto.randomBytes(24).toString('base64url')}`;

module.exports = { metric, untilAsync, ptoken };
