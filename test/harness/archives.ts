// Image archives for the archive sources' tests: made by the real tools (docker save, podman save,
// skopeo copy), and, for what the tools here cannot write (docker ≥ 25's layout, hostile
// archives, a 256 MiB layer), tar files written byte by byte.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { dockerCli } from './clients.ts';
import { buildManifest, makeLayer, sha256, type Layer } from './images.ts';
import { makeTempDir, removeDir, run } from './procs.ts';

// ---------------------------------------------------------------------------------------------
// tar, by hand (test/harness/images.ts makeTar writes regular files only)

export interface RawMember {
  name: string;
  content?: Buffer | string;
  /** typeflag: '0' file (default), '1' hard link, '2' symlink, '5' folder, '6' FIFO… */
  type?: string;
  linkName?: string;
  /** The size the header states, when it must differ from the content's (a lying header). */
  headerSize?: number;
}

function header(m: RawMember, size: number): Buffer {
  const h = Buffer.alloc(512, 0);
  const field = (value: string, offset: number, width: number) => h.write(value, offset, width, 'utf8');
  const octal = (n: number, offset: number, width: number) => field(`${n.toString(8).padStart(width - 1, '0')}\0`, offset, width);
  if (Buffer.byteLength(m.name) > 100) throw new Error(`tar: name too long: ${m.name}`);
  field(m.name, 0, 100);
  octal(m.type === '5' ? 0o755 : 0o644, 100, 8);
  octal(0, 108, 8);
  octal(0, 116, 8);
  octal(size, 124, 12);
  octal(0, 136, 12);
  field('        ', 148, 8);
  field(m.type ?? '0', 156, 1);
  field(m.linkName ?? '', 157, 100);
  field('ustar\0', 257, 6);
  field('00', 263, 2);
  let sum = 0;
  for (const b of h) sum += b;
  field(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8);
  return h;
}

const pad = (n: number) => Buffer.alloc((512 - (n % 512)) % 512, 0);

/** A ustar archive of any members (links, folders, lying sizes), ended by two zero blocks unless `end` is false. */
export function rawTar(members: RawMember[], options: { end?: boolean } = {}): Buffer {
  const parts: Buffer[] = [];
  for (const m of members) {
    const data = Buffer.from(m.content ?? '');
    parts.push(header(m, m.headerSize ?? data.length), data, pad(data.length));
  }
  if (options.end !== false) parts.push(Buffer.alloc(1024, 0));
  return Buffer.concat(parts);
}

// ---------------------------------------------------------------------------------------------
// docker save's layouts, written by hand

export interface SavedImage {
  config: Buffer;
  configDigest: string;
  layers: Layer[];
}

/** An image with `n` small layers, distinct by `seed`. */
export function savedImage(seed: string, n = 2): SavedImage {
  const layers = Array.from({ length: n }, (_, i) => makeLayer([{ name: `layer-${i}.txt`, content: `${seed} layer ${i}\n` }]));
  const built = buildManifest({ format: 'docker', platform: { os: 'linux', architecture: 'amd64' }, layers, cmd: ['/hello', seed] });
  const config = built.blobs.get(built.configDigest!)!;
  return { config, configDigest: built.configDigest!, layers };
}

/** What docker < 25 and podman write: `<id>.json`, `<id>/layer.tar` and manifest.json. */
export function legacyArchiveMembers(image: SavedImage, repoTag: string): RawMember[] {
  const hex = image.configDigest.slice(7);
  const dirs = image.layers.map((l) => l.diffId.slice(7));
  return [
    { name: `${hex}.json`, content: image.config },
    ...dirs.flatMap((d, i): RawMember[] => [
      { name: `${d}/`, type: '5' },
      { name: `${d}/VERSION`, content: '1.0' },
      { name: `${d}/layer.tar`, content: image.layers[i]!.tar },
    ]),
    { name: 'manifest.json', content: JSON.stringify([{ Config: `${hex}.json`, RepoTags: [repoTag], Layers: dirs.map((d) => `${d}/layer.tar`) }]) },
  ];
}

/**
 * An OCI image layout of the image, as members (blobs/sha256, index.json naming it `tag`,
 * oci-layout). The last layer is stored gzip-compressed, the others as plain tars.
 */
export function ociLayoutMembers(image: SavedImage, tag: string, annotations: Record<string, string> = {}): { members: RawMember[]; blobs: Buffer[]; manifest: Buffer } {
  const blobs = image.layers.map((l, i) => (i === image.layers.length - 1 ? l.blob : l.tar));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: image.configDigest, size: image.config.length },
      layers: blobs.map((b, i) => ({
        mediaType: i === blobs.length - 1 ? 'application/vnd.oci.image.layer.v1.tar+gzip' : 'application/vnd.oci.image.layer.v1.tar',
        digest: sha256(b),
        size: b.length,
      })),
    }),
  );
  const index = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [
      {
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        digest: sha256(manifest),
        size: manifest.length,
        annotations: { ...annotations, 'org.opencontainers.image.ref.name': tag },
      },
    ],
  };
  const members: RawMember[] = [
    { name: 'blobs/', type: '5' },
    { name: 'blobs/sha256/', type: '5' },
    ...[...blobs, image.config, manifest].map((b) => ({ name: `blobs/sha256/${sha256(b).slice(7)}`, content: b })),
    { name: 'index.json', content: JSON.stringify(index) },
    { name: 'oci-layout', content: '{"imageLayoutVersion": "1.0.0"}' },
  ];
  return { members, blobs, manifest };
}

/**
 * What docker ≥ 25 writes: an OCI layout and manifest.json naming the same blobs, plus legacy
 * folders whose layer.tar is a symlink to the blob. The last layer is gzip-compressed, as docker
 * with the containerd image store saves pulled layers.
 */
export function docker25Members(image: SavedImage, repoTag: string, tag: string): RawMember[] {
  const { members, blobs } = ociLayoutMembers(image, tag, { 'io.containerd.image.name': repoTag });
  const blobName = (b: Buffer) => `blobs/sha256/${sha256(b).slice(7)}`;
  const v1 = sha256(`v1 ${image.configDigest}`).slice(7);
  return [
    ...members,
    { name: `${v1}/`, type: '5' },
    { name: `${v1}/layer.tar`, type: '2', linkName: `../${blobName(blobs[0]!)}` },
    { name: 'manifest.json', content: JSON.stringify([{ Config: `blobs/sha256/${image.configDigest.slice(7)}`, RepoTags: [repoTag], Layers: blobs.map(blobName) }]) },
  ];
}

/**
 * A tar stream whose one member `name` is `bytes` of zeros, gzip-compressed as concatenated gzip
 * members (gunzip reads them as one stream): 16 MiB of zeros compress to ~16 KiB, written once and
 * repeated, so gigabytes cost megabytes and no time to make.
 */
export function zeroTarGz(name: string, bytes: number): Buffer {
  const zeros = zlib.gzipSync(Buffer.alloc(16 * 1024 * 1024), { level: 9 });
  const parts = [zlib.gzipSync(rawTar([{ name, headerSize: bytes }], { end: false }))];
  for (let left = bytes; left > 0; left -= 16 * 1024 * 1024) parts.push(zeros);
  parts.push(zlib.gzipSync(Buffer.alloc(1024)));
  return Buffer.concat(parts);
}

/**
 * A docker archive whose one layer is `layerBytes` of file data (a valid tar of one file), written
 * in a stream: the test never holds it in memory either. Returns the layer's digest.
 */
export async function writeBigArchive(file: string, layerBytes: number): Promise<string> {
  const out = fs.createWriteStream(file);
  const write = (b: Buffer) => (out.write(b) ? Promise.resolve() : new Promise<void>((r) => out.once('drain', () => r())));
  const chunk = crypto.randomBytes(1024 * 1024);
  // The layer: one file header, the data, padding, end blocks.
  const fileHeader = header({ name: 'big.bin' }, layerBytes);
  const layerSize = 512 + layerBytes + pad(layerBytes).length + 1024;
  const hash = crypto.createHash('sha256');
  await write(header({ name: 'layer.tar' }, layerSize));
  const layerPart = async (b: Buffer) => {
    hash.update(b);
    await write(b);
  };
  await layerPart(fileHeader);
  for (let left = layerBytes; left > 0; left -= chunk.length) await layerPart(left >= chunk.length ? chunk : chunk.subarray(0, left));
  await layerPart(Buffer.concat([pad(layerBytes), Buffer.alloc(1024, 0)]));
  await write(pad(layerSize));
  const diffId = `sha256:${hash.digest('hex')}`;
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [diffId] } }));
  const configName = `${sha256(config).slice(7)}.json`;
  await write(
    rawTar([
      { name: configName, content: config },
      { name: 'manifest.json', content: JSON.stringify([{ Config: configName, RepoTags: ['big:1'], Layers: ['layer.tar'] }]) },
    ]),
  );
  await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
  return diffId;
}

// ---------------------------------------------------------------------------------------------
// the real tools

/** `docker -H HOST …` with a private client config. */
export function docker(host: string, configDir: string) {
  const env = { ...process.env, DOCKER_CONFIG: configDir, DOCKER_CONTEXT: '', DOCKER_HOST: '' };
  return async (...args: string[]): Promise<string> => (await run(dockerCli(), ['-H', host, ...args], { env, timeoutMs: 120_000 })).stdout.trim();
}

/** podman with its own vfs storage and no host configuration; `stop()` removes it all. */
export function podman(): { run: (...args: string[]) => Promise<string>; policy: string; stop: () => void } {
  const dir = makeTempDir('rsh-pmsave-');
  const conf = (name: string, text: string) => {
    fs.writeFileSync(path.join(dir, name), text);
    return path.join(dir, name);
  };
  const env = {
    ...process.env,
    CONTAINERS_REGISTRIES_CONF: conf('registries.conf', 'unqualified-search-registries = []\nshort-name-mode = "disabled"\n'),
    CONTAINERS_CONF: conf('containers.conf', ''),
    REGISTRY_AUTH_FILE: conf('auth.json', '{"auths":{}}\n'),
    TMPDIR: dir,
  };
  const policy = conf('policy.json', JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
  const global = ['--storage-driver', 'vfs', '--root', `${dir}/root`, '--runroot', `${dir}/run`, '--tmpdir', `${dir}/tmp`];
  const flags = [...global, '--events-backend', 'file', '--cgroup-manager', 'cgroupfs', '--log-level', 'error'];
  return {
    run: async (...args) => (await run('podman', [...flags, ...args], { env, timeoutMs: 120_000 })).stdout.trim(),
    policy,
    stop: () => removeDir(dir),
  };
}

/** `skopeo copy docker://SRC DEST` from a plain-HTTP registry. */
export async function skopeoToArchive(src: string, dest: string, options: { all?: boolean } = {}): Promise<void> {
  const args = ['--insecure-policy', 'copy', '--src-tls-verify=false', '--src-no-creds', '--retry-times', '0'];
  if (options.all) args.push('--all');
  await run('skopeo', [...args, `docker://${src}`, dest], { timeoutMs: 120_000 });
}
