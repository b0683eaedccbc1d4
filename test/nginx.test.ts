import fs from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NGINX_COMPOSE_FILE, NGINX_PORT, NGINX_SERVER_FILE, NGINX_STANDALONE_FILE, checkNginx, renderNginxServerInclude } from '../src/hosts/nginx.ts';
import { CLIENTS, expectExactHeaders, expectPull, hostSiteCases, sha, startHostSite, type HostSite } from './harness/host-site.ts';
import { freePort, hasCommand, run, spawnDaemon, tailFile, type Daemon } from './harness/procs.ts';
import { runCheck } from '../src/check/run.ts';
import { registryAnswersTests } from './harness/registry-answers.ts';
import { type PublishedPath } from '../src/model/published-path.ts';

// The nginx writer against real Debian nginx (run as root: its workers run as `nobody`, so the
// files must really be world-readable) and the four real pull clients.

const INSTALL = 'run scripts/install-test-deps.sh as root (Debian: apt-get install -y nginx-light)';
const NGINX_BIN = ['/usr/sbin/nginx', 'nginx'].find((c) => hasCommand(c)) ?? 'nginx';

let site: HostSite;
let runDir: string;
let out: string;
let summary: HostSite['summary'];
let nginx: Daemon;
let port: number;

const base = () => `http://127.0.0.1:${port}`;

async function startNginx(conf: string): Promise<{ daemon: Daemon; port: number }> {
  for (let attempt = 1; ; attempt++) {
    const p = await freePort();
    const file = path.join(runDir, `nginx-${attempt}.conf`);
    // The generated config listens on 5555 on every interface: the test binds loopback only.
    const listen = `listen ${NGINX_PORT};`;
    expect(conf.split(listen).length - 1).toBe(1);
    await writeFile(file, conf.replace(listen, `listen 127.0.0.1:${p};`));
    try {
      const daemon = await spawnDaemon(
        NGINX_BIN,
        ['-p', `${out}/`, '-c', file, '-e', 'stderr', '-g', `daemon off; pid ${path.join(runDir, `nginx-${attempt}.pid`)};`],
        {
          logFile: path.join(runDir, `nginx-${attempt}.log`),
          timeoutMs: 20_000,
          ready: async () => (await fetch(`http://127.0.0.1:${p}/v2/`)).status === 200,
        },
      );
      return { daemon, port: p };
    } catch (e) {
      if (attempt >= 3 || !/Address already in use/u.test(tailFile(path.join(runDir, `nginx-${attempt}.log`)))) throw e;
    }
  }
}

beforeAll(async () => {
  if (!hasCommand(NGINX_BIN)) throw new Error(`nginx is not installed: ${INSTALL}`);
  // nginx workers run as `nobody`: the site folder's parents must be traversable by them.
  site = await startHostSite('nginx', 'ngx');
  ({ runDir, out, summary } = site);
  ({ daemon: nginx, port } = await startNginx(await readFile(path.join(out, NGINX_STANDALONE_FILE), 'utf8')));
});

afterAll(async () => {
  await nginx?.stop();
  await site?.stop();
});

describe('nginx serves the generated configuration', () => {
  it('answers every published URL with exactly headersFor(p), on GET and HEAD, uncompressed', async () => {
    expect(summary.paths.length).toBeGreaterThan(20);
    for (const p of summary.paths) {
      const get = await fetch(base() + p.urlPath, { headers: { 'accept-encoding': 'gzip, br' } });
      expect(get.status, p.urlPath).toBe(200);
      expectExactHeaders(p, get);
      const body = Buffer.from(await get.arrayBuffer());
      expect(body.length, p.urlPath).toBe(p.size);
      if (p.digest) expect(sha(body), p.urlPath).toBe(p.digest);
      const head = await fetch(base() + p.urlPath, { method: 'HEAD' });
      expect(head.status).toBe(200);
      expectExactHeaders(p, head);
      expect(head.headers.get('content-length'), p.urlPath).toBe(String(p.size));
    }
  });

  it('answers the referrers API and the cosign tags of a signed image, and registrish check passes', async () => {
    const { signed } = site;
    const res = await fetch(`${base()}/v2/signed/app/referrers/${signed.amd64.digest}`);
    expect(res.headers.get('content-type')).toBe('application/vnd.oci.image.index.v1+json');
    expect(((await res.json()) as { manifests: Array<{ digest: string }> }).manifests.map((m) => m.digest)).toEqual([signed.sbom.digest]);
    const sig = await fetch(`${base()}/v2/signed/app/manifests/${signed.index.digest.replace(':', '-')}.sig`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
    expect(Buffer.from(await sig.arrayBuffer())).toEqual(signed.signature.bytes);
    const report = await runCheck({ url: base(), host: 'nginx', images: [{ name: 'signed/app', tags: ['1.0'], attachments: true }] });
    expect(report.rows.filter((r) => r.problems.length)).toEqual([]);
    expect(report.rows.filter((r) => r.label.includes('/referrers/'))).toHaveLength(3);
  });

  it('answers Range requests with 206', async () => {
    const blob = summary.paths.find((p) => p.kind === 'blob' && p.size > 10)!;
    const res = await fetch(base() + blob.urlPath, { headers: { range: 'bytes=5-' } });
    expect(res.status).toBe(206);
    expect(res.headers.get('content-range')).toBe(`bytes 5-${blob.size - 1}/${blob.size}`);
    expect(res.headers.get('docker-content-digest')).toBe(blob.digest);
  });

  it('answers 404 for missing content and never serves the generated or internal files', async () => {
    const blob = summary.paths.find((p) => p.kind === 'blob')!;
    for (const u of [
      '/v2/oci/multi/manifests/nope',
      `/v2/oci/multi/blobs/sha256:${'0'.repeat(64)}`,
      blob.urlPath.replace('/oci/', '/nope/').replace('/docker/', '/nope/').replace('/a/b/c/', '/nope/'),
      '/v2/.registrish-paths.json',
      `/${NGINX_STANDALONE_FILE}`,
      `/${NGINX_SERVER_FILE}`,
      '/v2/oci/multi/blobs/',
    ]) {
      expect((await fetch(base() + u)).status, u).toBe(404);
    }
  });

  it('serves the rest of the site with ordinary types', async () => {
    await writeFile(path.join(out, 'page.html'), '<p>hi</p>');
    const res = await fetch(`${base()}/page.html`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/u);
    expect(res.headers.get('docker-content-digest')).toBeNull();
  });

  it('serves hardlinked files that the unprivileged worker can read', async () => {
    const blob = summary.paths.find((p) => p.kind === 'blob')!;
    const st = fs.statSync(path.join(out, blob.file));
    // A hard link shares the cache file's inode, hence its mode: it must be world-readable.
    expect(st.nlink).toBeGreaterThan(1);
    expect(st.mode & 0o004).toBe(0o004);
    const workers = await run('ps', ['-o', 'user=,args=', '--ppid', String(nginx.pid)]);
    expect(workers.stdout).toMatch(/^nobody\s+nginx: worker/mu);
  });

  it('writes a server include that nginx accepts, and a docker-compose.yml on port 5555', async () => {
    const include = await readFile(path.join(out, NGINX_SERVER_FILE), 'utf8');
    expect(include).toContain(`root "${out}";`);
    const wrapper = path.join(runDir, 'include-test.conf');
    await writeFile(wrapper, `events {}\nhttp {\n    include ${path.join(out, NGINX_SERVER_FILE)};\n}\n`);
    const t = await run(NGINX_BIN, ['-t', '-p', `${runDir}/`, '-c', wrapper, '-e', 'stderr', '-g', `pid ${path.join(runDir, 't.pid')};`], { allowFailure: true });
    expect(t.code, t.stderr).toBe(0);
    const compose = await readFile(path.join(out, NGINX_COMPOSE_FILE), 'utf8');
    expect(compose).toContain('"5555:5555"');
    expect(compose).toMatch(/image: nginx:/u);
    expect(compose).toContain(NGINX_STANDALONE_FILE);
  });

  it('quotes an output folder with a space, and nginx -t accepts the include', async () => {
    const spaced = path.join(runDir, 'out with space');
    fs.mkdirSync(spaced, { recursive: true });
    const include = renderNginxServerInclude(summary.paths, spaced);
    expect(include).toContain(`root "${spaced}";`);
    // The path never lands in a comment line.
    expect(include.split('\n').filter((l) => l.trimStart().startsWith('#') && l.includes(spaced))).toEqual([]);
    const file = path.join(runDir, 'spaced-include.conf');
    await writeFile(file, include);
    const wrapper = path.join(runDir, 'spaced-test.conf');
    await writeFile(wrapper, `events {}\nhttp {\n    include ${file};\n}\n`);
    const t = await run(NGINX_BIN, ['-t', '-p', `${runDir}/`, '-c', wrapper, '-e', 'stderr', '-g', `pid ${path.join(runDir, 't2.pid')};`], { allowFailure: true });
    expect(t.code, t.stderr).toBe(0);
  });

  it('refuses an output folder that would inject nginx directives', () => {
    for (const bad of ['/srv/a;b', '/srv/a\nroot /etc', '/srv/$x', '/srv/a{b}', '/srv/a"b']) {
      expect(() => renderNginxServerInclude(summary.paths, bad)).toThrow(/output folder .* cannot be written as an nginx root/u);
    }
  });

  it('serves /.well-known/ but no other dotfile', async () => {
    fs.mkdirSync(path.join(out, '.well-known', 'acme-challenge'), { recursive: true });
    await writeFile(path.join(out, '.well-known', 'acme-challenge', 'tok'), 'tok.key');
    const ok = await fetch(`${base()}/.well-known/acme-challenge/tok`);
    expect(ok.status).toBe(200);
    expect(await ok.text()).toBe('tok.key');
    expect((await fetch(`${base()}/${NGINX_STANDALONE_FILE}`)).status).toBe(404);
    expect((await fetch(`${base()}/.well-knownx`)).status).toBe(404);
  });

  it('check() refuses what an nginx map cannot hold', () => {
    const p: PublishedPath = { urlPath: '/v2/x/manifests/a"b', file: 'v2/x/manifests/a"b', kind: 'manifest', contentType: 'application/json', size: 1, immutable: false };
    expect(checkNginx([p]).errors.join('\n')).toMatch(/cannot be written into an nginx map/u);
    expect(checkNginx(summary.paths)).toEqual({ errors: [], warnings: [] });
  });
});

describe('nginx: what a registry answers besides content', () => {
  registryAnswersTests(() => ({ base: base(), registry: `127.0.0.1:${port}`, site }));
});

describe.each(CLIENTS)('%s pulls from nginx', (client) => {
  it.each(hostSiteCases(() => site.fx).map((c) => [c.kind, c] as const))('%s', async (_kind, c) => {
    await expectPull(client, `127.0.0.1:${port}`, c, site);
  });
});
