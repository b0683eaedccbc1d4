import type { ImageSpec } from '../config/types.ts';
import { classifyManifest, HELM_CHART_LAYER, kindOfIndex, TITLE_ANNOTATION, type ArtifactKind } from '../model/artifact-kind.ts';
import type { Descriptor, ManifestDocument } from '../model/descriptor.ts';
import { isIndexType, manifestMediaType, MAX_MANIFEST_BYTES } from '../model/media-types.ts';
import { formatPlatform } from '../model/platform.ts';
import { digestTag } from '../resolve/attachments/index.ts';
import type { Plan, RepoPlan } from '../resolve/plan.ts';
import { isAttestation } from '../resolve/platform-filter.ts';
import type { ContentStore } from '../store/store.ts';
import { compareStrings } from '../util/format.ts';
import semver from 'semver';
import { readChartFiles, MAX_CHART_ARCHIVE_BYTES } from './helm-chart.ts';
import type { ArtifactData, HelmChartData, ImageInfo, LayerData, PlatformData, RegistryData, RepositoryData, TagData } from './types.ts';

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
  /** Where the classic Helm repository lives (`/charts/`), when it is on. */
  helmRepositoryPath?: string;
  /** Name sources read with credentials or from the build machine too (off: they are left out). */
  showPrivateSources?: boolean;
  /** What the data leaves out and why (a chart archive too large to read), for the build's log. */
  warn?: (message: string) => void;
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
    configOf.set(c.digest, doc && typeof doc === 'object' && !Array.isArray(doc) ? doc : {});
  }
  // Charts' archives, for their README and values: small, so fetched ahead of the layers too.
  const chartLayers = [...images.values()].flatMap((list) => list.flatMap((i) => (classifyManifest(i.doc) === 'helm-chart' ? [chartLayer(i.doc)].filter((l): l is Descriptor => !!l) : [])));
  await input.blobsNow(chartLayers.filter((l) => l.size <= MAX_CHART_ARCHIVE_BYTES).map((l) => l.digest));
  const chartFiles = new Map<string, Awaited<ReturnType<typeof readChartFiles>>>();
  for (const l of chartLayers) if (!chartFiles.has(l.digest)) chartFiles.set(l.digest, await readChartFiles(store.pathFor(l.digest), l.size));

  const entries = entryOf(plan);
  const warned = new Set<string>();
  const repositories: RepositoryData[] = [];
  for (const repo of [...plan.repos.values()].sort((a, b) => compareStrings(a.name, b.name))) {
    const repoUrl = options.pagesPath === undefined ? undefined : `${options.pagesPath}${repo.name}/`;
    const tags: TagData[] = [];
    for (const tag of userTags.get(repo.name) ?? []) {
      const digest = repo.tags.get(tag)!;
      const meta = repo.manifests.get(digest)!;
      const top = (await manifest(digest)) ?? {};
      const manifestsOf = images.get(digest) ?? [];
      const kinds = manifestsOf.map((i) => classifyManifest(i.doc));
      const kind: ArtifactKind = isIndexType(meta.mediaType) ? kindOfIndex(kinds) : (kinds[0] ?? 'artifact');
      const first = manifestsOf.find((_, i) => kinds[i] === kind) ?? manifestsOf[0];
      // Only a container image has platforms: an artifact's config is not an image config.
      const platforms = kind === 'image' ? manifestsOf.map((i) => platformData(i, configOf.get(i.doc.config?.digest ?? '') ?? {})) : [];
      const artifact = kind !== 'image' && first ? artifactData(first) : undefined;
      let chart: HelmChartData | undefined;
      if (kind === 'helm-chart' && first) {
        const layer = chartLayer(first.doc);
        chart = chartData((configOf.get(first.doc.config?.digest ?? '') ?? {}) as Record<string, unknown>, layer, layer ? chartFiles.get(layer.digest) : undefined, repo.name);
        if (chart.skipped && !warned.has(`${repo.name}@${chart.archive.digest}`)) {
          warned.add(`${repo.name}@${chart.archive.digest}`);
          options.warn?.(`${repo.name}:${tag} (Helm chart): ${chart.skipped}; its page shows the chart's metadata only`);
        }
      }
      const annotations = stringRecord(top.annotations);
      const labels = platforms[0]?.labels ?? {};
      const info: ImageInfo = {};
      for (const [k, key] of Object.entries(INFO_KEYS) as Array<[keyof ImageInfo, string]>) {
        const v = annotations[key] ?? platforms.map((p) => p.annotations[key]).find(Boolean) ?? labels[key];
        if (v) info[k] = v;
      }
      const created = platforms.map((p) => p.created).filter((c): c is string => !!c).sort().at(-1);
      const digests = [digest, ...manifestsOf.map((i) => i.digest)];
      const { spec, privateSource } = entries.get(`${repo.name}:${tag}`) ?? {};
      const showSource = spec && (!privateSource || options.showPrivateSources);
      tags.push({
        name: tag,
        // One page per manifest: tags that point at the same image share it.
        ...(repoUrl ? { url: `${repoUrl}manifests/${digestTag(digest)}/` } : {}),
        digest,
        mediaType: meta.mediaType,
        index: isIndexType(meta.mediaType),
        kind,
        platforms,
        ...(artifact ? { artifact } : {}),
        ...(chart ? { chart } : {}),
        ...(created ? { created } : {}),
        annotations,
        info,
        entry: spec
          ? {
              index: spec.index,
              ...(showSource ? { source: spec.source.original } : {}),
              private: !!privateSource,
              name: spec.name,
              tags: spec.tags,
              ...(spec.platforms ? { platforms: spec.platforms.map(formatPlatform) } : {}),
            }
          : { index: -1, private: false, name: repo.name, tags: [tag] },
        attachments: {
          tags: [...repo.tags.keys()].filter((t) => digests.some((d) => t.startsWith(`${digestTag(d)}.`))).sort(compareStrings),
          referrers: digests.reduce((n, d) => n + (repo.referrers.get(d)?.count ?? 0), 0),
        },
      });
    }
    // Newest first; undated images after dated ones: highest version first (charts carry no date), then by name.
    tags.sort((a, b) => (b.created ?? '').localeCompare(a.created ?? '') || byVersion(a, b) || compareStrings(a.name, b.name));
    const newest = tags[0];
    const updated = tags.map((t) => t.created).filter((c): c is string => !!c).sort().at(-1);
    const description = newest?.info.description ?? newest?.chart?.description;
    repositories.push({
      name: repo.name,
      kind: newest?.kind ?? 'image',
      ...(repoUrl ? { url: repoUrl } : {}),
      ...(description ? { description } : {}),
      tags,
      platforms: [...new Set(tags.flatMap((t) => t.platforms.map((p) => p.platform)))].sort(compareStrings),
      size: Math.max(0, ...(newest?.platforms.map((p) => p.size) ?? []), newest?.artifact?.size ?? 0),
      publishedBytes: [...repo.blobs.values()].reduce((n, s) => n + s, 0),
      ...(updated ? { updated } : {}),
    });
  }
  const charts = repositories.some((r) => r.tags.some((t) => t.chart?.archive.digest));
  return {
    ...(options.host ? { host: options.host } : {}),
    ...(options.pagesPath !== undefined ? { pagesPath: options.pagesPath } : {}),
    ...(charts && options.helmRepositoryPath ? { helmRepository: { url: options.helmRepositoryPath, index: `${options.helmRepositoryPath}index.yaml` } } : {}),
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

function entryOf(plan: Plan): Map<string, { spec: ImageSpec; privateSource: boolean }> {
  const out = new Map<string, { spec: ImageSpec; privateSource: boolean }>();
  for (const r of plan.images) for (const t of r.spec.tags) out.set(`${r.spec.name}:${t}`, { spec: r.spec, privateSource: r.privateSource });
  return out;
}

/** Higher version first, when both tags (or their charts) are versions; 0 otherwise. */
function byVersion(a: TagData, b: TagData): number {
  const v = (t: TagData) => semver.valid(t.chart?.version ?? t.name.replace(/_/gu, '+'), { loose: true });
  const va = v(a);
  const vb = v(b);
  return va && vb ? semver.rcompare(va, vb, { loose: true }) : 0;
}

/** The chart archive of a Helm chart manifest. */
function chartLayer(doc: ManifestDocument): Descriptor | undefined {
  return (Array.isArray(doc.layers) ? doc.layers : []).find((l) => l && l.mediaType === HELM_CHART_LAYER && typeof l.digest === 'string');
}

function artifactData(image: ImageManifest): ArtifactData {
  const { doc } = image;
  const configMediaType = typeof doc.config?.mediaType === 'string' ? doc.config.mediaType : '';
  const files = (Array.isArray(doc.layers) ? doc.layers : []).filter(Boolean).map((l) => {
    const title = stringRecord(l.annotations)[TITLE_ANNOTATION];
    return { ...(title ? { title } : {}), digest: l.digest, size: l.size, mediaType: l.mediaType };
  });
  return {
    artifactType: (typeof doc.artifactType === 'string' && doc.artifactType) || configMediaType,
    configMediaType,
    digest: image.digest,
    size: (doc.config?.size ?? 0) + files.reduce((n, f) => n + f.size, 0),
    files,
    annotations: stringRecord(doc.annotations),
  };
}

/** A chart's metadata from its config (Chart.yaml as JSON), every field checked: it is upstream JSON. */
function chartData(config: Record<string, unknown>, layer: Descriptor | undefined, files: Awaited<ReturnType<typeof readChartFiles>> | undefined, repoName: string): HelmChartData {
  const str = (v: unknown): string | undefined => (typeof v === 'string' && v ? v : undefined);
  const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string' && x !== '') : []);
  const objects = (v: unknown): Array<Record<string, unknown>> => (Array.isArray(v) ? v.filter((x) => x && typeof x === 'object' && !Array.isArray(x)) : []);
  const pick = <K extends string>(o: Record<string, unknown>, keys: readonly K[]): Partial<Record<K, string>> =>
    Object.fromEntries(keys.flatMap((k) => (str(o[k]) ? [[k, str(o[k])!]] : []))) as Partial<Record<K, string>>;
  const out: HelmChartData = {
    name: str(config.name) ?? repoName.split('/').at(-1)!,
    version: str(config.version) ?? '',
    ...pick(config, ['apiVersion', 'appVersion', 'description', 'type', 'home', 'icon', 'kubeVersion'] as const),
    keywords: strings(config.keywords),
    sources: strings(config.sources),
    maintainers: objects(config.maintainers).filter((m) => str(m.name)).map((m) => ({ name: str(m.name)!, ...pick(m, ['email', 'url'] as const) })),
    dependencies: objects(config.dependencies).filter((d) => str(d.name)).map((d) => ({ name: str(d.name)!, ...pick(d, ['version', 'repository', 'condition', 'alias'] as const) })),
    ...(config.deprecated === true ? { deprecated: true } : {}),
    annotations: stringRecord(config.annotations),
    archive: { digest: layer?.digest ?? '', size: layer?.size ?? 0 },
  };
  if (files?.readme !== undefined) out.readme = files.readme;
  if (files?.values !== undefined) out.values = files.values;
  if (!layer) out.skipped = 'the manifest has no chart archive layer';
  else if (files?.skipped) out.skipped = files.skipped;
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
