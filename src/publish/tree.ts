import { lstat, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { HostFile } from '../hosts/host.ts';
import { sha256 } from '../model/digest.ts';
import type { PublishedPath } from '../model/published-path.ts';
import type { ContentStore, LinkMode } from '../store/store.ts';
import { mapLimit } from '../util/concurrency.ts';
import { PATHS_FILE, type PathsFile } from './paths-file.ts';
import type { RegistryLayout } from './paths.ts';

// Writes the registry's layout as static files: manifests and blobs linked from the content store,
// the JSON bodies, the paths file, and the host files beside the tree.
//
// The tree is built in a staging folder next to `v2/` and swapped in with renames, so a failed
// build leaves the previous `v2/` whole, and a reader never sees a half-written one for longer
// than the two renames take.

const STAGING_PREFIX = '.registrish-staging-';

export interface WriteTreeOptions {
  linkMode?: LinkMode;
  /** Host configuration files (`_headers`, …), put in place right after the tree is swapped in. */
  hostFiles?: HostFile[];
  /** Files linked/written at the same time. */
  concurrency?: number;
}

/** Writes `v2/` into `outDir` (staged, then swapped in). */
export async function writeRegistryTree(
  layout: RegistryLayout,
  store: ContentStore,
  outDir: string,
  options: WriteTreeOptions = {},
): Promise<void> {
  const { paths, bodies } = layout;
  // Blobs kept in an object store (`location`) have no file here; the paths file still lists them.
  const files = paths.filter((p) => p.location === undefined);
  await mkdir(outDir, { recursive: true });
  await removeStaleStaging(outDir);
  const linkMode = options.linkMode ?? 'hardlink';
  const hostFiles = options.hostFiles ?? [];
  const pathsText =
    JSON.stringify({ version: 1, paths, linkMode, hostFiles: hostFiles.map((f) => f.file).sort() } satisfies PathsFile) + '\n';
  // The Helm repository's index.yaml lives outside v2/: written like the host files (its
  // `generated` time changes every build, which must not make the tree look changed).
  const inTree = files.filter((p) => p.file.startsWith('v2/'));
  const siteFiles: HostFile[] = paths.filter((p) => !p.file.startsWith('v2/')).map((p) => ({ file: p.file, text: bodies.get(p.file) ?? '' }));
  if (await treeIsCurrent(outDir, pathsText, inTree, bodies, store, linkMode)) {
    // Nothing changed since the build that wrote this tree: keep it (a warm rebuild then costs
    // the upstream requests and a stat or two per file), and only bring host files up to date.
    await writeHostFiles(outDir, await changedHostFiles(outDir, [...hostFiles, ...siteFiles]));
    return;
  }
  const staging = path.join(outDir, `${STAGING_PREFIX}${process.pid}-${Date.now()}`);
  try {
    // Folders first, once each, so the parallel writes below only create files.
    const dirs = new Set(inTree.map((p) => path.posix.dirname(p.file)));
    for (const dir of [...dirs].sort()) await mkdir(path.join(staging, ...dir.split('/').slice(1)), { recursive: true });
    await mapLimit(inTree, options.concurrency ?? 16, async (p) => {
      // Staging holds what will become `v2/`, so drop the leading `v2/`.
      const dest = path.join(staging, ...p.file.split('/').slice(1));
      const body = bodies.get(p.file);
      if (body !== undefined) await writeFile(dest, body);
      else await store.linkInto(p.digest!, dest, linkMode);
    });
    // Host files are fully written before the swap; after it, each is one rename away.
    const pending: Array<[string, string]> = [];
    await writeFile(path.join(staging, ...PATHS_FILE.split('/').slice(1)), pathsText);
    for (const [i, f] of [...hostFiles, ...siteFiles].entries()) {
      if (f.file.startsWith('v2/')) {
        // Inside the tree (.htaccess files, error bodies): swapped in with it, folders made as needed.
        const dest = path.join(staging, ...f.file.split('/').slice(1));
        await mkdir(path.dirname(dest), { recursive: true });
        await writeFile(dest, f.text);
        continue;
      }
      const tmp = `${staging}.${i}`;
      await writeFile(tmp, f.text);
      await mkdir(path.dirname(path.join(outDir, f.file)), { recursive: true });
      pending.push([tmp, path.join(outDir, f.file)]);
    }
    await swapIn(staging, path.join(outDir, 'v2'));
    for (const [tmp, dest] of pending) await rename(tmp, dest);
  } catch (err) {
    await rm(staging, { recursive: true, force: true });
    for (const [i] of [...hostFiles, ...siteFiles].entries()) await rm(`${staging}.${i}`, { force: true });
    throw err;
  }
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
    await mkdir(path.dirname(path.join(outDir, f.file)), { recursive: true });
    await writeFile(tmp, f.text);
    await rename(tmp, path.join(outDir, f.file));
  }
}

async function swapIn(staging: string, final: string): Promise<void> {
  const old = `${staging}-old`;
  // Another build of the same output (two `npx eleventy` at once) may put its own complete `v2/`
  // in place between our two renames: then ours, as complete, replaces it on the next try.
  for (let attempt = 1; ; attempt++) {
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
      const raced = ['ENOTEMPTY', 'EEXIST'].includes((err as NodeJS.ErrnoException).code ?? '');
      if (!raced || attempt === 5) {
        if (hadOld) await rename(old, final).catch(() => {});
        throw err;
      }
      if (hadOld) await rm(old, { recursive: true, force: true });
      continue;
    }
    if (hadOld) await rm(old, { recursive: true, force: true });
    return;
  }
}

/** The build that made a staging entry (`.registrish-staging-<pid>-<ms>…`) is still running here. */
function ownerAlive(entry: string): boolean {
  const pid = Number(/^\.registrish-staging-(\d+)-/.exec(entry)?.[1]);
  if (!pid || pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Leftovers of a build that was killed mid-way (they start with a dot). A build killed between
 * the two renames of the swap leaves no `v2/` but a complete `-old` one: put that back first.
 * Those of a build still running (another `npx eleventy` on the same output) are its own.
 */
async function removeStaleStaging(outDir: string): Promise<void> {
  const entries = await readdir(outDir);
  const final = path.join(outDir, 'v2');
  if (!entries.includes('v2')) {
    const old = entries.find((e) => e.startsWith(STAGING_PREFIX) && e.endsWith('-old') && !ownerAlive(e));
    if (old) await rename(path.join(outDir, old), final).catch(() => {});
  }
  for (const entry of await readdir(outDir)) {
    if (entry.startsWith(STAGING_PREFIX) && !ownerAlive(entry)) await rm(path.join(outDir, entry), { recursive: true, force: true });
  }
}
