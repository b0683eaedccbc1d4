// `registrish serve` at scale (issue 18): a built site whose `_headers` has 20,000 rules (4,000
// repositories × a tag list, three tags and a blob, the writer's exact form: asked for, since the
// writer picks its compact form above NETLIFY_EXACT_MAX_RULES URLs), served by the real CLI.
// Measures the start-up (process start → "serving" line, wall and the process's CPU time), against
// the time Netlify's own parser takes to read the same file (what the server did at start-up before
// it had its own reader); reading and indexing the file in a fresh process; the matching of one
// request, through the index and by testing every rule as the parser's output is matched; and HTTP
// requests answered by the running server. Writes its section of docs/performance.md
// (docs/reliability.md quotes it). The machine is shared: CPU times vary less than wall times.
//
//   node scripts/build-dist.mjs && node --import tsx bench/serve.ts [--rules 20000] [--runs 5] [--no-write]
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { Client } from 'undici';
import { parseAllHeaders, type Header } from '@netlify/headers-parser';
import { planNetlifyRules, renderNetlifyRules } from '../src/hosts/netlify.ts';
import type { PublishedPath } from '../src/model/published-path.ts';
import { loadHeaderRules, matchingRules, type HeaderRule } from '../src/serve/header-rules.ts';
import { machineLine, median, ROOT, writeSection } from './lib.ts';

const args = parseArgs({ options: { rules: { type: 'string', default: '20000' }, runs: { type: 'string', default: '5' }, 'no-write': { type: 'boolean', default: false } } }).values;
const RULES = Number(args.rules);
const RUNS = Number(args.runs);
const WORK = path.join(os.tmpdir(), `rsh-bench-serve-${process.pid}`);
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

/** The published paths of `rules / 5` repositories: tag list, three tags, one blob each. */
function registryPaths(rules: number): PublishedPath[] {
  const paths: PublishedPath[] = [];
  for (let i = 0; i < rules / 5; i++) {
    const repo = `team${i % 50}/app${i}`;
    const digest = `sha256:${i.toString(16).padStart(64, '0')}`;
    const at = (urlPath: string) => ({ urlPath, file: urlPath.slice(1) });
    paths.push({ ...at(`/v2/${repo}/tags/list`), kind: 'tags', contentType: 'application/json', size: 2, immutable: false });
    for (const tag of ['1.0', '1.1', 'latest']) {
      paths.push({ ...at(`/v2/${repo}/manifests/${tag}`), kind: 'manifest', contentType: MANIFEST, digest, size: 2, immutable: false });
    }
    paths.push({ ...at(`/v2/${repo}/blobs/${digest}`), kind: 'blob', contentType: 'application/octet-stream', digest, size: 2, immutable: true });
  }
  return paths;
}

/** CPU ms a running process has used (user + system, Linux /proc); undefined elsewhere. */
function processCpuMs(pid: number): number | undefined {
  try {
    // Fields after the command name: utime and stime are the 12th and 13th, in clock ticks (100 a second).
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return undefined;
  }
}

interface Startup {
  wallMs: number;
  cpuMs: number | undefined;
}

/** From spawning `registrish serve` to its "serving" line (whole process, cold): wall ms, and the CPU ms it used. */
function startup(dir: string): Promise<Startup> {
  return new Promise((resolve, reject) => {
    const t = performance.now();
    const c = spawn(process.execPath, [path.join(ROOT, 'bin/registrish.js'), 'serve', dir, '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    c.stderr.on('data', (d) => (err += d));
    c.stdout.on('data', (d) => {
      out += d;
      if (out.includes('serving')) {
        const wallMs = performance.now() - t;
        const cpuMs = processCpuMs(c.pid!);
        c.kill('SIGTERM');
        c.once('close', () => resolve({ wallMs, cpuMs }));
      }
    });
    c.once('close', (status) => {
      if (!out.includes('serving')) reject(new Error(`registrish serve exited ${status}: ${err.slice(-500)}`));
    });
  });
}

/** Longest Netlify's parser is waited for (it grows with the square of the rules). */
const PARSE_CAP_MS = 300_000;

/**
 * ms Netlify's parser takes to read the file (minimal: false, with patterns, as the server needs),
 * in a fresh process; Infinity past PARSE_CAP_MS.
 */
function netlifyParseMs(file: string): Promise<number> {
  const code = [
    "import { parseAllHeaders } from '@netlify/headers-parser';",
    'const t = performance.now();',
    'const r = await parseAllHeaders({ headersFiles: [process.argv[1]], configHeaders: [], minimal: false });',
    'if (r.errors.length) throw new Error(r.errors[0].message);',
    'console.log(performance.now() - t);',
  ].join('\n');
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, ['--input-type=module', '-e', code, file], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    c.stdout.on('data', (d) => (out += d));
    const timer = setTimeout(() => c.kill('SIGKILL'), PARSE_CAP_MS);
    c.once('close', (status, signal) => {
      clearTimeout(timer);
      if (signal === 'SIGKILL') resolve(Infinity);
      else if (status === 0) resolve(Number(out.trim()));
      else reject(new Error(`parser exited ${status}`));
    });
  });
}

/**
 * CPU ms of reading and indexing the file with the built loader (dist/) in a fresh process, as
 * start-up does it: cold code, nothing cached.
 */
function loadCpuMs(file: string): Promise<number> {
  const code = [
    `import { loadHeaderRules } from ${JSON.stringify(pathToFileURL(path.join(ROOT, 'dist/serve/header-rules.js')).href)};`,
    'const start = process.cpuUsage();',
    'await loadHeaderRules(process.argv[1]);',
    'const used = process.cpuUsage(start);',
    'console.log((used.user + used.system) / 1000);',
  ].join('\n');
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, ['--input-type=module', '-e', code, file], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    c.stdout.on('data', (d) => (out += d));
    c.once('close', (status) => (status === 0 ? resolve(Number(out.trim())) : reject(new Error(`loader exited ${status}`))));
  });
}

/** CPU µs per call of `f` over `items`, repeated until at least 200 ms of CPU. */
function cpuPerCall<T>(items: T[], f: (x: T) => unknown): number {
  let calls = 0;
  const start = process.cpuUsage();
  let used = 0;
  do {
    for (const x of items) f(x);
    calls += items.length;
    used = process.cpuUsage(start).user + process.cpuUsage(start).system;
  } while (used < 200_000);
  return used / calls;
}

async function httpLatencies(url: string, urlPaths: string[]): Promise<number[]> {
  const client = new Client(url, { pipelining: 0 });
  const out: number[] = [];
  try {
    for (const p of urlPaths) {
      const t = performance.now();
      const res = await client.request({ path: p, method: 'GET' });
      await res.body.dump();
      if (res.statusCode !== 200 || res.headers['content-type'] !== MANIFEST) throw new Error(`${p}: ${res.statusCode} ${String(res.headers['content-type'])}`);
      out.push(performance.now() - t);
    }
  } finally {
    await client.close();
  }
  return out;
}

async function main(): Promise<void> {
  const site = path.join(WORK, 'site');
  await mkdir(site, { recursive: true });
  try {
    const paths = registryPaths(RULES);
    const file = path.join(site, '_headers');
    // The exact form, one rule per URL, whatever the writer would pick by itself at this size.
    const written = planNetlifyRules(paths, { headers: 'exact' });
    const text = renderNetlifyRules(written);
    await writeFile(file, text);
    // Files for the manifests the HTTP part asks for (the other rules name no file: never asked).
    const asked = paths.filter((p) => p.kind === 'manifest').filter((_, i) => i % 6 === 0).slice(0, 2000);
    for (const p of asked) {
      await mkdir(path.join(site, path.dirname(p.file)), { recursive: true });
      await writeFile(path.join(site, p.file), '{}');
    }

    // The same site without rules: what start-up costs whatever the file (node, the CLI, listening).
    const bare = path.join(WORK, 'bare');
    await mkdir(bare, { recursive: true });
    await writeFile(path.join(bare, '_headers'), '/v2/\n  X-A: 1\n');
    const startups: Startup[] = [];
    const bareStartups: Startup[] = [];
    const loads: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      startups.push(await startup(site));
      bareStartups.push(await startup(bare));
      loads.push(await loadCpuMs(file));
      console.error(
        `bench serve: run ${r + 1}: start-up ${formatStartup(startups.at(-1)!)}, with a one-rule _headers ${formatStartup(bareStartups.at(-1)!)}, ` +
          `reading and indexing ${loads.at(-1)!.toFixed(0)} ms CPU`,
      );
    }
    // Once: quadratic, it takes minutes at 20,000 rules.
    const parse = await netlifyParseMs(file);
    console.error(`bench serve: Netlify's parser alone ${parse.toFixed(0)} ms`);

    const index = await loadHeaderRules(file);
    const ruleCount = index.rules.length;
    if (ruleCount !== written.length) throw new Error(`read ${ruleCount} rules of the ${written.length} written`);
    const reference = (await parseAllHeaders({ headersFiles: [file], configHeaders: [], minimal: false })).headers.filter((h): h is Header => 'forRegExp' in h) as HeaderRule[];
    const urls = paths.map((p) => p.urlPath);
    const misses = urls.map((u) => `${u}x`);
    const indexHit = cpuPerCall(urls, (u) => matchingRules(index, u));
    const indexMiss = cpuPerCall(misses, (u) => matchingRules(index, u));
    const sample = urls.filter((_, i) => i % Math.ceil(urls.length / 200) === 0);
    const scan = cpuPerCall(sample, (u) => matchingRules(reference, u));

    // HTTP, against the real CLI.
    const server = spawn(process.execPath, [path.join(ROOT, 'bin/registrish.js'), 'serve', site, '--port', '0'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let latencies: number[];
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let out = '';
        server.stdout.on('data', (d) => {
          out += d;
          const m = /at (http:\/\/\S+)/u.exec(out);
          if (m) resolve(m[1]!);
        });
        server.once('close', () => reject(new Error('serve exited')));
      });
      await httpLatencies(url, asked.slice(0, 200).map((p) => p.urlPath)); // warm-up
      latencies = await httpLatencies(url, asked.map((p) => p.urlPath));
    } finally {
      server.kill('SIGTERM');
    }
    const sorted = [...latencies].sort((a, b) => a - b);
    const p99 = sorted[Math.floor(sorted.length * 0.99)]!;

    const rules = ruleCount.toLocaleString('en');
    const report = [
      `- ${new Date().toISOString()}; ${machineLine()}; load average ${os.loadavg()[0]!.toFixed(1)} at the end; runs: ${RUNS}`,
      `- data set: \`_headers\` of ${rules} rules (${RULES / 5} repositories × tag list, 3 tags, 1 blob; the writer's exact form, asked for), ${(Buffer.byteLength(text) / 1e6).toFixed(1)} MB; reproduce: \`node scripts/build-dist.mjs && node --import tsx bench/serve.ts\``,
      '',
      '| figure | value |',
      '|---|---|',
      `| \`registrish serve\` start-up, process start → "serving" line (median; wall, and the process's CPU) | ${formatMedians(startups)} (runs, wall: ${startups.map((s) => s.wallMs.toFixed(0)).join(', ')}) |`,
      `| … the same with a one-rule \`_headers\` (node, the CLI, listening) | ${formatMedians(bareStartups)} |`,
      `| reading and indexing the ${rules} rules (CPU, fresh process, median) | ${median(loads).toFixed(0)} ms (runs: ${loads.map((l) => l.toFixed(0)).join(', ')}) |`,
      `| Netlify's parser reading the same file, alone, once (what start-up waited for before) | ${Number.isFinite(parse) ? `${(parse / 1000).toFixed(1)} s` : `over ${PARSE_CAP_MS / 1000} s (stopped)`} |`,
      `| matching one request through the index (CPU per request, every rule's own URL) | ${indexHit.toFixed(1)} µs |`,
      `| … a URL no rule matches | ${indexMiss.toFixed(1)} µs |`,
      `| matching one request by testing every rule (the parser's output, the reference) | ${(scan / 1000).toFixed(2)} ms |`,
      `| GET of a manifest from the running server, keep-alive, ${latencies.length} requests | median ${median(latencies).toFixed(2)} ms, p99 ${p99.toFixed(2)} ms |`,
    ].join('\n');
    console.log(report);
    if (!args['no-write']) await writeSection('serve', report, '`registrish serve` with a large `_headers`');
  } finally {
    await rm(WORK, { recursive: true, force: true });
  }
}

function formatStartup(s: Startup): string {
  return `${s.wallMs.toFixed(0)} ms${s.cpuMs === undefined ? '' : ` (${s.cpuMs.toFixed(0)} ms CPU)`}`;
}

/** Median wall and, where known, median CPU: each the median of its own column. */
function formatMedians(runs: Startup[]): string {
  const cpu = runs.map((s) => s.cpuMs).filter((ms): ms is number => ms !== undefined);
  const wall = `${median(runs.map((s) => s.wallMs)).toFixed(0)} ms wall`;
  return cpu.length === runs.length ? `${wall}, ${median(cpu).toFixed(0)} ms CPU` : wall;
}

await main();
