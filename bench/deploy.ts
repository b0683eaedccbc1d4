// What a deploy to an S3-compatible store costs (alone: node --import tsx bench/deploy.ts
// [--runs 3] [--no-write]): a synthetic built registry of about 2000 objects (a valid paths file,
// checked as deploy checks it) deployed to s3rver, run in its own process, four times in a row:
// into an empty prefix, again with nothing changed, after one tag moved (with --delete), and with
// nothing changed but no deploy record (the fallback, a HEAD per object, which is what every
// redeploy cost before the record). Requests are counted on the wire by an undici interceptor and
// checked against the deploy's own summary; wall time is deploy() in this process. Writes its
// section of docs/performance.md.
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { Dispatcher } from 'undici';
import { deploy, type DeploySummary } from '../src/deploy/deploy.ts';
import { RECORD_FILE } from '../src/deploy/record.ts';
import { S3Client, type S3RequestCounts } from '../src/deploy/s3-client.ts';
import { createAgent } from '../src/http/transport.ts';
import type { PublishedPath } from '../src/model/published-path.ts';
import { readPathsFile } from '../src/publish/paths-file.ts';
import { keystream, median, sha256, spread, startS3rver, writeSection } from './lib.ts';


const BUCKET = 'bench';
const KEY = { accessKeyId: 'AKIDREGISTRISHBENCH', secretAccessKey: 'bench-secret' };
const REPOS = 64;
const TAGS = ['1.0', '1.1', '2.0', '2.1'];
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

/** Deterministic, incompressible bytes (AES-CTR keystream of the seed). */
const bytesOf = (seed: string, size: number): Buffer => keystream('deploy', seed).update(Buffer.alloc(size));

const sha = (b: Buffer): string => `sha256:${sha256(b)}`;

/** A synthetic built tree: what a build writes under v2/, with its paths file. */
class Tree {
  readonly paths = new Map<string, PublishedPath>();
  constructor(readonly dir: string) {}

  async add(file: string, bytes: Buffer, p: Omit<PublishedPath, 'file' | 'urlPath' | 'size'>): Promise<void> {
    await mkdir(path.dirname(path.join(this.dir, file)), { recursive: true });
    await writeFile(path.join(this.dir, file), bytes);
    this.paths.set(file, { ...p, file, urlPath: file === 'v2/index.html' ? '/v2/' : `/${file}`, size: bytes.length });
  }

  async json(file: string, value: unknown, kind: 'base' | 'catalog' | 'tags'): Promise<void> {
    await this.add(file, Buffer.from(JSON.stringify(value)), { kind, contentType: 'application/json', immutable: false });
  }

  async blob(repo: string, bytes: Buffer): Promise<string> {
    const digest = sha(bytes);
    await this.add(`v2/${repo}/blobs/${digest}`, bytes, { kind: 'blob', contentType: 'application/octet-stream', digest, immutable: true });
    return digest;
  }

  /** An image (config and layers stored as blobs), stored by digest and under `tag`. */
  async image(repo: string, tag: string, layers: Buffer[]): Promise<string> {
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: layers.map(sha) } }));
    const descriptor = async (mediaType: string, b: Buffer) => ({ mediaType, digest: await this.blob(repo, b), size: b.length });
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: await descriptor('application/vnd.oci.image.config.v1+json', config),
        layers: await Promise.all(layers.map((l) => descriptor('application/vnd.oci.image.layer.v1.tar+gzip', l))),
      }),
    );
    const digest = sha(manifest);
    await this.add(`v2/${repo}/manifests/${digest}`, manifest, { kind: 'manifest', contentType: OCI_MANIFEST, digest, immutable: true });
    await this.add(`v2/${repo}/manifests/${tag}`, manifest, { kind: 'manifest', contentType: OCI_MANIFEST, digest, immutable: false });
    return digest;
  }

  async save(): Promise<void> {
    await writeFile(path.join(this.dir, 'v2/.registrish-paths.json'), JSON.stringify({ version: 1, paths: [...this.paths.values()] }));
    // Fails here, not in the middle of a measurement, if the tree is not one deploy accepts.
    await readPathsFile(this.dir);
  }
}

/** Layers of an image: two shared by the repository's images, four of its own (1–16 KiB). */
const layersOf = (repo: string, tag: string, variant = ''): Buffer[] => [
  bytesOf(`${repo} base 1`, 12 * 1024),
  bytesOf(`${repo} base 2`, 3 * 1024),
  ...[1, 2, 3, 4].map((i) => bytesOf(`${repo} ${tag} layer ${i}${i === 4 ? variant : ''}`, 1024 * (1 + ((i * 7 + repo.length) % 16)))),
];

async function makeTree(dir: string): Promise<Tree> {
  const t = new Tree(dir);
  const repos = Array.from({ length: REPOS }, (_, i) => `bench/app-${String(i).padStart(2, '0')}`);
  await t.json('v2/index.html', {}, 'base');
  await t.json('v2/_catalog', { repositories: repos }, 'catalog');
  for (const repo of repos) {
    await t.json(`v2/${repo}/tags/list`, { name: repo, tags: TAGS }, 'tags');
    for (const tag of TAGS) await t.image(repo, tag, layersOf(repo, tag));
  }
  await t.save();
  return t;
}

/** One tag moved, as a rebuild writes it: the image got a new top layer (hence a new config and manifest). */
async function moveTag(t: Tree): Promise<void> {
  const repo = 'bench/app-00';
  const tag = '2.0';
  const old = t.paths.get(`v2/${repo}/manifests/${tag}`)!;
  const oldManifest = JSON.parse(await readFile(path.join(t.dir, old.file), 'utf8')) as { config: { digest: string }; layers: Array<{ digest: string }> };
  // What no longer belongs to any tag leaves the tree (a rebuild does not publish it).
  for (const d of [oldManifest.config.digest, oldManifest.layers.at(-1)!.digest]) t.paths.delete(`v2/${repo}/blobs/${d}`);
  t.paths.delete(`v2/${repo}/manifests/${old.digest}`);
  await t.image(repo, tag, layersOf(repo, tag, ' rebuilt'));
  await t.save();
}

const KINDS: Array<keyof S3RequestCounts> = ['list', 'head', 'get', 'put', 'delete', 'multipart'];

/** What the wire saw: each request undici dispatches (retries included), by kind. */
function wireCounter(): { counts: S3RequestCounts; interceptor: Dispatcher.DispatcherComposeInterceptor } {
  const counts: S3RequestCounts = { list: 0, head: 0, get: 0, put: 0, delete: 0, multipart: 0 };
  const interceptor: Dispatcher.DispatcherComposeInterceptor = (dispatch) => (opts, handler) => {
    const q = new URL(opts.path, 'http://x').searchParams;
    const m = opts.method;
    counts[m === 'HEAD' ? 'head' : m === 'GET' ? (q.get('list-type') === '2' ? 'list' : 'get') : m === 'POST' || q.has('uploadId') ? 'multipart' : m === 'PUT' ? 'put' : 'delete']++;
    return dispatch(opts, handler);
  };
  return { counts, interceptor };
}

interface Step {
  name: string;
  args: { delete?: boolean };
  before?: (t: Tree, prefix: string, s3: S3Client) => Promise<void>;
}

const STEPS: Step[] = [
  { name: 'first deploy (empty prefix)', args: {} },
  { name: 'second deploy, nothing changed', args: {} },
  { name: 'third deploy, one tag moved (`--delete`)', args: { delete: true }, before: (t) => moveTag(t) },
  {
    name: 'nothing changed, record deleted: a HEAD per object (what every redeploy cost before the record)',
    args: {},
    before: (_t, prefix, s3) => s3.delete(prefix + RECORD_FILE),
  },
];

interface Measured {
  summary: DeploySummary;
  wire: S3RequestCounts;
  wall: number;
}

const kib = (n: number) => (n < 1024 * 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1024 / 1024).toFixed(2)} MiB`);

async function main(): Promise<void> {
  const { values: args } = parseArgs({ options: { runs: { type: 'string', default: '3' }, 'no-write': { type: 'boolean', default: false } } });
  const runs = Number(args.runs);
  const work = path.join(os.tmpdir(), `registrish-bench-deploy-${process.pid}`);
  const s3dir = path.join(work, 's3');
  await mkdir(s3dir, { recursive: true });
  const s3 = await startS3rver({ dir: s3dir, bucket: BUCKET, key: KEY });
  const agent = createAgent();
  const client = new S3Client({ endpoint: new URL(s3.url), region: 'us-east-1', bucket: BUCKET, credentials: KEY, pathStyle: true, dispatcher: agent });
  const results: Measured[][] = STEPS.map(() => []);
  let objects = 0;
  let recordSize = 0;
  let treeBytes = 0;
  try {
    for (let run = 1; run <= runs; run++) {
      const tree = await makeTree(path.join(work, `tree-${run}`));
      objects = tree.paths.size + 1; // and the `v2/` key
      treeBytes = [...tree.paths.values()].reduce((n, p) => n + p.size, 0);
      const prefix = `run-${run}/`;
      for (const [i, step] of STEPS.entries()) {
        await step.before?.(tree, prefix, client);
        const { counts, interceptor } = wireCounter();
        const start = performance.now();
        const summary = await deploy({
          dir: tree.dir,
          target: { bucket: BUCKET, prefix },
          endpoint: new URL(s3.url),
          region: 'us-east-1',
          credentials: KEY,
          pathStyle: true,
          delete: step.args.delete === true,
          dryRun: false,
          concurrency: 8,
          log: () => {},
          interceptor,
        });
        const wall = (performance.now() - start) / 1000;
        if (KINDS.some((k) => counts[k] !== summary.requests[k])) {
          throw new Error(`${step.name}: the deploy counted ${JSON.stringify(summary.requests)}, the wire saw ${JSON.stringify(counts)}`);
        }
        results[i]!.push({ summary, wire: counts, wall });
        console.error(`run ${run}, ${step.name}: ${wall.toFixed(2)} s, ${JSON.stringify(counts)}, ${summary.uploaded.length} uploaded`);
      }
      recordSize = Buffer.byteLength((await client.get(prefix + RECORD_FILE)) ?? '');
    }
  } finally {
    await agent.close();
    s3.child.kill();
    await rm(work, { recursive: true, force: true });
  }

  const rows = STEPS.map((step, i) => {
    const r = results[i]!;
    const { summary, wire } = r[0]!;
    const walls = r.map((m) => m.wall);
    return `| ${step.name} | ${KINDS.map((k) => wire[k]).join(' | ')} | ${summary.uploaded.length} (${kib(summary.bytes)}) | ${summary.deleted.length} | ${kib(summary.sentBytes)} | ${kib(summary.receivedBytes)} | ${median(walls).toFixed(2)} | ${spread(walls)} |`;
  });
  const report = [
    `- ${new Date().toISOString()}; ${os.cpus().length} × ${os.cpus()[0]?.model.split(' ').slice(0, 2).join(' ') ?? 'cpu'}; node ${process.version}; runs: ${runs}, each into a fresh prefix`,
    `- data set: a synthetic build of ${REPOS} repositories × ${TAGS.length} tags, ${objects} objects (${kib(treeBytes)}); s3rver on 127.0.0.1 in its own process; \`--concurrency 8\`; deploy record ${kib(recordSize)}`,
    '- requests counted on the wire (an undici interceptor), equal to the counts deploy prints; "sent"/"received": request and response bodies',
    '- reproduce: `node --import tsx bench/deploy.ts [--runs 3] [--no-write]`; the design: [docs/hosting-s3.md](hosting-s3.md#what-is-already-there-one-listing-and-a-deploy-record)',
    '',
    '| deploy | list | head | get | put | delete | multipart | uploaded | deleted | sent | received | wall s (median) | spread |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|',
    ...rows,
  ].join('\n');
  console.log(report);
  if (!args['no-write']) await writeSection('deploy', report, 'Deploy');
}

await main();
