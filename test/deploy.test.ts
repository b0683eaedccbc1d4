import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import { cpSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildRegistry } from '../src/build.ts';
import { main } from '../src/cli/main.ts';
import { parseS3Url } from '../src/deploy/command.ts';
import { deploy, planUploads } from '../src/deploy/deploy.ts';
import { IN_PROGRESS_ABOUT, parseRecord, serializeRecord } from '../src/deploy/record.ts';
import { S3Client, signV4, type S3RequestCounts } from '../src/deploy/s3-client.ts';
import { createAgent, USER_AGENT } from '../src/http/transport.ts';
import { IMMUTABLE_CACHE, MUTABLE_CACHE } from '../src/publish/headers.ts';
import { ctrPull, skopeoCopy, startContainerd, type Containerd } from './harness/clients.ts';
import { buildManifest, makeLayer, pushImage, seedUpstream, type Fixtures } from './harness/images.ts';
import { keyPair, seedSignedApp, type SignedApp } from './harness/attachments.ts';
import { hasCommand, makeTempDir, removeDir, sleep } from './harness/procs.ts';
import { startS3rver, type S3Server } from './harness/s3.ts';
import { startRegistry, type UpstreamRegistry } from './harness/upstream.ts';
import { type CliIO } from '../src/cli/args.ts';
import { readPathsFile } from '../src/publish/paths-file.ts';

// `registrish deploy` against a real S3-compatible server (s3rver, which checks the access key id
// but NOT SigV4 signatures: see node_modules/s3rver/lib/middleware/authentication.js; signatures
// are checked against the AWS documentation and botocore vectors below instead), with
// a registry built from a real upstream, then pulled by real clients through a root-path front:
// a tiny reverse proxy mapping `/v2/…` to the bucket's path-style URL, as a virtual-hosted
// bucket, a website endpoint or a CDN would.

const REPO = path.resolve(import.meta.dirname, '..');
const ACCESS_KEY = 'AKIDREGISTRISHTEST';
const SECRET = 'deploy-Secret-7781-xyz';
const SESSION = 'session-Token-5523-abc';
const BUCKET = 'registry';
const PREFIX = 'mirror';

let s3: S3Server;
let s3Url: string;
let up: UpstreamRegistry;
let fx: Fixtures;
let signed: SignedApp;
let project: string;
let site: string;
let proxy: http.Server;
let proxyHost: string;
let containerd: Containerd;
let containerdError: unknown;
let client: S3Client;
const agent = createAgent();
/** Everything every deploy printed, for the credential check. */
const allOutput: string[] = [];

type S3ClientOptions = ConstructorParameters<typeof S3Client>[0];
/** A client of the test bucket at `endpoint` through `dispatcher`, with `extra` options. */
const bucketClient = (endpoint: string, dispatcher: NonNullable<S3ClientOptions['dispatcher']>, extra: Partial<S3ClientOptions> = {}) =>
  new S3Client({
    endpoint: new URL(endpoint),
    region: 'us-east-1',
    bucket: BUCKET,
    credentials: { accessKeyId: ACCESS_KEY, secretAccessKey: SECRET },
    pathStyle: true,
    dispatcher,
    ...extra,
  });

function requireTool(cmd: string): void {
  if (!hasCommand(cmd)) throw new Error(`${cmd} is not installed: run "sudo bash scripts/install-test-deps.sh" (Debian 12)`);
}

async function deployCli(
  args: string[],
  env: Record<string, string> = {},
  where: { target?: string; dir?: string; endpoint?: string } = {},
): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: CliIO = { stdout: (t) => (out += t), stderr: (t) => (err += t), untilStopped: () => new Promise(() => {}) };
  const saved = { ...process.env };
  Object.assign(process.env, { AWS_ACCESS_KEY_ID: ACCESS_KEY, AWS_SECRET_ACCESS_KEY: SECRET, AWS_SESSION_TOKEN: SESSION, AWS_REGION: 'us-east-1' }, env);
  try {
    const code = await main(['deploy', where.target ?? `s3://${BUCKET}/${PREFIX}`, where.dir ?? site, '--endpoint-url', where.endpoint ?? s3Url, ...args], io);
    allOutput.push(out, err);
    return { code, out, err };
  } finally {
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
  }
}

/** Root-path front for the bucket: `/v2/…` → `/<bucket>/<prefix>/v2/…` (GET and HEAD only, as a read-only CDN). */
function startProxy(): Promise<http.Server> {
  const target = new URL(s3Url);
  const server = http.createServer((req, res) => {
    if ((req.method !== 'GET' && req.method !== 'HEAD') || !req.url?.startsWith('/v2/')) {
      res.writeHead(405).end();
      return;
    }
    const headers: http.OutgoingHttpHeaders = {};
    for (const name of ['accept', 'range', 'accept-encoding', 'if-none-match']) if (req.headers[name]) headers[name] = req.headers[name];
    const up = http.request(
      { host: target.hostname, port: target.port, method: req.method, path: `/${BUCKET}/${PREFIX}${req.url}`, headers },
      (r) => {
        const out: http.OutgoingHttpHeaders = {};
        for (const [k, v] of Object.entries(r.headers)) if (!['connection', 'keep-alive', 'transfer-encoding'].includes(k)) out[k] = v;
        res.writeHead(r.statusCode ?? 502, out);
        r.pipe(res);
      },
    );
    up.on('error', () => (res.headersSent ? res.destroy() : res.writeHead(502).end()));
    up.end();
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

/** Builds a registry from `images` (written to `imagesFile` in the project) into `outputDir`. */
async function buildSite(imagesFile: string, images: unknown, outputDir: string, cacheDir: string): Promise<void> {
  writeFileSync(path.join(project, imagesFile), JSON.stringify(images));
  await buildRegistry({
    images: path.join(project, imagesFile),
    outputDir,
    cacheDir: path.join(project, cacheDir),
    hosts: [],
    imageConcurrency: 2,
    blobConcurrency: 4,
    linkMode: 'hardlink',
    logger: { info: () => {}, warn: () => {} },
    env: { DOCKER_CONFIG: path.join(project, 'no-docker-config') },
  });
}

/** Requests of each kind, as the deploy summary counts them. */
type Counts = S3RequestCounts;

/** The kind of an S3 request, from what was sent (independent of the client's own counters). */
function kindOf(method: string, url: string): keyof Counts {
  const q = new URL(url, 'http://x').searchParams;
  if (method === 'HEAD') return 'head';
  if (method === 'GET') return q.get('list-type') === '2' ? 'list' : 'get';
  if (method === 'POST' || q.has('uploadId')) return 'multipart';
  return method === 'PUT' ? 'put' : 'delete';
}

interface Front {
  endpoint: string;
  /** `METHOD url` of every request that reached the front, in order. */
  seen: string[];
  /** Request body bytes received. */
  bytesIn: number;
  counts(): Counts;
  reset(): void;
  close(): Promise<void>;
}

/**
 * A front for s3rver that records every request the store is sent (what deploy really costs,
 * observed on the wire) and forwards it, unless `intercept` answers it itself (returns true).
 */
async function startFront(intercept?: (req: http.IncomingMessage, res: http.ServerResponse) => boolean): Promise<Front> {
  const target = new URL(s3Url);
  const seen: string[] = [];
  let bytesIn = 0;
  const server = http.createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    req.on('data', (chunk: Buffer) => (bytesIn += chunk.length));
    if (intercept?.(req, res)) return;
    const up = http.request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    // An upstream reset must answer 502 (or drop this connection), never crash the worker.
    up.on('error', () => (res.headersSent ? res.destroy() : res.writeHead(502).end()));
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    seen,
    get bytesIn() {
      return bytesIn;
    },
    counts() {
      const c: Counts = { list: 0, head: 0, get: 0, put: 0, delete: 0, multipart: 0 };
      for (const line of seen) {
        const [method, url] = line.split(' ') as [string, string];
        c[kindOf(method, url)]++;
      }
      return c;
    },
    reset() {
      seen.length = 0;
      bytesIn = 0;
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** The request counts a deploy printed on its last line. */
function printedCounts(out: string): Counts {
  const m = /requests: (\d+) list, (\d+) head, (\d+) get, (\d+) put, (\d+) delete, (\d+) multipart;/u.exec(out);
  if (!m) throw new Error(`no request counts in: ${out}`);
  const [list, head, get, put, del, multipart] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  return { list, head, get, put, delete: del, multipart };
}

beforeAll(async () => {
  requireTool('docker-registry');
  project = makeTempDir('rsh-deploy-');
  site = path.join(project, '_site');
  s3 = await startS3rver(project, [BUCKET], { accessKeyId: ACCESS_KEY, secretAccessKey: SECRET });
  s3Url = s3.url;
  client = bucketClient(s3Url, agent);
  // Starts while the upstream is seeded and the registry built; a failure is reported by the pull test.
  const daemon = hasCommand('containerd') ? startContainerd().catch((e: unknown) => void (containerdError = e)) : undefined;
  up = await startRegistry({ storageDir: path.join(project, 'upstream') });
  fx = await seedUpstream(up.url);
  signed = await seedSignedApp(up.url, up.host, keyPair('ec'));
  const images = {
    images: [
      { source: `${up.host}/signed/app:1.0`, attachments: true },
      `${up.host}/oci/multi:1.0`,
      `${up.host}/docker/single:v1`,
      `${up.host}/docker/list:2.0`,
      { source: `oci:${path.join(REPO, 'example/hello')}:1.0`, name: 'hello', tags: ['1.0', 'latest'] },
    ],
  };
  await buildSite('images.json', images, site, 'cache');
  proxy = await startProxy();
  proxyHost = `127.0.0.1:${(proxy.address() as { port: number }).port}`;
  const started = await daemon;
  if (started) containerd = started;
});

afterAll(async () => {
  await new Promise((r) => (proxy ? proxy.close(r) : r(undefined)));
  await containerd?.stop();
  await up?.stop();
  await s3?.close();
  await agent.close();
  if (project) removeDir(project);
});

describe('SigV4', () => {
  it('matches the AWS documentation example (GET object with Range)', async () => {
    // https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html — "GET Object".
    const h = await signV4({
      method: 'GET',
      url: new URL('https://examplebucket.s3.amazonaws.com/test.txt'),
      headers: { range: 'bytes=0-9' },
      payloadHash: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
      region: 'us-east-1',
      credentials: { accessKeyId: 'AKIAIOSFODNN7EXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY' },
      now: new Date('2013-05-24T00:00:00Z'),
    });
    expect(h['authorization']).toBe(
      'AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, ' +
        'SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41',
    );
  });

  // The other three examples of the same page: a PUT with a key needing encoding, a sub-resource
  // query and a listing query (s3rver does not check V4 signatures, so these vectors are the proof).
  const doc = async (method: string, url: string, headers: Record<string, string>, payloadHash: string) =>
    (await signV4({
      method,
      url: new URL(url),
      headers,
      payloadHash,
      region: 'us-east-1',
      credentials: { accessKeyId: 'AKIAIOSFODNN7EXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY' },
      now: new Date('2013-05-24T00:00:00Z'),
    }))['authorization']!.replace(/^.*Signature=/u, '');
  const EMPTY = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
  it('matches the AWS documentation PUT, ?lifecycle and listing examples', async () => {
    expect(
      await doc(
        'PUT',
        'https://examplebucket.s3.amazonaws.com/test%24file.text',
        { date: 'Fri, 24 May 2013 00:00:00 GMT', 'x-amz-storage-class': 'REDUCED_REDUNDANCY' },
        '44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072',
      ),
    ).toBe('98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd');
    expect(await doc('GET', 'https://examplebucket.s3.amazonaws.com/?lifecycle', {}, EMPTY)).toBe('fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543');
    expect(await doc('GET', 'https://examplebucket.s3.amazonaws.com/?max-keys=2&prefix=J', {}, EMPTY)).toBe(
      '34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7',
    );
  });

  it('matches botocore on a registry-shaped PUT (encoded key, metadata, ACL, session token) and a listing page', async () => {
    // Expected values computed with botocore 1.43 (S3SigV4Auth) for the same requests.
    const sign = async (method: string, url: string, headers: Record<string, string>, payloadHash: string) =>
      (await signV4({
        method,
        url: new URL(url),
        headers,
        payloadHash,
        region: 'eu-west-1',
        credentials: { accessKeyId: 'AKID', secretAccessKey: 'sekret/abc+def', sessionToken: 'tok123' },
        now: new Date('2026-01-02T03:04:05Z'),
      }))['authorization']!.replace(/^.*Signature=/u, '');
    expect(
      await sign(
        'PUT',
        'https://bkt.s3.eu-west-1.amazonaws.com/mirror/v2/a/b/blobs/sha256%3Aabcdef',
        {
          'content-type': 'application/vnd.oci.image.index.v1+json',
          'cache-control': 'public, max-age=60',
          'x-amz-meta-digest': 'sha256:abc',
          'x-amz-acl': 'public-read',
          'content-length': '12',
        },
        '7509e5bda0c762d2bac7f90d758b5b2263fa01ccbc542ab5e3df163be08e6ca9', // sha256('hello world!')
      ),
    ).toBe('a3d698b391e80537babfbdab593dfee1cd6fd82cbc103526f261393859b8f60e');
    expect(
      await sign('GET', 'https://bkt.s3.eu-west-1.amazonaws.com/?list-type=2&prefix=mirror%2Fv2%2F&continuation-token=1%2Fx%2By%3D%3D', {}, EMPTY),
    ).toBe('162cbe737836bc26f59f984ab5ce6319c30ed92f710abce0825966954548cb14');
  });

  it('parses targets', () => {
    expect(parseS3Url('s3://bucket')).toEqual({ bucket: 'bucket', prefix: '' });
    expect(parseS3Url('s3://bucket/a/b/')).toEqual({ bucket: 'bucket', prefix: 'a/b/' });
    expect(() => parseS3Url('https://bucket')).toThrow(/s3:\/\/bucket/u);
    expect(USER_AGENT).toMatch(/^registrish\//u);
  });
});

describe('deploy to an S3-compatible store', () => {
  it('rejects bad invocations with the usage (exit 2)', async () => {
    const r = await deployCli(['--concurrency', '0']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/Usage: registrish deploy/u);
    let err = '';
    const code = await main(['deploy'], { stdout: () => {}, stderr: (t) => (err += t), untilStopped: () => new Promise(() => {}) });
    expect(code).toBe(2);
    expect(err).toMatch(/missing target/u);
    let help = '';
    expect(await main(['deploy', '--help'], { stdout: (t) => (help += t), stderr: () => {}, untilStopped: () => new Promise(() => {}) })).toBe(0);
    expect(help).toMatch(/--endpoint-url[\s\S]*--delete/u);
    let list = '';
    expect(await main(['--help'], { stdout: (t) => (list += t), stderr: () => {}, untilStopped: () => new Promise(() => {}) })).toBe(0);
    expect(list).toMatch(/deploy\s+upload a built registry/u);
  });

  it('fails clearly without credentials', async () => {
    const r = await deployCli([], { AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: '' });
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/no S3 credentials[\s\S]*AWS_ACCESS_KEY_ID/u);
  });

  it('--dry-run uploads nothing', async () => {
    const r = await deployCli(['--dry-run']);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/dry run: would upload \d+ objects/u);
    expect(await client.head(`${PREFIX}/v2/_catalog`)).toBeUndefined();
  });

  it('uploads every object with its exact Content-Type, Cache-Control and digest, blobs before tags', async () => {
    const r = await deployCli(['--concurrency', '4']);
    expect(r.code, r.err).toBe(0);
    const paths = await readPathsFile(site);
    const lines = r.out.split('\n').filter((l) => l.startsWith('upload '));
    // Every path, plus the `v2/` key that answers `GET /v2/` on a REST endpoint.
    expect(lines).toHaveLength(paths.length + 1);
    const lastBlob = Math.max(...lines.map((l, i) => (l.includes('/blobs/') ? i : -1)));
    const lastDigestManifest = Math.max(...lines.map((l, i) => (l.includes('/manifests/sha256:') ? i : -1)));
    const firstTag = lines.findIndex((l) => /\/manifests\/(?!sha256:)/u.test(l));
    const firstDigestManifest = lines.findIndex((l) => l.includes('/manifests/sha256:'));
    expect(lastBlob).toBeLessThan(firstDigestManifest);
    expect(lastDigestManifest).toBeLessThan(firstTag);
    // Lists (and /v2/) only once every tag manifest is stored: a list never names a missing tag.
    const lastTag = Math.max(...lines.map((l, i) => (/\/manifests\/(?!sha256:)/u.test(l) ? i : -1)));
    const isList = (l: string): boolean => /\/(tags\/list|_catalog|v2\/index\.html|v2\/) \(/u.test(l);
    const firstList = lines.findIndex(isList);
    expect(lines.filter(isList).length).toBeGreaterThanOrEqual(4);
    expect(lastTag).toBeLessThan(firstList);
    expect(lines.slice(firstList).every(isList)).toBe(true);

    for (const p of paths) {
      const info = await client.head(`${PREFIX}/${p.file}`);
      expect(info, p.file).toBeDefined();
      expect(info!.contentType, p.file).toBe(p.contentType);
      expect(info!.cacheControl, p.file).toBe(p.immutable ? IMMUTABLE_CACHE : MUTABLE_CACHE);
      expect(info!.size, p.file).toBe(p.size);
      if (p.digest) expect(info!.meta['digest'], p.file).toBe(p.digest);
    }
    // The manifest types the clients depend on, checked by name too.
    const multi = fx['oci/multi:1.0']!;
    expect((await client.head(`${PREFIX}/v2/oci/multi/manifests/1.0`))!.contentType).toBe('application/vnd.oci.image.index.v1+json');
    expect((await client.head(`${PREFIX}/v2/oci/multi/manifests/${multi.platforms[0]!.digest}`))!.contentType).toBe(
      'application/vnd.oci.image.manifest.v1+json',
    );
    expect((await client.head(`${PREFIX}/v2/docker/single/manifests/v1`))!.contentType).toBe('application/vnd.docker.distribution.manifest.v2+json');
    expect((await client.head(`${PREFIX}/v2/docker/list/manifests/2.0`))!.contentType).toBe(
      'application/vnd.docker.distribution.manifest.list.v2+json',
    );
    const base = await client.head(`${PREFIX}/v2/`);
    expect(base?.contentType).toBe('application/json');
    // Referrers answers and cosign tags are objects like the others, with the index type.
    expect((await client.head(`${PREFIX}/v2/signed/app/referrers/${signed.amd64.digest}`))!.contentType).toBe('application/vnd.oci.image.index.v1+json');
    expect((await client.head(`${PREFIX}/v2/signed/app/manifests/${signed.index.digest.replace(':', '-')}.sig`))!.contentType).toBe('application/vnd.oci.image.manifest.v1+json');
    expect(paths.filter((p) => p.kind === 'referrers').length).toBe(3);
  });

  it('a second deploy uploads nothing', async () => {
    const r = await deployCli([]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).not.toMatch(/^upload /mu);
    expect(r.out).toMatch(/uploaded 0 objects .* already up to date/u);
  });

  it('re-uploads an object whose metadata drifted', async () => {
    const key = `${PREFIX}/v2/docker/single/manifests/v1`;
    const body = Buffer.from('{"wrong":true}');
    const { createHash } = await import('node:crypto');
    await client.put(key, { kind: 'buffer', data: body }, createHash('sha256').update(body).digest('hex'), { 'content-type': 'application/octet-stream' });
    const r = await deployCli([]);
    expect(r.code, r.err).toBe(0);
    expect(r.out.split('\n').filter((l) => l.startsWith('upload '))).toEqual([
      `upload s3://${BUCKET}/${key} (${fx['docker/single:v1']!.size} bytes, application/vnd.docker.distribution.manifest.v2+json)`,
    ]);
  });

  it('GET /v2/ answers 200 {} at the root-path front', async () => {
    const res = await fetch(`http://${proxyHost}/v2/`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({});
    const m = await fetch(`http://${proxyHost}/v2/docker/list/manifests/2.0`, { method: 'HEAD' });
    expect(m.headers.get('content-type')).toBe('application/vnd.docker.distribution.manifest.list.v2+json');
    expect(m.headers.get('docker-content-digest')).toBeNull();
  });

  it('skopeo pulls through the root-path front', async () => {
    requireTool('skopeo');
    const multi = fx['oci/multi:1.0']!;
    const arm = multi.platforms.find((p) => p.platform.startsWith('linux/arm64'))!;
    const r = await skopeoCopy(`${proxyHost}/oci/multi:1.0`, { os: 'linux', arch: 'arm64' });
    expect(r.manifestDigest).toBe(arm.digest);
    const all = await skopeoCopy(`${proxyHost}/docker/list:2.0`, { all: true });
    expect(all.manifestDigest).toBe(fx['docker/list:2.0']!.digest);
    const single = await skopeoCopy(`${proxyHost}/docker/single:v1`);
    expect(single.manifestDigest).toBe(fx['docker/single:v1']!.digest);
  });

  it('containerd pulls through the root-path front', async () => {
    requireTool('containerd');
    requireTool('ctr');
    if (containerdError) throw containerdError;
    const r = await ctrPull(containerd.address, `${proxyHost}/oci/multi:1.0`, { platform: 'linux/amd64' });
    expect(r.digest).toBe(fx['oci/multi:1.0']!.digest);
    expect(r.unpacked).toContain('linux/amd64');
    const h = await ctrPull(containerd.address, `${proxyHost}/hello:latest`, { platform: 'linux/arm64' });
    expect(h.unpacked).toContain('linux/arm64');
  });

  it('--delete removes what the build no longer publishes under <prefix>/v2/, and nothing else', async () => {
    const put = (key: string) => client.put(key, { kind: 'buffer', data: Buffer.from('x') }, '2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881', {});
    const stale = [`${PREFIX}/v2/gone/manifests/old`, `${PREFIX}/v2/gone/blobs/sha256:${'0'.repeat(64)}`, `${PREFIX}/v2/gone/tags/list`];
    const kept = [`${PREFIX}/index.html`, `other/v2/gone/manifests/old`];
    for (const k of [...stale, ...kept]) await put(k);

    const plain = await deployCli([]);
    expect(plain.code, plain.err).toBe(0);
    for (const k of stale) expect(await client.head(k), k).toBeDefined();

    const dry = await deployCli(['--delete', '--dry-run']);
    expect(dry.code, dry.err).toBe(0);
    expect(dry.out).toMatch(/would delete 3/u);
    for (const k of stale) expect(await client.head(k), k).toBeDefined();

    const del = await deployCli(['--delete']);
    expect(del.code, del.err).toBe(0);
    const deleted = del.out.split('\n').filter((l) => l.startsWith('delete '));
    expect(deleted.map((l) => l.replace(`delete s3://${BUCKET}/`, '')).sort()).toEqual([...stale].sort());
    // Tags before manifests before blobs.
    expect(deleted.at(-1)).toMatch(/\/blobs\//u);
    for (const k of stale) expect(await client.head(k), k).toBeUndefined();
    for (const k of kept) expect(await client.head(k), k).toBeDefined();
    // What the build publishes is all still there.
    const uploads = await planUploads(site, `${PREFIX}/`);
    for (const u of uploads) expect(await client.head(u.key), u.key).toBeDefined();
  });

  it('--acl is sent, and adding it later re-uploads (a HEAD cannot show ACLs)', async () => {
    const r = await deployCli(['--acl', 'public-read']);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/uploaded [1-9]\d* objects .* 0 already up to date/u);
    expect((await client.head(`${PREFIX}/v2/_catalog`))?.meta['acl']).toBe('public-read');
    const again = await deployCli(['--acl', 'public-read']);
    expect(again.out).toMatch(/uploaded 0 objects/u);
  });

  it('a store refusing the `v2/` key (MinIO) gets a warning, not a failed deploy', async () => {
    // Answers like MinIO does for a non-empty object whose key ends in `/`; forwards the rest.
    const minioish = await startFront((req, res) => {
      if (req.method !== 'PUT' || !req.url?.endsWith('/v2/')) return false;
      res.writeHead(400, { 'content-type': 'application/xml' }).end('<Error><Code>XMinioInvalidObjectName</Code><Message>Object name contains a trailing slash.</Message></Error>');
      return true;
    });
    try {
      let out = '';
      const io: CliIO = { stdout: (t) => (out += t), stderr: (t) => (out += t), untilStopped: () => new Promise(() => {}) };
      const saved = { ...process.env };
      Object.assign(process.env, { AWS_ACCESS_KEY_ID: ACCESS_KEY, AWS_SECRET_ACCESS_KEY: SECRET });
      const code = await main(['deploy', `s3://${BUCKET}/minioish`, site, '--endpoint-url', minioish.endpoint], io).finally(() => {
        for (const k of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY']) {
          if (saved[k] === undefined) delete process.env[k];
          else process.env[k] = saved[k];
        }
      });
      allOutput.push(out);
      expect(code, out).toBe(0);
      expect(out).toMatch(/warning: the store refused minioish\/v2\/ .*XMinioInvalidObjectName/u);
      expect(await client.head('minioish/v2/index.html')).toBeDefined();
    } finally {
      await minioish.close();
    }
  });

  it('never shows credentials, even when the store rejects them', async () => {
    // s3rver checks the access key id (not V4 signatures): an unknown one is rejected.
    const bad = await deployCli([], { AWS_ACCESS_KEY_ID: 'AKIDUNKNOWNKEY' });
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/403/u);
    expect(bad.err).toMatch(/hint:/u);
    // A dry run lists first: refused credentials fail there, named, before anything else.
    const dry = await deployCli(['--dry-run'], { AWS_ACCESS_KEY_ID: 'AKIDUNKNOWNKEY' });
    expect(dry.code).toBe(1);
    expect(dry.err).toMatch(/LIST s3:\/\/registry\/mirror\/v2\/: 403 InvalidAccessKeyId/u);
    const text = allOutput.join('\n');
    expect(text.length).toBeGreaterThan(0);
    for (const secret of [SECRET, SESSION]) expect(text).not.toContain(secret);
  });

  it('refuses a tampered paths file, a symlink out of the build and a prefix with `..`, uploading nothing', async () => {
    // A paths file naming `../../x`.
    const tampered = path.join(project, 'tampered-site');
    cpSync(site, tampered, { recursive: true });
    const pf = path.join(tampered, 'v2', '.registrish-paths.json');
    const parsed = JSON.parse(readFileSync(pf, 'utf8')) as { paths: { file: string; urlPath: string }[] };
    parsed.paths.push({ ...parsed.paths[0]!, file: '../../x', urlPath: '/../../x' });
    writeFileSync(pf, JSON.stringify(parsed));
    const r1 = await deployCli([], {}, { target: `s3://${BUCKET}/tampered`, dir: tampered });
    expect(r1.code).toBe(1);
    expect(r1.err).toMatch(/registrish-paths\.json: entry \d+ \(file "\.\.\/\.\.\/x"\)/u);

    // A blob replaced by a symlink to a file outside the build.
    const linked = path.join(project, 'linked-site');
    cpSync(site, linked, { recursive: true });
    const blob = (await readPathsFile(linked)).find((p) => p.kind === 'blob')!;
    const outside = path.join(project, 'outside-secret');
    writeFileSync(outside, Buffer.alloc(blob.size, 'x'));
    const blobFile = path.join(linked, ...blob.file.split('/'));
    rmSync(blobFile);
    symlinkSync(outside, blobFile);
    const r2 = await deployCli([], {}, { target: `s3://${BUCKET}/linked`, dir: linked });
    expect(r2.code).toBe(1);
    expect(r2.err).toMatch(/not a regular file/u);

    // Prefixes escaping the bucket path.
    for (const target of [`s3://${BUCKET}/../escaped`, `s3://${BUCKET}/a/%2e%2e/b`, `s3://${BUCKET}/a//b`, `s3://${BUCKET}/./a`]) {
      const r = await deployCli([], {}, { target });
      expect(r.code, target).toBe(2);
      expect(r.err, target).toMatch(/empty, "\." or "\.\." segments/u);
    }
    expect(await client.list('tampered/')).toEqual([]);
    expect(await client.list('linked/')).toEqual([]);
    expect(await client.list('escaped/')).toEqual([]);
    expect(await client.list('a/')).toEqual([]);
  });

  it('never shows the secret key nor the session token when a store echoes them back', async () => {
    // Answers every request 403 SignatureDoesNotMatch, echoing the Authorization header and the token.
    const stub = http.createServer((req, res) => {
      req.resume();
      const echo = `${String(req.headers['authorization'])} token=${String(req.headers['x-amz-security-token'])} secret=${SECRET}`;
      res
        .writeHead(403, { 'content-type': 'application/xml' })
        .end(`<Error><Code>SignatureDoesNotMatch</Code><Message>${echo}</Message><StringToSign>${echo}</StringToSign></Error>`);
    });
    await new Promise<void>((r) => stub.listen(0, '127.0.0.1', r));
    const endpoint = `http://127.0.0.1:${(stub.address() as { port: number }).port}`;
    try {
      const r = await deployCli([], {}, { target: `s3://${BUCKET}/stub`, endpoint });
      expect(r.code).toBe(1);
      expect(r.err).toMatch(/SignatureDoesNotMatch/u);
      for (const secret of [SECRET, SESSION]) {
        expect(r.out).not.toContain(secret);
        expect(r.err).not.toContain(secret);
      }
      // The errors thrown by the client (message and hint) carry neither either.
      const direct = bucketClient(endpoint, agent, { credentials: { accessKeyId: ACCESS_KEY, secretAccessKey: SECRET, sessionToken: SESSION } });
      const err = await direct.put('stub/obj', { kind: 'buffer', data: Buffer.from('x') }, 'a'.repeat(64), {}).then(
        () => undefined,
        (e: unknown) => e as Error & { hint?: string },
      );
      expect(err).toBeDefined();
      const text = `${err!.message}\n${err!.hint ?? ''}\n${err!.stack ?? ''}`;
      expect(text).toMatch(/SignatureDoesNotMatch/u);
      for (const secret of [SECRET, SESSION]) expect(text).not.toContain(secret);
    } finally {
      await new Promise((r) => stub.close(r));
    }
  });
});

describe('the cost of a redeploy', () => {
  const COST = 'cost';
  const recordKey = `${COST}/v2/.registrish-deploy.json`;
  const target = `s3://${BUCKET}/${COST}`;
  let costSite: string;
  let front: Front;
  /** Keys the build publishes (`v2/` included). */
  let objects: number;
  /** The record after the first deploy: stale once a tag moved. */
  let staleRecord: string;
  /** Keys the tag move changed. */
  let moved: string[];
  /** Bodies of the record PUTs the front saw, in order (reset by measured()). */
  const recordPuts: string[] = [];
  /** The store's keys of `PUT`s and `DELETE`s the front saw, in order, with the verb: `PUT cost/v2/…`. */
  const changes = () =>
    front.seen
      .filter((l) => /^(PUT|DELETE) /u.test(l))
      .map((l) => l.replace(/^(\S+) \/[^/]+\/([^?]*).*$/u, (_m, verb: string, key: string) => `${verb} ${decodeURIComponent(key)}`));

  const image = (text: string) => buildManifest({ format: 'oci', platform: { os: 'linux', architecture: 'amd64' }, layers: [makeLayer([{ name: 'f.txt', content: text }])] });
  const build = () =>
    buildSite('cost-images.json', { images: [{ source: `${up.host}/cost/app`, tags: ['1.0', '2.0'] }, `${up.host}/cost/base:1.0`] }, costSite, 'cost-cache');
  const put = (key: string, data: Buffer, headers: Record<string, string>) => client.put(key, { kind: 'buffer', data }, createHash('sha256').update(data).digest('hex'), headers);

  /** Key → what the build wants stored there (bytes and type). */
  async function wanted(): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    for (const p of await readPathsFile(costSite)) {
      const bytes = readFileSync(path.join(costSite, p.file));
      const v = `${createHash('sha256').update(bytes).digest('hex')} ${p.contentType} ${bytes.length}`;
      out.set(`${COST}/${p.file}`, v);
      if (p.kind === 'base') out.set(`${COST}/v2/`, v);
    }
    return out;
  }

  /** A deploy through the counting front: what it printed must be what the store was sent. */
  async function measured(args: string[]): Promise<{ out: string; err: string; seen: Counts; uploaded: string[]; deleted: string[] }> {
    front.reset();
    recordPuts.length = 0;
    const r = await deployCli(args, {}, { target, dir: costSite, endpoint: front.endpoint });
    expect(r.code, r.err).toBe(0);
    const seen = front.counts();
    expect(printedCounts(r.out)).toEqual(seen);
    const keys = (verb: string) =>
      r.out
        .split('\n')
        .filter((l) => l.startsWith(`${verb} s3://${BUCKET}/`))
        .map((l) => l.slice(`${verb} s3://${BUCKET}/`.length).replace(/ \(.*$/u, ''))
        .sort();
    return { ...r, seen, uploaded: keys('upload'), deleted: keys('delete') };
  }
  const only = (c: Partial<Counts>): Counts => ({ list: 0, head: 0, get: 0, put: 0, delete: 0, multipart: 0, ...c });

  beforeAll(async () => {
    costSite = path.join(project, 'cost-site');
    await pushImage(up.url, 'cost/app', '1.0', image('app 1.0'));
    await pushImage(up.url, 'cost/app', '2.0', image('app 2.0'));
    await pushImage(up.url, 'cost/base', '1.0', image('base 1.0'));
    await build();
    objects = (await wanted()).size;
    // Forwards everything, keeping the bodies of the record's PUTs.
    front = await startFront((req) => {
      if (req.method === 'PUT' && req.url === `/${BUCKET}/${recordKey}`) {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => recordPuts.push(Buffer.concat(chunks).toString('utf8')));
      }
      return false;
    });
  });
  afterAll(async () => {
    await front?.close();
  });

  it('a first deploy: one listing page, every object, then the record, last', async () => {
    const r = await measured([]);
    expect(r.uploaded).toHaveLength(objects);
    // Nothing listed yet, so no record to read; one page holds up to 1000 keys.
    expect(r.seen).toEqual(only({ list: 1, put: objects + 1 }));
    expect(front.seen.at(-1)).toBe(`PUT /${BUCKET}/${recordKey}`);
    const record = parseRecord((await client.get(recordKey))!)!;
    expect(record.size).toBe(objects);
    // Each entry holds the ETag the listing shows.
    const listed = await client.listObjects(`${COST}/v2/`);
    expect(listed).toHaveLength(objects + 1);
    for (const o of listed.filter((x) => x.key !== recordKey)) expect(record.get(o.key.slice(COST.length + 1))?.etag, o.key).toBe(o.etag);
  });

  it('nothing changed: one listing and one GET of the record, nothing else', async () => {
    staleRecord = (await client.get(recordKey))!;
    const r = await measured([]);
    expect(r.seen).toEqual(only({ list: Math.ceil((objects + 1) / 1000), get: 1 }));
    // The record is read, never replaced nor rewritten: no in-progress record when nothing changes.
    expect(front.seen.filter((l) => l.includes('.registrish-deploy.json'))).toEqual([`GET /${BUCKET}/${recordKey}`]);
    expect(r.uploaded).toEqual([]);
    expect(r.out).toMatch(new RegExp(`uploaded 0 objects \\(0\\.0 MiB\\), ${objects} already up to date`, 'u'));
  });

  it('one tag moved: only what changed is uploaded, with no HEAD, and --delete reuses the listing', async () => {
    const before = await wanted();
    await pushImage(up.url, 'cost/app', '2.0', image('app 2.0, rebuilt'));
    await build();
    const after = await wanted();
    moved = [...after].filter(([k, v]) => before.get(k) !== v).map(([k]) => k).sort();
    const gone = [...before.keys()].filter((k) => !after.has(k)).sort();
    // The tag, its manifest by digest, its layer and its config; the tag list and catalog are unchanged.
    expect(moved).toHaveLength(4);
    expect(moved).toContain(`${COST}/v2/cost/app/manifests/2.0`);
    expect(gone).toHaveLength(3);

    const r = await measured(['--delete']);
    expect(r.uploaded).toEqual(moved);
    expect(r.deleted).toEqual(gone);
    // The changed objects, the deletes, and two PUTs of the record: in progress, then whole.
    expect(r.seen).toEqual(only({ list: 1, get: 1, put: moved.length + 2, delete: gone.length }));
    const record = (await client.get(recordKey))!;
    expect(recordPuts).toHaveLength(2);
    expect(recordPuts[1]).toBe(record);
    // The in-progress record: the last one without the entries of what this deploy changes or
    // deletes, plus what it had stored by then (the new manifest, layer and config, before the tag).
    const old = parseRecord(staleRecord)!;
    const whole = parseRecord(record)!;
    const rel = (key: string) => key.slice(COST.length + 1);
    const tag = `${COST}/v2/cost/app/manifests/2.0`;
    const left = new Map([...old].filter(([k]) => !moved.includes(`${COST}/${k}`) && !gone.includes(`${COST}/${k}`)));
    expect(left.size).toBe(old.size - 1 - gone.length); // of what changed, the old record named only the tag
    for (const k of moved.filter((m) => m !== tag)) left.set(rel(k), whole.get(rel(k))!);
    expect(recordPuts[0]).toBe(serializeRecord(left, IN_PROGRESS_ABOUT));
    // Bytes sent: the changed objects and the record twice, nothing more.
    const sizes = moved.map((k) => Number(after.get(k)!.split(' ')[2]));
    expect(front.bytesIn).toBe(sizes.reduce((a, b) => a + b, 0) + Buffer.byteLength(recordPuts[0]!) + Buffer.byteLength(record));
    objects = after.size;
  });

  it('a changing deploy replaces the record by the in-progress one before its first change to an object the record names', async () => {
    // The order of the last deploy (one tag moved, --delete), as the store saw it.
    const named = new Set([...parseRecord(staleRecord)!.keys()].map((rel) => `${COST}/${rel}`));
    const seen = changes();
    const marker = seen.indexOf(`PUT ${recordKey}`);
    const firstNamed = seen.findIndex((c) => named.has(c.replace(/^\S+ /u, '')));
    expect(marker).toBeGreaterThanOrEqual(0);
    expect(firstNamed).toBeGreaterThan(marker);
    // Before it: only objects the record did not name (the new manifest, layer and config); after
    // it, the moved tag and the deletes; the whole record last.
    expect(seen.slice(0, marker).every((c) => c.startsWith('PUT ') && !named.has(c.slice(4)))).toBe(true);
    expect(seen.slice(0, marker)).toHaveLength(moved.length - 1);
    expect(seen.at(-1)).toBe(`PUT ${recordKey}`);
    expect(seen.filter((c) => c === `PUT ${recordKey}`)).toHaveLength(2);
  });

  it('listing pages: n keys cost ceil(n / page size) LISTs', async () => {
    const listed = (await client.listObjects(`${COST}/v2/`)).length;
    const pageSize = listed % 7 === 0 ? 6 : 7;
    front.reset();
    const summary = await deploy({
      dir: costSite,
      target: { bucket: BUCKET, prefix: `${COST}/` },
      endpoint: new URL(front.endpoint),
      region: 'us-east-1',
      credentials: { accessKeyId: ACCESS_KEY, secretAccessKey: SECRET },
      pathStyle: true,
      delete: false,
      dryRun: false,
      concurrency: 4,
      log: () => {},
      listPageSize: pageSize,
    });
    expect(front.counts()).toEqual(only({ list: Math.ceil(listed / pageSize), get: 1 }));
    expect(summary.requests).toEqual(front.counts());
    expect(front.seen.filter((l) => l.includes('continuation-token='))).toHaveLength(Math.ceil(listed / pageSize) - 1);
  });

  it('no record: each listed object is checked by one HEAD, none uploaded, and the record is written again', async () => {
    await client.delete(recordKey);
    const r = await measured([]);
    expect(r.uploaded).toEqual([]);
    expect(r.seen).toEqual(only({ list: 1, head: objects, put: 1 }));
    // No record to replace first: the one PUT is the whole record.
    expect(parseRecord(recordPuts[0]!)?.size).toBe(objects);
    expect((await measured([])).seen).toEqual(only({ list: 1, get: 1 }));
  });

  it('a stale record (from before the tag moved): only what changed since is checked by HEAD', async () => {
    await put(recordKey, Buffer.from(staleRecord), { 'content-type': 'application/json' });
    const r = await measured([]);
    expect(r.uploaded).toEqual([]);
    // Nothing changed in the bucket: the record is written again (whole) without an in-progress one first.
    expect(r.seen).toEqual(only({ list: 1, get: 1, head: moved.length, put: 1 }));
    expect(changes()).toEqual([`PUT ${recordKey}`]);
    expect(parseRecord(recordPuts[0]!)?.size).toBe(objects);
  });

  it('a record that is not ours is ignored with a warning (one HEAD per object), and replaced before a change all the same', async () => {
    const foreign = Buffer.from('{"version":1,"headers":[],"objects":{"v2/x":["e",1,0,1]}}');
    await put(recordKey, foreign, { 'content-type': 'application/json' });
    const r = await measured([]);
    expect(r.out).toMatch(/warning: the deploy record s3:\/\/registry\/cost\/v2\/\.registrish-deploy\.json is not one registrish writes/u);
    expect(r.uploaded).toEqual([]);
    expect(r.seen).toEqual(only({ list: 1, get: 1, head: objects, put: 1 }));

    // It could name anything: a deploy that changes an object replaces it first all the same.
    await put(recordKey, foreign, { 'content-type': 'application/json' });
    const list = `${COST}/v2/cost/base/tags/list`;
    await put(list, Buffer.from('{"name":"cost/base","tags":[]}'), { 'content-type': 'application/json' });
    const r2 = await measured([]);
    expect(r2.uploaded).toEqual([list]);
    expect(r2.seen).toEqual(only({ list: 1, get: 1, head: objects, put: 3 }));
    expect(changes()).toEqual([`PUT ${recordKey}`, `PUT ${list}`, `PUT ${recordKey}`]);
    expect((JSON.parse(recordPuts[0]!) as { about: string }).about).toBe(IN_PROGRESS_ABOUT);
    expect(parseRecord(recordPuts[0]!)?.has(list.slice(COST.length + 1))).toBe(false);
  });

  it('an object rewritten behind our back is uploaded again: other bytes, or the same bytes with another Content-Type', async () => {
    const list = `${COST}/v2/cost/app/tags/list`;
    await put(list, Buffer.from('{"name":"cost/app","tags":[]}'), { 'content-type': 'application/json' });
    const r1 = await measured([]);
    expect(r1.uploaded).toEqual([list]);
    // The record names the list: in-progress record, the list, then the whole record again.
    expect(r1.seen).toEqual(only({ list: 1, get: 1, head: 1, put: 3 }));
    expect(changes()).toEqual([`PUT ${recordKey}`, `PUT ${list}`, `PUT ${recordKey}`]);

    // Same bytes, other Content-Type: the ETag (an MD5 of the bytes) stays, LastModified moves.
    const tag = `${COST}/v2/cost/app/manifests/2.0`;
    const find = async () => (await client.listObjects(tag)).find((o) => o.key === tag)!;
    const was = await find();
    await sleep(1100); // LastModified counts whole seconds
    const bytes = readFileSync(path.join(costSite, 'v2/cost/app/manifests/2.0'));
    await put(tag, bytes, { 'content-type': 'application/octet-stream', 'cache-control': MUTABLE_CACHE, 'x-amz-meta-digest': `sha256:${createHash('sha256').update(bytes).digest('hex')}` });
    const now = await find();
    expect(now.etag).toBe(was.etag);
    expect(now.lastModified).toBeGreaterThan(was.lastModified);
    const r2 = await measured([]);
    expect(r2.uploaded).toEqual([tag]);
    expect(r2.seen).toEqual(only({ list: 1, get: 1, head: 1, put: 3 }));
    expect((await client.head(tag))?.contentType).toBe('application/vnd.oci.image.manifest.v1+json');
  });

  it('a changed --acl uploads every object again, without a HEAD; the same --acl again, nothing', async () => {
    const acl = await measured(['--acl', 'public-read']);
    expect(acl.uploaded).toHaveLength(objects);
    // Every object, and the record twice: first in progress (naming none of them), then whole.
    expect(acl.seen).toEqual(only({ list: 1, get: 1, put: objects + 2 }));
    expect(parseRecord(recordPuts[0]!)?.size).toBe(0);
    expect((await client.head(`${COST}/v2/_catalog`))?.meta['acl']).toBe('public-read');
    expect((await measured(['--acl', 'public-read'])).seen).toEqual(only({ list: 1, get: 1 }));
    const none = await measured([]);
    expect(none.uploaded).toHaveLength(objects);
    expect(none.seen).toEqual(only({ list: 1, get: 1, put: objects + 2 }));
  });

  it('an object missing from the listing is uploaded without a HEAD; --dry-run says so and writes nothing', async () => {
    const blob = [...(await wanted()).keys()].find((k) => k.includes('/blobs/'))!;
    await client.delete(blob);
    const dry = await measured(['--dry-run']);
    expect(dry.out).toMatch(/dry run: would upload 1 objects/u);
    expect(dry.seen).toEqual(only({ list: 1, get: 1 }));
    const r = await measured([]);
    expect(r.uploaded).toEqual([blob]);
    // The record still names the blob: in-progress record (without it) first, the whole record last.
    expect(r.seen).toEqual(only({ list: 1, get: 1, put: 3 }));
    expect(changes()).toEqual([`PUT ${recordKey}`, `PUT ${blob}`, `PUT ${recordKey}`]);
    expect(parseRecord(recordPuts[0]!)?.has(blob.slice(COST.length + 1))).toBe(false);
    expect(parseRecord(recordPuts[0]!)?.size).toBe(objects - 1);
  });

  it('without s3:ListBucket (listing refused): one HEAD per object, as before; --delete refuses', async () => {
    let denyHeads = false;
    const denied = (res: http.ServerResponse) =>
      res.writeHead(403, { 'content-type': 'application/xml' }).end('<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>');
    const denying = await startFront((req, res) => {
      if (req.method === 'GET' && req.url?.includes('list-type=2')) return denied(res), true;
      if (denyHeads && req.method === 'HEAD') return res.writeHead(403).end(), true;
      return false;
    });
    try {
      const r = await deployCli([], {}, { target, dir: costSite, endpoint: denying.endpoint });
      expect(r.code, r.err).toBe(0);
      expect(r.out).toMatch(/warning: listing s3:\/\/registry\/cost\/v2\/ was refused/u);
      expect(r.out).toMatch(/uploaded 0 objects/u);
      expect(printedCounts(r.out)).toEqual(denying.counts());
      expect(denying.counts()).toEqual(only({ list: 1, head: objects, put: 1 }));

      // A dry run cannot tell a missing object from refused credentials by a HEAD's 403: it says so.
      denyHeads = true;
      const dry = await deployCli(['--dry-run'], {}, { target, dir: costSite, endpoint: denying.endpoint });
      expect(dry.code, dry.err).toBe(0);
      expect(dry.out).toMatch(new RegExp(`warning: ${objects} objects answered 403`, 'u'));

      denying.reset();
      const del = await deployCli(['--delete'], {}, { target, dir: costSite, endpoint: denying.endpoint });
      expect(del.code).toBe(1);
      expect(del.err).toMatch(/LIST s3:\/\/registry\/cost\/v2\/: 403 AccessDenied[\s\S]*hint: .*s3:ListBucket/u);
      expect(denying.counts()).toEqual(only({ list: 1 }));
    } finally {
      await denying.close();
    }
  });
});

describe('S3 client', () => {
  /** `bytes` random bytes in a file of the project folder, with their sha256 (hex). */
  const randomFile = (name: string, bytes: number) => {
    const data = randomBytes(bytes);
    const file = path.join(project, name);
    writeFileSync(file, data);
    return { data, file, sha: createHash('sha256').update(data).digest('hex') };
  };
  /** One that uploads anything over 5 MiB in 5 MiB parts, recording every request it sends in `sent` (to see the parts). */
  const partedClient = (sent: string[]) =>
    bucketClient(
      s3Url,
      agent.compose((dispatch) => (opts, handler) => {
        sent.push(`${opts.method} ${opts.path}`);
        return dispatch(opts, handler);
      }),
      { multipartThreshold: 5 * 1024 * 1024, partSize: 5 * 1024 * 1024 },
    );

  it('streams a large file from disk and refuses one over 5 GiB before sending anything', async () => {
    const { data, file, sha } = randomFile('big.bin', 3 * 1024 * 1024 + 17);
    await client.put('big/object', { kind: 'file', path: file, size: data.length }, sha, { 'content-type': 'application/octet-stream' });
    const res = await fetch(`${s3Url}/${BUCKET}/big/object`);
    expect(Buffer.from(await res.arrayBuffer()).equals(data)).toBe(true);
    await expect(client.put('big/huge', { kind: 'file', path: '/nonexistent', size: 6 * 1024 ** 3 }, sha, {})).rejects.toThrow(/5 GiB/u);
  });

  it('uploads a large file in parts (multipart), with its metadata', async () => {
    const { data, file, sha } = randomFile('parts.bin', 12 * 1024 * 1024 + 5);
    const sent: string[] = [];
    const parted = partedClient(sent);
    const headers = { 'content-type': 'application/octet-stream', 'cache-control': IMMUTABLE_CACHE, 'x-amz-meta-digest': `sha256:${sha}` };
    const stored = await parted.putFile('parts/blob', file, data.length, sha, headers);
    // What the deploy record keeps: the ETag CompleteMultipartUpload answered is the one listings show.
    expect(stored.etag).toMatch(/^[0-9a-f-]{32,}$/u);
    expect(stored.etag).toBe((await parted.listObjects('parts/blob'))[0]?.etag);
    expect(stored.date).toBeGreaterThan(Date.now() - 60_000);
    const info = await parted.head('parts/blob');
    expect(info?.size).toBe(data.length);
    expect(info?.meta['digest']).toBe(`sha256:${sha}`);
    expect(info?.cacheControl).toBe(IMMUTABLE_CACHE);
    expect(sent.filter((r) => /^PUT .*partNumber=\d+&uploadId=/u.test(r))).toHaveLength(3);
    expect(sent.filter((r) => r.startsWith('POST '))).toHaveLength(2);
    expect(parted.requests).toEqual({ list: 1, head: 1, get: 0, put: 0, delete: 0, multipart: 5 });
    const res = await fetch(`${s3Url}/${BUCKET}/parts/blob`);
    expect(createHash('sha256').update(Buffer.from(await res.arrayBuffer())).digest('hex')).toBe(sha);
  });

  it('aborts a multipart upload whose whole file does not have the expected digest', async () => {
    const { data, file } = randomFile('parts-wrong.bin', 11 * 1024 * 1024);
    const wrong = createHash('sha256').update('something else').digest('hex');
    const sent: string[] = [];
    const parted = partedClient(sent);
    const headers = { 'content-type': 'application/octet-stream', 'x-amz-meta-digest': `sha256:${wrong}` };
    await expect(parted.putFile('parts/wrong', file, data.length, wrong, headers)).rejects.toThrow(/no longer has the expected sha256.*aborted/u);
    // Created, parts sent, then aborted (DELETE ?uploadId), never completed.
    expect(sent.filter((r) => r.startsWith('POST '))).toHaveLength(1);
    expect(sent.filter((r) => /^DELETE .*uploadId=/u.test(r))).toHaveLength(1);
    expect(await parted.head('parts/wrong')).toBeUndefined();
  });

  it('retries 503 answers and connection resets', async () => {
    const seen = new Map<string, number>();
    // Fails the first attempt of every request (503, or a dropped connection for PUTs), then forwards.
    const flaky = await startFront((req, res) => {
      const id = `${req.method} ${req.url}`;
      const n = (seen.get(id) ?? 0) + 1;
      seen.set(id, n);
      if (n > 1) return false;
      if (req.method === 'PUT') req.socket.destroy();
      else res.writeHead(503).end();
      return true;
    });
    const retrying = bucketClient(flaky.endpoint, agent, { retryBaseMs: 5 });
    try {
      const body = Buffer.from('retried');
      await retrying.put('retry/obj', { kind: 'buffer', data: body }, createHash('sha256').update(body).digest('hex'), { 'content-type': 'text/plain' });
      expect((await retrying.head('retry/obj'))?.contentType).toBe('text/plain');
      expect(await retrying.list('retry/')).toEqual(['retry/obj']);
      expect([...seen.values()].every((n) => n === 2)).toBe(true);
    } finally {
      await flaky.close();
    }
  });
});

describe('planUploads', () => {
  it('fails clearly when the build left no paths file', async () => {
    const empty = path.join(project, 'empty');
    mkdirSync(empty, { recursive: true });
    await expect(planUploads(empty, '')).rejects.toThrow(/registrish-paths\.json is missing/u);
  });
});
