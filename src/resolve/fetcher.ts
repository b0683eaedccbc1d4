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
  private readonly queue: BlobNeed[] = [];
  /** Every download started, by digest (it settles when the blob is in the store or has failed). */
  private readonly started = new Map<string, Promise<void>>();
  private running = 0;
  private failed?: { error: unknown };

  constructor(
    private readonly store: ContentStore,
    private readonly options: { concurrency?: number; retryDelayMs?: number; onBytes?: (n: number) => void } = {},
  ) {}

  add(need: BlobNeed): void {
    this.queue.push(need);
    // Largest first: the longest download should not be the last one to start.
    this.queue.sort((a, b) => b.size - a.size);
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
      const i = this.queue.findIndex((n) => n.digest === digest);
      if (i >= 0 && !this.failed) this.start(this.queue.splice(i, 1)[0]!);
      const started = this.started.get(digest);
      if (started) waits.push(started);
    }
    await Promise.all(waits);
    if (this.failed) throw this.failed.error;
  }

  private pump(): void {
    while (!this.failed && this.running < (this.options.concurrency ?? 4) && this.queue.length) this.start(this.queue.shift()!);
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
  }
}
