import { RegistrishError } from '../util/errors.ts';

// The one place that knows the media types. Pull clients decide the manifest format from the
// exact Content-Type (see shared notes), so every type we serve comes from here.

export const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
export const DOCKER_MANIFEST_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';

export const DOCKER_CONFIG = 'application/vnd.docker.container.image.v1+json';
export const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';

export const DOCKER_LAYER = 'application/vnd.docker.image.rootfs.diff.tar.gzip';
/** An uncompressed Docker layer: what `docker save` stores (every client accepts it). */
export const DOCKER_LAYER_TAR = 'application/vnd.docker.image.rootfs.diff.tar';
export const DOCKER_FOREIGN_LAYER = 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip';
export const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar';
export const OCI_LAYER_GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';
export const OCI_LAYER_ZSTD = 'application/vnd.oci.image.layer.v1.tar+zstd';

/** The Helm repository's index.yaml (RFC 9512's type for YAML). */
export const YAML_TYPE = 'application/yaml';

/** Schema 1 (signed and unsigned): recognised only to refuse it clearly. */
export const DOCKER_SCHEMA1_MANIFEST = 'application/vnd.docker.distribution.manifest.v1+json';
export const DOCKER_SCHEMA1_SIGNED_MANIFEST = 'application/vnd.docker.distribution.manifest.v1+prettyjws';

/** Registries cap manifests at 4 MiB; a bigger "manifest" is something else, never buffered whole. */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

export const INDEX_TYPES: readonly string[] = [OCI_INDEX, DOCKER_MANIFEST_LIST];
export const IMAGE_MANIFEST_TYPES: readonly string[] = [OCI_MANIFEST, DOCKER_MANIFEST];
export const MANIFEST_TYPES: readonly string[] = [...IMAGE_MANIFEST_TYPES, ...INDEX_TYPES];

/**
 * Accept header for manifest requests. All four types: registries (GHCR in particular) answer
 * only with a type the client said it accepts, and refuse or down-convert otherwise.
 */
export const MANIFEST_ACCEPT = MANIFEST_TYPES.join(', ');

/** `application/json; charset=utf-8` → `application/json` (lower-cased, trimmed). */
export function stripParams(contentType: string | undefined | null): string | undefined {
  if (!contentType) return undefined;
  const bare = contentType.split(';', 1)[0]!.trim().toLowerCase();
  return bare === '' ? undefined : bare;
}

/** OCI index or Docker manifest list. */
export function isIndexType(mediaType: string | undefined): boolean {
  const mt = stripParams(mediaType);
  return mt !== undefined && INDEX_TYPES.includes(mt);
}

/** OCI or Docker v2 image manifest (not an index). */
export function isManifestType(mediaType: string | undefined): boolean {
  const mt = stripParams(mediaType);
  return mt !== undefined && IMAGE_MANIFEST_TYPES.includes(mt);
}

/** Any of the four manifest types we can serve. */
export function isKnownManifestType(mediaType: string | undefined): boolean {
  return isIndexType(mediaType) || isManifestType(mediaType);
}

function isSchema1Type(mediaType: string | undefined): boolean {
  const mt = stripParams(mediaType);
  return mt === DOCKER_SCHEMA1_MANIFEST || mt === DOCKER_SCHEMA1_SIGNED_MANIFEST;
}

function schema1Error(): RegistrishError {
  return new RegistrishError(
    'this image uses Docker image manifest schema 1, which registrish does not support; push the image again with a current client',
    {
      hint: 'Schema 1 is deprecated and current pull clients refuse it: pull the image and push it again with a current docker, podman, skopeo or crane to get a schema 2 / OCI manifest.',
    },
  );
}

/**
 * The media type of a manifest document: its own `mediaType` field; else (OCI allows omitting it)
 * the fallback (the descriptor's type, or the Content-Type the upstream sent) when that is a
 * manifest type; else inferred from the document's shape.
 * Throws RegistrishError for schema 1, for bytes that are not a JSON object, and when the type
 * cannot be told.
 */
export function manifestMediaType(manifest: Buffer | Uint8Array | string | object, fallback?: string): string {
  const doc = toObject(manifest);
  const own = stripParams(asString(doc.mediaType));
  if (doc.schemaVersion === 1 || isSchema1Type(own)) throw schema1Error();
  if (own) return own;

  const fb = stripParams(fallback);
  if (isSchema1Type(fb)) throw schema1Error();
  // A generic label like application/json or application/octet-stream tells us nothing.
  if (fb && isKnownManifestType(fb)) return fb;

  // Docker v2 documents always carry mediaType, so a document without one is OCI.
  if (Array.isArray(doc.manifests)) return OCI_INDEX;
  if (doc.config && typeof doc.config === 'object' && Array.isArray(doc.layers)) return OCI_MANIFEST;

  throw new RegistrishError(
    `cannot tell the media type of a manifest: it has no "mediaType" field${fb ? `, was labelled "${fb}",` : ''} and is neither an index (manifests) nor an image manifest (config + layers)`,
  );
}

function asString(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

function toObject(manifest: Buffer | Uint8Array | string | object): Record<string, unknown> {
  let value: unknown = manifest;
  if (typeof manifest === 'string' || manifest instanceof Uint8Array) {
    const text = typeof manifest === 'string' ? manifest : Buffer.from(manifest).toString('utf8');
    try {
      value = JSON.parse(text);
    } catch {
      throw new RegistrishError('a manifest is not valid JSON');
    }
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw new RegistrishError('a manifest is not a JSON object');
  return value as Record<string, unknown>;
}
