// What the site's pages cost (npm run bench runs it; alone: node --import tsx bench/pages.ts):
// a registry of 50 repositories / 200 tags built by `npx eleventy` (whole process, GNU time for
// peak RSS) with the default pages and without them, warm (nothing changed upstream), runs
// alternating so that drift hits both alike. Writes its section of docs/performance.md.
import { readdir, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { buildManifest, makeLayer, pushImage, tagManifest } from '../test/harness/images.ts';
import { startRegistry } from '../test/harness/upstream.ts';
import { machineLine, makeSite, npxEleventy, requireTools, Series, spread, writeSection } from './lib.ts';

const { values: args } = parseArgs({ options: { runs: { type: 'string', default: '5' }, 'no-write': { type: 'boolean', default: false } } });
const RUNS = Number(args.runs);
const WORK = path.join(os.tmpdir(), `registrish-bench-pages-${process.pid}`);

async function htmlFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile() && e.name.endsWith('.html')).map((e) => path.join(e.parentPath, e.name));
}

async function main(): Promise<void> {
  requireTools(['/usr/bin/time', 'time'], ['docker-registry', 'docker-registry']);
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
    const on = new Series();
    const off = new Series();
    const siteOn = await makeSite(path.join(WORK, 'on'), { images: { images }, plugin: { verbose: false } });
    const siteOff = await makeSite(path.join(WORK, 'off'), { images: { images }, plugin: { pages: false, verbose: false } });
    // Cold once each (fills each site's cache), then warm runs alternating.
    await npxEleventy(siteOn);
    await npxEleventy(siteOff);
    for (let r = 0; r < RUNS; r++) {
      const a = on.add(await npxEleventy(siteOn));
      const b = off.add(await npxEleventy(siteOff));
      console.error(`bench pages: run ${r + 1}: with pages ${a.wall}s, without ${b.wall}s`);
    }
    const pages = await htmlFiles(path.join(siteOn, '_site', 'images'));
    const sizes = await Promise.all(pages.map(async (p) => (await stat(p)).size));
    const extra = on.wall - off.wall;
    const share = (extra / off.wall) * 100;
    const report = [
      `- ${new Date().toISOString()}; ${machineLine()}; runs: ${RUNS} each, alternating`,
      `- data set: 50 repositories × 4 tags (200 tags), one layer each; warm (nothing changed upstream); \`npx eleventy\` whole process; reproduce: \`node scripts/build-dist.mjs && node --import tsx bench/pages.ts [--runs 5]\``,
      '',
      '| warm rebuild, 50 repositories / 200 tags | wall s (median) | spread | peak RSS MB (median) |',
      '|---|---|---|---|',
      `| with the default pages (${pages.length} pages, ${(sizes.reduce((n, s) => n + s, 0) / 1024).toFixed(0)} KiB, largest ${(Math.max(...sizes) / 1024).toFixed(1)} KiB) | ${on.wall.toFixed(2)} | ${spread(on.walls)} | ${on.peak.toFixed(0)} |`,
      `| \`pages: false\` | ${off.wall.toFixed(2)} | ${spread(off.walls)} | ${off.peak.toFixed(0)} |`,
      '',
      `Extra time of the pages: ${extra.toFixed(2)} s = ${share.toFixed(1)}% of the warm rebuild without them (target ≤ 10%: ${share <= 10 ? 'met' : '**not met**'}); extra peak RSS ${(on.peak - off.peak).toFixed(0)} MB.`,
    ].join('\n');
    console.log(report);
    if (!args['no-write']) await writeSection('pages', report, "The site's pages");
  } finally {
    await up.stop();
    await rm(WORK, { recursive: true, force: true });
  }
}

await main();
