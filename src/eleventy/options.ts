import { writableHostNames } from '../hosts/index.ts';
import { RegistrishError } from '../util/errors.ts';

// The plugin's options: merged over the defaults and checked, each error naming the plugin and
// the option, the way @11ty/eleventy-img and eleventy-fetch do.

export const PREFIX = '[registrish]';

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
  const hostNames = writableHostNames();
  if (!Array.isArray(o.hosts) || o.hosts.some((h) => typeof h !== 'string' || !hostNames.includes(h))) {
    throw bad('hosts', `a list of: ${hostNames.join(', ')}`);
  }
  for (const k of ['concurrency', 'imageConcurrency'] as const) {
    if (!Number.isInteger(o[k]) || o[k] < 1 || o[k] > 64) throw bad(k, 'a whole number from 1 to 64');
  }
  if (o.linkMode !== 'hardlink' && o.linkMode !== 'copy') throw bad('linkMode', '"hardlink" or "copy"');
  if (typeof o.verbose !== 'boolean') throw bad('verbose', 'true or false');
  return o;
}

