// Regenerates example/hello: the tiny OCI image layout the default images.json publishes,
// so a fresh clone builds a working registry with no network at all. Deterministic: running it
// again gives the same digests. Run: npx tsx scripts/make-example.ts
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { buildIndex, buildManifest, makeLayer, type BuiltImage } from '../test/harness/images.ts';

const dir = path.resolve(import.meta.dirname, '..', 'example', 'hello');
const text = (arch: string) =>
  `Hello from a static registry (linux/${arch}).\nThis image holds only this file: it is here to be pulled, not run.\n`;

const images = ['amd64', 'arm64'].map((arch) =>
  buildManifest({
    format: 'oci',
    platform: arch === 'arm64' ? { os: 'linux', architecture: 'arm64', variant: 'v8' } : { os: 'linux', architecture: arch },
    layers: [makeLayer([{ name: 'hello.txt', content: Buffer.from(text(arch)) }])],
    cmd: ['/hello.txt'],
  }),
);
const index = buildIndex('oci', images);

await rm(dir, { recursive: true, force: true });
await mkdir(path.join(dir, 'blobs', 'sha256'), { recursive: true });
const put = (digest: string, bytes: Buffer) => writeFile(path.join(dir, 'blobs', 'sha256', digest.slice(7)), bytes);
const all: BuiltImage[] = [index, ...index.children];
for (const m of all) await put(m.digest, m.bytes);
for (const [digest, bytes] of index.blobs) await put(digest, bytes);
await writeFile(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }) + '\n');
await writeFile(
  path.join(dir, 'index.json'),
  JSON.stringify(
    {
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [
        { mediaType: index.mediaType, digest: index.digest, size: index.size, annotations: { 'org.opencontainers.image.ref.name': '1.0' } },
      ],
    },
    null,
    2,
  ) + '\n',
);
console.log(`example/hello: index ${index.digest}`);
