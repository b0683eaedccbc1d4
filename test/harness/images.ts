// Deterministic test images, built in JS (real ustar layers, gzip, valid configs) and pushed
// through the registry HTTP API (monolithic blob uploads, manifest PUTs).
import crypto from 'node:crypto';
import zlib from 'node:zlib';

export const MT = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  inToto: 'application/vnd.in-toto+json',
} as const;

export const sha256 = (b: Buffer | string): string => `sha256:${crypto.createHash('sha256').update(b).digest('hex')}`;

// ---------------------------------------------------------------------------------------------
// tar (ustar) + gzip

export interface TarEntry {
  name: string;
  content: string | Buffer;
  /** default 0o644 */
  mode?: number;
}

function octal(n: number, width: number): string {
  // width includes the trailing NUL
  return n.toString(8).padStart(width - 1, '0') + '\0';
}

/** A valid ustar archive of regular files (uid/gid 0, mtime 0), ended by two zero blocks. */
export function makeTar(entries: TarEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const data = Buffer.isBuffer(e.content) ? e.content : Buffer.from(e.content, 'utf8');
    if (Buffer.byteLength(e.name) > 100) throw new Error(`tar: name too long: ${e.name}`);
    const h = Buffer.alloc(512, 0);
    h.write(e.name, 0, 100, 'utf8');
    h.write(octal(e.mode ?? 0o644, 8), 100, 'ascii');
    h.write(octal(0, 8), 108, 'ascii'); // uid
    h.write(octal(0, 8), 116, 'ascii'); // gid
    h.write(octal(data.length, 12), 124, 'ascii');
    h.write(octal(0, 12), 136, 'ascii'); // mtime
    h.write('        ', 148, 'ascii'); // checksum placeholder: 8 spaces
    h.write('0', 156, 'ascii'); // regular file
    h.write('ustar\0', 257, 'ascii');
    h.write('00', 263, 'ascii');
    h.write('root', 265, 'ascii');
    h.write('root', 297, 'ascii');
    h.write(octal(0, 8), 329, 'ascii');
    h.write(octal(0, 8), 337, 'ascii');
    let sum = 0;
    for (const byte of h) sum += byte;
    h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'ascii');
    parts.push(h, data);
    const pad = (512 - (data.length % 512)) % 512;
    if (pad) parts.push(Buffer.alloc(pad, 0));
  }
  parts.push(Buffer.alloc(1024, 0));
  return Buffer.concat(parts);
}

/** gzip with a zeroed header mtime (node's default) and fixed level: same bytes every run. */
export const gzip = (b: Buffer): Buffer => zlib.gzipSync(b, { level: 9 });

// ---------------------------------------------------------------------------------------------
// building images

export type Format = 'oci' | 'docker';

export interface PlatformSpec {
  os: string;
  architecture: string;
  variant?: string;
}

export const platformString = (p: PlatformSpec): string =>
  [p.os, p.architecture, p.variant].filter(Boolean).join('/');

export function parsePlatform(s: string): PlatformSpec {
  const [os, architecture, variant] = s.split('/');
  return variant ? { os, architecture, variant } : { os, architecture };
}

export interface Layer {
  /** uncompressed tar */
  tar: Buffer;
  /** gzip of tar: the blob */
  blob: Buffer;
  digest: string;
  diffId: string;
}

export function makeLayer(entries: TarEntry[]): Layer {
  const tar = makeTar(entries);
  const blob = gzip(tar);
  return { tar, blob, digest: sha256(blob), diffId: sha256(tar) };
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { architecture: string; os: string; variant?: string };
  annotations?: Record<string, string>;
}

/** A manifest (image or index) with everything needed to push it. */
export interface BuiltImage {
  mediaType: string;
  bytes: Buffer;
  digest: string;
  size: number;
  /** All blobs (configs and layers) of this image and its children, by digest. */
  blobs: Map<string, Buffer>;
  /** Child manifests to push by digest before this one (index/list only), in order. */
  children: BuiltImage[];
  /** Image manifests only. */
  platform?: PlatformSpec;
  configDigest?: string;
  layerDigests?: string[];
}

const json = (v: unknown): Buffer => Buffer.from(JSON.stringify(v, null, 2));
const EPOCH = '1970-01-01T00:00:00Z';

export interface ImageSpec {
  format: Format;
  platform: PlatformSpec;
  layers: Layer[];
  cmd?: string[];
}

export function buildManifest(spec: ImageSpec): BuiltImage {
  const { format, platform, layers } = spec;
  const config = {
    created: EPOCH,
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant ? { variant: platform.variant } : {}),
    config: {
      Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
      Cmd: spec.cmd ?? ['/hello'],
      WorkingDir: '/',
    },
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
    history: layers.map((l, i) => ({ created: EPOCH, created_by: `registrish-test layer ${i + 1} ${l.diffId.slice(7, 19)}` })),
  };
  const configBytes = json(config);
  const configDigest = sha256(configBytes);
  const manifest = {
    schemaVersion: 2,
    mediaType: format === 'oci' ? MT.ociManifest : MT.dockerManifest,
    config: { mediaType: format === 'oci' ? MT.ociConfig : MT.dockerConfig, digest: configDigest, size: configBytes.length },
    layers: layers.map((l) => ({
      mediaType: format === 'oci' ? MT.ociLayerGzip : MT.dockerLayerGzip,
      digest: l.digest,
      size: l.blob.length,
    })),
  };
  const bytes = json(manifest);
  const blobs = new Map<string, Buffer>([[configDigest, configBytes]]);
  for (const l of layers) blobs.set(l.digest, l.blob);
  return {
    mediaType: manifest.mediaType,
    bytes,
    digest: sha256(bytes),
    size: bytes.length,
    blobs,
    children: [],
    platform,
    configDigest,
    layerDigests: layers.map((l) => l.digest),
  };
}

/** A buildx-style attestation manifest (in-toto SPDX statement) for `subject`. */
export function buildAttestation(subject: BuiltImage, repoName: string): BuiltImage {
  const statement = {
    _type: 'https://in-toto.io/Statement/v0.1',
    predicateType: 'https://spdx.dev/Document',
    subject: [
      {
        name: `pkg:docker/${repoName}?platform=${encodeURIComponent(platformString(subject.platform!))}`,
        digest: { sha256: subject.digest.slice(7) },
      },
    ],
    predicate: { spdxVersion: 'SPDX-2.3', SPDXID: 'SPDXRef-DOCUMENT', name: `registrish-test-sbom-${repoName}`, dataLicense: 'CC0-1.0', packages: [] },
  };
  const layer = json(statement);
  const layerDigest = sha256(layer);
  const configBytes = json({ architecture: 'unknown', os: 'unknown', config: {}, rootfs: { type: 'layers', diff_ids: [layerDigest] } });
  const configDigest = sha256(configBytes);
  const bytes = json({
    schemaVersion: 2,
    mediaType: MT.ociManifest,
    config: { mediaType: MT.ociConfig, digest: configDigest, size: configBytes.length },
    layers: [
      {
        mediaType: MT.inToto,
        digest: layerDigest,
        size: layer.length,
        annotations: { 'in-toto.io/predicate-type': 'https://spdx.dev/Document' },
      },
    ],
  });
  return {
    mediaType: MT.ociManifest,
    bytes,
    digest: sha256(bytes),
    size: bytes.length,
    blobs: new Map([
      [configDigest, configBytes],
      [layerDigest, layer],
    ]),
    children: [],
    platform: { os: 'unknown', architecture: 'unknown' },
    configDigest,
    layerDigests: [layerDigest],
  };
}

/** OCI index / Docker manifest list over `children` (attestations carry their own descriptors). */
export function buildIndex(
  format: Format,
  children: BuiltImage[],
  attestations: Array<{ manifest: BuiltImage; refersTo: BuiltImage }> = [],
): BuiltImage {
  const desc = (m: BuiltImage): Descriptor => ({
    mediaType: m.mediaType,
    digest: m.digest,
    size: m.size,
    platform: {
      architecture: m.platform!.architecture,
      os: m.platform!.os,
      ...(m.platform!.variant ? { variant: m.platform!.variant } : {}),
    },
  });
  const manifests: Descriptor[] = children.map(desc);
  for (const a of attestations) {
    manifests.push({
      mediaType: a.manifest.mediaType,
      digest: a.manifest.digest,
      size: a.manifest.size,
      annotations: {
        'vnd.docker.reference.digest': a.refersTo.digest,
        'vnd.docker.reference.type': 'attestation-manifest',
      },
      platform: { architecture: 'unknown', os: 'unknown' },
    });
  }
  const mediaType = format === 'oci' ? MT.ociIndex : MT.dockerList;
  const bytes = json({ schemaVersion: 2, mediaType, manifests });
  const all = [...children, ...attestations.map((a) => a.manifest)];
  const blobs = new Map<string, Buffer>();
  for (const c of all) for (const [d, b] of c.blobs) blobs.set(d, b);
  return { mediaType, bytes, digest: sha256(bytes), size: bytes.length, blobs, children: all };
}

// ---------------------------------------------------------------------------------------------
// pushing (registry HTTP API v2)

async function expectStatus(res: Response, ok: number[], what: string): Promise<void> {
  if (!ok.includes(res.status)) {
    throw new Error(`${what}: HTTP ${res.status} ${await res.text().catch(() => '')}`);
  }
}

/** Monolithic upload: POST uploads/ → 202 + Location, PUT Location?digest=… with the bytes. */
export async function pushBlob(registryUrl: string, name: string, bytes: Buffer, headers: Record<string, string> = {}): Promise<string> {
  const digest = sha256(bytes);
  const head = await fetch(`${registryUrl}/v2/${name}/blobs/${digest}`, { method: 'HEAD', headers });
  if (head.status === 200) return digest; // already linked in this repository
  const start = await fetch(`${registryUrl}/v2/${name}/blobs/uploads/`, { method: 'POST', headers });
  await expectStatus(start, [202], `POST ${name} blob upload`);
  await start.arrayBuffer();
  const loc = start.headers.get('location');
  if (!loc) throw new Error(`POST ${name} blob upload: no Location`);
  const u = new URL(loc, registryUrl);
  u.searchParams.set('digest', digest);
  const put = await fetch(u, {
    method: 'PUT',
    headers: { ...headers, 'Content-Type': 'application/octet-stream' },
    body: new Uint8Array(bytes),
  });
  await expectStatus(put, [201], `PUT ${name} blob ${digest}`);
  await put.arrayBuffer();
  return digest;
}

/** PUT /v2/<name>/manifests/<tag or digest> with the manifest's media type. Returns its digest. */
export async function tagManifest(
  registryUrl: string,
  name: string,
  tag: string,
  manifestBytes: Buffer,
  mediaType: string,
  headers: Record<string, string> = {},
): Promise<string> {
  const res = await fetch(`${registryUrl}/v2/${name}/manifests/${tag}`, {
    method: 'PUT',
    headers: { ...headers, 'Content-Type': mediaType },
    body: new Uint8Array(manifestBytes),
  });
  await expectStatus(res, [201], `PUT ${name} manifest ${tag}`);
  await res.arrayBuffer();
  const digest = sha256(manifestBytes);
  const got = res.headers.get('docker-content-digest');
  if (got && got !== digest) throw new Error(`PUT ${name}:${tag}: registry says ${got}, expected ${digest}`);
  return digest;
}

/** Pushes all blobs, then child manifests by digest, then the top manifest as `tag`. */
export async function pushImage(registryUrl: string, name: string, tag: string, image: BuiltImage): Promise<string> {
  for (const bytes of image.blobs.values()) await pushBlob(registryUrl, name, bytes);
  for (const c of image.children) await tagManifest(registryUrl, name, c.digest, c.bytes, c.mediaType);
  return tagManifest(registryUrl, name, tag, image.bytes, image.mediaType);
}

// ---------------------------------------------------------------------------------------------
// fixtures

export interface PlatformFixture {
  /** 'linux/amd64', 'linux/arm64/v8', 'linux/arm/v7' */
  platform: string;
  digest: string;
  mediaType: string;
  size: number;
  configDigest: string;
  layerDigests: string[];
}

export interface AttestationFixture {
  digest: string;
  mediaType: string;
  size: number;
  /** digest of the platform manifest it describes */
  refersTo: string;
  configDigest: string;
  layerDigests: string[];
}

export interface ImageFixture {
  name: string;
  tag: string;
  /** top-level manifest (the one the tag points to) */
  digest: string;
  mediaType: string;
  size: number;
  /** For a single manifest: one entry equal to the top level. */
  platforms: PlatformFixture[];
  /** Every blob digest (configs, layers, attestation blobs). */
  blobs: string[];
  blobSizes: Record<string, number>;
  attestations?: AttestationFixture[];
  /** Exact bytes of every manifest (top and children) by digest. */
  manifests: Record<string, { mediaType: string; body: Buffer }>;
  /** The built image, e.g. to push it again elsewhere (pushImage). */
  image: BuiltImage;
}

/** Keyed by 'name:tag'. */
export type Fixtures = Record<string, ImageFixture>;

export const FIXTURE_REFS = [
  'oci/single:1.0',
  'oci/single:Release.1.0-RC_1',
  'docker/single:v1',
  'docker/single:v2',
  'oci/multi:1.0',
  'docker/list:2.0',
  'a/b/c:latest',
] as const;

function fixtureOf(name: string, tag: string, image: BuiltImage): ImageFixture {
  const toPlat = (m: BuiltImage): PlatformFixture => ({
    platform: platformString(m.platform!),
    digest: m.digest,
    mediaType: m.mediaType,
    size: m.size,
    configDigest: m.configDigest!,
    layerDigests: m.layerDigests!,
  });
  const manifests: ImageFixture['manifests'] = { [image.digest]: { mediaType: image.mediaType, body: image.bytes } };
  for (const c of image.children) manifests[c.digest] = { mediaType: c.mediaType, body: c.bytes };
  const isIndex = image.children.length > 0;
  const platformChildren = image.children.filter((c) => c.platform?.os !== 'unknown');
  const attChildren = image.children.filter((c) => c.platform?.os === 'unknown');
  const fx: ImageFixture = {
    name,
    tag,
    digest: image.digest,
    mediaType: image.mediaType,
    size: image.size,
    platforms: isIndex ? platformChildren.map(toPlat) : [toPlat(image)],
    blobs: [...image.blobs.keys()],
    blobSizes: Object.fromEntries([...image.blobs].map(([d, b]) => [d, b.length])),
    manifests,
    image,
  };
  if (attChildren.length) {
    const index = JSON.parse(image.bytes.toString()) as { manifests: Descriptor[] };
    fx.attestations = attChildren.map((a) => ({
      digest: a.digest,
      mediaType: a.mediaType,
      size: a.size,
      refersTo: index.manifests.find((d) => d.digest === a.digest)!.annotations!['vnd.docker.reference.digest'],
      configDigest: a.configDigest!,
      layerDigests: a.layerDigests!,
    }));
  }
  return fx;
}

const hello = (who: string, platform: string): Layer =>
  makeLayer([{ name: 'hello.txt', content: `hello from ${who} ${platform}\n` }]);

/** Builds every fixture image (pure, deterministic; nothing is pushed). */
export function buildFixtureImages(): Array<{ name: string; tag: string; image: BuiltImage }> {
  const shared = makeLayer([
    { name: 'etc/registrish-base.txt', content: 'registrish shared base layer\n' },
    { name: 'README', content: 'a layer shared by oci/single:1.0 and a/b/c:latest\n' },
  ]);
  const amd64: PlatformSpec = { os: 'linux', architecture: 'amd64' };
  const arm64: PlatformSpec = { os: 'linux', architecture: 'arm64', variant: 'v8' };
  const armv7: PlatformSpec = { os: 'linux', architecture: 'arm', variant: 'v7' };

  const ociSingle = buildManifest({ format: 'oci', platform: amd64, layers: [shared, hello('oci/single', 'linux/amd64')] });
  const dockerV1 = buildManifest({ format: 'docker', platform: amd64, layers: [hello('docker/single:v1', 'linux/amd64')] });
  const dockerV2 = buildManifest({ format: 'docker', platform: amd64, layers: [hello('docker/single:v2', 'linux/amd64')] });

  const multiAmd = buildManifest({ format: 'oci', platform: amd64, layers: [hello('oci/multi', 'linux/amd64')] });
  const multiArm = buildManifest({ format: 'oci', platform: arm64, layers: [hello('oci/multi', 'linux/arm64/v8')] });
  const multiAtt = buildAttestation(multiAmd, 'oci/multi@1.0');
  const ociMulti = buildIndex('oci', [multiAmd, multiArm], [{ manifest: multiAtt, refersTo: multiAmd }]);

  const listChildren = [amd64, arm64, armv7].map((p) =>
    buildManifest({ format: 'docker', platform: p, layers: [hello('docker/list', platformString(p))] }),
  );
  const dockerList = buildIndex('docker', listChildren);

  const abc = buildManifest({ format: 'oci', platform: amd64, layers: [shared, hello('a/b/c', 'linux/amd64')] });

  return [
    { name: 'oci/single', tag: '1.0', image: ociSingle },
    { name: 'oci/single', tag: 'Release.1.0-RC_1', image: ociSingle },
    { name: 'docker/single', tag: 'v1', image: dockerV1 },
    { name: 'docker/single', tag: 'v2', image: dockerV2 },
    { name: 'oci/multi', tag: '1.0', image: ociMulti },
    { name: 'docker/list', tag: '2.0', image: dockerList },
    { name: 'a/b/c', tag: 'latest', image: abc },
  ];
}

/** Fixtures without pushing anything (same digests seedUpstream returns). */
export function fixtureData(): Fixtures {
  const out: Fixtures = {};
  for (const { name, tag, image } of buildFixtureImages()) out[`${name}:${tag}`] = fixtureOf(name, tag, image);
  return out;
}

/** Pushes every fixture to a registry that accepts anonymous pushes; returns them keyed by 'name:tag'. */
export async function seedUpstream(registryUrl: string): Promise<Fixtures> {
  const out: Fixtures = {};
  for (const { name, tag, image } of buildFixtureImages()) {
    await pushImage(registryUrl, name, tag, image);
    out[`${name}:${tag}`] = fixtureOf(name, tag, image);
  }
  return out;
}
