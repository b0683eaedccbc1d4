import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import zlib from 'node:zlib';
import { Client, fetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../src/cli/main.ts';
import { isLoopbackHost as isLoopback } from '../src/model/reference.ts';
import { renderNetlifyHeaders } from '../src/hosts/netlify.ts';
import { parseRange, startPreviewServer, type PreviewServer } from '../src/serve/server.ts';
import { hasCommand, makeTempDir, removeDir, run, spawnDaemon, tailFile } from './harness/procs.ts';
import { type CliIO } from '../src/cli/args.ts';
import { mergeHeadersFile } from '../src/hosts/headers-file.ts';
import { type PublishedPath } from '../src/model/published-path.ts';

const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
const SECRET = 'top-secret-outside-the-site';

const sha = (b: Buffer | string): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

interface Tree {
  dir: string;
  paths: PublishedPath[];
  index: Buffer;
  indexDigest: string;
  nested: Buffer;
  nestedDigest: string;
  blob: Buffer;
  blobDigest: string;
}

/** A small published registry: what the build would write, with `_headers` from the real writer. */
function buildTree(root: string): Tree {
  const dir = path.join(root, 'site');
  const blob = randomBytes(1000);
  const blobDigest = sha(blob);
  const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] }));
  const indexDigest = sha(index);
  const nested = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: DOCKER_MANIFEST, layers: [] }));
  const nestedDigest = sha(nested);
  const paths: PublishedPath[] = [];
  const put = (p: Omit<PublishedPath, 'size' | 'file'>, body: Buffer | string): void => {
    const file = p.urlPath === '/v2/' ? 'v2/index.html' : p.urlPath.slice(1);
    fs.mkdirSync(path.join(dir, path.dirname(file)), { recursive: true });
    fs.writeFileSync(path.join(dir, file), body);
    paths.push({ ...p, file, size: Buffer.byteLength(body) });
  };
  const mutable = { contentType: 'application/json', immutable: false } as const;
  put({ urlPath: '/v2/', kind: 'base', ...mutable }, '{}\n');
  put({ urlPath: '/v2/_catalog', kind: 'catalog', ...mutable }, '{"repositories":["alpine","team/tools/deep"]}\n');
  put({ urlPath: '/v2/alpine/tags/list', kind: 'tags', ...mutable }, '{"name":"alpine","tags":["3.20"]}\n');
  put({ urlPath: '/v2/alpine/manifests/3.20', kind: 'manifest', contentType: OCI_INDEX, digest: indexDigest, immutable: false }, index);
  put({ urlPath: `/v2/alpine/manifests/${indexDigest}`, kind: 'manifest', contentType: OCI_INDEX, digest: indexDigest, immutable: true }, index);
  put({ urlPath: `/v2/alpine/blobs/${blobDigest}`, kind: 'blob', contentType: 'application/octet-stream', digest: blobDigest, immutable: true }, blob);
  put({ urlPath: '/v2/team/tools/deep/tags/list', kind: 'tags', ...mutable }, '{"name":"team/tools/deep","tags":["V1.0-RC"]}\n');
  put({ urlPath: '/v2/team/tools/deep/manifests/V1.0-RC', kind: 'manifest', contentType: DOCKER_MANIFEST, digest: nestedDigest, immutable: false }, nested);
  put({ urlPath: `/v2/team/tools/deep/manifests/${nestedDigest}`, kind: 'manifest', contentType: DOCKER_MANIFEST, digest: nestedDigest, immutable: true }, nested);
  // A user rule written in another case than the URL: Netlify matches it anyway.
  const user = '/V2/ALPINE/TAGS/LIST\n  X-Test: case-insensitive\n';
  fs.writeFileSync(path.join(dir, '_headers'), mergeHeadersFile(user, renderNetlifyHeaders(paths)).text);
  // Things that must never be served.
  fs.writeFileSync(path.join(root, 'secret.txt'), SECRET);
  fs.symlinkSync(path.join(root, 'secret.txt'), path.join(dir, 'link-out'));
  fs.symlinkSync(root, path.join(dir, 'v2', 'dir-out'));
  fs.writeFileSync(path.join(dir, 'v2', 'untyped'), 'no rule for me');
  return { dir, paths, index, indexDigest, nested, nestedDigest, blob, blobDigest };
}

const root = makeTempDir('rsh-serve-');
let tree: Tree;
let server: PreviewServer;
let client: Client;
const logLines: string[] = [];

beforeAll(async () => {
  tree = buildTree(root);
  server = await startPreviewServer({ dir: tree.dir, port: 0, log: (l) => logLines.push(l) });
  client = new Client(server.url);
});

afterAll(async () => {
  await client?.close();
  await server?.close();
  removeDir(root);
});

/** A request with the path sent byte for byte (fetch would normalize `..` away before sending). */
async function raw(
  rawPath: string,
  method: 'GET' | 'HEAD' | 'POST' | 'DELETE' = 'GET',
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  const res = await client.request({ path: rawPath, method, headers });
  const chunks: Buffer[] = [];
  for await (const c of res.body) chunks.push(c as Buffer);
  return { status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) };
}

describe('preview server', () => {
  it('answers /v2/ with {} as application/json and the API version header', async () => {
    const res = await fetch(`${server.url}/v2/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(res.headers.get('docker-distribution-api-version')).toBe('registry/2.0');
    expect(await res.text()).toBe('{}\n');
  });

  it('redirects /v2 to /v2/ like Netlify, keeping the query', async () => {
    const res = await raw('/v2?x=1');
    expect(res.status).toBe(301);
    expect(res.headers.location).toBe('/v2/?x=1');
  });

  it('serves a manifest by tag and by digest with the exact type and digest', async () => {
    for (const ref of ['3.20', tree.indexDigest]) {
      const res = await fetch(`${server.url}/v2/alpine/manifests/${ref}`, {
        headers: { Accept: `${OCI_INDEX}, ${DOCKER_MANIFEST}`, 'Accept-Encoding': 'gzip, br' },
      });
      expect(res.status, ref).toBe(200);
      expect(res.headers.get('content-type'), ref).toBe(OCI_INDEX); // no charset
      expect(res.headers.get('docker-content-digest'), ref).toBe(tree.indexDigest);
      expect(res.headers.get('content-length'), ref).toBe(String(tree.index.length));
      expect(res.headers.get('content-encoding'), ref).toBeNull();
      expect(Buffer.from(await res.arrayBuffer()).equals(tree.index), ref).toBe(true);
    }
    const nested = await fetch(`${server.url}/v2/team/tools/deep/manifests/V1.0-RC`);
    expect(nested.headers.get('content-type')).toBe(DOCKER_MANIFEST);
    expect(nested.headers.get('docker-content-digest')).toBe(tree.nestedDigest);
    expect(nested.headers.get('cache-control')).toBe('public, max-age=60');
    await nested.arrayBuffer();
  });

  it('also matches a digest URL whose ":" the client percent-encoded', async () => {
    const res = await raw(`/v2/alpine/manifests/${tree.indexDigest.replace(':', '%3A')}`);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe(OCI_INDEX);
  });

  it('answers HEAD with the same headers, Content-Length and no body', async () => {
    const res = await raw('/v2/alpine/manifests/3.20', 'HEAD');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe(OCI_INDEX);
    expect(res.headers['docker-content-digest']).toBe(tree.indexDigest);
    expect(res.headers['content-length']).toBe(String(tree.index.length));
    expect(res.body.length).toBe(0);
    const blob = await raw(`/v2/alpine/blobs/${tree.blobDigest}`, 'HEAD');
    expect(blob.headers['content-length']).toBe('1000');
    expect(blob.headers['accept-ranges']).toBe('bytes');
    expect(blob.headers['cache-control']).toBe('public, max-age=31536000, immutable');
  });

  it('serves byte ranges with 206 and refuses unsatisfiable ones with 416', async () => {
    const url = `/v2/alpine/blobs/${tree.blobDigest}`;
    const cases: Array<[string, number, number]> = [
      ['bytes=0-9', 0, 9],
      ['bytes=990-', 990, 999],
      ['bytes=-5', 995, 999],
      ['bytes=500-5000', 500, 999],
    ];
    for (const [range, start, end] of cases) {
      const res = await raw(url, 'GET', { Range: range });
      expect(res.status, range).toBe(206);
      expect(res.headers['content-range'], range).toBe(`bytes ${start}-${end}/1000`);
      expect(res.headers['content-length'], range).toBe(String(end - start + 1));
      expect(res.headers['docker-content-digest'], range).toBe(tree.blobDigest);
      expect(res.body.equals(tree.blob.subarray(start, end + 1)), range).toBe(true);
    }
    const head = await raw(url, 'HEAD', { Range: 'bytes=10-19' });
    expect([head.status, head.headers['content-length'], head.body.length]).toEqual([206, '10', 0]);
    for (const range of ['bytes=1000-', 'bytes=-0']) {
      const res = await raw(url, 'GET', { Range: range });
      expect(res.status, range).toBe(416);
      expect(res.headers['content-range'], range).toBe('bytes */1000');
    }
    const ignored = await raw(url, 'GET', { Range: 'bytes=9-2' });
    expect([ignored.status, ignored.body.length]).toEqual([200, 1000]);
  });

  it('answers a missing manifest, blob or repository with 404 and the OCI error body, and the rest of the site with a plain 404', async () => {
    for (const [p, code] of [
      ['/v2/alpine/manifests/nope', 'MANIFEST_UNKNOWN'],
      [`/v2/alpine/manifests/sha256:${'0'.repeat(64)}`, 'MANIFEST_UNKNOWN'],
      [`/v2/alpine/blobs/sha256:${'0'.repeat(64)}`, 'BLOB_UNKNOWN'],
      ['/v2/team/tools/deep/manifests/nope', 'MANIFEST_UNKNOWN'],
      ['/v2/ghost/tags/list', 'NAME_UNKNOWN'],
      ['/v2/ghost/manifests/1.0', 'NAME_UNKNOWN'],
      ['/v2/team/tools/manifests/1.0', 'NAME_UNKNOWN'],
    ] as const) {
      for (const method of ['GET', 'HEAD'] as const) {
        const res = await raw(p, method);
        expect(res.status, p).toBe(404);
        expect(res.headers['content-type'], p).toBe('application/json');
        if (method === 'GET') expect(JSON.parse(res.body.toString()), p).toEqual({ errors: [{ code, message: expect.any(String) }] });
        else expect(res.body.length).toBe(0);
      }
    }
    const page = await raw('/no/such/page');
    expect(page.status).toBe(404);
    expect(page.headers['content-type']).toMatch(/^text\/plain/u);
    expect((await raw('/v2/_catalog/')).status).toBe(404);
  });

  it('applies header rules case-insensitively', async () => {
    const res = await raw('/v2/alpine/tags/list');
    expect(res.headers['x-test']).toBe('case-insensitive');
    expect(res.headers['content-type']).toBe('application/json');
  });

  it('serves a file without a rule as application/octet-stream', async () => {
    const res = await raw('/v2/untyped');
    expect([res.status, res.headers['content-type']]).toEqual([200, 'application/octet-stream']);
  });

  it('never serves anything outside the directory', async () => {
    const attempts = [
      '/../secret.txt',
      '/v2/../../secret.txt',
      '/%2e%2e/secret.txt',
      '/v2/%2E%2E/%2e%2e/secret.txt',
      '/..%2fsecret.txt',
      '/v2%2f..%2f..%2fsecret.txt',
      '/%252e%252e/secret.txt',
      '/v2/..%5c..%5csecret.txt',
      '/..\\secret.txt',
      '/v2/%00/x',
      '/link-out',
      '/v2/dir-out/secret.txt',
      '//secret.txt',
      '/%ZZ',
    ];
    for (const p of attempts) {
      const res = await raw(p);
      expect([400, 403, 404], p).toContain(res.status);
      expect(res.body.toString(), p).not.toContain(SECRET);
    }
  });

  it('does not serve _headers', async () => {
    for (const p of ['/_headers', '/%5Fheaders', '/v2/../_headers']) {
      const res = await raw(p);
      expect([403, 404], p).toContain(res.status);
      expect(res.body.toString(), p).not.toContain('registrish');
    }
  });

  it('answers other methods with 405', async () => {
    const res = await raw('/v2/', 'POST');
    expect(res.status).toBe(405);
    expect(res.headers.allow).toBe('GET, HEAD');
    expect((await raw('/v2/alpine/manifests/3.20', 'DELETE')).status).toBe(405);
  });

  it('logs one line per request', async () => {
    logLines.length = 0;
    await raw('/v2/');
    await raw('/v2/nope');
    expect(logLines).toEqual(['GET /v2/ 200 3', 'GET /v2/nope 404 87']);
  });
});

describe('preview server: _headers handling', () => {
  it('picks up a rewritten _headers without a restart', async () => {
    const dir = makeTempDir('rsh-reload-');
    try {
      fs.mkdirSync(path.join(dir, 'v2'));
      fs.writeFileSync(path.join(dir, 'v2', 'index.html'), '{}\n');
      fs.writeFileSync(path.join(dir, '_headers'), '/v2/\n  Content-Type: text/plain\n');
      const s = await startPreviewServer({ dir, port: 0 });
      try {
        const before = await fetch(`${s.url}/v2/`);
        expect(before.headers.get('content-type')).toBe('text/plain');
        await before.text();
        fs.writeFileSync(path.join(dir, '_headers'), '/v2/\n  Content-Type: application/json\n  X-Reloaded: yes\n');
        const after = await fetch(`${s.url}/v2/`);
        expect(after.headers.get('content-type')).toBe('application/json');
        expect(after.headers.get('x-reloaded')).toBe('yes');
        await after.text();
        // A broken rewrite is reported, not silently ignored.
        fs.writeFileSync(path.join(dir, '_headers'), 'Content-Type: oops\n');
        const broken = await fetch(`${s.url}/v2/`);
        expect(broken.status).toBe(500);
        expect(await broken.text()).toMatch(/Path should come before header/u);
      } finally {
        await s.close();
      }
    } finally {
      removeDir(dir);
    }
  });

  it("refuses to start when Netlify's parser reports errors, listing them", async () => {
    const dir = makeTempDir('rsh-bad-');
    try {
      fs.writeFileSync(path.join(dir, '_headers'), 'X-A: 1\n/x\n  X-B:\n');
      const error = await startPreviewServer({ dir, port: 0 }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(String(error)).toMatch(/reports 2 error\(s\):/u);
      expect(String(error)).toMatch(/Path should come before header "X-A"/u);
      expect(String(error)).toMatch(/line 3:\s+X-B:\s+Missing header value/u);
    } finally {
      removeDir(dir);
    }
  });

  it('refuses a missing directory with a hint', async () => {
    await expect(startPreviewServer({ dir: path.join(root, 'nope'), port: 0 })).rejects.toThrow(/does not exist/u);
  });
});

describe('parseRange', () => {
  it('reads one bytes range and ignores what it does not support', () => {
    expect(parseRange(undefined, 10)).toBeUndefined();
    expect(parseRange('bytes=0-0', 10)).toEqual({ start: 0, end: 0 });
    expect(parseRange('bytes=-20', 10)).toEqual({ start: 0, end: 9 });
    expect(parseRange('bytes=0-1,3-4', 10)).toBeUndefined();
    expect(parseRange('items=0-1', 10)).toBeUndefined();
    expect(parseRange('bytes=0-', 0)).toBe('unsatisfiable');
  });
});

describe('registrish CLI', () => {
  function captureIO(stop: Promise<string> = new Promise(() => {})): CliIO & { out: string[]; err: string[] } {
    const out: string[] = [];
    const err: string[] = [];
    return { out, err, stdout: (t) => out.push(t), stderr: (t) => err.push(t), untilStopped: () => stop };
  }

  it('prints the version and help, and rejects unknown commands and flags with exit 2', async () => {
    const pkg = JSON.parse(fs.readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
    let io = captureIO();
    expect(await main(['--version'], io)).toBe(0);
    expect(io.out.join('')).toBe(`${pkg.version}\n`);
    io = captureIO();
    expect(await main(['--help'], io)).toBe(0);
    expect(io.out.join('')).toContain('serve');
    for (const argv of [[], ['frobnicate'], ['--nope'], ['serve', '--bogus'], ['serve', '--port', 'abc'], ['serve', 'a', 'b'], ['serve', '--port']]) {
      io = captureIO();
      expect(await main(argv, io), argv.join(' ')).toBe(2);
      expect(io.err.join(''), argv.join(' ')).toMatch(/Usage: registrish/u);
    }
  });

  it('serve runs in-process until stopped, naming a published image', async () => {
    let stop!: (s: string) => void;
    const io = captureIO(new Promise((r) => (stop = r)));
    const done = main(['serve', tree.dir, '--port', '0'], io);
    let line = '';
    for (let i = 0; i < 100 && !line; i++) {
      line = io.out.join('').split('\n')[0] ?? '';
      if (!line) await new Promise((r) => setTimeout(r, 20));
    }
    const m = /at (http:\/\/127\.0\.0\.1:(\d+)) — try: docker pull 127\.0\.0\.1:\2\/alpine:3\.20$/u.exec(line);
    expect(m, line).not.toBeNull();
    const res = await fetch(`${m![1]}/v2/`);
    expect(res.status).toBe(200);
    await res.text();
    stop('SIGINT');
    expect(await done).toBe(0);
  });

  it('knows loopback hosts', () => {
    for (const h of ['127.0.0.1', '127.1.2.3', 'localhost', '::1', '[::1]']) expect(isLoopback(h), h).toBe(true);
    for (const h of ['0.0.0.0', '::', '192.168.1.2', 'example.com']) expect(isLoopback(h), h).toBe(false);
  });

  it('bin/registrish.js serve DIR --port 0 prints the real URL, serves /v2/, and stops on SIGTERM', async () => {
    const logFile = path.join(root, 'cli.log');
    const bin = fileURLToPath(new URL('../bin/registrish.js', import.meta.url));
    let url = '';
    const daemon = await spawnDaemon(process.execPath, [bin, 'serve', tree.dir, '--port', '0'], {
      logFile,
      name: 'registrish serve',
      timeoutMs: 30_000,
      ready: async () => {
        const m = /serving .* at (http:\/\/127\.0\.0\.1:\d+)/u.exec(tailFile(logFile));
        if (!m) return false;
        url = m[1]!;
        const res = await fetch(`${url}/v2/`);
        await res.text();
        return res.status === 200 && res.headers.get('content-type') === 'application/json';
      },
    });
    try {
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/u);
      expect(url.endsWith(':0')).toBe(false);
    } finally {
      await daemon.stop();
    }
    expect(tailFile(logFile)).toMatch(/SIGTERM, stopping/u);
    expect(tailFile(logFile)).toMatch(/GET \/v2\/ 200 3/u);
  });
});

describe('preview server with a real client', () => {
  it('skopeo inspects and copies an image served from the generated _headers', async () => {
    const dir = makeTempDir('rsh-skopeo-');
    try {
      // A one-layer OCI image under a nested name, laid out like the build does.
      const tarBody = Buffer.alloc(1024); // an empty tar archive: two zero blocks
      const layer = zlib.gzipSync(tarBody);
      const config = Buffer.from(
        JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha(tarBody)] }, config: {} }),
      );
      const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
      const manifestBody = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: OCI_MANIFEST,
          config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length },
          layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha(layer), size: layer.length }],
        }),
      );
      const site = path.join(dir, 'site');
      const paths: PublishedPath[] = [];
      const put = (urlPath: string, kind: PublishedPath['kind'], contentType: string, body: Buffer, digest?: string): void => {
        const file = urlPath === '/v2/' ? 'v2/index.html' : urlPath.slice(1);
        fs.mkdirSync(path.join(site, path.dirname(file)), { recursive: true });
        fs.writeFileSync(path.join(site, file), body);
        paths.push({ urlPath, file, kind, contentType, digest, size: body.length, immutable: urlPath.includes('sha256:') });
      };
      put('/v2/', 'base', 'application/json', Buffer.from('{}\n'));
      put('/v2/team/hello/tags/list', 'tags', 'application/json', Buffer.from('{"name":"team/hello","tags":["1.0"]}\n'));
      put('/v2/team/hello/manifests/1.0', 'manifest', OCI_MANIFEST, manifestBody, sha(manifestBody));
      put(`/v2/team/hello/manifests/${sha(manifestBody)}`, 'manifest', OCI_MANIFEST, manifestBody, sha(manifestBody));
      for (const b of [config, layer]) put(`/v2/team/hello/blobs/${sha(b)}`, 'blob', 'application/octet-stream', b, sha(b));
      fs.writeFileSync(path.join(site, '_headers'), mergeHeadersFile(undefined, renderNetlifyHeaders(paths)).text);

      const s = await startPreviewServer({ dir: site, port: 0 });
      try {
        const ref = `docker://${s.url.replace('http://', '')}/team/hello:1.0`;
        const inspect = await run('skopeo', ['inspect', '--tls-verify=false', ref], { timeoutMs: 60_000 });
        const info = JSON.parse(inspect.stdout) as { Digest: string; RepoTags: string[] };
        expect(info.Digest).toBe(sha(manifestBody));
        expect(info.RepoTags).toEqual(['1.0']);
        await run('skopeo', ['copy', '--src-tls-verify=false', ref, `oci:${path.join(dir, 'copy')}:x`], { timeoutMs: 60_000 });
        expect(fs.existsSync(path.join(dir, 'copy', 'blobs', 'sha256', sha(layer).slice(7)))).toBe(true);
      } finally {
        await s.close();
      }
    } finally {
      removeDir(dir);
    }
  });
});
