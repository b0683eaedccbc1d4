import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fetch as undiciFetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildRegistry, type BuildSummary } from '../src/build.ts';
import { cloudflare, CLOUDFLARE_MAX_DYNAMIC_REDIRECTS, renderCloudflareRedirects } from '../src/hosts/cloudflare.ts';
import { checkHosts } from '../src/hosts/host.ts';
import type { PublishedPath } from '../src/model/published-path.ts';
import { startTestStore, type TestStore } from './harness/blob-store.ts';
import { dockerRemoveAllImages, startContainerd, startDockerd, type Containerd, type Dockerd } from './harness/clients.ts';
import { filesUnder } from './harness/fs-walk.ts';
import { CLIENTS, expectPull, type PullCase } from './harness/host-site.ts';
import { buildManifest, makeLayer, pushImage, type BuiltImage } from './harness/images.ts';
import { startNetlifySite, type NetlifySite } from './harness/netlify-site.ts';
import { startPagesDev, type PagesDev } from './harness/pages-dev.ts';
import { hasCommand, makeTempDir, removeDir, run } from './harness/procs.ts';
import { startRegistry, type UpstreamRegistry } from './harness/upstream.ts';

// Blobs elsewhere on Netlify and Cloudflare Pages (issue 20): builds with `hosts: ['netlify']` and
// `hosts: ['cloudflare']` and a blob store (s3rver behind a public front), served by Netlify's own
// engines (netlify-redirector reads the `_redirects`) and by `wrangler pages dev`; the four real
// clients pull an image whose 26 MiB layer (over Pages' 25 MiB) is shared with a second repository,
// through the 307 to the store.

const PREFIX = 'hosts/';
const BIG = 26 * 1024 * 1024 + 77;

let project: string;
let runDir: string;
let store: TestStore;
let up: UpstreamRegistry;
let big: BuiltImage;
let containerd: Containerd;
let dockerd: Dockerd;
let netlifyBuild: BuildSummary;
let cloudflareBuild: BuildSummary;
let netlify: NetlifySite;
let pages: PagesDev;
let bigCase: PullCase;
/** The store's public front over HTTPS (self-signed): Pages redirects only to https:// targets. */
let tlsFront: https.Server;
let tlsUrl: string;

const netlifyOut = () => path.join(project, 'netlify-site');
const cloudflareOut = () => path.join(project, 'cloudflare-site');

/** An HTTPS front (self-signed, on loopback) forwarding GET and HEAD to the store's public front. */
async function startTlsFront(): Promise<void> {
  const key = path.join(runDir, 'front-key.pem');
  const cert = path.join(runDir, 'front-cert.pem');
  await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert]);
  const target = new URL(store.publicUrl);
  tlsFront = https.createServer({ key: fs.readFileSync(key), cert: fs.readFileSync(cert) }, (req, res) => {
    const headers: http.OutgoingHttpHeaders = {};
    for (const name of ['range', 'if-none-match']) if (req.headers[name]) headers[name] = req.headers[name];
    const upstream = http.request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    upstream.on('error', () => (res.headersSent ? res.destroy() : res.writeHead(502).end()));
    upstream.end();
  });
  await new Promise<void>((resolve) => tlsFront.listen(0, '127.0.0.1', resolve));
  tlsUrl = `https://127.0.0.1:${(tlsFront.address() as { port: number }).port}/`;
}

async function build(host: string, out: string, url = store.publicUrl): Promise<BuildSummary> {
  const images = path.join(project, `images-${host}.json`);
  await writeFile(images, JSON.stringify({ images: [`${up.host}/big/app:1.0`, `${up.host}/big/shared:1.0`] }));
  return buildRegistry({
    images,
    outputDir: out,
    cacheDir: path.join(project, '.cache', 'registrish'),
    hosts: [host],
    imageConcurrency: 2,
    blobConcurrency: 4,
    linkMode: 'hardlink',
    logger: { info: () => {}, warn: () => {} },
    env: { ...store.env, DOCKER_CONFIG: path.join(project, 'no-docker-config') },
    blobs: { url, store: { bucket: store.bucket, prefix: PREFIX }, endpoint: store.endpoint },
    storeRetryBaseMs: 5,
  });
}

beforeAll(async () => {
  for (const c of ['skopeo', 'podman', 'ctr', 'containerd', 'dockerd', 'docker-registry']) {
    if (!hasCommand(c)) throw new Error(`${c} is not installed: run scripts/install-test-deps.sh as root`);
  }
  project = makeTempDir('rsh-blobhosts-');
  fs.chmodSync(project, 0o755);
  runDir = makeTempDir('rsh-blobhostsrun-');
  const daemons = (async () => {
    containerd = await startContainerd();
    dockerd = await startDockerd(containerd.address);
  })();
  store = await startTestStore(project);
  up = await startRegistry({ storageDir: path.join(project, 'upstream') });
  // Incompressible, so the gzipped layer stays over 25 MiB.
  const large = makeLayer([{ name: 'large.bin', content: randomBytes(BIG) }]);
  const small = makeLayer([{ name: 'hello', content: 'hello from a blob store behind a Pages site\n' }]);
  big = buildManifest({ format: 'oci', platform: { os: 'linux', architecture: 'amd64' }, layers: [large, small] });
  const shared = buildManifest({ format: 'docker', platform: { os: 'linux', architecture: 'amd64' }, layers: [large, small], cmd: ['/other'] });
  await pushImage(up.url, 'big/app', '1.0', big);
  await pushImage(up.url, 'big/shared', '1.0', shared);
  await startTlsFront();
  bigCase = { kind: '26 MiB layer', ref: 'big/app:1.0', top: () => big.digest, instance: () => big.digest };
  // A site's own _redirects rule is kept beside the registry's (Cloudflare).
  await mkdir(cloudflareOut(), { recursive: true });
  await writeFile(path.join(cloudflareOut(), '_redirects'), '/old-page  /  301\n');
  netlifyBuild = await build('netlify', netlifyOut());
  // The 26 MiB layer is in the store, not on the site: Pages' 25 MiB limit does not fail this build.
  // Pages refuses an http:// target, loopback included: the same store behind HTTPS.
  await expect(build('cloudflare', path.join(project, 'cloudflare-http'))).rejects.toThrow(/Cloudflare Pages redirects only to https:\/\/ addresses, not to the blob store http:\/\/127\.0\.0\.1:\d+\/hosts\/blobs\//u);
  cloudflareBuild = await build('cloudflare', cloudflareOut(), tlsUrl);
  [netlify, pages] = await Promise.all([startNetlifySite(netlifyOut()), startPagesDev(cloudflareOut(), runDir)]);
  await daemons;
}, 300_000);

afterAll(async () => {
  await netlify?.close();
  await pages?.stop();
  if (tlsFront) await new Promise<void>((r) => { tlsFront.close(() => r()); tlsFront.closeAllConnections(); });
  await dockerd?.stop();
  await containerd?.stop();
  await up?.stop();
  await store?.stop();
  if (project) removeDir(project);
  if (runDir) removeDir(runDir);
});

const blobsOf = (s: BuildSummary) => s.paths.filter((p) => p.kind === 'blob');

describe.each([
  ['netlify', () => netlifyOut(), () => netlifyBuild, () => store.publicUrl],
  ['cloudflare', () => cloudflareOut(), () => cloudflareBuild, () => tlsUrl],
] as const)('%s with a blob store: the files', (host, out, summary, base) => {
  it('hold no blob file, one 307 rule per repository before anything else, and no _headers rule for blobs', async () => {
    expect((await filesUnder(out())).map((f) => path.relative(out(), f)).filter((f) => /\/blobs\/sha256:/u.test(f))).toEqual([]);
    const redirects = await readFile(path.join(out(), '_redirects'), 'utf8');
    const rules = redirects.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('#'));
    expect(rules.slice(0, 2)).toEqual([
      `/v2/big/app/blobs/:digest  ${base()}${PREFIX}blobs/:digest  307`,
      `/v2/big/shared/blobs/:digest  ${base()}${PREFIX}blobs/:digest  307`,
    ]);
    if (host === 'netlify') expect(rules[2]).toBe('/v2/big/app/manifests/*  /v2/_errors/manifest-unknown.json  404');
    else expect(rules).toContain('/old-page  /  301');
    expect(await readFile(path.join(out(), '_headers'), 'utf8')).not.toMatch(/\/blobs\//u);
    expect(blobsOf(summary()).every((p) => p.location === `${base()}${PREFIX}blobs/${p.digest}`)).toBe(true);
  });
});

describe.each([
  ['netlify (netlify-redirector)', () => netlify.url, () => netlifyBuild, { https: false }],
  ['cloudflare (wrangler pages dev)', () => pages.url, () => cloudflareBuild, { https: true }],
])('%s', (_name, url, summary, opts) => {
  const get = (u: string, init: { method?: string } = {}) =>
    undiciFetch(u, { ...init, redirect: 'manual', ...(opts.https ? { dispatcher: pages.dispatcher } : {}) });

  it('answers GET and HEAD of every blob with 307 to the store, and a missing tag with the OCI 404 body', async () => {
    for (const blob of blobsOf(summary())) {
      for (const method of ['GET', 'HEAD']) {
        const res = await get(url() + blob.urlPath, { method });
        expect(res.status, `${method} ${blob.urlPath}`).toBe(307);
        expect(res.headers.get('location'), `${method} ${blob.urlPath}`).toBe(blob.location);
        await res.arrayBuffer();
      }
    }
    const missing = await get(`${url()}/v2/big/app/manifests/no-such-tag`);
    expect(missing.status).toBe(404);
    expect(JSON.parse(await missing.text()).errors[0].code).toBe('MANIFEST_UNKNOWN');
  });

  it('the four clients pull the image with the 26 MiB shared layer through the redirect', async () => {
    await dockerRemoveAllImages(dockerd.host);
    const registry = url().replace(/^https?:\/\//u, '');
    const before = store.publicFront.seen.length;
    await Promise.all(CLIENTS.map((client) => expectPull(client, registry, bigCase, { containerd, dockerd }, opts)));
    const largeGets = store.publicFront.seen.slice(before).filter((l) => l === `GET /${PREFIX}blobs/${big.layerDigests![0]}`);
    expect(largeGets.length).toBeGreaterThanOrEqual(2); // skopeo and podman keep nothing between pulls
  }, 300_000);
});

describe('Cloudflare limits', () => {
  it('the 25 MiB file limit applies only to what stays on the site', () => {
    const large = cloudflareBuild.paths.filter((p) => p.kind === 'blob' && p.size > 25 * 1024 * 1024);
    expect(large.length).toBe(2); // the shared layer, in big/app and big/shared
    expect(checkHosts([cloudflare], cloudflareBuild.paths).errors).toEqual([]);
    const onTheSite = cloudflareBuild.paths.map(({ location: _, ...p }) => p);
    expect(checkHosts([cloudflare], onTheSite).errors.join('\n')).toMatch(/cloudflare: Cloudflare Pages refuses files over 25 MiB: 2 file\(s\) of big\/app, big\/shared/u);
  });

  it(`fails the build naming Pages' limit of ${CLOUDFLARE_MAX_DYNAMIC_REDIRECTS} dynamic rules`, async () => {
    const digest = `sha256:${'a'.repeat(64)}`;
    const blob = (repo: string): PublishedPath => ({
      urlPath: `/v2/${repo}/blobs/${digest}`,
      file: `v2/${repo}/blobs/${digest}`,
      kind: 'blob',
      contentType: 'application/octet-stream',
      digest,
      size: 1,
      immutable: true,
      location: `https://pub.example.com/blobs/${digest}`,
    });
    const empty = path.join(project, 'limits');
    await mkdir(empty, { recursive: true });
    const hundred = Array.from({ length: 100 }, (_, i) => blob(`r${i}`));
    expect(await renderCloudflareRedirects(empty, hundred)).toHaveLength(1);
    await expect(renderCloudflareRedirects(empty, [...hundred, blob('r100')])).rejects.toThrow(
      /_redirects would have 101 dynamic rules \(101 blob redirects, one per repository\); Cloudflare Pages reads at most 100/u,
    );
    // The site's own rules after ours count as dynamic on Pages.
    await writeFile(path.join(empty, '_redirects'), '/a  /b  301\n');
    await expect(renderCloudflareRedirects(empty, hundred)).rejects.toThrow(/101 dynamic rules \(100 blob redirects/u);
  });

  it('a rebuild without a store empties the old blob redirects, keeping the site\'s own rules', async () => {
    const dir = path.join(project, 'rebuilt');
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, '_redirects'), await readFile(path.join(cloudflareOut(), '_redirects'), 'utf8'));
    const [file] = await renderCloudflareRedirects(dir, []);
    expect(file!.text).not.toContain(':digest');
    expect(file!.text).toContain('/old-page  /  301');
  });
});
