// The benchmark (npm run bench): seeds a local upstream docker-registry deterministically, then
// measures, in one run, our cold build, skopeo (sync and copy --all) on the same images, warm and
// tag-moved rebuilds, peak RSS, bytes and requests, and the machine's own bounds (sha256 on one
// core, raw parallel fetch of every blob). Writes docs/performance.md.
import { execFileSync, spawn } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { request } from 'undici';
import { startRegistry } from '../test/harness/upstream.ts';

const { values: args } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    scale: { type: 'string', default: '1' },
    seed: { type: 'string', default: 'registrish-bench-1' },
    'no-write': { type: 'boolean', default: false },
    // Seed, print the images.json path and keep the upstream running until Ctrl-C: for profiling
    // one build at a time (node --cpu-prof bench/build.mjs IMAGES OUT CACHE).
    hold: { type: 'boolean', default: false },
  },
});
const RUNS = Number(args.runs);
const SCALE = Number(args.scale);
const SEED = args.seed!;
const MB = 1_000_000;
const ROOT = path.resolve(import.meta.dirname, '..');
const WORK = path.join(os.tmpdir(), `registrish-bench-${process.pid}`);

// ---------------------------------------------------------------------------------------------
// Deterministic, incompressible data: AES-256-CTR keystream keyed by (seed, label).

function keystream(label: string) {
  const key = createHash('sha256').update(`${SEED}/${label}`).digest();
  return createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
}

async function randomFile(file: string, size: number, label: string): Promise<{ digest: string; size: number; file: string }> {
  const cipher = keystream(label);
  const hash = createHash('sha256');
  const out = createWriteStream(file);
  const zeros = Buffer.alloc(4 * 1024 * 1024);
  for (let left = size; left > 0; left -= zeros.length) {
    const chunk = cipher.update(left >= zeros.length ? zeros : zeros.subarray(0, left));
    hash.update(chunk);
    if (!out.write(chunk)) await new Promise((r) => out.once('drain', r));
  }
  await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
  return { digest: `sha256:${hash.digest('hex')}`, size, file };
}

// ---------------------------------------------------------------------------------------------
// Pushing through the registry API, streaming from files.

async function pushFile(base: string, name: string, blob: { digest: string; size: number; file: string }): Promise<void> {
  const start = await request(`${base}/v2/${name}/blobs/uploads/`, { method: 'POST' });
  await start.body.dump();
  const loc = new URL(String(start.headers.location), base);
  loc.searchParams.set('digest', blob.digest);
  const put = await request(loc, {
    method: 'PUT',
    headers: { 'content-type': 'application/octet-stream', 'content-length': String(blob.size) },
    body: createReadStream(blob.file),
  });
  await put.body.dump();
  if (put.statusCode !== 201) throw new Error(`push ${name} ${blob.digest}: HTTP ${put.statusCode}`);
}

async function pushBytes(base: string, name: string, bytes: Buffer): Promise<{ digest: string; size: number }> {
  const file = path.join(WORK, 'seed', `tmp-${createHash('sha256').update(bytes).digest('hex')}`);
  await writeFile(file, bytes);
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  await pushFile(base, name, { digest, size: bytes.length, file });
  return { digest, size: bytes.length };
}

async function putManifest(base: string, name: string, ref: string, doc: unknown, mediaType: string): Promise<{ digest: string; size: number }> {
  const bytes = Buffer.from(JSON.stringify(doc));
  const res = await request(`${base}/v2/${name}/manifests/${ref}`, { method: 'PUT', headers: { 'content-type': mediaType }, body: bytes });
  await res.body.dump();
  if (res.statusCode !== 201) throw new Error(`manifest ${name}:${ref}: HTTP ${res.statusCode}`);
  return { digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}`, size: bytes.length };
}

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';

/** Pushes an image whose layers are files; returns the manifest descriptor. */
async function pushImage(
  base: string,
  name: string,
  layers: Array<{ digest: string; size: number; file: string }>,
  platform: { os: string; architecture: string; variant?: string },
  tag?: string,
) {
  for (const l of layers) await pushFile(base, name, l);
  const config = await pushBytes(
    base,
    name,
    Buffer.from(JSON.stringify({ ...platform, rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) }, config: {} })),
  );
  const doc = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
    layers: layers.map((l) => ({ mediaType: LAYER, digest: l.digest, size: l.size })),
  };
  const m = await putManifest(base, name, tag ?? `sha256:${createHash('sha256').update(JSON.stringify(doc)).digest('hex')}`, doc, OCI_MANIFEST);
  return { ...m, mediaType: OCI_MANIFEST, platform };
}

interface Seeded {
  /** name → tags */
  images: Map<string, string[]>;
  /** every blob URL path, for the raw fetch bound */
  blobPaths: string[];
  blobBytes: number;
}

async function seed(base: string): Promise<Seeded> {
  const dir = path.join(WORK, 'seed');
  await mkdir(dir, { recursive: true });
  const images = new Map<string, string[]>();
  const blobPaths: string[] = [];
  let blobBytes = 0;
  const layer = async (name: string, label: string, size: number) => {
    const b = await randomFile(path.join(dir, label), Math.max(1024, Math.round(size)), label);
    blobPaths.push(`/v2/${name}/blobs/${b.digest}`);
    blobBytes += b.size;
    return b;
  };
  const amd64 = { os: 'linux', architecture: 'amd64' };
  for (let i = 1; i <= 3; i++) {
    const name = `bench/big-${i}`;
    await pushImage(base, name, [await layer(name, `big-${i}-a`, 50 * MB * SCALE), await layer(name, `big-${i}-b`, 50 * MB * SCALE)], amd64, 'v1');
    images.set(name, ['v1']);
  }
  await pushImage(base, 'bench/huge', [await layer('bench/huge', 'huge', 1024 * 1024 * 1024 * SCALE)], amd64, 'v1');
  images.set('bench/huge', ['v1']);
  for (let i = 1; i <= 50; i++) {
    const name = `bench/small-${String(i).padStart(2, '0')}`;
    const m = await pushImage(base, name, [await layer(name, `small-${i}`, 4096)], amd64, 't1');
    for (const t of ['t2', 't3', 't4']) await putManifest(base, name, t, JSON.parse((await fetchManifest(base, name, m.digest)).toString()), OCI_MANIFEST);
    images.set(name, ['t1', 't2', 't3', 't4']);
  }
  const children = [];
  for (const p of [amd64, { os: 'linux', architecture: 'arm64', variant: 'v8' }, { os: 'linux', architecture: 'arm', variant: 'v7' }]) {
    children.push(await pushImage(base, 'bench/multi', [await layer('bench/multi', `multi-${p.architecture}`, 5 * MB * SCALE)], p));
  }
  await putManifest(
    base,
    'bench/multi',
    'v1',
    { schemaVersion: 2, mediaType: OCI_INDEX, manifests: children.map((c) => ({ mediaType: c.mediaType, digest: c.digest, size: c.size, platform: c.platform })) },
    OCI_INDEX,
  );
  images.set('bench/multi', ['v1']);
  return { images, blobPaths, blobBytes };
}

async function fetchManifest(base: string, name: string, ref: string): Promise<Buffer> {
  const res = await request(`${base}/v2/${name}/manifests/${ref}`, { headers: { accept: `${OCI_MANIFEST}, ${OCI_INDEX}` } });
  return Buffer.from(await res.body.arrayBuffer());
}

// ---------------------------------------------------------------------------------------------
// Measuring whole processes with GNU time (wall seconds, peak RSS of the largest process).

interface Measured {
  wall: number;
  rssMB: number;
  stdout: string;
}

function timed(cmd: string, cmdArgs: string[], env: NodeJS.ProcessEnv = process.env): Promise<Measured> {
  const timeFile = path.join(WORK, `time-${Date.now()}-${Math.random()}`);
  return new Promise((resolve, reject) => {
    const child = spawn('/usr/bin/time', ['-f', '%e %M', '-o', timeFile, cmd, ...cmdArgs], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      if (stdout.length < 1 << 20) stdout += d;
    });
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', async (code) => {
      if (code !== 0) return reject(new Error(`${cmd} ${cmdArgs.join(' ')} exited ${code}:\n${stderr.slice(-2000)}`));
      const [wall, rss] = (await readFile(timeFile, 'utf8')).trim().split(/\s+/).map(Number) as [number, number];
      resolve({ wall, rssMB: rss / 1024, stdout });
    });
  });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const spread = (xs: number[]) => `${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)}`;

interface Row {
  what: string;
  walls: number[];
  rss: number[];
  /** The build's own time (summary.ms, without process start-up), for our rows. */
  inner?: number[];
  note?: string;
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  await mkdir(WORK, { recursive: true });
  const storage = path.join(WORK, 'upstream');
  const up = await startRegistry({ storageDir: storage, descriptorCache: true });
  const rows: Row[] = [];
  try {
    console.error(`bench: seeding ${up.host} (scale ${SCALE})…`);
    const s = await seed(up.url);
    const tagCount = [...s.images.values()].reduce((n, t) => n + t.length, 0);
    console.error(`bench: ${s.images.size} images, ${tagCount} tags, ${(s.blobBytes / MB).toFixed(0)} MB of blobs`);

    const imagesJson = path.join(WORK, 'images.json');
    await writeFile(
      imagesJson,
      JSON.stringify({ images: [...s.images].map(([name, tags]) => ({ source: `${up.host}/${name}`, name, tags })) }),
    );
    if (args.hold) {
      console.error(`bench: holding; upstream ${up.url}; images at ${imagesJson}; Ctrl-C to stop`);
      const alive = setInterval(() => {}, 60_000); // signal listeners alone do not keep Node running
      await new Promise<void>((resolve) => process.once('SIGINT', () => resolve()).once('SIGTERM', () => resolve()));
      clearInterval(alive);
      return;
    }
    const yaml = path.join(WORK, 'sync.yaml');
    await writeFile(
      yaml,
      `${up.host}:\n  tls-verify: false\n  images:\n${[...s.images].map(([n, t]) => `    ${n}: [${t.join(', ')}]`).join('\n')}\n`,
    );
    const copyScript = path.join(WORK, 'copy-all.sh');
    await writeFile(
      copyScript,
      `set -e\n${[...s.images]
        .flatMap(([n, tags]) => tags.map((t) => `skopeo copy --all --src-tls-verify=false --src-no-creds docker://${up.host}/${n}:${t} dir:"$1/${n.replace('/', '_')}_${t}"`))
        .join('\n')}\n`,
    );
    const skopeoEnv = { ...process.env, REGISTRY_AUTH_FILE: path.join(WORK, 'auth.json') };
    await writeFile(path.join(WORK, 'auth.json'), '{"auths":{}}');

    // BENCH_PROFILE=<dir> writes a V8 CPU profile of each of our builds there (node --cpu-prof).
    const profile = process.env.BENCH_PROFILE ? ['--cpu-prof', '--cpu-prof-dir', path.resolve(process.env.BENCH_PROFILE)] : [];
    const ours = (out: string, cache: string) =>
      timed('node', [...profile, path.join(ROOT, 'bench/build.mjs'), imagesJson, out, cache]);
    const fresh = async (sub: string) => {
      const d = path.join(WORK, sub);
      await rm(d, { recursive: true, force: true });
      return d;
    };

    // 1–2. Cold builds, ours and skopeo's, alternating so drift hits both alike.
    const cold: Row = { what: 'registrish cold build', walls: [], rss: [] };
    const sync: Row = { what: 'skopeo sync --all (yaml → dir)', walls: [], rss: [] };
    const copy: Row = { what: 'skopeo copy --all, one per tag', walls: [], rss: [] };
    let coldSummary: Record<string, any> = {};
    for (let r = 0; r < RUNS; r++) {
      const out = await fresh('out');
      const cache = await fresh('cache');
      const m = await ours(out, cache);
      coldSummary = JSON.parse(m.stdout.trim().split('\n').at(-1)!);
      (cold.inner ??= []).push(coldSummary.ms / 1000);
      cold.walls.push(m.wall);
      cold.rss.push(m.rssMB);
      const dest = await fresh('sync');
      const sm = await timed('skopeo', ['sync', '--all', '--src', 'yaml', '--dest', 'dir', '--src-no-creds', yaml, dest], skopeoEnv);
      sync.walls.push(sm.wall);
      sync.rss.push(sm.rssMB);
      const cdest = await fresh('copy');
      await mkdir(cdest, { recursive: true });
      const cm = await timed('bash', [copyScript, cdest], skopeoEnv);
      copy.walls.push(cm.wall);
      copy.rss.push(cm.rssMB);
      console.error(`bench: run ${r + 1}: ours ${m.wall}s, skopeo sync ${sm.wall}s, skopeo copy ${cm.wall}s`);
    }
    await rm(path.join(WORK, 'sync'), { recursive: true, force: true });
    await rm(path.join(WORK, 'copy'), { recursive: true, force: true });
    cold.note = `${(coldSummary.bytesFetched / MB).toFixed(0)} MB fetched; requests: ${JSON.stringify(coldSummary.requests)}`;
    rows.push(cold, sync, copy);

    // 3. Warm rebuilds: nothing changed upstream.
    const out = path.join(WORK, 'out');
    const cache = path.join(WORK, 'cache');
    const warm: Row = { what: 'registrish warm rebuild (nothing changed)', walls: [], rss: [] };
    let warmSummary: Record<string, any> = {};
    for (let r = 0; r < RUNS; r++) {
      const m = await ours(out, cache);
      warmSummary = JSON.parse(m.stdout.trim().split('\n').at(-1)!);
      (warm.inner ??= []).push(warmSummary.ms / 1000);
      warm.walls.push(m.wall);
      warm.rss.push(m.rssMB);
    }
    warm.note = `${warmSummary.bytesFetched} blob bytes fetched; manifest requests per tag: ${((warmSummary.requests.manifestHead + warmSummary.requests.manifestGet) / tagCount).toFixed(2)} (${JSON.stringify(warmSummary.requests)})`;
    rows.push(warm);

    // 4. One tag moved upstream (to a manifest with one new small layer), each run.
    const moved: Row = { what: 'registrish rebuild, one tag moved', walls: [], rss: [] };
    let movedSummary: Record<string, any> = {};
    for (let r = 0; r < RUNS; r++) {
      const l = await randomFile(path.join(WORK, 'seed', `moved-${r}`), 4096, `moved-${r}`);
      await pushImage(up.url, 'bench/small-01', [l], { os: 'linux', architecture: 'amd64' }, 't1');
      const m = await ours(out, cache);
      movedSummary = JSON.parse(m.stdout.trim().split('\n').at(-1)!);
      (moved.inner ??= []).push(movedSummary.ms / 1000);
      moved.walls.push(m.wall);
      moved.rss.push(m.rssMB);
    }
    moved.note = `${movedSummary.blobsFetched} blobs / ${movedSummary.bytesFetched} bytes fetched; ${JSON.stringify(movedSummary.requests)}`;
    rows.push(moved);

    // 5. Machine bounds, same run: sha256 on one core, raw parallel fetch of every blob.
    const shaBuf = keystream('sha').update(Buffer.alloc(64 * 1024 * 1024));
    const t0 = performance.now();
    const h = createHash('sha256');
    for (let i = 0; i < 16; i++) h.update(shaBuf);
    h.digest();
    const shaMBps = 1024 * 1024 * 1024 / MB / ((performance.now() - t0) / 1000);
    const urls = path.join(WORK, 'urls.txt');
    await writeFile(urls, s.blobPaths.map((p) => `${up.url}${p}`).join('\n') + '\n');
    const fetchWalls: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      const m = await timed('bash', ['-c', `xargs -P 6 -n 1 curl -s -o /dev/null < ${urls}`]);
      fetchWalls.push(m.wall);
    }
    const fetchMBps = s.blobBytes / MB / median(fetchWalls);
    const bound = Math.min(shaMBps, fetchMBps);
    // The same work as a build, done by C tools: receive, write a file, hash (curl | tee | openssl),
    // six at a time. It pays what /dev/null does not: the copy of every byte into the page cache.
    const shellDir = path.join(WORK, 'shell');
    const shellWalls: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      await rm(shellDir, { recursive: true, force: true });
      await mkdir(shellDir, { recursive: true });
      const m = await timed('bash', [
        '-c',
        `xargs -P 6 -I URL sh -c 'curl -s "URL" | tee "${shellDir}/$(basename URL)" | openssl dgst -sha256 >/dev/null' < ${urls}`,
      ]);
      shellWalls.push(m.wall);
    }
    await rm(shellDir, { recursive: true, force: true });
    const shellMBps = s.blobBytes / MB / median(shellWalls);
    // Memory reference: the largest layer downloaded with undici and thrown away, nothing else.
    const hugeUrl = `${up.url}${s.blobPaths.find((p) => p.includes('/bench/huge/'))}`;
    const bareRss: number[] = [];
    for (let r = 0; r < RUNS; r++) bareRss.push((await timed('node', [path.join(ROOT, 'bench/fetch-only.mjs'), hugeUrl])).rssMB);
    // The floor of a warm rebuild: the upstream answering one HEAD per tag (curl, 8 connections).
    const heads = path.join(WORK, 'heads.txt');
    await writeFile(heads, [...s.images].flatMap(([n, tags]) => tags.map((t) => `${up.url}/v2/${n}/manifests/${t}`)).join('\n') + '\n');
    const headWalls: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      const per = Math.ceil(tagCount / 8);
      const m = await timed('bash', ['-c', `xargs -P 8 -n ${per} curl -s -o /dev/null -I -H 'Accept: ${OCI_MANIFEST}, ${OCI_INDEX}' < ${heads}`]);
      headWalls.push(m.wall);
    }
    const oursMBps = coldSummary.bytesFetched / MB / median(cold.walls);

    // Eleventy's own overhead: a site with only the plugin (the shipped example), and without it.
    const elev = path.join(ROOT, 'node_modules/@11ty/eleventy/cmd.cjs');
    const site = path.join(WORK, 'site');
    await mkdir(path.join(site, 'src'), { recursive: true });
    await writeFile(path.join(site, 'package.json'), '{"type":"module"}');
    await writeFile(path.join(site, 'src/index.md'), '# hi\n');
    await writeFile(path.join(site, 'images.json'), JSON.stringify({ images: [{ source: `oci:${path.join(ROOT, 'example/hello')}:1.0`, name: 'hello' }] }));
    await writeFile(
      path.join(site, 'with.config.js'),
      `import registrish from ${JSON.stringify(path.join(ROOT, 'dist/index.js'))};\nexport default (c) => { c.addPlugin(registrish); return { dir: { input: 'src', output: '_site' } }; };\n`,
    );
    await writeFile(path.join(site, 'without.config.js'), `export default () => ({ dir: { input: 'src', output: '_site' } });\n`);
    const eleventy = async (config: string) => {
      const walls: number[] = [];
      for (let r = 0; r < RUNS; r++) {
        const m = await new Promise<Measured>((resolve, reject) => {
          const timeFile = path.join(WORK, `t11-${r}`);
          const c = spawn('/usr/bin/time', ['-f', '%e %M', '-o', timeFile, 'node', elev, `--config=${config}`, '--quiet'], { cwd: site, stdio: 'ignore' });
          c.on('close', async (code) => {
            if (code !== 0) return reject(new Error(`eleventy ${config} exited ${code}`));
            const [wall, rss] = (await readFile(timeFile, 'utf8')).trim().split(/\s+/).map(Number) as [number, number];
            resolve({ wall, rssMB: rss / 1024, stdout: '' });
          });
        });
        walls.push(m.wall);
      }
      return walls;
    };
    const withPlugin = await eleventy('with.config.js');
    const withoutPlugin = await eleventy('without.config.js');

    // ------------------------------------------------------------------------------------------
    const ratio = (a: number[], b: number[]) => (median(a) / median(b)).toFixed(2);
    const table = [
      '| measurement | process wall s (median) | spread | build s, in-process (median) | peak RSS MB (median) | notes |',
      '|---|---|---|---|---|---|',
      ...rows.map(
        (r) =>
          `| ${r.what} | ${median(r.walls).toFixed(2)} | ${spread(r.walls)} | ${r.inner ? median(r.inner).toFixed(2) : '—'} | ${median(r.rss).toFixed(0)} | ${r.note ?? ''} |`,
      ),
      `| raw parallel fetch of every blob (curl ×6) | ${median(fetchWalls).toFixed(2)} | ${spread(fetchWalls)} | — | — | ${fetchMBps.toFixed(0)} MB/s |`,
      `| every blob fetched, written and hashed by C tools (curl \\| tee \\| openssl ×6) | ${median(shellWalls).toFixed(2)} | ${spread(shellWalls)} | — | — | ${shellMBps.toFixed(0)} MB/s |`,
      `| the ${(1024 * SCALE).toFixed(0)} MiB layer alone, received by undici and thrown away (same process setup) | — | — | — | ${median(bareRss).toFixed(0)} | memory reference: Node's receive path alone |`,
      `| one HEAD per tag, nothing else (curl, 8 connections) | ${median(headWalls).toFixed(2)} | ${spread(headWalls)} | — | — | ${tagCount} HEADs: the floor of a warm rebuild |`,
      `| eleventy, site + plugin (example image, warm) | ${median(withPlugin).toFixed(2)} | ${spread(withPlugin)} | — | — | |`,
      `| eleventy, same site without the plugin | ${median(withoutPlugin).toFixed(2)} | ${spread(withoutPlugin)} | — | — | |`,
    ].join('\n');
    const checks = [
      ['Cold build ≤ 0.5× skopeo sync', `${ratio(cold.walls, sync.walls)}×`, median(cold.walls) <= 0.5 * median(sync.walls)],
      ['Cold build vs skopeo copy --all per tag', `${ratio(cold.walls, copy.walls)}×`, null],
      [
        'Throughput ≥ 60% of min(sha256 bound, fetch bound)',
        `${oursMBps.toFixed(0)} MB/s = ${((oursMBps / bound) * 100).toFixed(0)}% of min(${shaMBps.toFixed(0)}, ${fetchMBps.toFixed(0)})`,
        oursMBps >= 0.6 * bound,
      ],
      [
        'Throughput vs the same work by C tools (curl \\| tee \\| openssl ×6)',
        `${oursMBps.toFixed(0)} MB/s = ${((oursMBps / shellMBps) * 100).toFixed(0)}% of ${shellMBps.toFixed(0)} MB/s`,
        null,
      ],
      ['Warm rebuild: 0 blob bytes fetched', `${warmSummary.bytesFetched}`, warmSummary.bytesFetched === 0],
      [
        'Warm rebuild: ≤ 1 manifest request per tag',
        `${((warmSummary.requests.manifestHead + warmSummary.requests.manifestGet) / tagCount).toFixed(2)}`,
        warmSummary.requests.manifestHead + warmSummary.requests.manifestGet <= tagCount,
      ],
      ['Warm rebuild ≤ 5% of cold (whole process)', `${((median(warm.walls) / median(cold.walls)) * 100).toFixed(1)}%`, median(warm.walls) <= 0.05 * median(cold.walls)],
      ['Warm rebuild ≤ 5% of cold (build time, without Node start-up)', `${((median(warm.inner!) / median(cold.inner!)) * 100).toFixed(1)}%`, median(warm.inner!) <= 0.05 * median(cold.inner!)],
      [
        'Warm rebuild (build time) vs its floor, the HEADs alone',
        `${median(warm.inner!).toFixed(2)} s vs ${median(headWalls).toFixed(2)} s (the floor alone is ${((median(headWalls) / median(cold.inner!)) * 100).toFixed(1)}% of cold)`,
        null,
      ],
      ['Peak RSS ≤ 150 MB (cold build incl. the 1 GiB layer)', `${median(cold.rss).toFixed(0)} MB`, median(cold.rss) <= 150],
      ['Peak RSS vs a bare undici download of the largest layer', `${median(cold.rss).toFixed(0)} MB vs ${median(bareRss).toFixed(0)} MB`, null],
    ] as const;
    const targets = [
      '| target | measured | met |',
      '|---|---|---|',
      ...checks.map(([t, v, ok]) => `| ${t} | ${v} | ${ok === null ? '(reference)' : ok ? 'yes' : '**no**'} |`),
    ].join('\n');
    const machine = [
      `- date: ${new Date().toISOString()}`,
      `- machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM, ${os.type()} ${os.release()}`,
      `- node ${process.version}; ${execFileSync('skopeo', ['--version']).toString().trim()}; ${execFileSync('docker-registry', ['--version']).toString().trim()}`,
      `- data set (seed \`${SEED}\`, scale ${SCALE}): ${s.images.size} images, ${tagCount} tags, ${s.blobPaths.length} blobs, ${(s.blobBytes / MB).toFixed(0)} MB — 3 images × 2 layers × ${(50 * SCALE).toFixed(0)} MB, one ${(1024 * SCALE).toFixed(0)} MiB layer, 50 small images × 4 tags, a 3-platform OCI index`,
      `- runs per measurement: ${RUNS}; sha256 on one core: ${shaMBps.toFixed(0)} MB/s`,
      '- the package was loaded from dist/ (compiled by tsc, as npm installs it)',
    ].join('\n');
    const report = `${machine}\n\n${table}\n\n${targets}\n`;
    console.log(report);
    if (!args['no-write']) await writeResults(report);
  } finally {
    await up.stop();
    if (!existsSync(path.join(WORK, 'keep'))) await rm(WORK, { recursive: true, force: true });
  }
}

/** Replaces the results section of docs/performance.md, keeping the prose around it. */
async function writeResults(report: string): Promise<void> {
  const file = path.join(ROOT, 'docs/performance.md');
  const begin = '<!-- bench:begin -->';
  const end = '<!-- bench:end -->';
  let text = existsSync(file) ? await readFile(file, 'utf8') : `# Performance\n\n${begin}\n${end}\n`;
  const i = text.indexOf(begin);
  const j = text.indexOf(end);
  text = i >= 0 && j > i ? `${text.slice(0, i + begin.length)}\n${report}${text.slice(j)}` : `${text}\n${begin}\n${report}${end}\n`;
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, text);
  console.error(`bench: results written to ${path.relative(process.cwd(), file)}`);
}

await main();
