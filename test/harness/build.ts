// One registry build for a test: buildRegistry with the options every test spells the same way
// (small pools, no Docker config of the machine's, fast retries), and the warnings it logged.
import path from 'node:path';
import { buildRegistry, type BuildOptions, type BuildSummary } from '../../src/build.ts';

export interface TestBuild {
  summary: BuildSummary;
  info: string[];
  warnings: string[];
}

/** Builds `images` into `out` with the cache in `cache`; anything in `extra` overrides the defaults. */
export async function testBuild(images: string, out: string, cache: string, extra: Partial<BuildOptions> = {}): Promise<TestBuild> {
  const info: string[] = [];
  const warnings: string[] = [];
  const summary = await buildRegistry({
    images,
    outputDir: out,
    cacheDir: cache,
    hosts: ['netlify'],
    imageConcurrency: 4,
    blobConcurrency: 4,
    linkMode: 'hardlink',
    logger: { info: (m) => info.push(m), warn: (m) => warnings.push(m) },
    env: { DOCKER_CONFIG: path.join(path.dirname(cache), 'no-docker-config') },
    http: { maxRetries: 1, retryBaseMs: 10 },
    ...extra,
  });
  return { summary, info, warnings };
}
