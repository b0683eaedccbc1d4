import { isLoopbackHost } from '../model/reference.ts';
import type { PublishedPath } from '../model/published-path.ts';
import { RegistrishError } from '../util/errors.ts';
import type { RegistryLayout } from './paths.ts';

// Blobs elsewhere (the `blobs` option): the site keeps manifests, tags lists and referrers, and
// answers every blob URL `/v2/<name>/blobs/<digest>` with a 307 to an object store, as Docker Hub,
// GHCR and distribution's `storage.redirect` do. 307, not 302: a HEAD stays a HEAD.
//
// Object layout in the store: one object per digest, shared by every repository,
//   <prefix>blobs/<digest>            e.g. mirror/blobs/sha256:9f86d0…
// and clients are sent to `<url><prefix>blobs/<digest>`. The digest stays whole (with its `:`) so
// that one placeholder rule of Netlify's or Cloudflare's `_redirects` (`/v2/<name>/blobs/:digest`)
// can name it: neither can split `sha256:<hex>` into two segments.

export interface BlobStoreConfig {
  /** Public address of the store's root (where `<prefix>blobs/<digest>` is served), ending in `/`. */
  url: string;
  /** Where the build uploads what the store lacks; absent: blobs are uploaded by `registrish deploy --blobs`. */
  store?: { bucket: string; prefix: string };
  /** S3 API endpoint for the upload (default: AWS_ENDPOINT_URL, else AWS S3 in AWS_REGION). */
  endpoint?: string;
}

/** The store key of a blob: `<prefix>blobs/<digest>` (prefix '' or ending in '/'). */
export function blobKey(prefix: string, digest: string): string {
  return `${prefix}blobs/${digest}`;
}

/** The URL clients are sent to for a blob. */
export function blobLocation(config: BlobStoreConfig, digest: string): string {
  return config.url + blobKey(config.store?.prefix ?? '', digest);
}

/** Why `text` cannot be the `url` clients are redirected to, or undefined. */
export function blobUrlProblem(text: string): string | undefined {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    return 'is not a URL';
  }
  if (u.protocol !== 'https:' && !(u.protocol === 'http:' && isLoopbackHost(u.host))) {
    return 'must be https:// (clients refuse to follow a redirect from a registry to plain HTTP; http:// only for localhost or 127.0.0.1)';
  }
  if (u.username || u.password) return 'must not carry credentials (the URL is public: every client is sent to it)';
  if (u.search || u.hash) return 'must not have a query or fragment';
  // Rendered into nginx, Apache and _redirects rules: nothing those would read as syntax.
  if (/[\s"'\\$%{}<>;`]/u.test(u.href.replace(/%[0-9A-F]{2}/gu, ''))) return 'holds characters a host configuration cannot carry';
  return undefined;
}

/** `url` with exactly one trailing slash. */
export function normalizeBlobUrl(text: string): string {
  return new URL(text).href.replace(/\/*$/u, '/');
}

/** The layout with every blob sent to the store (`location` set): the output will hold no blob file. */
export function placeBlobs(layout: RegistryLayout, config: BlobStoreConfig): RegistryLayout {
  return {
    bodies: layout.bodies,
    paths: layout.paths.map((p) => (p.kind === 'blob' ? { ...p, location: blobLocation(config, p.digest!) } : p)),
  };
}

/** The paths served from files on the site (every path but the blobs kept in a store). */
export function onSite(paths: readonly PublishedPath[]): PublishedPath[] {
  return paths.filter((p) => p.location === undefined);
}

/** What a host needs to render the blob redirects as a handful of pattern rules. */
export interface BlobRedirect {
  /** `Location` = base + digest (e.g. `https://pub-1234.r2.dev/mirror/blobs/`). */
  base: string;
  /** Repositories that have blobs, sorted: the rules match their names only. */
  repositories: string[];
}

/**
 * The blob redirects of a layout, or undefined when every blob is on the site. Every blob's
 * location must be one base + its digest (what placeBlobs writes), or a pattern rule could not
 * say it: anything else is refused rather than rendered wrong.
 */
export function blobRedirect(paths: readonly PublishedPath[]): BlobRedirect | undefined {
  const located = paths.filter((p) => p.kind === 'blob' && p.location !== undefined);
  if (located.length === 0) return undefined;
  const first = located[0]!;
  const base = first.location!.slice(0, first.location!.length - first.digest!.length);
  const repositories = new Set<string>();
  for (const p of located) {
    if (p.location !== base + p.digest) {
      throw new RegistrishError(`${p.urlPath} is sent to ${p.location}, not to ${base}${p.digest}: every blob must live under one store address`);
    }
    repositories.add(/^\/v2\/(.+)\/blobs\/[^/]+$/u.exec(p.urlPath)![1]!);
  }
  if (paths.some((p) => p.kind === 'blob' && p.location === undefined)) {
    throw new RegistrishError('some blobs are on the site and others in the store: a build puts them all in one place');
  }
  return { base, repositories: [...repositories].sort() };
}

/** A regular expression source matching any of these repository names (dots escaped). */
export function repositoryAlternation(names: readonly string[]): string {
  return `(?:${names.map((n) => n.replace(/\./gu, '\\.')).join('|')})`;
}
