import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCheck } from '../src/check.ts';
import { APACHE_SENTINEL, APACHE_SENTINEL_VALUE, apacheResponseProblem, checkApache } from '../src/apache.ts';
import { buildRegistry, type BuildSummary } from '../src/build.ts';
import { headersFor } from '../src/headers.ts';
import type { PublishedPath } from '../src/types.ts';
import { ctrPull, dockerPull, podmanPull, skopeoCopy, startContainerd, startDockerd, type Containerd, type Dockerd } from './harness/clients.ts';
import { seedUpstream, type Fixtures } from './harness/images.ts';
import { freePort, hasCommand, makeTempDir, removeDir, run, spawnDaemon, tailFile, type Daemon } from './harness/procs.ts';
import { startRegistry, type UpstreamRegistry } from './harness/upstream.ts';

// The Apache writer (.htaccess files) against real Debian Apache 2.4, started with its own config
// file on loopback ports (never the system service), and the four real pull clients. Three
// virtual hosts show the writer and both traps:
//   good:     AllowOverride FileInfo, no mod_mime_magic  → exact headers, every client pulls;
//   ignored:  AllowOverride None                         → no sentinel header, wrong types;
//   magic:    AllowOverride FileInfo + MimeMagicFile     → gzip blobs get a Content-Encoding.

const INSTALL = 'run scripts/install-test-deps.sh as root (Debian: apt-get install -y apache2)';
const APACHE_BIN = ['/usr/sbin/apache2', 'apache2'].find((c) => hasCommand(c)) ?? '/usr/sbin/apache2';
const MODULES = '/usr/lib/apache2/modules';

let storage: string;
let project: string;
let runDir: string;
let out: string;
let ignoredCopy: string;
let up: UpstreamRegistry;
let fx: Fixtures;
let summary: BuildSummary;
let apache: Daemon;
let ports: { good: number; ignored: number; magic: number };
let containerd: Containerd;
let dockerd: Dockerd;

const url = (which: keyof typeof ports, p: string) => `http://127.0.0.1:${ports[which]}${p}`;

function apacheConfig(p: typeof ports): string {
  const mods = ['mpm_event', 'authz_core', 'mime', 'mime_magic', 'headers', 'env', 'dir', 'alias', 'filter', 'deflate'];
  return [
    `ServerRoot ${runDir}`,
    'ServerName 127.0.0.1',
    `PidFile ${runDir}/apache.pid`,
    `DefaultRuntimeDir ${runDir}`,
    `Mutex file:${runDir} default`,
    `ErrorLog ${runDir}/error.log`,
    'LogLevel warn',
    ...mods.map((m) => `LoadModule ${m}_module ${MODULES}/mod_${m}.so`),
    // Started as root, the children serve as nobody: the files must really be world-readable.
    'User nobody',
    'Group nogroup',
    'TypesConfig /etc/mime.types',
    'DirectoryIndex index.html',
    'AccessFileName .htaccess',
    // Compress what a host typically compresses: the generated `SetEnv no-gzip` must stop it.
    'AddOutputFilterByType DEFLATE application/json application/octet-stream text/html',
    '<Directory />\n  AllowOverride None\n  Require all denied\n</Directory>',
    `<Directory ${out}>\n  AllowOverride FileInfo\n  Require all granted\n</Directory>`,
    `<Directory ${ignoredCopy}>\n  AllowOverride None\n  Require all granted\n</Directory>`,
    '<Files ".ht*">\n  Require all denied\n</Files>',
    ...(['good', 'ignored', 'magic'] as const).flatMap((k) => [
      `Listen 127.0.0.1:${p[k]}`,
      `<VirtualHost 127.0.0.1:${p[k]}>`,
      `  DocumentRoot ${k === 'ignored' ? ignoredCopy : out}`,
      ...(k === 'magic' ? ['  MimeMagicFile /etc/apache2/magic'] : []),
      '</VirtualHost>',
    ]),
    '',
  ].join('\n');
}

async function startApache(): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    ports = { good: await freePort(), ignored: await freePort(), magic: await freePort() };
    const conf = path.join(runDir, 'apache.conf');
    await writeFile(conf, apacheConfig(ports));
    const logFile = path.join(runDir, `apache-${attempt}.log`);
    try {
      apache = await spawnDaemon(APACHE_BIN, ['-f', conf, '-d', runDir, '-DFOREGROUND'], {
        logFile,
        timeoutMs: 20_000,
        ready: async () => (await fetch(url('good', '/v2/'))).status === 200,
      });
      return;
    } catch (e) {
      const log = tailFile(logFile) + tailFile(path.join(runDir, 'error.log'));
      if (attempt >= 3 || !/Address already in use/u.test(log)) throw e;
    }
  }
}

beforeAll(async () => {
  if (!hasCommand(APACHE_BIN)) throw new Error(`apache2 is not installed: ${INSTALL}`);
  if (!fs.existsSync('/etc/apache2/magic')) throw new Error(`/etc/apache2/magic is missing: ${INSTALL}`);
  for (const c of ['skopeo', 'podman', 'ctr', 'containerd', 'dockerd']) {
    if (!hasCommand(c)) throw new Error(`${c} is not installed: run scripts/install-test-deps.sh as root`);
  }
  storage = makeTempDir('rsh-up-');
  project = makeTempDir('rsh-apa-');
  runDir = makeTempDir('rsh-aparun-');
  fs.chmodSync(project, 0o755);
  out = path.join(project, '_site');
  ignoredCopy = path.join(project, 'ignored');
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
    hosts: ['apache'],
    imageConcurrency: 4,
    blobConcurrency: 6,
    linkMode: 'hardlink',
    logger: { info: () => {}, warn: () => {} },
    env: { DOCKER_CONFIG: path.join(project, 'no-docker-config') },
  });
  await run('cp', ['-al', out, ignoredCopy]);
  await startApache();
  await daemons;
});

afterAll(async () => {
  await apache?.stop();
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
  expect(res.headers.get(APACHE_SENTINEL), p.urlPath).toBe(APACHE_SENTINEL_VALUE);
}

describe('Apache serves the generated .htaccess files', () => {
  it('writes one .htaccess per folder holding registry files, and none elsewhere', async () => {
    const dirs = new Set(summary.paths.map((p) => path.posix.dirname(p.file)));
    for (const d of dirs) expect(fs.existsSync(path.join(out, d, '.htaccess')), d).toBe(true);
    expect(fs.existsSync(path.join(out, '.htaccess'))).toBe(false);
    // A folder of blobs needs no list: the digest comes from the file name.
    const blobs = await readFile(path.join(out, 'v2/oci/multi/blobs/.htaccess'), 'utf8');
    expect(blobs).toContain('%{MATCH_RSHFILE}e');
    expect(blobs).not.toContain('<Files ');
  });

  it('answers every published URL with exactly headersFor(p), on GET and HEAD, uncompressed', async () => {
    for (const p of summary.paths) {
      const get = await fetch(url('good', p.urlPath), { headers: { 'accept-encoding': 'gzip, br' } });
      expect(get.status, p.urlPath).toBe(200);
      expectExactHeaders(p, get);
      expect(apacheResponseProblem(get.headers)).toBeUndefined();
      const body = Buffer.from(await get.arrayBuffer());
      expect(body.length, p.urlPath).toBe(p.size);
      if (p.digest) expect(sha(body), p.urlPath).toBe(p.digest);
      const head = await fetch(url('good', p.urlPath), { method: 'HEAD' });
      expect(head.status).toBe(200);
      expectExactHeaders(p, head);
      expect(head.headers.get('content-length'), p.urlPath).toBe(String(p.size));
    }
  });

  it('answers Range requests with 206, and 404 for missing content and internal files', async () => {
    const blob = summary.paths.find((p) => p.kind === 'blob' && p.size > 10)!;
    const res = await fetch(url('good', blob.urlPath), { headers: { range: 'bytes=5-' } });
    expect(res.status).toBe(206);
    expect(res.headers.get('content-range')).toBe(`bytes 5-${blob.size - 1}/${blob.size}`);
    for (const u of ['/v2/oci/multi/manifests/nope', `/v2/oci/multi/blobs/sha256:${'0'.repeat(64)}`, '/v2/.registrish-paths.json']) {
      expect((await fetch(url('good', u))).status, u).toBe(404);
    }
    expect((await fetch(url('good', '/v2/oci/multi/blobs/.htaccess'))).status).toBe(403);
  });

  it('trap 1, AllowOverride None: the missing sentinel header tells', async () => {
    const m = summary.paths.find((p) => p.kind === 'manifest')!;
    const res = await fetch(url('ignored', m.urlPath));
    expect(res.status).toBe(200);
    expect(res.headers.get(APACHE_SENTINEL)).toBeNull();
    expect(res.headers.get('content-type')).not.toBe(m.contentType);
    expect(apacheResponseProblem(res.headers)).toMatch(/AllowOverride/u);
  });

  it('trap 2, mod_mime_magic: a gzip blob gets a Content-Encoding, which the check reports', async () => {
    // The layer blobs are gzip. .htaccess cannot switch mime_magic off (documented): detect it.
    const flagged: string[] = [];
    for (const p of summary.paths.filter((x) => x.kind === 'blob')) {
      const res = await fetch(url('magic', p.urlPath), { method: 'HEAD' });
      const problem = apacheResponseProblem(res.headers);
      if (problem) flagged.push(problem);
    }
    expect(flagged.length).toBeGreaterThan(0);
    expect(flagged[0]).toMatch(/mod_mime_magic/u);
  });

  it('registrish check --host apache passes the good server and names both traps on the others', async () => {
    const kinds = async (which: Parameters<typeof url>[0]) => {
      const report = await runCheck({ url: url(which, ''), host: 'apache', quick: true });
      return [...new Set(report.rows.flatMap((r) => r.problems.filter((p) => p.severity === 'fail').map((p) => p.kind)))];
    };
    expect(await kinds('good')).toEqual([]);
    expect(await kinds('ignored')).toEqual(expect.arrayContaining(['htaccess-ignored', 'manifest-type']));
    expect(await kinds('magic')).toContain('content-encoding');
  });

  it('check() refuses what a .htaccess cannot hold', () => {
    const p: PublishedPath = { urlPath: '/v2/x/manifests/a"b', file: 'v2/x/manifests/a"b', kind: 'manifest', contentType: 'application/json', size: 1, immutable: false };
    expect(checkApache([p]).errors.join('\n')).toMatch(/cannot be written/u);
    expect(checkApache(summary.paths)).toEqual({ errors: [], warnings: [] });
  });
});

const fixtureOf = (key: string) => {
  const f = fx[key];
  if (!f) throw new Error(`no fixture ${key}`);
  return f;
};
const amd64 = (key: string) => () => fixtureOf(key).platforms.find((x) => x.platform.startsWith('linux/amd64'))!.digest;

const CASES = [
  { kind: 'OCI index with attestation', ref: 'oci/multi:1.0', top: () => fixtureOf('oci/multi:1.0').digest, instance: amd64('oci/multi:1.0') },
  { kind: 'Docker manifest list', ref: 'docker/list:2.0', top: () => fixtureOf('docker/list:2.0').digest, instance: amd64('docker/list:2.0') },
  { kind: 'nested name', ref: 'a/b/c:latest', top: () => fixtureOf('a/b/c:latest').digest, instance: () => fixtureOf('a/b/c:latest').digest },
  { kind: 'single Docker manifest', ref: 'docker/single:v1', top: () => fixtureOf('docker/single:v1').digest, instance: () => fixtureOf('docker/single:v1').digest },
];

describe.each([['skopeo'], ['podman'], ['containerd (ctr)'], ['docker']])('%s pulls from Apache', (client) => {
  it.each(CASES.map((c) => [c.kind, c] as const))('%s', async (_kind, c) => {
    const ref = `127.0.0.1:${ports.good}/${c.ref}`;
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
