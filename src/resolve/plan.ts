import type { ImageSpec } from '../config/types.ts';
import type { Descriptor, ManifestDocument } from '../model/descriptor.ts';
import { assertSafeDigest, sha256 } from '../model/digest.ts';
import { isIndexType, isKnownManifestType, manifestMediaType, MAX_MANIFEST_BYTES } from '../model/media-types.ts';
import { formatPlatform, platformMatches, type PlatformFilter } from '../model/platform.ts';
import type { ImageSource } from '../sources/source.ts';
import type { ContentStore } from '../store/store.ts';
import { mapLimit } from '../util/concurrency.ts';
import { IntegrityError, RegistrishError } from '../util/errors.ts';
import { shortDigest } from '../util/format.ts';
import { withContext } from './context.ts';
import { filterPlatforms, isAttestation } from './platform-filter.ts';

// From validated images.json entries to a plan: which tags point at which manifests, and which
// blobs every repository needs. Manifests are read through the content store (fetched at most
// once, verified before they are kept); blobs are listed here and handed to a BlobFetcher.

/** Indexes nest rarely (an index of indexes); anything deeper is a broken or hostile upstream. */
const MAX_DEPTH = 4;
/**
 * Entries of one index. Real ones list tens (platforms plus their attestations); each entry costs
 * a manifest request, so a hostile index of ~30 000 entries (what fits in 4 MiB) would be a
 * request storm rather than an image.
 */
export const MAX_INDEX_ENTRIES = 1024;

export interface RepoPlan {
  name: string;
  /** tag → manifest digest */
  tags: Map<string, string>;
  /** digest → how to serve it */
  manifests: Map<string, { mediaType: string; size: number }>;
  /** digest → size */
  blobs: Map<string, number>;
}

export interface BlobNeed {
  digest: string;
  size: number;
  source: ImageSource;
  /** For messages: the image that first asked for it. */
  context: string;
}

export interface ImageReport {
  spec: ImageSpec;
  /** Digest published under the tags. */
  digest: string;
  /** When a platform filter dropped entries: the upstream index digest the published one was made from. */
  filteredFrom?: string;
  /** Platforms published (empty for a single-platform manifest whose platform lives only in its config). */
  platforms: string[];
  manifestsFetched: number;
  manifestsCached: number;
  /** Blobs this image references (config, layers, attestation blobs). */
  blobs: Set<string>;
  /** Things the user should know (logged as warnings), e.g. a `platforms` filter that had nothing to filter. */
  warnings: string[];
}

export interface Plan {
  repos: Map<string, RepoPlan>;
  images: ImageReport[];
  blobs: Map<string, BlobNeed>;
  /** Foreign / non-distributable layers that were listed but not mirrored. */
  skippedBlobs: string[];
}

export interface PlanOptions {
  store: ContentStore;
  sourceFor: (spec: ImageSpec) => ImageSource;
  /** Images resolved at the same time. */
  concurrency?: number;
  /** Called once per new blob as soon as it is known (to start its download). */
  onBlob?: (need: BlobNeed) => void;
}

export async function planImages(specs: ImageSpec[], options: PlanOptions): Promise<Plan> {
  const plan: Plan = { repos: new Map(), images: [], blobs: new Map(), skippedBlobs: [] };
  const resolvedTags = new Map<string, Promise<TopManifest>>();
  const reports = await mapLimit(specs, options.concurrency ?? 4, (spec) =>
    withContext(describe(spec), planImage(spec, plan, options, resolvedTags)),
  );
  plan.images = reports;
  return plan;
}

function describe(spec: ImageSpec): string {
  return `images[${spec.index}] (${spec.source.original} → ${spec.name})`;
}

interface TopManifest {
  digest: string;
  bytes: Buffer;
  mediaType?: string;
}

async function planImage(
  spec: ImageSpec,
  plan: Plan,
  options: PlanOptions,
  resolvedTags: Map<string, Promise<TopManifest>>,
): Promise<ImageReport> {
  const { store } = options;
  const source = options.sourceFor(spec);
  const context = describe(spec);
  const report: ImageReport = { spec, digest: '', platforms: [], manifestsFetched: 0, manifestsCached: 0, blobs: new Set(), warnings: [] };
  const repo = repoFor(plan, spec.name);

  // Manifests are read through the store: fetched only when their digest is new, verified before kept.
  const cachedManifest = async (digest: string, expectedSize?: number): Promise<Buffer | undefined> => {
    assertSafeDigest(digest, context);
    const cached = await store.readSmall(digest, MAX_MANIFEST_BYTES);
    if (!cached) return undefined;
    if (expectedSize !== undefined && cached.length !== expectedSize) {
      throw new IntegrityError(`${context}: manifest ${digest} is ${cached.length} bytes, but its descriptor says ${expectedSize}`);
    }
    report.manifestsCached++;
    return cached;
  };
  const fetchByDigest = async (digest: string, expectedSize?: number) => {
    const got = await source.fetchManifest(digest);
    report.manifestsFetched++;
    if (expectedSize !== undefined && got.bytes.length !== expectedSize) {
      throw new IntegrityError(
        `${context}: manifest ${digest} is ${got.bytes.length} bytes, but its descriptor says ${expectedSize}`,
      );
    }
    await store.putBytes(digest, got.bytes, `${context}: manifest ${digest}`);
    return got;
  };
  const manifestByDigest = async (digest: string, expectedSize?: number, mediaTypeHint?: string) => {
    const cached = await cachedManifest(digest, expectedSize);
    if (cached) return { bytes: cached, mediaType: mediaTypeHint };
    const got = await fetchByDigest(digest, expectedSize);
    return { bytes: got.bytes, mediaType: mediaTypeHint ?? got.mediaType };
  };

  /** The os/architecture/variant a single-platform image's config declares (the config is fetched now). */
  const configPlatform = async (config: Descriptor): Promise<PlatformFilter | undefined> => {
    assertSafeDigest(config.digest, context);
    await store.ensureBlob(config.digest, config.size, (offset) => source.openBlob(config.digest, offset), { context });
    const bytes = await store.readSmall(config.digest, MAX_MANIFEST_BYTES).catch(() => undefined);
    let doc: { os?: unknown; architecture?: unknown; variant?: unknown } | undefined;
    try {
      doc = bytes && JSON.parse(bytes.toString('utf8'));
    } catch {
      return undefined;
    }
    if (!doc || typeof doc.os !== 'string' || typeof doc.architecture !== 'string' || !doc.os || !doc.architecture) return undefined;
    return { os: doc.os, architecture: doc.architecture, ...(typeof doc.variant === 'string' && doc.variant ? { variant: doc.variant } : {}) };
  };

  // 1. The top-level manifest: by digest when pinned, else where the tag points now. Entries that
  //    share a source tag (a rename, a platform-filtered copy) resolve it once per build.
  let top: TopManifest;
  const src = spec.source;
  if (src.digest) {
    top = { digest: src.digest, ...(await manifestByDigest(src.digest)) };
  } else {
    const tag = src.tag ?? 'latest';
    const key = `${source.label}:${tag}`;
    let resolving = resolvedTags.get(key);
    if (!resolving) {
      resolving = (async () => {
        const head = await source.resolveTag(tag);
        // The usual warm case: the tag still points at a manifest the cache has.
        const cached = head && (await cachedManifest(head.digest));
        if (head && cached) return { digest: head.digest, bytes: cached, mediaType: head.mediaType };
        if (head?.exact) {
          const got = await fetchByDigest(head.digest, head.size);
          return { digest: head.digest, bytes: got.bytes, mediaType: head.mediaType ?? got.mediaType };
        }
        // Fetch by tag and name the content by its own hash: a HEAD's digest header is never trusted.
        const got = await source.fetchManifest(tag);
        report.manifestsFetched++;
        const digest = sha256(got.bytes);
        await store.putBytes(digest, got.bytes, `${context}: manifest for tag ${tag}`);
        return { digest, bytes: got.bytes, mediaType: got.mediaType ?? head?.mediaType };
      })();
      resolvedTags.set(key, resolving);
    }
    top = await resolving;
  }

  // 2. Walk the tree: an index's children (filtered at the top level), each image's config and layers.
  const walk = async (
    digest: string,
    bytes: Buffer,
    hint: string | undefined,
    depth: number,
    seen: Set<string>,
  ): Promise<{ digest: string; mediaType: string; size: number }> => {
    if (depth > MAX_DEPTH) throw new RegistrishError(`${context}: manifests nest deeper than ${MAX_DEPTH} levels`);
    if (seen.has(digest)) throw new RegistrishError(`${context}: manifest ${digest} refers to itself (a cycle)`);
    seen = new Set(seen).add(digest);
    const doc = parseManifest(bytes, `${context}: manifest ${digest}`);
    const mediaType = manifestMediaType(doc, hint);
    if (!isKnownManifestType(mediaType)) {
      // It becomes a Content-Type on our site: only the four manifest types ever do.
      throw new RegistrishError(`${context}: manifest ${digest} has media type "${mediaType}", which is not a manifest type`);
    }
    let publishDigest = digest;
    let publishBytes = bytes;

    if (isIndexType(mediaType)) {
      let children = (doc.manifests ?? []) as Descriptor[];
      if (!Array.isArray(children)) throw new RegistrishError(`${context}: index ${digest} has no manifests list`);
      if (children.length > MAX_INDEX_ENTRIES) {
        throw new RegistrishError(`${context}: index ${digest} lists ${children.length} manifests, more than the ${MAX_INDEX_ENTRIES} registrish accepts`);
      }
      // Entries are untrusted JSON: a null or a number must be an error, not a TypeError.
      if (children.some((c) => !c || typeof c !== 'object' || Array.isArray(c))) {
        throw new RegistrishError(`${context}: index ${digest} lists an entry that is not a descriptor object`);
      }
      if (depth === 0 && spec.platforms) {
        const kept = filterPlatforms(children, spec.platforms);
        if (kept.filter((d) => !isAttestation(d)).length === 0) {
          const available = children.filter((d) => d.platform?.os && d.platform?.architecture && !isAttestation(d)).map((d) => formatPlatform(d.platform!));
          throw new RegistrishError(
            `${context}: none of the platforms ${spec.platforms.map(formatPlatform).join(', ')} is in the index`,
            { hint: `Available: ${available.join(', ') || 'none'}. Fix "platforms" in images.json.` },
          );
        }
        if (kept.length !== children.length) {
          // A filtered copy: clients on dropped platforms then get "no matching manifest" instead of a 404.
          publishBytes = Buffer.from(JSON.stringify({ ...doc, manifests: kept }, null, 2));
          publishDigest = sha256(publishBytes);
          await store.putBytes(publishDigest, publishBytes, `${context}: filtered index`);
          report.filteredFrom = digest;
        }
        children = kept;
      }
      for (const child of children) {
        assertSafeDigest(child.digest, context);
        const got = await manifestByDigest(child.digest, child.size, child.mediaType);
        await walk(child.digest, got.bytes, got.mediaType ?? child.mediaType, depth + 1, seen);
        if (depth === 0 && child.platform?.os && child.platform?.architecture && !isAttestation(child)) report.platforms.push(formatPlatform(child.platform));
      }
    } else {
      // Checked before spreading: `layers` from upstream may be any JSON value.
      if (!doc.config || !Array.isArray(doc.layers)) {
        throw new RegistrishError(`${context}: manifest ${digest} (${mediaType}) has no config or layers`);
      }
      const descriptors = [doc.config, ...doc.layers].filter(Boolean) as Descriptor[];
      for (const d of descriptors) {
        assertSafeDigest(d.digest, context);
        if (!Number.isSafeInteger(d.size) || d.size < 0) {
          throw new RegistrishError(`${context}: manifest ${digest} lists blob ${d.digest} with an invalid size`);
        }
        if (d.urls?.length && /foreign|nondistributable/.test(d.mediaType)) {
          // Windows base layers live at Microsoft's URLs; clients fetch them from there.
          plan.skippedBlobs.push(d.digest);
          continue;
        }
        repo.blobs.set(d.digest, d.size);
        report.blobs.add(d.digest);
        if (!plan.blobs.has(d.digest)) {
          const need = { digest: d.digest, size: d.size, source, context };
          plan.blobs.set(d.digest, need);
          options.onBlob?.(need);
        }
      }
      if (depth === 0 && spec.platforms) {
        // A single-platform image: nothing to filter, but it must be one of the platforms asked for.
        const platform = await configPlatform(doc.config as Descriptor);
        if (!platform) {
          report.warnings.push(`${context}: "platforms" not checked: the config of ${shortDigest(digest)} names no os/architecture; published as it is`);
        } else if (!spec.platforms.some((f) => platformMatches(f, platform))) {
          throw new RegistrishError(
            `${context}: ${shortDigest(digest)} is a single-platform image for ${formatPlatform(platform)}, which is not in "platforms" (${spec.platforms.map(formatPlatform).join(', ')})`,
            { hint: 'Fix "platforms" in images.json, or point "source" at an index (a multi-platform tag) or at the image of the platform you want.' },
          );
        }
      }
    }
    repo.manifests.set(publishDigest, { mediaType, size: publishBytes.length });
    return { digest: publishDigest, mediaType, size: publishBytes.length };
  };

  const published = await walk(top.digest, top.bytes, top.mediaType, 0, new Set());
  report.digest = published.digest;
  for (const tag of spec.tags) {
    const existing = repo.tags.get(tag);
    if (existing && existing !== published.digest) {
      throw new RegistrishError(`${context}: tag "${spec.name}:${tag}" is published by more than one entry`);
    }
    repo.tags.set(tag, published.digest);
  }
  return report;
}

function repoFor(plan: Plan, name: string): RepoPlan {
  let repo = plan.repos.get(name);
  if (!repo) {
    repo = { name, tags: new Map(), manifests: new Map(), blobs: new Map() };
    plan.repos.set(name, repo);
  }
  return repo;
}

function parseManifest(bytes: Buffer, what: string): ManifestDocument {
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new RegistrishError(`${what} is not valid JSON (${(err as Error).message})`);
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw new RegistrishError(`${what} is not a JSON object`);
  return doc as ManifestDocument;
}

