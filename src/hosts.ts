import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { RegistrishError } from './errors.ts';
import { checkNetlifyLimits, mergeHeadersFile, renderNetlifyHeaders } from './netlify.ts';
import { checkApache, renderApache } from './apache.ts';
import { checkCloudflare, renderCloudflare } from './cloudflare.ts';
import { checkNginx, renderNginx } from './nginx.ts';
import type { PublishedPath } from './types.ts';

// Host writers turn the neutral path descriptions into one host's configuration files. They know
// nothing about registries or the plan: adding a host means adding an entry here. They only
// render; the output stage writes the files together with the tree, so the two never disagree.

export interface HostCheck {
  errors: string[];
  warnings: string[];
}

export interface HostFile {
  /** Path relative to the output folder. */
  file: string;
  text: string;
}

export interface HostWriter {
  readonly name: string;
  /** Limits of the host; errors stop the build before anything is replaced in the output. */
  check(paths: PublishedPath[]): HostCheck;
  /** The host's configuration files (may read what the output holds now, e.g. a site's own `_headers`). */
  render(outDir: string, paths: PublishedPath[]): Promise<{ files: HostFile[]; warnings: string[] }>;
}

const netlify: HostWriter = {
  name: 'netlify',
  check: checkNetlifyLimits,
  async render(outDir, paths) {
    let existing: string | undefined;
    try {
      existing = await readFile(path.join(outDir, '_headers'), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const merged = mergeHeadersFile(existing, renderNetlifyHeaders(paths));
    return { files: [{ file: '_headers', text: merged.text }], warnings: merged.warnings };
  },
};

// nginx, Apache and Cloudflare Pages writers (src/nginx.ts, src/apache.ts, src/cloudflare.ts).
const nginx: HostWriter = { name: 'nginx', check: checkNginx, render: renderNginx };
const apache: HostWriter = { name: 'apache', check: checkApache, render: renderApache };
const cloudflare: HostWriter = { name: 'cloudflare', check: checkCloudflare, render: renderCloudflare };

export const HOST_WRITERS: Readonly<Record<string, HostWriter>> = { netlify, nginx, apache, cloudflare };

/** Renders every selected host's files, prefixing warnings with the host's name. */
export async function renderHosts(
  writers: HostWriter[],
  outDir: string,
  paths: PublishedPath[],
): Promise<{ files: HostFile[]; warnings: string[] }> {
  const files: HostFile[] = [];
  const warnings: string[] = [];
  const owner = new Map<string, string>();
  for (const w of writers) {
    const r = await w.render(outDir, paths);
    for (const f of r.files) {
      const other = owner.get(f.file);
      // Netlify and Cloudflare Pages both read `_headers`, with different rules: one output, one host.
      if (other) throw new RegistrishError(`hosts "${other}" and "${w.name}" both write ${f.file}: build them into separate output folders`);
      owner.set(f.file, w.name);
    }
    files.push(...r.files);
    warnings.push(...r.warnings.map((m) => `${w.name}: ${m}`));
  }
  return { files, warnings };
}
