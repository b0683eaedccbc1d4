// The benchmark (npm run bench): what a user feels, measured on the user's own command — `npx
// eleventy` in a site with the plugin, whole process, GNU time for wall time and peak RSS — and, to
// explain it, the build alone in-process. One local upstream docker-registry, seeded
// deterministically; ours and the reference alternate run by run, so drift hits both alike.
//
//   1. cold, large layers (3 images × 2 × 50 MB + one 256 MiB layer) vs `skopeo sync`
//   2. cold, many small tags (51 images × 4 tags + a 3-platform index: 205 tags) vs `skopeo sync`
//   3. memory: a site mirroring one 1 GiB layer vs the same site with the shipped example image
//   4. warm rebuild at 205 tags vs the same site without the plugin; in-process vs curl's HEADs
//   5. start-up: what `import('registrish')` costs in time and RSS
// and the machine's bounds (sha256 on one core, curl to /dev/null, the same work by C tools).
// Writes the `main` section of docs/performance.md.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import os from 'node:os';
import { parseArgs } from 'node:util';
import {
  coldSite,
  holdUntilSignal,
  keystream,
  machineLine,
  makeSite,
  MB,
  median,
  MiB,
  npxEleventy,
  OCI_INDEX,
  OCI_MANIFEST,
  pushImage,
  putManifest,
  randomFile,
  requireTools,
  ROOT,
  Series,
  spread,
  timed,
  writeSection,
  type FileBlob,
} from './lib.ts';
import { startRegistry } from '../test/harness/upstream.ts';

const { values: args } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    scale: { type: 'string', default: '1' },
    seed: { type: 'string', default: 'registrish-bench-2' },
    'no-write': { type: 'boolean', default: false },
    // Seed, write the sites, print where they are and keep the upstream running until Ctrl-C: for
    // profiling one build at a time (cd SITE && node --cpu-prof node_modules/.bin/eleventy).
    hold: { type: 'boolean', default: false },
  },
});
const RUNS = Number(args.runs);
const SCALE = Number(args.scale);
const SEED = args.seed!;
const WORK = path.join(os.tmpdir(), `registrish-bench-${process.pid}`);
const GIB = `${1024 * SCALE} MiB`;
const log = (m: string): void => void process.stderr.write(`bench: ${m}\n`);

// ---------------------------------------------------------------------------------------------
// The data sets.

interface DataSet {
  /** name → tags */
  images: Map<string, string[]>;
  /** every blob's URL path, for the machine bounds */
  blobPaths: string[];
  bytes: number;
}

const AMD64 = { os: 'linux', architecture: 'amd64' };

async function seedAll(base: string): Promise<{ large: DataSet; small: DataSet; gib: DataSet }> {
  const dir = path.join(WORK, 'seed');
  await mkdir(dir, { recursive: true });
  const set = (): DataSet => ({ images: new Map(), blobPaths: [], bytes: 0 });
  const layer = async (into: DataSet, name: string, label: string, size: number): Promise<FileBlob> => {
    const b = await randomFile(path.join(dir, label), Math.max(1024, Math.round(size)), SEED, label);
    into.blobPaths.push(`/v2/${name}/blobs/${b.digest}`);
    into.bytes += b.size;
    return b;
  };
  const dropFiles = async (): Promise<void> => {
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
  };

  const large = set();
  for (let i = 1; i <= 3; i++) {
    const name = `large/big-${i}`;
    await pushImage(base, name, [await layer(large, name, `${name}-a`.replace('/', '-'), 50 * MB * SCALE), await layer(large, name, `${name}-b`.replace('/', '-'), 50 * MB * SCALE)], AMD64, 'v1');
    large.images.set(name, ['v1']);
  }
  await pushImage(base, 'large/huge', [await layer(large, 'large/huge', 'large-huge', 256 * MiB * SCALE)], AMD64, 'v1');
  large.images.set('large/huge', ['v1']);
  await dropFiles();

  const small = set();
  for (let i = 1; i <= 51; i++) {
    const name = `small/s-${String(i).padStart(2, '0')}`;
    const m = await pushImage(base, name, [await layer(small, name, name.replace('/', '-'), 4096)], AMD64, 't1');
    for (const t of ['t2', 't3', 't4']) await putManifest(base, name, t, m.bytes, OCI_MANIFEST);
    small.images.set(name, ['t1', 't2', 't3', 't4']);
  }
  const children = [];
  for (const p of [AMD64, { os: 'linux', architecture: 'arm64', variant: 'v8' }, { os: 'linux', architecture: 'arm', variant: 'v7' }]) {
    children.push(await pushImage(base, 'small/multi', [await layer(small, 'small/multi', `multi-${p.architecture}`, 1 * MB)], p));
  }
  const index = { schemaVersion: 2, mediaType: OCI_INDEX, manifests: children.map((c) => ({ mediaType: c.mediaType, digest: c.digest, size: c.size, platform: c.platform })) };
  await putManifest(base, 'small/multi', 'v1', Buffer.from(JSON.stringify(index)), OCI_INDEX);
  small.images.set('small/multi', ['v1']);

  const gib = set();
  await pushImage(base, 'mem/gib', [await layer(gib, 'mem/gib', 'mem-gib', 1024 * MiB * SCALE)], AMD64, 'v1');
  gib.images.set('mem/gib', ['v1']);
  await dropFiles();
  return { large, small, gib };
}

const tagsOf = (s: DataSet): number => [...s.images.values()].reduce((n, t) => n + t.length, 0);
const imagesJson = (host: string, s: DataSet) => ({ images: [...s.images].map(([name, tags]) => ({ source: `${host}/${name}`, name, tags })) });
const syncYaml = (host: string, s: DataSet): string =>
  `${host}:\n  tls-verify: false\n  images:\n${[...s.images].map(([n, t]) => `    ${n}: [${t.join(', ')}]`).join('\n')}\n`;

// ---------------------------------------------------------------------------------------------

interface Row {
  what: string;
  /** how to run this line alone (after --hold) */
  how: string;
  s?: Series;
  /** in-process seconds (our rows) */
  inner?: number[];
  note?: string;
}

const f2 = (n: number): string => n.toFixed(2);

/** The summary the bench entry prints (the build alone, in-process), as JSON. */
function lastJson(text: string): Record<string, any> {
  return JSON.parse(text.trim().split('\n').at(-1)!);
}

async function main(): Promise<void> {
  requireTools(['/usr/bin/time', 'time'], ['curl', 'curl'], ['openssl', 'openssl'], ['skopeo', 'skopeo'], ['docker-registry', 'docker-registry']);
  if (!existsSync(path.join(ROOT, 'dist/index.js'))) throw new Error('bench: dist/ is missing: run node scripts/build-dist.mjs (bench/run.sh does)');
  await mkdir(WORK, { recursive: true });
  const up = await startRegistry({ storageDir: path.join(WORK, 'upstream'), descriptorCache: true });
  const rows: Row[] = [];
  const targets: Array<[string, string, boolean | null]> = [];
  try {
    log(`seeding ${up.host} (scale ${SCALE})…`);
    const { large, small, gib } = await seedAll(up.url);
    const example = { images: [{ source: `oci:${path.join(ROOT, 'example/hello')}:1.0`, name: 'hello' }] };
    const sites = {
      large: await makeSite(path.join(WORK, 'site-large'), { images: imagesJson(up.host, large), plugin: {} }),
      small: await makeSite(path.join(WORK, 'site-small'), { images: imagesJson(up.host, small), plugin: {} }),
      smallNoPages: await makeSite(path.join(WORK, 'site-small-nopages'), { images: imagesJson(up.host, small), plugin: { pages: false } }),
      bare: await makeSite(path.join(WORK, 'site-bare'), { images: imagesJson(up.host, small), plugin: false }),
      gib: await makeSite(path.join(WORK, 'site-gib'), { images: imagesJson(up.host, gib), plugin: {} }),
      example: await makeSite(path.join(WORK, 'site-example'), { images: example, plugin: {} }),
    };
    for (const [n, s] of [['large', large], ['small', small]] as const) await writeFile(path.join(WORK, `${n}.yaml`), syncYaml(up.host, s));
    await writeFile(path.join(WORK, 'auth.json'), '{"auths":{}}');
    const skopeoEnv = { ...process.env, REGISTRY_AUTH_FILE: path.join(WORK, 'auth.json') };
    const skopeoSync = async (set: 'large' | 'small') => {
      const dest = path.join(WORK, `sync-${set}`);
      await rm(dest, { recursive: true, force: true });
      const m = await timed('skopeo', ['sync', '--all', '--src', 'yaml', '--dest', 'dir', '--src-no-creds', path.join(WORK, `${set}.yaml`), dest], { env: skopeoEnv });
      await rm(dest, { recursive: true, force: true });
      return m;
    };
    // The build alone, in-process (buildRegistry through the bench entry, no Eleventy).
    const inProcess = async (set: DataSet, sub: string, fresh: boolean) => {
      const file = path.join(WORK, `${sub}.images.json`);
      await writeFile(file, JSON.stringify(imagesJson(up.host, set)));
      const [out, cache] = [path.join(WORK, `${sub}-out`), path.join(WORK, `${sub}-cache`)];
      if (fresh) for (const d of [out, cache]) await rm(d, { recursive: true, force: true });
      return timed('node', [path.join(ROOT, 'bench/build.mjs'), file, out, cache]);
    };
    if (args.hold) {
      log(`holding; upstream ${up.url}; sites:\n${Object.values(sites).join('\n')}\nCtrl-C to stop`);
      await holdUntilSignal();
      return;
    }

    // 1–2. Cold builds against skopeo sync, alternating.
    for (const [set, data, site] of [['large', large, sites.large], ['small', small, sites.small]] as const) {
      const ours: Row = { what: `\`npx eleventy\`, cold — ${set} set`, how: `cd site-${set} && rm -rf _site .cache && npx eleventy`, s: new Series() };
      const theirs: Row = { what: `\`skopeo sync --all\` yaml → dir — ${set} set`, how: `skopeo sync --all --src yaml --dest dir ${set}.yaml DIR`, s: new Series() };
      const alone: Row = { what: `the build alone, in-process, cold — ${set} set`, how: `node bench/build.mjs IMAGES OUT CACHE (fresh OUT and CACHE)`, s: new Series(), inner: [] };
      let summary: Record<string, any> = {};
      for (let r = 0; r < RUNS; r++) {
        await coldSite(site);
        const a = ours.s!.add(await npxEleventy(site));
        const b = theirs.s!.add(await skopeoSync(set));
        const c = alone.s!.add(await inProcess(data, set, true));
        summary = lastJson(c.stdout);
        alone.inner!.push(summary.ms / 1000);
        log(`cold ${set} ${r + 1}/${RUNS}: npx eleventy ${a.wall}s, skopeo sync ${b.wall}s, in-process ${f2(summary.ms / 1000)}s`);
      }
      alone.note = `${(summary.bytesFetched / MB).toFixed(0)} MB fetched; requests ${JSON.stringify(summary.requests)}`;
      rows.push(ours, theirs, alone);
      targets.push([
        `Cold, whole process ≤ 0.5× skopeo sync — ${set} set (${data.images.size} images, ${tagsOf(data)} tags, ${(data.bytes / MB).toFixed(0)} MB)`,
        `${f2(ours.s!.wall / theirs.s!.wall)}× (${f2(ours.s!.wall)} s vs ${f2(theirs.s!.wall)} s)`,
        ours.s!.wall <= 0.5 * theirs.s!.wall,
      ]);
    }

    // The machine's bounds on the large set: sha256 on one core; six curls to /dev/null; the same
    // work as a build (receive, write a file, hash) done by C tools, six at a time.
    const shaBuf = keystream(SEED, 'sha').update(Buffer.alloc(64 * MiB));
    const t0 = performance.now();
    const h = createHash('sha256');
    for (let i = 0; i < 16; i++) h.update(shaBuf);
    h.digest();
    const shaMBps = (1024 * MiB) / MB / ((performance.now() - t0) / 1000);
    const urls = path.join(WORK, 'urls.txt');
    await writeFile(urls, large.blobPaths.map((p) => `${up.url}${p}`).join('\n') + '\n');
    const fetch: Row = { what: 'every large-set blob to /dev/null (curl ×6)', how: `xargs -P 6 -n 1 curl -s -o /dev/null < urls.txt`, s: new Series() };
    const ctools: Row = { what: 'every large-set blob received, written and hashed by C tools (curl \\| tee \\| openssl ×6)', how: `xargs -P 6 -I URL sh -c 'curl -s URL \\| tee DIR/… \\| openssl dgst -sha256' < urls.txt`, s: new Series() };
    const shellDir = path.join(WORK, 'shell');
    for (let r = 0; r < RUNS; r++) {
      fetch.s!.add(await timed('bash', ['-c', `xargs -P 6 -n 1 curl -s -o /dev/null < ${urls}`]));
      await rm(shellDir, { recursive: true, force: true });
      await mkdir(shellDir, { recursive: true });
      ctools.s!.add(await timed('bash', ['-c', `xargs -P 6 -I URL sh -c 'curl -s "URL" | tee "${shellDir}/$(basename URL)" | openssl dgst -sha256 >/dev/null' < ${urls}`]));
    }
    await rm(shellDir, { recursive: true, force: true });
    fetch.note = `${(large.bytes / MB / fetch.s!.wall).toFixed(0)} MB/s`;
    ctools.note = `${(large.bytes / MB / ctools.s!.wall).toFixed(0)} MB/s: the floor of a cold build's data path on this machine`;
    rows.push(fetch, ctools);
    const largeCold = rows[0]!.s!;
    targets.push([
      'Cold, large set: whole process vs the same work by C tools',
      `${f2(largeCold.wall)} s vs ${f2(ctools.s!.wall)} s (${f2(largeCold.wall / ctools.s!.wall)}×); skopeo sync ${f2(rows[1]!.s!.wall / ctools.s!.wall)}× of it`,
      null,
    ]);

    // 3. Memory: the 1 GiB layer vs the shipped example image, same kind of site, cold.
    const big: Row = { what: `\`npx eleventy\`, cold — one ${GIB} layer`, how: 'cd site-gib && rm -rf _site .cache && npx eleventy', s: new Series() };
    const small1: Row = { what: '`npx eleventy`, cold — the shipped example image', how: 'cd site-example && rm -rf _site .cache && npx eleventy', s: new Series() };
    for (let r = 0; r < RUNS; r++) {
      await coldSite(sites.gib);
      big.s!.add(await npxEleventy(sites.gib));
      await coldSite(sites.example);
      small1.s!.add(await npxEleventy(sites.example));
      log(`memory ${r + 1}/${RUNS}: ${GIB} ${f2(big.s!.rss.at(-1)!)} MB, example ${f2(small1.s!.rss.at(-1)!)} MB`);
    }
    await coldSite(sites.gib);
    const gibUrl = `${up.url}${gib.blobPaths[0]}`;
    const bare: Row = { what: `reference: the ${GIB} layer received by undici and hashed, nothing else`, how: 'node bench/fetch-only.mjs URL undici', s: new Series() };
    const bareHttp: Row = { what: 'reference: the same with node:http', how: 'node bench/fetch-only.mjs URL http', s: new Series() };
    const empty: Row = { what: 'reference: `node -e 0`', how: 'node -e 0', s: new Series() };
    for (let r = 0; r < RUNS; r++) {
      bare.s!.add(await timed('node', [path.join(ROOT, 'bench/fetch-only.mjs'), gibUrl, 'undici']));
      bareHttp.s!.add(await timed('node', [path.join(ROOT, 'bench/fetch-only.mjs'), gibUrl, 'http']));
      empty.s!.add(await timed('node', ['-e', '0']));
    }
    rows.push(big, small1, bare, bareHttp, empty);
    targets.push([
      `Memory: peak RSS mirroring a ${GIB} layer ≤ the example site + 40 MB`,
      `${big.s!.peak.toFixed(0)} MB vs ${small1.s!.peak.toFixed(0)} MB (+${(big.s!.peak - small1.s!.peak).toFixed(0)} MB)`,
      big.s!.peak <= small1.s!.peak + 40,
    ]);
    targets.push([
      `Memory: receiving ${GIB}, undici vs node:http, above \`node -e 0\``,
      `undici +${(bare.s!.peak - empty.s!.peak).toFixed(0)} MB, node:http +${(bareHttp.s!.peak - empty.s!.peak).toFixed(0)} MB`,
      null,
    ]);

    // 4. Warm rebuilds at 205 tags: with the plugin, without its pages, without the plugin.
    for (const s of [sites.small, sites.smallNoPages, sites.bare]) await npxEleventy(s); // small is warm already; the others fill theirs
    const warm: Row = { what: `\`npx eleventy\`, warm (nothing changed) — small set, ${tagsOf(small)} tags`, how: 'cd site-small && npx eleventy (again)', s: new Series() };
    const warmNoPages: Row = { what: 'the same with `pages: false`', how: 'cd site-small-nopages && npx eleventy (again)', s: new Series() };
    const warmBare: Row = { what: 'the same site without the plugin', how: 'cd site-bare && npx eleventy', s: new Series() };
    for (let r = 0; r < RUNS * 2; r++) {
      warm.s!.add(await npxEleventy(sites.small));
      warmNoPages.s!.add(await npxEleventy(sites.smallNoPages));
      warmBare.s!.add(await npxEleventy(sites.bare));
    }
    // In-process: the build alone against its floor, the upstream answering one HEAD per tag.
    await inProcess(small, 'small', true);
    const warmAlone: Row = { what: 'the build alone, in-process, warm — small set', how: 'node bench/build.mjs IMAGES OUT CACHE (again)', s: new Series(), inner: [] };
    const heads: Row = { what: `one HEAD per tag, nothing else (curl, 8 connections): ${tagsOf(small)} HEADs`, how: `xargs -P 8 -n N curl -s -I < heads.txt > /dev/null`, s: new Series() };
    const headList = path.join(WORK, 'heads.txt');
    await writeFile(headList, [...small.images].flatMap(([n, tags]) => tags.map((t) => `${up.url}/v2/${n}/manifests/${t}`)).join('\n') + '\n');
    let warmSummary: Record<string, any> = {};
    for (let r = 0; r < RUNS * 2; r++) {
      const m = warmAlone.s!.add(await inProcess(small, 'small', false));
      warmSummary = lastJson(m.stdout);
      warmAlone.inner!.push(warmSummary.ms / 1000);
      heads.s!.add(await timed('bash', ['-c', `xargs -P 8 -n ${Math.ceil(tagsOf(small) / 8)} curl -s -I -H 'Accept: ${OCI_MANIFEST}, ${OCI_INDEX}' < ${headList} > /dev/null`]));
    }
    warmAlone.note = `${warmSummary.bytesFetched} blob bytes fetched; requests ${JSON.stringify(warmSummary.requests)}`;
    // One tag moved upstream (to a manifest with a new small layer) before each run.
    const moved: Row = { what: '`npx eleventy`, one tag moved upstream — small set', how: 'push a new small-01:t1, then npx eleventy', s: new Series() };
    for (let r = 0; r < RUNS; r++) {
      const l = await randomFile(path.join(WORK, `moved-${r}`), 4096, SEED, `moved-${r}`);
      await pushImage(up.url, 'small/s-01', [l], AMD64, 't1');
      moved.s!.add(await npxEleventy(sites.small));
    }
    rows.push(warm, warmNoPages, warmBare, warmAlone, heads, moved);
    const manifestRequests = warmSummary.requests.manifestHead + warmSummary.requests.manifestGet;
    targets.push(
      ['Warm: 0 blob bytes fetched, ≤ 1 manifest request per tag', `${warmSummary.bytesFetched} bytes; ${(manifestRequests / tagsOf(small)).toFixed(2)} per tag`, warmSummary.bytesFetched === 0 && manifestRequests <= tagsOf(small)],
      [
        'Warm, whole process ≤ the site without the plugin + 0.15 s (205 tags, default pages)',
        `${f2(warm.s!.wall)} s vs ${f2(warmBare.s!.wall)} s (+${f2(warm.s!.wall - warmBare.s!.wall)} s)`,
        warm.s!.wall <= warmBare.s!.wall + 0.15,
      ],
      ['… the same with `pages: false`', `${f2(warmNoPages.s!.wall)} s (+${f2(warmNoPages.s!.wall - warmBare.s!.wall)} s)`, warmNoPages.s!.wall <= warmBare.s!.wall + 0.15],
      [
        'Warm, in-process ≤ 1.5× the one-HEAD-per-tag floor (curl)',
        `${f2(median(warmAlone.inner!))} s vs ${f2(heads.s!.wall)} s (${f2(median(warmAlone.inner!) / heads.s!.wall)}×)`,
        median(warmAlone.inner!) <= 1.5 * heads.s!.wall,
      ],
    );

    // 5. Start-up: import('registrish') from a site, each in a fresh process.
    const probe = path.join(sites.example, 'import-cost.mjs');
    await writeFile(
      probe,
      `const rss0 = process.memoryUsage().rss;\nconst t0 = performance.now();\nawait import('registrish');\nconst ms = performance.now() - t0;\nconsole.log(JSON.stringify({ ms, mb: (process.memoryUsage().rss - rss0) / 1048576 }));\n`,
    );
    const imports: Array<{ ms: number; mb: number }> = [];
    for (let r = 0; r < Math.max(9, RUNS * 3); r++) imports.push(lastJson((await timed('node', [probe], { cwd: sites.example })).stdout) as { ms: number; mb: number });
    const importMs = median(imports.map((i) => i.ms));
    const importMb = median(imports.map((i) => i.mb));
    rows.push({ what: "`await import('registrish')` in a fresh process", how: 'node import-cost.mjs (in a site)', note: `${importMs.toFixed(0)} ms (${spread(imports.map((i) => i.ms), 0)}), +${importMb.toFixed(1)} MB RSS` });
    targets.push(['Start-up: loading the plugin ≤ 50 ms and ≤ 10 MB', `${importMs.toFixed(0)} ms, ${importMb.toFixed(1)} MB`, importMs <= 50 && importMb <= 10]);

    // ------------------------------------------------------------------------------------------
    const table = [
      '| measurement | wall s (median) | spread | peak RSS MB (median) | in-process s | notes | reproduce (in the bench folder, after `--hold`) |',
      '|---|---|---|---|---|---|---|',
      ...rows.map((r) =>
        [
          r.what,
          r.s?.walls.length ? f2(r.s.wall) : '—',
          r.s?.walls.length ? spread(r.s.walls) : '—',
          r.s?.rss.length ? r.s.peak.toFixed(0) : '—',
          r.inner ? f2(median(r.inner)) : '—',
          r.note ?? '',
          `\`${r.how}\``,
        ].join(' | ').replace(/^/, '| ').replace(/$/, ' |'),
      ),
    ].join('\n');
    const goals = ['| target | measured | met |', '|---|---|---|', ...targets.map(([t, v, ok]) => `| ${t} | ${v} | ${ok === null ? '(reference)' : ok ? 'yes' : '**no**'} |`)].join('\n');
    const header = [
      `- date: ${new Date().toISOString()}`,
      `- machine: ${machineLine()}`,
      `- ${execFileSync('skopeo', ['--version']).toString().trim()}; ${execFileSync('docker-registry', ['--version']).toString().trim()}; Eleventy ${execFileSync('node', [path.join(ROOT, 'node_modules/@11ty/eleventy/cmd.cjs'), '--version']).toString().trim()}`,
      `- data (seed \`${SEED}\`, scale ${SCALE}): large set ${large.images.size} images, ${(large.bytes / MB).toFixed(0)} MB (3 × 2 × ${50 * SCALE} MB + one ${256 * SCALE} MiB layer); small set ${small.images.size} images, ${tagsOf(small)} tags (51 × 4 tags of one 4 KiB layer + a 3-platform index); one ${GIB} layer`,
      `- runs: ${RUNS} per measurement (warm rows ${RUNS * 2}), ours and the reference alternating; sha256 on one core ${shaMBps.toFixed(0)} MB/s`,
      `- sites: one page, \`registrish\` and Eleventy from node_modules (dist/, as an install runs it), default options unless a row says otherwise; reproduce all: \`npm run bench -- --runs ${RUNS}\``,
    ].join('\n');
    const report = `${header}\n\n${table}\n\n${goals}\n`;
    console.log(report);
    if (!args['no-write']) await writeSection('main', report, 'Results');
  } finally {
    await up.stop();
    if (!existsSync(path.join(WORK, 'keep'))) await rm(WORK, { recursive: true, force: true });
  }
}

await main();
