import { statfs } from 'node:fs/promises';
import { RegistrishError } from './errors.ts';
import { formatBytes } from './format.ts';

// A build that cannot write (a full disk, a quota, a read-only or locked folder) says which of its
// two folders it was, how much it still needed there, and what to do — instead of
// `ENOSPC: no space left on device, write` with no folder at all.

/** One of the folders a build writes: the content cache, or the site output. */
export interface BuildFolder {
  role: 'cache' | 'output';
  dir: string;
}

const DISK_ERRORS: Record<string, string> = {
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  EROFS: 'read-only filesystem',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
};

/** The errno error of a write that the disk refused, in `err` or its causes. */
function diskCause(err: unknown): NodeJS.ErrnoException | undefined {
  let e: unknown = err;
  for (let depth = 0; e instanceof Error && depth < 4; depth++, e = e.cause) {
    const code = (e as NodeJS.ErrnoException).code;
    if (typeof code === 'string' && code in DISK_ERRORS) return e as NodeJS.ErrnoException;
  }
  return undefined;
}

/** Bytes free to this user on the filesystem holding `dir`, and whether it has run out of inodes. */
async function freeSpace(dir: string): Promise<{ bytes: number; noInodes: boolean } | undefined> {
  try {
    const st = await statfs(dir);
    return { bytes: st.bavail * st.bsize, noInodes: st.files > 0 && st.ffree === 0 };
  } catch {
    return undefined;
  }
}

/**
 * `err` as a message naming the folder, the bytes the build still needed in it (`needed`, when it
 * can tell) and what to do, when it is a write the disk refused; `err` itself otherwise.
 */
export async function explainDiskError(err: unknown, folder: BuildFolder, needed: () => Promise<number | undefined>): Promise<unknown> {
  const cause = diskCause(err);
  if (!cause || !(err instanceof Error)) return err;
  const code = cause.code!;
  // What the layers above said (`images[2] (…): blob sha256:…`), without the errno text that follows.
  const at = err.message.indexOf(`${code}:`);
  const context = (at >= 0 ? err.message.slice(0, at) : '').replace(/[:\s]+$/u, '');
  const [still, free] = await Promise.all([needed().catch(() => undefined), freeSpace(folder.dir)]);
  const name = folder.role === 'cache' ? 'cache folder' : 'output folder';

  const parts = [`cannot write to the ${name} ${folder.dir}: ${DISK_ERRORS[code]} (${code})`];
  if (code === 'ENOSPC' && free?.noInodes) parts.push('the filesystem has no free inodes (room for new files) left');
  // 0: the failure came before the build knew its blobs (writing a manifest): say nothing rather than guess.
  if (still !== undefined && still > 0) parts.push(`the build still needed at least ${formatBytes(still)} more there`);
  // Free space says nothing of a quota (it is per user): only for a full disk.
  if (code === 'ENOSPC' && free) parts.push(`${formatBytes(free.bytes)} is free`);
  const message = `${context ? `${context}: ` : ''}${parts.join('; ')}`;

  const option = folder.role === 'cache' ? "the plugin's cacheDir option" : "Eleventy's output folder (--output)";
  const amount = still !== undefined && still > 0 ? `at least ${formatBytes(still)}` : 'space';
  const fix =
    code === 'ENOSPC'
      ? `Free ${amount} on that disk, or point ${option} to a folder on a larger one, then build again.`
      : code === 'EDQUOT'
        ? `Free ${amount} of your own files on that disk or ask for a larger quota, or point ${option} to another disk, then build again.`
        : code === 'EROFS'
          ? `That folder is on a filesystem mounted read-only (a restored CI cache can be): point ${option} to a writable folder.`
          : `Make the folder writable by the user running the build (check \`ls -ld ${folder.dir}\`; \`lsattr -d\` for an immutable folder), or point ${option} to a writable one.`;
  const kept =
    folder.role === 'cache'
      ? 'The registry was not published: the previous v2/ is as it was, and nothing half-written is kept in the cache.'
      : 'The previous v2/ is still in place, as it was; the half-written new one was removed.';
  return new RegistrishError(message, { cause, hint: `${fix} ${kept}` });
}
