import { createHash } from 'node:crypto';
import { access, readFile } from 'node:fs/promises';
import path from 'node:path';
import { buildRegistry, formatError, type BuildSummary, type Logger } from './build.ts';
import { RegistrishError } from './errors.ts';
import { HOST_WRITERS, renderHosts } from './hosts.ts';
import { writeHostFiles } from './output.ts';
import type { PublishedPath } from './types.ts';

// The Eleventy glue: options merged over defaults and validated, one build per Eleventy build
// (skipped in --serve/--watch when images.json did not change), logs with a prefix and one
// summary line.

export interface RegistrishOptions {
  /** images.json, relative to the working directory. */
  images?: string;
  /** Content-addressed cache, reused across builds (persist it on Netlify: see README). */
  cacheDir?: string;
  /** Host configurations to write into the output. */
  hosts?: string[];
  /** Blob downloads at once. */
  concurrency?: number;
  /** Images resolved at once. */
  imageConcurrency?: number;
  /** `hardlink` (default) shares bytes between the cache and the output; `copy` never does. */
  linkMode?: 'hardlink' | 'copy';
  /** Log one line per image (the summary line is always printed). */
  verbose?: boolean;
}

export const DEFAULT_OPTIONS: Required<RegistrishOptions> = {
  images: 'images.json',
  cacheDir: '.cache/registrish',
  hosts: ['netlify'],
  concurrency: 6,
  imageConcurrency: 8,
  linkMode: 'hardlink',
  verbose: true,
};

const PREFIX = '[registrish]';

/** Merges options over the defaults and rejects anything else, naming the plugin and the option. */
export function resolveOptions(options: RegistrishOptions = {}): Required<RegistrishOptions> {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new RegistrishError(`${PREFIX} options must be an object`);
  }
  const known = Object.keys(DEFAULT_OPTIONS);
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) throw new RegistrishError(`${PREFIX} unknown option "${key}" (known: ${known.join(', ')})`);
  }
  const o = { ...DEFAULT_OPTIONS, ...options };
  const bad = (name: string, want: string) => new RegistrishError(`${PREFIX} option "${name}" must be ${want}`);
  if (typeof o.images !== 'string' || !o.images) throw bad('images', 'a path to images.json');
  if (typeof o.cacheDir !== 'string' || !o.cacheDir) throw bad('cacheDir', 'a folder path');
  if (!Array.isArray(o.hosts) || o.hosts.some((h) => typeof h !== 'string' || !HOST_WRITERS[h])) {
    throw bad('hosts', `a list of: ${Object.keys(HOST_WRITERS).join(', ')}`);
  }
  for (const k of ['concurrency', 'imageConcurrency'] as const) {
    if (!Number.isInteger(o[k]) || o[k] < 1 || o[k] > 64) throw bad(k, 'a whole number from 1 to 64');
  }
  if (o.linkMode !== 'hardlink' && o.linkMode !== 'copy') throw bad('linkMode', '"hardlink" or "copy"');
  if (typeof o.verbose !== 'boolean') throw bad('verbose', 'true or false');
  return o;
}

interface EleventyLogger {
  logWithOptions?(o: { message: string; prefix?: string; type?: string; color?: string; force?: boolean }): void;
}

// Only the bits of Eleventy's config API this plugin uses (Eleventy ships no types).
interface EleventyConfigLike {
  logger?: EleventyLogger;
  addWatchTarget(target: string): void;
  watchIgnores?: Set<string>;
  on(event: string, fn: (arg: any) => unknown): void;
}

function makeLogger(eleventyConfig: EleventyConfigLike, verbose: boolean): Logger & { summary(m: string): void } {
  const emit = (message: string, type: 'info' | 'warn', force: boolean) => {
    const l = eleventyConfig.logger;
    if (l?.logWithOptions) l.logWithOptions({ message, prefix: PREFIX, type: type === 'warn' ? 'warn' : 'log', color: type === 'warn' ? 'yellow' : undefined, force });
    else (type === 'warn' ? console.warn : console.log)(`${PREFIX} ${message}`);
  };
  return {
    info: (m) => verbose && emit(m, 'info', false),
    warn: (m) => emit(m, 'warn', true),
    summary: (m) => emit(m, 'info', true),
  };
}

export default function registrish(eleventyConfig: EleventyConfigLike, userOptions: RegistrishOptions = {}): void {
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
      const rendered = await renderHosts(options.hosts.map((h) => HOST_WRITERS[h]!), outputDir, lastBuilt.paths);
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

export { buildRegistry, formatError } from './build.ts';
export type { BuildOptions, BuildSummary, Logger } from './build.ts';
export { startPreviewServer } from './serve.ts';
export { renderNetlifyHeaders } from './netlify.ts';
export { headersFor } from './headers.ts';
export { HOST_WRITERS, type HostWriter } from './hosts.ts';
export { RegistrishError } from './errors.ts';
export type { ImageSpec, PublishedPath, RegistrishConfig } from './types.ts';
