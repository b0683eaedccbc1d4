import { createHash } from 'node:crypto';
import { access, readFile } from 'node:fs/promises';
import path from 'node:path';
import { buildRegistry, selectHosts, type BuildSummary } from '../build.ts';
import { renderHosts } from '../hosts/host.ts';
import type { PublishedPath } from '../model/published-path.ts';
import { writeHostFiles } from '../publish/tree.ts';
import { formatError, RegistrishError } from '../util/errors.ts';
import { makeLogger, type EleventyLogger } from './logger.ts';
import { PREFIX, resolveOptions, type RegistrishOptions } from './options.ts';

// The Eleventy glue: one build per Eleventy build (skipped in --serve/--watch when images.json did
// not change), logs with a prefix and one summary line.

/** Only the bits of Eleventy's config API this plugin uses (Eleventy ships no types). */
export interface EleventyConfigLike {
  logger?: EleventyLogger;
  addWatchTarget(target: string): void;
  watchIgnores?: Set<string>;
  on(event: string, fn: (arg: any) => unknown): void;
}

export function registrish(eleventyConfig: EleventyConfigLike, userOptions: RegistrishOptions = {}): void {
  const options = resolveOptions(userOptions);
  const logger = makeLogger(eleventyConfig, options.verbose);
  eleventyConfig.addWatchTarget(options.images);

  eleventyConfig.watchIgnores?.add(`${options.cacheDir.replace(/\/+$/, '')}/**`);

  // In --serve/--watch, a template edit rebuilds the site: keep the registry unless images.json changed.
  let lastBuilt: { key: string; outputDir: string; paths: PublishedPath[] } | undefined;

  eleventyConfig.on('eleventy.after', async (event: { directories?: { output?: string }; dir?: { output?: string }; outputMode?: string; runMode?: string }) => {
    if (event.outputMode && event.outputMode !== 'fs') return;
    const outputDir = path.resolve(event.directories?.output ?? event.dir?.output ?? '_site');
    const imagesFile = path.resolve(options.images);
    const key = await fileKey(imagesFile);
    if (event.runMode !== 'build' && lastBuilt?.key === key && lastBuilt.outputDir === outputDir && (await exists(path.join(outputDir, 'v2')))) {
      // The site's own passthrough `_headers` may have been copied over ours: render host files again.
      const rendered = await renderHosts(selectHosts(options.hosts), outputDir, lastBuilt.paths);
      await writeHostFiles(outputDir, rendered.files);
      logger.info(`${path.basename(imagesFile)} unchanged: registry kept as built`);
      return;
    }
    let summary: BuildSummary;
    try {
      summary = await buildRegistry({
        images: imagesFile,
        outputDir,
        cacheDir: path.resolve(options.cacheDir),
        hosts: options.hosts,
        imageConcurrency: options.imageConcurrency,
        blobConcurrency: options.concurrency,
        linkMode: options.linkMode,
        logger,
      });
    } catch (err) {
      // Eleventy prints the error and exits non-zero; the message is already redacted.
      throw new RegistrishError(`${PREFIX} build failed: ${formatError(err)}`);
    }
    lastBuilt = { key, outputDir, paths: summary.paths };
    for (const f of summary.filtered) logger.summary(`${f.image}: platform filter published index ${f.to} (upstream ${f.from})`);
    logger.summary(summary.line);
  });
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
