import type { ImageSpec } from '../config/types.ts';
import type { Descriptor, ManifestDocument } from '../model/descriptor.ts';
import { assertSafeDigest, sha256 } from '../model/digest.ts';
import { isIndexType, isKnownManifestType, manifestMediaType, MAX_MANIFEST_BYTES } from '../model/media-types.ts';
import { formatPlatform, platformMatches, type PlatformFilter } from '../model/platform.ts';
import type { ImageSource } from '../sources/source.ts';
import type { ContentStore } from '../store/store.ts';
import { mapLimit } from '../util/concurrency.ts';
import { IntegrityError, NotFoundError, RegistrishError } from '../util/errors.ts';
import { shortDigest } from '../util/format.ts';
import { ATTACHMENT_KINDS, digestTag, type AttachmentContext } from './attachments/index.ts';
import { withContext } from './context.ts';
import { filterPlatforms, isAttestation } from './platform-filter.ts';
import { referrersIndex, referrerDescriptor } from './referrers-index.ts';
import { verifyImage } from './verify.ts';

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
/** Referrers of one manifest we mirror; more is a hostile or broken upstream, not an image's SBOMs. */
export const MAX_REFERRERS = 256;

export interface RepoPlan {
  name: string;
  /** tag → manifest digest */
  tags: Map<string, string>;
  /** digest → how to serve it */
  manifests: Map<string, { mediaType: string; size: number }>;
  /** digest → size */
  blobs: Map<string, number>;
  /**
   * Subject digest → its referrers index (an OCI index in the store), for every manifest whose
   * attachments were looked up; served at `/v2/<name>/referrers/<subject>`.
   */
  referrers: Map<string, { digest: string; size: number; count: number }>;
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
  /** Blobs this image references (config, layers, attestation blobs, attachments' blobs). */
  blobs: Set<string>;
  /** Attachments mirrored: cosign tags and referrers. */
  attachments: { tags: number; referrers: number };
  /** The key file whose signature let the image through the `verify` gate. */
  verifiedBy?: string;
  /** Things the user should know (logged as warnings), e.g. a `platforms` filter that had nothing to filter. */
  warnings: string[];
  /**
   * Its source is not for the public eye: read with credentials, or a path on the build machine
   * (`oci:`, archives). The pages and the `registry` data leave it out unless the site opts in.
   */
  privateSource: boolean;
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

interface TaggedManifest {
  digest: string;
  bytes: Buffer;
  mediaType?: string;
}

/** What every image of one build shares: the plan being filled, and lookups made once per build. */
interface BuildState {
  plan: Plan;
  options: PlanOptions;
  /** `<source label>:<tag>` → where it points (rejects with NotFoundError for a missing tag). */
  tags: Map<string, Promise<TaggedManifest>>;
  /** `<source label>@<subject>` → what is attached to it. */
  attachments: Map<string, Promise<{ tags: string[]; referrers: unknown[] }>>;
  /** The store held nothing when the build began (a first build): no HEAD can find a cached manifest. */
  firstBuild: Promise<boolean>;
}

export async function planImages(specs: ImageSpec[], options: PlanOptions): Promise<Plan> {
  const state: BuildState = {
    plan: { repos: new Map(), images: [], blobs: new Map(), skippedBlobs: [] },
    options,
    tags: new Map(),
    attachments: new Map(),
    firstBuild: options.store.isEmpty(),
  };
  state.plan.images = await mapLimit(specs, options.concurrency ?? 4, (spec) => {
    const resolver = new ImageResolver(spec, state);
    return withContext(resolver.context, resolver.resolve());
  });
  return state.plan;
}

function describe(spec: ImageSpec): string {
  return `images[${spec.index}] (${spec.source.original} → ${spec.name})`;
}

/** One images.json entry (one tag of a mirroring entry) resolved into the plan. */
class ImageResolver {
  readonly context: string;
  private readonly source: ImageSource;
  private readonly store: ContentStore;
  private readonly repo: RepoPlan;
  private readonly report: ImageReport;

  constructor(
    private readonly spec: ImageSpec,
    private readonly state: BuildState,
  ) {
    this.context = describe(spec);
    this.source = state.options.sourceFor(spec);
    this.store = state.options.store;
    this.repo = repoFor(state.plan, spec.name);
    this.report = {
      spec,
      digest: '',
      platforms: [],
      manifestsFetched: 0,
      manifestsCached: 0,
      blobs: new Set(),
      attachments: { tags: 0, referrers: 0 },
      warnings: [],
      privateSource: spec.source.kind !== 'registry',
    };
  }

  async resolve(): Promise<ImageReport> {
    const { spec, report } = this;
    // 1. The top-level manifest: by digest when pinned, else where the tag points now. Entries that
    //    share a source tag (a rename, a platform-filtered copy) resolve it once per build.
    const src = spec.source;
    const top: TaggedManifest = src.digest
      ? { digest: src.digest, ...(await this.manifestByDigest(src.digest)) }
      : await this.taggedManifest(src.tag ?? 'latest');

    // 2. The signature gate, before anything of the image is published.
    if (spec.verify) {
      report.verifiedBy = await verifyImage({
        subject: top.digest,
        tag: src.tag ?? spec.tags[0] ?? 'latest',
        spec,
        context: this.context,
        signature: await this.manifestAtTag(`${digestTag(top.digest)}.sig`),
        readPayload: (d) => this.readSmallBlob(d),
      });
    }

    // 3. Walk the tree: an index's children (filtered at the top level), each image's config and layers.
    const subjects: string[] = [];
    const published = await this.walk(top.digest, top.bytes, top.mediaType, 0, new Set(), subjects);
    report.digest = published.digest;
    this.publishTags(spec.tags, published.digest);

    // 4. What travels with it: signatures, attestations, SBOMs, referrers.
    if (spec.attachments) await this.attach(subjects, top.digest, published.digest);
    if (this.source.usedCredentials?.()) report.privateSource = true;
    return report;
  }

  private publishTags(tags: readonly string[], digest: string): void {
    for (const tag of tags) {
      const existing = this.repo.tags.get(tag);
      if (existing && existing !== digest) {
        throw new RegistrishError(`${this.context}: tag "${this.spec.name}:${tag}" is published by more than one entry`);
      }
      this.repo.tags.set(tag, digest);
    }
  }

  // ---- manifests, through the store: fetched only when their digest is new, verified before kept

  private async cachedManifest(digest: string, expectedSize?: number): Promise<Buffer | undefined> {
    assertSafeDigest(digest, this.context);
    const cached = await this.store.readSmall(digest, MAX_MANIFEST_BYTES);
    if (!cached) return undefined;
    if (expectedSize !== undefined && cached.length !== expectedSize) {
      throw new IntegrityError(`${this.context}: manifest ${digest} is ${cached.length} bytes, but its descriptor says ${expectedSize}`);
    }
    this.report.manifestsCached++;
    return cached;
  }

  private async fetchByDigest(digest: string, expectedSize?: number) {
    const got = await this.source.fetchManifest(digest);
    this.report.manifestsFetched++;
    if (expectedSize !== undefined && got.bytes.length !== expectedSize) {
      throw new IntegrityError(`${this.context}: manifest ${digest} is ${got.bytes.length} bytes, but its descriptor says ${expectedSize}`);
    }
    await this.store.putBytes(digest, got.bytes, `${this.context}: manifest ${digest}`);
    return got;
  }

  private async manifestByDigest(digest: string, expectedSize?: number, mediaTypeHint?: string) {
    const cached = await this.cachedManifest(digest, expectedSize);
    if (cached) return { bytes: cached, mediaType: mediaTypeHint };
    const got = await this.fetchByDigest(digest, expectedSize);
    return { bytes: got.bytes, mediaType: mediaTypeHint ?? got.mediaType };
  }

  /** Where a tag points now (once per build and source tag); rejects with NotFoundError when it does not exist. */
  private taggedManifest(tag: string): Promise<TaggedManifest> {
    const key = `${this.source.label}:${tag}`;
    let resolving = this.state.tags.get(key);
    if (!resolving) {
      resolving = (async () => {
        // A first build fetches a registry's tags at once: a HEAD could only tell what is not cached.
        const head = this.source.remote && (await this.state.firstBuild) ? undefined : await this.source.resolveTag(tag);
        // The usual warm case: the tag still points at a manifest the cache has.
        const cached = head && (await this.cachedManifest(head.digest));
        if (head && cached) return { digest: head.digest, bytes: cached, mediaType: head.mediaType };
        if (head?.exact) {
          const got = await this.fetchByDigest(head.digest, head.size);
          return { digest: head.digest, bytes: got.bytes, mediaType: head.mediaType ?? got.mediaType };
        }
        // Fetch by tag and name the content by its own hash: a HEAD's digest header is never trusted.
        const got = await this.source.fetchManifest(tag);
        this.report.manifestsFetched++;
        const digest = sha256(got.bytes);
        await this.store.putBytes(digest, got.bytes, `${this.context}: manifest for tag ${tag}`);
        return { digest, bytes: got.bytes, mediaType: got.mediaType ?? head?.mediaType };
      })();
      this.state.tags.set(key, resolving);
    }
    return resolving;
  }

  /** Like taggedManifest, but a tag that does not exist is undefined (attachments are optional). */
  private async manifestAtTag(tag: string): Promise<TaggedManifest | undefined> {
    try {
      return await this.taggedManifest(tag);
    } catch (err) {
      if (err instanceof NotFoundError) return undefined;
      throw err;
    }
  }

  /** A small blob (a config, a signature payload) into the store and back, refusing anything larger than `maxBytes`. */
  private async readSmallBlob(d: { digest: string; size: number }, maxBytes = MAX_MANIFEST_BYTES): Promise<Buffer> {
    assertSafeDigest(d.digest, this.context);
    if (!Number.isSafeInteger(d.size) || d.size < 0 || d.size > maxBytes) {
      throw new RegistrishError(`${this.context}: blob ${d.digest} is declared as ${d.size} bytes; refusing to read more than ${maxBytes} into memory`);
    }
    await this.store.ensureBlob(d.digest, d.size, (offset) => this.source.openBlob(d.digest, offset), { context: this.context });
    const bytes = await this.store.readSmall(d.digest, maxBytes);
    if (!bytes) throw new RegistrishError(`${this.context}: blob ${d.digest} vanished from the cache`);
    return bytes;
  }

  /** The os/architecture/variant a single-platform image's config declares (the config is fetched now). */
  private async configPlatform(config: Descriptor): Promise<PlatformFilter | undefined> {
    // A config too large to be a config says nothing we can read.
    if (config.size > MAX_MANIFEST_BYTES) return undefined;
    const bytes = await this.readSmallBlob(config);
    let doc: { os?: unknown; architecture?: unknown; variant?: unknown } | undefined;
    try {
      doc = bytes && JSON.parse(bytes.toString('utf8'));
    } catch {
      return undefined;
    }
    if (!doc || typeof doc.os !== 'string' || typeof doc.architecture !== 'string' || !doc.os || !doc.architecture) return undefined;
    return { os: doc.os, architecture: doc.architecture, ...(typeof doc.variant === 'string' && doc.variant ? { variant: doc.variant } : {}) };
  }

  // ---- the tree

  /**
   * Publishes a manifest and everything it references. `subjects` collects the manifests whose
   * attachments are looked up: the image's own (the top unless filtered, each platform manifest),
   * not buildx's attestation manifests.
   */
  private async walk(
    digest: string,
    bytes: Buffer,
    hint: string | undefined,
    depth: number,
    seen: Set<string>,
    subjects?: string[],
  ): Promise<{ digest: string; mediaType: string; size: number; doc: ManifestDocument }> {
    const { context, spec, report, repo } = this;
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
    const top = depth === 0 && subjects !== undefined;

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
      if (top && spec.platforms) {
        const kept = filterPlatforms(children, spec.platforms);
        if (kept.filter((d) => !isAttestation(d)).length === 0) {
          const available = children.filter((d) => d.platform?.os && d.platform?.architecture && !isAttestation(d)).map((d) => formatPlatform(d.platform!));
          throw new RegistrishError(`${context}: none of the platforms ${spec.platforms.map(formatPlatform).join(', ')} is in the index`, {
            hint: `Available: ${available.join(', ') || 'none'}. Fix "platforms" in images.json.`,
          });
        }
        if (kept.length !== children.length) {
          // A filtered copy: clients on dropped platforms then get "no matching manifest" instead of a 404.
          publishBytes = Buffer.from(JSON.stringify({ ...doc, manifests: kept }, null, 2));
          publishDigest = sha256(publishBytes);
          await this.store.putBytes(publishDigest, publishBytes, `${context}: filtered index`);
          report.filteredFrom = digest;
        }
        children = kept;
      }
      for (const child of children) {
        assertSafeDigest(child.digest, context);
        const got = await this.manifestByDigest(child.digest, child.size, child.mediaType);
        await this.walk(child.digest, got.bytes, got.mediaType ?? child.mediaType, depth + 1, seen);
        if (top && !isAttestation(child)) {
          subjects!.push(child.digest);
          if (child.platform?.os && child.platform?.architecture) report.platforms.push(formatPlatform(child.platform));
        }
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
          this.state.plan.skippedBlobs.push(d.digest);
          continue;
        }
        this.addBlob(d);
      }
      if (top && spec.platforms) {
        // A single-platform image: nothing to filter, but it must be one of the platforms asked for.
        const platform = await this.configPlatform(doc.config as Descriptor);
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
    if (top) subjects!.unshift(publishDigest);
    repo.manifests.set(publishDigest, { mediaType, size: publishBytes.length });
    return { digest: publishDigest, mediaType, size: publishBytes.length, doc };
  }

  private addBlob(d: Descriptor): void {
    const { plan, options } = this.state;
    this.repo.blobs.set(d.digest, d.size);
    this.report.blobs.add(d.digest);
    if (!plan.blobs.has(d.digest)) {
      const need = { digest: d.digest, size: d.size, source: this.source, context: this.context };
      plan.blobs.set(d.digest, need);
      options.onBlob?.(need);
    }
  }

  // ---- attachments

  /** What every attachment kind finds for `subject` at this source (once per build). */
  private lookUp(subject: string): Promise<{ tags: string[]; referrers: unknown[] }> {
    const key = `${this.source.label}@${subject}`;
    let found = this.state.attachments.get(key);
    if (!found) {
      const ctx: AttachmentContext = { source: this.source, manifestAtTag: (tag) => this.manifestAtTag(tag) };
      found = Promise.all(ATTACHMENT_KINDS.map((k) => k.find(subject, ctx))).then((all) => ({
        tags: all.flatMap((a) => a.tags),
        referrers: all.flatMap((a) => a.referrers),
      }));
      this.state.attachments.set(key, found);
    }
    return found;
  }

  /**
   * Mirrors the attachments of every subject, and writes each subject's referrers index. A
   * filtered index is a new digest that nothing upstream signs: it gets an empty referrers index,
   * and what was attached to the upstream index is reported, not published.
   */
  private async attach(subjects: string[], upstreamTop: string, publishedTop: string): Promise<void> {
    const { report, context } = this;
    if (publishedTop !== upstreamTop) {
      const lost = await this.lookUp(upstreamTop);
      if (lost.tags.length || lost.referrers.length) {
        report.warnings.push(
          `${context}: the platform filter made a new index (${shortDigest(publishedTop)}), so what is attached to the upstream index ` +
            `${shortDigest(upstreamTop)} (${[...lost.tags, ...(lost.referrers.length ? [`${lost.referrers.length} referrers`] : [])].join(', ')}) ` +
            'cannot carry over; the platform manifests keep theirs',
        );
      }
    }
    await mapLimit(subjects, 4, async (subject) => {
      const found = subject === publishedTop && publishedTop !== upstreamTop ? { tags: [], referrers: [] } : await this.lookUp(subject);
      for (const tag of found.tags) {
        const tagged = await this.manifestAtTag(tag);
        if (!tagged) continue;
        await this.walk(tagged.digest, tagged.bytes, tagged.mediaType, 1, new Set([subject]));
        this.publishTags([tag], tagged.digest);
        report.attachments.tags++;
      }
      if (found.referrers.length > MAX_REFERRERS) {
        throw new RegistrishError(`${context}: ${shortDigest(subject)} has ${found.referrers.length} referrers, more than the ${MAX_REFERRERS} registrish mirrors`);
      }
      const kept: Descriptor[] = [];
      for (const entry of found.referrers) {
        const desc = await this.referrer(subject, entry);
        if (desc) kept.push(desc);
      }
      const index = referrersIndex(kept);
      const digest = sha256(index);
      await this.store.putBytes(digest, index, `${context}: referrers index of ${subject}`);
      this.repo.referrers.set(subject, { digest, size: index.length, count: kept.length });
      if (kept.length) {
        // The referrers tag schema, for clients that do not know the API.
        this.repo.manifests.set(digest, { mediaType: 'application/vnd.oci.image.index.v1+json', size: index.length });
        this.publishTags([digestTag(subject)], digest);
      }
      report.attachments.referrers += kept.length;
    });
  }

  /**
   * One listed referrer: fetched by digest and published when it is a manifest whose `subject` is
   * really `subject`; skipped with a warning otherwise (a stale or hostile listing must not add
   * unrelated content, nor fail an image that is fine).
   */
  private async referrer(subject: string, entry: unknown): Promise<Descriptor | undefined> {
    const { context } = this;
    const e = entry as Partial<Descriptor> | null;
    if (!e || typeof e !== 'object' || typeof e.digest !== 'string' || !Number.isSafeInteger(e.size)) {
      this.report.warnings.push(`${context}: a referrer of ${shortDigest(subject)} is not a descriptor; skipped`);
      return undefined;
    }
    assertSafeDigest(e.digest, context);
    if (typeof e.mediaType === 'string' && !isKnownManifestType(e.mediaType)) {
      this.report.warnings.push(`${context}: referrer ${shortDigest(e.digest)} of ${shortDigest(subject)} is a ${e.mediaType}, which clients cannot pull; skipped`);
      return undefined;
    }
    const got = await this.manifestByDigest(e.digest, e.size, e.mediaType);
    // Checked before anything of it is published.
    if (parseManifest(got.bytes, `${context}: referrer ${e.digest}`).subject?.digest !== subject) {
      this.report.warnings.push(`${context}: listed as a referrer of ${shortDigest(subject)}, ${shortDigest(e.digest)} names another subject; skipped`);
      return undefined;
    }
    const walked = await this.walk(e.digest, got.bytes, got.mediaType ?? e.mediaType, 1, new Set([subject]));
    return referrerDescriptor(walked);
  }
}

function repoFor(plan: Plan, name: string): RepoPlan {
  let repo = plan.repos.get(name);
  if (!repo) {
    repo = { name, tags: new Map(), manifests: new Map(), blobs: new Map(), referrers: new Map() };
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
