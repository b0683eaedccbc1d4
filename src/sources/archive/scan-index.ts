import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { SourceContext } from '../source.ts';
import { TarArchive, type ArchiveMember, type ScanOptions } from './archive.ts';

// What one scan of an archive learned (its members, their digests, its small JSON documents),
// kept in the build's cache so that the next build does not read and hash an unchanged archive
// again — gigabytes for a large `docker save`. The key is the file's identity and change
// times, not its content: device, inode, size, and mtime and ctime in nanoseconds. Any write to
// the file changes its ctime, which no user tool can set back (`touch -d` sets mtime, and changes
// ctime doing so), and replacing the file changes its inode. So the archive is read again when it
// is written to, touched, replaced, copied or moved to another filesystem, when the index is
// missing, damaged or of another format, or when the scan would be different (another inflate
// ratio). Even a stale index could not publish wrong bytes: every blob is hashed again by the
// store as it is copied into the cache, and refused if it is not its digest.

const FORMAT = 1;

interface SavedMember extends Omit<ArchiveMember, 'json'> {
  json?: string;
}

interface ScanIndexFile {
  format: number;
  key: string;
  gzip: boolean;
  members: SavedMember[];
}

/**
 * The archive, from the index of its last scan when it has not changed since, else scanned (and
 * the index saved for the next build). A scan is announced: it reads the whole archive.
 */
export async function openArchive(file: string, label: string, ctx: Pick<SourceContext, 'cacheDir' | 'logger'>, options: ScanOptions): Promise<TarArchive> {
  const key = await archiveKey(file, options);
  if (key !== undefined && ctx.cacheDir !== undefined) {
    const saved = await readScanIndex(ctx.cacheDir, file, key);
    if (saved) return TarArchive.restore(file, label, saved.gzip, saved.members, options);
  }
  const started = performance.now();
  const tar = await TarArchive.scan(file, label, options);
  ctx.logger.info(`${label}: read and hashed ${tar.members.size} members in ${((performance.now() - started) / 1000).toFixed(1)}s (kept for the next build while the archive does not change)`);
  // Saved only when the file did not change while it was read.
  if (key !== undefined && ctx.cacheDir !== undefined && (await archiveKey(file, options)) === key) {
    await writeScanIndex(ctx.cacheDir, file, key, tar.gzip, tar.members).catch(() => {}); // a cache that cannot take it costs a scan next time
  }
  return tar;
}

/** The archive file's identity and change times, or undefined when it cannot be stat'ed (the scan says why). */
async function archiveKey(file: string, options: object): Promise<string | undefined> {
  try {
    const st = await stat(file, { bigint: true });
    return [st.dev, st.ino, st.size, st.mtimeNs, st.ctimeNs, JSON.stringify(options)].join(':');
  } catch {
    return undefined;
  }
}

function indexFile(cacheDir: string, file: string): string {
  return path.join(cacheDir, 'archives', `${createHash('sha256').update(file).digest('hex')}.json`);
}

/** The saved scan of `file` when its key is `key`; undefined otherwise (never throws: a bad index means a new scan). */
async function readScanIndex(cacheDir: string, file: string, key: string): Promise<{ gzip: boolean; members: Map<string, ArchiveMember> } | undefined> {
  try {
    const saved = JSON.parse(await readFile(indexFile(cacheDir, file), 'utf8')) as ScanIndexFile;
    if (saved.format !== FORMAT || saved.key !== key || !Array.isArray(saved.members)) return undefined;
    const members = new Map<string, ArchiveMember>();
    for (const m of saved.members) {
      const { json, ...rest } = m;
      members.set(m.name, json === undefined ? rest : { ...rest, json: Buffer.from(json, 'base64') });
    }
    return { gzip: saved.gzip === true, members };
  } catch {
    return undefined;
  }
}

/** Saves a scan (temp file + rename: a reader sees the old index or the new one). */
async function writeScanIndex(cacheDir: string, file: string, key: string, gzip: boolean, members: ReadonlyMap<string, ArchiveMember>): Promise<void> {
  const dest = indexFile(cacheDir, file);
  const saved: ScanIndexFile = {
    format: FORMAT,
    key,
    gzip,
    members: [...members.values()].map(({ json, ...m }) => (json === undefined ? m : { ...m, json: json.toString('base64') })),
  };
  // The temp file lives in the cache's tmp/, where a build killed before the rename leaves nothing
  // but what the next build's clean-up removes (the store's own temp files are there too).
  const tmpDir = path.join(cacheDir, 'tmp');
  await Promise.all([mkdir(path.dirname(dest), { recursive: true }), mkdir(tmpDir, { recursive: true })]);
  const tmp = path.join(tmpDir, `archive-index-${process.pid}-${randomBytes(4).toString('hex')}.json`);
  try {
    await writeFile(tmp, JSON.stringify(saved));
    await rename(tmp, dest);
  } finally {
    await rm(tmp, { force: true });
  }
}
