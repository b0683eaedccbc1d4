import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { makeTempDir, removeDir } from './harness/procs.ts';
import { readPathsFile } from '../src/publish/paths-file.ts';

// readPathsFile trusts nothing: `deploy` uploads what it names.

const D = `sha256:${'a'.repeat(64)}`;
const D2 = `sha256:${'b'.repeat(64)}`;
const OCI = 'application/vnd.oci.image.manifest.v1+json';
const good = [
  { urlPath: '/v2/', file: 'v2/index.html', kind: 'base', contentType: 'application/json', size: 3, immutable: false },
  { urlPath: '/v2/_catalog', file: 'v2/_catalog', kind: 'catalog', contentType: 'application/json', size: 20, immutable: false },
  { urlPath: '/v2/a/b/tags/list', file: 'v2/a/b/tags/list', kind: 'tags', contentType: 'application/json', size: 20, immutable: false },
  { urlPath: '/v2/a/b/manifests/1.0', file: 'v2/a/b/manifests/1.0', kind: 'manifest', contentType: OCI, digest: D, size: 5, immutable: false },
  { urlPath: `/v2/a/b/manifests/${D}`, file: `v2/a/b/manifests/${D}`, kind: 'manifest', contentType: OCI, digest: D, size: 5, immutable: true },
  { urlPath: `/v2/a/b/blobs/${D2}`, file: `v2/a/b/blobs/${D2}`, kind: 'blob', contentType: 'application/octet-stream', digest: D2, size: 0, immutable: true },
  { urlPath: '/charts/index.yaml', file: 'charts/index.yaml', kind: 'helm-index', contentType: 'application/yaml', size: 40, immutable: false },
];

const dir = makeTempDir('rsh-paths-');
afterAll(() => removeDir(dir));
let n = 0;

async function read(paths: unknown[]): Promise<unknown> {
  const out = path.join(dir, String(n++));
  mkdirSync(path.join(out, 'v2'), { recursive: true });
  writeFileSync(path.join(out, 'v2', '.registrish-paths.json'), JSON.stringify({ version: 1, paths }));
  return readPathsFile(out);
}

describe('readPathsFile', () => {
  it('accepts what a build writes', async () => {
    expect(await read(good)).toEqual(good);
  });

  const bad: [string, Record<string, unknown>][] = [
    ['a parent-directory file', { ...good[0], file: '../../x', urlPath: '/../../x' }],
    ['a file outside v2', { ...good[1], file: 'etc/passwd', urlPath: '/etc/passwd' }],
    ['a Helm index above the site', { ...good[6], file: '../index.yaml', urlPath: '/../index.yaml' }],
    ['a Helm index that is another file', { ...good[6], file: 'charts/passwd', urlPath: '/charts/passwd' }],
    ['a Helm index of another type', { ...good[6], contentType: 'text/html' }],
    ['a dot segment in the name', { ...good[2], file: 'v2/a/../b/tags/list', urlPath: '/v2/a/../b/tags/list' }],
    ['an invalid repository name', { ...good[2], file: 'v2/A/tags/list', urlPath: '/v2/A/tags/list' }],
    ['an invalid tag', { ...good[3], file: 'v2/a/b/manifests/.x', urlPath: '/v2/a/b/manifests/.x' }],
    ['an invalid blob digest', { ...good[5], file: 'v2/a/b/blobs/sha256:zz', urlPath: '/v2/a/b/blobs/sha256:zz' }],
    ['a urlPath not matching the file', { ...good[3], urlPath: '/v2/a/b/manifests/2.0' }],
    ['index.html with another url', { ...good[0], urlPath: '/v2/index.html' }],
    ['a wrong kind', { ...good[5], kind: 'manifest' }],
    ['a digest not the one the path names', { ...good[4], digest: D2 }],
    ['an invalid digest', { ...good[3], digest: 'sha256:nothex' }],
    ['a manifest without a digest', { ...good[3], digest: undefined }],
    ['a manifest with a non-manifest type', { ...good[3], contentType: 'text/html' }],
    ['a blob with a manifest type', { ...good[5], contentType: OCI }],
    ['a list with another type', { ...good[2], contentType: 'text/html' }],
    ['a negative size', { ...good[1], size: -1 }],
    ['a fractional size', { ...good[1], size: 1.5 }],
    ['a string size', { ...good[1], size: '3' }],
    ['a tag marked immutable', { ...good[3], immutable: true }],
  ];
  for (const [what, entry] of bad) {
    it(`refuses ${what}, naming the file and the entry`, async () => {
      await expect(read([...good, entry])).rejects.toThrow(new RegExp(`registrish-paths\\.json: entry ${good.length} `, 'u'));
    });
  }

  it('refuses entries that are not objects, and files that are not JSON', async () => {
    await expect(read([null])).rejects.toThrow(/entry 0 is not an object/u);
    const out = path.join(dir, 'notjson');
    mkdirSync(path.join(out, 'v2'), { recursive: true });
    writeFileSync(path.join(out, 'v2', '.registrish-paths.json'), '{');
    await expect(readPathsFile(out)).rejects.toThrow(/not valid JSON/u);
  });
});
