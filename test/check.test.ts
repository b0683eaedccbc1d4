import { readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildRegistry } from '../src/build.ts';
import { registryOrigin } from '../src/check/origin.ts';
import { BREAKS, GENERIC_FIXES, rowStatus, type ProblemKind } from '../src/check/problems.ts';
import { formatReport, type CheckReport } from '../src/check/report.ts';
import { runCheck } from '../src/check/run.ts';
import { main } from '../src/cli/main.ts';
import { startPreviewServer, type PreviewServer } from '../src/serve/server.ts';
import { notFoundBody, notFoundKind } from '../src/publish/not-found.ts';
import { makeTempDir, removeDir } from './harness/procs.ts';
import { type CliIO } from '../src/cli/args.ts';
import { readPathsFile } from '../src/publish/paths-file.ts';
import { type PublishedPath } from '../src/model/published-path.ts';

// `registrish check` against a real build of example/hello served by the real preview server
// (must pass), and against a small server that serves the same tree but breaks one thing per
// scenario (must fail with the right ✗, "breaks" text and exit code).

const REPO = path.resolve(import.meta.dirname, '..');
const MISSING_HTML = '<!DOCTYPE html><html><body>Welcome to my site</body></html>';

let project: string;
let site: string;
let imagesFile: string;
let paths: PublishedPath[];
let preview: PreviewServer;
let broken: { url: string; close: () => Promise<void> };

/** What the test server is about to send; a scenario edits it. */
interface Reply {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}
type Tweak = (req: { method: string; urlPath: string; path?: PublishedPath; range?: string }, reply: Reply) => void;
let tweak: Tweak = () => {};
/** Requests the test server saw, to assert on what check asked for. */
let seen: string[] = [];

/** Serves `site` from its paths file (exact types and digests), then lets the scenario's tweak break it. */
function startTweakableServer(): Promise<{ url: string; close: () => Promise<void> }> {
  const byUrl = new Map(paths.map((p) => [p.urlPath, p]));
  const server = http.createServer((req, res) => {
    const method = req.method ?? 'GET';
    const urlPath = decodeURIComponent((req.url ?? '/').split('?')[0]!);
    seen.push(`${method} ${urlPath}${req.headers.range ? ` range=${req.headers.range}` : ''} accept-encoding=${req.headers['accept-encoding'] ?? ''}`);
    const p = byUrl.get(urlPath);
    const reply: Reply = p
      ? {
          status: 200,
          headers: { 'Content-Type': p.contentType, ...(p.digest && p.kind === 'manifest' ? { 'Docker-Content-Digest': p.digest } : {}) },
          body: readFileSync(path.join(site, ...p.file.split('/'))),
        }
      : { status: 404, headers: { 'Content-Type': 'application/json' }, body: Buffer.from(notFoundBody(notFoundKind(urlPath, (n) => n === 'hello') ?? 'name')) };
    if (p?.kind === 'base') reply.headers['Docker-Distribution-API-Version'] = 'registry/2.0';
    // Resumed downloads (containers/image): `bytes=N-` only, which is all check sends.
    const range = /^bytes=(\d+)-$/u.exec(String(req.headers.range ?? ''));
    if (p && range && Number(range[1]) < reply.body.length) {
      const start = Number(range[1]);
      reply.status = 206;
      reply.headers['Content-Range'] = `bytes ${start}-${reply.body.length - 1}/${reply.body.length}`;
      reply.body = reply.body.subarray(start);
    }
    reply.headers['Content-Length'] = String(reply.body.length);
    tweak({ method, urlPath, path: p, range: req.headers.range }, reply);
    res.writeHead(reply.status, reply.headers);
    res.end(method === 'HEAD' ? undefined : reply.body);
  });
  return new Promise((resolve) => {
    server.listen({ host: '127.0.0.1', port: 0 }, () => {
      const { port } = server.address() as AddressInfo;
      resolve({
        url: `http://127.0.0.1:${port}`,
        close: () =>
          new Promise<void>((r) => {
            server.close(() => r());
            server.closeAllConnections();
          }),
      });
    });
  });
}

beforeAll(async () => {
  project = makeTempDir('rsh-check-');
  site = path.join(project, '_site');
  imagesFile = path.join(project, 'images.json');
  writeFileSync(
    imagesFile,
    JSON.stringify({ images: [{ source: `oci:${path.join(REPO, 'example/hello')}:1.0`, name: 'hello', tags: ['1.0', 'latest'] }] }),
  );
  await buildRegistry({
    images: imagesFile,
    outputDir: site,
    cacheDir: path.join(project, 'cache'),
    hosts: ['netlify'],
    imageConcurrency: 2,
    blobConcurrency: 4,
    linkMode: 'copy',
    logger: { info: () => {}, warn: () => {} },
  });
  paths = await readPathsFile(site);
  preview = await startPreviewServer({ dir: site, port: 0, host: '127.0.0.1' });
  broken = await startTweakableServer();
});

afterAll(async () => {
  await preview?.close();
  await broken?.close();
  if (project) removeDir(project);
});

const IMAGES = [{ name: 'hello', tags: ['1.0', 'latest'] }];

async function checkBroken(t: Tweak, opts: { quick?: boolean } = {}): Promise<CheckReport> {
  tweak = t;
  seen = [];
  try {
    return await runCheck({ url: broken.url, images: IMAGES, ...opts });
  } finally {
    tweak = () => {};
  }
}

/** Failing problem kinds, each once. */
function failedKinds(report: CheckReport): ProblemKind[] {
  return [...new Set(report.rows.flatMap((r) => r.problems.filter((p) => p.severity === 'fail').map((p) => p.kind)))].sort();
}

function failedLabels(report: CheckReport, kind: ProblemKind): string[] {
  return report.rows.filter((r) => r.problems.some((p) => p.kind === kind && p.severity === 'fail')).map((r) => r.label);
}

function captureIO(): CliIO & { out: () => string; err: () => string } {
  let out = '';
  let err = '';
  return {
    stdout: (t) => void (out += t),
    stderr: (t) => void (err += t),
    untilStopped: () => new Promise(() => {}),
    out: () => out,
    err: () => err,
  };
}

const manifestPaths = (): PublishedPath[] => paths.filter((p) => p.kind === 'manifest');
const blobPaths = (): PublishedPath[] => paths.filter((p) => p.kind === 'blob');
const isLayer = (p: PublishedPath | undefined): boolean => !!p && p.kind === 'blob' && p.size === 186; // example/hello's amd64 layer (tar+gzip)

describe('check: a good registry', () => {
  it('passes against the real preview server, with every manifest (index children too) and blob checked', async () => {
    const report = await runCheck({ url: preview.url, images: IMAGES });
    expect(report.rows.filter((r) => rowStatus(r) !== 'ok')).toEqual([]);
    expect(report.failed).toBe(0);
    expect(report.warnings).toBe(0);
    const labels = report.rows.map((r) => r.label);
    // 2 tags + index + 2 platform manifests, each HEAD and GET; 4 blobs HEAD and GET.
    expect(labels.filter((l) => /^(HEAD|GET) +hello[:@]/u.test(l))).toHaveLength(10);
    expect(labels.filter((l) => / blob /u.test(l))).toHaveLength(9); // + one resumed download (Range)
    expect(labels.some((l) => l.includes('(linux/amd64)'))).toBe(true);
    expect(labels).toContain('GET /v2/');
    expect(labels).toContain('GET /v2/hello/tags/list');
    const text = formatReport(report);
    expect(text).toMatch(/^OK: 24 checks, 0 failed, 0 with warnings$/mu);
    expect(text).not.toContain('✗');
  });

  it('discovers the tags through /v2/_catalog and tags/list when no images.json is given', async () => {
    const report = await runCheck({ url: `${preview.url}/v2/` });
    expect(report.source).toBe('catalog');
    expect(report.failed).toBe(0);
    expect(report.rows.map((r) => r.label)).toEqual(expect.arrayContaining(['GET /v2/_catalog', 'GET  hello:1.0', 'GET  hello:latest']));
  });

  it('--quick HEADs every blob but downloads only a sample', async () => {
    const report = await checkBroken(() => {}, { quick: true });
    expect(report.failed).toBe(0);
    const blobGets = seen.filter((s) => s.startsWith('GET /v2/hello/blobs/sha256:') && !s.includes('0000000000') && !s.includes('range='));
    const blobHeads = seen.filter((s) => s.startsWith('HEAD /v2/hello/blobs/'));
    expect(blobHeads).toHaveLength(4);
    expect(blobGets).toHaveLength(2);
    // Like containerd, but asking for the bytes as stored.
    expect(seen.every((s) => s.endsWith('accept-encoding=identity'))).toBe(true);
  });

  it('the test server itself is good (so each scenario below breaks exactly one thing)', async () => {
    const report = await checkBroken(() => {});
    expect(failedKinds(report)).toEqual([]);
    expect(report.warnings).toBe(0);
  });
});

describe('check: deliberately broken servers', () => {
  it('manifests served as application/octet-stream → ✗ wrong type, breaks all clients', async () => {
    const report = await checkBroken(({ path: p }, r) => {
      if (p?.kind === 'manifest') r.headers['Content-Type'] = 'application/octet-stream';
    });
    expect(failedKinds(report)).toEqual(['manifest-type']);
    // Every manifest row, HEAD and GET, by tag and by digest.
    expect(failedLabels(report, 'manifest-type')).toHaveLength(10);
    const text = formatReport(report);
    expect(text).toContain('✗ Content-Type "application/octet-stream", the manifest is application/vnd.oci.image.index.v1+json');
    expect(text).toContain('breaks: all clients: docker, containerd');
    expect(text).toMatch(/^FAIL: 24 checks, 10 failed/mu);
  });

  it('application/json on one child manifest → ✗ only there', async () => {
    const child = manifestPaths().find((p) => p.contentType === 'application/vnd.oci.image.manifest.v1+json')!;
    const report = await checkBroken(({ urlPath }, r) => {
      if (urlPath === child.urlPath) r.headers['Content-Type'] = 'application/json';
    });
    expect(failedKinds(report)).toEqual(['manifest-type']);
    const short = child.digest!.slice(0, 19); // sha256: + 12 hex digits, as the labels show it
    expect(failedLabels(report, 'manifest-type')).toEqual([expect.stringMatching(new RegExp(`^HEAD hello@${short}`, 'u')), expect.stringMatching(new RegExp(`^GET  hello@${short}`, 'u'))]);
  });

  it('"; charset=utf-8" on manifests → ✗ parameters, breaks crane only', async () => {
    const report = await checkBroken(({ path: p }, r) => {
      if (p?.kind === 'manifest') r.headers['Content-Type'] = `${p.contentType}; charset=utf-8`;
    });
    expect(failedKinds(report)).toEqual(['type-params']);
    const text = formatReport(report, 'nginx');
    expect(text).toContain('has parameters; send exactly "application/vnd.oci.image.index.v1+json"');
    expect(text).toContain(`breaks: ${BREAKS['type-params']}`);
    expect(BREAKS['type-params']).toMatch(/^crane/u);
    expect(text).toContain('`charset off;`'); // the nginx fix
  });

  it('404 on /v2/ → ✗ breaks podman, skopeo, CRI-O, crane', async () => {
    const report = await checkBroken(({ urlPath }, r) => {
      if (urlPath === '/v2/') Object.assign(r, { status: 404, body: Buffer.from('not found') });
    });
    expect(failedKinds(report)).toEqual(['base-status']);
    expect(failedLabels(report, 'base-status')).toEqual(['GET /v2/']);
    const text = formatReport(report);
    expect(text).toContain('✗ answered 404 (expected 200 or 401)');
    expect(text).toMatch(/breaks: podman, skopeo, buildah, CRI-O .* crane/u);
  });

  it('401 on /v2/ is what a registry asking for a login sends: accepted', async () => {
    const report = await checkBroken(({ urlPath }, r) => {
      if (urlPath === '/v2/') r.status = 401;
    });
    expect(failedKinds(report)).toEqual([]);
  });

  it('Content-Encoding: gzip on a gzip layer (Apache mime_magic) → ✗ breaks containerd, even though the bytes are right', async () => {
    const report = await checkBroken(({ path: p }, r) => {
      if (isLayer(p)) r.headers['Content-Encoding'] = 'gzip';
    });
    expect(failedKinds(report)).toEqual(['content-encoding']);
    expect(failedLabels(report, 'content-encoding')).toEqual([expect.stringMatching(/^HEAD blob .*186 B/u), expect.stringMatching(/^GET  blob .*186 B/u)]);
    const text = formatReport(report, 'apache');
    expect(text).toContain('Content-Encoding: gzip although we asked for identity');
    expect(text).toContain('breaks: containerd (ctr, nerdctl, kubelet, Docker 29) decodes gzip');
    expect(text).toContain('mod_mime_magic');
  });

  it('HTML 200 for missing files (Cloudflare Pages without 404.html) → ✗', async () => {
    const report = await checkBroken(({ path: p }, r) => {
      if (!p) Object.assign(r, { status: 200, headers: { 'Content-Type': 'text/html' }, body: Buffer.from(MISSING_HTML) });
    });
    expect(failedKinds(report)).toEqual(['missing-200']);
    expect(failedLabels(report, 'missing-200')).toHaveLength(3); // a missing tag, blob and repository
    const text = formatReport(report, 'cloudflare');
    expect(text).toContain('✗ answered 200 with an HTML page instead of 404');
    expect(text).toContain(`breaks: ${BREAKS['missing-200']}`);
    expect(text).toContain('top-level 404.html');
  });

  it('403 for missing files (S3 without s3:ListBucket) → only a warning', async () => {
    const report = await checkBroken(({ path: p }, r) => {
      if (!p) r.status = 403;
    });
    expect(failedKinds(report)).toEqual([]);
    expect(report.warnings).toBe(3);
    expect(formatReport(report, 's3')).toContain('s3:ListBucket');
  });

  it('a 404 without the OCI error body (a site\'s HTML or plain-text page) → a warning naming the code docker needs', async () => {
    const report = await checkBroken(({ path: p }, r) => {
      if (!p) Object.assign(r, { headers: { 'Content-Type': 'text/html' }, body: Buffer.from(MISSING_HTML) });
    });
    expect(failedKinds(report)).toEqual([]);
    const rows = report.rows.filter((r) => r.problems.some((x) => x.kind === 'error-body'));
    expect(rows.map((r) => r.problems[0]!.message)).toEqual([
      'the 404 body is not JSON (an HTML page) (expected the OCI error body, code MANIFEST_UNKNOWN)',
      'the 404 body is not JSON (an HTML page) (expected the OCI error body, code BLOB_UNKNOWN)',
      'the 404 body is not JSON (an HTML page) (expected the OCI error body, code NAME_UNKNOWN)',
    ]);
    const text = formatReport(report, 'netlify');
    expect(text).toContain(BREAKS['error-body']);
    expect(text).toContain('_redirects');
  });

  it('/v2/ without Docker-Distribution-API-Version → a warning', async () => {
    const report = await checkBroken(({ path: p }, r) => {
      if (p?.kind === 'base') delete r.headers['Docker-Distribution-API-Version'];
    });
    expect(failedKinds(report)).toEqual([]);
    expect(report.rows.find((r) => r.label === 'GET /v2/')!.problems).toEqual([{ kind: 'api-version', severity: 'warn', message: 'no Docker-Distribution-API-Version header' }]);
  });

  it('HEAD without Content-Length → ✗ breaks containerd and docker', async () => {
    const report = await checkBroken(({ method, path: p }, r) => {
      if (method === 'HEAD' && p?.kind === 'manifest') delete r.headers['Content-Length'];
    });
    expect(failedKinds(report)).toEqual(['head-length']);
    expect(failedLabels(report, 'head-length').every((l) => l.startsWith('HEAD '))).toBe(true);
    expect(failedLabels(report, 'head-length')).toHaveLength(5);
    const text = formatReport(report);
    expect(text).toContain('✗ no Content-Length');
    expect(text).toContain('breaks: containerd (ctr, nerdctl, kubelet) and docker');
  });

  it('corrupted blob bytes (same length) → ✗ digest mismatch, breaks all clients', async () => {
    const target = blobPaths()[0]!;
    const report = await checkBroken(({ method, urlPath }, r) => {
      if (urlPath === target.urlPath && method === 'GET') {
        r.body = Buffer.from(r.body);
        r.body[0] = r.body[0]! ^ 0xff;
      }
    });
    expect(failedKinds(report)).toEqual(['body-digest']);
    expect(failedLabels(report, 'body-digest')).toEqual([expect.stringContaining(target.digest!.slice(0, 19))]);
    expect(formatReport(report)).toContain(`breaks: ${BREAKS['body-digest']}`);
  });

  it('a truncated manifest whose descriptor says otherwise → ✗ digest and size', async () => {
    const child = manifestPaths().find((p) => p.contentType === 'application/vnd.oci.image.manifest.v1+json')!;
    const report = await checkBroken(({ urlPath }, r) => {
      if (urlPath === child.urlPath) {
        r.body = Buffer.from(JSON.stringify(JSON.parse(r.body.toString())));
        r.headers['Content-Length'] = String(r.body.length);
      }
    });
    expect(failedKinds(report)).toEqual(['body-digest', 'length-wrong']);
  });

  it('Range ignored (200 with the whole blob) → a warning for resumed downloads', async () => {
    const report = await checkBroken(({ path: p, range }, r) => {
      if (p && range) {
        Object.assign(r, { status: 200, body: readFileSync(path.join(site, ...p.file.split('/'))) });
        delete r.headers['Content-Range'];
        r.headers['Content-Length'] = String(r.body.length);
      }
    });
    expect(failedKinds(report)).toEqual([]);
    expect(report.warnings).toBe(1);
    const text = formatReport(report);
    expect(text).toContain('! answered 200 (expected 206)');
    expect(text).toContain(`breaks: ${BREAKS.range}`);
  });

  it('a 503 that outlasts the retry → ✗ status', async () => {
    const target = blobPaths()[1]!;
    const report = await checkBroken(({ urlPath }, r) => {
      if (urlPath === target.urlPath) Object.assign(r, { status: 503, body: Buffer.from('busy') });
    });
    expect(failedKinds(report)).toEqual(['status']);
    expect(formatReport(report)).toMatch(/✗ HEAD .*503 Service Unavailable after 2 attempts/u);
  });

  it('no Docker-Content-Digest (S3/R2) → a warning, not a failure', async () => {
    const report = await checkBroken((_req, r) => {
      delete r.headers['Docker-Content-Digest'];
    });
    expect(failedKinds(report)).toEqual([]);
    expect(report.warnings).toBe(10);
    const text = formatReport(report, 's3');
    expect(text).toContain('! no Docker-Content-Digest');
    expect(text).toContain('breaks: no pull client: docker, containerd, podman/skopeo and crane pull without it');
    expect(text).toMatch(/^OK: 24 checks, 0 failed, 10 with warnings$/mu);
  });

  it('--host apache: no .htaccess sentinel header (AllowOverride None) → ✗; with it → ✓', async () => {
    tweak = () => {};
    const without = await runCheck({ url: broken.url, images: IMAGES, host: 'apache' });
    expect(failedKinds(without)).toEqual(['htaccess-ignored']);
    expect(formatReport(without, 'apache')).toContain('AllowOverride FileInfo');
    // Other hosts never send the sentinel: the check only applies to Apache.
    expect(failedKinds(await runCheck({ url: broken.url, images: IMAGES, host: 'nginx' }))).toEqual([]);
    tweak = (_req, r) => {
      r.headers['X-Registrish-Config'] = 'htaccess';
    };
    try {
      expect(failedKinds(await runCheck({ url: broken.url, images: IMAGES, host: 'apache' }))).toEqual([]);
    } finally {
      tweak = () => {};
    }
  });

  it('a stale Docker-Content-Digest on a tag → ✗', async () => {
    const other = manifestPaths().find((p) => p.contentType === 'application/vnd.oci.image.manifest.v1+json')!;
    const report = await checkBroken(({ urlPath }, r) => {
      if (urlPath === '/v2/hello/manifests/latest') r.headers['Docker-Content-Digest'] = other.digest!;
    });
    expect(failedKinds(report)).toEqual(['digest-header-wrong']);
    expect(failedLabels(report, 'digest-header-wrong')).toEqual(['HEAD hello:latest', 'GET  hello:latest']);
  });

  it('a published tag missing from the host → ✗ 404, and tags/list missing it', async () => {
    const report = await checkBroken(({ urlPath }, r) => {
      if (urlPath === '/v2/hello/manifests/latest') Object.assign(r, { status: 404, body: Buffer.from('nope') });
      if (urlPath === '/v2/hello/tags/list') r.body = Buffer.from(JSON.stringify({ name: 'hello', tags: ['1.0'] }));
      if (urlPath === '/v2/hello/tags/list') r.headers['Content-Length'] = String(r.body.length);
    });
    expect(failedKinds(report)).toEqual(['status', 'tags-list']);
    expect(formatReport(report)).toContain('does not list "latest"');
  });
});

describe('check: fixes and breaks tables', () => {
  it('has a breaks text and a generic fix for every kind', () => {
    for (const kind of Object.keys(BREAKS) as ProblemKind[]) {
      expect(BREAKS[kind].length).toBeGreaterThan(10);
      expect(GENERIC_FIXES[kind].length).toBeGreaterThan(10);
    }
  });

  it('accepts an origin, with or without /v2/, and refuses paths', () => {
    expect(registryOrigin('https://r.example.com/v2/')).toBe('https://r.example.com');
    expect(registryOrigin('r.example.com:5000')).toBe('https://r.example.com:5000');
    expect(() => registryOrigin('https://example.com/registry/')).toThrow(/root of its host/u);
    expect(() => registryOrigin('ftp://example.com')).toThrow(/http/u);
  });
});

describe('check: the CLI', () => {
  it('exits 0 on a good registry, naming where the tags came from', async () => {
    const io = captureIO();
    expect(await main(['check', preview.url, '--images', imagesFile], io)).toBe(0);
    expect(io.out()).toContain(`registrish check ${preview.url}`);
    expect(io.out()).toMatch(/tags from .*images\.json/u);
    expect(io.out()).toMatch(/^OK: 24 checks/mu);
    const discovered = captureIO();
    expect(await main(['check', preview.url], discovered)).toBe(0);
    expect(discovered.out()).toContain('tags discovered through /v2/_catalog');
  });

  it('exits 1 on a broken one, with the fix for the chosen host', async () => {
    tweak = ({ path: p }, r) => {
      if (p?.kind === 'manifest') r.headers['Content-Type'] = 'text/plain';
    };
    const io = captureIO();
    try {
      expect(await main(['check', broken.url, '--images', imagesFile, '--host', 'netlify', '--quick'], io)).toBe(1);
    } finally {
      tweak = () => {};
    }
    expect(io.out()).toContain('✗ HEAD hello:1.0');
    expect(io.out()).toContain('How to fix (netlify):');
    expect(io.out()).toContain('`netlify dev` overwrites Content-Type');
    expect(io.out()).toMatch(/^FAIL: \d+ checks, 10 failed/mu);
  });

  it('--json prints the report with breaks and fixes', async () => {
    tweak = ({ urlPath }, r) => {
      if (urlPath === '/v2/') r.status = 404;
    };
    const io = captureIO();
    try {
      expect(await main(['check', broken.url, '--json'], io)).toBe(1);
    } finally {
      tweak = () => {};
    }
    const doc = JSON.parse(io.out()) as { failed: number; source: string; rows: Array<{ label: string; status: string; problems: Array<{ kind: string; breaks: string; fix: string }> }> };
    expect(doc.failed).toBe(1);
    expect(doc.source).toBe('catalog');
    const base = doc.rows.find((r) => r.label === 'GET /v2/')!;
    expect(base.status).toBe('fail');
    expect(base.problems[0]).toMatchObject({ kind: 'base-status', breaks: BREAKS['base-status'], fix: GENERIC_FIXES['base-status'] });
  });

  it('usage errors exit 2; --help exits 0', async () => {
    const none = captureIO();
    expect(await main(['check'], none)).toBe(2);
    expect(none.err()).toContain('missing the registry URL');
    expect(none.err()).toContain('Usage: registrish check <url>');
    const badHost = captureIO();
    expect(await main(['check', preview.url, '--host', 'github'], badHost)).toBe(2);
    expect(badHost.err()).toContain('--host must be one of');
    const help = captureIO();
    expect(await main(['check', '--help'], help)).toBe(0);
    expect(help.out()).toContain('--quick');
    const list = captureIO();
    expect(await main(['--help'], list)).toBe(0);
    expect(list.out()).toMatch(/check\s+check a deployed registry/u);
  });

  it('an unreachable host is one failure, not one per check', async () => {
    const gone = await startTweakableServer();
    await gone.close(); // the port is now (almost certainly) closed
    const io = captureIO();
    expect(await main(['check', gone.url, '--images', imagesFile], io)).toBe(1);
    expect(io.out()).toMatch(/✗ GET \/v2\/\n.*request failed/u);
    expect(io.out()).toMatch(/^FAIL: 1 check, 1 failed/mu);
  });

  it('a missing images.json is an error (exit 1), not a usage error', async () => {
    const io = captureIO();
    expect(await main(['check', preview.url, '--images', path.join(project, 'nope.json')], io)).toBe(1);
    expect(io.err()).toContain('no images.json found');
  });
});
