import { readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { checkNetlifyLimits, mergeHeadersFile, renderNetlifyHeaders } from './netlify.ts';
import type { PublishedPath } from './types.ts';

// Host writers turn the neutral path descriptions into one host's configuration. They know
// nothing about registries or the plan: adding a host means adding an entry here.

export interface HostCheck {
  errors: string[];
  warnings: string[];
}

export interface HostWriter {
  readonly name: string;
  /** Limits of the host; errors stop the build before anything is replaced in the output. */
  check(paths: PublishedPath[]): HostCheck;
  /** Writes the host's configuration into the output folder; returns warnings. */
  write(outDir: string, paths: PublishedPath[]): Promise<string[]>;
}

const netlify: HostWriter = {
  name: 'netlify',
  check: checkNetlifyLimits,
  async write(outDir, paths) {
    const file = path.join(outDir, '_headers');
    let existing: string | undefined;
    try {
      existing = await readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const merged = mergeHeadersFile(existing, renderNetlifyHeaders(paths));
    const tmp = `${file}.registrish-${process.pid}`;
    await writeFile(tmp, merged.text);
    await rename(tmp, file);
    return merged.warnings;
  },
};

export const HOST_WRITERS: Readonly<Record<string, HostWriter>> = { netlify };
