import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { filesUnder } from './harness/fs-walk.ts';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildRegistry, type BuildOptions } from '../src/build.ts';
import { makeTempDir, removeDir } from './harness/procs.ts';
import { sha256 } from '../src/model/digest.ts';

// Build-level guarantees on the shipped example (no network): a failed build never damages
// the previous output, and a site's own `_headers` rules survive our rewrites.

const EXAMPLE = path.resolve(import.meta.dirname, '..', 'example', 'hello');
let dir: string;
let logs: string[];

const options = (): BuildOptions => ({
  images: path.join(dir, 'images.json'),
  outputDir: path.join(dir, '_site'),
  cacheDir: path.join(dir, '.cache'),
  hosts: ['netlify'],
  imageConcurrency: 2,
  blobConcurrency: 2,
  linkMode: 'hardlink',
  logger: { info: (m) => logs.push(m), warn: (m) => logs.push(`WARN ${m}`) },
});

const images = (tag: string) => JSON.stringify({ images: [{ source: `oci:${EXAMPLE}:${tag}`, name: 'hello' }] });

async function snapshot(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  // filesUnder, not snapshotTree: a missing root must throw here, not look like an empty tree.
  for (const f of await filesUnder(root)) out[path.relative(root, f)] = (await readFile(f)).toString('base64');
  return out;
}

beforeAll(() => {
  dir = makeTempDir('rsh-build-');
  logs = [];
});
afterAll(() => removeDir(dir));

describe('buildRegistry', () => {
  it("keeps the site's own _headers rules and rewrites only its block", async () => {
    await writeFile(path.join(dir, 'images.json'), images('1.0'));
    await buildRegistry(options());
    const headersFile = path.join(dir, '_site', '_headers');
    const ours = await readFile(headersFile, 'utf8');
    await writeFile(headersFile, `/index.html\n  X-Frame-Options: DENY\n\n${ours}`);
    await buildRegistry(options());
    await buildRegistry(options());
    const text = await readFile(headersFile, 'utf8');
    expect(text.startsWith('/index.html\n  X-Frame-Options: DENY\n')).toBe(true);
    expect(text.match(/# registrish:begin/g)).toHaveLength(1);
    expect(text).toContain('/v2/hello/manifests/1.0\n  Content-Type: application/vnd.oci.image.index.v1+json');
  });

  it('a rebuild with nothing changed keeps v2/ in place, but any file not exactly as built, another link mode or other hosts mean a full rewrite', async () => {
    await writeFile(path.join(dir, 'images.json'), images('1.0'));
    await buildRegistry(options());
    const v2 = path.join(dir, '_site', 'v2');
    const before = await snapshot(v2);
    // A stray file tells whether the folder was kept (inode numbers are reused, so they cannot).
    const marker = path.join(v2, 'kept-marker');
    await writeFile(marker, '');
    await buildRegistry(options());
    expect(await snapshot(v2)).toEqual({ ...before, 'kept-marker': '' });
    await rm(marker);

    const blob = Object.keys(before).find((f) => f.includes('/blobs/sha256:'))!;
    const tagManifest = 'hello/manifests/1.0';
    // Replaced, not edited in place: output files are hard links into the cache.
    const replace = async (rel: string, edit: (b: Buffer) => Buffer) => {
      const file = path.join(v2, rel);
      const bytes = await readFile(file);
      await rm(file);
      await writeFile(file, edit(bytes));
    };
    const sameSize = (b: Buffer) => Buffer.from(b.toString('latin1').replace('1.0', '9.9'), 'latin1');
    for (const damage of [
      () => rm(path.join(v2, blob)),
      () => replace(tagManifest, (b) => b.subarray(0, 10)),
      // Same size, other bytes: a manifest that is no longer the cache's file, a tag list edited.
      () => replace(tagManifest, (b) => Buffer.from(b).fill(0x20, 0, 1)),
      () => replace('hello/tags/list', sameSize),
      () => replace('_catalog', (b) => Buffer.from(b.toString().replace('hello', 'jello'))),
    ]) {
      await writeFile(marker, '');
      await damage();
      await buildRegistry(options());
      expect(await snapshot(v2)).toEqual(before);
    }
    // Copies instead of hard links: not the tree a hard-link build left, so it is rewritten.
    await buildRegistry({ ...options(), linkMode: 'copy' });
    expect((await stat(path.join(v2, tagManifest))).nlink).toBe(1);
    await buildRegistry(options());
    expect((await stat(path.join(v2, tagManifest))).nlink).toBeGreaterThan(1); // the cache's file, also under its digest
    // A host dropped: its files inside v2/ (Apache's .htaccess) go with the rewrite.
    await buildRegistry({ ...options(), hosts: ['netlify', 'apache'] });
    expect(Object.keys(await snapshot(v2)).filter((f) => f.endsWith('.htaccess')).length).toBeGreaterThan(0);
    await buildRegistry(options());
    expect(await snapshot(v2)).toEqual(before);
    // A site that rewrote _headers (a passthrough copy) gets our block back even when v2/ is kept.
    const headersFile = path.join(dir, '_site', '_headers');
    const headers = await readFile(headersFile, 'utf8');
    await writeFile(headersFile, '/x\n  X-Test: 1\n');
    await buildRegistry(options());
    const block = headers.slice(headers.indexOf('# registrish:begin'));
    expect(await readFile(headersFile, 'utf8')).toBe(`/x\n  X-Test: 1\n\n${block}`);
  });

  it('"platforms" on a single-platform image: published when its config matches, an error naming its platform when not', async () => {
    const top = JSON.parse(await readFile(path.join(EXAMPLE, 'index.json'), 'utf8')).manifests[0].digest as string;
    const index = JSON.parse(await readFile(path.join(EXAMPLE, 'blobs/sha256', top.slice(7)), 'utf8'));
    const arm = index.manifests.find((m: any) => m.platform?.architecture === 'arm64').digest as string;
    const entry = (platforms: string[]) =>
      JSON.stringify({ images: [{ source: `oci:${EXAMPLE}@${arm}`, name: 'single', tags: ['arm'], platforms }] });
    const out = path.join(dir, '_single');

    await writeFile(path.join(dir, 'images.json'), entry(['linux/amd64']));
    await expect(buildRegistry({ ...options(), outputDir: out })).rejects.toThrow(
      /^images\[0\] \(oci:.*→ single\): sha256:[0-9a-f]{12}… is a single-platform image for linux\/arm64(\/v8)?, which is not in "platforms" \(linux\/amd64\)$/,
    );

    await writeFile(path.join(dir, 'images.json'), entry(['linux/amd64', 'linux/arm64']));
    logs = [];
    await buildRegistry({ ...options(), outputDir: out });
    expect(logs.filter((l) => l.startsWith('WARN'))).toEqual([]);
    expect(await readFile(path.join(out, 'v2/single/manifests/arm'))).toEqual(await readFile(path.join(EXAMPLE, 'blobs/sha256', arm.slice(7))));
  });

  it('a cached manifest damaged in place (output files are hard links into the cache) is fetched again', async () => {
    await writeFile(path.join(dir, 'images.json'), images('1.0'));
    await buildRegistry(options());
    const file = path.join(dir, '_site', 'v2', 'hello', 'manifests', '1.0');
    const good = await readFile(file);
    await truncate(file, 10);
    await buildRegistry(options());
    expect(await readFile(file)).toEqual(good);
    expect(sha256(await readFile(path.join(dir, '.cache', 'blobs', 'sha256', sha256(good).slice(7))))).toBe(sha256(good));
  });

  it('a failed build leaves the previous output exactly as it was, with no leftovers', async () => {
    const before = await snapshot(path.join(dir, '_site'));
    await writeFile(path.join(dir, 'images.json'), images('no-such-tag'));
    await expect(buildRegistry(options())).rejects.toThrow(/no manifest tagged "no-such-tag"/);
    expect(await snapshot(path.join(dir, '_site'))).toEqual(before);
    expect((await readdir(path.join(dir, '_site'))).filter((e) => e.startsWith('.'))).toEqual([]);
  });

  it('refuses a manifest whose mediaType is not a manifest type (it would become our Content-Type)', async () => {
    const layout = path.join(dir, 'hostile');
    await mkdir(path.join(layout, 'blobs', 'sha256'), { recursive: true });
    const put = async (bytes: Buffer) => {
      const hex = createHash('sha256').update(bytes).digest('hex');
      await writeFile(path.join(layout, 'blobs', 'sha256', hex), bytes);
      return { digest: `sha256:${hex}`, size: bytes.length };
    };
    const config = await put(Buffer.from('{}'));
    const manifest = Buffer.from(
      JSON.stringify({ schemaVersion: 2, mediaType: 'text/html', config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config }, layers: [] }),
    );
    const m = await put(manifest);
    await writeFile(path.join(layout, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
    await writeFile(
      path.join(layout, 'index.json'),
      JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'text/html', ...m, annotations: { 'org.opencontainers.image.ref.name': 'x' } }] }),
    );
    await writeFile(path.join(dir, 'images.json'), JSON.stringify({ images: [{ source: `oci:${layout}:x`, name: 'hostile' }] }));
    await expect(buildRegistry(options())).rejects.toThrow(/media type "text\/html", which is not a manifest type/);
    expect(await readFile(path.join(dir, '_site', '_headers'), 'utf8')).not.toContain('text/html');
  });
});
