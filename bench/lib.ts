// What the benchmark scripts share: deterministic data, pushing it through the registry API,
// Eleventy sites as a user has them, whole-process timing with GNU time, and writing a section
// of docs/performance.md.
import { spawn, type ChildProcess } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { request } from 'undici';

export const ROOT = path.resolve(import.meta.dirname, '..');
export const MB = 1_000_000;
export const MiB = 1024 * 1024;
export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';

export const sha256 = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

/** Fails early, saying how to get it, when a tool the benchmark runs is missing. */
export function requireTools(...tools: Array<[file: string, apt: string]>): void {
  for (const [file, apt] of tools) {
    const found = file.startsWith('/') ? existsSync(file) : (process.env.PATH ?? '').split(':').some((d) => existsSync(path.join(d, file)));
    if (!found) throw new Error(`bench: ${file} is missing: apt-get install -y ${apt}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Deterministic, incompressible data: an AES-256-CTR keystream keyed by (seed, label).

export function keystream(seed: string, label: string) {
  return createCipheriv('aes-256-ctr', createHash('sha256').update(`${seed}/${label}`).digest(), Buffer.alloc(16));
}

export interface FileBlob {
  digest: string;
  size: number;
  file: string;
}

export async function randomFile(file: string, size: number, seed: string, label: string): Promise<FileBlob> {
  const cipher = keystream(seed, label);
  const hash = createHash('sha256');
  const out = createWriteStream(file);
  const zeros = Buffer.alloc(4 * MiB);
  for (let left = size; left > 0; left -= zeros.length) {
    const chunk = cipher.update(left >= zeros.length ? zeros : zeros.subarray(0, left));
    hash.update(chunk);
    if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
  }
  await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
  return { digest: `sha256:${hash.digest('hex')}`, size, file };
}

// ---------------------------------------------------------------------------------------------
// Pushing through the registry API (monolithic uploads), streaming from files.

export async function pushBlob(base: string, name: string, blob: { digest: string; size: number; file?: string; bytes?: Buffer }): Promise<void> {
  const start = await request(`${base}/v2/${name}/blobs/uploads/`, { method: 'POST' });
  await start.body.dump();
  const loc = new URL(String(start.headers.location), base);
  loc.searchParams.set('digest', blob.digest);
  const put = await request(loc, {
    method: 'PUT',
    headers: { 'content-type': 'application/octet-stream', 'content-length': String(blob.size) },
    body: blob.bytes ?? createReadStream(blob.file!),
  });
  await put.body.dump();
  if (put.statusCode !== 201) throw new Error(`push ${name} ${blob.digest}: HTTP ${put.statusCode}`);
}

export async function putManifest(base: string, name: string, ref: string, bytes: Buffer, mediaType: string): Promise<{ digest: string; size: number }> {
  const res = await request(`${base}/v2/${name}/manifests/${ref}`, { method: 'PUT', headers: { 'content-type': mediaType }, body: bytes });
  await res.body.dump();
  if (res.statusCode !== 201) throw new Error(`manifest ${name}:${ref}: HTTP ${res.statusCode}`);
  return { digest: `sha256:${sha256(bytes)}`, size: bytes.length };
}

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

/** Pushes a single-platform image (layers, a config, the manifest) and returns its descriptor. */
export async function pushImage(base: string, name: string, layers: FileBlob[], platform: Platform, tag?: string) {
  for (const l of layers) await pushBlob(base, name, l);
  const config = Buffer.from(JSON.stringify({ ...platform, rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) }, config: {} }));
  const configDigest = `sha256:${sha256(config)}`;
  await pushBlob(base, name, { digest: configDigest, size: config.length, bytes: config });
  const bytes = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: OCI_CONFIG, digest: configDigest, size: config.length },
      layers: layers.map((l) => ({ mediaType: OCI_LAYER, digest: l.digest, size: l.size })),
    }),
  );
  const m = await putManifest(base, name, tag ?? `sha256:${sha256(bytes)}`, bytes, OCI_MANIFEST);
  return { ...m, bytes, mediaType: OCI_MANIFEST, platform };
}

// ---------------------------------------------------------------------------------------------
// Whole processes, timed by GNU time: wall seconds and the peak RSS of the largest process.

export interface Measured {
  wall: number;
  rssMB: number;
  /** user + system CPU seconds */
  cpu: number;
  stdout: string;
  stderr: string;
}

export function timed(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Measured> {
  const timeFile = path.join(os.tmpdir(), `registrish-bench-time-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}`);
  return new Promise((resolve, reject) => {
    const child = spawn('/usr/bin/time', ['-f', '%e %M %U %S', '-o', timeFile, cmd, ...args], {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      if (stdout.length < 1 << 20) stdout += d;
    });
    child.stderr.on('data', (d) => {
      if (stderr.length < 1 << 20) stderr += d;
    });
    child.on('close', async (code) => {
      const text = await readFile(timeFile, 'utf8').catch(() => '');
      await rm(timeFile, { force: true });
      if (code !== 0) return reject(new Error(`${cmd} ${args.join(' ')} exited ${code}:\n${(stderr || stdout).slice(-2000)}`));
      const [wall, rss, user, sys] = text.trim().split('\n').at(-1)!.split(/\s+/).map(Number) as [number, number, number, number];
      resolve({ wall, rssMB: rss / 1024, cpu: user + sys, stdout, stderr });
    });
  });
}

export const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
export const spread = (xs: number[], digits = 2): string => `${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)}`;

/** Wall seconds and peak RSS of a series of runs of one thing. */
export class Series {
  walls: number[] = [];
  rss: number[] = [];
  add(m: Measured): Measured {
    this.walls.push(m.wall);
    this.rss.push(m.rssMB);
    return m;
  }
  get wall(): number {
    return median(this.walls);
  }
  get peak(): number {
    return median(this.rss);
  }
}

// ---------------------------------------------------------------------------------------------
// Eleventy sites as a user has them: `registrish` and Eleventy in node_modules, `npx eleventy`.

export interface SiteOptions {
  /** images.json content; omitted: the site has none. */
  images?: unknown;
  /** The plugin's options; false: the same site without the plugin. */
  plugin: Record<string, unknown> | false;
}

/**
 * A one-page Eleventy site in `dir`. Its node_modules links this checkout as `registrish` (so it
 * loads dist/, as an install does) and this checkout's Eleventy, so `npx eleventy` runs them.
 */
export async function makeSite(dir: string, opts: SiteOptions): Promise<string> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(path.join(dir, 'src'), { recursive: true });
  await mkdir(path.join(dir, 'node_modules'), { recursive: true });
  await symlink(ROOT, path.join(dir, 'node_modules', 'registrish'));
  await symlink(path.join(ROOT, 'node_modules', '@11ty'), path.join(dir, 'node_modules', '@11ty'));
  await symlink(path.join(ROOT, 'node_modules', '.bin'), path.join(dir, 'node_modules', '.bin'));
  await writeFile(path.join(dir, 'package.json'), '{"private":true,"type":"module"}\n');
  await writeFile(path.join(dir, 'src', 'index.md'), '# A site\n\nWith a registry beside it.\n');
  if (opts.images !== undefined) await writeFile(path.join(dir, 'images.json'), JSON.stringify(opts.images, null, 2));
  await writeFile(
    path.join(dir, 'eleventy.config.js'),
    opts.plugin === false
      ? `export default function () {\n  return { dir: { input: 'src' } };\n}\n`
      : `import registrish from 'registrish';\n\nexport default function (eleventyConfig) {\n  eleventyConfig.addPlugin(registrish, ${JSON.stringify(opts.plugin)});\n  return { dir: { input: 'src' } };\n}\n`,
  );
  return dir;
}

/** Removes what a build leaves (output, caches), so the next one is cold. */
export async function coldSite(dir: string): Promise<void> {
  await rm(path.join(dir, '_site'), { recursive: true, force: true });
  await rm(path.join(dir, '.cache'), { recursive: true, force: true });
}

/** `npx eleventy` in the site: the user's command, whole process. */
export function npxEleventy(dir: string): Promise<Measured> {
  return timed('npx', ['--no-install', 'eleventy', '--quiet'], { cwd: dir, env: { ...process.env, npm_config_update_notifier: 'false', NETLIFY: '' } });
}

// ---------------------------------------------------------------------------------------------

/**
 * Replaces the block between `<!-- bench:NAME:begin -->` and `<!-- bench:NAME:end -->` in
 * docs/performance.md (appending it under `heading` the first time), keeping the prose around it.
 */
export async function writeSection(name: string, report: string, heading: string): Promise<void> {
  const file = path.join(ROOT, 'docs/performance.md');
  const begin = `<!-- bench:${name}:begin -->`;
  const end = `<!-- bench:${name}:end -->`;
  let text = existsSync(file) ? await readFile(file, 'utf8') : '# Performance\n';
  const i = text.indexOf(begin);
  const j = text.indexOf(end);
  text = i >= 0 && j > i ? `${text.slice(0, i + begin.length)}\n${report.trim()}\n${text.slice(j)}` : `${text.trimEnd()}\n\n## ${heading}\n\n${begin}\n${report.trim()}\n${end}\n`;
  await writeFile(file, text);
  console.error(`bench: ${name} results written to docs/performance.md`);
}

/** Keeps the process (and the upstream it started) running until Ctrl-C or SIGTERM: the benches' --hold. */
export async function holdUntilSignal(): Promise<void> {
  const alive = setInterval(() => {}, 60_000); // signal listeners alone do not keep Node running
  await new Promise<void>((resolve) => process.once('SIGINT', () => resolve()).once('SIGTERM', () => resolve()));
  clearInterval(alive);
}

export function machineLine(): string {
  return `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM, ${os.type()} ${os.release()}, node ${process.version}`;
}

interface S3rverSpec {
  dir: string;
  bucket: string;
  key: { accessKeyId: string; secretAccessKey: string };
}

/** Runs s3rver in this process (the child startS3rver spawns) and prints its port as one JSON line. */
function serveS3rver({ dir, bucket, key }: S3rverSpec): void {
  const require = createRequire(import.meta.url);
  // s3rver encrypts listing continuation tokens with single DES, which OpenSSL 3 only has in its
  // legacy provider: 3DES with three equal keys is the same cipher.
  const crypto = require('node:crypto') as Record<'createCipheriv' | 'createDecipheriv', (a: string, k: Buffer, iv: Buffer) => unknown>;
  for (const fn of ['createCipheriv', 'createDecipheriv'] as const) {
    const real = crypto[fn];
    crypto[fn] = (a, k, iv) => (a === 'des' ? real('des-ede3-cbc', Buffer.concat([k, k, k]), iv) : real(a, k, iv));
  }
  (require('s3rver/lib/models/account') as { DUMMY_ACCOUNT: { createKeyPair(a: string, s: string): void } }).DUMMY_ACCOUNT.createKeyPair(key.accessKeyId, key.secretAccessKey);
  const S3rver = require('s3rver') as new (o: object) => { run(): Promise<{ port: number }> };
  void new S3rver({ port: 0, address: '127.0.0.1', directory: dir, silent: true, configureBuckets: [{ name: bucket }] })
    .run()
    .then(({ port }) => console.log(JSON.stringify({ port })));
}

/** The store the S3 benches upload to: s3rver in a process of its own, so that its work is not counted as theirs. */
export async function startS3rver(spec: S3rverSpec): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, [...process.execArgv, import.meta.filename, '--serve-s3rver', JSON.stringify(spec)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const [line] = await Promise.race([
    (async () => {
      for await (const l of createInterface({ input: child.stdout! })) return [l];
      return [];
    })(),
    new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`s3rver exited ${code}`)))),
  ]);
  return { url: `http://127.0.0.1:${(JSON.parse(line!) as { port: number }).port}`, child };
}

if (process.argv[1] === import.meta.filename && process.argv[2] === '--serve-s3rver') serveS3rver(JSON.parse(process.argv[3]!) as S3rverSpec);
