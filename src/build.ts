import { readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Dispatcher } from 'undici';
import { loadConfig } from './config.ts';
import { loadCredentials } from './credentials.ts';
import { RegistrishError } from './errors.ts';
import { HOST_WRITERS, renderHosts } from './hosts.ts';
import { OciLayoutSource } from './oci-layout.ts';
import { describePaths, writeRegistryTree } from './output.ts';
import { BlobFetcher, planImages, type FetchStats, type ImageReport, type Plan } from './plan.ts';
import { redact } from './redact.ts';
import { RegistryClient } from './registry-client.ts';
import { createAgent } from './transport.ts';
import { RegistrySource } from './registry-source.ts';
import type { ImageSource } from './source.ts';
import { ContentStore, type LinkMode } from './store.ts';
import type { ImageSpec, PublishedPath } from './types.ts';

// One build: images.json → plan (manifests through the cache) → blobs into the cache →
// `v2/` tree in the output → host configuration. Everything the Eleventy plugin and the
// CLI do goes through here.

export interface Logger {
  info(message: string): void;
  warn(message: string): void;
}

export interface BuildOptions {
  /** Path of images.json. */
  images: string;
  /** Output folder (Eleventy's `_site`). */
  outputDir: string;
  /** Content-addressed cache folder, reused across builds. */
  cacheDir: string;
  /** Host writers to run (`netlify`). */
  hosts: string[];
  /** Images resolved at once / blobs downloaded at once. */
  imageConcurrency: number;
  blobConcurrency: number;
  /** How output files are made from the cache. */
  linkMode: LinkMode;
  logger: Logger;
  env?: NodeJS.ProcessEnv;
  /** Injected HTTP dispatcher (tests); a fresh pool per build otherwise. */
  dispatcher?: Dispatcher;
  /** Retry and timeout settings (defaults in transport.ts); tests shorten them to run fast. */
  http?: HttpTuning;
}

export interface HttpTuning {
  /** Retries after the first attempt of a request (retryable statuses, connection errors). Default 4. */
  maxRetries?: number;
  /** First backoff delay, doubled each retry. Default 500 ms. */
  retryBaseMs?: number;
  /** Time to wait for response headers. Default 30 s. */
  headersTimeoutMs?: number;
  /** Longest silence while reading a body. Default 60 s. */
  bodyTimeoutMs?: number;
  /** First delay before re-opening a blob whose body failed mid-way (resumed with Range). Default 500 ms. */
  blobRetryDelayMs?: number;
}

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
  ms: number;
  line: string;
  /** Every URL published, for host writers run again without a build (watch mode). */
  paths: PublishedPath[];
}

export async function buildRegistry(options: BuildOptions): Promise<BuildSummary> {
  const started = performance.now();
  const { logger } = options;
  const config = await loadConfig(options.images);
  const writers = options.hosts.map((name) => {
    const w = HOST_WRITERS[name];
    if (!w) throw new RegistrishError(`unknown host "${name}" (known: ${Object.keys(HOST_WRITERS).join(', ')})`);
    return w;
  });
  const store = new ContentStore(options.cacheDir);
  await cleanTemp(store.dir);
  const ownDispatcher = options.dispatcher ? undefined : createAgent();
  const dispatcher = options.dispatcher ?? ownDispatcher!;
  const credentials = loadCredentials({ env: options.env ?? process.env });
  const clients = new Map<string, RegistryClient>();

  const sourceFor = (spec: ImageSpec): ImageSource => {
    const src = spec.source;
    if (src.kind === 'oci-layout') return new OciLayoutSource(src.dir);
    if (credentials.unsupportedHelperFor?.(src.registry) && !credentials.get(src.registry)) {
      logger.warn(
        `${src.registry}: your Docker config uses a credential helper, which registrish cannot call; set REGISTRISH_AUTH to pull private images`,
      );
    }
    const key = `${src.insecure ? 'http' : 'https'}://${src.apiHost}`;
    let client = clients.get(key);
    if (!client) {
      client = new RegistryClient({
        registry: src.registry,
        apiHost: src.apiHost,
        insecure: src.insecure,
        credential: credentials.get(src.registry),
        dispatcher,
        maxRetries: options.http?.maxRetries,
        retryBaseMs: options.http?.retryBaseMs,
        headersTimeoutMs: options.http?.headersTimeoutMs,
        bodyTimeoutMs: options.http?.bodyTimeoutMs,
      });
      clients.set(key, client);
    }
    return new RegistrySource(client, src.repository, src.registry);
  };

  try {
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
    let plan: Plan;
    let stats: FetchStats;
    try {
      plan = await planImages(config.images, {
        store,
        sourceFor,
        concurrency: options.imageConcurrency,
        onBlob: (need) => fetcher.add(need),
      }).catch(async (err: unknown) => {
        await fetcher.finish().catch(() => {});
        throw err;
      });
      stats = await fetcher.finish();
    } finally {
      clearInterval(heartbeat);
    }
    const paths = describePaths(plan);
    // Host limits are checked before anything in the output is replaced.
    const problems = writers.map((w) => ({ w, ...w.check(paths) }));
    for (const p of problems) for (const warning of p.warnings) logger.warn(`${p.w.name}: ${warning}`);
    const errors = problems.flatMap((p) => p.errors.map((e) => `${p.w.name}: ${e}`));
    if (errors.length) throw new RegistrishError(`the registry cannot be served as planned:\n  ${errors.join('\n  ')}`);

    for (const r of plan.images) {
      logger.info(imageLine(r, plan, stats));
      for (const warning of r.warnings) logger.warn(warning);
    }
    const host = await renderHosts(writers, options.outputDir, paths);
    for (const warning of host.warnings) logger.warn(warning);
    await writeRegistryTree(plan, store, options.outputDir, { linkMode: options.linkMode, hostFiles: host.files });

    const repos = [...plan.repos.values()];
    const summary: BuildSummary = {
      // An entry with several tags and no tag in its source is planned as one image per tag.
      images: new Set(config.images.map((i) => i.index)).size,
      tags: repos.reduce((n, r) => n + r.tags.size, 0),
      repositories: repos.length,
      manifests: new Set(repos.flatMap((r) => [...r.manifests.keys()])).size,
      manifestsFetched: plan.images.reduce((n, r) => n + r.manifestsFetched, 0),
      blobs: plan.blobs.size,
      blobsFetched: stats.blobsFetched,
      bytesFetched: stats.bytesFetched,
      bytesReused: stats.bytesReused,
      bytesPublished: paths.filter((p) => p.kind === 'blob').reduce((n, p) => n + p.size, 0),
      filtered: plan.images
        .filter((r) => r.filteredFrom)
        .map((r) => ({ image: r.spec.name, from: r.filteredFrom!, to: r.digest })),
      ms: performance.now() - started,
      line: '',
      paths,
    };
    summary.line =
      `${summary.images} images, ${summary.tags} tags, ${summary.manifests} manifests (${summary.manifestsFetched} fetched), ` +
      `${summary.blobs} blobs: fetched ${summary.blobsFetched} (${formatBytes(summary.bytesFetched)}), ` +
      `reused ${summary.blobs - summary.blobsFetched} (${formatBytes(summary.bytesReused)}) in ${(summary.ms / 1000).toFixed(1)}s`;
    return summary;
  } finally {
    await ownDispatcher?.close();
  }
}

function imageLine(r: ImageReport, plan: Plan, stats: FetchStats): string {
  const tags = r.spec.tags.join(', ');
  const platforms = r.platforms.length ? ` [${r.platforms.join(', ')}]` : '';
  const filtered = r.filteredFrom ? ` (filtered from ${r.filteredFrom.slice(0, 19)}…)` : '';
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
  return (
    `${r.spec.source.original} → ${r.spec.name}:{${tags}} ${r.digest.slice(0, 19)}…${filtered}${platforms}: ` +
    `manifests ${r.manifestsFetched} fetched/${r.manifestsCached} cached, ` +
    `blobs ${fetched} fetched (${formatBytes(fetchedBytes)})/${r.blobs.size - fetched} cached (${formatBytes(cachedBytes)})`
  );
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${units[i]}`;
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

/** Error text for people: message, hint, causes — with secrets stripped. */
export function formatError(err: unknown): string {
  const parts: string[] = [];
  let e: unknown = err;
  let depth = 0;
  while (e && depth < 4) {
    if (e instanceof Error) {
      parts.push(depth === 0 ? e.message : `caused by: ${e.message}`);
      if (e instanceof RegistrishError && e.hint) parts.push(e.hint);
      e = e.cause;
    } else {
      parts.push(String(e));
      e = undefined;
    }
    depth++;
  }
  return redact(parts.join('\n  '));
}
