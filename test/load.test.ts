import { readdir, readFile, readlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { buildRegistry, type BuildOptions, type BuildSummary } from '../src/build.ts';
import { DEFAULT_OPTIONS } from '../src/index.ts';
import { integrityProblems } from './harness/fault-proxy.ts';
import { buildManifest, makeLayer, pushImage } from './harness/images.ts';
import { makeTempDir, removeDir } from './harness/procs.ts';
import { startRegistry, type UpstreamRegistry } from './harness/upstream.ts';

// Load: 50 repositories × 4 tags (200 tags, 200 distinct images with a shared base layer) from
// the local upstream, with the build's own connection pool and default concurrency. Sockets and
// memory must stay bounded; the figures are printed (and quoted in docs/reliability.md).
// Reproduce: npx vitest run test/load.test.ts  (LOAD_REPOS / LOAD_TAGS to scale it)

const REPOS = Number(process.env.LOAD_REPOS ?? 50);
const TAGS = Number(process.env.LOAD_TAGS ?? 4);
/**
 * The per-origin pool size of createAgent() (src/transport.ts: `connections: opts.connections ?? 8`).
 * Hard-coded because src/transport.ts does not export it: keep the two in step.
 */
const POOL = 8;

let storage: string;
let project: string;
let up: UpstreamRegistry;

beforeAll(async () => {
  storage = makeTempDir('rsh-load-up-');
  project = makeTempDir('rsh-load-');
  up = await startRegistry({ storageDir: storage });
  const base = makeLayer([{ name: 'etc/base.txt', content: 'shared base layer\n' }]);
  const repos = Array.from({ length: REPOS }, (_, r) => r);
  // A few repositories at a time: the registry is local, pushing is the slow part.
  for (let i = 0; i < repos.length; i += 10) {
    await Promise.all(
      repos.slice(i, i + 10).map(async (r) => {
        for (let t = 0; t < TAGS; t++) {
          const image = buildManifest({
            format: t % 2 ? 'docker' : 'oci',
            platform: { os: 'linux', architecture: 'amd64' },
            layers: [base, makeLayer([{ name: 'app.txt', content: `repo ${r} tag ${t}\n` }])],
          });
          await pushImage(up.url, `load/repo${r}`, `v${t}`, image);
        }
      }),
    );
  }
}, 300_000);

afterAll(async () => {
  await up?.stop();
  removeDir(storage);
  removeDir(project);
});

/** Inodes of the established TCP connections to the upstream's port (the client side of each). */
async function upstreamConnections(port: number): Promise<Set<string>> {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  const out = new Set<string>();
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = await readFile(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length > 9 && f[2]?.endsWith(`:${hexPort}`) && f[3] === '01') out.add(f[9]);
    }
  }
  return out;
}

/** Open sockets of this process (every kind: TCP, Unix, the test runner's IPC). */
async function openSockets(): Promise<number> {
  let n = 0;
  for (const fd of await readdir('/proc/self/fd').catch(() => [] as string[])) {
    const target = await readlink(`/proc/self/fd/${fd}`).catch(() => '');
    if (target.startsWith('socket:')) n++;
  }
  return n;
}

it(`builds ${REPOS} repositories / ${REPOS * TAGS} tags with bounded sockets and memory`, async () => {
  await writeFile(
    path.join(project, 'images.json'),
    JSON.stringify({
      images: Array.from({ length: REPOS }, (_, r) => ({ source: `${up.host}/load/repo${r}`, tags: Array.from({ length: TAGS }, (_, t) => `v${t}`) })),
    }),
  );
  const options: BuildOptions = {
    images: path.join(project, 'images.json'),
    outputDir: path.join(project, '_site'),
    cacheDir: path.join(project, '.cache'),
    hosts: ['netlify'],
    // The plugin's defaults (src/index.ts DEFAULT_OPTIONS), mapped as the plugin maps them.
    imageConcurrency: DEFAULT_OPTIONS.imageConcurrency,
    blobConcurrency: DEFAULT_OPTIONS.concurrency,
    linkMode: 'hardlink',
    logger: { info: () => {}, warn: () => {} },
    env: { DOCKER_CONFIG: path.join(project, 'none') },
  };

  const rssBefore = process.memoryUsage().rss;
  const socketsBefore = await openSockets();
  let peakRss = rssBefore;
  let peakSockets = socketsBefore;
  let peakConnections = 0;
  // Connections the seeding left open (fetch's keep-alive pool) are not the build's; nor, during the
  // second build, are the first build's, which its closed pool may still be tearing down.
  let notThisBuild = await upstreamConnections(up.port);
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      peakRss = Math.max(peakRss, process.memoryUsage().rss);
      peakSockets = Math.max(peakSockets, await openSockets());
      peakConnections = Math.max(peakConnections, [...(await upstreamConnections(up.port))].filter((i) => !notThisBuild.has(i)).length);
      await new Promise((r) => setTimeout(r, 10));
    }
  })();

  let first: BuildSummary;
  let second: BuildSummary;
  try {
    first = await buildRegistry(options);
    notThisBuild = new Set([...notThisBuild, ...(await upstreamConnections(up.port))]);
    second = await buildRegistry(options);
  } finally {
    sampling = false;
    await sampler;
  }

  const mib = (n: number) => `${(n / 1024 / 1024).toFixed(0)} MiB`;
  const figures = {
    repositories: first.repositories,
    tags: first.tags,
    blobs: first.blobs,
    firstBuildSeconds: +(first.ms / 1000).toFixed(1),
    rebuildSeconds: +(second.ms / 1000).toFixed(1),
    rssBefore: mib(rssBefore),
    peakRss: mib(peakRss),
    peakUpstreamConnections: peakConnections,
    openSocketsBefore: socketsBefore,
    peakOpenSockets: peakSockets,
  };
  console.log(`load figures: ${JSON.stringify(figures)}`);

  expect(first.repositories).toBe(REPOS);
  expect(first.tags).toBe(REPOS * TAGS);
  expect(first.blobs).toBe(1 + 2 * REPOS * TAGS);
  // The rebuild downloads nothing.
  expect(second.blobsFetched).toBe(0);
  expect(second.manifestsFetched).toBe(0);
  // One pool per build, at most POOL connections to the one upstream origin.
  expect(peakConnections).toBeLessThanOrEqual(POOL);
  expect(peakSockets - socketsBefore).toBeLessThanOrEqual(POOL + 4);
  expect(peakRss - rssBefore).toBeLessThan(300 * 1024 * 1024);
  expect(await integrityProblems(options.outputDir, options.cacheDir)).toEqual([]);
});
