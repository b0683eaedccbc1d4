import { describe, expect, it } from 'vitest';
import { BlobFetcher } from '../src/resolve/fetcher.ts';
import type { BlobNeed } from '../src/resolve/plan.ts';
import type { ContentStore } from '../src/store/store.ts';

// The order downloads start in (largest first, first come first among equals, now() ahead of the
// rest), observed through a store that only records what it is asked for: ordering is not
// something a real registry can show on demand.

function recordingStore() {
  const started: string[] = [];
  const gates = new Map<string, () => void>();
  const store = {
    ensureBlob(digest: string): Promise<boolean> {
      started.push(digest);
      return new Promise<boolean>((resolve) => gates.set(digest, () => resolve(true)));
    },
  } as unknown as ContentStore;
  /** Lets the download of `digest` finish. */
  const finish = async (digest: string): Promise<void> => {
    gates.get(digest)!();
    // The fetcher starts the next download when the finished one has settled.
    await new Promise((r) => setImmediate(r));
  };
  return { store, started, finish };
}

const need = (digest: string, size: number): BlobNeed => ({ digest, size, source: {} as BlobNeed['source'], context: `img-${digest}` });

describe('BlobFetcher order', () => {
  it('starts the largest first, and blobs of one size in the order they came', async () => {
    const { store, started, finish } = recordingStore();
    const f = new BlobFetcher(store, { concurrency: 1 });
    f.add(need('first', 1)); // starts at once: nothing else is waiting
    for (const [d, s] of [['m1', 5], ['l1', 10], ['m2', 5], ['s1', 1], ['l2', 10], ['m3', 5]] as const) f.add(need(d, s));
    for (const d of ['first', 'l1', 'l2', 'm1', 'm2', 'm3', 's1']) await finish(d);
    expect(started).toEqual(['first', 'l1', 'l2', 'm1', 'm2', 'm3', 's1']);
    await expect(f.finish()).resolves.toMatchObject({ blobsFetched: 7 });
  });

  it('now() starts a queued blob at once, and it is not started again from the queue', async () => {
    const { store, started, finish } = recordingStore();
    const f = new BlobFetcher(store, { concurrency: 1 });
    f.add(need('big', 100));
    f.add(need('layer', 50));
    f.add(need('config', 1));
    const configIn = f.now(['config']);
    expect(started).toEqual(['big', 'config']);
    await finish('config');
    await configIn;
    await finish('big');
    await finish('layer');
    expect(started).toEqual(['big', 'config', 'layer']);
    await expect(f.finish()).resolves.toMatchObject({ blobsFetched: 3 });
  });

  it('keeps a second need for the same digest (another image asking) after the first', async () => {
    const { store, started, finish } = recordingStore();
    const f = new BlobFetcher(store, { concurrency: 1 });
    f.add(need('busy', 9));
    f.add(need('shared', 3));
    f.add({ ...need('shared', 3), context: 'other image' });
    void f.now(['shared']);
    expect(started).toEqual(['busy', 'shared']);
    await finish('busy');
    await finish('shared');
    // The other image's need was still queued and runs (a real store then finds the blob present).
    expect(started).toEqual(['busy', 'shared', 'shared']);
    await finish('shared');
    await expect(f.finish()).resolves.toMatchObject({ blobsFetched: 3 });
  });
});
