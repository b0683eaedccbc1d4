// Scale (issue 13): a synthetic registry of 1,000 and 10,000 tags over 50,000 small blobs, built by
// Eleventy with the plugin as whole processes (GNU time: wall seconds, peak RSS), cold (no cache, no
// output) and warm (nothing changed), without the pages and with them; then the size of every host
// file, and the most files in one folder. Writes its section of docs/performance.md.
//
//   node scripts/build-dist.mjs && node --import tsx bench/scale.ts [--tags 1000,10000] [--no-pages] [--no-write]
//   node --import tsx bench/scale.ts --headers-only [--tags 1000,10000,50000]   (header rules only, no build)
//
// Data set: 200 repositories × 50 tags, every tag its own OCI manifest (one config + 4 layers of
// 64–512 bytes, all distinct): 10,000 manifests, 50,000 blobs. A run of N tags publishes the first
// N/200 tags of every repository, so folders grow with N and the repositories stay the same.
//
// Seeding: pushing 50,000 blobs through the registry API is measured on a sample and extrapolated;
// the data set itself is written in distribution's filesystem layout (blobs/sha256/<2>/<hex>/data,
// repositories/<name>/_layers, _manifests/revisions, _manifests/tags/<tag>/{current,index}), which
// the registry serves as if pushed: a spot check reads a tag and a blob back through the API, and
// every cold build verifies every digest it downloads.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Agent, request } from 'undici';
import { CLOUDFLARE_MAX_RULES, checkCloudflare, cloudflareTagsFor, planCloudflareRules, renderCloudflareRules, type CloudflareTags } from '../src/hosts/cloudflare.ts';
import { NETLIFY_EXACT_MAX_RULES, netlifyHeadersForm, planNetlifyRules, renderNetlifyHeaders, renderNetlifyRules } from '../src/hosts/netlify.ts';
import { headersFor } from '../src/publish/headers.ts';
import type { PublishedPath } from '../src/model/published-path.ts';
import { readPathsFile } from '../src/publish/paths-file.ts';
import { startRegistry, type UpstreamRegistry } from '../test/harness/upstream.ts';
import { holdUntilSignal, machineLine, sha256, timed, writeSection } from './lib.ts';

const { values: args } = parseArgs({
  options: {
    tags: { type: 'string', default: '1000,10000' },
    'no-pages': { type: 'boolean', default: false },
    'no-write': { type: 'boolean', default: false },
    // Blobs pushed through the API to measure the seeding rate.
    'http-sample': { type: 'string', default: '1000' },
    // Seed, write images.json for the largest --tags, keep the upstream running until Ctrl-C: for
    // profiling one build at a time (node --heapsnapshot-near-heap-limit=1 bench/build.mjs …).
    hold: { type: 'boolean', default: false },
    // Header rules only (no seeding, no build): the published paths of the same data set, computed,
    // single-platform and multi-platform, at up to 50,000 tags; writes the "Scale: header rules" section.
    'headers-only': { type: 'boolean', default: false },
  },
});
const TAG_COUNTS = args.tags!.split(',').map(Number);
const REPOS = 200;
const TAGS_PER_REPO = 50;
const LAYERS = 4;
/** The header-rule figures go further than the builds: 250 tags a repository. */
const HEADERS_MAX_TAGS = REPOS * 250;
const maxTags = args['headers-only'] ? HEADERS_MAX_TAGS : REPOS * TAGS_PER_REPO;
if (TAG_COUNTS.some((n) => !Number.isInteger(n) || n < REPOS || n > maxTags || n % REPOS !== 0)) {
  throw new Error(`--tags: multiples of ${REPOS} up to ${maxTags}`);
}
const ROOT = path.resolve(import.meta.dirname, '..');
const WORK = path.join(os.tmpdir(), `registrish-bench-scale-${process.pid}`);
const ELEVENTY = path.join(ROOT, 'node_modules/@11ty/eleventy/cmd.cjs');
const HOSTS = ['netlify', 'nginx', 'apache'];
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
const LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';

const repoName = (r: number): string => `scale/r${String(r).padStart(3, '0')}`;
const tagName = (t: number): string => `t${String(t).padStart(2, '0')}`;
const log = (m: string): void => void process.stderr.write(`bench scale: ${m}\n`);

/** 64–512 deterministic, distinct bytes for `label`. */
function smallBlob(label: string): Buffer {
  const h = createHash('sha256').update(label).digest();
  const size = 64 + (h.readUInt16BE(0) % 449);
  const out = Buffer.alloc(size);
  for (let i = 0, block = h; i < size; i += 32, block = createHash('sha256').update(block).digest()) block.copy(out, i);
  return out;
}

interface Image {
  config: Buffer;
  layers: Buffer[];
  manifest: Buffer;
}

function image(r: number, t: number): Image {
  const layers = Array.from({ length: LAYERS }, (_, l) => smallBlob(`registrish-scale/${r}/${t}/${l}`));
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      created: '2024-01-01T00:00:00Z',
      config: { Labels: { 'org.opencontainers.image.title': `${repoName(r)}:${tagName(t)}` } },
      rootfs: { type: 'layers', diff_ids: layers.map((l) => `sha256:${sha256(l)}`) },
    }),
  );
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: OCI_CONFIG, digest: `sha256:${sha256(config)}`, size: config.length },
      layers: layers.map((l) => ({ mediaType: LAYER, digest: `sha256:${sha256(l)}`, size: l.length })),
    }),
  );
  return { config, layers, manifest };
}

// ---------------------------------------------------------------------------------------------
// Seeding.

/** distribution's filesystem layout, written directly: what a push would leave behind. */
function writeLayout(storageDir: string): { blobs: number; manifests: number } {
  const v2 = path.join(storageDir, 'docker/registry/v2');
  const put = (file: string, data: Buffer | string): void => {
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, data);
  };
  const blob = (data: Buffer): string => {
    const hex = sha256(data);
    put(path.join(v2, 'blobs/sha256', hex.slice(0, 2), hex, 'data'), data);
    return hex;
  };
  let blobs = 0;
  for (let r = 0; r < REPOS; r++) {
    const repo = path.join(v2, 'repositories', repoName(r));
    for (let t = 0; t < TAGS_PER_REPO; t++) {
      const img = image(r, t);
      for (const b of [img.config, ...img.layers]) {
        put(path.join(repo, '_layers/sha256', blob(b), 'link'), `sha256:${sha256(b)}`);
        blobs++;
      }
      const m = blob(img.manifest);
      put(path.join(repo, '_manifests/revisions/sha256', m, 'link'), `sha256:${m}`);
      put(path.join(repo, '_manifests/tags', tagName(t), 'current/link'), `sha256:${m}`);
      put(path.join(repo, '_manifests/tags', tagName(t), 'index/sha256', m, 'link'), `sha256:${m}`);
    }
  }
  return { blobs, manifests: REPOS * TAGS_PER_REPO };
}

/** Monolithic uploads (POST, then PUT with the digest) over 8 keep-alive connections: blobs per second. */
async function httpSeedRate(up: UpstreamRegistry, count: number): Promise<number> {
  const agent = new Agent({ connections: 8 });
  const started = performance.now();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      const bytes = smallBlob(`registrish-scale/http/${next++}`);
      const start = await request(`${up.url}/v2/seed/http/blobs/uploads/`, { method: 'POST', dispatcher: agent });
      await start.body.dump();
      if (start.statusCode !== 202) throw new Error(`upload start: HTTP ${start.statusCode}`);
      const loc = new URL(String(start.headers.location), up.url);
      loc.searchParams.set('digest', `sha256:${sha256(bytes)}`);
      const put = await request(loc, { method: 'PUT', dispatcher: agent, headers: { 'content-type': 'application/octet-stream' }, body: bytes });
      await put.body.dump();
      if (put.statusCode !== 201) throw new Error(`upload: HTTP ${put.statusCode}`);
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  await agent.close();
  return count / ((performance.now() - started) / 1000);
}

/** The layout written by hand is served: a tag's manifest and one of its blobs, by the API. */
async function spotCheck(up: UpstreamRegistry): Promise<void> {
  const img = image(REPOS - 1, TAGS_PER_REPO - 1);
  const m = await request(`${up.url}/v2/${repoName(REPOS - 1)}/manifests/${tagName(TAGS_PER_REPO - 1)}`, { headers: { accept: OCI_MANIFEST } });
  const body = Buffer.from(await m.body.arrayBuffer());
  if (m.statusCode !== 200 || !body.equals(img.manifest) || m.headers['content-type'] !== OCI_MANIFEST) {
    throw new Error(`the registry does not serve the written layout: manifest HTTP ${m.statusCode} ${String(m.headers['content-type'])}`);
  }
  const b = await request(`${up.url}/v2/${repoName(REPOS - 1)}/blobs/sha256:${sha256(img.layers[3]!)}`);
  const blob = Buffer.from(await b.body.arrayBuffer());
  if (b.statusCode !== 200 || !blob.equals(img.layers[3]!)) throw new Error(`the registry does not serve the written layout: blob HTTP ${b.statusCode}`);
}

// ---------------------------------------------------------------------------------------------
// Whole-process measurements.

interface Timed {
  wall: number;
  rssMB: number;
  /** user + system CPU seconds of the process */
  cpu: number;
}

function eleventy(cwd: string, config: string): Promise<Timed> {
  return timed(process.execPath, [ELEVENTY, `--config=${config}`, '--quiet'], { cwd });
}

interface Tree {
  files: number;
  /** The most entries of one folder, and which. */
  widest: { dir: string; entries: number };
  htaccess: { files: number; bytes: number };
}

async function walk(dir: string): Promise<Tree> {
  const tree: Tree = { files: 0, widest: { dir: '', entries: 0 }, htaccess: { files: 0, bytes: 0 } };
  const visit = async (d: string): Promise<void> => {
    const entries = await readdir(d, { withFileTypes: true });
    if (entries.length > tree.widest.entries) tree.widest = { dir: path.relative(dir, d) || '.', entries: entries.length };
    for (const e of entries) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await visit(p);
      else {
        tree.files++;
        if (e.name === '.htaccess') {
          tree.htaccess.files++;
          tree.htaccess.bytes += (await stat(p)).size;
        }
      }
    }
  };
  await visit(dir);
  return tree;
}

const size = async (file: string): Promise<number> => (await stat(file)).size;
const mb = (bytes: number): string => Number.isNaN(bytes) ? '—' : (bytes >= 1024 * 1024 ? `${(bytes / 1024 / 1024).toFixed(1)} MiB` : `${(bytes / 1024).toFixed(0)} KiB`);

interface HostFigures {
  urls: number;
  netlifyWritten: { bytes: number; rules: number };
  netlifyExact: { bytes: number; rules: number; parseS: number };
  netlifyCompact: { bytes: number; rules: number; parseS: number };
  cloudflare: { rules: number; bytes: number; error?: string };
  nginxStandalone: number;
  nginxServer: number;
  tree: Tree;
}

/** Longest a parse of `_headers` is waited for (it grows with the square of the rules). */
const PARSE_CAP_S = 30;

/**
 * Seconds @netlify/headers-parser takes to read `text` the way Netlify's build does (@netlify/config
 * addHeaders: parseAllHeaders, minimal), in a child process: wall and CPU (user + system, less
 * disturbed by other work on a shared machine); Infinity past PARSE_CAP_S.
 */
async function parseTimes(text: string): Promise<{ wall: number; cpu: number }> {
  const file = path.join(WORK, `headers-${Date.now()}`);
  await writeFile(file, text);
  const code = [
    "import { parseAllHeaders } from '@netlify/headers-parser';",
    'const t = performance.now();',
    'const c = process.cpuUsage();',
    'const r = await parseAllHeaders({ headersFiles: [process.argv[1]], configHeaders: [], minimal: true });',
    "if (r.errors.length) throw new Error(r.errors[0].message);",
    'const u = process.cpuUsage(c);',
    'console.log(JSON.stringify({ wall: (performance.now() - t) / 1000, cpu: (u.user + u.system) / 1e6 }));',
  ].join('\n');
  try {
    return await new Promise<{ wall: number; cpu: number }>((resolve, reject) => {
      const c = spawn(process.execPath, ['--input-type=module', '-e', code, file], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      c.stdout.on('data', (d) => (out += d));
      c.stderr.on('data', (d) => (err += d));
      const timer = setTimeout(() => c.kill('SIGKILL'), PARSE_CAP_S * 1000);
      c.on('close', (status, signal) => {
        clearTimeout(timer);
        if (signal === 'SIGKILL') resolve({ wall: Infinity, cpu: Infinity });
        else if (status !== 0) reject(new Error(`Netlify's parser: ${err.slice(-1000)}`));
        else resolve(JSON.parse(out) as { wall: number; cpu: number });
      });
    });
  } finally {
    await rm(file, { force: true });
  }
}

/** Wall seconds of parseTimes. */
async function parseSeconds(text: string): Promise<number> {
  return (await parseTimes(text)).wall;
}

async function hostFigures(out: string): Promise<HostFigures> {
  const paths: PublishedPath[] = await readPathsFile(out);
  const written = await readFile(path.join(out, '_headers'), 'utf8');
  const exact = renderNetlifyHeaders(paths, { headers: 'exact' });
  const compact = renderNetlifyHeaders(paths, { headers: 'compact' });
  const cfRules = planCloudflareRules(paths, { tags: cloudflareTagsFor(paths) });
  const cfError = checkCloudflare(paths).errors[0];
  return {
    urls: paths.length,
    netlifyWritten: { bytes: Buffer.byteLength(written), rules: written.split('\n').filter((l) => l.startsWith('/')).length },
    netlifyExact: { bytes: Buffer.byteLength(exact), rules: planNetlifyRules(paths, { headers: 'exact' }).length, parseS: await parseSeconds(exact) },
    netlifyCompact: { bytes: Buffer.byteLength(compact), rules: planNetlifyRules(paths, { headers: 'compact' }).length, parseS: await parseSeconds(compact) },
    cloudflare: { rules: cfRules.length, bytes: Buffer.byteLength(renderCloudflareRules(cfRules)), error: cfError },
    nginxStandalone: await size(path.join(out, '.registrish-nginx.conf')),
    nginxServer: await size(path.join(out, '.registrish-nginx-server.conf')),
    tree: await walk(path.join(out, 'v2')),
  };
}

interface Run {
  tags: number;
  blobs: number;
  cold: Timed;
  warm: Timed;
  /** A warm build with the default pages into the same output (v2/ kept as it is). */
  withPages?: Timed;
  pages?: { count: number; bytes: number };
  hosts: HostFigures;
}

/** images.json publishing the first tags/REPOS tags of every repository. */
function imagesJson(up: UpstreamRegistry, tags: number): string {
  const images = Array.from({ length: REPOS }, (_, r) => ({
    source: `${up.host}/${repoName(r)}`,
    name: repoName(r),
    tags: Array.from({ length: tags / REPOS }, (_, t) => tagName(t)),
  }));
  return JSON.stringify({ images });
}

async function measure(up: UpstreamRegistry, tags: number, withPages: boolean): Promise<Run> {
  const site = path.join(WORK, `site-${tags}`);
  await mkdir(path.join(site, 'src'), { recursive: true });
  await writeFile(path.join(site, 'package.json'), '{"type":"module"}');
  await writeFile(path.join(site, 'src/index.md'), '# A site\n');
  await writeFile(path.join(site, 'images.json'), imagesJson(up, tags));
  const config = (pages: boolean, out: string): string =>
    `import registrish from ${JSON.stringify(path.join(ROOT, 'dist/index.js'))};\n` +
    `export default (c) => { c.addPlugin(registrish, { pages: ${pages}, verbose: false, hosts: ${JSON.stringify(HOSTS)} }); ` +
    `return { dir: { input: 'src', output: ${JSON.stringify(out)} } }; };\n`;
  await writeFile(path.join(site, 'off.config.js'), config(false, '_off'));
  await writeFile(path.join(site, 'on.config.js'), config(true, '_off'));

  // Cold: no cache, no output. Warm: the same again, nothing changed upstream.
  await rm(path.join(site, '.cache'), { recursive: true, force: true });
  await rm(path.join(site, '_off'), { recursive: true, force: true });
  const cold = await eleventy(site, 'off.config.js');
  log(`${tags} tags: cold ${cold.wall} s, ${cold.rssMB.toFixed(0)} MB`);
  const warm = await eleventy(site, 'off.config.js');
  log(`${tags} tags: warm ${warm.wall} s, ${warm.rssMB.toFixed(0)} MB`);
  const run: Run = { tags, blobs: tags * (LAYERS + 1), cold, warm, hosts: await hostFigures(path.join(site, '_off')) };
  // The header-rule figures (--headers-only) compute these paths: they must be what the build published.
  assertSameHeaders(await readPathsFile(path.join(site, '_off')), datasetPaths(tags, 'single'));

  if (withPages) {
    // The same warm build with the default pages: nothing changed upstream, so v2/ is kept and the
    // difference is what the pages cost.
    run.withPages = await eleventy(site, 'on.config.js');
    log(`${tags} tags: warm with pages ${run.withPages.wall} s`);
    const html = (await readdir(path.join(site, '_off/images'), { recursive: true, withFileTypes: true })).filter((e) => e.isFile() && e.name.endsWith('.html'));
    const sizes = await Promise.all(html.map((e) => size(path.join(e.parentPath, e.name))));
    run.pages = { count: html.length, bytes: sizes.reduce((a, b) => a + b, 0) };
  }
  await rm(site, { recursive: true, force: true });
  return run;
}

// ---------------------------------------------------------------------------------------------
// Header rules only (`--headers-only`): the published paths of the data set, computed rather than
// built (what layoutRegistry publishes for it: /v2/, /v2/_catalog, per repository its tags/list, per
// tag its manifest by tag and by digest and its blobs), so the forms of `_headers` can be measured
// at 50,000 tags without a 50,000-tag build. A full run checks that the computed paths give every
// built URL the same headers (assertSameHeaders). The multi-platform variant: every tag an OCI index
// of two platform manifests (linux/amd64, linux/arm64), each with a config and 4 layers.

const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';

function jsonPath(urlPath: string, file: string, kind: PublishedPath['kind']): PublishedPath {
  return { urlPath, file, kind, contentType: 'application/json', size: 2, immutable: false };
}

/** Every URL a registry of `tags` tags (tags/repos per repository) of the data set publishes. */
function datasetPaths(tags: number, platforms: 'single' | 'multi', repos = REPOS): PublishedPath[] {
  const paths: PublishedPath[] = [jsonPath('/v2/', 'v2/index.html', 'base'), jsonPath('/v2/_catalog', 'v2/_catalog', 'catalog')];
  const add = (base: string, kind: 'manifests' | 'blobs', ref: string, type: string, digest: string, size: number, immutable: boolean): void => {
    paths.push({ urlPath: `/${base}/${kind}/${ref}`, file: `${base}/${kind}/${ref}`, kind: kind === 'blobs' ? 'blob' : 'manifest', contentType: type, digest, size, immutable });
  };
  for (let r = 0; r < repos; r++) {
    const base = `v2/${repoName(r)}`;
    paths.push(jsonPath(`/${base}/tags/list`, `${base}/tags/list`, 'tags'));
    for (let t = 0; t < tags / repos; t++) {
      if (platforms === 'single') {
        const img = image(r, t);
        const digest = `sha256:${sha256(img.manifest)}`;
        add(base, 'manifests', tagName(t), OCI_MANIFEST, digest, img.manifest.length, false);
        add(base, 'manifests', digest, OCI_MANIFEST, digest, img.manifest.length, true);
        for (const b of [img.config, ...img.layers]) add(base, 'blobs', `sha256:${sha256(b)}`, 'application/octet-stream', `sha256:${sha256(b)}`, b.length, true);
        continue;
      }
      const label = (x: string): string => `sha256:${sha256(Buffer.from(`registrish-scale/multi/${r}/${t}/${x}`))}`;
      add(base, 'manifests', tagName(t), OCI_INDEX, label('index'), 700, false);
      add(base, 'manifests', label('index'), OCI_INDEX, label('index'), 700, true);
      for (const arch of ['amd64', 'arm64']) {
        add(base, 'manifests', label(arch), OCI_MANIFEST, label(arch), 1000, true);
        for (let b = 0; b <= LAYERS; b++) add(base, 'blobs', label(`${arch}/${b}`), 'application/octet-stream', label(`${arch}/${b}`), 300, true);
      }
    }
  }
  return paths;
}

/** The computed paths give every built URL exactly the headers the build's own paths give it. */
function assertSameHeaders(built: readonly PublishedPath[], computed: readonly PublishedPath[]): void {
  const key = (p: PublishedPath): string => `${p.urlPath} ${JSON.stringify(headersFor(p))}`;
  const a = new Set(built.map(key));
  const b = new Set(computed.map(key));
  const missing = [...a].filter((k) => !b.has(k));
  if (missing.length || a.size !== b.size) throw new Error(`computed paths differ from the build's (${a.size} vs ${b.size}), e.g. ${missing[0]}`);
}

/** CPU seconds of the least of `n` parses (the machine is shared; the least is the one least disturbed). */
async function parseBest(text: string, n: number): Promise<number> {
  let best = Infinity;
  for (let i = 0; i < n; i++) {
    best = Math.min(best, (await parseTimes(text)).cpu);
    if (best === Infinity) break;
  }
  return best;
}

/** Above this many rules the exact form is not parsed (its size alone: 20,000 rules took 66 s). */
const EXACT_PARSE_MAX_RULES = 100_000;

interface HeaderRow {
  set: string;
  tags: number;
  urls: number;
  exact: { rules: number; bytes: number; parseS: number };
  compact: { rules: number; exactRules: number; bytes: number; parseS: number };
  auto: string;
  cloudflare: { exact: number; compact: number };
}

async function headerRow(tags: number, platforms: 'single' | 'multi'): Promise<HeaderRow> {
  const paths = datasetPaths(tags, platforms);
  const exact = planNetlifyRules(paths, { headers: 'exact' });
  const exactText = renderNetlifyRules(exact);
  const compact = planNetlifyRules(paths, { headers: 'compact' });
  const compactText = renderNetlifyRules(compact);
  const row: HeaderRow = {
    set: platforms === 'single' ? 'single-platform' : 'multi-platform (index of 2)',
    tags,
    urls: paths.length,
    exact: { rules: exact.length, bytes: Buffer.byteLength(exactText), parseS: exact.length <= EXACT_PARSE_MAX_RULES ? await parseBest(exactText, exact.length <= 10_000 ? 3 : 1) : NaN },
    compact: { rules: compact.length, exactRules: compact.filter((r) => !r.path.includes('*')).length, bytes: Buffer.byteLength(compactText), parseS: await parseBest(compactText, 3) },
    auto: netlifyHeadersForm(paths, 'auto'),
    cloudflare: { exact: planCloudflareRules(paths, { tags: 'exact' }).length, compact: planCloudflareRules(paths, { tags: 'compact' }).length },
  };
  log(`headers: ${row.set} ${tags} tags: exact ${row.exact.rules} rules ${row.exact.parseS} s; compact ${row.compact.rules} rules ${row.compact.parseS} s`);
  return row;
}

/** Netlify's parser on the exact form of the first `n` URLs of the data set: where `auto` switches. */
async function exactCurve(sizes: number[]): Promise<Array<{ rules: number; parseS: number }>> {
  const paths = datasetPaths(2_000, 'single');
  const out: Array<{ rules: number; parseS: number }> = [];
  for (const n of sizes) {
    const rules = planNetlifyRules(paths.slice(0, n), { headers: 'exact' });
    out.push({ rules: rules.length, parseS: await parseBest(renderNetlifyRules(rules), 3) });
    log(`headers: exact form of ${n} URLs: ${out.at(-1)!.parseS} s`);
  }
  return out;
}

/**
 * The most tags Cloudflare Pages' 100 rules carry, with one rule per tag and with compact tags, for
 * `repos` repositories of the data set (tags spread evenly); past 20,000 the files limit binds first.
 */
function cloudflareCapacity(platforms: 'single' | 'multi', repos: number, tags: CloudflareTags): number | string {
  const fits = (n: number): boolean => planCloudflareRules(datasetPaths(n, platforms, repos), { tags }).length <= CLOUDFLARE_MAX_RULES;
  if (!fits(repos)) return 0;
  let lo = 1;
  let hi = 2;
  while (hi * repos <= 20_000 && fits(hi * repos)) [lo, hi] = [hi, hi * 2];
  if (hi * repos > 20_000 && fits(Math.floor(20_000 / repos) * repos)) return `all of 20,000 tried (rules do not bind; the 20,000-file limit does, first)`;
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (fits(mid * repos)) lo = mid;
    else hi = mid;
  }
  return lo * repos;
}

function headersReport(rows: HeaderRow[], curve: Array<{ rules: number; parseS: number }>, capacity: string[]): string {
  const s = (n: number): string => (Number.isNaN(n) ? 'not run' : n === Infinity ? `> ${PARSE_CAP_S} (stopped)` : n.toFixed(2));
  const int = (n: number): string => n.toLocaleString('en');
  const table = [
    '| data set | tags | URLs | exact: rules | size | parse s | compact: rules | of which exact | size | parse s | `auto` writes | Cloudflare rules (limit 100): a rule per tag | compact tags |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.set} | ${int(r.tags)} | ${int(r.urls)} | ${int(r.exact.rules)} | ${mb(r.exact.bytes)} | ${s(r.exact.parseS)} | ${int(r.compact.rules)} | ${int(r.compact.exactRules)} | ${mb(r.compact.bytes)} | ${s(r.compact.parseS)} | ${r.auto} | ${int(r.cloudflare.exact)} | ${int(r.cloudflare.compact)} |`,
    ),
  ];
  return [
    `- ${new Date().toISOString()}; machine: ${machineLine()}; @netlify/headers-parser ${parserVersion()}`,
    `- data set: ${REPOS} repositories, N/${REPOS} tags each; single-platform: each tag its own OCI manifest (config + ${LAYERS} layers), the paths a build of the seeded data set publishes (checked identical by every full run); ` +
      'multi-platform: each tag an OCI index of two platform manifests, each with a config and 4 layers',
    `- parse s: CPU seconds (user + system) of \`parseAllHeaders\` as Netlify's build calls it (minimal), in a child process, the least of 3 runs (1 above 10,000 rules), stopped at ${PARSE_CAP_S} s wall; ` +
      `"not run" above ${int(EXACT_PARSE_MAX_RULES)} rules`,
    `- reproduce: \`node --import tsx bench/scale.ts --headers-only --tags ${rows.filter((r) => r.set === rows[0]!.set).map((r) => r.tags).join(',')}\``,
    '',
    ...table,
    '',
    `Where \`auto\` switches (exact up to ${int(NETLIFY_EXACT_MAX_RULES)} URLs): Netlify's parser on the exact form of the first N URLs of the single-platform set (CPU s): ` +
      curve.map((c) => `${int(c.rules)} rules ${s(c.parseS)}`).join(', ') + '.',
    '',
    `Cloudflare Pages, the most tags its ${CLOUDFLARE_MAX_RULES} rules carry (tags spread evenly over the repositories): ${capacity.join('; ')}.`,
  ].join('\n');
}

function parserVersion(): string {
  try {
    return (JSON.parse(readFileSync(path.join(ROOT, 'node_modules/@netlify/headers-parser/package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

async function headersOnly(): Promise<void> {
  await mkdir(WORK, { recursive: true });
  try {
    const curve = await exactCurve([1_000, 2_000, 4_000, 6_000, 8_000, 10_000]);
    const rows: HeaderRow[] = [];
    for (const platforms of ['single', 'multi'] as const) for (const n of TAG_COUNTS) rows.push(await headerRow(n, platforms));
    const capacity: string[] = [];
    for (const platforms of ['single', 'multi'] as const) {
      for (const repos of [1, 10]) {
        const f = (t: CloudflareTags): string => String(cloudflareCapacity(platforms, repos, t)).replace(/^(\d+)$/u, (n) => Number(n).toLocaleString('en'));
        capacity.push(`${platforms}-platform, ${repos} repositor${repos === 1 ? 'y' : 'ies'}: ${f('exact')} with a rule per tag, ${f('compact')} with compact tags`);
        log(`headers: ${capacity.at(-1)}`);
      }
    }
    const text = headersReport(rows, curve, capacity);
    console.log(text);
    if (!args['no-write']) await writeSection('scale-headers', text, 'Scale: header rules');
  } finally {
    await rm(WORK, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// The report.

function report(runs: Run[], seed: { layoutS: number; httpRate: number; blobs: number; manifests: number }, versions: string): string {
  const cols = runs.map((r) => `${r.tags.toLocaleString('en')} tags`);
  const first = runs[0]!;
  const last = runs.at(-1)!;
  const scale = last.tags / first.tags;
  const ratio = (f: (r: Run) => number): string => {
    const [a, b] = [f(first), f(last)];
    if (runs.length < 2 || !(a > 0) || Number.isNaN(b)) return '—';
    return b === Infinity ? (a === Infinity ? '—' : `> ${(PARSE_CAP_S / a).toFixed(0)}×`) : `${(b / a).toFixed(2)}×`;
  };
  const row = (label: string, f: (r: Run) => number, fmt: (n: number) => string): string =>
    `| ${label} | ${runs.map((r) => fmt(f(r))).join(' | ')} | ${ratio(f)} |`;
  const s = (n: number): string => (Number.isNaN(n) ? '—' : n === Infinity ? `> ${PARSE_CAP_S} (stopped)` : n.toFixed(2));
  const int = (n: number): string => (Number.isNaN(n) ? '—' : n.toLocaleString('en'));
  const rss = (n: number): string => (Number.isNaN(n) ? '—' : n.toFixed(0));
  const rows = [
    `| measurement | ${cols.join(' | ')} | growth (×${scale} tags) |`,
    `|---|${runs.map(() => '---').join('|')}|---|`,
    row('published URLs', (r) => r.hosts.urls, int),
    row('cold build (no cache, no output; `pages: false`), wall s', (r) => r.cold.wall, s),
    row('… CPU s of the build process (user + sys)', (r) => r.cold.cpu, s),
    row('… peak RSS MB', (r) => r.cold.rssMB, rss),
    row('warm build (nothing changed), wall s', (r) => r.warm.wall, s),
    row('… CPU s (user + sys)', (r) => r.warm.cpu, s),
    row('… peak RSS MB', (r) => r.warm.rssMB, rss),
    ...(runs.some((r) => r.withPages)
      ? [
          row('warm build with the default pages, wall s', (r) => r.withPages?.wall ?? NaN, s),
          row('… CPU s (user + sys)', (r) => r.withPages?.cpu ?? NaN, s),
          row('… peak RSS MB', (r) => r.withPages?.rssMB ?? NaN, rss),
          row('pages written', (r) => r.pages?.count ?? NaN, int),
          row('… their total size', (r) => r.pages?.bytes ?? NaN, mb),
        ]
      : []),
    row('Netlify `_headers` as written (auto)', (r) => r.hosts.netlifyWritten.bytes, mb),
    row('… its rules', (r) => r.hosts.netlifyWritten.rules, int),
    row('Netlify `_headers`, exact form', (r) => r.hosts.netlifyExact.bytes, mb),
    row('… rules', (r) => r.hosts.netlifyExact.rules, int),
    row("… Netlify's parser reads it in, s", (r) => r.hosts.netlifyExact.parseS, s),
    row('Netlify `_headers`, compact form', (r) => r.hosts.netlifyCompact.bytes, mb),
    row('… rules', (r) => r.hosts.netlifyCompact.rules, int),
    row("… Netlify's parser reads it in, s", (r) => r.hosts.netlifyCompact.parseS, s),
    row('Cloudflare Pages `_headers`, rules needed (limit 100; compact tags beyond it)', (r) => r.hosts.cloudflare.rules, int),
    row('… size', (r) => r.hosts.cloudflare.bytes, mb),
    row('nginx `.registrish-nginx.conf`', (r) => r.hosts.nginxStandalone, mb),
    row('nginx `.registrish-nginx-server.conf`', (r) => r.hosts.nginxServer, mb),
    row('Apache `.htaccess` files (count)', (r) => r.hosts.tree.htaccess.files, int),
    row('Apache `.htaccess`, total size', (r) => r.hosts.tree.htaccess.bytes, mb),
    row('most files in one folder', (r) => r.hosts.tree.widest.entries, int),
  ];
  // Linear or better: a figure may grow at most as much as the data (×scale), with 10% for noise.
  const figures: Array<[string, (r: Run) => number]> = [
    ['cold wall', (r) => r.cold.wall],
    ['cold CPU', (r) => r.cold.cpu],
    ['cold peak RSS', (r) => r.cold.rssMB],
    ['warm wall', (r) => r.warm.wall],
    ['warm CPU', (r) => r.warm.cpu],
    ['Netlify exact', (r) => r.hosts.netlifyExact.bytes],
    ['Netlify compact', (r) => r.hosts.netlifyCompact.bytes],
    ['nginx', (r) => r.hosts.nginxStandalone],
    ['Apache', (r) => r.hosts.tree.htaccess.bytes],
  ];
  const faster = figures.filter(([, f]) => f(last) / f(first) > scale * 1.1).map(([name]) => name);
  const verdicts =
    runs.length > 1
      ? [
          `Growth from ${first.tags.toLocaleString('en')} to ${last.tags.toLocaleString('en')} tags (×${scale}): ` +
            figures.map(([name, f]) => `${name} ${(f(last) / f(first)).toFixed(2)}×`).join(', ') +
            '. ' +
            (faster.length === 0
              ? 'Every figure grows linearly or better (at most as much as the data, with 10% for noise).'
              : `**Faster than the data: ${faster.join(', ')}.**`),
          '',
          runs
            .map(
              (r) =>
                `${r.tags.toLocaleString('en')} tags: widest folder \`${r.hosts.tree.widest.dir}\`; ` +
                (r.hosts.cloudflare.error ? `Cloudflare Pages: refused by the writer's check (${r.hosts.cloudflare.error.replace(/\|/gu, '/').slice(0, 110)}…)` : 'fits Cloudflare Pages'),
            )
            .join('. ') + '.',
        ]
      : [];
  return [
    `- ${new Date().toISOString()}; machine: ${machineLine()}`,
    `- ${versions}`,
    `- data set: ${REPOS} repositories × ${TAGS_PER_REPO} tags, each tag its own OCI manifest (config + ${LAYERS} layers of 64–512 bytes, all distinct): ` +
      `${seed.manifests.toLocaleString('en')} manifests, ${seed.blobs.toLocaleString('en')} blobs; a run of N tags publishes the first N/${REPOS} tags of every repository ` +
      `(${runs.map((r) => `${r.tags.toLocaleString('en')} tags → ${r.blobs.toLocaleString('en')} blobs`).join(', ')})`,
    `- seeding: the registry API takes ${seed.httpRate.toFixed(0)} blobs/s (monolithic PUT, 8 keep-alive connections; ${(seed.blobs / seed.httpRate).toFixed(0)} s for the blobs alone), ` +
      `so the layout was written directly in distribution's storage format (${seed.layoutS.toFixed(1)} s, on tmpfs) and read back through the API`,
    `- each build: \`node …/@11ty/eleventy/cmd.cjs\` in a site using dist/ with \`hosts: ${JSON.stringify(HOSTS)}\`, under \`/usr/bin/time -f '%e %M %U %S'\`; upstream: local docker-registry (in-memory blob descriptor cache)`,
    `- reproduce: \`node scripts/build-dist.mjs && node --import tsx bench/scale.ts --tags ${runs.map((r) => r.tags).join(',')}\``,
    '',
    ...rows,
    '',
    ...verdicts,
  ].join('\n');
}

async function version(cmd: string, argv: string[]): Promise<string> {
  return new Promise((resolve) => {
    const c = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    c.stdout.on('data', (d) => (out += d));
    c.on('close', () => resolve(out.trim()));
    c.on('error', () => resolve(`${cmd}: unknown`));
  });
}

async function main(): Promise<void> {
  if (args['headers-only']) return headersOnly();
  if (!existsSync('/usr/bin/time')) throw new Error('GNU time is missing: apt-get install -y time');
  if (!existsSync(path.join(ROOT, 'dist/index.js'))) throw new Error('dist/ is missing: run node scripts/build-dist.mjs first');
  await mkdir(WORK, { recursive: true });
  // The upstream's storage on tmpfs when there is one: writing, serving and deleting 250,000 small
  // files of the upstream then costs the disk nothing, and the builds (on disk) are what is measured.
  const storage = existsSync('/dev/shm') ? path.join('/dev/shm', `registrish-bench-scale-${process.pid}`) : path.join(WORK, 'upstream');
  const started = performance.now();
  const t = performance.now();
  const counts = writeLayout(storage);
  const layoutS = (performance.now() - t) / 1000;
  log(`layout written: ${counts.blobs} blobs, ${counts.manifests} manifests in ${layoutS.toFixed(1)} s`);
  const up = await startRegistry({ storageDir: storage, descriptorCache: true });
  try {
    await spotCheck(up);
    if (args.hold) {
      const n = Math.max(...TAG_COUNTS);
      const file = path.join(WORK, `images-${n}.json`);
      await writeFile(file, imagesJson(up, n));
      log(`holding; upstream ${up.url}; images.json for ${n} tags: ${file}`);
      log(`e.g. node bench/build.mjs ${file} OUT CACHE (fresh OUT and CACHE for a cold build); Ctrl-C to stop`);
      await holdUntilSignal();
      return;
    }
    const httpRate = await httpSeedRate(up, Number(args['http-sample']));
    log(`registry API: ${httpRate.toFixed(0)} blobs/s`);
    const runs: Run[] = [];
    // The pages once, at the largest size (at 10,000 tags they are 10,000 pages).
    for (const n of TAG_COUNTS) runs.push(await measure(up, n, !args['no-pages'] && n === Math.max(...TAG_COUNTS)));
    const pkg = JSON.parse(await readFile(path.join(ROOT, 'node_modules/@11ty/eleventy/package.json'), 'utf8')) as { version: string };
    const versions = `node ${process.version}; Eleventy ${pkg.version}; ${await version('docker-registry', ['--version'])}`;
    const text = report(runs, { layoutS, httpRate, ...counts }, versions);
    console.log(text);
    log(`done in ${((performance.now() - started) / 1000).toFixed(0)} s`);
    if (!args['no-write']) await writeSection('scale', text, 'Scale');
  } finally {
    await up.stop();
    await rm(WORK, { recursive: true, force: true });
    await rm(storage, { recursive: true, force: true });
  }
}

await main();
