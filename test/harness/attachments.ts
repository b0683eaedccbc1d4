// Supply-chain artifacts laid out the way the real tools push them, built in JS (cosign is not
// packaged for Debian, and Debian's skopeo and podman have sigstore disabled):
// - cosign's tag scheme: the signature of sha256:<hex> under the tag sha256-<hex>.sig, an OCI
//   manifest whose layers are simple-signing payloads with the signature in the
//   `dev.cosignproject.cosign/signature` annotation (checked against real cosign output in
//   test/verify.test.ts); attestations under .att (a DSSE envelope layer);
// - OCI 1.1 referrers: an SBOM (artifactType application/spdx+json, empty config) and a Sigstore
//   bundle as GitHub's build attestations / @sigstore/oci push them, each with a `subject`; listed
//   under the referrers tag schema (an index tagged sha256-<hex>) for registries without the API.
import crypto, { type KeyObject } from 'node:crypto';
import { buildIndex, buildManifest, makeLayer, MT, pushBlob, pushImage, sha256, tagManifest, type BuiltImage } from './images.ts';

export const SIMPLE_SIGNING = 'application/vnd.dev.cosign.simplesigning.v1+json';
export const SIGNATURE_ANNOTATION = 'dev.cosignproject.cosign/signature';
export const EMPTY_CONFIG = { mediaType: 'application/vnd.oci.empty.v1+json', bytes: Buffer.from('{}') };
export const SPDX = 'application/spdx+json';
export const SIGSTORE_BUNDLE = 'application/vnd.dev.sigstore.bundle.v0.3+json';
export const DSSE = 'application/vnd.dsse.envelope.v1+json';

const json = (v: unknown): Buffer => Buffer.from(JSON.stringify(v));
export const digestTag = (digest: string): string => digest.replace(':', '-');

export interface KeyPair {
  publicKey: KeyObject;
  privateKey: KeyObject;
  /** The public key as cosign writes cosign.pub. */
  pem: string;
}

export function keyPair(type: 'ec' | 'rsa' | 'ed25519'): KeyPair {
  const kp =
    type === 'ec'
      ? crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' })
      : type === 'rsa'
        ? crypto.generateKeyPairSync('rsa', { modulusLength: 2048 })
        : crypto.generateKeyPairSync('ed25519');
  return { ...kp, pem: kp.publicKey.export({ type: 'spki', format: 'pem' }) as string };
}

/** cosign's simple-signing payload (compact JSON, no trailing newline, as cosign marshals it). */
export function simpleSigningPayload(digest: string, identity: string, type = 'cosign container image signature'): Buffer {
  return json({ critical: { identity: { 'docker-reference': identity }, image: { 'docker-manifest-digest': digest }, type }, optional: null });
}

export function sign(key: KeyObject, payload: Buffer): string {
  const alg = key.asymmetricKeyType === 'ed25519' ? null : 'sha256';
  return crypto.sign(alg, payload, key).toString('base64');
}

export interface SignatureLayer {
  payload: Buffer;
  signature: string;
  /** Declared size, when it must lie (the 10 MB layer case). */
  size?: number;
  mediaType?: string;
}

/** A `.sig` manifest: one simple-signing layer per signature, as `cosign sign` appends them. */
export function cosignSignatureManifest(layers: SignatureLayer[]): BuiltImage {
  const config = json({
    architecture: '',
    created: '0001-01-01T00:00:00Z',
    history: [{ created: '0001-01-01T00:00:00Z' }],
    os: '',
    rootfs: { type: 'layers', diff_ids: layers.map((l) => sha256(l.payload)) },
    config: {},
  });
  const bytes = json({
    schemaVersion: 2,
    mediaType: MT.ociManifest,
    config: { mediaType: MT.ociConfig, size: config.length, digest: sha256(config) },
    layers: layers.map((l) => ({
      mediaType: l.mediaType ?? SIMPLE_SIGNING,
      size: l.size ?? l.payload.length,
      digest: sha256(l.payload),
      annotations: { [SIGNATURE_ANNOTATION]: l.signature },
    })),
  });
  const blobs = new Map<string, Buffer>([[sha256(config), config]]);
  for (const l of layers) blobs.set(sha256(l.payload), l.payload);
  return { mediaType: MT.ociManifest, bytes, digest: sha256(bytes), size: bytes.length, blobs, children: [] };
}

/** A `.att` manifest as `cosign attest` writes it: one DSSE envelope layer. */
export function cosignAttestationManifest(subject: string, key: KeyObject): BuiltImage {
  const statement = json({
    _type: 'https://in-toto.io/Statement/v0.1',
    predicateType: 'https://slsa.dev/provenance/v0.2',
    subject: [{ name: 'registrish-test', digest: { sha256: subject.slice(7) } }],
    predicate: { builder: { id: 'registrish-test' } },
  });
  const envelope = json({
    payloadType: 'application/vnd.in-toto+json',
    payload: statement.toString('base64'),
    signatures: [{ keyid: '', sig: sign(key, statement) }],
  });
  const config = json({ architecture: '', os: '', rootfs: { type: 'layers', diff_ids: [sha256(envelope)] }, config: {} });
  const bytes = json({
    schemaVersion: 2,
    mediaType: MT.ociManifest,
    config: { mediaType: MT.ociConfig, size: config.length, digest: sha256(config) },
    layers: [{ mediaType: DSSE, size: envelope.length, digest: sha256(envelope), annotations: { predicateType: 'https://slsa.dev/provenance/v0.2' } }],
  });
  return {
    mediaType: MT.ociManifest,
    bytes,
    digest: sha256(bytes),
    size: bytes.length,
    blobs: new Map([
      [sha256(config), config],
      [sha256(envelope), envelope],
    ]),
    children: [],
  };
}

/** An OCI 1.1 artifact manifest with a `subject` (empty config, one layer). */
export function referrerManifest(
  subject: { digest: string; size: number; mediaType: string },
  artifactType: string,
  layer: { mediaType: string; bytes: Buffer },
  annotations: Record<string, string>,
): BuiltImage {
  const bytes = json({
    schemaVersion: 2,
    mediaType: MT.ociManifest,
    artifactType,
    config: { mediaType: EMPTY_CONFIG.mediaType, size: EMPTY_CONFIG.bytes.length, digest: sha256(EMPTY_CONFIG.bytes) },
    layers: [{ mediaType: layer.mediaType, size: layer.bytes.length, digest: sha256(layer.bytes) }],
    subject: { mediaType: subject.mediaType, size: subject.size, digest: subject.digest },
    annotations,
  });
  return {
    mediaType: MT.ociManifest,
    bytes,
    digest: sha256(bytes),
    size: bytes.length,
    blobs: new Map([
      [sha256(EMPTY_CONFIG.bytes), EMPTY_CONFIG.bytes],
      [sha256(layer.bytes), layer.bytes],
    ]),
    children: [],
  };
}

export function sbomReferrer(subject: { digest: string; size: number; mediaType: string }): BuiltImage {
  const sbom = json({ spdxVersion: 'SPDX-2.3', SPDXID: 'SPDXRef-DOCUMENT', name: `sbom-of-${subject.digest.slice(7, 19)}`, dataLicense: 'CC0-1.0', packages: [] });
  return referrerManifest(subject, SPDX, { mediaType: SPDX, bytes: sbom }, { 'org.opencontainers.image.created': '2026-01-01T00:00:00Z' });
}

/** A Sigstore bundle the way @sigstore/oci (GitHub's build attestations) attaches it. */
export function sigstoreBundleReferrer(subject: { digest: string; size: number; mediaType: string }, key: KeyObject): BuiltImage {
  const statement = json({ _type: 'https://in-toto.io/Statement/v1', subject: [{ digest: { sha256: subject.digest.slice(7) } }], predicateType: 'https://slsa.dev/provenance/v1', predicate: {} });
  const bundle = json({
    mediaType: SIGSTORE_BUNDLE,
    verificationMaterial: { publicKey: { hint: 'registrish-test' } },
    dsseEnvelope: { payload: statement.toString('base64'), payloadType: 'application/vnd.in-toto+json', signatures: [{ sig: sign(key, statement) }] },
  });
  return referrerManifest(subject, SIGSTORE_BUNDLE, { mediaType: SIGSTORE_BUNDLE, bytes: bundle }, {
    'dev.sigstore.bundle.content': 'dsse-envelope',
    'dev.sigstore.bundle.predicateType': 'https://slsa.dev/provenance/v1',
  });
}

/** The referrers tag schema: an index listing the referrers, as oras and cosign write it. */
export function referrersTagIndex(referrers: BuiltImage[]): BuiltImage {
  const manifests = referrers.map((r) => {
    const doc = JSON.parse(r.bytes.toString()) as { artifactType?: string; annotations?: Record<string, string> };
    return { mediaType: r.mediaType, digest: r.digest, size: r.size, artifactType: doc.artifactType, annotations: doc.annotations };
  });
  const bytes = json({ schemaVersion: 2, mediaType: MT.ociIndex, manifests });
  return { mediaType: MT.ociIndex, bytes, digest: sha256(bytes), size: bytes.length, blobs: new Map(), children: [] };
}

/** Pushes a manifest's blobs, then the manifest under `ref` (a tag or its digest). */
export async function pushManifest(registryUrl: string, name: string, ref: string, m: BuiltImage): Promise<string> {
  for (const b of m.blobs.values()) await pushBlob(registryUrl, name, b);
  return tagManifest(registryUrl, name, ref, m.bytes, m.mediaType);
}

export interface SignedApp {
  name: string;
  tag: string;
  index: BuiltImage;
  amd64: BuiltImage;
  arm64: BuiltImage;
  signature: BuiltImage;
  attestation: BuiltImage;
  sbom: BuiltImage;
  bundle: BuiltImage;
  /** What the signature names as the image's repository. */
  identity: string;
}

/**
 * `signed/app:1.0`, a two-platform OCI index, with: a cosign signature of the index (by `key`), a
 * cosign attestation of the amd64 manifest, an SBOM referring to the amd64 manifest and a Sigstore
 * bundle referring to the index (both through the referrers tag schema: distribution 2.8 has no
 * referrers API).
 */
export async function seedSignedApp(registryUrl: string, host: string, key: KeyPair, name = 'signed/app', tag = '1.0'): Promise<SignedApp> {
  const amd64 = buildManifest({ format: 'oci', platform: { os: 'linux', architecture: 'amd64' }, layers: [makeLayer([{ name: 'app', content: `${name} amd64\n` }])] });
  const arm64 = buildManifest({ format: 'oci', platform: { os: 'linux', architecture: 'arm64', variant: 'v8' }, layers: [makeLayer([{ name: 'app', content: `${name} arm64\n` }])] });
  const index = buildIndex('oci', [amd64, arm64]);
  await pushImage(registryUrl, name, tag, index);
  const identity = `${host}/${name}`;
  const payload = simpleSigningPayload(index.digest, identity);
  const signature = cosignSignatureManifest([{ payload, signature: sign(key.privateKey, payload) }]);
  await pushManifest(registryUrl, name, `${digestTag(index.digest)}.sig`, signature);
  const attestation = cosignAttestationManifest(amd64.digest, key.privateKey);
  await pushManifest(registryUrl, name, `${digestTag(amd64.digest)}.att`, attestation);
  const sbom = sbomReferrer(amd64);
  await pushManifest(registryUrl, name, sbom.digest, sbom);
  await pushManifest(registryUrl, name, digestTag(amd64.digest), referrersTagIndex([sbom]));
  const bundle = sigstoreBundleReferrer(index, key.privateKey);
  await pushManifest(registryUrl, name, bundle.digest, bundle);
  await pushManifest(registryUrl, name, digestTag(index.digest), referrersTagIndex([bundle]));
  return { name, tag, index, amd64, arm64, signature, attestation, sbom, bundle, identity };
}
