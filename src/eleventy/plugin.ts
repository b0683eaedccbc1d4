import { createHash } from 'node:crypto';
import { access, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { BuildSummary, ResolvedRegistry } from '../build.ts';
import type { RegistryData } from '../catalog/types.ts';
import type { PublishedPath } from '../model/published-path.ts';
import { addRegistryPages, type EleventyTemplatesLike } from '../pages/templates.ts';
import { formatError, RegistrishError } from '../util/errors.ts';
import { progressTty } from '../util/progress.ts';
import { makeLogger, type EleventyLogger } from './logger.ts';
import { PREFIX, resolveOptions, type RegistrishOptions } from './options.ts';

// The Eleventy glue. Eleventy's timeline, so that templates can show what the registry serves:
//   eleventy.before  resolve images.json (tags → manifests → image configs), wait for the blobs,
//                    write v2/ and the host files
//   templates        read the `registry` global data; the default pages render from it
//   eleventy.after   host files again if the site wrote one they are made from; one summary line
// The first resolution starts as soon as the plugin is added, overlapping Eleventy's own start-up.
// In --serve/--watch, a rebuild with an unchanged images.json reuses the last resolution (no
// upstream request) and keeps v2/ as built. The build machinery (the HTTP client above all) is
// loaded by that first resolution, not by importing the package.

/** The modules a build needs, loaded once, on first use. */
const machinery = () =>
  Promise.all([
    import('../build.ts'),
    import('../catalog/data.ts'),
    import('../hosts/host.ts'),
    import('../publish/tree.ts'),
    import('../resolve/selections.ts'),
    import('../publish/helm-index.ts'),
  ]).then(([build, catalog, hosts, tree, selections, helm]) => ({ ...build, ...catalog, ...hosts, ...tree, ...selections, ...helm }));

/** Only the bits of Eleventy's config API this plugin uses (Eleventy ships no types). */
export interface EleventyConfigLike extends EleventyTemplatesLike {
  logger?: EleventyLogger;
  addWatchTarget(target: string): void;
  addGlobalData(name: string, value: unknown): void;
  watchIgnores?: Set<string>;
  on(event: string, fn: (arg: any) => unknown): void;
}

interface BuildEvent {
  directories?: { output?: string };
  dir?: { output?: string };
  outputMode?: string;
  runMode?: string;
}

/** A resolution under way: of which images.json (its hash), and its two results. */
interface Fresh {
  key: string;
  resolved: Promise<ResolvedRegistry>;
  data: Promise<RegistryData>;
}

/** A registry published in eleventy.before: its summary, and the site files the hosts read then. */
interface Published {
  summary: BuildSummary;
  siteFiles: Map<string, Buffer | undefined>;
}

/** One Eleventy build's registry: resolved afresh, or the last one reused (watch mode). */
type Current =
  | ({ kind: 'fresh'; outputDir: string; published?: Published } & Fresh)
  | { kind: 'reused'; outputDir: string; paths: PublishedPath[]; data: Promise<RegistryData> };

/** The host Netlify gives a site's production address (`URL`), in a Netlify build. */
export function netlifyHost(env: NodeJS.ProcessEnv): string | undefined {
  if (env.NETLIFY !== 'true' || !env.URL) return undefined;
  try {
    return new URL(env.URL).host || undefined;
  } catch {
    return undefined;
  }
}

export function registrish(eleventyConfig: EleventyConfigLike, userOptions: RegistrishOptions = {}): void {
  const options = resolveOptions(userOptions);
  const logger = makeLogger(eleventyConfig, options.verbose);
  const host = options.registryHost ?? netlifyHost(process.env);
  const imagesFile = path.resolve(options.images);
  eleventyConfig.addWatchTarget(options.images);
  eleventyConfig.watchIgnores?.add(`${options.cacheDir.replace(/\/+$/, '')}/**`);

  let current: Current | undefined;
  let last: { key: string; outputDir: string; paths: PublishedPath[]; data: RegistryData } | undefined;

  const fail = (err: unknown): never => {
    // Eleventy prints the error and exits non-zero; the message is already redacted.
    throw new RegistrishError(`${PREFIX} build failed: ${formatError(err)}`);
  };

  /** A resolution of images.json as it is now (its key says which version of the file). */
  const resolveFresh = async (): Promise<Fresh> => {
    const key = await fileKey(imagesFile);
    const { resolveRegistry, buildRegistryData } = await machinery();
    const resolved = resolveRegistry({
      images: imagesFile,
      cacheDir: path.resolve(options.cacheDir),
      imageConcurrency: options.imageConcurrency,
      blobConcurrency: options.concurrency,
      logger,
      progressTty: progressTty(),
    });
    const data = resolved.then((r) =>
      buildRegistryData(
        { plan: r.plan, store: r.store, blobsNow: (d) => r.blobsNow(d) },
        {
          host,
          ...(options.pages ? { pagesPath: options.pages.path } : {}),
          ...(options.helmRepository ? { helmRepositoryPath: options.helmRepository.path } : {}),
          showPrivateSources: options.showPrivateSources,
          warn: (m) => logger.warn(m),
        },
      ),
    );
    // Failures are reported by eleventy.before (which awaits both); these keep them from being unhandled meanwhile.
    resolved.catch(() => {});
    data.catch(() => {});
    return { key, resolved, data };
  };

  // The first build's resolution starts with the plugin, so that its upstream requests run while
  // Eleventy reads the site's templates; eleventy.before takes it over.
  let early: Promise<Fresh> | undefined = resolveFresh();
  early.catch(() => {});

  const start = async (event: BuildEvent): Promise<Current> => {
    const outputDir = path.resolve(event.directories?.output ?? event.dir?.output ?? '_site');
    const key = await fileKey(imagesFile);
    if (event.runMode !== undefined && event.runMode !== 'build' && last?.key === key && last.outputDir === outputDir && (await exists(path.join(outputDir, 'v2')))) {
      return { kind: 'reused', outputDir, paths: last.paths, data: Promise.resolve(last.data) };
    }
    let fresh = await early?.catch(() => undefined);
    early = undefined;
    // images.json changed since the plugin was added (or the early start failed): resolve it again.
    if (fresh && fresh.key !== key) {
      await closeQuietly({ kind: 'fresh', outputDir, ...fresh });
      fresh = undefined;
    }
    return { kind: 'fresh', outputDir, ...(fresh ?? (await resolveFresh())) };
  };

  // Templates read the registry. Asked for before eleventy.before ran (not in a normal build), the
  // resolution starts here.
  eleventyConfig.addGlobalData('registry', async (): Promise<RegistryData> => {
    current ??= await start({});
    return current.data;
  });
  if (options.pages) addRegistryPages(eleventyConfig, options.pages);

  eleventyConfig.on('eleventy.before', async (event: BuildEvent) => {
    current = await start(event);
    try {
      const data = await current.data;
      if (options.pages) assertPagesOutsideRegistry(data, options.pages.path);
      // The registry is published before Eleventy renders the pages, not after: Eleventy keeps
      // every page's HTML until the build ends, and at 10,000 tags the publish's own peak on top
      // of it was most of the build's memory (issue 18). The cost: pages no longer render while
      // blobs download (rendering is a small share of a cold build).
      if (current.kind === 'fresh' && writesFiles(event)) current = { ...current, published: await publish(current) };
    } catch (err) {
      await closeQuietly(current);
      current = undefined;
      fail(err);
    }
  });

  /** Waits for the blobs and writes v2/ and the host files; remembers what the hosts read of the site. */
  const publish = async (build: Current & { kind: 'fresh' }): Promise<Published> => {
    const { helmIndex, publishRegistry, selectHosts, siteFilesRead } = await machinery();
    const resolved = await build.resolved;
    try {
      // The Helm repository's index.yaml is published with the registry (one more URL for the hosts).
      const index = helmIndex(await build.data);
      if (index) {
        resolved.layout.paths.push(index.path);
        resolved.layout.bodies.set(index.path.file, index.body);
      }
      const summary = await publishRegistry(resolved, {
        outputDir: build.outputDir,
        hosts: options.hosts,
        hostOptions: { netlify: options.netlify },
        linkMode: options.linkMode,
        logger,
        ...(options.blobs ? { blobs: options.blobs, progressTty: progressTty() } : {}),
      });
      return { summary, siteFiles: await readSiteFiles(build.outputDir, siteFilesRead(selectHosts(options.hosts))) };
    } finally {
      await closeQuietly(build);
    }
  };

  /** Host files rendered again from the output as it is now (its own `_headers` copied over ours). */
  const renderHostFilesAgain = async (outputDir: string, paths: PublishedPath[]): Promise<void> => {
    const { renderHosts, selectHosts, writeHostFiles } = await machinery();
    const rendered = await renderHosts(selectHosts(options.hosts), outputDir, paths, { netlify: options.netlify });
    await writeHostFiles(outputDir, rendered.files);
  };

  eleventyConfig.on('eleventy.after', async (event: BuildEvent) => {
    const build = current;
    current = undefined;
    if (!build) return;
    if (event.outputMode && event.outputMode !== 'fs') return void (await closeQuietly(build));
    if (build.kind === 'reused') {
      // The site's own passthrough `_headers` may have been copied over ours: render host files again.
      await renderHostFilesAgain(build.outputDir, build.paths);
      logger.info(`${path.basename(imagesFile)} unchanged: registry kept as built`);
      return;
    }
    if (!build.published) return void (await closeQuietly(build));
    const { selectionLine } = await machinery();
    const { summary, siteFiles } = build.published;
    try {
      // Eleventy wrote the site after the registry was published: where it wrote a file the hosts'
      // files are made from (a passthrough `_headers`, a 404 page), render them again.
      const now = await readSiteFiles(build.outputDir, [...siteFiles.keys()]);
      if ([...siteFiles].some(([file, before]) => !sameBytes(before, now.get(file)))) await renderHostFilesAgain(build.outputDir, summary.paths);
    } catch (err) {
      fail(err);
    }
    last = { key: build.key, outputDir: build.outputDir, paths: summary.paths, data: await build.data };
    for (const f of summary.filtered) logger.summary(`${f.image}: platform filter published index ${f.to} (upstream ${f.from})`);
    for (const s of summary.selections) logger.summary(selectionLine(s));
    logger.summary(summary.line);
  });
}

/** Does this build write files (not `--to=json`/`ndjson`)? */
function writesFiles(event: BuildEvent): boolean {
  return !event.outputMode || event.outputMode === 'fs';
}

/** The bytes of each of `files` in `outDir` (undefined: absent). */
async function readSiteFiles(outDir: string, files: readonly string[]): Promise<Map<string, Buffer | undefined>> {
  return new Map(await Promise.all(files.map(async (f) => [f, await readFile(path.join(outDir, f)).catch(() => undefined)] as const)));
}

function sameBytes(a: Buffer | undefined, b: Buffer | undefined): boolean {
  return a === undefined || b === undefined ? a === b : a.equals(b);
}

/** Lets the downloads settle and closes the connection pool, whatever happened. */
async function closeQuietly(build: Current | undefined): Promise<void> {
  if (build?.kind !== 'fresh') return;
  const resolved = await build.resolved.catch(() => undefined);
  if (!resolved) return;
  await resolved.downloads().catch(() => {});
  await resolved.close();
}

/** With the pages at `/`, a repository named `v2/…` would put its page inside the registry. */
function assertPagesOutsideRegistry(data: RegistryData, pagesPath: string): void {
  const clash = data.repositories.find((r) => `${pagesPath}${r.name}/`.startsWith('/v2/'));
  if (clash) {
    throw new RegistrishError(`the page of repository "${clash.name}" would be ${pagesPath}${clash.name}/, inside the registry's /v2/`, {
      hint: 'Move the pages (the "pages": { "path": "/images/" } option) or rename the repository in images.json.',
    });
  }
}

async function fileKey(file: string): Promise<string> {
  try {
    return createHash('sha256').update(await readFile(file)).digest('hex');
  } catch {
    return 'missing';
  }
}

async function exists(p: string): Promise<boolean> {
  try {
    await access(p);
    return true;
  } catch {
    return false;
  }
}
