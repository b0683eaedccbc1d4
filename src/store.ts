import { createHash, randomBytes, type Hash } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { mkdir, open as openFile, type FileHandle, readFile, rename, rm, stat, copyFile, link, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { IntegrityError, RegistrishError } from './errors.ts';
import { assertSafeDigest } from './reference.ts';

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
    await copyFile(src, dest, fsConstants.COPYFILE_FICLONE);
  }

  private async tempPath(dest: string): Promise<string> {
    const dir = path.join(this.dir, 'tmp');
    await mkdir(dir, { recursive: true });
    await mkdir(path.dirname(dest), { recursive: true });
    return path.join(dir, `${path.basename(dest)}.${process.pid}.${++this.tmpCounter}.${randomBytes(4).toString('hex')}`);
  }
}

/** `<root>/blobs/<algorithm>/<hex>`: the layout of both our cache and an OCI image layout. */
export function digestPath(root: string, digest: string): string {
  assertSafeDigest(digest, root);
  const [algorithm, hex] = digest.split(':') as [string, string];
  return path.join(root, 'blobs', algorithm, hex);
}

/**
 * Writes all `total` bytes of `chunks` at `at`. A write may land only partly (a full disk, a
 * file-size limit) without failing: the rest is written again, which then fails for real.
 */
async function writeFully(fh: FileHandle, chunks: Buffer[], total: number, at: number): Promise<void> {
  const { bytesWritten } = await fh.writev(chunks, at);
  if (bytesWritten === total) return;
  const rest = Buffer.concat(chunks).subarray(bytesWritten);
  for (let done = 0; done < rest.length; ) {
    const { bytesWritten: n } = await fh.write(rest, done, rest.length - done, at + bytesWritten + done);
    if (n <= 0) throw new Error(`could not write byte ${at + bytesWritten + done} of the file (no space left?)`);
    done += n;
  }
}

/** Bytes per write batch, and batches written at once (each on its own thread-pool thread). */
const BATCH_BYTES = 512 * 1024;
const WRITES_IN_FLIGHT = 3;

/**
 * The end of a download: hashes chunks in arrival order and writes them from `start` in batches,
 * several batches at once. One write at a time was the bound of a large layer: the copy into the
 * page cache costs about as much as receiving and hashing together (docs/performance.md).
 * Once `settled()`, `written` counts exactly the bytes that are both hashed and in the file.
 */
class BatchWriter {
  written: number;
  /** Bytes handed to `add` (hashed or batched). */
  received: number;
  /** A write (or the progress callback) failed: not something a retry of the download can fix. */
  localError?: Error;
  private submitted: number;
  private batch: Buffer[] = [];
  private batchBytes = 0;
  private readonly pending = new Set<Promise<void>>();

  constructor(
    private readonly fh: FileHandle,
    start: number,
    private readonly hash: Hash,
    private readonly onBytes?: (n: number) => void,
  ) {
    this.written = this.received = this.submitted = start;
  }

  /** Takes the chunk; resolves when another may come (fewer than WRITES_IN_FLIGHT batches under way). */
  async add(chunk: Buffer): Promise<void> {
    this.batch.push(chunk);
    this.batchBytes += chunk.length;
    this.received += chunk.length;
    if (this.batchBytes < BATCH_BYTES) return;
    this.flush();
    while (this.pending.size >= WRITES_IN_FLIGHT) await Promise.race(this.pending);
    if (this.localError) throw this.localError;
  }

  /** Hashes and starts writing what is batched so far. */
  flush(): void {
    if (!this.batchBytes || this.localError) return;
    const chunks = this.batch;
    const total = this.batchBytes;
    this.batch = [];
    this.batchBytes = 0;
    // Hashed now, in order, while the write runs on the thread pool: a failed write is fatal,
    // so the hash can never get ahead of the file on a retry.
    for (const c of chunks) this.hash.update(c);
    const at = this.submitted;
    this.submitted += total;
    const p: Promise<void> = writeFully(this.fh, chunks, total, at).then(
      () => {
        this.written += total;
        this.onBytes?.(total);
      },
    ).catch((err: Error) => {
      this.localError ??= err;
    });
    this.pending.add(p);
    void p.then(() => this.pending.delete(p));
  }

  /** Waits for every write under way (never rejects; see `localError`). */
  async settled(): Promise<void> {
    while (this.pending.size) await Promise.all([...this.pending]);
  }
}

export function sha256(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
