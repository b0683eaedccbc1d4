// What the site's pages cost (npm run bench runs it; alone: node --import tsx bench/pages.ts):
// a registry of 50 repositories / 200 tags built by `npx eleventy` (whole process, GNU time for
// peak RSS) with the default pages and without them, warm (nothing changed upstream), runs
// alternating so that drift hits both alike. Writes its section of docs/performance.md.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { buildManifest, makeLayer, pushImage, tagManifest } from '../test/harness/images.ts';
import { startRegistry } from '../test/harness/upstream.ts';

const { values: args } = parseArgs({ options: { runs: { type: 'string', default: '5' }, 'no-write': { type: 'boolean', default: false } } });
const RUNS = Number(args.runs);
const ROOT = path.resolve(import.meta.dirname, '..');
const WORK = path.join(os.tmpdir(), `registrish-bench-pages-${process.pid}`);
const ELEVENTY = path.join(ROOT, 'node_modules/@11ty/eleventy/cmd.cjs');

function timed(cwd: string, config: string): Promise<{ wall: number; rssMB: number }> {
  const timeFile = path.join(WORK, `time-${Date.now()}-${Math.random()}`);
  return new Promise((resolve, reject) => {
    const c = spawn('/usr/bin/time', ['-f', '%e %M', '-o', timeFile, 'node', ELEVENTY, `--config=${config}`, '--quiet'], { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    c.stderr.on('data', (d) => (err += d));
    c.on('close', async (code) => {
      if (code !== 0) return reject(new Error(`eleventy ${config} exited ${code}: ${err.slice(-2000)}`));
      const [wall, rss] = (await readFile(timeFile, 'utf8')).trim().split(/\s+/).map(Number) as [number, number];
      resolve({ wall, rssMB: rss / 1024 });
    });
  });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function htmlFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile() && e.name.endsWith('.html')).map((e) => path.join(e.parentPath, e.name));
}

async function main(): Promise<void> {
  if (!existsSync('/usr/bin/time')) throw new Error('GNU time is missing: apt-get install -y time');
  await mkdir(WORK, { recursive: true });
  const up = await startRegistry({ storageDir: path.join(WORK, 'upstream'), descriptorCache: true });
  try {
    // 50 repositories × 4 tags: two platforms (an index) per repository, one layer each.
    const images: Array<{ source: string; name: string; tags: string[] }> = [];
    for (let i = 1; i <= 50; i++) {
      const name = `bench/app-${String(i).padStart(2, '0')}`;
      const m = buildManifest({ format: 'oci', platform: { os: 'linux', architecture: 'amd64' }, layers: [makeLayer([{ name: 'f', content: `${name}\n` }])] });
      const digest = await pushImage(up.url, name, 't1', m);
      for (const t of ['t2', 't3', 't4']) await tagManifest(up.url, name, t, m.bytes, m.mediaType);
      void digest;
      images.push({ source: `${up.host}/${name}`, name, tags: ['t1', 't2', 't3', 't4'] });
    }
    const site = path.join(WORK, 'site');
    await mkdir(path.join(site, 'src'), { recursive: true });
    await writeFile(path.join(site, 'package.json'), '{"type":"module"}');
    await writeFile(path.join(site, 'src/index.md'), '# A site\n');
    await writeFile(path.join(site, 'images.json'), JSON.stringify({ images }));
    const config = (pages: boolean, out: string) =>
      `import registrish from ${JSON.stringify(path.join(ROOT, 'dist/index.js'))};\nexport default (c) => { c.addPlugin(registrish, { pages: ${pages}, verbose: false }); return { dir: { input: 'src', output: ${JSON.stringify(out)} } }; };\n`;
    await writeFile(path.join(site, 'on.config.js'), config(true, '_on'));
    await writeFile(path.join(site, 'off.config.js'), config(false, '_off'));
    // Cold once each (fills the shared cache), then warm runs alternating.
    await timed(site, 'on.config.js');
    await timed(site, 'off.config.js');
    const on = { walls: [] as number[], rss: [] as number[] };
    const off = { walls: [] as number[], rss: [] as number[] };
    for (let r = 0; r < RUNS; r++) {
      const a = await timed(site, 'on.config.js');
      on.walls.push(a.wall);
      on.rss.push(a.rssMB);
      const b = await timed(site, 'off.config.js');
      off.walls.push(b.wall);
      off.rss.push(b.rssMB);
      console.error(`bench pages: run ${r + 1}: with pages ${a.wall}s, without ${b.wall}s`);
    }
    const pages = (await htmlFiles(path.join(site, '_on', 'images')));
    const sizes = await Promise.all(pages.map(async (p) => (await stat(p)).size));
    const extra = median(on.walls) - median(off.walls);
    const share = (extra / median(off.walls)) * 100;
    const report = [
      `- ${new Date().toISOString()}; ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}; node ${process.version}; runs: ${RUNS} each, alternating`,
      `- data set: 50 repositories × 4 tags (200 tags), one layer each; warm (nothing changed upstream); \`node cmd.cjs --config=…\` whole process`,
      '',
      '| warm rebuild, 50 repositories / 200 tags | wall s (median) | spread | peak RSS MB (median) |',
      '|---|---|---|---|',
      `| with the default pages (${pages.length} pages, ${(sizes.reduce((n, s) => n + s, 0) / 1024).toFixed(0)} KiB, largest ${(Math.max(...sizes) / 1024).toFixed(1)} KiB) | ${median(on.walls).toFixed(2)} | ${Math.min(...on.walls).toFixed(2)}–${Math.max(...on.walls).toFixed(2)} | ${median(on.rss).toFixed(0)} |`,
      `| \`pages: false\` | ${median(off.walls).toFixed(2)} | ${Math.min(...off.walls).toFixed(2)}–${Math.max(...off.walls).toFixed(2)} | ${median(off.rss).toFixed(0)} |`,
      '',
      `Extra time of the pages: ${extra.toFixed(2)} s = ${share.toFixed(1)}% of the warm rebuild without them (target ≤ 10%: ${share <= 10 ? 'met' : '**not met**'}); extra peak RSS ${(median(on.rss) - median(off.rss)).toFixed(0)} MB.`,
    ].join('\n');
    console.log(report);
    if (!args['no-write']) {
      const file = path.join(ROOT, 'docs/performance.md');
      const begin = '<!-- bench:pages:begin -->';
      const end = '<!-- bench:pages:end -->';
      let text = await readFile(file, 'utf8');
      const i = text.indexOf(begin);
      const j = text.indexOf(end);
      text = i >= 0 && j > i ? `${text.slice(0, i + begin.length)}\n${report}\n${text.slice(j)}` : `${text}\n## The site's pages\n\n${begin}\n${report}\n${end}\n`;
      await writeFile(file, text);
    }
  } finally {
    await up.stop();
    await rm(WORK, { recursive: true, force: true });
  }
}

await main();
