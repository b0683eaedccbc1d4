import type { ContentStore } from '../store/store.ts';
import { withContext } from './context.ts';
import type { BlobNeed } from './plan.ts';

// Blob downloads, started as soon as the plan names a blob (so the first layers stream while later
// images are still being resolved), each digest once, largest first, a bounded number at a time.

export interface FetchStats {
  blobsFetched: number;
  blobsCached: number;
  bytesFetched: number;
  bytesReused: number;
  /** Digests downloaded by this build (the others came from the cache). */
  fetched: Set<string>;
}

/**
 * Downloads blobs into the store as the plan discovers them (so the first layers stream while
 * later images are still being resolved), each digest once, `concurrency` at a time.
 */
export class BlobFetcher {
  readonly stats: FetchStats = { blobsFetched: 0, blobsCached: 0, bytesFetched: 0, bytesReused: 0, fetched: new Set() };
  private readonly tasks: Promise<void>[] = [];
  /**
   * Not started yet, smallest first, so the next to start is popped off the end. Kept sorted by
   * binary insertion: re-sorting on every add made 50,000 blobs cost ~10 s of CPU (docs/performance.md).
   * An entry started early by now() stays here and is skipped when popped.
   */
  private readonly queue: BlobNeed[] = [];
  /** The needs still in `queue`, by digest, in arrival order. */
  private readonly queued = new Map<string, BlobNeed[]>();
  /** Every download started, by digest (it settles when the blob is in the store or has failed). */
  private readonly started = new Map<string, Promise<void>>();
  /** Size of every blob asked for, by digest. */
  private readonly sizes = new Map<string, number>();
  private running = 0;
  private failed?: { error: unknown };

  constructor(
    private readonly store: ContentStore,
    private readonly options: {
      concurrency?: number;
      retryDelayMs?: number;
      onBytes?: (n: number) => void;
      /** A blob is in the store: downloaded now, or found there. */
      onDone?: (need: BlobNeed, downloaded: boolean) => void;
    } = {},
  ) {}

  add(need: BlobNeed): void {
    this.sizes.set(need.digest, need.size);
    // Largest first (the longest download should not be the last one to start); among blobs of
    // one size, first come first: inserted before the equal ones, since the end starts first.
    let lo = 0;
    let hi = this.queue.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.queue[mid]!.size < need.size) lo = mid + 1;
      else hi = mid;
    }
    this.queue.splice(lo, 0, need);
    const same = this.queued.get(need.digest);
    if (same) same.push(need);
    else this.queued.set(need.digest, [need]);
    this.pump();
  }

  /** Waits for every download (also after a failure, so nothing keeps writing) and reports. */
  async finish(): Promise<FetchStats> {
    while (this.tasks.length) await Promise.allSettled(this.tasks.splice(0));
    if (this.failed) throw this.failed.error;
    return this.stats;
  }

  /**
   * These blobs first, whatever their size (the site's pages need image configs before the layers
   * are in): started now if still queued. Resolves when they are in the store; rejects if one failed.
   */
  async now(digests: Iterable<string>): Promise<void> {
    const waits: Promise<void>[] = [];
    for (const digest of new Set(digests)) {
      const need = this.queued.get(digest)?.[0];
      if (need && !this.failed && this.dequeue(need)) this.start(need);
      const started = this.started.get(digest);
      if (started) waits.push(started);
    }
    await Promise.all(waits);
    if (this.failed) throw this.failed.error;
  }

  /** Bytes of the blobs asked for so far that are not in the store (what a full disk still lacked). */
  async missingBytes(): Promise<number> {
    let missing = 0;
    for (const [digest, size] of this.sizes) if (!(await this.store.has(digest, size))) missing += size;
    return missing;
  }

  private pump(): void {
    while (!this.failed && this.running < (this.options.concurrency ?? 4)) {
      const need = this.queue.pop();
      if (!need) return;
      if (this.dequeue(need)) this.start(need);
    }
  }

  /** Takes `need` off the waiting list; false when it was started already (by now()). */
  private dequeue(need: BlobNeed): boolean {
    const same = this.queued.get(need.digest);
    const i = same ? same.indexOf(need) : -1;
    if (i < 0) return false;
    same!.splice(i, 1);
    if (same!.length === 0) this.queued.delete(need.digest);
    return true;
  }

  private start(need: BlobNeed): void {
    this.running++;
    const download = this.fetch(need);
    this.started.set(need.digest, download);
    const task = download
      .catch((error: unknown) => {
        this.failed ??= { error };
      })
      .finally(() => {
        this.running--;
        this.pump();
      });
    this.tasks.push(task);
  }

  private async fetch(need: BlobNeed): Promise<void> {
    const { stats, options } = this;
    const downloaded = await withContext(
      need.context,
      this.store.ensureBlob(need.digest, need.size, (offset) => need.source.openBlob(need.digest, offset), {
        context: need.context,
        retryDelayMs: options.retryDelayMs,
        onBytes: (n) => {
          stats.bytesFetched += n;
          options.onBytes?.(n);
        },
      }),
    );
    if (downloaded) {
      stats.blobsFetched++;
      stats.fetched.add(need.digest);
    } else {
      stats.blobsCached++;
      stats.bytesReused += need.size;
    }
    options.onDone?.(need, downloaded);
  }
}
