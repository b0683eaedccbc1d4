import { lstat, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { RegistrishError } from './errors.ts';
import { MANIFEST_TYPES } from './media-types.ts';
import { isValidDigest, isValidRepositoryName, isValidTag } from './reference.ts';
import { mapLimit } from './limit.ts';
import type { HostFile } from './hosts.ts';
import type { Plan } from './plan.ts';
import { sha256, type ContentStore, type LinkMode } from './store.ts';
import type { PublishedPath } from './types.ts';

// Lays the plan out as the static files of a registry, and describes every URL neutrally
// (type, digest, cache policy) for the host writers.
//
// The tree is built in a staging folder next to `v2/` and swapped in with renames, so a failed
// build leaves the previous `v2/` whole, and a reader never sees a half-written one for longer
// than the two renames take.

const STAGING_PREFIX = '.registrish-staging-';
/**
 * The neutral description of every URL, saved with the tree (and swapped in with it), so commands
 * that run after the build (`deploy`, `check`) know each file's type and digest without a rebuild.
 * Repository names cannot start with a dot, so no registry URL ever collides with it.
 */
export const PATHS_FILE = 'v2/.registrish-paths.json';

export interface PathsFile {
  version: 1;
  paths: PublishedPath[];
  /** How the tree was written (a rebuild that would write it otherwise cannot keep it). */
  linkMode?: LinkMode;
  /** Every host file written with the tree (a host added or dropped means a rewrite). */
  hostFiles?: string[];
}

/** Reads the description a build left in `outDir`. */
export async function readPathsFile(outDir: string): Promise<PublishedPath[]> {
  const file = path.join(outDir, ...PATHS_FILE.split('/'));
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    throw new RegistrishError(`${file} is missing`, { hint: 'Build the site first (npx eleventy), then run this command on its output folder.' });
  }
  let parsed: PathsFile;
  try {
    parsed = JSON.parse(text) as PathsFile;
  } catch {
    throw new RegistrishError(`${file}: not valid JSON`, { hint: 'Rebuild the site.' });
  }
  if (parsed === null || typeof parsed !== 'object' || parsed.version !== 1 || !Array.isArray(parsed.paths)) {
    throw new RegistrishError(`${file}: unknown format`);
  }
  // Commands that upload these files (deploy) trust nothing here: every entry must be exactly a
  // path the build can write, so a tampered file cannot name `../x` or a type the path does not have.
  parsed.paths.forEach((entry: unknown, i) => {
    const problem = pathEntryProblem(entry);
    if (problem) throw new RegistrishError(`${file}: entry ${i} ${problem}`, { hint: 'Rebuild the site; never edit this file by hand.' });
  });
  return parsed.paths;
}

/** Why a paths-file entry is not one the build writes, or undefined when it is. */
function pathEntryProblem(entry: unknown): string | undefined {
  if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) return 'is not an object';
  const e = entry as Record<string, unknown>;
  const { file, urlPath, kind, contentType, digest, size, immutable } = e;
  if (typeof file !== 'string') return 'has no file';
  const where = `(file ${JSON.stringify(file)})`;
  let expected: { kind: PublishedPath['kind']; url: string; pathDigest?: string; ref?: string };
  if (file === 'v2/index.html') expected = { kind: 'base', url: '/v2/' };
  else if (file === 'v2/_catalog') expected = { kind: 'catalog', url: '/v2/_catalog' };
  else {
    const m = /^v2\/(.+)\/(?:(tags\/list)|manifests\/([^/]+)|blobs\/([^/]+))$/u.exec(file);
    if (!m || !isValidRepositoryName(m[1])) return `${where} is not a registry path`;
    if (m[2]) expected = { kind: 'tags', url: `/${file}` };
    else if (m[3] !== undefined) {
      if (isValidDigest(m[3])) expected = { kind: 'manifest', url: `/${file}`, pathDigest: m[3] };
      else if (isValidTag(m[3])) expected = { kind: 'manifest', url: `/${file}`, ref: m[3] };
      else return `${where} names neither a valid tag nor a valid digest`;
    } else {
      if (!isValidDigest(m[4])) return `${where} names an invalid blob digest`;
      expected = { kind: 'blob', url: `/${file}`, pathDigest: m[4] };
    }
  }
  if (urlPath !== expected.url) return `${where} has urlPath ${JSON.stringify(urlPath)}, expected ${JSON.stringify(expected.url)}`;
  if (kind !== expected.kind) return `${where} has kind ${JSON.stringify(kind)}, expected ${JSON.stringify(expected.kind)}`;
  if (digest !== undefined && !isValidDigest(digest)) return `${where} has an invalid digest`;
  if (expected.pathDigest !== undefined && digest !== expected.pathDigest) return `${where} has digest ${JSON.stringify(digest)}, not the one its path names`;
  if (expected.kind === 'manifest' && digest === undefined) return `${where} has no digest`;
  const typeOk =
    expected.kind === 'manifest'
      ? typeof contentType === 'string' && MANIFEST_TYPES.includes(contentType)
      : contentType === (expected.kind === 'blob' ? BLOB_TYPE : JSON_TYPE);
  if (!typeOk) return `${where} has contentType ${JSON.stringify(contentType)}, not one a ${expected.kind} is served with`;
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) return `${where} has an invalid size`;
  if (immutable !== (expected.pathDigest !== undefined)) return `${where} has immutable ${JSON.stringify(immutable)}, expected ${expected.pathDigest !== undefined}`;
  return undefined;
}
const JSON_TYPE = 'application/json';
const BLOB_TYPE = 'application/octet-stream';

/** Every URL of the registry described by the plan (pure: no file system). */
export function describePaths(plan: Plan): PublishedPath[] {
  const paths: PublishedPath[] = [];
  const json = (urlPath: string, file: string, kind: PublishedPath['kind'], body: string) =>
    paths.push({ urlPath, file, kind, contentType: JSON_TYPE, size: Buffer.byteLength(body), immutable: false });
  json('/v2/', 'v2/index.html', 'base', BASE_BODY);
  json('/v2/_catalog', 'v2/_catalog', 'catalog', catalogBody(plan));
  for (const repo of [...plan.repos.values()].sort((a, b) => a.name.localeCompare(b.name))) {
    const base = `v2/${repo.name}`;
    json(`/${base}/tags/list`, `${base}/tags/list`, 'tags', tagsBody(repo.name, repo.tags));
    for (const [tag, digest] of [...repo.tags].sort()) {
      const m = repo.manifests.get(digest)!;
      paths.push({ urlPath: `/${base}/manifests/${tag}`, file: `${base}/manifests/${tag}`, kind: 'manifest', contentType: m.mediaType, digest, size: m.size, immutable: false });
    }
    for (const [digest, m] of [...repo.manifests].sort()) {
      paths.push({ urlPath: `/${base}/manifests/${digest}`, file: `${base}/manifests/${digest}`, kind: 'manifest', contentType: m.mediaType, digest, size: m.size, immutable: true });
    }
    for (const [digest, size] of [...repo.blobs].sort()) {
      paths.push({ urlPath: `/${base}/blobs/${digest}`, file: `${base}/blobs/${digest}`, kind: 'blob', contentType: BLOB_TYPE, digest, size, immutable: true });
    }
  }
  assertNoFileDirClash(paths);
  return paths;
}

const BASE_BODY = '{}\n';

function catalogBody(plan: Plan): string {
  return JSON.stringify({ repositories: [...plan.repos.keys()].sort() }) + '\n';
}

function tagsBody(name: string, tags: Map<string, string>): string {
  return JSON.stringify({ name, tags: [...tags.keys()].sort() }) + '\n';
}

/**
 * A repository named like a file of another (`foo/tags/list` next to `foo`'s tag list) would need
 * one path to be both a file and a folder: refuse with the names instead of failing in mkdir.
 */
function assertNoFileDirClash(paths: PublishedPath[]): void {
  const files = new Set(paths.map((p) => p.file));
  for (const p of paths) {
    const parts = p.file.split('/');
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      if (files.has(dir)) {
        throw new RegistrishError(`published paths clash: "${dir}" would be a file and also the folder of "${p.file}"`, {
          hint: 'Rename one of the repositories in images.json ("name").',
        });
      }
    }
  }
}

export interface WriteTreeOptions {
  linkMode?: LinkMode;
  /** Host configuration files (`_headers`, …), put in place right after the tree is swapped in. */
  hostFiles?: HostFile[];
  /** Files linked/written at the same time. */
  concurrency?: number;
}

/** Writes `v2/` into `outDir` (staged, then swapped in) and returns the URL descriptions. */
export async function writeRegistryTree(
  plan: Plan,
  store: ContentStore,
  outDir: string,
  options: WriteTreeOptions = {},
): Promise<PublishedPath[]> {
  const paths = describePaths(plan);
  await mkdir(outDir, { recursive: true });
  await removeStaleStaging(outDir);
  const linkMode = options.linkMode ?? 'hardlink';
  const hostFiles = options.hostFiles ?? [];
  const pathsText =
    JSON.stringify({ version: 1, paths, linkMode, hostFiles: hostFiles.map((f) => f.file).sort() } satisfies PathsFile) + '\n';
  const bodies = new Map<string, string>([['v2/index.html', BASE_BODY], ['v2/_catalog', catalogBody(plan)]]);
  for (const repo of plan.repos.values()) bodies.set(`v2/${repo.name}/tags/list`, tagsBody(repo.name, repo.tags));
  if (await treeIsCurrent(outDir, pathsText, paths, bodies, store, linkMode)) {
    // Nothing changed since the build that wrote this tree: keep it (a warm rebuild then costs
    // the upstream requests and a stat or two per file), and only bring host files up to date.
    await writeHostFiles(outDir, await changedHostFiles(outDir, hostFiles));
    return paths;
  }
  const staging = path.join(outDir, `${STAGING_PREFIX}${process.pid}-${Date.now()}`);
  try {
    // Folders first, once each, so the parallel writes below only create files.
    const dirs = new Set(paths.map((p) => path.posix.dirname(p.file)));
    for (const dir of [...dirs].sort()) await mkdir(path.join(staging, ...dir.split('/').slice(1)), { recursive: true });
    await mapLimit(paths, options.concurrency ?? 16, async (p) => {
      // Staging holds what will become `v2/`, so drop the leading `v2/`.
      const dest = path.join(staging, ...p.file.split('/').slice(1));
      const body = bodies.get(p.file);
      if (body !== undefined) await writeFile(dest, body);
      else await store.linkInto(p.digest!, dest, linkMode);
    });
    // Host files are fully written before the swap; after it, each is one rename away.
    const pending: Array<[string, string]> = [];
    await writeFile(path.join(staging, ...PATHS_FILE.split('/').slice(1)), pathsText);
    for (const [i, f] of hostFiles.entries()) {
      const tmp = `${staging}.${i}`;
      await writeFile(tmp, f.text);
      pending.push([tmp, path.join(outDir, f.file)]);
    }
    await swapIn(staging, path.join(outDir, 'v2'));
    for (const [tmp, dest] of pending) await rename(tmp, dest);
  } catch (err) {
    await rm(staging, { recursive: true, force: true });
    for (const [i] of hostFiles.entries()) await rm(`${staging}.${i}`, { force: true });
    throw err;
  }
  return paths;
}

/**
 * Is `v2/` in `outDir` exactly what this plan would write? Its paths file must be byte-identical
 * (the same URLs, digests, types, sizes, link mode and host files), and every file must be there:
 * JSON bodies with the same text; with hard links, each manifest and blob the very file the cache
 * holds (the cache checks manifests against their digest when it reads them); with copies, each
 * manifest hashing to its digest and each blob with its size.
 */
async function treeIsCurrent(
  outDir: string,
  pathsText: string,
  paths: PublishedPath[],
  bodies: Map<string, string>,
  store: ContentStore,
  linkMode: LinkMode,
): Promise<boolean> {
  try {
    if ((await readFile(path.join(outDir, ...PATHS_FILE.split('/')), 'utf8')) !== pathsText) return false;
  } catch {
    return false;
  }
  const fileIsCurrent = async (p: PublishedPath): Promise<boolean> => {
    const file = path.join(outDir, ...p.file.split('/'));
    const st = await lstat(file);
    if (!st.isFile() || st.size !== p.size) return false;
    const body = bodies.get(p.file);
    if (body !== undefined) return (await readFile(file, 'utf8')) === body;
    if (linkMode === 'hardlink') {
      const cached = await stat(store.pathFor(p.digest!));
      return cached.ino === st.ino && cached.dev === st.dev;
    }
    return p.kind !== 'manifest' || sha256(await readFile(file)) === p.digest;
  };
  const current = await mapLimit(paths, 32, (p) => fileIsCurrent(p).catch(() => false));
  return current.every(Boolean);
}

/** The host files whose text differs from what is on disk. */
async function changedHostFiles(outDir: string, files: HostFile[]): Promise<HostFile[]> {
  const changed: HostFile[] = [];
  for (const f of files) {
    const current = await readFile(path.join(outDir, f.file), 'utf8').catch(() => undefined);
    if (current !== f.text) changed.push(f);
  }
  return changed;
}

/** Rewrites host files alone (atomically), e.g. when a watch rebuild replaced the site's `_headers`. */
export async function writeHostFiles(outDir: string, files: HostFile[]): Promise<void> {
  for (const f of files) {
    const tmp = path.join(outDir, `${STAGING_PREFIX}${process.pid}-${Date.now()}.host`);
    await writeFile(tmp, f.text);
    await rename(tmp, path.join(outDir, f.file));
  }
}

async function swapIn(staging: string, final: string): Promise<void> {
  const old = `${staging}-old`;
  let hadOld = true;
  try {
    await rename(final, old);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    hadOld = false;
  }
  try {
    await rename(staging, final);
  } catch (err) {
    if (hadOld) await rename(old, final);
    throw err;
  }
  if (hadOld) await rm(old, { recursive: true, force: true });
}

/**
 * Leftovers of a build that was killed mid-way (they start with a dot). A build killed between
 * the two renames of the swap leaves no `v2/` but a complete `-old` one: put that back first.
 */
async function removeStaleStaging(outDir: string): Promise<void> {
  const entries = await readdir(outDir);
  const final = path.join(outDir, 'v2');
  if (!entries.includes('v2')) {
    const old = entries.find((e) => e.startsWith(STAGING_PREFIX) && e.endsWith('-old'));
    if (old) await rename(path.join(outDir, old), final);
  }
  for (const entry of await readdir(outDir)) {
    if (entry.startsWith(STAGING_PREFIX)) await rm(path.join(outDir, entry), { recursive: true, force: true });
  }
}
