import { createHash, randomBytes } from 'node:crypto';
import { constants as fsConstants, type Dir } from 'node:fs';
import { copyFile, link, mkdir, open as openFile, opendir, readFile, rename, rm, stat, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { assertSafeDigest, digestDir, digestPath, sha256 } from '../model/digest.ts';
import { IntegrityError, RegistrishError } from '../util/errors.ts';
import { BatchWriter } from './batch-writer.ts';

// The content-addressed cache. One rule above all: a file only ever appears under its
// digest name after its bytes were hashed and matched (temp file + rename), so a crash,
// a reset connection or a lying upstream can never leave a wrong file behind.

export interface OpenedBlob {
  status: number;
  body: Readable;
  contentEncoding?: string;
  /** Where the bytes came from (credentials stripped), for messages. */
  url?: string;
}

/** Opens the blob's bytes from `offset` (a Range request when > 0). */
export type BlobOpener = (offset: number) => Promise<OpenedBlob>;

export interface FetchBlobOptions {
  /** Re-open attempts after a body failed mid-way (resuming with Range when possible). */
  retries?: number;
  retryDelayMs?: number;
  /** Called with the number of new bytes as they arrive. */
  onBytes?: (n: number) => void;
  /** For messages: which image the blob belongs to. */
  context?: string;
}

export type LinkMode = 'hardlink' | 'copy';

export class ContentStore {
  readonly dir: string;
  private readonly inflight = new Map<string, Promise<boolean>>();
  /** Small files (manifests, configs) read and verified by this store, by digest. */
  private readonly small = new Map<string, Promise<Buffer | undefined>>();
  private tmpCounter = 0;

  constructor(dir: string) {
    this.dir = path.resolve(dir);
  }

  /** Path of the verified file for a digest. Throws on anything but a well-formed digest. */
  pathFor(digest: string): string {
    if (!digest.startsWith('sha256:')) {
      assertSafeDigest(digest, 'content store');
      throw new RegistrishError(`content store: ${digest.split(':')[0]} digests are not supported (only sha256)`);
    }
    return digestPath(this.dir, digest);
  }

  /** Does the store hold no content at all (a first build, or `.cache/` deleted)? */
  async isEmpty(): Promise<boolean> {
    let dir: Dir;
    try {
      dir = await opendir(digestDir(this.dir));
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === 'ENOENT';
    }
    try {
      return (await dir.read()) === null;
    } catch {
      return false; // unreadable: behave as a later build would (it only costs a HEAD per tag)
    } finally {
      await dir.close().catch(() => {});
    }
  }

  /** Is the content present with the expected size (when given)? */
  async has(digest: string, size?: number): Promise<boolean> {
    try {
      const st = await stat(this.pathFor(digest));
      return st.isFile() && (size === undefined || st.size === size);
    } catch {
      return false;
    }
  }

  /**
   * Reads a small stored document (a manifest), or undefined when absent. Refuses anything
   * over `maxBytes`, so an index naming a cached layer as a "manifest" cannot fill memory. The
   * bytes are checked against the digest (cheap at this size): a file damaged since it was stored
   * (output files are hard links into the cache) is dropped and reads as absent, to be fetched again.
   */
  async readSmall(digest: string, maxBytes: number): Promise<Buffer | undefined> {
    // Tags of one image share its manifest: read and verified once per build (a store lives for one).
    let read = this.small.get(digest);
    if (!read) {
      read = this.readVerified(digest, maxBytes);
      this.small.set(digest, read);
      // Only what was found stays remembered: a missing file may be stored a moment later.
      read.then((b) => b ?? this.small.delete(digest), () => this.small.delete(digest));
    }
    const bytes = await read;
    if (bytes && bytes.length > maxBytes) {
      throw new IntegrityError(`${digest} is ${bytes.length} bytes: too large for a manifest (limit ${maxBytes})`);
    }
    return bytes;
  }

  private async readVerified(digest: string, maxBytes: number): Promise<Buffer | undefined> {
    const file = this.pathFor(digest);
    try {
      const st = await stat(file);
      if (st.size > maxBytes) {
        throw new IntegrityError(`${digest} is ${st.size} bytes: too large for a manifest (limit ${maxBytes})`);
      }
      const bytes = await readFile(file);
      if (sha256(bytes) === digest) return bytes;
      await rm(file, { force: true });
      return undefined;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  /** Stores bytes already in memory (manifests) after checking them against `digest`. */
  async putBytes(digest: string, bytes: Buffer, context = 'manifest'): Promise<void> {
    const actual = sha256(bytes);
    if (actual !== digest) {
      throw new IntegrityError(`${context}: content does not match its digest (expected ${digest}, got ${actual})`);
    }
    if (await this.has(digest, bytes.length)) return;
    const dest = this.pathFor(digest);
    const tmp = await this.tempPath(dest);
    try {
      await writeFile(tmp, bytes);
      await rename(tmp, dest);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  }

  /**
   * Makes sure the blob is in the store, fetching it at most once per store even when many
   * images ask for it at the same time. Returns true when bytes were downloaded.
   */
  ensureBlob(digest: string, size: number, open: BlobOpener, options: FetchBlobOptions = {}): Promise<boolean> {
    const pending = this.inflight.get(digest);
    if (pending) return pending.then(() => false);
    const p = (async () => {
      if (await this.has(digest, size)) return false;
      await this.download(digest, size, open, options);
      return true;
    })();
    this.inflight.set(digest, p);
    // A failed download may be retried later in the same build; a success stays memoized.
    p.catch(() => this.inflight.delete(digest));
    return p;
  }

  private async download(digest: string, size: number, open: BlobOpener, options: FetchBlobOptions): Promise<void> {
    const dest = this.pathFor(digest);
    const tmp = await this.tempPath(dest);
    const retries = options.retries ?? 3;
    const what = `${options.context ? options.context + ': ' : ''}blob ${digest}`;
    // `written` counts bytes that are both in the file and in the hash, so a resume
    // (Range: bytes=written-) continues exactly where the verified prefix ends.
    let hash = createHash('sha256');
    let written = 0;
    let lastError: unknown;
    const fh = await openFile(tmp, 'w+');
    try {
      for (let attempt = 0; attempt <= retries; attempt++) {
        if (attempt > 0) await delay((options.retryDelayMs ?? 500) * 2 ** (attempt - 1));
        // The transport already retried opening; a failure here is final.
        const opened = await open(written);
        const from = opened.url ? ` (from ${opened.url})` : '';
        if (opened.contentEncoding && opened.contentEncoding !== 'identity') {
          // The listener keeps the stream's AbortError from becoming an uncaught exception.
          opened.body.on('error', () => {}).destroy();
          throw new IntegrityError(
            `${what}: the upstream sent it with Content-Encoding "${opened.contentEncoding}"; a blob's bytes must be sent as they are${from}`,
          );
        }
        if (written > 0 && opened.status !== 206) {
          // The server ignored our Range request: start over from byte 0.
          hash = createHash('sha256');
          written = 0;
          await fh.truncate(0);
        }
        // Chunks are hashed in arrival order and written in 512 KiB batches, several at once at
        // their own offsets. Whatever arrived before a failure is kept (it is a valid prefix), and
        // every write under way lands before `written` is read for the resume.
        const sink = new BatchWriter(fh, written, hash, options.onBytes);
        let failure: unknown;
        try {
          for await (const chunk of opened.body as AsyncIterable<Buffer>) {
            if (sink.received + chunk.length > size) {
              throw new IntegrityError(`${what}: the upstream sent more than the ${size} bytes its descriptor declares${from}`);
            }
            await sink.add(chunk);
          }
        } catch (err) {
          failure = err;
        }
        // Bad bytes are not a network fault: no retry, and nothing more is written.
        if (!(failure instanceof IntegrityError)) sink.flush();
        await sink.settled();
        // Neither is a failing disk.
        if (sink.localError) throw sink.localError;
        if (failure instanceof IntegrityError) throw failure;
        written = sink.written;
        if (failure) {
          lastError = failure;
          // Every byte arrived before the failure: nothing left to ask for, check the hash.
          if (written !== size) continue;
        }
        if (written < size) {
          lastError = new IntegrityError(`${what}: the upstream ended the body after ${written} of ${size} bytes${from}`);
          continue;
        }
        const actual = `sha256:${hash.digest('hex')}`;
        if (actual !== digest) {
          throw new IntegrityError(`${what}: downloaded bytes hash to ${actual}; refusing to store them${from}`);
        }
        // No fsync per blob: it doubled the time of a 1 GiB layer (docs/performance.md). A process
        // crash can never leave a wrong file (rename after verify); after an OS crash or power
        // loss, delete the cache folder.
        // The hash covers the bytes received; this covers the bytes on disk (a short write that
        // somehow got through would otherwise be renamed into the cache under the right name).
        const onDisk = (await fh.stat()).size;
        if (onDisk !== size) throw new RegistrishError(`${what}: ${onDisk} of ${size} bytes reached the disk; refusing to store the file`);
        await fh.close();
        await rename(tmp, dest);
        return;
      }
      throw new RegistrishError(`${what}: download failed after ${retries + 1} attempts: ${errorText(lastError)}`, {
        cause: lastError,
      });
    } catch (err) {
      // A disk that refused the write says only `ENOSPC: …, write`: name the blob it was for.
      if (err instanceof Error && 'syscall' in err && !err.message.includes(what)) err.message = `${what}: ${err.message}`;
      throw err;
    } finally {
      await fh.close().catch(() => {});
      await rm(tmp, { force: true });
    }
  }

  /**
   * Puts a stored file at `dest` without a second copy of the bytes where the filesystem allows:
   * a hardlink, else a copy-on-write clone, else a plain copy.
   */
  async linkInto(digest: string, dest: string, mode: LinkMode = 'hardlink'): Promise<void> {
    const src = this.pathFor(digest);
    await mkdir(path.dirname(dest), { recursive: true });
    if (mode === 'hardlink') {
      try {
        await link(src, dest);
        return;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EEXIST') {
          await unlink(dest);
          return this.linkInto(digest, dest, mode);
        }
        // EXDEV (cache on another filesystem), EPERM/ENOTSUP (no hardlinks): fall through to a copy.
      }
    }
    // Copied under another name, then renamed: a build killed mid-copy must not leave a partial
    // file under a digest's name, even in its staging folder (test/kills.test.ts).
    const partial = `${dest}.partial-${process.pid}`;
    try {
      await copyFile(src, partial, fsConstants.COPYFILE_FICLONE);
      await rename(partial, dest);
    } catch (err) {
      await rm(partial, { force: true });
      throw err;
    }
  }

  private async tempPath(dest: string): Promise<string> {
    const dir = path.join(this.dir, 'tmp');
    await mkdir(dir, { recursive: true });
    await mkdir(path.dirname(dest), { recursive: true });
    return path.join(dir, `${path.basename(dest)}.${process.pid}.${++this.tmpCounter}.${randomBytes(4).toString('hex')}`);
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
