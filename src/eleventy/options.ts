import { writableHostNames } from '../hosts/index.ts';
import { NETLIFY_HEADERS_FORMS, type NetlifyOptions } from '../hosts/netlify.ts';
import { hostProblem } from '../model/reference.ts';
import type { PagesConfig } from '../pages/templates.ts';
import { blobUrlProblem, normalizeBlobUrl, type BlobStoreConfig } from '../publish/blob-store.ts';
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
  /**
   * Pages about the registry (a catalog, a page per repository and per tag): `true` (at `/images/`),
   * `false`, or `{ path, layout, title }` to move them, wrap them in a layout of the site's, or name the site.
   */
  pages?: boolean | PagesOption;
  /**
   * `host[:port]` clients pull from, for the commands on the pages. Default: Netlify's `URL` in a
   * Netlify build, else the pages fill in the address they are served at.
   */
  registryHost?: string;
  /**
   * Netlify's `_headers`: `{ headers: "exact" }` (one rule per URL, with Docker-Content-Digest),
   * `"compact"` (rules per repository, whatever the number of tags) or `"auto"` (the default: exact
   * while Netlify's build reads it fast, compact above).
   */
  netlify?: NetlifyOptions;
  /**
   * Name every image's source on the pages and in the `registry` data, also those read with
   * credentials or from a path on the build machine (`oci:`, archives). Default false: only
   * sources read anonymously from a registry are named.
   */
  showPrivateSources?: boolean;
  /**
   * The classic Helm repository: when the registry publishes charts, an `index.yaml` at
   * `<path>index.yaml` (default `/charts/`), so `helm repo add NAME https://HOST/charts` works.
   * `false` writes none.
   */
  helmRepository?: boolean | { path?: string };
  /**
   * Blobs in an object store instead of the site: `{ url, store?, endpoint? }`. Every blob URL is
   * answered with a 307 to `url`; with `store` (`s3://bucket/prefix`) the build uploads what it lacks first.
   */
  blobs?: BlobsOption;
}

export interface BlobsOption {
  /** Public address of the store's root, where clients are sent (https; http only for loopback). */
  url: string;
  /** `s3://bucket[/prefix]`: the build uploads every blob the store lacks, before it writes v2/. */
  store?: string;
  /** S3 API endpoint of the store, e.g. `https://<account>.r2.cloudflarestorage.com`. */
  endpoint?: string;
}

export interface PagesOption {
  /** Where the catalog lives; repositories below it. Default `/images/`. */
  path?: string;
  /** A layout of the site's own (in its includes folder) to wrap every page in. */
  layout?: string;
  /** The site's name, in the pages' header and titles. Default "Container registry". */
  title?: string;
}

/** The options after defaults and checks. */
export interface ResolvedOptions extends Required<Omit<RegistrishOptions, 'pages' | 'registryHost' | 'helmRepository' | 'blobs'>> {
  pages: PagesConfig | false;
  /** Where the Helm repository's index.yaml goes (`/charts/`), or false. */
  helmRepository: { path: string } | false;
  registryHost?: string;
  blobs?: BlobStoreConfig;
}

export const DEFAULT_PAGES: PagesConfig = { path: '/images/', title: 'Container registry' };

export const DEFAULT_OPTIONS: Required<Omit<RegistrishOptions, 'registryHost' | 'blobs'>> = {
  netlify: { headers: 'auto' },
  images: 'images.json',
  cacheDir: '.cache/registrish',
  hosts: ['netlify'],
  concurrency: 6,
  imageConcurrency: 8,
  linkMode: 'hardlink',
  verbose: true,
  pages: true,
  showPrivateSources: false,
  helmRepository: true,
};

export const DEFAULT_HELM_REPOSITORY_PATH = '/charts/';

const PAGE_KEYS = ['path', 'layout', 'title'];

/** Merges options over the defaults and rejects anything else, naming the plugin and the option. */
export function resolveOptions(options: RegistrishOptions = {}): ResolvedOptions {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new RegistrishError(`${PREFIX} options must be an object`);
  }
  const known = [...Object.keys(DEFAULT_OPTIONS), 'registryHost', 'blobs'];
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
  if (typeof o.showPrivateSources !== 'boolean') throw bad('showPrivateSources', 'true or false');
  const out: ResolvedOptions = {
    ...o,
    pages: resolvePages(o.pages, bad),
    netlify: resolveNetlify(o.netlify, bad),
    helmRepository: resolveHelmRepository(o.helmRepository, bad),
    blobs: undefined,
  };
  if (out.pages && out.helmRepository && out.helmRepository.path === out.pages.path) {
    throw bad('helmRepository.path', `another path than the pages' (${out.pages.path})`);
  }
  if (options.registryHost !== undefined) {
    const h = options.registryHost;
    if (typeof h !== 'string' || /^[a-z][a-z0-9+.-]*:\/\//iu.test(h) || hostProblem(h)) {
      throw bad('registryHost', `a host[:port] clients pull from, e.g. "registry.example.com" (no https://, no path)${typeof h === 'string' && hostProblem(h) && !/:\/\//u.test(h) ? `: ${hostProblem(h)}` : ''}`);
    }
    out.registryHost = h;
  }
  if (options.blobs !== undefined) out.blobs = resolveBlobs(options.blobs, bad);
  return out;
}

const BLOB_KEYS = ['url', 'store', 'endpoint'];

/** The `blobs` option: where clients are sent, and where (if anywhere) the build uploads. */
function resolveBlobs(value: unknown, bad: (name: string, want: string) => RegistrishError): BlobStoreConfig {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw bad('blobs', 'an object like { url: "https://pub-1234.r2.dev/", store: "s3://bucket/prefix" }');
  }
  const v = value as Record<string, unknown>;
  for (const key of Object.keys(v)) {
    if (!BLOB_KEYS.includes(key)) throw new RegistrishError(`${PREFIX} unknown option "blobs.${key}" (known: ${BLOB_KEYS.join(', ')})`);
  }
  if (typeof v.url !== 'string' || v.url === '') throw bad('blobs.url', 'the public address of the store, e.g. "https://pub-1234.r2.dev/"');
  const urlProblem = blobUrlProblem(v.url);
  if (urlProblem) throw bad('blobs.url', `a public address clients can be sent to: ${JSON.stringify(v.url)} ${urlProblem}`);
  const out: BlobStoreConfig = { url: normalizeBlobUrl(v.url) };
  if (v.store !== undefined) {
    const m = typeof v.store === 'string' ? /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/u.exec(v.store) : null;
    const prefix = (m?.[2] ?? '').replace(/\/+$/u, '');
    if (!m || (prefix !== '' && prefix.split('/').some((s) => s === '' || s === '.' || s === '..' || /%|\s/u.test(s)))) {
      throw bad('blobs.store', `s3://BUCKET or s3://BUCKET/PREFIX (a valid bucket name; no empty, "." or ".." segments), got ${JSON.stringify(v.store)}`);
    }
    out.store = { bucket: m[1]!, prefix: prefix ? `${prefix}/` : '' };
  }
  if (v.endpoint !== undefined) {
    let ok = false;
    try {
      const e = new URL(String(v.endpoint));
      ok = typeof v.endpoint === 'string' && (e.protocol === 'https:' || e.protocol === 'http:') && !e.username && !e.password && !e.search;
    } catch {
      ok = false;
    }
    if (!ok) throw bad('blobs.endpoint', 'the S3 API endpoint as an http(s) URL without credentials, e.g. "https://<account>.r2.cloudflarestorage.com"');
    if (!out.store) throw bad('blobs.endpoint', 'given together with blobs.store (it is where the build uploads)');
    out.endpoint = v.endpoint as string;
  }
  return out;
}

function resolveNetlify(value: unknown, bad: (name: string, want: string) => RegistrishError): NetlifyOptions {
  const forms = NETLIFY_HEADERS_FORMS.map((f) => `"${f}"`).join(', ');
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw bad('netlify', `an object like { headers: "auto" }`);
  const v = value as Record<string, unknown>;
  for (const key of Object.keys(v)) {
    if (key !== 'headers') throw new RegistrishError(`${PREFIX} unknown option "netlify.${key}" (known: headers)`);
  }
  if (v.headers === undefined) return { headers: 'auto' };
  if (!NETLIFY_HEADERS_FORMS.includes(v.headers as never)) throw bad('netlify.headers', `one of ${forms}`);
  return { headers: v.headers as NetlifyOptions['headers'] };
}

function resolveHelmRepository(value: unknown, bad: (name: string, want: string) => RegistrishError): { path: string } | false {
  if (value === false) return false;
  if (value === true) return { path: DEFAULT_HELM_REPOSITORY_PATH };
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw bad('helmRepository', 'true, false or an object like { path: "/charts/" }');
  const v = value as Record<string, unknown>;
  for (const key of Object.keys(v)) {
    if (key !== 'path') throw new RegistrishError(`${PREFIX} unknown option "helmRepository.${key}" (known: path)`);
  }
  const p = v.path ?? DEFAULT_HELM_REPOSITORY_PATH;
  if (typeof p !== 'string' || !/^\/(?:[A-Za-z0-9._~-]+\/)*$/u.test(p) || p.split('/').some((s) => s === '.' || s === '..')) {
    throw bad('helmRepository.path', 'a URL path that starts and ends with "/", like "/charts/"');
  }
  if (p === '/v2/' || p.startsWith('/v2/')) throw bad('helmRepository.path', 'outside /v2/ (the registry itself lives there)');
  return { path: p };
}

function resolvePages(value: unknown, bad: (name: string, want: string) => RegistrishError): PagesConfig | false {
  if (value === false) return false;
  if (value === true) return { ...DEFAULT_PAGES };
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw bad('pages', 'true, false or an object like { path: "/images/" }');
  const v = value as Record<string, unknown>;
  for (const key of Object.keys(v)) {
    if (!PAGE_KEYS.includes(key)) throw new RegistrishError(`${PREFIX} unknown option "pages.${key}" (known: ${PAGE_KEYS.join(', ')})`);
  }
  const pages: PagesConfig = { ...DEFAULT_PAGES };
  if (v.path !== undefined) {
    const p = v.path;
    // A path of the site: never the registry's own /v2/, nothing a URL or a folder name would bend.
    if (typeof p !== 'string' || !/^\/(?:[A-Za-z0-9._~-]+\/)*$/u.test(p) || p.split('/').some((s) => s === '.' || s === '..')) {
      throw bad('pages.path', 'a URL path that starts and ends with "/", like "/images/"');
    }
    if (p === '/v2/' || p.startsWith('/v2/')) throw bad('pages.path', 'outside /v2/ (the registry itself lives there)');
    pages.path = p;
  }
  if (v.layout !== undefined) {
    if (typeof v.layout !== 'string' || v.layout === '') throw bad('pages.layout', 'the name of a layout in your includes folder, e.g. "base.njk"');
    pages.layout = v.layout;
  }
  if (v.title !== undefined) {
    if (typeof v.title !== 'string' || v.title.trim() === '') throw bad('pages.title', 'a non-empty string');
    pages.title = v.title;
  }
  return pages;
}

