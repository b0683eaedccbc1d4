import type { PublishedPath } from '../model/published-path.ts';

// The one place that decides which HTTP headers a published path needs.
// Every host writer (Netlify, nginx, S3, …) renders these; none invents its own.

/** Digest-addressed content never changes: let every cache keep it. */
export const IMMUTABLE_CACHE = 'public, max-age=31536000, immutable';
/** Tags, tag lists and the catalog move when the site is rebuilt: keep them short. */
export const MUTABLE_CACHE = 'public, max-age=60';

export type HeaderList = Array<[name: string, value: string]>;

export function headersFor(p: PublishedPath): HeaderList {
  const h: HeaderList = [['Content-Type', p.contentType]];
  // Content addressed by its URL carries its digest; a referrers answer is a listing, not a manifest.
  if (p.digest && p.kind !== 'referrers') h.push(['Docker-Content-Digest', p.digest]);
  if (p.kind === 'base') h.push(['Docker-Distribution-API-Version', 'registry/2.0']);
  h.push(['Cache-Control', p.immutable ? IMMUTABLE_CACHE : MUTABLE_CACHE]);
  // Mirrored content is third-party: never let a browser guess it is a page on this site.
  h.push(['X-Content-Type-Options', 'nosniff']);
  return h;
}
