import type { Hash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';


// The write end of a download: hashed in arrival order, written in batches, several at once.

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
export class BatchWriter {
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

