import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { blobsAdvice, buildRegistry, type BuildSummary } from '../src/build.ts';
import { runCheck } from '../src/check/run.ts';
import type { CliIO } from '../src/cli/args.ts';
import { main } from '../src/cli/main.ts';
import { S3Client } from '../src/deploy/s3-client.ts';
import { resolveOptions } from '../src/eleventy/options.ts';
import { NGINX_PORT, NGINX_STANDALONE_FILE } from '../src/hosts/nginx.ts';
import { createAgent } from '../src/http/transport.ts';
import { readPathsFile } from '../src/publish/paths-file.ts';
import { LOCAL_BLOBS_PATH, startPreviewServer, type PreviewServer } from '../src/serve/server.ts';
import { Progress } from '../src/util/progress.ts';
import { startTestStore, STORE_ACCESS_KEY, STORE_SECRET, type TestStore } from './harness/blob-store.ts';
import { ctrPull, dockerPull, dockerRemoveAllImages, podmanPull, skopeoCopy, startContainerd, startDockerd, type Containerd, type Dockerd } from './harness/clients.ts';
import { filesUnder, snapshotTree } from './harness/fs-walk.ts';
import { CLIENTS, type ClientName } from './harness/host-site.ts';
import { buildManifest, makeLayer, pushImage, seedUpstream, type BuiltImage, type Fixtures } from './harness/images.ts';
import { freePort, hasCommand, makeTempDir, removeDir, run, spawnDaemon, tailFile, type Daemon } from './harness/procs.ts';
import { startRegistry, type UpstreamRegistry } from './harness/upstream.ts';

// Blobs elsewhere (issue 20), with real components: s3rver as the object store behind a public
// front (the bucket at the root of a host), a real upstream, builds that upload before they write
// v2/, and the four real clients pulling through the 307 from `registrish serve`, real nginx and
// real Apache (Netlify and Cloudflare Pages: test/blob-store-hosts.test.ts). One image has a layer
// over 25 MiB (Cloudflare Pages' limit), and a second repository shares its layers (one object in
// the store).

const PREFIX = 'mirror/';
const BIG = 26 * 1024 * 1024 + 123;

let project: string;
let site: string;
let cache: string;
let runDir: string;
let store: TestStore;
let up: UpstreamRegistry;
let fx: Fixtures;
let big: BuiltImage;
let shared: BuiltImage;
let containerd: Containerd;
let dockerd: Dockerd;
let first: BuildSummary;
const agent = createAgent();

interface Case {
  ref: string;
  /** Digest the tag resolves to (index or manifest) and the linux/amd64 manifest. */
  top: string;
  instance: string;
}
let cases: Case[];

const images = (extra: unknown[] = []) => ({
  images: [
    `${up.host}/big/app:1.0`,
    `${up.host}/big/shared:1.0`,
    `${up.host}/oci/multi:1.0`,
    `${up.host}/docker/list:2.0`,
    `${up.host}/docker/single:v1`,
    ...extra,
  ],
});

async function build(opts: { images?: unknown; out?: string; blobs?: Parameters<typeof buildRegistry>[0]['blobs']; hosts?: string[] } = {}): Promise<BuildSummary> {
  await writeFile(path.join(project, 'images.json'), JSON.stringify(opts.images ?? images()));
  return buildRegistry({
    images: path.join(project, 'images.json'),
    outputDir: opts.out ?? site,
    cacheDir: cache,
    hosts: opts.hosts ?? ['nginx', 'apache'],
    imageConcurrency: 4,
    blobConcurrency: 4,
    linkMode: 'hardlink',
    logger: { info: () => {}, warn: () => {} },
    env: { ...store.env, DOCKER_CONFIG: path.join(project, 'no-docker-config') },
    blobs: opts.blobs ?? { url: store.publicUrl, store: { bucket: store.bucket, prefix: PREFIX }, endpoint: store.endpoint },
    storeRetryBaseMs: 5,
  });
}

function storeClient(): S3Client {
  return new S3Client({
    endpoint: new URL(store.s3Url),
    region: 'us-east-1',
    bucket: store.bucket,
    credentials: { accessKeyId: STORE_ACCESS_KEY, secretAccessKey: STORE_SECRET },
    pathStyle: true,
    dispatcher: agent,
  });
}

async function storeKeys(prefix = PREFIX): Promise<string[]> {
  return (await storeClient().list(`${prefix}blobs/`)).sort();
}

const sha256Hex = (t: string) => createHash('sha256').update(t).digest('hex');
const blobDigests = (s: BuildSummary) => [...new Set(s.paths.filter((p) => p.kind === 'blob').map((p) => p.digest!))].sort();

async function pull(client: ClientName, registry: string, c: Case): Promise<void> {
  const ref = `${registry}/${c.ref}`;
  if (client === 'skopeo') expect((await skopeoCopy(ref, { arch: 'amd64' })).manifestDigest, `${client} ${ref}`).toBe(c.instance);
  else if (client === 'podman') expect((await podmanPull(ref, { arch: 'amd64' })).digest, `${client} ${ref}`).toBe(c.top);
  else if (client === 'containerd (ctr)') expect((await ctrPull(containerd.address, ref, { platform: 'linux/amd64' })).digest, `${client} ${ref}`).toBe(c.top);
  else expect((await dockerPull(dockerd.host, ref)).digest, `${client} ${ref}`).toBe(c.top);
}

/** Every client pulls every case (clients side by side, each one's cases in turn). */
async function pullAll(registry: string, which: Case[]): Promise<void> {
  await dockerRemoveAllImages(dockerd.host);
  await Promise.all(CLIENTS.map(async (client) => {
    for (const c of which) await pull(client, registry, c);
  }));
}

beforeAll(async () => {
  for (const c of ['skopeo', 'podman', 'ctr', 'containerd', 'dockerd', 'docker-registry']) {
    if (!hasCommand(c)) throw new Error(`${c} is not installed: run scripts/install-test-deps.sh as root`);
  }
  project = makeTempDir('rsh-blobs-');
  fs.chmodSync(project, 0o755);
  runDir = makeTempDir('rsh-blobsrun-');
  site = path.join(project, '_site');
  cache = path.join(project, '.cache', 'registrish');
  const daemons = (async () => {
    containerd = await startContainerd();
    dockerd = await startDockerd(containerd.address);
  })();
  store = await startTestStore(project);
  up = await startRegistry({ storageDir: path.join(project, 'upstream') });
  fx = await seedUpstream(up.url);
  // Incompressible, so the gzipped layer stays over 25 MiB.
  const large = makeLayer([{ name: 'large.bin', content: (await import('node:crypto')).randomBytes(BIG) }]);
  const small = makeLayer([{ name: 'hello', content: 'hello from the blob store\n' }]);
  big = buildManifest({ format: 'oci', platform: { os: 'linux', architecture: 'amd64' }, layers: [large, small] });
  shared = buildManifest({ format: 'docker', platform: { os: 'linux', architecture: 'amd64' }, layers: [large, small], cmd: ['/other'] });
  await pushImage(up.url, 'big/app', '1.0', big);
  await pushImage(up.url, 'big/shared', '1.0', shared);
  const amd64 = (key: string) => fx[key]!.platforms.find((p) => p.platform.startsWith('linux/amd64'))!.digest;
  cases = [
    { ref: 'big/app:1.0', top: big.digest, instance: big.digest },
    { ref: 'big/shared:1.0', top: shared.digest, instance: shared.digest },
    { ref: 'oci/multi:1.0', top: fx['oci/multi:1.0']!.digest, instance: amd64('oci/multi:1.0') },
    { ref: 'docker/list:2.0', top: fx['docker/list:2.0']!.digest, instance: amd64('docker/list:2.0') },
    { ref: 'docker/single:v1', top: fx['docker/single:v1']!.digest, instance: fx['docker/single:v1']!.digest },
  ];
  first = await build();
  await daemons;
}, 300_000);

afterAll(async () => {
  await dockerd?.stop();
  await containerd?.stop();
  await up?.stop();
  await store?.stop();
  await agent.close();
  if (project) removeDir(project);
  if (runDir) removeDir(runDir);
});

describe('the blobs option', () => {
  it('is checked, each error naming the plugin and the option', () => {
    const err = (blobs: unknown) => {
      try {
        resolveOptions({ blobs } as never);
      } catch (e) {
        return (e as Error).message;
      }
      return 'accepted';
    };
    expect(err({ url: 'http://cdn.example.com/' })).toMatch(/^\[registrish\] option "blobs\.url" must be .*https:\/\//u);
    expect(err({ url: 'https://user:pw@cdn.example.com/' })).toMatch(/"blobs\.url".*credentials/u);
    expect(err({ url: 'https://cdn.example.com/', stor: 's3://b' })).toBe('[registrish] unknown option "blobs.stor" (known: url, store, endpoint)');
    expect(err({ url: 'https://cdn.example.com/', store: 'gs://b' })).toMatch(/"blobs\.store" must be s3:\/\/BUCKET/u);
    expect(err({ url: 'https://cdn.example.com/', store: 's3://b1/a/../x' })).toMatch(/"blobs\.store"/u);
    expect(err({ url: 'https://cdn.example.com/', endpoint: 'https://x.r2.cloudflarestorage.com' })).toMatch(/"blobs\.endpoint".*together with blobs\.store/u);
    expect(err('https://cdn.example.com/')).toMatch(/"blobs" must be an object/u);
    expect(resolveOptions({ blobs: { url: 'http://127.0.0.1:9000/pub', store: 's3://bucket/a/b/' } }).blobs).toEqual({
      url: 'http://127.0.0.1:9000/pub/',
      store: { bucket: 'bucket', prefix: 'a/b/' },
    });
  });
});

describe('a build with a blob store', () => {
  it('writes no blob file; the store holds one object per digest, shared by every repository', async () => {
    const files = (await filesUnder(site)).map((f) => path.relative(site, f));
    expect(files.filter((f) => f.includes('/blobs/'))).toEqual([]);
    const digests = blobDigests(first);
    expect(await storeKeys()).toEqual(digests.map((d) => `${PREFIX}blobs/${d}`));
    // The 26 MiB layer is in both big/app and big/shared, and stored once.
    const largeDigest = big.layerDigests![0]!;
    expect(first.paths.filter((p) => p.kind === 'blob' && p.digest === largeDigest).map((p) => p.urlPath)).toEqual([
      `/v2/big/app/blobs/${largeDigest}`,
      `/v2/big/shared/blobs/${largeDigest}`,
    ]);
    expect(first.blobStore).toMatchObject({ uploaded: digests.length, present: 0 });
    expect(first.line).toMatch(/none in the output: served from http:\/\/127\.0\.0\.1:\d+\/ \(uploaded \d+/u);
    // The paths file says where each blob is, for serve, check and deploy.
    const described = await readPathsFile(site);
    for (const p of described.filter((x) => x.kind === 'blob')) expect(p.location).toBe(`${store.publicUrl}${PREFIX}blobs/${p.digest}`);
  });

  it('a rebuild with nothing new uploads nothing: one listing, no PUT', async () => {
    store.apiFront.seen.length = 0;
    const again = await build();
    expect(again.blobStore).toMatchObject({ uploaded: 0, present: blobDigests(first).length });
    expect(store.apiFront.seen).toHaveLength(1);
    expect(store.apiFront.seen[0]).toMatch(/^GET \/blobs\/\?list-type=2&prefix=mirror%2Fblobs%2F/u);
  });

  it('a store refusing an upload (403, 500, a dropped connection) fails the build, the previous output intact; then it succeeds', async () => {
    const fresh = buildManifest({ format: 'oci', platform: { os: 'linux', architecture: 'amd64' }, layers: [makeLayer([{ name: 'new', content: `new ${Date.now()}\n` }])] });
    await pushImage(up.url, 'fault/new', '1.0', fresh);
    const withNew = images([`${up.host}/fault/new:1.0`]);
    const before = await snapshotTree(site);
    const messages: Record<string, RegExp> = { '403': /403 AccessDenied/u, '500': /500 InternalError/u, drop: /PUT http:\/\/127\.0\.0\.1:\d+\/blobs\/mirror\/blobs\/sha256:/u };
    for (const fault of ['403', '500', 'drop'] as const) {
      store.apiFront.fault = fault;
      const failed = build({ images: withNew });
      await expect(failed, fault).rejects.toThrow(/uploading blobs to s3:\/\/blobs\/mirror\/ failed, so v2\/ was not written \(the previous output is unchanged\)/u);
      await expect(failed, fault).rejects.toThrow(messages[fault]);
      expect(await snapshotTree(site), fault).toEqual(before);
      expect(await storeKeys(), fault).not.toContain(`${PREFIX}blobs/${fresh.layerDigests![0]}`);
    }
    store.apiFront.fault = 'none';
    const ok = await build({ images: withNew });
    expect(ok.blobStore).toMatchObject({ uploaded: 2 }); // the new layer and its config
    expect(await storeKeys()).toContain(`${PREFIX}blobs/${fresh.layerDigests![0]}`);
    const credentials = [STORE_SECRET];
    for (const c of credentials) expect(JSON.stringify([...(await snapshotTree(site)).values()].map(String))).not.toContain(c);
  });
});

describe('pulled through the redirect', () => {
  it('registrish serve: 307 for GET and HEAD of every blob, the four clients pull every image', async () => {
    const server = await startPreviewServer({ dir: site, port: 0 });
    try {
      const blob = first.paths.find((p) => p.kind === 'blob')!;
      for (const method of ['GET', 'HEAD']) {
        const res = await fetch(server.url + blob.urlPath, { method, redirect: 'manual' });
        expect(res.status).toBe(307);
        expect(res.headers.get('location')).toBe(`${store.publicUrl}${PREFIX}blobs/${blob.digest}`);
      }
      // Another repository's URL for a digest is not a blob of ours: 404, not a redirect.
      expect((await fetch(`${server.url}/v2/nope/blobs/${blob.digest}`, { redirect: 'manual' })).status).toBe(404);
      store.publicFront.seen.length = 0;
      await pullAll(server.url.replace('http://', ''), cases);
      // skopeo and podman keep nothing between pulls: the large layer came from the store.
      expect(store.publicFront.seen.filter((l) => l === `GET /${PREFIX}blobs/${big.layerDigests![0]}`).length).toBeGreaterThanOrEqual(2);
    } finally {
      await server.close();
    }
  }, 600_000);

  it('registrish serve --blobs-dir: an offline preview from the build cache, through the same redirects', async () => {
    const server: PreviewServer = await startPreviewServer({ dir: site, port: 0, blobsDir: cache });
    try {
      const blob = first.paths.find((p) => p.kind === 'blob' && p.digest === big.layerDigests![0])!;
      const res = await fetch(server.url + blob.urlPath, { method: 'HEAD', redirect: 'manual' });
      expect(res.status).toBe(307);
      expect(res.headers.get('location')).toBe(`${LOCAL_BLOBS_PATH}${blob.digest}`);
      const head = await fetch(server.url + blob.urlPath, { method: 'HEAD' });
      expect(head.headers.get('content-length')).toBe(String(blob.size));
      expect(head.headers.get('docker-content-digest')).toBe(blob.digest);
      store.publicFront.seen.length = 0;
      await pull('skopeo', server.url.replace('http://', ''), cases[0]!);
      expect(store.publicFront.seen).toEqual([]);
    } finally {
      await server.close();
    }
  }, 120_000);

  it('real nginx: the four clients pull through one regex location', async () => {
    const conf = await readFile(path.join(site, NGINX_STANDALONE_FILE), 'utf8');
    expect(conf.match(/return 307 /gu)).toHaveLength(1);
    const { daemon, port } = await startNginx(conf);
    try {
      await pullAll(`127.0.0.1:${port}`, cases.slice(0, 3));
      const report = await runCheck({ url: `http://127.0.0.1:${port}`, host: 'nginx' });
      expect(report.rows.filter((r) => r.problems.length)).toEqual([]);
      expect(report.rows.filter((r) => r.label.includes(' → store http://127.0.0.1')).length).toBeGreaterThan(cases.length);
    } finally {
      await daemon.stop();
    }
  }, 600_000);

  it('real Apache: the four clients pull through one RedirectMatch', async () => {
    const top = await readFile(path.join(site, 'v2', '.htaccess'), 'utf8');
    expect(top.match(/RedirectMatch 307 /gu)).toHaveLength(1);
    const { daemon, port } = await startApache();
    try {
      const blob = first.paths.find((p) => p.kind === 'blob')!;
      const res = await fetch(`http://127.0.0.1:${port}${blob.urlPath}`, { method: 'HEAD', redirect: 'manual' });
      expect(res.status).toBe(307);
      expect(res.headers.get('location')).toBe(blob.location);
      await pullAll(`127.0.0.1:${port}`, cases.slice(0, 3));
    } finally {
      await daemon.stop();
    }
  }, 600_000);
});

describe('registrish check with a blob store', () => {
  it('catches a blob missing from the store, naming the store and the blob', async () => {
    const server = await startPreviewServer({ dir: site, port: 0 });
    const victim = big.configDigest!;
    const key = `${PREFIX}blobs/${victim}`;
    const client = storeClient();
    const saved = await readFile(path.join(cache, 'blobs', 'sha256', victim.slice(7)));
    await client.delete(key);
    try {
      const report = await runCheck({ url: server.url, images: [{ name: 'big/app', tags: ['1.0'] }] });
      expect(report.failed).toBeGreaterThan(0);
      const bad = report.rows.filter((r) => r.problems.length);
      expect(bad.length).toBeGreaterThan(0);
      for (const r of bad) {
        expect(r.label).toContain(victim.slice(7, 19));
        expect(r.label).toContain(' → store http://127.0.0.1');
        expect(r.problems[0]!.message).toMatch(new RegExp(`^the store http://127\\.0\\.0\\.1:\\d+/${PREFIX}blobs/${victim} .*404`, 'u'));
      }
    } finally {
      await client.put(key, { kind: 'buffer', data: saved }, victim.slice(7), { 'content-type': 'application/octet-stream' });
      await server.close();
    }
  });
});

describe('registrish deploy --blobs', () => {
  it('uploads the blobs of a site built without a store, from the cache; again, nothing; prunes only when asked', async () => {
    const out = path.join(project, 'site-no-store');
    const built = await build({ out, blobs: { url: `${store.publicUrl}other/` } });
    expect(built.blobStore).toMatchObject({ uploaded: 0 });
    let text = '';
    const io: CliIO = { stdout: (t) => (text += t), stderr: (t) => (text += t), untilStopped: () => new Promise(() => {}) };
    const saved = { ...process.env };
    Object.assign(process.env, store.env);
    try {
      const argv = ['deploy', '--blobs', `s3://${store.bucket}/other`, out, '--endpoint-url', store.endpoint, '--cache-dir', cache];
      expect(await main(argv, io)).toBe(0);
      expect(text).toMatch(new RegExp(`uploaded ${blobDigests(built).length} blobs .*0 already in s3://blobs/other/blobs/`, 'u'));
      expect(await storeKeys('other/')).toEqual(blobDigests(built).map((d) => `other/blobs/${d}`));
      text = '';
      expect(await main(argv, io)).toBe(0);
      expect(text).toMatch(/uploaded 0 blobs \(0 B\), \d+ already .* requests: 1 list, 0 head, 0 put, 0 multipart/u);
      expect(text).not.toContain(STORE_SECRET);
      // Clean-up: explicit, a dry run unless --yes; referenced blobs and foreign keys stay.
      const client = storeClient();
      const stale = `other/blobs/sha256:${'0'.repeat(64)}`;
      await client.put(stale, { kind: 'buffer', data: Buffer.from('old') }, sha256Hex('old'), {});
      await client.put('other/blobs/README', { kind: 'buffer', data: Buffer.from('mine') }, sha256Hex('mine'), {});
      const prune = ['deploy', '--blobs', `s3://${store.bucket}/other`, out, '--endpoint-url', store.endpoint, '--prune-unreferenced'];
      text = '';
      expect(await main(prune, io)).toBe(0);
      expect(text).toContain(`would delete s3://blobs/${stale}\n`);
      expect(text).toMatch(new RegExp(`dry run: would delete 1 unreferenced blobs, kept ${blobDigests(built).length} that .* names, left 1 other objects alone .*add --yes`, 'u'));
      expect(await storeKeys('other/')).toContain(stale);
      text = '';
      expect(await main([...prune, '--yes'], io)).toBe(0);
      expect(text).toMatch(/deleted 1 unreferenced blobs/u);
      expect(await storeKeys('other/')).toEqual([...blobDigests(built).map((d) => `other/blobs/${d}`), 'other/blobs/README'].sort());
      // The site itself cannot go to a bucket: its blob URLs are redirects.
      text = '';
      expect(await main(['deploy', `s3://${store.bucket}/site`, out, '--endpoint-url', store.endpoint], io)).not.toBe(0);
      expect(text).toMatch(/built with the `blobs` option/u);
    } finally {
      for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
      Object.assign(process.env, saved);
    }
  }, 120_000);
});

describe('npx eleventy with the blobs option', () => {
  it('uploads what the store lacks before it writes v2/, never showing the credentials', async () => {
    const REPO = path.resolve(import.meta.dirname, '..');
    const eleventySite = path.join(project, 'eleventy-site');
    fs.mkdirSync(path.join(eleventySite, 'src'), { recursive: true });
    await writeFile(path.join(eleventySite, 'package.json'), '{ "type": "module" }\n');
    await writeFile(path.join(eleventySite, 'src', 'index.md'), '# hello\n');
    await writeFile(path.join(eleventySite, 'registry.json'), JSON.stringify({ images: [{ source: `oci:${path.join(REPO, 'example/hello')}:1.0`, name: 'hello' }] }));
    const options = { images: 'registry.json', hosts: ['nginx'], pages: false, blobs: { url: `${store.publicUrl}eleventy/`, store: `s3://${store.bucket}/eleventy`, endpoint: store.endpoint } };
    await writeFile(
      path.join(eleventySite, 'eleventy.config.js'),
      `import registrish from ${JSON.stringify(path.join(REPO, 'dist/index.js'))};
export default function (eleventyConfig) {
  eleventyConfig.addPlugin(registrish, ${JSON.stringify(options)});
  return { dir: { input: 'src', output: '_site' } };
}
`,
    );
    const env = { ...process.env, ...store.env };
    const eleventy = () => run('node', [path.join(REPO, 'node_modules/@11ty/eleventy/cmd.cjs')], { cwd: eleventySite, env, timeoutMs: 120_000 });
    const r = await eleventy();
    expect(r.stdout).toMatch(/\[registrish\] blobs: uploaded 4 \([\d.]+ KiB\) to s3:\/\/blobs\/eleventy\/, 0 already there/u);
    expect(r.stdout).toMatch(/none in the output: served from http:\/\/127\.0\.0\.1:\d+\/eleventy\/ \(uploaded 4/u);
    expect((await storeKeys('eleventy/')).length).toBe(4);
    expect((await filesUnder(path.join(eleventySite, '_site'))).filter((f) => f.includes('/blobs/'))).toEqual([]);
    const again = await eleventy();
    expect(again.stdout).toMatch(/blobs: uploaded 0 \(0 B\) to s3:\/\/blobs\/eleventy\/, 4 already there/u);
    for (const text of [r.stdout, r.stderr, again.stdout, again.stderr]) expect(text).not.toContain(STORE_SECRET);
    // No credentials: the build stops before the output is touched, saying which variables to set.
    const none = await run('node', [path.join(REPO, 'node_modules/@11ty/eleventy/cmd.cjs')], {
      cwd: eleventySite,
      env: { ...process.env, AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: '' },
      timeoutMs: 120_000,
      allowFailure: true,
    });
    expect(none.code).not.toBe(0);
    expect(none.stdout + none.stderr).toMatch(/blobs\.store: no credentials to upload blobs to s3:\/\/blobs\/eleventy\/[\s\S]*AWS_ACCESS_KEY_ID/u);
  }, 240_000);
});

describe('without a blob store', () => {
  it('a Netlify build warns about blobs over the 10 MB Netlify recommends, saying how much of the output is blobs', () => {
    const advice = blobsAdvice(first.paths, ['netlify']);
    expect(advice).toMatch(/^netlify: 1 blob is over the 10 MB Netlify recommends per file \(largest 26\.\d MiB\); blobs are 26\.\d MiB of the registry's 26\.\d MiB \(100%\)\. Keep them on an object store with the "blobs" option/u);
    expect(blobsAdvice(first.paths, ['nginx'])).toBeUndefined();
    expect(blobsAdvice(first.paths.filter((p) => p.digest !== big.layerDigests![0]), ['netlify'])).toBeUndefined();
  });
});

describe('progress', () => {
  it('says nothing for quick work, redraws one terminal line, and writes a plain line every 10 s in a log', () => {
    let t = 0;
    const drawn: string[] = [];
    const logged: string[] = [];
    const tty = new Progress({ verb: 'uploading', tty: { write: (s) => drawn.push(s), columns: 200 }, log: (l) => logged.push(l), now: () => t });
    tty.addWork(100 * 1024 * 1024, 4);
    tty.addBytes(10 * 1024 * 1024);
    expect(drawn).toEqual([]); // under 2 s
    t = 2500;
    tty.addBytes(10 * 1024 * 1024);
    tty.addBytes(1);
    t = 2600;
    tty.addBytes(1); // within 250 ms of the last draw: not redrawn
    expect(drawn).toEqual(['\r\u001b[Kuploading: 20.0 MiB of 100.0 MiB (20%), 8.0 MiB/s, 4 blobs left']);
    tty.itemDone();
    tty.stop();
    expect(drawn.at(-1)).toBe('\r\u001b[K');
    expect(logged).toEqual([]);

    t = 0;
    const plain = new Progress({ verb: 'downloading', log: (l) => logged.push(l), now: () => t });
    plain.addWork(1000, 2);
    for (t = 0; t < 35_000; t += 100) plain.addBytes(1);
    plain.stop();
    expect(logged.map((l) => l.replace(/, [\d.]+ B\/s/u, ''))).toEqual([
      'downloading: 101 B of 1000 B (10%), 2 blobs left',
      'downloading: 201 B of 1000 B (20%), 2 blobs left',
      'downloading: 301 B of 1000 B (30%), 2 blobs left',
    ]);
  });
});

// ----------------------------------------------------------------------------------------------
// nginx and Apache, started on loopback ports with their own config (never the system services)

async function startNginx(conf: string): Promise<{ daemon: Daemon; port: number }> {
  const bin = ['/usr/sbin/nginx', 'nginx'].find((c) => hasCommand(c)) ?? 'nginx';
  const p = await freePort();
  const file = path.join(runDir, 'nginx.conf');
  await writeFile(file, conf.replace(`listen ${NGINX_PORT};`, `listen 127.0.0.1:${p};`));
  const daemon = await spawnDaemon(bin, ['-p', `${site}/`, '-c', file, '-e', 'stderr', '-g', `daemon off; pid ${path.join(runDir, 'nginx.pid')};`], {
    logFile: path.join(runDir, 'nginx.log'),
    timeoutMs: 20_000,
    ready: async () => (await fetch(`http://127.0.0.1:${p}/v2/`)).status === 200,
  });
  return { daemon, port: p };
}

async function startApache(): Promise<{ daemon: Daemon; port: number }> {
  const bin = ['/usr/sbin/apache2', 'apache2'].find((c) => hasCommand(c)) ?? '/usr/sbin/apache2';
  const mods = ['mpm_event', 'authz_core', 'mime', 'headers', 'env', 'dir', 'alias'];
  const p = await freePort();
  const conf = path.join(runDir, 'apache.conf');
  await writeFile(
    conf,
    [
      `ServerRoot ${runDir}`,
      'ServerName 127.0.0.1',
      `PidFile ${runDir}/apache.pid`,
      `DefaultRuntimeDir ${runDir}`,
      `Mutex file:${runDir} default`,
      `ErrorLog ${runDir}/error.log`,
      'LogLevel warn',
      ...mods.map((m) => `LoadModule ${m}_module /usr/lib/apache2/modules/mod_${m}.so`),
      'User nobody',
      'Group nogroup',
      'TypesConfig /etc/mime.types',
      'DirectoryIndex index.html',
      'AccessFileName .htaccess',
      '<Directory />\n  AllowOverride None\n  Require all denied\n</Directory>',
      `<Directory ${site}>\n  AllowOverride FileInfo\n  Require all granted\n</Directory>`,
      `Listen 127.0.0.1:${p}`,
      `<VirtualHost 127.0.0.1:${p}>\n  DocumentRoot ${site}\n</VirtualHost>`,
      '',
    ].join('\n'),
  );
  const logFile = path.join(runDir, 'apache.log');
  try {
    const daemon = await spawnDaemon(bin, ['-f', conf, '-d', runDir, '-DFOREGROUND'], {
      logFile,
      timeoutMs: 20_000,
      ready: async () => (await fetch(`http://127.0.0.1:${p}/v2/`)).status === 200,
    });
    return { daemon, port: p };
  } catch (e) {
    throw new Error(`${String(e)}\n${tailFile(logFile)}\n${tailFile(path.join(runDir, 'error.log'))}`);
  }
}
