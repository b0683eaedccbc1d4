import fs from 'node:fs';
import { readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { formatError, RegistrishError } from '../src/util/errors.ts';
import { docker25Members, rawTar, savedImage, zeroTarGz } from './harness/archives.ts';
import { testBuild } from './harness/build.ts';
import { diffSnapshots, integrityProblems, snapshotTree } from './harness/fault-proxy.ts';
import { makeTempDir, removeDir } from './harness/procs.ts';

// Gzip archive sources against real decompression bombs (a gzip stream of gigabytes of zeros, and
// one nested inside a layer of an archive of a few kilobytes): each fails naming the archive and
// the member, after inflating a bounded amount; the previous output stays as it was. And an
// unchanged archive is not read again: its scan is kept in the cache, keyed by the file's identity
// and change times. (Time and memory of the bombs: bench/archive-bomb.ts, docs/reliability.md.)

const tmp = makeTempDir('rsh-archive-limits-');
afterAll(() => removeDir(tmp));

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

async function site(name: string, source: string): Promise<{ images: string; out: string; cache: string }> {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir, { recursive: true });
  const images = path.join(dir, 'images.json');
  await writeFile(images, JSON.stringify({ images: [{ source, name: 'app', tags: ['1'] }] }));
  return { images, out: path.join(dir, '_site'), cache: path.join(dir, '.cache') };
}

/** Builds a good archive first, then the bomb over it: the error, and the previous output checked unchanged. */
async function bombBuild(name: string, kind: 'docker-archive' | 'oci-archive', bomb: Buffer): Promise<RegistrishError> {
  const file = path.join(tmp, `${name}.tar.gz`);
  const good = zlib.gzipSync(rawTar(docker25Members(savedImage(name), `${name}:1`, '1')));
  fs.writeFileSync(file, good);
  const s = await site(name, `${kind}:${file}${kind === 'oci-archive' ? ':1' : ''}`);
  await testBuild(s.images, s.out, s.cache);
  const before = await snapshotTree(s.out);
  fs.writeFileSync(file, bomb);
  const error = await testBuild(s.images, s.out, s.cache).then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(error).toBeInstanceOf(RegistrishError);
  if (process.env.SHOW_ARCHIVE_MESSAGES) console.log(formatError(error));
  expect(diffSnapshots(before, await snapshotTree(s.out))).toEqual([]);
  expect(await integrityProblems(s.out, s.cache)).toEqual([]);
  return error as RegistrishError;
}

describe('gzip archive sources: decompression bombs', () => {
  it('an archive whose gzip stream inflates to 2 GiB stops at its bound (256 MiB or 100× its size on disk), naming the archive', async () => {
    const bomb = zeroTarGz(`blobs/sha256/${'a'.repeat(64)}`, 2 * GiB);
    expect(bomb.length).toBeLessThan(4 * MiB);
    const err = await bombBuild('outer', 'oci-archive', bomb);
    expect(err.message).toMatch(
      /^images\[0\] \(oci-archive:.*outer\.tar\.gz:1 → app\): oci-archive:.*outer\.tar\.gz: the archive inflates to more than [0-9.]+ MiB \([0-9.]+ MiB of gzip on disk, over [0-9]+× its size\); refused as a decompression bomb$/u,
    );
    expect(err.hint).toMatch(/gunzip it.*REGISTRISH_MAX_INFLATE_RATIO/su);
  });

  it('a layer of a few-kilobyte docker archive that inflates to 2 GiB stops at its bound, naming the archive and the member', async () => {
    const layer = zeroTarGz('big.bin', 2 * GiB);
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [`sha256:${'b'.repeat(64)}`] } }));
    const bomb = zlib.gzipSync(
      rawTar([
        { name: 'config.json', content: config },
        { name: 'layer.tar', content: layer },
        { name: 'manifest.json', content: JSON.stringify([{ Config: 'config.json', RepoTags: ['nested:1'], Layers: ['layer.tar'] }]) },
      ]),
      { level: 9 },
    );
    expect(bomb.length).toBeLessThan(64 * 1024); // kilobytes: the layer's gzip is itself very compressible
    const err = await bombBuild('nested', 'docker-archive', bomb);
    expect(err.message).toMatch(
      /docker-archive:.*nested\.tar\.gz: member "layer\.tar" \([0-9.]+ MiB of gzip\) inflates to more than [0-9.]+ MiB; refused as a decompression bomb$/u,
    );
    expect(err.hint).toMatch(/REGISTRISH_MAX_INFLATE_RATIO/u);
  });

  it('REGISTRISH_MAX_INFLATE_RATIO must be a number', async () => {
    const file = path.join(tmp, 'ratio.tar');
    fs.writeFileSync(file, rawTar(docker25Members(savedImage('ratio'), 'ratio:1', '1')));
    const s = await site('ratio', `docker-archive:${file}`);
    await expect(testBuild(s.images, s.out, s.cache, { env: { REGISTRISH_MAX_INFLATE_RATIO: 'lots' } })).rejects.toThrow(
      /REGISTRISH_MAX_INFLATE_RATIO must be a number ≥ 1, not "lots"/u,
    );
  });
});

describe('an unchanged archive is not read again', () => {
  const scanned = (info: string[]) => info.filter((l) => / read and hashed \d+ members /u.test(l));

  it('keeps its scan in the cache, keyed by the file; reads it again when it is touched, replaced or the index is damaged', async () => {
    for (const compressed of [false, true]) {
      const file = path.join(tmp, `same${compressed ? '.tar.gz' : '.tar'}`);
      const tar = rawTar(docker25Members(savedImage('same'), 'same:1', '1'));
      fs.writeFileSync(file, compressed ? zlib.gzipSync(tar) : tar);
      const s = await site(`same-${compressed}`, `docker-archive:${file}`);
      const first = await testBuild(s.images, s.out, s.cache);
      expect(scanned(first.info)).toHaveLength(1);
      const built = await snapshotTree(s.out);

      // Unchanged: the index answers; the rebuild publishes the same.
      const second = await testBuild(s.images, s.out, s.cache);
      expect(scanned(second.info)).toEqual([]);
      expect(diffSnapshots(built, await snapshotTree(s.out))).toEqual([]);

      // Touched (same bytes, new mtime and ctime): read again.
      const later = new Date(Date.now() + 60_000);
      fs.utimesSync(file, later, later);
      expect(scanned((await testBuild(s.images, s.out, s.cache)).info)).toHaveLength(1);

      // Replaced by another image: read again, and the new image published.
      const other = rawTar(docker25Members(savedImage('other'), 'same:1', '1'));
      fs.writeFileSync(file, compressed ? zlib.gzipSync(other) : other);
      const replaced = await testBuild(s.images, s.out, s.cache);
      expect(scanned(replaced.info)).toHaveLength(1);
      expect(diffSnapshots(built, await snapshotTree(s.out))).not.toEqual([]);

      // A damaged index is a new scan, not an error.
      const indexDir = path.join(s.cache, 'archives');
      const [index] = await readdir(indexDir);
      fs.writeFileSync(path.join(indexDir, index!), '{"format":1,"key":');
      expect(scanned((await testBuild(s.images, s.out, s.cache)).info)).toHaveLength(1);
      expect(scanned((await testBuild(s.images, s.out, s.cache)).info)).toEqual([]);
      expect(await integrityProblems(s.out, s.cache)).toEqual([]);
    }
  });
});
