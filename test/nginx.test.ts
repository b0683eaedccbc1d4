import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildRegistry, type BuildSummary } from '../src/build.ts';
import { headersFor } from '../src/headers.ts';
import { NGINX_COMPOSE_FILE, NGINX_PORT, NGINX_SERVER_FILE, NGINX_STANDALONE_FILE, checkNginx, renderNginxServerInclude } from '../src/nginx.ts';
import type { PublishedPath } from '../src/types.ts';
import { ctrPull, dockerPull, podmanPull, skopeoCopy, startContainerd, startDockerd, type Containerd, type Dockerd } from './harness/clients.ts';
import { seedUpstream, type Fixtures } from './harness/images.ts';
import { freePort, hasCommand, makeTempDir, removeDir, run, spawnDaemon, tailFile, type Daemon } from './harness/procs.ts';
import { startRegistry, type UpstreamRegistry } from './harness/upstream.ts';

// The nginx writer against real Debian nginx (run as root: its workers run as `nobody`, so the
// files must really be world-readable) and the four real pull clients.

const INSTALL = 'run scripts/install-test-deps.sh as root (Debian: apt-get install -y nginx-light)';
const NGINX_BIN = ['/usr/sbin/nginx', 'nginx'].find((c) => hasCommand(c)) ?? 'nginx';

let storage: string;
let project: string;
let runDir: string;
let out: string;
let up: UpstreamRegistry;
let fx: Fixtures;
let summary: BuildSummary;
let nginx: Daemon;
let port: number;
let containerd: Containerd;
let dockerd: Dockerd;

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
  for (const c of ['skopeo', 'podman', 'ctr', 'containerd', 'dockerd']) {
    if (!hasCommand(c)) throw new Error(`${c} is not installed: run scripts/install-test-deps.sh as root`);
  }
  storage = makeTempDir('rsh-up-');
  project = makeTempDir('rsh-ngx-');
  runDir = makeTempDir('rsh-ngxrun-');
  // nginx workers run as `nobody`: the site folder's parents must be traversable by them.
  fs.chmodSync(project, 0o755);
  out = path.join(project, '_site');
  const daemons = (async () => {
    containerd = await startContainerd();
    dockerd = await startDockerd(containerd.address);
  })();
  up = await startRegistry({ storageDir: storage });
  fx = await seedUpstream(up.url);
  const images = {
    images: [
      `${up.host}/oci/multi:1.0`,
      `${up.host}/docker/list:2.0`,
      `${up.host}/a/b/c`,
      `${up.host}/docker/single:v1`,
      { source: `${up.host}/oci/single:1.0`, tags: ['1.0', 'Release.1.0-RC_1'] },
    ],
  };
  await writeFile(path.join(project, 'images.json'), JSON.stringify(images, null, 2));
  summary = await buildRegistry({
    images: path.join(project, 'images.json'),
    outputDir: out,
    cacheDir: path.join(project, '.cache', 'registrish'),
    hosts: ['nginx'],
    imageConcurrency: 4,
    blobConcurrency: 6,
    linkMode: 'hardlink',
    logger: { info: () => {}, warn: () => {} },
    env: { DOCKER_CONFIG: path.join(project, 'no-docker-config') },
  });
  ({ daemon: nginx, port } = await startNginx(await readFile(path.join(out, NGINX_STANDALONE_FILE), 'utf8')));
  await daemons;
});

afterAll(async () => {
  await nginx?.stop();
  await dockerd?.stop();
  await containerd?.stop();
  await up?.stop();
  removeDir(storage);
  removeDir(project);
  removeDir(runDir);
});

const sha = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

function expectExactHeaders(p: PublishedPath, res: Response): void {
  for (const [name, value] of headersFor(p)) expect(res.headers.get(name), `${p.urlPath} ${name}`).toBe(value);
  expect(res.headers.get('content-encoding'), p.urlPath).toBeNull();
}

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

interface Case {
  kind: string;
  ref: string;
  top: () => string;
  instance: () => string;
}

const fixtureOf = (key: string) => {
  const f = fx[key];
  if (!f) throw new Error(`no fixture ${key}`);
  return f;
};
const amd64 = (key: string) => () => fixtureOf(key).platforms.find((x) => x.platform.startsWith('linux/amd64'))!.digest;

const CASES: Case[] = [
  { kind: 'OCI index with attestation', ref: 'oci/multi:1.0', top: () => fixtureOf('oci/multi:1.0').digest, instance: amd64('oci/multi:1.0') },
  { kind: 'Docker manifest list', ref: 'docker/list:2.0', top: () => fixtureOf('docker/list:2.0').digest, instance: amd64('docker/list:2.0') },
  { kind: 'nested name', ref: 'a/b/c:latest', top: () => fixtureOf('a/b/c:latest').digest, instance: () => fixtureOf('a/b/c:latest').digest },
  { kind: 'single Docker manifest', ref: 'docker/single:v1', top: () => fixtureOf('docker/single:v1').digest, instance: () => fixtureOf('docker/single:v1').digest },
  { kind: 'single OCI manifest, mixed-case tag', ref: 'oci/single:Release.1.0-RC_1', top: () => fixtureOf('oci/single:1.0').digest, instance: () => fixtureOf('oci/single:1.0').digest },
];

describe.each([['skopeo'], ['podman'], ['containerd (ctr)'], ['docker']])('%s pulls from nginx', (client) => {
  it.each(CASES.map((c) => [c.kind, c] as const))('%s', async (_kind, c) => {
    const ref = `127.0.0.1:${port}/${c.ref}`;
    if (client === 'skopeo') {
      expect((await skopeoCopy(ref, { arch: 'amd64' })).manifestDigest).toBe(c.instance());
    } else if (client === 'podman') {
      const r = await podmanPull(ref, { arch: 'amd64' });
      expect(r.digest).toBe(c.top());
      expect(r.instanceDigest).toBe(c.instance());
    } else if (client === 'containerd (ctr)') {
      expect((await ctrPull(containerd.address, ref, { platform: 'linux/amd64' })).digest).toBe(c.top());
    } else {
      expect((await dockerPull(dockerd.host, ref)).digest).toBe(c.top());
    }
  });
});
