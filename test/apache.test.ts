import fs from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCheck } from '../src/check/run.ts';
import { registryAnswersTests } from './harness/registry-answers.ts';
import { APACHE_SENTINEL, APACHE_SENTINEL_VALUE, apacheResponseProblem, checkApache } from '../src/hosts/apache.ts';
import { CLIENTS, expectExactHeaders as expectRegistryHeaders, expectPull, hostSiteCases, sha, startHostSite, type HostSite } from './harness/host-site.ts';
import { freePort, hasCommand, run, spawnDaemon, tailFile, type Daemon } from './harness/procs.ts';
import { type PublishedPath } from '../src/model/published-path.ts';

// The Apache writer (.htaccess files) against real Debian Apache 2.4, started with its own config
// file on loopback ports (never the system service), and the four real pull clients. Three
// virtual hosts show the writer and both traps:
//   good:     AllowOverride FileInfo, no mod_mime_magic  → exact headers, every client pulls;
//   ignored:  AllowOverride None                         → no sentinel header, wrong types;
//   magic:    AllowOverride FileInfo + MimeMagicFile     → gzip blobs get a Content-Encoding.

const INSTALL = 'run scripts/install-test-deps.sh as root (Debian: apt-get install -y apache2)';
const APACHE_BIN = ['/usr/sbin/apache2', 'apache2'].find((c) => hasCommand(c)) ?? '/usr/sbin/apache2';
const MODULES = '/usr/lib/apache2/modules';

let site: HostSite;
let runDir: string;
let out: string;
let ignoredCopy: string;
let summary: HostSite['summary'];
let apache: Daemon;
let ports: { good: number; ignored: number; magic: number };

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
  site = await startHostSite('apache', 'apa');
  ({ runDir, out, summary } = site);
  ignoredCopy = path.join(site.project, 'ignored');
  await run('cp', ['-al', out, ignoredCopy]);
  await startApache();
});

afterAll(async () => {
  await apache?.stop();
  await site?.stop();
});

function expectExactHeaders(p: PublishedPath, res: Response): void {
  expectRegistryHeaders(p, res);
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

describe('Apache: what a registry answers besides content', () => {
  registryAnswersTests(() => ({ base: url('good', ''), registry: `127.0.0.1:${ports.good}`, site }));
});

describe.each(CLIENTS)('%s pulls from Apache', (client) => {
  it.each(hostSiteCases(() => site.fx, false).map((c) => [c.kind, c] as const))('%s', async (_kind, c) => {
    await expectPull(client, `127.0.0.1:${ports.good}`, c, site);
  });
});
