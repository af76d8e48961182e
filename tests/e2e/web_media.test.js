'use strict';
// Pictures and voice notes in the web client (web/), in headless Chromium
// against the real server and Postgres: Alice attaches a PNG made here and
// records a voice note from Chromium's fake microphone; both go through
// POST /api/v1/media and message:send (kind image / voice with media_id).
// Bob's page fetches them with its bearer token and shows the picture
// (decoded: naturalWidth > 0) and an <audio> player that has loaded the
// recording and knows its duration. SB_WEB_SCREENSHOT=1 also refreshes
// docs/web-media.png.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const zlib = require('node:zlib');
const { execFileSync } = require('node:child_process');
const { chromium } = require('playwright-core');
const { startServer, slow, REPO } = require('./lib/server');

const CHROMIUM = process.env.SB_CHROMIUM || '/usr/bin/chromium';
const SHOTS = path.join(REPO, 'tests', 'artifacts', 'web', path.basename(path.dirname(path.resolve(process.env.SB_BIN || 'build/release/x'))));
const T = { timeout: 90000 * slow() };
const WAIT = 20000 * slow();

function databaseUrl() {
  if (process.env.SB_TEST_DATABASE_URL) return process.env.SB_TEST_DATABASE_URL;
  const out = execFileSync(path.join(REPO, 'scripts', 'services.sh'), ['env'], { encoding: 'utf8' });
  const m = out.match(/^SB_TEST_DATABASE_URL=(.*)$/m);
  return m ? m[1].trim() : '';
}

const uname = (p) => `${p}${crypto.randomBytes(5).toString('hex')}`;

/** A w×h RGB PNG: a colour gradient (so it is a real picture, not a blank). */
function makePng(w, h) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (buf) => {
    let c = 0xffffffff;
    for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const c = Buffer.alloc(4);
    c.writeUInt32BE(crc(td));
    return Buffer.concat([len, td, c]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; ihdr[9] = 2; // 8-bit RGB
  const raw = Buffer.alloc((w * 3 + 1) * h);
  for (let y = 0; y < h; y++) {
    const row = y * (w * 3 + 1);
    for (let x = 0; x < w; x++) {
      raw[row + 1 + x * 3] = Math.round((255 * x) / w);
      raw[row + 2 + x * 3] = Math.round((255 * y) / h);
      raw[row + 3 + x * 3] = 200;
    }
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr), chunk('IDAT', zlib.deflateSync(raw)), chunk('IEND', Buffer.alloc(0)),
  ]);
}

async function signUp(browser, srv, prefix, display) {
  const ctx = await browser.newContext({ viewport: { width: 900, height: 560 }, locale: 'en-GB', timezoneId: 'UTC' });
  await ctx.grantPermissions(['microphone'], { origin: srv.url('/').replace(/\/$/, '') });
  ctx.setDefaultTimeout(WAIT);
  const page = await ctx.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  const username = uname(prefix);
  await page.goto(srv.url('/'));
  await page.locator('#auth-form').waitFor();
  await page.fill('#auth-username', username);
  await page.fill('#auth-password', 'correct horse battery staple');
  await page.fill('#auth-display', display);
  await page.click('#signup-btn');
  await page.locator('#me-name', { hasText: display }).waitFor();
  await page.locator('#conn.online').waitFor();
  return { ctx, page, username, errors };
}

describe('web client: pictures and voice notes in headless Chromium', () => {
  let srv;
  let browser;
  let alice;
  let bob;
  let tmp;

  before(async () => {
    assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} not found (apt-get install chromium; scripts/deps.sh does)`);
    fs.mkdirSync(SHOTS, { recursive: true });
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-web-media-'));
    srv = await startServer({
      env: {
        SB_DATABASE_URL: databaseUrl(),
        SB_MIGRATE: '1',
        SB_WEB_ROOT: path.join(REPO, 'web'),
        SB_MEDIA_DIR: path.join(tmp, 'media'),
        SB_ARGON2_T: '1',
        SB_ARGON2_M: '1024',
        SB_RATELIMIT_SIGNUP_IP: '100000/1',
        SB_RATELIMIT_LOGIN_IP: '100000/1',
        SB_RATELIMIT_LOGIN_ACCOUNT: '100000/1',
      },
    });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu',
        '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
        '--autoplay-policy=no-user-gesture-required'],
      timeout: 30000 * slow(),
    });
  });

  after(async () => {
    for (const [who, p] of [['alice', alice], ['bob', bob]]) {
      if (p) await p.page.screenshot({ path: path.join(SHOTS, `media-99-last-${who}.png`) }).catch(() => {});
    }
    if (browser) await browser.close().catch(() => {});
    if (srv) await srv.stop();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  test('Alice sends a picture and a voice note; Bob sees the picture and can play the note', T, async () => {
    alice = await signUp(browser, srv, 'alice', 'Alice');
    bob = await signUp(browser, srv, 'bob', 'Bob');
    const a = alice.page;
    const b = bob.page;

    // a direct chat, opened on both sides
    await a.fill('#user-search', bob.username.slice(0, 6));
    await a.locator('#search-results li.result', { has: a.locator(`text=@${bob.username}`) }).locator('.message-btn').click();
    await a.locator('#conv-title', { hasText: 'Bob' }).waitFor();
    await a.fill('#message-input', 'Here is the plan, and a voice note:');
    await a.click('#send-btn');
    const bobsChat = b.locator('#chat-list li.chat', { has: b.locator('.chat-title', { hasText: 'Alice' }) });
    await bobsChat.click();
    await b.locator('#message-list li.msg .body', { hasText: 'Here is the plan' }).waitFor();

    // the picture: through the (hidden) file input behind the Photo button
    const pngPath = path.join(tmp, 'plan.png');
    fs.writeFileSync(pngPath, makePng(120, 80));
    await a.setInputFiles('#attach-input', pngPath);
    const myImg = a.locator('#message-list li.msg.mine[data-seq]:not([data-seq=""]) img.media-img');
    await myImg.waitFor();

    // the voice note: record from the fake microphone for a moment, then send
    await a.click('#record-btn');
    await a.locator('#record-btn.recording').waitFor();
    await a.waitForTimeout(1500); // the length of the recording
    await a.click('#record-btn');
    await a.locator('#message-list li.msg.mine[data-seq]:not([data-seq=""]) audio.media-audio').waitFor();
    assert.equal(await a.locator('#media-error').textContent(), '', 'no upload error');

    // what the server stored: kind image / voice, media metadata sniffed from the bytes
    const sent = await a.evaluate(() => {
      const s = window.switchboard.state;
      return Object.values(s.msgs).flat().filter((m) => m.kind !== 'text')
        .map((m) => ({ kind: m.kind, media: m.media }));
    });
    const img = sent.find((m) => m.kind === 'image');
    const voice = sent.find((m) => m.kind === 'voice');
    assert.ok(img && voice, `both media messages acknowledged: ${JSON.stringify(sent)}`);
    assert.equal(img.media.mime, 'image/png');
    assert.equal(img.media.width, 120);
    assert.equal(img.media.height, 80);
    assert.match(voice.media.mime, /^(audio\/ogg|video\/webm)$/, 'a recording from MediaRecorder');
    assert.ok(voice.media.size > 100, 'the recording has content');

    // Bob's page downloads both with its token: the picture decoded, the audio loaded with a duration
    const bImg = b.locator('#message-list li.msg.theirs img.media-img');
    await bImg.waitFor();
    await b.waitForFunction(() => {
      const el = document.querySelector('#message-list li.msg.theirs img.media-img');
      return el && el.complete && el.naturalWidth > 0;
    }, null, { timeout: WAIT });
    assert.deepEqual(await bImg.evaluate((el) => [el.naturalWidth, el.naturalHeight, el.src.startsWith('blob:')]),
      [120, 80, true]);
    const bAudio = b.locator('#message-list li.msg.theirs audio.media-audio');
    await bAudio.waitFor();
    await b.waitForFunction(() => {
      const el = document.querySelector('#message-list li.msg.theirs audio.media-audio');
      return el && el.readyState >= 1 && Number.isFinite(el.duration) && el.duration > 0;
    }, null, { timeout: WAIT }).catch(async (e) => {
      const st = await bAudio.evaluate((el) => ({
        readyState: el.readyState, duration: el.duration, src: el.src, error: el.error?.message, failed: el.dataset.failed,
      }));
      throw new Error(`the audio never loaded with a duration: ${JSON.stringify(st)} (${voice.media.mime}): ${e.message}`);
    });
    const dur = await bAudio.evaluate((el) => el.duration);
    assert.ok(dur > 0.5 && dur < 30, `the voice note lasts about as long as it was recorded (${dur} s)`);
    // and it plays
    await bAudio.evaluate((el) => { el.muted = true; return el.play(); });
    await b.waitForFunction(() => {
      const el = document.querySelector('#message-list li.msg.theirs audio.media-audio');
      return el && el.currentTime > 0;
    }, null, { timeout: WAIT });

    // someone outside the chat cannot fetch the picture (the page's token is what grants it)
    const eve = await signUp(browser, srv, 'eve', 'Eve');
    const status = await eve.page.evaluate(async (id) => {
      const tok = window.switchboard.session.access_token;
      const r = await fetch(`/api/v1/media/${id}`, { headers: { authorization: `Bearer ${tok}` } });
      return r.status;
    }, img.media.id);
    assert.equal(status, 404);
    await eve.ctx.close();

    await b.screenshot({ path: path.join(SHOTS, 'media-01-bob.png') });
    if (process.env.SB_WEB_SCREENSHOT === '1') {
      await b.screenshot({ path: path.join(REPO, 'docs', 'web-media.png') });
    }
    assert.deepEqual([...alice.errors, ...bob.errors], [], 'no uncaught errors in the pages');
  });
});
