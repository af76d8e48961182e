'use strict';
// The static file server behind `/` (server/src/static_files.c): MIME types,
// caching headers (ETag, 304 revalidation, no-cache), HEAD, the page's
// security headers, and path traversal refused in every spelling a raw
// client can send (plain, percent-encoded, backslash, hidden files, a
// symlink leaving the root). Runs against a scratch web root, then checks
// the real web/ client is served.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { startServer, REPO } = require('./lib/server');
const { httpExchange, get } = require('./lib/raw');

const T = { timeout: 30000 };

/** One raw GET of `target` exactly as written (no client-side normalisation). */
async function rawGet(port, target, extra = '') {
  const r = await httpExchange(port, `GET ${target} HTTP/1.1\r\nHost: x\r\n${extra}\r\n`, { responses: 1 });
  assert.equal(r.responses.length, 1, `no response to GET ${target}`);
  return r.responses[0];
}

describe('static files', () => {
  let srv;
  let root;
  let outside;

  before(async () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-static-'));
    root = path.join(tmp, 'www');
    outside = path.join(tmp, 'secret.txt');
    fs.mkdirSync(path.join(root, 'sub'), { recursive: true });
    fs.writeFileSync(outside, 'TOP SECRET');
    fs.writeFileSync(path.join(root, 'index.html'), '<!doctype html><title>t</title>');
    fs.writeFileSync(path.join(root, 'app.js'), 'export const x = 1;\n');
    fs.writeFileSync(path.join(root, 'lib.mjs'), 'export default 2;\n');
    fs.writeFileSync(path.join(root, 'style.css'), 'body{}\n');
    fs.writeFileSync(path.join(root, 'data.json'), '{"a":1}');
    fs.writeFileSync(path.join(root, 'pic.png'), Buffer.from('89504e470d0a1a0a', 'hex'));
    fs.writeFileSync(path.join(root, 'icon.svg'), '<svg xmlns="http://www.w3.org/2000/svg"/>');
    fs.writeFileSync(path.join(root, 'blob.bin'), Buffer.from([0, 1, 2]));
    fs.writeFileSync(path.join(root, 'sub', 'index.html'), '<p>sub</p>');
    fs.writeFileSync(path.join(root, '.env'), 'SB_SECRET=hidden');
    fs.mkdirSync(path.join(root, '.git'));
    fs.writeFileSync(path.join(root, '.git', 'config'), '[core]');
    fs.symlinkSync(outside, path.join(root, 'leak.txt'));
    fs.symlinkSync(path.dirname(outside), path.join(root, 'up'));
    fs.symlinkSync(path.join(root, 'app.js'), path.join(root, 'alias.js')); // stays inside: served
    srv = await startServer({ env: { SB_WEB_ROOT: root, SB_DATABASE_URL: undefined } });
  });

  after(async () => {
    if (srv) await srv.stop();
    if (root) fs.rmSync(path.dirname(root), { recursive: true, force: true });
  });

  test('MIME types by extension, nosniff on every file', T, async () => {
    const want = {
      '/': 'text/html; charset=utf-8',
      '/index.html': 'text/html; charset=utf-8',
      '/app.js': 'text/javascript; charset=utf-8',
      '/lib.mjs': 'text/javascript; charset=utf-8',
      '/style.css': 'text/css; charset=utf-8',
      '/data.json': 'application/json; charset=utf-8',
      '/pic.png': 'image/png',
      '/icon.svg': 'image/svg+xml',
      '/blob.bin': 'application/octet-stream',
      '/sub/': 'text/html; charset=utf-8',
    };
    for (const [p, ct] of Object.entries(want)) {
      const r = await get(srv.port, p);
      assert.equal(r.status, 200, p);
      assert.equal(r.headers.get('content-type'), ct, p);
      assert.equal(r.headers.get('x-content-type-options'), 'nosniff', p);
    }
    const js = await get(srv.port, '/app.js?v=123');
    assert.equal(js.text, 'export const x = 1;\n', 'the query string is not part of the path');
  });

  test('pages carry a CSP that keeps scripts and sockets on this origin', T, async () => {
    const page = await get(srv.port, '/');
    const csp = page.headers.get('content-security-policy') || '';
    assert.match(csp, /default-src 'self'/);
    assert.match(csp, /frame-ancestors 'none'/);
    const js = await get(srv.port, '/app.js');
    assert.equal(js.headers.get('content-security-policy'), null, 'only pages get the CSP');
  });

  test('caching: ETag and no-cache, 304 on If-None-Match (lists, weak, *), 200 when changed', T, async () => {
    const first = await get(srv.port, '/app.js');
    const etag = first.headers.get('etag');
    assert.match(etag, /^"[0-9a-f]+-[0-9a-f]+"$/);
    assert.equal(first.headers.get('cache-control'), 'no-cache');
    for (const inm of [etag, `"zzz", ${etag}`, `W/${etag}`, '*']) {
      const again = await get(srv.port, '/app.js', { headers: { 'if-none-match': inm } });
      assert.equal(again.status, 304, `If-None-Match: ${inm}`);
      assert.equal(again.text, '');
      assert.equal(again.headers.get('etag'), etag);
    }
    const other = await get(srv.port, '/app.js', { headers: { 'if-none-match': '"nope"' } });
    assert.equal(other.status, 200);
    // a new build (other size) gets a new ETag and is served again
    fs.writeFileSync(path.join(root, 'app.js'), 'export const x = 22;\n');
    const changed = await get(srv.port, '/app.js', { headers: { 'if-none-match': etag } });
    assert.equal(changed.status, 200);
    assert.notEqual(changed.headers.get('etag'), etag);
    assert.equal(changed.text, 'export const x = 22;\n');
  });

  test('HEAD gets the headers and no body', T, async () => {
    // read to the close: the parser cannot know this answers a HEAD
    const r = await httpExchange(srv.port, 'HEAD /style.css HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
      { responses: 99, waitClose: true });
    const raw = r.raw.toString('latin1');
    const end = raw.indexOf('\r\n\r\n');
    assert.ok(end > 0, raw);
    const head = raw.slice(0, end).toLowerCase();
    assert.match(head, /^http\/1\.1 200/);
    assert.match(head, /\r\ncontent-type: text\/css; charset=utf-8/);
    assert.match(head, /\r\ncontent-length: 7/);
    assert.equal(raw.length, end + 4, 'no body after the headers');
  });

  test('path traversal is refused in every spelling', T, async () => {
    const refused = [
      '/../secret.txt', '/../../../../etc/passwd', '/sub/../../secret.txt',
      '/%2e%2e/secret.txt', '/%2E%2E%2Fsecret.txt', '/..%2fsecret.txt', '/sub/%2e%2e/%2e%2e/secret.txt',
      '/..\\secret.txt', '/%5c..%5csecret.txt', '/sub\\index.html',
    ];
    for (const t of refused) {
      const res = await rawGet(srv.port, t);
      assert.equal(res.status, 400, t);
      assert.ok(!res.body.toString().includes('TOP SECRET'), t);
    }
    const absent = [
      '/.env', '/.git/config', '/sub/.hidden', '/%2eenv', // hidden files
      '/leak.txt', '/up/secret.txt', // symlinks leaving the root
      '/nope.html', '/sub', '/index.html/', '//etc/passwd', '/etc/passwd',
    ];
    for (const t of absent) {
      const res = await rawGet(srv.port, t);
      assert.equal(res.status, 404, t);
      const body = res.body.toString();
      assert.ok(!body.includes('TOP SECRET') && !body.includes('SB_SECRET') && !body.includes('[core]'), t);
      assert.equal(JSON.parse(body).error.code, 'not_found', t);
    }
    for (const t of ['/%00', '/index.html%00.png', '/%zz']) {
      const res = await rawGet(srv.port, t);
      assert.equal(res.status, 400, t);
    }
    const inside = await rawGet(srv.port, '/alias.js');
    assert.equal(inside.status, 200, 'a symlink within the root is served');
  });

  test('API paths and non-GET methods never fall through to files', T, async () => {
    fs.mkdirSync(path.join(root, 'api'), { recursive: true });
    fs.writeFileSync(path.join(root, 'api', 'x.json'), '{}');
    const api = await get(srv.port, '/api/x.json');
    assert.equal(api.status, 404);
    assert.equal(api.json().error.code, 'not_found');
    const post = await get(srv.port, '/index.html', { method: 'POST', body: 'x' });
    assert.equal(post.status, 404);
  });
});

describe('the web client in web/', () => {
  let srv;
  before(async () => {
    srv = await startServer({ env: { SB_WEB_ROOT: path.join(REPO, 'web'), SB_DATABASE_URL: undefined } });
  });
  after(async () => { if (srv) await srv.stop(); });

  test('index.html, app.js, style.css and the bundled phoenix.mjs are served', T, async () => {
    const page = await get(srv.port, '/');
    assert.equal(page.status, 200);
    assert.match(page.text, /<script type="module" src="app.js/);
    for (const [p, ct] of [['/app.js', 'text/javascript'], ['/style.css', 'text/css'], ['/vendor/phoenix.mjs', 'text/javascript']]) {
      const r = await get(srv.port, p);
      assert.equal(r.status, 200, `${p} (phoenix.mjs is copied by \`make build\` from npm)`);
      assert.ok(r.headers.get('content-type').startsWith(ct), p);
    }
    const phx = await get(srv.port, '/vendor/phoenix.mjs');
    assert.match(phx.text, /export\s*\{[^}]*Socket/);
  });
});
