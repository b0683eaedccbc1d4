import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { cp, lstat, mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PathsFile } from '../src/publish/paths-file.ts';
import { startPreviewServer } from '../src/serve/server.ts';
import { writeBigArchive } from './harness/archives.ts';
import { keyPair } from './harness/attachments.ts';
import { seedSignedApp, type SignedApp } from './harness/attachments.ts';
import { skopeoCopy } from './harness/clients.ts';
import { integrityProblems, startFaultProxy, type FaultProxy } from './harness/fault-proxy.ts';
import { entriesUnder } from './harness/fs-walk.ts';
import { buildManifest, makeLayer, makeTar, pushImage, sha256, type BuiltImage, type Layer } from './harness/images.ts';
import { countBy, killSeed, mtimeOf, namesIn, runAndKill, seeded, type KillRun } from './harness/kills.ts';
import { makeTempDir, removeDir, run, sleep } from './harness/procs.ts';
import { startRegistry, type UpstreamRegistry } from './harness/upstream.ts';

// Builds killed at random instants (issue 18): real `npx eleventy` processes, SIGKILLed as a whole
// process group (npx and the node it starts), at seeded instants across the phases of a build —
// resolving, downloading, writing v2/, rendering the pages (in that order: the registry is published
// in eleventy.before, before Eleventy renders) — cold, warm, after images.json changed
// (tag rules, attachments, an archive source, hard links and copies). Every killed run is followed
// by another on what it left, with no cleanup; after each kill the cache and the output are checked
// (every file named by a digest hashes to it; the tree being served, or the one the next build puts
// back, is complete), and each cycle ends with a build that must succeed, be checked the same way
// and pull with skopeo. Then two builds at once in one project, and two projects sharing one
// restored cache folder.
//
// Seeded: REGISTRISH_KILL_SEED=<n> npx vitest run test/kills.test.ts replays the same choices (the
// instants are relative to what the build has reached, so a loaded machine shifts them a little).

const REPO = path.resolve(import.meta.dirname, '..');
const SEED = killSeed();
const rnd = seeded(SEED);
/** The stages of a build, in the order it reaches them. */
const STAGES = ['starting/resolving', 'downloading', 'writing v2/', 'rendering pages'] as const;
type Stage = (typeof STAGES)[number];

let dir: string;
let up: UpstreamRegistry;
/** The upstream behind a slow link (about 2.7 MB/s per blob), so that downloading lasts long enough to be killed in. */
let link: FaultProxy;
let signed: SignedApp;
/** Tag → the digest skopeo must end up with. */
const expected = new Map<string, string>();
const kills: Array<KillRun & { cycle: string; trigger: string; delayMs: number }> = [];

/** A layer of `bytes` random (incompressible) bytes, gzipped fast. */
function bigLayer(bytes: number, seed: string): Layer {
  const data = createHash('sha256').update(seed).digest();
  const content = Buffer.alloc(bytes);
  // Expand the seed by hashing (fast enough for a few MiB, and the same bytes every run).
  for (let i = 0, block = data; i < bytes; i += 32, block = createHash('sha256').update(block).digest()) block.copy(content, i);
  const tar = makeTar([{ name: 'big.bin', content }]);
  const blob = zlib.gzipSync(tar, { level: 1 });
  return { tar, blob, digest: sha256(blob), diffId: sha256(tar) };
}

async function push(name: string, tag: string, image: BuiltImage): Promise<void> {
  await pushImage(up.url, name, tag, image);
  expected.set(`${name}:${tag}`, image.digest);
}

/** images.json: a plain image, tag rules, a signed image with its attachments, an archive. */
function imagesJson(variant: 1 | 2): string {
  return JSON.stringify({
    images: [
      { source: `${link.host}/big/app`, name: 'big/app', tags: variant === 1 ? ['1.0'] : ['1.0', '2.0'] },
      { source: `${link.host}/rules/app`, name: 'rules/app', tags: { semver: '>=1.1', newest: variant === 1 ? 2 : 4 } },
      { source: `${link.host}/${signed.name}:${signed.tag}`, name: signed.name, attachments: true },
      { source: 'docker-archive:archive.tar', name: 'archived/app' },
    ],
  });
}

interface Site {
  root: string;
  out: string;
  cache: string;
}

async function makeSite(name: string, options: { cache?: string; variant: 1 | 2; linkMode: 'hardlink' | 'copy' }): Promise<Site> {
  const root = path.join(dir, name);
  await mkdir(path.join(root, 'src'), { recursive: true });
  await writeFile(path.join(root, 'package.json'), '{ "type": "module" }\n');
  await writeFile(path.join(root, 'src/index.md'), '# A site\n');
  // `npx eleventy` finds Eleventy in the site's node_modules, as in a user's project.
  await symlink(path.join(REPO, 'node_modules'), path.join(root, 'node_modules'));
  await cp(path.join(dir, 'archive.tar'), path.join(root, 'archive.tar'));
  const cache = options.cache ?? path.join(root, '.cache/registrish');
  const site = { root, out: path.join(root, '_site'), cache };
  await configure(site, options.variant, options.linkMode);
  return site;
}

async function configure(site: Site, variant: 1 | 2, linkMode: 'hardlink' | 'copy'): Promise<void> {
  await writeFile(path.join(site.root, 'images.json'), imagesJson(variant));
  await writeFile(
    path.join(site.root, 'eleventy.config.js'),
    `import registrish from ${JSON.stringify(path.join(REPO, 'dist/index.js'))};
export default function (eleventyConfig) {
  eleventyConfig.addPlugin(registrish, { cacheDir: ${JSON.stringify(site.cache)}, linkMode: ${JSON.stringify(linkMode)} });
}
`,
  );
}

/** A staging folder of v2/ that was not in the output before this build: the build is writing v2/. */
const newStaging = (name: string, before: Set<string>): boolean => name.startsWith('.registrish-staging-') && !before.has(name);

const buildEnv = (): NodeJS.ProcessEnv => ({ ...process.env, DOCKER_CONFIG: path.join(dir, 'no-docker-config'), NO_COLOR: '1' });

/**
 * The stage a build in `site` has reached, from what appeared on disk since it started. The staging
 * folder of v2/ lives a few milliseconds on a small site, less than a poll: its creation is also
 * caught as it happens, by watching the output folder.
 */
function stageWatcher(site: Site): { stage: () => Stage | undefined; close: () => void } {
  const started = Date.now();
  const tmpBefore = new Set(namesIn(path.join(site.cache, 'tmp')));
  const blobsBefore = namesIn(path.join(site.cache, 'blobs/sha256')).length;
  const outBefore = new Set(namesIn(site.out));
  let staged = false;
  let watcher: fs.FSWatcher | undefined;
  try {
    watcher = fs.watch(site.out, (_, name) => {
      if (name && newStaging(String(name), outBefore)) staged = true;
    });
  } catch {
    // No output folder yet (a first build): polling only.
  }
  const stage = (): Stage | undefined => {
    if (mtimeOf(path.join(site.out, 'images/index.html')) >= started) return 'rendering pages';
    if (staged || namesIn(site.out).some((n) => newStaging(n, outBefore))) return 'writing v2/';
    if (namesIn(path.join(site.cache, 'tmp')).some((n) => !tmpBefore.has(n)) || namesIn(path.join(site.cache, 'blobs/sha256')).length > blobsBefore) {
      return 'downloading';
    }
    return undefined;
  };
  return { stage, close: () => watcher?.close() };
}

async function npxEleventy(site: Site, trigger: Stage | 'time', delayMs: number): Promise<KillRun> {
  const watcher = stageWatcher(site);
  try {
    return await runAndKill('npx', ['eleventy'], {
      cwd: site.root,
      env: buildEnv(),
      watch: watcher.stage,
      after: trigger === 'time' ? undefined : trigger,
      delayMs,
      initial: STAGES[0],
      stages: STAGES,
      timeoutMs: 60_000,
    });
  } finally {
    watcher.close();
  }
}

async function buildToEnd(site: Site): Promise<string> {
  const r = await run('npx', ['eleventy'], { cwd: site.root, env: buildEnv(), timeoutMs: 120_000 });
  return r.stdout;
}

/**
 * What a reader of the output would get wrong: the tree served (`v2/`, or the complete `-old` one a
 * build killed between its two renames leaves, which the next build puts back) must hold every file
 * its paths file lists, with its size, and each manifest and blob hashing to its digest.
 */
async function servedTreeProblems(out: string, mustExist: boolean): Promise<string[]> {
  let v2 = path.join(out, 'v2');
  if (!namesIn(out).includes('v2')) {
    const old = namesIn(out).find((n) => n.startsWith('.registrish-staging-') && n.endsWith('-old'));
    if (!old) return mustExist ? [`${out}: no v2/ (and no complete -old tree to put back): the previous output is gone`] : [];
    v2 = path.join(out, old);
  }
  let paths: PathsFile['paths'];
  try {
    paths = (JSON.parse(await readFile(path.join(v2, '.registrish-paths.json'), 'utf8')) as PathsFile).paths;
  } catch (e) {
    return [`${v2}: no readable paths file (${(e as Error).message})`];
  }
  const problems: string[] = [];
  for (const p of paths) {
    const file = path.join(v2, ...p.file.split('/').slice(1));
    let bytes: Buffer;
    try {
      bytes = await readFile(file);
    } catch {
      problems.push(`${p.file}: listed but missing`);
      continue;
    }
    if (bytes.length !== p.size) problems.push(`${p.file}: ${bytes.length} bytes, ${p.size} listed`);
    if (p.digest && (p.kind === 'manifest' || p.kind === 'blob') && sha256(bytes) !== p.digest) problems.push(`${p.file}: does not hash to ${p.digest}`);
  }
  return problems;
}

/** Files in the cache that are neither verified content nor the build's own state or temp files. */
async function strayCacheFiles(cache: string): Promise<string[]> {
  // archives/<hash>.json: an archive source's scan, kept while the archive does not change.
  const known = /^(blobs\/sha256\/[a-f0-9]{64}|tmp\/.+|(state\/)?[^/]+\.json|archives\/[a-f0-9]{64}\.json)$/;
  const entries = (await entriesUnder(cache).catch(() => [])).filter((e) => e.entry.isFile());
  const stray = entries.filter((e) => !known.test(e.rel)).map((e) => e.rel);
  // A scan index is written whole (temp file + rename) or not at all.
  for (const e of entries.filter((x) => x.rel.startsWith('archives/') && known.test(x.rel))) {
    try {
      JSON.parse(await readFile(path.join(cache, e.rel), 'utf8'));
    } catch {
      stray.push(`${e.rel} (not whole JSON)`);
    }
  }
  return stray;
}

/** Everything checked after a kill (leftovers allowed) or after a build (none in the output). */
async function check(site: Site, opts: { afterKill: boolean; hadOutput: boolean }): Promise<string[]> {
  const problems = (await integrityProblems(site.out, site.cache)).filter(
    (p) =>
      !p.endsWith('temp leftover') &&
      !(opts.afterKill && p.endsWith('staging leftover')) &&
      // A referrers answer is named by its subject's digest, not its own (checked by size in the served tree).
      !/\/referrers\/sha256:[a-f0-9]{64}: hashes to/.test(p),
  );
  problems.push(...(await servedTreeProblems(site.out, opts.hadOutput || !opts.afterKill)));
  problems.push(...(await strayCacheFiles(site.cache)).map((f) => `${site.cache}/${f}: a stray file`));
  return problems;
}

/** Pulls `tags` with skopeo from the preview server over the output, checking the digests. */
async function pull(site: Site, tags: string[]): Promise<void> {
  const serve = await startPreviewServer({ dir: site.out, port: 0 });
  try {
    for (const tag of tags) {
      const r = await skopeoCopy(`${serve.url.replace('http://', '')}/${tag}`, { arch: 'amd64', os: 'linux' });
      const want = expected.get(tag);
      if (want) expect(r.manifestDigest, tag).toBe(want);
      expect(r.files.length, tag).toBeGreaterThan(2);
    }
  } finally {
    await serve.close();
  }
}

/**
 * What the killed build was doing at the instant, from what it left: a staging folder (writing
 * v2/), temp files in the cache (downloading, whatever else ran beside), else the last stage seen.
 */
function underWay(site: Site, seen: string, tmpBefore: Set<string>, outBefore: Set<string>): string {
  if (seen === 'writing v2/' || namesIn(site.out).some((n) => newStaging(n, outBefore))) return 'writing v2/';
  if (namesIn(path.join(site.cache, 'tmp')).some((n) => !tmpBefore.has(n))) return 'downloading';
  return seen === 'downloading' ? 'resolving' : seen === 'starting/resolving' ? 'resolving' : seen;
}

interface Cycle {
  name: string;
  kills: number;
  /** Stages a kill may wait for in this cycle (a warm build downloads and writes nothing). */
  triggers: Array<Stage | 'time'>;
  /**
   * The first kills' triggers, in order, before the random picks: a build that downloads does so
   * only until one run gets its blobs through, so a random pick rarely lands there.
   */
  first?: Array<Stage | 'time'>;
  pulls: string[];
}

/** Delays after each trigger: within the stage as the build timeline on this machine measured it. */
const DELAY: Record<Stage | 'time', [number, number]> = {
  time: [0, 0],
  'starting/resolving': [0, 0],
  // A 4 MiB layer takes about 1.5 s over the slow link.
  downloading: [0, 1200],
  'rendering pages': [0, 300],
  'writing v2/': [0, 40],
};

/** Longest a whole build took so far (time-based kills land anywhere in it). */
let buildMs = 3_000;

async function killCycle(site: Site, cycle: Cycle): Promise<void> {
  let hadOutput = namesIn(site.out).includes('v2');
  const possible = new Set(cycle.triggers);
  let killed = 0;
  for (let attempt = 0; killed < cycle.kills && attempt < cycle.kills * 3; attempt++) {
    const next = cycle.first?.[attempt];
    const trigger = next !== undefined && possible.has(next) ? next : rnd.pick([...possible]);
    const [lo, hi] = trigger === 'time' ? [300, buildMs] : DELAY[trigger];
    const delayMs = rnd.int(lo, hi);
    const where = `seed ${SEED}, cycle "${cycle.name}", run ${attempt + 1}: kill ${trigger === 'time' ? `${delayMs} ms after the start` : `${delayMs} ms after "${trigger}" began`}`;
    const tmpBefore = new Set(namesIn(path.join(site.cache, 'tmp')));
    const outBefore = new Set(namesIn(site.out));
    const r = await npxEleventy(site, trigger, delayMs);
    if (r.killed) r.phase = underWay(site, r.phase, tmpBefore, outBefore);
    if (!r.killed) {
      // It finished before the instant came: it must have succeeded, and that stage will not come again.
      expect(r.code, `${where}: the build ended by itself, with an error:\n${r.output}`).toBe(0);
      possible.delete(trigger);
      if (possible.size === 0) possible.add('time');
      buildMs = Math.max(buildMs, r.atMs);
    } else {
      killed++;
      kills.push({ ...r, cycle: cycle.name, trigger, delayMs });
      if (process.env.REGISTRISH_KILL_VERBOSE) console.log(`${where}: killed at ${r.atMs} ms, during "${r.phase}"`);
    }
    const problems = await check(site, { afterKill: r.killed, hadOutput });
    expect(problems, `${where} (killed at ${r.atMs} ms, during "${r.phase}"):\n${problems.join('\n')}\n${r.output}`).toEqual([]);
    hadOutput ||= namesIn(site.out).includes('v2');
  }
  // The next build, on whatever the kills left: it must succeed and leave nothing behind.
  const t = performance.now();
  await buildToEnd(site).catch((e: Error) => {
    throw new Error(`seed ${SEED}, cycle "${cycle.name}": the build after the kills failed: ${e.message}`);
  });
  buildMs = Math.max(buildMs, performance.now() - t);
  const problems = await check(site, { afterKill: false, hadOutput: true });
  expect(problems, `seed ${SEED}, cycle "${cycle.name}": after the rebuild:\n${problems.join('\n')}`).toEqual([]);
  expect(namesIn(path.join(site.out, 'images')).length, 'the pages were written').toBeGreaterThan(1);
  await pull(site, cycle.pulls);
}

beforeAll(async () => {
  console.log(`kills: seed ${SEED} (REGISTRISH_KILL_SEED=${SEED} npx vitest run test/kills.test.ts replays it)`);
  dir = makeTempDir('rsh-kills-');
  up = await startRegistry({ storageDir: path.join(dir, 'storage') });
  // Big enough layers that downloading takes a while even on 127.0.0.1.
  const big = [bigLayer(4 << 20, 'big 1'), bigLayer(4 << 20, 'big 2')];
  const platform = { os: 'linux', architecture: 'amd64' };
  await push('big/app', '1.0', buildManifest({ format: 'docker', platform, layers: big }));
  await push('big/app', '2.0', buildManifest({ format: 'oci', platform, layers: [big[0]!, bigLayer(4 << 20, 'big 3')] }));
  for (const v of ['1.0.0', '1.1.0', '1.2.0', '1.3.0', '1.4.0', '2.0.0-rc.1']) {
    await push('rules/app', v, buildManifest({ format: 'oci', platform, layers: [makeLayer([{ name: 'v', content: `rules ${v}\n` }])] }));
  }
  signed = await seedSignedApp(up.url, up.host, keyPair('ec'));
  expected.set(`${signed.name}:${signed.tag}`, signed.amd64.digest);
  await writeBigArchive(path.join(dir, 'archive.tar'), 3 << 20);
  link = await startFaultProxy({ target: up.url });
  link.fault = async (ctx) => {
    if (ctx.req.method !== 'GET' || !ctx.url.pathname.includes('/blobs/')) return false;
    const a = await ctx.forward();
    ctx.res.writeHead(a.status, { ...a.headers, 'content-length': String(a.body.length) });
    for (let i = 0; i < a.body.length && !ctx.res.destroyed; i += 64 << 10) {
      ctx.res.write(a.body.subarray(i, i + (64 << 10)));
      await sleep(24);
    }
    ctx.res.end();
    return true;
  };
}, 120_000);

afterAll(async () => {
  const byPhase = countBy(kills, (k) => k.phase);
  console.log(`kills: seed ${SEED}: ${kills.length} kills; by phase ${JSON.stringify(byPhase)}; by cycle ${JSON.stringify(countBy(kills, (k) => k.cycle))}`);
  await link?.close();
  await up?.stop();
  if (dir) removeDir(dir);
});

describe('npx eleventy killed (SIGKILL, whole process group) at seeded random instants', () => {
  it('every build after a kill succeeds with no cleanup; cache and output always hold only verified, complete content', async () => {
    const site = await makeSite('site', { variant: 1, linkMode: 'hardlink' });
    const all: Array<Stage | 'time'> = ['time', 'downloading', 'rendering pages', 'writing v2/'];
    await killCycle(site, { name: 'cold', kills: 9, triggers: all, first: ['downloading', 'downloading', 'downloading'], pulls: ['big/app:1.0', 'rules/app:1.4.0'] });
    await killCycle(site, { name: 'warm', kills: 5, triggers: ['time', 'rendering pages'], pulls: [`${signed.name}:${signed.tag}`] });
    // images.json changed (a new tag with a new layer, two more tags by the rules) and copies instead of links.
    await configure(site, 2, 'copy');
    await killCycle(site, { name: 'changed, copies', kills: 8, triggers: all, first: ['downloading', 'downloading'], pulls: ['big/app:2.0', 'rules/app:1.2.0'] });
    // The cache lost (a CI cache not restored) under an existing output.
    await rm(site.cache, { recursive: true, force: true });
    await killCycle(site, { name: 'cold cache, output kept', kills: 6, triggers: all, first: ['downloading', 'downloading'], pulls: ['archived/app:latest'] });
    await configure(site, 1, 'hardlink');
    await killCycle(site, { name: 'changed back, links', kills: 5, triggers: all, pulls: ['big/app:1.0'] });
    expect(kills.length).toBeGreaterThanOrEqual(30);
  }, 900_000);
});

describe('builds at the same time', () => {
  async function together(sites: Site[], label: string): Promise<void> {
    const results = await Promise.all(sites.map((s) => run('npx', ['eleventy'], { cwd: s.root, env: buildEnv(), timeoutMs: 120_000, allowFailure: true })));
    results.forEach((r, i) => expect(r.code, `${label}, build ${i + 1}:\n${r.stdout}\n${r.stderr}`).toBe(0));
    for (const s of sites) {
      const problems = await check(s, { afterKill: false, hadOutput: true });
      expect(problems, `${label}: ${problems.join('\n')}`).toEqual([]);
    }
  }

  it('two builds at once in one project both succeed, cold and after images.json changed', async () => {
    const site = await makeSite('together', { variant: 1, linkMode: 'hardlink' });
    await together([site, site], 'cold');
    await configure(site, 2, 'hardlink');
    await together([site, site], 'changed');
    await pull(site, ['big/app:2.0']);
  }, 200_000);

  it('two projects sharing one restored cache folder both build at once', async () => {
    // A cache restored the way CI restores one: a copy of a full cache, new files, new inodes.
    const first = await makeSite('first', { variant: 2, linkMode: 'hardlink' });
    await buildToEnd(first);
    const shared = path.join(dir, 'shared-cache');
    await cp(first.cache, shared, { recursive: true });
    expect((await lstat(shared)).isDirectory()).toBe(true);
    const a = await makeSite('project-a', { cache: shared, variant: 1, linkMode: 'hardlink' });
    const b = await makeSite('project-b', { cache: shared, variant: 2, linkMode: 'copy' });
    await together([a, b], 'shared cache');
    await pull(a, ['big/app:1.0']);
    await pull(b, ['big/app:2.0']);
  }, 200_000);
});
