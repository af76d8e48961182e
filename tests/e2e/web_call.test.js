'use strict';
// Calls from the web client (web/) in headless Chromium with real WebRTC:
// two browser contexts sign up, one calls the other from a direct chat, the
// other accepts on the incoming-call screen, and both RTCPeerConnections
// reach ICE connected with media flowing (inbound RTP packets counted by
// getStats(), growing), once over host candidates (a server without TURN)
// and once forced through a real coturn (iceTransportPolicy "relay" with the
// ICE servers of POST /api/v1/calls and GET /api/v1/turn; relay candidates
// only). Mute, hang-up (both sides end, the duration is recorded) and
// decline. Chromium fakes the camera and microphone
// (--use-fake-device-for-media-stream --use-fake-ui-for-media-stream).
// Screenshots: tests/artifacts/web/<variant>/call-*.png; with
// SB_WEB_SCREENSHOT=1 also docs/call-incoming.png and docs/call-connected.png.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { chromium } = require('playwright-core');
const { startServer, slow, REPO } = require('./lib/server');
const { BASE_ENV, api, waitForDatabase } = require('./lib/api');
const { startCoturn } = require('./lib/coturn');

const CHROMIUM = process.env.SB_CHROMIUM || '/usr/bin/chromium';
const SHOTS = path.join(REPO, 'tests', 'artifacts', 'web', path.basename(path.dirname(path.resolve(process.env.SB_BIN || 'build/release/x'))));
const T = { timeout: 120000 * slow() };
const WAIT = 20000 * slow();
const uname = (p) => `${p}${crypto.randomBytes(5).toString('hex')}`;

function webServer(env = {}) {
  return startServer({ env: { ...BASE_ENV, SB_WEB_ROOT: path.join(REPO, 'web'), ...env } });
}

function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu',
      '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream'],
    timeout: 30000 * slow(),
  });
}

/** A person signed up through the form in a context of their own. */
async function signUp(browser, srv, display, { relay = false } = {}) {
  const ctx = await browser.newContext({ viewport: { width: 960, height: 600 }, locale: 'en-GB', timezoneId: 'UTC' });
  ctx.setDefaultTimeout(WAIT);
  if (relay) await ctx.addInitScript(() => localStorage.setItem('sb:ice-transport-policy', 'relay'));
  const page = await ctx.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  const username = uname(display.toLowerCase());
  await page.goto(srv.url('/'));
  await page.fill('#auth-username', username);
  await page.fill('#auth-password', 'correct horse battery staple');
  await page.fill('#auth-display', display);
  await page.click('#signup-btn');
  await page.locator('#me-name', { hasText: display }).waitFor();
  await page.locator('#conn.online').waitFor();
  const session = await page.evaluate(() => JSON.parse(sessionStorage.getItem('sb:session')));
  return {
    ctx, page, errors, username, display, id: String(session.user.id),
    token: () => page.evaluate(() => JSON.parse(sessionStorage.getItem('sb:session')).access_token),
    shot: (name) => page.screenshot({ path: path.join(SHOTS, `${name}.png`) }),
  };
}

/** The caller opens a direct chat with the callee (user search, Message). */
async function openChat(caller, callee) {
  const a = caller.page;
  await a.fill('#user-search', callee.username);
  await a.locator('#search-results li.result', { has: a.locator(`text=@${callee.username}`) }).locator('.message-btn').click();
  await a.locator('#conv-title', { hasText: callee.display }).waitFor();
  await a.locator('#call-buttons').waitFor();
}

/** What getStats() says about the page's current call. */
function callStats(page) {
  return page.evaluate(async () => {
    const pc = window.switchboard.call?.pc;
    if (!pc) return null;
    const st = await pc.getStats();
    const byId = new Map();
    st.forEach((r) => byId.set(r.id, r));
    const out = { ice: pc.iceConnectionState, inbound: {}, local: [], remote: [], pair: null };
    st.forEach((r) => {
      if (r.type === 'inbound-rtp') out.inbound[r.kind] = (out.inbound[r.kind] || 0) + (r.packetsReceived || 0);
      if (r.type === 'local-candidate') out.local.push(r.candidateType);
      if (r.type === 'remote-candidate') out.remote.push(r.candidateType);
      if (r.type === 'transport' && r.selectedCandidatePairId) {
        const p = byId.get(r.selectedCandidatePairId);
        if (p) out.pair = { state: p.state, local: byId.get(p.localCandidateId)?.candidateType, remote: byId.get(p.remoteCandidateId)?.candidateType };
      }
    });
    return out;
  });
}

async function waitFor(pred, what, ms = WAIT) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timeout waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * caller calls callee (video) from the chat; callee accepts; both reach ICE
 * connected with growing inbound RTP audio and video. Returns the stats.
 */
async function callAndConnect(caller, callee, { shots = '' } = {}) {
  await openChat(caller, callee);
  await caller.page.click('#call-video-btn');
  await caller.page.locator('#call-status', { hasText: /Calling|Ringing/ }).waitFor();
  // the callee's incoming-call screen, with the caller's name
  const b = callee.page;
  await b.locator('#call.incoming').waitFor();
  await b.locator('#call-peer', { hasText: caller.display }).waitFor();
  await b.locator('#call-status', { hasText: 'Incoming video call' }).waitFor();
  await caller.page.locator('#call[data-state="ringing"]').waitFor(); // the callee's device acknowledged
  if (shots) {
    await callee.shot(`${shots}-incoming`);
    if (process.env.SB_WEB_SCREENSHOT === '1') await b.screenshot({ path: path.join(REPO, 'docs', 'call-incoming.png') });
  }
  await b.click('#call-accept');
  // both: ICE connected, the server's state connected, the UI shows it
  for (const p of [caller, callee]) {
    await p.page.locator('#call[data-ice="connected"], #call[data-ice="completed"]').waitFor();
    await p.page.locator('#call[data-state="connected"]').waitFor();
    await p.page.locator('#call-status', { hasText: 'Connected' }).waitFor();
  }
  // media flows both ways: inbound RTP packets counted, and still growing
  const first = {};
  for (const p of [caller, callee]) {
    first[p.display] = await waitFor(async () => {
      const s = await callStats(p.page);
      return s && s.inbound.audio > 0 && s.inbound.video > 0 && s.pair && s.pair.state === 'succeeded' ? s : null;
    }, `${p.display}: inbound RTP audio and video`);
  }
  const later = {};
  for (const p of [caller, callee]) {
    later[p.display] = await waitFor(async () => {
      const s = await callStats(p.page);
      return s && s.inbound.audio > first[p.display].inbound.audio + 20 && s.inbound.video > first[p.display].inbound.video + 10 ? s : null;
    }, `${p.display}: inbound RTP still growing`);
  }
  if (shots) {
    await caller.page.waitForFunction(() => document.querySelector('#remote-video').videoWidth > 0, null, { timeout: WAIT });
    await caller.shot(`${shots}-connected`);
    if (process.env.SB_WEB_SCREENSHOT === '1') await caller.page.screenshot({ path: path.join(REPO, 'docs', 'call-connected.png') });
  }
  return later;
}

/** Hang-up from `who`: both pages end the call; the server recorded it with a duration. */
async function hangUp(who, other, srv) {
  const callId = await who.page.evaluate(() => window.switchboard.call.id);
  await who.page.click('#call-hangup');
  // both at once: the ending is shown for a moment, then the call screen goes
  await Promise.all([who, other].map(async (p) => {
    await p.page.locator('#call-status', { hasText: 'Call ended' }).waitFor();
    await p.page.locator('#call').waitFor({ state: 'hidden' });
    assert.equal(await p.page.evaluate(() => window.switchboard.call), null);
  }));
  const other_last = await other.page.evaluate(() => window.switchboard.lastCall);
  assert.equal(other_last.end_reason, 'hangup');
  const h = await api(srv, 'GET', '/calls', { token: await other.token() });
  assert.equal(h.status, 200, h.text);
  const rec = h.json.items.find((c) => String(c.id) === String(callId));
  assert.ok(rec, `call ${callId} in history`);
  assert.equal(rec.state, 'ended');
  assert.equal(rec.end_reason, 'hangup');
  assert.equal(rec.media, 'video');
  assert.ok(rec.duration_ms > 0, `duration ${rec.duration_ms}`);
}

describe('calls from the web client in headless Chromium (real WebRTC)', () => {
  let browser;
  const servers = [];
  let turn;
  const people = [];

  before(async () => {
    assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} not found (apt-get install chromium; scripts/deps.sh does)`);
    assert.ok(fs.existsSync(path.join(REPO, 'web', 'vendor', 'phoenix.mjs')),
      'web/vendor/phoenix.mjs is missing: `make build` copies it from tests/e2e/node_modules/phoenix');
    fs.mkdirSync(SHOTS, { recursive: true });
    await waitForDatabase();
    browser = await launchBrowser();
  });

  after(async () => {
    for (const p of people) await p.shot(`call-99-last-${p.display.toLowerCase()}`).catch(() => {});
    if (browser) await browser.close().catch(() => {});
    for (const s of servers) await s.stop();
    if (turn) await turn.stop();
  });

  test('host candidates: call, incoming screen, accept, media both ways, mute, hang-up; then a declined call', T, async () => {
    // no STUN/TURN configured: the ICE servers are [], only host candidates exist
    const srv = await webServer({ SB_TURN_URIS: '', SB_TURN_SECRET: '' });
    servers.push(srv);
    const alice = await signUp(browser, srv, 'Alice');
    const bob = await signUp(browser, srv, 'Bob');
    people.push(alice, bob);

    const stats = await callAndConnect(alice, bob, { shots: 'call-host' });
    for (const p of [alice, bob]) {
      const s = stats[p.display];
      assert.deepEqual([s.pair.local, s.pair.remote], ['host', 'host'], `${p.display}: ${JSON.stringify(s)}`);
      assert.ok(!s.local.includes('relay'), 'no relay candidate without TURN');
    }

    // mute: Alice's microphone track is disabled, the UI says so; unmute again
    await alice.page.click('#call-mute');
    await alice.page.locator('#call-mute', { hasText: 'Unmute' }).waitFor();
    await alice.page.locator('#call-status', { hasText: 'muted' }).waitFor();
    assert.deepEqual(await alice.page.evaluate(() => window.switchboard.call.local.getAudioTracks().map((t) => t.enabled)), [false]);
    await alice.page.click('#call-mute');
    await alice.page.locator('#call-mute', { hasText: /^Mute$/ }).waitFor();
    assert.deepEqual(await alice.page.evaluate(() => window.switchboard.call.local.getAudioTracks().map((t) => t.enabled)), [true]);

    await hangUp(bob, alice, srv);

    // a declined call: Bob declines on the incoming screen, Alice is told
    await alice.page.click('#call-audio-btn');
    await bob.page.locator('#call.incoming').waitFor();
    await bob.page.locator('#call-status', { hasText: 'Incoming audio call' }).waitFor();
    await bob.page.click('#call-decline');
    await Promise.all([
      alice.page.locator('#call-status', { hasText: 'Call declined' }).waitFor(),
      bob.page.locator('#call-status', { hasText: 'Declined' }).waitFor(),
    ]);
    await alice.page.locator('#call').waitFor({ state: 'hidden' });
    await bob.page.locator('#call').waitFor({ state: 'hidden' });
    assert.equal((await alice.page.evaluate(() => window.switchboard.lastCall)).end_reason, 'declined');
    assert.deepEqual([...alice.errors, ...bob.errors], [], 'no uncaught errors in the pages');
  });

  test('forced through a real coturn: iceTransportPolicy relay with the server\'s TURN credentials, relay candidates only', T, async () => {
    const secret = crypto.randomBytes(24).toString('base64');
    turn = await startCoturn({ secret });
    const srv = await webServer({ SB_TURN_SECRET: secret, SB_TURN_URIS: turn.uri, SB_TURN_TTL: '600' });
    servers.push(srv);
    const carol = await signUp(browser, srv, 'Carol', { relay: true });
    const dave = await signUp(browser, srv, 'Dave', { relay: true });
    people.push(carol, dave);

    const stats = await callAndConnect(carol, dave, { shots: 'call-relay' });
    for (const p of [carol, dave]) {
      const s = stats[p.display];
      assert.deepEqual([s.pair.local, s.pair.remote], ['relay', 'relay'], `${p.display}: ${JSON.stringify(s)}`);
      assert.ok(s.local.length > 0 && s.local.every((t) => t === 'relay'), `${p.display} gathered only relay candidates: ${s.local}`);
      assert.ok(s.remote.length > 0 && s.remote.every((t) => t === 'relay'), `${p.display} got only relay candidates: ${s.remote}`);
    }
    // the relays were allocated by coturn with each user's REST-API username <expiry>:<user_id>
    const log = turn.log();
    for (const p of [carol, dave]) {
      assert.match(log, new RegExp(`user <\\d+:${p.id}>: incoming packet ALLOCATE processed, success`), `coturn allocated for ${p.display}`);
    }
    await hangUp(carol, dave, srv);
    assert.deepEqual([...carol.errors, ...dave.errors], [], 'no uncaught errors in the pages');
  });
});
