import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { filesUnder } from './harness/fs-walk.ts';
import path from 'node:path';
import { Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildRegistry, type BuildOptions, type BuildSummary } from '../src/build.ts';
import { startPreviewServer } from '../src/serve/server.ts';
import { ctrPull, dockerPull, skopeoCopy, startContainerd, startDockerd, type Containerd, type Dockerd } from './harness/clients.ts';
import { CLIENTS, expectPull, type PullCase } from './harness/host-site.ts';
import { seedUpstream, tagManifest, type Fixtures } from './harness/images.ts';
import { makeTempDir, removeDir } from './harness/procs.ts';
import { startRegistry, type UpstreamRegistry } from './harness/upstream.ts';

// The whole product against real components: a real upstream docker-registry (anonymous,
// htpasswd and token auth), a build, the preview server applying the generated `_headers`
// through Netlify's parser, and the four real pull clients.

const REPO = path.resolve(import.meta.dirname, '..');
const BASIC = { user: 'alice', pass: 'basic-Secret-4417' };
const TOKEN = { user: 'bob', pass: 'token-Secret-9931' };

let storage: string;
let project: string;
let up: UpstreamRegistry;
let basic: UpstreamRegistry;
let token: UpstreamRegistry;
let fx: Fixtures;
let out: string;
let cache: string;
let first: BuildSummary;
let logs: string[] = [];
let requests: string[] = [];
/** What the first build (empty cache) sent. */
let coldRequests: string[] = [];
let server: Awaited<ReturnType<typeof startPreviewServer>>;
let containerd: Containerd;
let dockerd: Dockerd;
let exampleDigest: string;
let exampleAmd64: string;

/** Counts every request the build sends upstream (method and path). */
function countingAgent(): Agent {
  const agent = new Agent({ connections: 8 });
  return agent.compose((dispatch) => (opts, handler) => {
    requests.push(`${opts.method} ${opts.origin}${opts.path}`);
    return dispatch(opts, handler);
  }) as unknown as Agent;
}

function build(extra: Partial<BuildOptions> = {}): Promise<BuildSummary> {
  return buildRegistry({
    images: path.join(project, 'images.json'),
    outputDir: out,
    cacheDir: cache,
    hosts: ['netlify'],
    imageConcurrency: 4,
    blobConcurrency: 6,
    linkMode: 'hardlink',
    logger: { info: (m) => logs.push(m), warn: (m) => logs.push(`WARN ${m}`) },
    env: {
      REGISTRISH_AUTH: JSON.stringify({ [basic.host]: `${BASIC.user}:${BASIC.pass}`, [token.host]: `${TOKEN.user}:${TOKEN.pass}` }),
      DOCKER_CONFIG: path.join(project, 'no-docker-config'),
    },
    dispatcher: countingAgent(),
    ...extra,
  });
}

beforeAll(async () => {
  storage = makeTempDir('rsh-up-');
  project = makeTempDir('rsh-proj-');
  out = path.join(project, '_site');
  cache = path.join(project, '.cache', 'registrish');
  // Daemons start while the upstream is seeded and the registry is built.
  const daemons = (async () => {
    containerd = await startContainerd();
    dockerd = await startDockerd(containerd.address);
  })();
  up = await startRegistry({ storageDir: storage });
  fx = await seedUpstream(up.url);
  [basic, token] = await Promise.all([
    startRegistry({ storageDir: storage, auth: { kind: 'htpasswd', ...BASIC } }),
    startRegistry({ storageDir: storage, auth: { kind: 'token', ...TOKEN } }),
  ]);
  exampleDigest = JSON.parse(await readFile(path.join(REPO, 'example/hello/index.json'), 'utf8')).manifests[0].digest;
  const exampleIndex = JSON.parse(await readFile(path.join(REPO, 'example/hello/blobs/sha256', exampleDigest.slice(7)), 'utf8'));
  exampleAmd64 = exampleIndex.manifests.find((m: { platform: { architecture: string } }) => m.platform.architecture === 'amd64').digest;
  const images = {
    images: [
      { source: `${up.host}/oci/single:1.0`, tags: ['1.0', 'Release.1.0-RC_1'] },
      `${up.host}/docker/single:v1`,
      `${up.host}/oci/multi:1.0`,
      `${up.host}/docker/list:2.0`,
      `${up.host}/a/b/c`,
      { source: `${up.host}/docker/single:v1`, name: 'renamed/app', tags: ['stable'] },
      { source: `${up.host}/docker/single`, name: 'multitag', tags: ['v1', 'v2'] },
      { source: `${up.host}/docker/single@${fx['docker/single:v2']!.digest}`, name: 'pinned', tags: ['pinned'] },
      { source: `${up.host}/docker/list:2.0`, name: 'filtered/list', platforms: ['linux/arm64'] },
      { source: `${basic.host}/oci/multi:1.0`, name: 'private/basic' },
      { source: `${token.host}/docker/list:2.0`, name: 'private/token' },
      { source: `oci:${path.join(REPO, 'example/hello')}:1.0`, name: 'hello', tags: ['1.0', 'latest'] },
    ],
  };
  await writeFile(path.join(project, 'images.json'), JSON.stringify(images, null, 2));
  first = await build();
  coldRequests = requests;
  requests = [];
  server = await startPreviewServer({ dir: out, port: 0 });
  await daemons;
});

afterAll(async () => {
  await server?.close();
  await dockerd?.stop();
  await containerd?.stop();
  await Promise.all([up?.stop(), basic?.stop(), token?.stop()]);
  removeDir(storage);
  removeDir(project);
});

const fixtureOf = (key: string) => {
  const f = fx[key];
  if (!f) throw new Error(`no fixture ${key}`);
  return f;
};


const platformDigest = (key: string, platform: string) => () => {
  const p = fixtureOf(key).platforms.find((x) => x.platform.startsWith(platform));
  if (!p) throw new Error(`${key} has no ${platform}`);
  return p.digest;
};

const CASES: PullCase[] = [
  { kind: 'OCI image manifest', ref: 'oci/single:1.0', top: () => fixtureOf('oci/single:1.0').digest, instance: () => fixtureOf('oci/single:1.0').digest, platform: 'linux/amd64' },
  { kind: 'tag with uppercase and dots', ref: 'oci/single:Release.1.0-RC_1', top: () => fixtureOf('oci/single:1.0').digest, instance: () => fixtureOf('oci/single:1.0').digest, platform: 'linux/amd64' },
  { kind: 'Docker v2 schema 2 manifest', ref: 'docker/single:v1', top: () => fixtureOf('docker/single:v1').digest, instance: () => fixtureOf('docker/single:v1').digest, platform: 'linux/amd64' },
  { kind: 'OCI index with attestation', ref: 'oci/multi:1.0', top: () => fixtureOf('oci/multi:1.0').digest, instance: platformDigest('oci/multi:1.0', 'linux/amd64'), platform: 'linux/amd64' },
  { kind: 'Docker manifest list', ref: 'docker/list:2.0', top: () => fixtureOf('docker/list:2.0').digest, instance: platformDigest('docker/list:2.0', 'linux/amd64'), platform: 'linux/amd64' },
  { kind: 'nested name, shared layer', ref: 'a/b/c:latest', top: () => fixtureOf('a/b/c:latest').digest, instance: () => fixtureOf('a/b/c:latest').digest, platform: 'linux/amd64' },
  { kind: 'renamed repository', ref: 'renamed/app:stable', top: () => fixtureOf('docker/single:v1').digest, instance: () => fixtureOf('docker/single:v1').digest, platform: 'linux/amd64' },
  { kind: 'several upstream tags from one entry', ref: 'multitag:v2', top: () => fixtureOf('docker/single:v2').digest, instance: () => fixtureOf('docker/single:v2').digest, platform: 'linux/amd64' },
  { kind: 'digest-pinned source', ref: 'pinned:pinned', top: () => fixtureOf('docker/single:v2').digest, instance: () => fixtureOf('docker/single:v2').digest, platform: 'linux/amd64' },
  { kind: 'platform filter (arm64 only)', ref: 'filtered/list:2.0', top: () => first.filtered[0]!.to, instance: platformDigest('docker/list:2.0', 'linux/arm64'), platform: 'linux/arm64' },
  { kind: 'basic-auth upstream', ref: 'private/basic:1.0', top: () => fixtureOf('oci/multi:1.0').digest, instance: platformDigest('oci/multi:1.0', 'linux/amd64'), platform: 'linux/amd64' },
  { kind: 'token-auth upstream', ref: 'private/token:2.0', top: () => fixtureOf('docker/list:2.0').digest, instance: platformDigest('docker/list:2.0', 'linux/amd64'), platform: 'linux/amd64' },
  { kind: 'OCI layout source (shipped example)', ref: 'hello:1.0', top: () => exampleDigest, instance: () => exampleAmd64, platform: 'linux/amd64' },
];

const ours = (ref: string) => `127.0.0.1:${server.port}/${ref}`;


describe('build from a real upstream', () => {
  it('publishes every manifest byte-for-byte and every blob under its own hash', async () => {
    expect(first.images).toBe(12);
    expect(first.blobsFetched).toBeGreaterThan(0);
    for (const c of CASES) {
      const [name, tag] = c.ref.split(':') as [string, string];
      const tagged = await readFile(path.join(out, 'v2', name, 'manifests', tag));
      expect(`sha256:${createHash('sha256').update(tagged).digest('hex')}`, c.kind).toBe(c.top());
    }
    // Unfiltered manifests are the upstream's exact bytes, children included.
    for (const key of ['oci/multi:1.0', 'docker/list:2.0', 'docker/single:v1']) {
      const f = fixtureOf(key);
      for (const [digest, m] of Object.entries(f.manifests)) {
        expect(await readFile(path.join(out, 'v2', f.name, 'manifests', digest)), `${key} ${digest}`).toEqual(m.body);
      }
    }
    for (const file of await filesUnder(path.join(out, 'v2'))) {
      const base = path.basename(file);
      if (!base.startsWith('sha256:')) continue;
      const hex = createHash('sha256').update(await readFile(file)).digest('hex');
      expect(base, file).toBe(`sha256:${hex}`);
    }
  });

  it('publishes a filtered index for a platform filter, attestation following its image', async () => {
    expect(first.filtered).toEqual([{ image: 'filtered/list', from: fixtureOf('docker/list:2.0').digest, to: expect.stringMatching(/^sha256:/) }]);
    const index = JSON.parse(await readFile(path.join(out, 'v2/filtered/list/manifests/2.0'), 'utf8'));
    expect(index.mediaType).toBe('application/vnd.docker.distribution.manifest.list.v2+json');
    expect(index.manifests.map((m: { platform: { architecture: string } }) => m.platform.architecture)).toEqual(['arm64']);
    // The unfiltered oci/multi keeps its attestation manifest and the attestation's blobs.
    const multi = fixtureOf('oci/multi:1.0');
    for (const a of multi.attestations ?? []) {
      await readFile(path.join(out, 'v2/oci/multi/manifests', a.digest));
      for (const b of a.layerDigests) await readFile(path.join(out, 'v2/oci/multi/blobs', b));
    }
    expect(multi.attestations?.length).toBe(1);
  });

  it('writes tags/list, _catalog and a /v2/ that answers 200', async () => {
    const res = await fetch(`http://127.0.0.1:${server.port}/v2/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('docker-distribution-api-version')).toBe('registry/2.0');
    const catalog = await (await fetch(`http://127.0.0.1:${server.port}/v2/_catalog`)).json();
    expect(catalog.repositories).toEqual(
      ['a/b/c', 'docker/list', 'docker/single', 'filtered/list', 'hello', 'multitag', 'oci/multi', 'oci/single', 'pinned', 'private/basic', 'private/token', 'renamed/app'],
    );
    const tags = await (await fetch(`http://127.0.0.1:${server.port}/v2/oci/single/tags/list`)).json();
    expect(tags).toEqual({ name: 'oci/single', tags: ['1.0', 'Release.1.0-RC_1'] });
    const missing = await fetch(`http://127.0.0.1:${server.port}/v2/oci/single/manifests/nope`);
    expect(missing.status).toBe(404);
  });

  it('never writes or logs the upstream credentials', async () => {
    const secrets = [BASIC.pass, TOKEN.pass, Buffer.from(`${BASIC.user}:${BASIC.pass}`).toString('base64'), Buffer.from(`${TOKEN.user}:${TOKEN.pass}`).toString('base64')];
    const texts = [logs.join('\n'), ...(await Promise.all((await filesUnder(out)).filter((f) => !path.basename(f).startsWith('sha256:')).map((f) => readFile(f, 'utf8'))))];
    for (const s of secrets) for (const t of texts) expect(t.includes(s)).toBe(false);
  });
});

describe.each(CLIENTS)('%s pulls every image kind from the preview server', (client) => {
  it.each(CASES.map((c) => [c.kind, c] as const))('%s', async (_kind, c) => {
    await expectPull(client, `127.0.0.1:${server.port}`, c, { containerd, dockerd });
  });
});

describe('clients on edge cases', () => {
  it('skopeo picks the arm64 child of an index, and copies an index by digest with --all', async () => {
    const arm = await skopeoCopy(ours('oci/multi:1.0'), { arch: 'arm64' });
    expect(arm.manifestDigest).toBe(platformDigest('oci/multi:1.0', 'linux/arm64')());
    const all = await skopeoCopy(ours(`oci/multi@${fixtureOf('oci/multi:1.0').digest}`), { all: true });
    expect(all.manifestDigest).toBe(fixtureOf('oci/multi:1.0').digest);
  });

  it('containerd pulls the arm64 child of a Docker manifest list', async () => {
    const r = await ctrPull(containerd.address, ours('docker/list:2.0'), { platform: 'linux/arm64' });
    expect(r.unpacked.join(' ')).toMatch(/arm64/);
  });

  it('a client on a filtered-out platform gets "no match", not a 404', async () => {
    await expect(ctrPull(containerd.address, ours('filtered/list:2.0'), { platform: 'linux/amd64' })).rejects.toThrow(/no match for platform/i);
    await expect(dockerPull(dockerd.host, ours('filtered/list:2.0'))).rejects.toThrow(/no matching manifest for linux\/amd64/i);
  });
});

describe('rebuilds', () => {
  it('a first build (empty cache) fetches each tag by GET at once: a HEAD could not find anything cached', () => {
    const manifestRequests = coldRequests.filter((r) => r.includes('/manifests/'));
    expect(manifestRequests.length).toBeGreaterThanOrEqual(8);
    expect(manifestRequests.filter((r) => r.startsWith('HEAD '))).toEqual([]);
  });

  it('a missing tag is named the same way on a first build (GET) and a later one (HEAD)', async () => {
    const dir = makeTempDir('rsh-missing-');
    try {
      const images = path.join(dir, 'images.json');
      const fresh = path.join(dir, 'fresh-cache');
      await writeFile(images, JSON.stringify({ images: [`${up.host}/docker/single:no-such-tag`] }));
      const failure = (cacheDir: string) => build({ images, outputDir: path.join(dir, 'out'), cacheDir }).then(() => 'built', (e: Error) => e.message);
      expect(await failure(fresh)).toMatch(/docker\/single: tag "no-such-tag" not found/);
      expect(await failure(cache)).toMatch(/docker\/single: tag "no-such-tag" not found/);
    } finally {
      removeDir(dir);
    }
  });

  it('a warm rebuild downloads no blob and sends at most one manifest request per image', async () => {
    requests = [];
    const warm = await build();
    expect(warm.blobsFetched).toBe(0);
    expect(warm.bytesFetched).toBe(0);
    expect(warm.manifestsFetched).toBe(0);
    const manifestRequests = requests.filter((r) => r.includes('/manifests/'));
    const blobRequests = requests.filter((r) => r.includes('/blobs/'));
    expect(blobRequests).toEqual([]);
    // Eleven registry entries, one with two tags: one is pinned by digest (cached: no request) and
    // three share a source tag with another (resolved once per build), so eight source tags, one
    // HEAD each. The two auth
    // upstreams answer their first HEAD with a 401 challenge and get the same HEAD again with
    // credentials: at most two more requests, never a GET.
    expect(manifestRequests.every((r) => r.startsWith('HEAD '))).toBe(true);
    expect(new Set(manifestRequests).size).toBe(8);
    expect(manifestRequests.length).toBeLessThanOrEqual(10);
  });

  it('follows a tag that moved upstream, fetching only what is new', async () => {
    const v2 = fixtureOf('docker/single:v2');
    await tagManifest(up.url, 'docker/single', 'v1', v2.manifests[v2.digest]!.body, v2.mediaType);
    requests = [];
    const moved = await build();
    // docker/single:v2's blobs are already cached (the pinned entry uses them): nothing to download.
    expect(moved.blobsFetched).toBe(0);
    const tagged = await readFile(path.join(out, 'v2/renamed/app/manifests/stable'));
    expect(`sha256:${createHash('sha256').update(tagged).digest('hex')}`).toBe(v2.digest);
    const r = await skopeoCopy(ours('docker/single:v1'));
    expect(r.manifestDigest).toBe(v2.digest);
  });
});
