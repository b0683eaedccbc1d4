// Gzip archive sources against decompression bombs (issue 18): how long a build takes to refuse
// one and how much memory it uses doing so, each case in a fresh process (wall time from the
// archive's first byte read to the refusal; peak RSS of the whole process, against the same
// process reading a small good archive). The bombs are the test's (test/archive-limits.test.ts):
// a 2 GiB tar of zeros as one gzip stream (oci-archive), and the same as a layer inside a docker
// archive of a few kilobytes. Writes its section of docs/performance.md.
//
//   node --import tsx bench/archive-bomb.ts [--runs 3] [--no-write]
import { spawn } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import zlib from 'node:zlib';
import { docker25Members, rawTar, savedImage, zeroTarGz } from '../test/harness/archives.ts';
import { machineLine, median, ROOT, writeSection } from './lib.ts';

const args = parseArgs({ options: { runs: { type: 'string', default: '3' }, 'no-write': { type: 'boolean', default: false } } }).values;
const RUNS = Number(args.runs);
const WORK = path.join(os.tmpdir(), `rsh-bench-bomb-${process.pid}`);
const GiB = 1024 ** 3;

interface Result {
  ms: number;
  rssMB: number;
  outcome: string;
}

/** Reads `file` as the build does (TarArchive.scan, then the image) in a fresh process. */
function readInChild(kind: 'docker' | 'oci', file: string): Promise<Result> {
  const code = `
    const { TarArchive } = await import(${JSON.stringify(path.join(ROOT, 'src/sources/archive/archive.ts'))});
    const t = performance.now();
    let outcome = 'read';
    try {
      const tar = await TarArchive.scan(process.argv[1], 'bench', { inflate: ${kind === 'docker'} });
      // A layer that was a bomb is refused when the image is made (docker-archive.ts), from this note.
      if ([...tar.members.values()].some((m) => m.inflated?.bomb)) outcome = 'refused';
    } catch (e) {
      outcome = e.message.includes('decompression bomb') ? 'refused' : 'error: ' + e.message;
    }
    const ms = performance.now() - t;
    console.log(JSON.stringify({ ms, rssMB: process.resourceUsage().maxRSS / 1024, outcome }));
  `;
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code, file], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    c.stdout.on('data', (d) => (out += d));
    c.once('close', (status) => (status === 0 ? resolve(JSON.parse(out) as Result) : reject(new Error(`child exited ${status}`))));
  });
}

async function main(): Promise<void> {
  await mkdir(WORK, { recursive: true });
  try {
    const zeros = zeroTarGz('big.bin', 2 * GiB);
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [`sha256:${'b'.repeat(64)}`] } }));
    const cases: Array<{ label: string; kind: 'docker' | 'oci'; bytes: Buffer }> = [
      { label: 'a good docker archive (2 small layers), gzip', kind: 'docker', bytes: zlib.gzipSync(rawTar(docker25Members(savedImage('good'), 'good:1', '1'))) },
      { label: 'oci-archive: a 2 GiB tar of zeros as one gzip stream', kind: 'oci', bytes: zeroTarGz(`blobs/sha256/${'a'.repeat(64)}`, 2 * GiB) },
      {
        label: 'docker-archive: a layer inflating to 2 GiB, nested in a gzip archive',
        kind: 'docker',
        bytes: zlib.gzipSync(
          rawTar([
            { name: 'config.json', content: config },
            { name: 'layer.tar', content: zeros },
            { name: 'manifest.json', content: JSON.stringify([{ Config: 'config.json', RepoTags: ['x:1'], Layers: ['layer.tar'] }]) },
          ]),
          { level: 9 },
        ),
      },
    ];
    const rows: string[] = [];
    for (const c of cases) {
      const file = path.join(WORK, 'archive.tar.gz');
      await writeFile(file, c.bytes);
      const results: Result[] = [];
      for (let r = 0; r < RUNS; r++) results.push(await readInChild(c.kind, file));
      console.error(`bench bomb: ${c.label}: ${results.map((r) => `${r.ms.toFixed(0)} ms ${r.rssMB.toFixed(0)} MB ${r.outcome}`).join('; ')}`);
      const size = c.bytes.length < 1024 * 1024 ? `${(c.bytes.length / 1024).toFixed(0)} KiB` : `${(c.bytes.length / 1024 / 1024).toFixed(1)} MiB`;
      rows.push(`| ${c.label} | ${size} | ${results[0]!.outcome} | ${median(results.map((r) => r.ms)).toFixed(0)} ms | ${median(results.map((r) => r.rssMB)).toFixed(0)} MB |`);
    }
    const report = [
      `- ${new Date().toISOString()}; ${machineLine()}; load average ${os.loadavg()[0]!.toFixed(1)} at the end; runs: ${RUNS} each, medians`,
      '- reproduce: `node --import tsx bench/archive-bomb.ts`; each case in a fresh process (tsx loaded: its RSS is in every row)',
      '',
      '| archive | on disk | outcome | time to the answer | peak RSS of the process |',
      '|---|---|---|---|---|',
      ...rows,
    ].join('\n');
    console.log(report);
    if (!args['no-write']) await writeSection('archive-bomb', report, 'Gzip archive sources against decompression bombs');
  } finally {
    await rm(WORK, { recursive: true, force: true });
  }
}

await main();
