import { createHash } from 'node:crypto';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildRegistry } from '../src/build.ts';
import { planUploads, type Upload } from '../src/deploy/deploy.ts';
import { IN_PROGRESS_ABOUT, parseRecord, RECORD_FILE, storedSame } from '../src/deploy/record.ts';
import { S3Client } from '../src/deploy/s3-client.ts';
import { createAgent } from '../src/http/transport.ts';
import { keyPair, seedSignedApp } from './harness/attachments.ts';
import { buildIndex, buildManifest, makeLayer, makeTar, pushImage, sha256, type Layer } from './harness/images.ts';
import { countBy, killSeed, runAndKill, seeded } from './harness/kills.ts';
import { makeTempDir, removeDir } from './harness/procs.ts';
import { S3_ACCESS_KEY, S3_SECRET, startS3Front, startS3rver, type Instant, type S3Front, type S3Server } from './harness/s3.ts';
import { startRegistry, type UpstreamRegistry } from './harness/upstream.ts';
import { writeFile } from 'node:fs/promises';

// `registrish deploy` killed (SIGKILL, its whole process group) at seeded instants against s3rver
// (issue 18): when a chosen request arrives, after part of its body, or after the store stored it
// but before the deploy heard so — over first deploys, changed sites, --delete, and deploys
// resumed after a kill. After every kill, and after every deploy that ran to its end:
//   - the bucket never serves a tag, a manifest, a referrers answer or a tags/list that names
//     something missing (every object named by a digest hashes to it);
//   - the deploy record never names an object that is not there as it recorded it: every entry
//     (not only those the next deploy would trust) is listed with its ETag and size, not written
//     since, and names the object's real digest, size, Content-Type and Cache-Control;
// and a deploy that runs to its end after kills uploads nothing that was already stored complete.
// REGISTRISH_KILL_SEED=<n> npx vitest run test/deploy-kills.test.ts replays the same instants.

const REPO = path.resolve(import.meta.dirname, '..');
const SEED = killSeed();
const rnd = seeded(SEED);
const BUCKET = 'registry';
const PREFIX = 'mirror/';

let dir: string;
let s3: S3Server;
let front: S3Front;
let up: UpstreamRegistry;
let client: S3Client;
const agent = createAgent();
/** Two builds of the registry: the first deploy, and a later one (a tag moved, one gone, one new). */
const sites: Record<'first' | 'later', string> = { first: '', later: '' };
const kills: Array<{ instant: Instant; kind: string; site: string; del: boolean }> = [];

function bigLayer(bytes: number, seed: string): Layer {
  const content = Buffer.alloc(bytes);
  for (let i = 0, block = createHash('sha256').update(seed).digest(); i < bytes; i += 32, block = createHash('sha256').update(block).digest()) block.copy(content, i);
  const tar = makeTar([{ name: 'big.bin', content }]);
  const blob = zlib.gzipSync(tar, { level: 1 });
  return { tar, blob, digest: sha256(blob), diffId: sha256(tar) };
}

async function build(name: 'first' | 'later', images: unknown): Promise<void> {
  const file = path.join(dir, `${name}.json`);
  await writeFile(file, JSON.stringify(images));
  sites[name] = path.join(dir, name);
  await buildRegistry({
    images: file,
    outputDir: sites[name],
    cacheDir: path.join(dir, 'cache'),
    hosts: [],
    imageConcurrency: 2,
    blobConcurrency: 4,
    linkMode: 'hardlink',
    logger: { info: () => {}, warn: () => {} },
    env: { DOCKER_CONFIG: path.join(dir, 'no-docker-config') },
  });
}

/** `registrish deploy`, as a user runs it, through the front; killed at `instant` when it comes. */
function deployRun(site: string, del: boolean, instant: Instant | undefined) {
  let pid = 0;
  front.arm(instant, () => {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  });
  const args = [path.join(REPO, 'bin/registrish.js'), 'deploy', `s3://${BUCKET}/${PREFIX.slice(0, -1)}`, site, '--endpoint-url', front.endpoint, '--concurrency', '4', ...(del ? ['--delete'] : [])];
  const env = { ...process.env, AWS_ACCESS_KEY_ID: S3_ACCESS_KEY, AWS_SECRET_ACCESS_KEY: S3_SECRET, AWS_REGION: 'us-east-1' };
  // The front kills at its instant; the timer is only a guard against a hang.
  return runAndKill(process.execPath, args, { cwd: dir, env, delayMs: 60_000, onSpawn: (p) => (pid = p) });
}

/** The bytes of an object, straight from the store. */
async function getBytes(key: string): Promise<Buffer | undefined> {
  const res = await fetch(`${s3.url}/${BUCKET}/${key.split('/').map(encodeURIComponent).join('/')}`);
  if (res.status === 404) return undefined;
  if (!res.ok) throw new Error(`GET ${key}: ${res.status}`);
  return Buffer.from(await res.arrayBuffer());
}

/** Digests a manifest (image or index) or a referrers answer names, as the keys they live at. */
function referenced(repo: string, doc: Record<string, any>): string[] {
  const keys: string[] = [];
  if (doc.config?.digest) keys.push(`${repo}/blobs/${doc.config.digest}`);
  for (const l of doc.layers ?? []) if (!l.urls) keys.push(`${repo}/blobs/${l.digest}`);
  for (const m of doc.manifests ?? []) keys.push(`${repo}/manifests/${m.digest}`);
  return keys;
}

/** What a reader of the bucket, or the next deploy trusting the record, would get wrong now. */
async function bucketProblems(): Promise<string[]> {
  const listed = new Map((await client.listObjects(`${PREFIX}v2/`)).map((o) => [o.key, o]));
  const problems: string[] = [];
  for (const key of listed.keys()) {
    const rel = key.slice(PREFIX.length);
    const m = /^(v2\/.+)\/(blobs|manifests|referrers|tags)\/(.+)$/.exec(rel);
    if (!m) continue;
    const [, repo, kind, last] = m as unknown as [string, string, string, string];
    const bytes = await getBytes(key);
    if (!bytes) continue; // deleted since the listing: not served
    if ((kind === 'blobs' || kind === 'manifests') && /^sha256:[a-f0-9]{64}$/.test(last) && sha256(bytes) !== last) problems.push(`${rel}: does not hash to its name`);
    let names: string[] = [];
    if (kind === 'manifests' || kind === 'referrers') names = referenced(`${PREFIX}${repo}`, JSON.parse(bytes.toString('utf8')));
    if (kind === 'tags') names = (JSON.parse(bytes.toString('utf8')).tags as string[]).map((t) => `${PREFIX}${repo}/manifests/${t}`);
    for (const n of names) if (!listed.has(n)) problems.push(`${rel} names ${n.slice(PREFIX.length)}, which is not in the bucket`);
  }
  // Every entry of the record (the whole one a deploy writes last, or the in-progress one it writes
  // before changing what the record names) must name an object that is there as the entry says:
  // listed with its ETag and size and not written after it (storedSame: the next deploy trusts it),
  // holding the entry's digest, size, Content-Type and Cache-Control. Not only the entries the next
  // deploy would trust: a stale entry the listing happens to contradict is a claim all the same.
  const recordKey = PREFIX + RECORD_FILE;
  const recordBytes = listed.has(recordKey) ? await getBytes(recordKey) : undefined;
  if (recordBytes) {
    const record = parseRecord(recordBytes.toString('utf8'));
    if (!record) problems.push('the deploy record is not readable');
    for (const [rel, entry] of record ?? []) {
      const o = listed.get(PREFIX + rel);
      const claim = `the deploy record names ${rel} (sha256:${entry.sha256}, ${entry.size} bytes, ${JSON.stringify(entry.headers)}, ETag ${entry.etag}, stored by ${entry.stored})`;
      if (!o) {
        problems.push(`${claim}; it is not in the bucket`);
        continue;
      }
      if (!storedSame(entry, o)) problems.push(`${claim}; the listing shows ETag ${o.etag}, ${o.size} bytes, written at ${o.lastModified / 1000}`);
      const info = await client.head(PREFIX + rel);
      const headers = { 'content-type': info?.contentType, 'cache-control': info?.cacheControl };
      const same = info && info.size === entry.size && info.meta['digest'] === `sha256:${entry.sha256}` && Object.entries(headers).every(([k, v]) => entry.headers[k] === v);
      if (!same) problems.push(`${claim}; the bucket holds ${JSON.stringify(info)}`);
    }
  }
  return problems;
}

/** A kill at a chosen request, and which record the bucket must hold afterwards. */
interface Targeted {
  instant: Instant;
  leaves: 'whole' | 'in progress';
}

/** Which record the bucket holds: the whole one a deploy writes last, or the in-progress one. */
async function recordLeft(): Promise<'whole' | 'in progress' | 'none'> {
  const bytes = await getBytes(PREFIX + RECORD_FILE);
  if (!bytes) return 'none';
  return (JSON.parse(bytes.toString('utf8')) as { about?: string }).about === IN_PROGRESS_ABOUT ? 'in progress' : 'whole';
}

/** Planned uploads already in the bucket whole, with the headers deploy gives them. */
async function alreadyComplete(uploads: Upload[]): Promise<Set<string>> {
  const done = new Set<string>();
  for (const u of uploads) {
    const info = await client.head(u.key);
    if (info && info.size === u.size && info.meta['digest'] === `sha256:${u.sha256}` && info.contentType === u.headers['content-type'] && info.cacheControl === u.headers['cache-control']) {
      done.add(u.key);
    }
  }
  return done;
}

beforeAll(async () => {
  console.log(`deploy kills: seed ${SEED} (REGISTRISH_KILL_SEED=${SEED} npx vitest run test/deploy-kills.test.ts replays it)`);
  dir = makeTempDir('rsh-deploy-kills-');
  s3 = await startS3rver(dir, [BUCKET]);
  front = await startS3Front(s3.url);
  client = new S3Client({
    endpoint: new URL(s3.url),
    region: 'us-east-1',
    bucket: BUCKET,
    credentials: { accessKeyId: S3_ACCESS_KEY, secretAccessKey: S3_SECRET },
    pathStyle: true,
    dispatcher: agent,
  });
  up = await startRegistry({ storageDir: path.join(dir, 'upstream') });
  const amd64 = { os: 'linux', architecture: 'amd64' };
  const small = (s: string) => makeLayer([{ name: 'f', content: `${s}\n` }]);
  const big = bigLayer(3 << 20, 'deploy big 1');
  await pushImage(up.url, 'app/one', '1.0', buildManifest({ format: 'oci', platform: amd64, layers: [big, small('one 1.0')] }));
  const multi = (s: string) =>
    buildIndex('oci', [
      buildManifest({ format: 'oci', platform: amd64, layers: [small(`${s} amd64`)] }),
      buildManifest({ format: 'oci', platform: { os: 'linux', architecture: 'arm64', variant: 'v8' }, layers: [small(`${s} arm64`)] }),
    ]);
  await pushImage(up.url, 'app/two', 'stable', multi('two a'));
  await seedSignedApp(up.url, up.host, keyPair('ec'));
  const images = (two: string) => [
    { source: `${up.host}/app/one`, name: 'app/one', tags: two === 'a' ? ['1.0'] : ['2.0'] },
    { source: `${up.host}/app/two:stable`, name: 'app/two' },
    { source: `${up.host}/signed/app:1.0`, name: 'signed/app', attachments: true },
  ];
  await build('first', { images: images('a') });
  // Later: app/one:1.0 gone, app/one:2.0 new (a new big layer), app/two:stable moved to another index.
  await pushImage(up.url, 'app/one', '2.0', buildManifest({ format: 'oci', platform: amd64, layers: [bigLayer(3 << 20, 'deploy big 2'), small('one 2.0')] }));
  await pushImage(up.url, 'app/two', 'stable', multi('two b'));
  await build('later', { images: images('b') });
}, 120_000);

afterAll(async () => {
  console.log(`deploy kills: seed ${SEED}: ${kills.length} kills; by instant ${JSON.stringify(countBy(kills, (k) => k.kind))}`);
  await front?.close();
  await s3?.close();
  await up?.stop();
  await agent.close();
  if (dir) removeDir(dir);
});

describe('registrish deploy killed at seeded instants', () => {
  it('never exposes a tag or manifest whose content is missing, the record never names what is not there; the next deploy re-uploads nothing complete', async () => {
    // Rounds: (kills, then one deploy to the end). The site alternates, so some rounds resume a
    // deploy of the same site and some replace it with the other; --delete in some.
    // Two rounds kill at chosen requests first, in an order where each comes. Round 2 (the last
    // record names the first site): mid-way through a new big blob (nothing the record names
    // changed yet), once a tag the record names was replaced (the in-progress record came before
    // it), once an object the record named was deleted, once the whole record was stored (the
    // first record PUT of a deploy that no longer needs an in-progress one). Round 3 (back to the
    // first site): the in-progress record's PUT cut off on arrival, then answered unheard; then
    // seeded random instants.
    // `leaves`: the record the bucket must then hold (so each instant is the one it is meant to be).
    const recordPut = /^PUT .*registrish-deploy/;
    const round2: Targeted[] = [
      // Keys as sent: the `:` of a digest is `%3A`.
      { instant: { request: 1, match: /^PUT .*\/blobs\/sha256%3A/, at: 'body', bytes: 1 << 20 }, leaves: 'whole' },
      { instant: { request: 1, match: /^PUT .*\/manifests\/stable$/, at: 'answered' }, leaves: 'in progress' },
      { instant: { request: 1, match: /^DELETE /, at: 'answered' }, leaves: 'in progress' },
      { instant: { request: 1, match: recordPut, at: 'answered' }, leaves: 'whole' },
    ];
    const round3: Targeted[] = [
      { instant: { request: 1, match: recordPut, at: 'arrival' }, leaves: 'whole' },
      { instant: { request: 1, match: recordPut, at: 'answered' }, leaves: 'in progress' },
    ];
    const rounds: Array<{ site: 'first' | 'later'; kills: number; del: boolean; targeted?: Targeted[] }> = [
      { site: 'first', kills: 3, del: false },
      { site: 'later', kills: round2.length, del: true, targeted: round2 },
      { site: 'first', kills: round3.length + 3, del: true, targeted: round3 },
      { site: 'later', kills: 3, del: rnd.next() < 0.5 },
    ];
    let requestsOfLast = 30;
    for (const [r, round] of rounds.entries()) {
      const site = sites[round.site];
      const uploads = await planUploads(site, PREFIX);
      for (let k = 0, attempts = 0; k < round.kills && attempts < round.kills * 3; attempts++) {
        const targeted = round.targeted?.[attempts];
        const instant: Instant = targeted?.instant ?? { request: rnd.int(1, requestsOfLast), at: rnd.pick(['arrival', 'body', 'answered'] as const), bytes: rnd.int(1, 3 << 20) };
        const kind = `${instant.at === 'body' ? 'mid-body' : instant.at} of request ${instant.request}${instant.match ? ` matching ${instant.match}` : ''}`;
        const where = `seed ${SEED}, round ${r + 1} (${round.site}${round.del ? ', --delete' : ''}), kill ${k + 1} at the ${kind}`;
        const res = await deployRun(site, round.del, instant);
        const seen = [...front.seen];
        if (res.signal === 'SIGKILL') {
          k++;
          kills.push({ instant, kind: instant.at, site: round.site, del: round.del });
        } else {
          // The instant never came (fewer requests than drawn, or a body shorter): it finished.
          expect(res.code, `${where}: the deploy ended by itself, with an error:\n${res.output}`).toBe(0);
          requestsOfLast = Math.max(2, seen.length);
        }
        const problems = await bucketProblems();
        expect(problems, `${where} (${seen.length} requests seen, the last ${seen.at(-1)}):\n${problems.join('\n')}`).toEqual([]);
        if (targeted) {
          expect(res.signal, `${where}: the chosen instant never came`).toBe('SIGKILL');
          expect(await recordLeft(), `${where}: the record left`).toBe(targeted.leaves);
        }
      }
      const complete = await alreadyComplete(uploads);
      const res = await deployRun(site, round.del, undefined);
      expect(res.code, `seed ${SEED}, round ${r + 1}: the deploy after the kills:\n${res.output}`).toBe(0);
      requestsOfLast = Math.max(requestsOfLast, front.seen.length);
      const uploaded = [...res.output.matchAll(/^upload s3:\/\/[^/]+\/(\S+) /gm)].map((m) => m[1]!);
      const again = uploaded.filter((k) => complete.has(k));
      expect(again, `seed ${SEED}, round ${r + 1}: re-uploaded though already complete`).toEqual([]);
      expect(await bucketProblems(), `seed ${SEED}, round ${r + 1}: after the deploy`).toEqual([]);
      // Everything the site publishes is there, whole.
      expect((await alreadyComplete(uploads)).size, `seed ${SEED}, round ${r + 1}: objects stored`).toBe(uploads.length);
    }
    expect(kills.length).toBeGreaterThanOrEqual(15);
  }, 300_000);
});
