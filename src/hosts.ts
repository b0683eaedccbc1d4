import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { checkNetlifyLimits, mergeHeadersFile, renderNetlifyHeaders } from './netlify.ts';
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

export const HOST_WRITERS: Readonly<Record<string, HostWriter>> = { netlify };

/** Renders every selected host's files, prefixing warnings with the host's name. */
export async function renderHosts(
  writers: HostWriter[],
  outDir: string,
  paths: PublishedPath[],
): Promise<{ files: HostFile[]; warnings: string[] }> {
  const files: HostFile[] = [];
  const warnings: string[] = [];
  for (const w of writers) {
    const r = await w.render(outDir, paths);
    files.push(...r.files);
    warnings.push(...r.warnings.map((m) => `${w.name}: ${m}`));
  }
  return { files, warnings };
}
