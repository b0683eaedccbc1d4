import { readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Dispatcher } from 'undici';
import { loadConfig } from './config/config.ts';
import type { RegistrishConfig } from './config/types.ts';
import { checkHosts, renderHosts, type Host, type HostOptions } from './hosts/host.ts';
import { hostNamed, writableHostNames } from './hosts/index.ts';
import { createAgent, type HttpTuning } from './http/transport.ts';
import type { PublishedPath } from './model/published-path.ts';
import { layoutRegistry, type RegistryLayout } from './publish/paths.ts';
import { placeBlobs, type BlobStoreConfig } from './publish/blob-store.ts';
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
import { Progress, type ProgressOptions } from './util/progress.ts';

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
  /** A terminal for live progress lines (util/progress.ts); plain log lines otherwise. */
  progressTty?: ProgressOptions['tty'];
}

export interface PublishOptions {
  /** Output folder (Eleventy's `_site`). */
  outputDir: string;
  /** Hosts to write configuration for (`netlify`). */
  hosts: string[];
  /** Each host's own options, by host name (`{ netlify: { headers: 'compact' } }`). */
  hostOptions?: HostOptions;
  /** How output files are made from the cache. */
  linkMode: LinkMode;
  /** Blobs in an object store (the `blobs` option): the output holds none, every blob URL redirects. */
  blobs?: BlobStoreConfig;
  /** Credentials and endpoint of the blob store (AWS_*); process.env when absent. */
  env?: NodeJS.ProcessEnv;
  /** A terminal for live upload progress (util/progress.ts); plain log lines otherwise. */
  progressTty?: ProgressOptions['tty'];
  /** Retry delay base of the store's client (tests make it short). */
  storeRetryBaseMs?: number;
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
  /** With the `blobs` option: where the blobs are, and what this build uploaded there. */
  blobStore?: { url: string; store?: string; uploaded: number; present: number; bytesUploaded: number };
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

  // Large mirrors take minutes: a live line on a terminal, a plain line every 10 s in a log.
  const progress = new Progress({ verb: 'downloading', tty: options.progressTty, log: (l) => logger.info(l) });
  const counted = new Set<string>();
  const finished = new Set<string>();
  const fetcher = new BlobFetcher(store, {
    concurrency: options.blobConcurrency,
    retryDelayMs: options.http?.blobRetryDelayMs,
    onBytes: (n) => progress.addBytes(n),
    // Two images naming one blob give two needs of one digest: count it once.
    onDone: (need, downloaded) => {
      if (finished.has(need.digest)) return;
      finished.add(need.digest);
      progress.itemDone(downloaded ? 0 : need.size);
    },
  });
  // Once, however many paths of a failing build reach it: undici throws on a second close.
  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      progress.stop();
      await ownDispatcher?.close();
    })());

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
      onBlob: (need) => {
        if (!counted.has(need.digest)) {
          counted.add(need.digest);
          progress.addWork(need.size);
        }
        fetcher.add(need);
      },
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
  const { plan } = resolved;
  const { logger } = options;
  const hosts = selectHosts(options.hosts);
  // With a blob store, blob URLs become redirects and the tree holds no blob file.
  const layout = options.blobs ? placeBlobs(resolved.layout, options.blobs) : resolved.layout;
  // Missing credentials are told before the downloads are waited for, not after.
  if (options.blobs?.store) {
    const { storeConnectionFromEnv } = await import('./deploy/blob-upload.ts');
    storeConnectionFromEnv(options.blobs.store, options.blobs.endpoint, options.env ?? process.env, 'blobs.store');
  }
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
  if (!options.blobs) {
    const advice = blobsAdvice(paths, options.hosts);
    if (advice) logger.warn(advice);
  }
  const rendered = await renderHosts(hosts, options.outputDir, paths, options.hostOptions);
  for (const warning of rendered.warnings) logger.warn(warning);
  // Blobs reach the store before v2/ names them: a site deployed after this build never points at a missing blob.
  const blobStore = options.blobs ? await sendBlobsToStore(resolved, layout, options) : undefined;
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
  return summarize(resolved, stats, layout, blobStore);
}

/** Netlify recommends files under 10 MB ("might fail to upload to the CDN"); users report failures near 26 MB. */
export const NETLIFY_RECOMMENDED_FILE_BYTES = 10_000_000;

/**
 * For Netlify: blobs over its recommended file size, and how much of the output is blobs,
 * pointing to the `blobs` option. (Cloudflare Pages refuses files over 25 MiB in its own check.)
 */
export function blobsAdvice(paths: readonly PublishedPath[], hosts: readonly string[]): string | undefined {
  if (!hosts.includes('netlify')) return undefined;
  const blobs = new Map<string, number>();
  let other = 0;
  for (const p of paths) {
    if (p.kind === 'blob') blobs.set(p.digest!, p.size);
    else other += p.size;
  }
  const large = [...blobs.values()].filter((n) => n > NETLIFY_RECOMMENDED_FILE_BYTES);
  if (large.length === 0) return undefined;
  // A blob of several repositories is one file's worth (hard links, one upload).
  const blobBytes = [...blobs.values()].reduce((n, x) => n + x, 0);
  const total = blobBytes + other;
  return (
    `netlify: ${large.length} blob${large.length === 1 ? ' is' : 's are'} over the 10 MB Netlify recommends per file (largest ${formatBytes(Math.max(...large))}); ` +
    `blobs are ${formatBytes(blobBytes)} of the registry's ${formatBytes(total)} (${Math.round((blobBytes / Math.max(1, total)) * 100)}%). ` +
    'Keep them on an object store with the "blobs" option (README: Blobs elsewhere).'
  );
}

/** Uploads what the store lacks (with `blobs.store`), or says who must (without it). */
async function sendBlobsToStore(
  resolved: ResolvedRegistry,
  layout: RegistryLayout,
  options: PublishOptions & { logger: Logger },
): Promise<BuildSummary['blobStore']> {
  const config = options.blobs!;
  const { logger } = options;
  const blobs = new Map<string, number>();
  for (const p of layout.paths) if (p.kind === 'blob') blobs.set(p.digest!, p.size);
  const found = { url: config.url, uploaded: 0, present: 0, bytesUploaded: 0 };
  if (!config.store) {
    logger.info(`blobs: ${blobs.size} sent to ${config.url} (not uploaded by this build: run \`registrish deploy --blobs s3://BUCKET[/PREFIX]\` before deploying the site)`);
    return found;
  }
  const target = `s3://${config.store.bucket}/${config.store.prefix}`;
  // Loaded only by builds that upload: the S3 client and its signer are not needed otherwise.
  const { storeConnectionFromEnv, uploadBlobs } = await import('./deploy/blob-upload.ts');
  const connection = storeConnectionFromEnv(config.store, config.endpoint, options.env ?? process.env, 'blobs.store');
  const progress = new Progress({ verb: 'uploading', tty: options.progressTty, log: (l) => logger.info(l) });
  try {
    const r = await uploadBlobs({
      connection,
      blobs: [...blobs].map(([digest, size]) => ({ digest, size, file: resolved.store.pathFor(digest) })),
      // 4 at a time, as rclone: 8 measured no faster (docs/performance.md, bench/blob-upload.ts).
      concurrency: 4,
      log: (l) => logger.warn(l),
      progress,
      retryBaseMs: options.storeRetryBaseMs,
    });
    logger.info(`blobs: uploaded ${r.uploaded} (${formatBytes(r.bytes)}) to ${target}, ${r.present} already there`);
    return { ...found, store: target, uploaded: r.uploaded, present: r.present, bytesUploaded: r.bytes };
  } catch (err) {
    const e = err instanceof RegistrishError ? err : undefined;
    throw new RegistrishError(`uploading blobs to ${target} failed, so v2/ was not written (the previous output is unchanged): ${err instanceof Error ? err.message : String(err)}`, {
      cause: err,
      hint: e?.hint ?? 'Check the credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY), the bucket and blobs.endpoint, then build again: blobs already uploaded are not sent twice.',
    });
  } finally {
    progress.stop();
  }
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

function summarize(resolved: ResolvedRegistry, stats: FetchStats, layout: RegistryLayout, blobStore?: BuildSummary['blobStore']): BuildSummary {
  const { config, plan } = resolved;
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
    ...(blobStore ? { blobStore } : {}),
  };
  summary.line =
    `${summary.images} images, ${summary.tags} tags, ${summary.manifests} manifests (${summary.manifestsFetched} fetched), ` +
    `${summary.blobs} blobs: fetched ${summary.blobsFetched} (${formatBytes(summary.bytesFetched)}), ` +
    `reused ${summary.blobs - summary.blobsFetched} (${formatBytes(summary.bytesReused)})` +
    (blobStore
      ? `, none in the output: served from ${blobStore.url}${blobStore.store ? ` (uploaded ${blobStore.uploaded}, ${formatBytes(blobStore.bytesUploaded)}; ${blobStore.present} already there)` : ''}`
      : '') +
    ` in ${(summary.ms / 1000).toFixed(1)}s`;
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
  // Blobs kept in an object store (`location`) have no file in the output.
  const linked = layout.paths.filter((p) => !layout.bodies.has(p.file) && p.location === undefined);
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
