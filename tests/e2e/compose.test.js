'use strict';
// The deployment files (issue 18): docker-compose.yml validates with Debian's
// docker-compose (with a filled-in .env, and refuses to start without the
// secrets, as .env.example leaves them empty), yamllint passes, HAProxy
// accepts deploy/haproxy.cfg, the Dockerfile installs through scripts/deps.sh
// (so the image cannot drift from `make run`), no secret is committed, and
// the image's health check command really checks /readyz on the admin port.

const { describe, test } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { startServer, REPO } = require('./lib/server');
const { waitFor } = require('./lib/phx');

const T = { timeout: 60000 };
const run = (cmd, args, opts = {}) => spawnSync(cmd, args, { cwd: REPO, encoding: 'utf8', timeout: 30000, ...opts });

describe('deployment files', () => {
  test('docker-compose config validates the stack with the secrets set, and refuses it without them', T, () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-compose-'));
    try {
      const env = path.join(dir, '.env');
      fs.writeFileSync(env, 'SB_SECRET=0123456789abcdef0123456789abcdef01\nPOSTGRES_PASSWORD=pw\nTURN_SECRET=ts\nTURN_HOST=turn.example.com\n');
      const ok = run('docker-compose', ['--env-file', env, '-f', 'docker-compose.yml', 'config']);
      assert.equal(ok.status, 0, ok.stderr);
      const cfg = ok.stdout;
      for (const svc of ['postgres', 'redis', 'migrate', 'switchboard-1', 'switchboard-2', 'balancer', 'coturn']) {
        assert.match(cfg, new RegExp(`^  ${svc}:$`, 'm'), `service ${svc}`);
      }
      assert.match(cfg, /condition: service_completed_successfully/, 'the nodes wait for the migrations');
      assert.match(cfg, /condition: service_healthy/);
      assert.match(cfg, /pgdata:\/var\/lib\/postgresql\/data/, 'Postgres keeps its data in a volume');
      assert.match(cfg, /--static-auth-secret=ts/, 'coturn gets the TURN secret');
      assert.match(cfg, /SB_TURN_SECRET: ts/, 'and the nodes the same one');
      assert.match(cfg, /haproxy\.cfg:\/usr\/local\/etc\/haproxy\/haproxy\.cfg:ro/);
      // both nodes mount the one media volume where the image keeps media
      const df = fs.readFileSync(path.join(REPO, 'deploy', 'Dockerfile'), 'utf8');
      const mediaDir = (df.match(/SB_MEDIA_DIR=(\S+)/) || [])[1];
      assert.ok(mediaDir, 'the image sets SB_MEDIA_DIR');
      for (const svc of ['switchboard-1', 'switchboard-2']) {
        const block = cfg.split(new RegExp(`^  ${svc}:$`, 'm'))[1].split(/^  \S/m)[0];
        assert.match(block, new RegExp(`^    - media:${mediaDir}(:rw)?$`, 'm'), `${svc} mounts the media volume at ${mediaDir}`);
      }
      assert.match(cfg, /^volumes:\n(  \S+:\n(    .*\n)*)*  media:/m, 'a named media volume');
      const bad = run('docker-compose', ['--env-file', path.join(REPO, '.env.example'), '-f', 'docker-compose.yml', 'config', '-q']);
      assert.notEqual(bad.status, 0, 'the example file has no secrets: compose refuses to start');
      assert.match(bad.stderr, /set (SB_SECRET|POSTGRES_PASSWORD|TURN_SECRET|TURN_HOST) in \.env/);
    } finally { fs.rmSync(dir, { recursive: true, force: true }); }
  });

  test('yamllint passes; haproxy accepts the balancer configuration', T, () => {
    const y = run('yamllint', ['-s', 'docker-compose.yml', '.yamllint']);
    assert.equal(y.status, 0, y.stdout + y.stderr);
    const h = run('haproxy', ['-c', '-f', 'deploy/haproxy.cfg']);
    assert.equal(h.status, 0, h.stdout + h.stderr);
    assert.match(h.stdout + h.stderr, /Configuration file is valid/);
  });

  test('deploy/nginx.conf (the alternative balancer) passes nginx -t', T, () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-nginx-'));
    try {
      const key = path.join(dir, 'k.pem'), crt = path.join(dir, 'c.pem');
      const o = run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1',
        '-subj', '/CN=chat.example.com', '-keyout', key, '-out', crt]);
      assert.equal(o.status, 0, o.stderr);
      // the file as shipped, with only the certificate paths pointed at the test's
      const site = fs.readFileSync(path.join(REPO, 'deploy', 'nginx.conf'), 'utf8')
        .replace(/ssl_certificate\s+\S+;/, `ssl_certificate ${crt};`).replace(/ssl_certificate_key\s+\S+;/, `ssl_certificate_key ${key};`);
      fs.writeFileSync(path.join(dir, 'site.conf'), site);
      fs.writeFileSync(path.join(dir, 'nginx.conf'), `pid ${dir}/nginx.pid;\nerror_log ${dir}/error.log;\nevents {}\n` +
        `http {\n  access_log off;\n  client_body_temp_path ${dir}/b; proxy_temp_path ${dir}/p; fastcgi_temp_path ${dir}/f;\n` +
        `  uwsgi_temp_path ${dir}/u; scgi_temp_path ${dir}/s;\n  include ${dir}/site.conf;\n}\n`);
      const nginx = fs.existsSync('/usr/sbin/nginx') ? '/usr/sbin/nginx' : 'nginx';
      const t = run(nginx, ['-t', '-p', dir, '-c', path.join(dir, 'nginx.conf')]);
      assert.equal(t.status, 0, t.stdout + t.stderr);
      assert.match(t.stdout + t.stderr, /syntax is ok/);
      assert.match(t.stdout + t.stderr, /test is successful/);
    } finally { fs.rmSync(dir, { recursive: true, force: true }); }
  });

  test('the Dockerfile installs with scripts/deps.sh; secrets stay out of the tree', T, () => {
    const df = fs.readFileSync(path.join(REPO, 'deploy', 'Dockerfile'), 'utf8');
    // the server user owns the media directory (the rest of the image is read-only to it)
    assert.match(df, /useradd --system --home-dir \/srv\/switchboard --create-home switchboard/);
    assert.match(df, /install -d -o switchboard -g switchboard -m 0750 \/srv\/switchboard\/media/);
    assert.match(df, /SB_MEDIA_DIR=\/srv\/switchboard\/media/);
    assert.match(df, /scripts\/deps\.sh --build-only/);
    assert.match(df, /deps\.sh --runtime-only/);
    assert.doesNotMatch(df, /apt-get install/, 'no second package list to drift');
    const example = fs.readFileSync(path.join(REPO, '.env.example'), 'utf8');
    for (const k of ['SB_SECRET', 'POSTGRES_PASSWORD', 'TURN_SECRET']) assert.match(example, new RegExp(`^${k}=$`, 'm'), `${k} left empty`);
    const ignored = run('git', ['check-ignore', '-q', '.env']);
    assert.equal(ignored.status, 0, '.env is git-ignored');
    const compose = fs.readFileSync(path.join(REPO, 'docker-compose.yml'), 'utf8');
    assert.doesNotMatch(compose, /(SECRET|PASSWORD): (?!\$\{)\S/, 'no literal secret in docker-compose.yml');
    const unit = fs.readFileSync(path.join(REPO, 'deploy', 'switchboard.env.example'), 'utf8');
    assert.match(unit, /^SB_SECRET=$/m);
  });

  test("the image's HEALTHCHECK command answers by the admin port's /readyz", T, async () => {
    const df = fs.readFileSync(path.join(REPO, 'deploy', 'Dockerfile'), 'utf8');
    const m = df.match(/HEALTHCHECK .* CMD \["bash", "-c", "(.*)"\]\s*$/m);
    assert.ok(m, 'a bash health check');
    const script = JSON.parse(`"${m[1]}"`);
    const srv = await startServer({ name: 'compose_health' });
    try {
      // healthy once /readyz says 200 (its Postgres pool connected)
      await waitFor(() => run('bash', ['-c', script.replace(/4001/g, String(srv.adminPort))]).status === 0, 15000, 'the health check passing');
      const down = run('bash', ['-c', script.replace(/4001/g, String(srv.port + 7))]);
      assert.notEqual(down.status, 0, 'nothing listening: unhealthy');
    } finally { await srv.stop(); }
  });
});
