import { readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Dispatcher } from 'undici';
import { loadConfig } from './config/config.ts';
import type { RegistrishConfig } from './config/types.ts';
import { checkHosts, renderHosts, type Host } from './hosts/host.ts';
import { hostNamed, writableHostNames } from './hosts/index.ts';
import { createAgent, type HttpTuning } from './http/transport.ts';
import type { PublishedPath } from './model/published-path.ts';
import { layoutRegistry, type RegistryLayout } from './publish/paths.ts';
import { writeRegistryTree } from './publish/tree.ts';
import { BlobFetcher, type FetchStats } from './resolve/fetcher.ts';
import { planImages, type ImageReport, type Plan } from './resolve/plan.ts';
import { expandSelections, saveSelections, type SelectionReport } from './resolve/selections.ts';
import { openSource } from './sources/kinds.ts';
import type { SourceContext } from './sources/source.ts';
import { ContentStore, type LinkMode } from './store/store.ts';
import { explainDiskError, type BuildFolder } from './util/disk-full.ts';
import { RegistrishError } from './util/errors.ts';
import { formatBytes, shortDigest } from './util/format.ts';
import type { Logger } from './util/log.ts';

// One build, in two steps that Eleventy can run apart:
//   resolve: images.json → plan (tags → manifests, through the cache) while blobs start downloading;
//   publish: wait for the blobs → `v2/` tree in the output → host configuration.
// Everything the Eleventy plugin and the scripts do goes through here.

export interface ResolveOptions {
  /** Path of images.json. */
  images: string;
  /** Content-addressed cache folder, reused across builds. */
  cacheDir: string;
  /** Images resolved at once / blobs downloaded at once. */
  imageConcurrency: number;
  blobConcurrency: number;
  logger: Logger;
  env?: NodeJS.ProcessEnv;
  /** Injected HTTP dispatcher (tests); a fresh pool per build otherwise. */
  dispatcher?: Dispatcher;
  /** Retry and timeout settings (defaults in http/transport.ts); tests shorten them to run fast. */
  http?: HttpTuning;
}

export interface PublishOptions {
  /** Output folder (Eleventy's `_site`). */
  outputDir: string;
  /** Hosts to write configuration for (`netlify`). */
  hosts: string[];
  /** How output files are made from the cache. */
  linkMode: LinkMode;
}

export type BuildOptions = ResolveOptions & PublishOptions;

export interface BuildSummary {
  images: number;
  tags: number;
  repositories: number;
  manifests: number;
  manifestsFetched: number;
  blobs: number;
  blobsFetched: number;
  bytesFetched: number;
  bytesReused: number;
  /** Blob bytes the output references (before hardlinks). */
  bytesPublished: number;
  filtered: Array<{ image: string; from: string; to: string }>;
  /** Entries with tag rules: tags listed, kept, new and gone since the last build. */
  selections: SelectionReport[];
  ms: number;
  line: string;
  /** Every URL published, for host writers run again without a build (watch mode). */
  paths: PublishedPath[];
}

/** A registry resolved from images.json: every manifest is known and cached; blobs may still be downloading. */
export interface ResolvedRegistry {
  config: RegistrishConfig;
  plan: Plan;
  /** Entries with tag rules: what was listed and kept. */
  selections: SelectionReport[];
  layout: RegistryLayout;
  store: ContentStore;
  /** Waits for every blob to be in the store (rejects with the first failure) and reports. */
  downloads(): Promise<FetchStats>;
  /** Gets these blobs into the store ahead of the others (the image configs the pages show). */
  blobsNow(digests: Iterable<string>): Promise<void>;
  /** Stops the heartbeat and closes the build's connection pool (after the downloads settle). */
  close(): Promise<void>;
  /** performance.now() when the build started. */
  started: number;
}

/** The hosts named in the options; an unknown name is an error before any network request. */
export function selectHosts(names: string[]): Host[] {
  return names.map((name) => {
    const host = hostNamed(name);
    if (!host?.writer) throw new RegistrishError(`unknown host "${name}" (known: ${writableHostNames().join(', ')})`);
    return host;
  });
}

export async function resolveRegistry(options: ResolveOptions): Promise<ResolvedRegistry> {
  const started = performance.now();
  const { logger } = options;
  const config = await loadConfig(options.images);
  const store = new ContentStore(options.cacheDir);
  const cache: BuildFolder = { role: 'cache', dir: store.dir };
  await cleanTemp(store.dir);
  const ownDispatcher = options.dispatcher ? undefined : createAgent();
  const dispatcher = options.dispatcher ?? ownDispatcher!;
  const shared = new Map<string, unknown>();
  const sources: SourceContext = {
    logger,
    env: options.env ?? process.env,
    dispatcher,
    http: options.http,
    cacheDir: store.dir,
    shared: <T>(key: string, make: () => T): T => {
      if (!shared.has(key)) shared.set(key, make());
      return shared.get(key) as T;
    },
  };

  let received = 0;
  const fetcher = new BlobFetcher(store, {
    concurrency: options.blobConcurrency,
    retryDelayMs: options.http?.blobRetryDelayMs,
    onBytes: (n) => (received += n),
  });
  // Large mirrors take minutes: say how far along the downloads are, every 10 seconds.
  const heartbeat = setInterval(() => {
    if (received > 0) logger.info(`downloading: ${formatBytes(received)} fetched so far`);
  }, 10_000);
  const close = async () => {
    clearInterval(heartbeat);
    await ownDispatcher?.close();
  };

  let plan: Plan;
  let selections: SelectionReport[] = [];
  try {
    // Entries with tag rules: their tags are listed and chosen now, then planned like the others.
    const selected = await expandSelections(config.selections, {
      sourceFor: (spec) => openSource(spec.source, sources),
      cacheDir: store.dir,
      concurrency: options.imageConcurrency,
    });
    selections = selected.reports;
    const specs = [...config.images, ...selected.specs].sort((a, b) => a.index - b.index);
    plan = await planImages(specs, {
      store,
      sourceFor: (spec) => openSource(spec.source, sources),
      concurrency: options.imageConcurrency,
      onBlob: (need) => fetcher.add(need),
    });
  } catch (err) {
    // Nothing may keep writing into the cache after the build has failed.
    await fetcher.finish().catch(() => {});
    await close();
    throw await explainDiskError(err, cache, () => fetcher.missingBytes());
  }
  let downloads: Promise<FetchStats> | undefined;
  const cacheFull = async (err: unknown): Promise<never> => {
    throw await explainDiskError(err, cache, () => fetcher.missingBytes());
  };
  return {
    config,
    plan,
    selections,
    layout: layoutRegistry(plan),
    store,
    downloads: () => (downloads ??= fetcher.finish().catch(cacheFull)),
    blobsNow: (digests) => fetcher.now(digests).catch(cacheFull),
    close,
    started,
  };
}

/** Waits for the downloads, then writes `v2/` and the host files into the output. */
export async function publishRegistry(resolved: ResolvedRegistry, options: PublishOptions & { logger: Logger }): Promise<BuildSummary> {
  const { plan, layout } = resolved;
  const { logger } = options;
  const hosts = selectHosts(options.hosts);
  const stats = await resolved.downloads();
  const { paths } = layout;
  // Host limits are checked before anything in the output is replaced.
  const limits = checkHosts(hosts, paths);
  for (const warning of limits.warnings) logger.warn(warning);
  if (limits.errors.length) throw new RegistrishError(`the registry cannot be served as planned:\n  ${limits.errors.join('\n  ')}`);

  for (const r of plan.images) {
    logger.info(imageLine(r, plan, stats));
    for (const warning of r.warnings) logger.warn(warning);
  }
  const rendered = await renderHosts(hosts, options.outputDir, paths);
  for (const warning of rendered.warnings) logger.warn(warning);
  const output: BuildFolder = { role: 'output', dir: path.resolve(options.outputDir) };
  try {
    await writeRegistryTree(layout, resolved.store, options.outputDir, { linkMode: options.linkMode, hostFiles: rendered.files });
  } catch (err) {
    throw await explainDiskError(err, output, async () => {
      // Hard links cannot cross filesystems: the store copies instead (linkInto), and copies take space.
      const [cacheDev, outDev] = await Promise.all([stat(resolved.store.dir), stat(output.dir)]).then((s) => s.map((x) => x.dev));
      return treeBytes(layout, cacheDev === outDev ? options.linkMode : 'copy', rendered.files);
    });
  }
  // Only a build that published is the "last build" the next one compares its tag choices with.
  await saveSelections(resolved.store.dir, resolved.selections).catch(async (err: unknown) => {
    throw await explainDiskError(err, { role: 'cache', dir: resolved.store.dir }, async () => undefined);
  });
  return summarize(resolved, stats);
}

/** resolve + publish, closing the connection pool whatever happens. */
export async function buildRegistry(options: BuildOptions): Promise<BuildSummary> {
  selectHosts(options.hosts);
  const resolved = await resolveRegistry(options);
  try {
    return await publishRegistry(resolved, options);
  } finally {
    await resolved.downloads().catch(() => {});
    await resolved.close();
  }
}

function summarize(resolved: ResolvedRegistry, stats: FetchStats): BuildSummary {
  const { config, plan, layout } = resolved;
  const repos = [...plan.repos.values()];
  const summary: BuildSummary = {
    // An entry with several tags and no tag in its source is planned as one image per tag.
    images: new Set([...config.images, ...config.selections].map((i) => i.index)).size,
    tags: repos.reduce((n, r) => n + r.tags.size, 0),
    repositories: repos.length,
    manifests: new Set(repos.flatMap((r) => [...r.manifests.keys()])).size,
    manifestsFetched: plan.images.reduce((n, r) => n + r.manifestsFetched, 0),
    blobs: plan.blobs.size,
    blobsFetched: stats.blobsFetched,
    bytesFetched: stats.bytesFetched,
    bytesReused: stats.bytesReused,
    bytesPublished: layout.paths.filter((p) => p.kind === 'blob').reduce((n, p) => n + p.size, 0),
    filtered: plan.images.filter((r) => r.filteredFrom).map((r) => ({ image: r.spec.name, from: r.filteredFrom!, to: r.digest })),
    selections: resolved.selections,
    ms: performance.now() - resolved.started,
    line: '',
    paths: layout.paths,
  };
  summary.line =
    `${summary.images} images, ${summary.tags} tags, ${summary.manifests} manifests (${summary.manifestsFetched} fetched), ` +
    `${summary.blobs} blobs: fetched ${summary.blobsFetched} (${formatBytes(summary.bytesFetched)}), ` +
    `reused ${summary.blobs - summary.blobsFetched} (${formatBytes(summary.bytesReused)}) in ${(summary.ms / 1000).toFixed(1)}s`;
  return summary;
}

function imageLine(r: ImageReport, plan: Plan, stats: FetchStats): string {
  const tags = r.spec.tags.join(', ');
  const platforms = r.platforms.length ? ` [${r.platforms.join(', ')}]` : '';
  const filtered = r.filteredFrom ? ` (filtered from ${shortDigest(r.filteredFrom)})` : '';
  let fetched = 0;
  let fetchedBytes = 0;
  let cachedBytes = 0;
  for (const d of r.blobs) {
    const size = plan.blobs.get(d)?.size ?? 0;
    if (stats.fetched.has(d)) {
      fetched++;
      fetchedBytes += size;
    } else cachedBytes += size;
  }
  const attached = r.spec.attachments ? `, attachments: ${r.attachments.tags} cosign tags, ${r.attachments.referrers} referrers` : '';
  const verified = r.verifiedBy ? `, signature verified with ${r.verifiedBy}` : '';
  return (
    `${r.spec.source.original} → ${r.spec.name}:{${tags}} ${shortDigest(r.digest)}${filtered}${platforms}: ` +
    `manifests ${r.manifestsFetched} fetched/${r.manifestsCached} cached, ` +
    `blobs ${fetched} fetched (${formatBytes(fetchedBytes)})/${r.blobs.size - fetched} cached (${formatBytes(cachedBytes)})` +
    attached +
    verified
  );
}

/**
 * Bytes a new `v2/` takes in the output while the previous one is still there (it is swapped in
 * whole): the JSON bodies and host files, and every manifest and blob when they are copies rather
 * than hard links into the cache.
 */
function treeBytes(layout: RegistryLayout, linkMode: LinkMode, hostFiles: Array<{ text: string }>): number {
  const linked = layout.paths.filter((p) => !layout.bodies.has(p.file));
  const bodies = [...layout.bodies.values()].reduce((n, b) => n + Buffer.byteLength(b), 0);
  const copies = linkMode === 'copy' ? linked.reduce((n, p) => n + p.size, 0) : 0;
  return bodies + copies + hostFiles.reduce((n, f) => n + Buffer.byteLength(f.text), 0);
}

/** Temp files of a killed build are never valid content: drop those older than an hour. */
async function cleanTemp(storeDir: string): Promise<void> {
  const tmp = path.join(storeDir, 'tmp');
  let entries: string[];
  try {
    entries = await readdir(tmp);
  } catch {
    return;
  }
  const cutoff = Date.now() - 3600_000;
  for (const e of entries) {
    const file = path.join(tmp, e);
    try {
      if ((await stat(file)).mtimeMs < cutoff) await rm(file, { force: true });
    } catch {
      // Raced with another build: fine.
    }
  }
}
