import type { ImageSpec } from '../config/types.ts';
import type { Descriptor, ManifestDocument } from '../model/descriptor.ts';
import { isIndexType, manifestMediaType, MAX_MANIFEST_BYTES } from '../model/media-types.ts';
import { formatPlatform } from '../model/platform.ts';
import { digestTag } from '../resolve/attachments/index.ts';
import type { Plan, RepoPlan } from '../resolve/plan.ts';
import { isAttestation } from '../resolve/platform-filter.ts';
import type { ContentStore } from '../store/store.ts';
import { compareStrings } from '../util/format.ts';
import type { ImageInfo, LayerData, PlatformData, RegistryData, RepositoryData, TagData } from './types.ts';

// The plan as plain data for templates: every repository, tag and platform, with what the image
// configs say (created, labels) and the well-known OCI annotations. Manifests come from the store
// (the plan put them there); image configs are fetched ahead of the layers, since pages need them
// before the blobs are in.

export interface CatalogInput {
  plan: Plan;
  store: ContentStore;
  /** Makes sure these blobs are in the store (the image configs), ahead of any other download. */
  blobsNow(digests: Iterable<string>): Promise<void>;
}

export interface CatalogOptions {
  /** `host[:port]` for pull commands, when known at build time. */
  host?: string;
  /** Where the default pages live (`/images/`); undefined: no pages, no URLs. */
  pagesPath?: string;
  /** For `generated` (tests pin it). */
  now?: Date;
}

/** The OCI annotation keys of ImageInfo (the same keys are used as image labels). */
const INFO_KEYS: Record<keyof ImageInfo, string> = {
  title: 'org.opencontainers.image.title',
  description: 'org.opencontainers.image.description',
  source: 'org.opencontainers.image.source',
  licenses: 'org.opencontainers.image.licenses',
  version: 'org.opencontainers.image.version',
  revision: 'org.opencontainers.image.revision',
  url: 'org.opencontainers.image.url',
};

interface ImageConfig {
  created?: unknown;
  os?: unknown;
  architecture?: unknown;
  variant?: unknown;
  config?: { Labels?: unknown } | null;
  history?: Array<{ created_by?: unknown; empty_layer?: unknown }>;
}

export async function buildRegistryData(input: CatalogInput, options: CatalogOptions = {}): Promise<RegistryData> {
  const { plan, store } = input;
  const manifests = new Map<string, ManifestDocument | undefined>();
  const manifest = async (digest: string): Promise<ManifestDocument | undefined> => {
    if (!manifests.has(digest)) {
      const bytes = await store.readSmall(digest, MAX_MANIFEST_BYTES);
      manifests.set(digest, bytes ? (JSON.parse(bytes.toString('utf8')) as ManifestDocument) : undefined);
    }
    return manifests.get(digest);
  };

  // Every image manifest of every published tag, and its config, fetched in one go.
  const userTags = userTagsByRepo(plan);
  const images = new Map<string, ImageManifest[]>();
  for (const repo of plan.repos.values()) {
    for (const tag of userTags.get(repo.name) ?? []) {
      const digest = repo.tags.get(tag)!;
      if (images.has(digest)) continue;
      images.set(digest, await imageManifests(repo, digest, manifest));
    }
  }
  const configs = [...images.values()].flatMap((list) => list.map((i) => i.doc.config).filter((c): c is Descriptor => !!c?.digest));
  await input.blobsNow(configs.map((c) => c.digest));
  const configOf = new Map<string, ImageConfig>();
  for (const c of configs) {
    if (configOf.has(c.digest)) continue;
    const bytes = c.size <= MAX_MANIFEST_BYTES ? await store.readSmall(c.digest, MAX_MANIFEST_BYTES) : undefined;
    let doc: ImageConfig = {};
    try {
      doc = bytes ? (JSON.parse(bytes.toString('utf8')) as ImageConfig) : {};
    } catch {
      // Not JSON (an artifact's config): nothing to show from it.
    }
    configOf.set(c.digest, doc && typeof doc === 'object' ? doc : {});
  }

  const entries = entryOf(plan);
  const repositories: RepositoryData[] = [];
  for (const repo of [...plan.repos.values()].sort((a, b) => compareStrings(a.name, b.name))) {
    const repoUrl = options.pagesPath === undefined ? undefined : `${options.pagesPath}${repo.name}/`;
    const tags: TagData[] = [];
    for (const tag of userTags.get(repo.name) ?? []) {
      const digest = repo.tags.get(tag)!;
      const meta = repo.manifests.get(digest)!;
      const top = (await manifest(digest)) ?? {};
      const platforms = (images.get(digest) ?? []).map((i) => platformData(i, configOf.get(i.doc.config?.digest ?? '') ?? {}));
      const annotations = stringRecord(top.annotations);
      const labels = platforms[0]?.labels ?? {};
      const info: ImageInfo = {};
      for (const [k, key] of Object.entries(INFO_KEYS) as Array<[keyof ImageInfo, string]>) {
        const v = annotations[key] ?? platforms.map((p) => p.annotations[key]).find(Boolean) ?? labels[key];
        if (v) info[k] = v;
      }
      const created = platforms.map((p) => p.created).filter((c): c is string => !!c).sort().at(-1);
      const digests = [digest, ...platforms.map((p) => p.digest)];
      const spec = entries.get(`${repo.name}:${tag}`);
      tags.push({
        name: tag,
        // One page per manifest: tags that point at the same image share it.
        ...(repoUrl ? { url: `${repoUrl}manifests/${digestTag(digest)}/` } : {}),
        digest,
        mediaType: meta.mediaType,
        index: isIndexType(meta.mediaType),
        platforms,
        ...(created ? { created } : {}),
        annotations,
        info,
        entry: spec
          ? { index: spec.index, source: spec.source.original, name: spec.name, tags: spec.tags, ...(spec.platforms ? { platforms: spec.platforms.map(formatPlatform) } : {}) }
          : { index: -1, source: '', name: repo.name, tags: [tag] },
        attachments: {
          tags: [...repo.tags.keys()].filter((t) => digests.some((d) => t.startsWith(`${digestTag(d)}.`))).sort(compareStrings),
          referrers: digests.reduce((n, d) => n + (repo.referrers.get(d)?.count ?? 0), 0),
        },
      });
    }
    // Newest first; undated images after dated ones, by name.
    tags.sort((a, b) => (b.created ?? '').localeCompare(a.created ?? '') || compareStrings(a.name, b.name));
    const newest = tags[0];
    const updated = tags.map((t) => t.created).filter((c): c is string => !!c).sort().at(-1);
    repositories.push({
      name: repo.name,
      ...(repoUrl ? { url: repoUrl } : {}),
      ...(newest?.info.description ? { description: newest.info.description } : {}),
      tags,
      platforms: [...new Set(tags.flatMap((t) => t.platforms.map((p) => p.platform)))].sort(compareStrings),
      size: Math.max(0, ...(newest?.platforms.map((p) => p.size) ?? [])),
      publishedBytes: [...repo.blobs.values()].reduce((n, s) => n + s, 0),
      ...(updated ? { updated } : {}),
    });
  }
  return {
    ...(options.host ? { host: options.host } : {}),
    ...(options.pagesPath !== undefined ? { pagesPath: options.pagesPath } : {}),
    generated: (options.now ?? new Date()).toISOString(),
    repositories,
  };
}

/** The tags images.json asked for, per repository (not the attachments' own tags). */
function userTagsByRepo(plan: Plan): Map<string, string[]> {
  const out = new Map<string, Set<string>>();
  for (const r of plan.images) {
    let set = out.get(r.spec.name);
    if (!set) out.set(r.spec.name, (set = new Set()));
    for (const t of r.spec.tags) set.add(t);
  }
  return new Map([...out].map(([name, set]) => [name, [...set].sort(compareStrings)]));
}

function entryOf(plan: Plan): Map<string, ImageSpec> {
  const out = new Map<string, ImageSpec>();
  for (const r of plan.images) for (const t of r.spec.tags) out.set(`${r.spec.name}:${t}`, r.spec);
  return out;
}

/** One image manifest behind a tag, with the platform its index entry declares (if any). */
interface ImageManifest {
  digest: string;
  doc: ManifestDocument;
  mediaType: string;
  platform?: Descriptor['platform'];
}

/** The image manifests behind a tag: the manifest itself, or an index's platform entries (not attestations). */
async function imageManifests(repo: RepoPlan, digest: string, manifest: (d: string) => Promise<ManifestDocument | undefined>): Promise<ImageManifest[]> {
  const top = await manifest(digest);
  if (!top) return [];
  const mediaType = repo.manifests.get(digest)?.mediaType ?? manifestMediaType(top);
  if (!isIndexType(mediaType)) return [{ digest, doc: top, mediaType }];
  const out: ImageManifest[] = [];
  for (const child of (top.manifests ?? []).filter((c) => c && !isAttestation(c))) {
    const doc = await manifest(child.digest);
    const childType = repo.manifests.get(child.digest)?.mediaType;
    if (!doc || !childType || isIndexType(childType)) continue;
    out.push({ digest: child.digest, doc, mediaType: childType, platform: child.platform });
  }
  return out;
}

function platformData(image: ImageManifest, config: ImageConfig): PlatformData {
  const { doc, mediaType, platform: fromIndex } = image;
  const str = (v: unknown): string | undefined => (typeof v === 'string' && v ? v : undefined);
  const os = str(fromIndex?.os) ?? str(config.os) ?? 'unknown';
  const architecture = str(fromIndex?.architecture) ?? str(config.architecture) ?? 'unknown';
  const variant = str(fromIndex?.variant) ?? (fromIndex ? undefined : str(config.variant));
  const layersDocs = Array.isArray(doc.layers) ? doc.layers : [];
  // History entries that made a layer, in order (empty_layer ones made none).
  const history = (Array.isArray(config.history) ? config.history : []).filter((h) => h && !h.empty_layer);
  const layers: LayerData[] = layersDocs.map((l, i) => {
    const createdBy = str(history[i]?.created_by);
    return { digest: l.digest, size: l.size, mediaType: l.mediaType, ...(createdBy ? { createdBy } : {}) };
  });
  const cfg = doc.config ?? { digest: '', size: 0, mediaType: '' };
  const created = str(config.created);
  return {
    platform: formatPlatform({ os, architecture, ...(variant ? { variant } : {}) }),
    os,
    architecture,
    ...(variant ? { variant } : {}),
    digest: image.digest,
    mediaType,
    size: cfg.size + layers.reduce((n, l) => n + l.size, 0),
    config: { digest: cfg.digest, size: cfg.size, mediaType: cfg.mediaType },
    layers,
    ...(created ? { created } : {}),
    labels: stringRecord(config.config?.Labels),
    annotations: stringRecord(doc.annotations),
  };
}

function stringRecord(v: unknown): Record<string, string> {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return {};
  return Object.fromEntries(Object.entries(v).filter(([, x]) => typeof x === 'string')) as Record<string, string>;
}
