import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { formatError, RegistrishError } from '../src/util/errors.ts';
import { explainDiskError } from '../src/util/disk-full.ts';
import { testBuild } from './harness/build.ts';
import { diffSnapshots, integrityProblems, snapshotTree } from './harness/fault-proxy.ts';
import { buildManifest, makeLayer } from './harness/images.ts';
import { makeTempDir, removeDir } from './harness/procs.ts';

// A build that cannot write, on real filesystems: the cache or the output on a small tmpfs that
// fills up, one remounted read-only, and an immutable output folder (`chattr +i`, which stops
// root too). Each says which folder, how much the build still needed there and what to do, and
// leaves the previous output byte-identical with nothing half-written in the cache. Mounting needs
// root, as `npm run test:all` runs (CI); removeDir() unmounts what is left under the temp folder.
// EDQUOT and EACCES (root passes permission bits, and this kernel's tmpfs has no quotas) are
// checked on the message alone, at the end.

const tmp = makeTempDir('rsh-disk-');
afterAll(() => removeDir(tmp));

const KiB = 1024;

function mountTmpfs(dir: string, bytes: number): void {
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${Math.ceil(bytes / KiB)}k,mode=0755`, 'tmpfs', dir]);
}

/** An OCI layout folder holding one image (one layer of `layerBytes` random bytes) tagged `tag`; its `oci:` source. */
async function layout(name: string, tag: string, layerBytes: number): Promise<string> {
  const dir = path.join(tmp, 'layouts', name);
  const image = buildManifest({
    format: 'oci',
    platform: { os: 'linux', architecture: 'amd64' },
    layers: [makeLayer([{ name: 'data.bin', content: randomBytes(layerBytes) }])],
  });
  await mkdir(path.join(dir, 'blobs', 'sha256'), { recursive: true });
  for (const [digest, bytes] of [...image.blobs, [image.digest, image.bytes] as const]) {
    await writeFile(path.join(dir, 'blobs', 'sha256', digest.slice(7)), bytes);
  }
  const index = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [{ mediaType: image.mediaType, digest: image.digest, size: image.size, annotations: { 'org.opencontainers.image.ref.name': tag } }],
  };
  await writeFile(path.join(dir, 'index.json'), JSON.stringify(index));
  await writeFile(path.join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  return `oci:${dir}:${tag}`;
}

let small: string;
let big: string;
const layouts = async () => {
  small ??= await layout('small', '1.0', 4 * KiB);
  big ??= await layout('big', '2.0', 3 * 1024 * KiB);
};

/** A project folder: images.json with the small image, and the big one too when `withBig`. */
async function project(name: string, withBig: boolean): Promise<{ images: string; dir: string }> {
  const dir = path.join(tmp, name);
  await mkdir(dir, { recursive: true });
  const images = path.join(dir, 'images.json');
  const entries = [{ source: small, name: 'small' }, ...(withBig ? [{ source: big, name: 'big' }] : [])];
  await writeFile(images, JSON.stringify({ images: entries }));
  return { images, dir };
}

/**
 * Builds the small image (it fits), breaks the disk with `breakIt`, adds the big image and builds
 * again; returns the second build's error, after checking that the previous output is
 * byte-identical and nothing half-written is left in the cache or the output.
 */
async function failingRebuild(
  name: string,
  where: { cacheOn?: number; outOn?: number },
  breakIt: (dirs: { cache: string; out: string }) => void = () => {},
  linkMode: 'hardlink' | 'copy' = 'hardlink',
): Promise<RegistrishError> {
  await layouts();
  const first = await project(name, false);
  const { dir } = first;
  const cache = path.join(dir, '.cache');
  const out = path.join(dir, '_site');
  await mkdir(cache);
  await mkdir(out);
  if (where.cacheOn) mountTmpfs(cache, where.cacheOn);
  if (where.outOn) mountTmpfs(out, where.outOn);
  await testBuild(first.images, out, cache, { linkMode });
  const before = await snapshotTree(out);
  breakIt({ cache, out });
  const second = await project(name, true);
  let error: unknown;
  try {
    await testBuild(second.images, out, cache, { linkMode });
  } catch (err) {
    error = err;
  }
  expect(error, 'the second build must fail').toBeInstanceOf(RegistrishError);
  if (process.env.SHOW_DISK_MESSAGES) console.log(formatError(error));
  expect(diffSnapshots(before, await snapshotTree(out))).toEqual([]);
  expect(await integrityProblems(out, cache)).toEqual([]);
  expect(await readdir(path.join(cache, 'tmp')).catch(() => [])).toEqual([]);
  return error as RegistrishError;
}

const sizeRe = '[0-9.]+ (?:B|KiB|MiB|GiB)';

describe('a build that cannot write says so plainly', () => {
  it('the cache on a full filesystem: names the cache folder, the bytes still needed and the free space', async () => {
    const err = await failingRebuild('cache-full', { cacheOn: 1024 * KiB });
    const cache = path.join(tmp, 'cache-full', '.cache');
    expect(err.message).toMatch(
      new RegExp(
        `^images\\[1\\] \\(oci:.*:2\\.0 → big\\): blob sha256:[0-9a-f]{64}: cannot write to the cache folder ${cache}: ` +
          `no space left on device \\(ENOSPC\\); the build still needed at least 3\\.[0-9] MiB more there; ${sizeRe} is free$`,
        'u',
      ),
    );
    expect(err.hint).toMatch(/^Free at least 3\.[0-9] MiB on that disk, or point the plugin's cacheDir option to a folder on a larger one, then build again\. The registry was not published/u);
  });

  it('the output on a full filesystem: names the output folder and what the new v2/ needed', async () => {
    // Hard links (the default) cannot reach another filesystem: the blobs are copied, and counted.
    const err = await failingRebuild('out-full', { outOn: 1024 * KiB });
    const out = path.join(tmp, 'out-full', '_site');
    expect(err.message).toMatch(
      new RegExp(`^cannot write to the output folder ${out}: no space left on device \\(ENOSPC\\); the build still needed at least 3\\.[0-9] MiB more there; ${sizeRe} is free$`, 'u'),
    );
    expect(err.hint).toMatch(/Eleventy's output folder \(--output\).*The previous v2\/ is still in place/su);
  });

  it('the cache remounted read-only: EROFS, with the folder and what to do', async () => {
    const err = await failingRebuild('cache-ro', { cacheOn: 8 * 1024 * KiB }, ({ cache }) => {
      execFileSync('mount', ['-o', 'remount,ro', cache]);
    });
    expect(err.message).toContain(`cannot write to the cache folder ${path.join(tmp, 'cache-ro', '.cache')}: read-only filesystem (EROFS)`);
    // The manifest is written first, before the build knows its blobs: no amount is claimed.
    expect(err.message).toMatch(/\(EROFS\)$/u);
    expect(err.hint).toMatch(/mounted read-only .*point the plugin's cacheDir option to a writable folder/u);
  });

  it('an immutable output folder (chattr +i): EPERM, with the folder and what to check', async () => {
    let out = '';
    try {
      const err = await failingRebuild('out-immutable', { outOn: 8 * 1024 * KiB }, (dirs) => {
        out = dirs.out;
        execFileSync('chattr', ['+i', out]);
      });
      expect(err.message).toMatch(new RegExp(`^cannot write to the output folder ${out}: operation not permitted \\(EPERM\\); the build still needed at least ${sizeRe} more there$`, 'u'));
      expect(err.hint).toContain(`ls -ld ${out}`);
    } finally {
      if (out) execFileSync('chattr', ['-i', out]);
    }
  });

  it('EDQUOT and EACCES (not producible here as root) read the same way', async () => {
    const errno = (code: string, text: string) => Object.assign(new Error(`${code}: ${text}, write`), { code, errno: -1, syscall: 'write' });
    const context = 'images[0] (oci:x:1 → x): blob sha256:' + 'a'.repeat(64);
    const quota = errno('EDQUOT', 'disk quota exceeded');
    quota.message = `${context}: ${quota.message}`;
    const q = (await explainDiskError(quota, { role: 'cache', dir: tmp }, async () => 5_000_000)) as RegistrishError;
    expect(q.message).toMatch(new RegExp(`^images\\[0\\] .*: cannot write to the cache folder ${tmp}: disk quota exceeded \\(EDQUOT\\); the build still needed at least 4\\.8 MiB more there$`, 'u'));
    expect(q.hint).toMatch(/larger quota/u);
    const denied = (await explainDiskError(errno('EACCES', 'permission denied'), { role: 'output', dir: tmp }, async () => undefined)) as RegistrishError;
    expect(denied.message).toBe(`cannot write to the output folder ${tmp}: permission denied (EACCES)`);
    expect(denied.hint).toContain('writable by the user running the build');
    const other = new Error('ECONNRESET');
    expect(await explainDiskError(other, { role: 'cache', dir: tmp }, async () => 1)).toBe(other);
  });
});
