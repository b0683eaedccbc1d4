import type { PublishedPath } from '../model/published-path.ts';

// What a registry answers for something it does not have, in one place: every host writer renders
// these answers into its own configuration, `registrish serve` answers them itself, `check` reads
// them back. A registry answers a missing manifest, blob or repository with 404 and the OCI error
// body (distribution-spec, "Error Codes"); clients print its message: docker says `manifest
// unknown` instead of `error parsing HTTP 404 response body: invalid character '<'` (measured).
//
// A static host can only tell a missing thing by its path: a repository it publishes (known at
// build time) gets MANIFEST_UNKNOWN under `manifests/` and BLOB_UNKNOWN under `blobs/`; anything
// else under /v2/ (an unknown repository, or another folder of a known one) gets NAME_UNKNOWN.

export type NotFoundKind = 'manifest' | 'blob' | 'name';

/** The spec's code and message for each kind. */
export const NOT_FOUND_CODES: Record<NotFoundKind, { code: string; message: string }> = {
  manifest: { code: 'MANIFEST_UNKNOWN', message: 'manifest unknown' },
  blob: { code: 'BLOB_UNKNOWN', message: 'blob unknown to registry' },
  name: { code: 'NAME_UNKNOWN', message: 'repository name not known to registry' },
};

export const NOT_FOUND_KINDS: readonly NotFoundKind[] = ['manifest', 'blob', 'name'];

/** The error body's own type, as registries send it (the spec's examples are JSON). */
export const ERROR_CONTENT_TYPE = 'application/json';

/** The body of a 404 for `kind`, one line of JSON. */
export function notFoundBody(kind: NotFoundKind): string {
  const { code, message } = NOT_FOUND_CODES[kind];
  return `${JSON.stringify({ errors: [{ code, message }] })}\n`;
}

/**
 * Where hosts that answer with a file (Netlify, Apache) find each body: `.json`, so that every host
 * types it `application/json` by its extension. `_` starts no repository name, so these can never
 * be a published URL.
 */
export const NOT_FOUND_FILES: Record<NotFoundKind, string> = {
  manifest: 'v2/_errors/manifest-unknown.json',
  blob: 'v2/_errors/blob-unknown.json',
  name: 'v2/_errors/name-unknown.json',
};

/** The repositories a registry publishes (each has a tags/list), sorted. */
export function publishedRepositories(paths: readonly PublishedPath[]): string[] {
  const repos = new Set<string>();
  for (const p of paths) {
    const m = p.kind === 'tags' ? /^\/v2\/(.+)\/tags\/list$/u.exec(p.urlPath) : null;
    if (m) repos.add(m[1]!);
  }
  return [...repos].sort();
}

/**
 * The kind of answer for a missing `urlPath` (decoded), or undefined outside /v2/ (the site's own
 * 404 page). `isRepository(name)` says whether the registry publishes that repository.
 */
export function notFoundKind(urlPath: string, isRepository: (name: string) => boolean): NotFoundKind | undefined {
  if (!urlPath.startsWith('/v2/')) return undefined;
  const m = /^\/v2\/(.+)\/(manifests|blobs)\/[^/]*$/u.exec(urlPath);
  if (m && isRepository(m[1]!)) return m[2] === 'manifests' ? 'manifest' : 'blob';
  return 'name';
}
