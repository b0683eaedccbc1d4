import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sha256 } from '../src/model/digest.ts';
import { ContentStore, type BlobOpener } from '../src/store/store.ts';

// The store is the last line of defence: whatever a source sends, only bytes that hash to
// their name are ever kept. These cases feed it bodies a real server cannot be made to send on demand.

let dir: string;
let store: ContentStore;
const data = Buffer.from('x'.repeat(100_000) + 'the end');
const digest = sha256(data);

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'rsh-store-'));
  store = new ContentStore(path.join(dir, 'cache'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A body that fails with ECONNRESET after `cut` bytes. */
function brokenBody(bytes: Buffer, cut: number): Readable {
  let sent = false;
  return new Readable({
    read() {
      if (!sent) {
        sent = true;
        this.push(bytes.subarray(0, cut));
      } else {
        this.destroy(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }));
      }
    },
  });
}

async function storedFiles(): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else out.push(p);
    }
  };
  await walk(store.dir);
  return out;
}

/** Every file in the store hashes to its name, and nothing is left in tmp/. */
async function assertStoreSound(): Promise<void> {
  for (const f of await storedFiles()) {
    expect(path.relative(store.dir, f).startsWith('tmp'), `temp file left: ${f}`).toBe(false);
    const hex = createHash('sha256').update(await readFile(f)).digest('hex');
    expect(path.basename(f)).toBe(hex);
  }
}

describe('ContentStore', () => {
  it('tells a first build (nothing stored, or not even the folder) from a later one', async () => {
    const fresh = new ContentStore(path.join(store.dir, 'not-yet'));
    expect(await fresh.isEmpty()).toBe(true);
    await fresh.putBytes(digest, data, 'test');
    expect(await fresh.isEmpty()).toBe(false);
    // Temporary files of an interrupted build are not content.
    const interrupted = new ContentStore(path.join(store.dir, 'interrupted'));
    await mkdir(path.join(interrupted.dir, 'tmp'), { recursive: true });
    await writeFile(path.join(interrupted.dir, 'tmp', 'x.1.1.ab'), 'partial');
    expect(await interrupted.isEmpty()).toBe(true);
  });

  it('stores a blob under its digest and skips it next time', async () => {
    let opens = 0;
    const open: BlobOpener = async () => {
      opens++;
      return { status: 200, body: Readable.from([data]) };
    };
    expect(await store.ensureBlob(digest, data.length, open)).toBe(true);
    expect(await new ContentStore(store.dir).ensureBlob(digest, data.length, open)).toBe(false);
    expect(opens).toBe(1);
    expect(await readFile(store.pathFor(digest))).toEqual(data);
    await assertStoreSound();
  });

  it('downloads a blob once when many images ask at the same time', async () => {
    let opens = 0;
    const open: BlobOpener = async () => {
      opens++;
      await new Promise((r) => setTimeout(r, 20));
      return { status: 200, body: Readable.from([data]) };
    };
    const results = await Promise.all([1, 2, 3, 4].map(() => store.ensureBlob(digest, data.length, open)));
    expect(opens).toBe(1);
    expect(results.filter(Boolean)).toHaveLength(1);
  });

  it('resumes with a Range request after a connection reset', async () => {
    const offsets: number[] = [];
    const open: BlobOpener = async (offset) => {
      offsets.push(offset);
      if (offsets.length === 1) return { status: 200, body: brokenBody(data, 40_000) };
      return { status: 206, body: Readable.from([data.subarray(offset)]) };
    };
    await store.ensureBlob(digest, data.length, open, { retryDelayMs: 1 });
    expect(offsets).toEqual([0, 40_000]);
    expect(await readFile(store.pathFor(digest))).toEqual(data);
    await assertStoreSound();
  });

  it('keeps every byte of a multi-batch body across a reset, with several writes under way at once', async () => {
    // 9 MiB in 64 KiB chunks: several 1 MiB batches are written at the same time, and may finish
    // in any order; the resume must still ask exactly for what is missing and the hash must hold.
    const big = Buffer.alloc(9 * 1024 * 1024 + 123);
    for (let i = 0; i < big.length; i += 4096) big.writeUInt32BE((i * 2654435761) >>> 0, i);
    const bigDigest = sha256(big);
    const chunked = (from: number, to: number) =>
      Readable.from((function* () {
        for (let i = from; i < to; i += 65_536) yield big.subarray(i, Math.min(i + 65_536, to));
      })());
    const cut = 5 * 1024 * 1024 + 70_000;
    const offsets: number[] = [];
    const open: BlobOpener = async (offset) => {
      offsets.push(offset);
      if (offsets.length === 1) {
        const body = chunked(0, cut);
        return { status: 200, body: Readable.from((async function* () {
          yield* body;
          throw Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
        })()) };
      }
      return { status: 206, body: chunked(offset, big.length) };
    };
    let progress = 0;
    await store.ensureBlob(bigDigest, big.length, open, { retryDelayMs: 1, onBytes: (n) => (progress += n) });
    expect(offsets).toEqual([0, cut]);
    expect(progress).toBe(big.length);
    // Not toEqual: a deep comparison of 9 MiB byte by byte takes most of a minute.
    expect(sha256(await readFile(store.pathFor(bigDigest)))).toBe(bigDigest);
    await assertStoreSound();
  });

  it('a write the disk takes only partly (a file-size limit here) fails the download and stores nothing', async () => {
    // A real short write needs a real limit: a child process with `ulimit -f` (SIGXFSZ ignored, so
    // the kernel answers with a short write, then EFBIG).
    const script = path.join(dir, 'short.mts');
    const cache = path.join(dir, 'short-cache');
    await writeFile(
      script,
      `import { Readable } from 'node:stream';
import { ContentStore } from ${JSON.stringify(path.resolve(import.meta.dirname, '../src/store/store.ts'))};
import { sha256 } from ${JSON.stringify(path.resolve(import.meta.dirname, '../src/model/digest.ts'))};
const blob = Buffer.alloc(1280 * 1024);
for (let i = 0; i < blob.length; i++) blob[i] = (i * 31) & 0xff;
const store = new ContentStore(${JSON.stringify(cache)});
const open = async (offset: number) => ({ status: offset ? 206 : 200, body: Readable.from((function* () {
  for (let i = offset; i < blob.length; i += 65536) yield blob.subarray(i, Math.min(i + 65536, blob.length));
})()) });
await store.ensureBlob(sha256(blob), blob.length, open);
console.log('stored');
`,
    );
    const r = spawnSync('bash', ['-c', `trap '' XFSZ; ulimit -f 1100; exec node --import tsx ${JSON.stringify(script)}`], {
      cwd: path.resolve(import.meta.dirname, '..'),
      encoding: 'utf8',
    });
    expect(r.stdout).not.toContain('stored');
    expect(r.stderr).toContain('EFBIG');
    const left = await readdir(path.join(cache, 'blobs', 'sha256')).catch(() => []);
    expect(left).toEqual([]);
    expect(await readdir(path.join(cache, 'tmp'))).toEqual([]);
  });

  it('starts over when the server ignores Range and answers 200', async () => {
    const offsets: number[] = [];
    const open: BlobOpener = async (offset) => {
      offsets.push(offset);
      if (offsets.length === 1) return { status: 200, body: brokenBody(data, 30_000) };
      return { status: 200, body: Readable.from([data]) };
    };
    await store.ensureBlob(digest, data.length, open, { retryDelayMs: 1 });
    expect(offsets).toEqual([0, 30_000]);
    expect(await readFile(store.pathFor(digest))).toEqual(data);
  });

  it('retries a body shorter than the descriptor, then gives up with a clear message', async () => {
    const open: BlobOpener = async () => ({ status: 200, body: Readable.from([data.subarray(0, 10)]) });
    await expect(store.ensureBlob(digest, data.length, open, { retries: 2, retryDelayMs: 1, context: 'images[0] (x)' })).rejects.toThrow(
      /images\[0\] \(x\): blob sha256:[0-9a-f]{64}: download failed after 3 attempts: .*ended the body after 10 of 100007 bytes/,
    );
    expect(await store.has(digest)).toBe(false);
    await assertStoreSound();
  });

  it('refuses corrupted bytes and keeps nothing', async () => {
    const bad = Buffer.from(data);
    bad[5] = 0x79;
    const open: BlobOpener = async () => ({ status: 200, body: Readable.from([bad]) });
    await expect(store.ensureBlob(digest, data.length, open)).rejects.toThrow(/hash to sha256:[0-9a-f]{64}; refusing/);
    expect(await storedFiles()).toEqual([]);
  });

  it('refuses a body longer than the descriptor size', async () => {
    const open: BlobOpener = async () => ({ status: 200, body: Readable.from([data, Buffer.from('extra')]) });
    await expect(store.ensureBlob(digest, data.length, open)).rejects.toThrow(/more than the 100007 bytes/);
    expect(await storedFiles()).toEqual([]);
  });

  it('refuses a Content-Encoding other than identity', async () => {
    const open: BlobOpener = async () => ({ status: 200, body: Readable.from([data]), contentEncoding: 'gzip' });
    await expect(store.ensureBlob(digest, data.length, open)).rejects.toThrow(/Content-Encoding "gzip"/);
  });

  it('checks manifests against their digest before keeping them', async () => {
    const m = Buffer.from('{"schemaVersion":2}');
    await expect(store.putBytes(sha256(Buffer.from('other')), m)).rejects.toThrow(/does not match its digest/);
    await store.putBytes(sha256(m), m);
    expect(await store.readSmall(sha256(m), 1024)).toEqual(m);
    await expect(store.readSmall(sha256(m), 10)).rejects.toThrow(/too large for a manifest/);
  });

  it('never builds a path from a malformed digest', () => {
    for (const bad of ['sha256:../../etc/passwd', 'sha256:ABC', '', '/etc/passwd', `sha256:${'a'.repeat(63)}`]) {
      expect(() => store.pathFor(bad), bad).toThrow();
    }
  });

  it('links into the output without a second copy, and copies when asked', async () => {
    await store.putBytes(digest, data);
    const linked = path.join(dir, 'out', 'a', 'blob');
    await store.linkInto(digest, linked);
    expect((await stat(linked)).ino).toBe((await stat(store.pathFor(digest))).ino);
    await store.linkInto(digest, linked); // again: replaces, no EEXIST
    const copied = path.join(dir, 'out', 'b', 'blob');
    await store.linkInto(digest, copied, 'copy');
    expect((await stat(copied)).ino).not.toBe((await stat(store.pathFor(digest))).ino);
    expect(await readFile(copied)).toEqual(data);
  });
});
