import { OCI_INDEX } from '../model/media-types.ts';
import type { PublishedPath } from '../model/published-path.ts';
import type { Plan } from '../resolve/plan.ts';
import { RegistrishError } from '../util/errors.ts';
import { compareStrings } from '../util/format.ts';

// The plan laid out as a registry's URLs: every path with its type, digest and size (what host
// writers render), and the small JSON bodies the tree holds besides manifests and blobs.
// Pure: no file system. Computed once per build.

export const JSON_TYPE = 'application/json';
export const BLOB_TYPE = 'application/octet-stream';
/** `GET /v2/` answers this (podman, skopeo and CRI-O refuse a registry whose `/v2/` is 404). */
export const BASE_BODY = '{}\n';

export interface RegistryLayout {
  paths: PublishedPath[];
  /** File (relative to the output) → text, for every path that is not a manifest or blob. */
  bodies: Map<string, string>;
}

/** Every URL of the registry described by the plan, and the JSON bodies behind the non-content ones. */
export function layoutRegistry(plan: Plan): RegistryLayout {
  const paths: PublishedPath[] = [];
  const bodies = new Map<string, string>();
  const json = (urlPath: string, file: string, kind: PublishedPath['kind'], body: string) => {
    paths.push({ urlPath, file, kind, contentType: JSON_TYPE, size: Buffer.byteLength(body), immutable: false });
    bodies.set(file, body);
  };
  json('/v2/', 'v2/index.html', 'base', BASE_BODY);
  json('/v2/_catalog', 'v2/_catalog', 'catalog', JSON.stringify({ repositories: [...plan.repos.keys()].sort(compareStrings) }) + '\n');
  for (const repo of [...plan.repos.values()].sort((a, b) => compareStrings(a.name, b.name))) {
    const base = `v2/${repo.name}`;
    json(`/${base}/tags/list`, `${base}/tags/list`, 'tags', JSON.stringify({ name: repo.name, tags: [...repo.tags.keys()].sort(compareStrings) }) + '\n');
    for (const [tag, digest] of [...repo.tags].sort(([a], [b]) => compareStrings(a, b))) {
      const m = repo.manifests.get(digest)!;
      paths.push({ urlPath: `/${base}/manifests/${tag}`, file: `${base}/manifests/${tag}`, kind: 'manifest', contentType: m.mediaType, digest, size: m.size, immutable: false });
    }
    for (const [digest, m] of [...repo.manifests].sort(([a], [b]) => compareStrings(a, b))) {
      paths.push({ urlPath: `/${base}/manifests/${digest}`, file: `${base}/manifests/${digest}`, kind: 'manifest', contentType: m.mediaType, digest, size: m.size, immutable: true });
    }
    for (const [digest, size] of [...repo.blobs].sort(([a], [b]) => compareStrings(a, b))) {
      paths.push({ urlPath: `/${base}/blobs/${digest}`, file: `${base}/blobs/${digest}`, kind: 'blob', contentType: BLOB_TYPE, digest, size, immutable: true });
    }
    // The referrers API, answered statically: the index of each looked-up subject (empty when it has none).
    for (const [subject, index] of [...repo.referrers].sort(([a], [b]) => compareStrings(a, b))) {
      const file = `${base}/referrers/${subject}`;
      paths.push({ urlPath: `/${file}`, file, kind: 'referrers', contentType: OCI_INDEX, digest: index.digest, size: index.size, immutable: false });
    }
  }
  assertNoFileDirClash(paths);
  return { paths, bodies };
}

/** Every URL of the registry described by the plan. */
export function describePaths(plan: Plan): PublishedPath[] {
  return layoutRegistry(plan).paths;
}

/**
 * A repository named like a file of another (`foo/tags/list` next to `foo`'s tag list) would need
 * one path to be both a file and a folder: refuse with the names instead of failing in mkdir.
 */
function assertNoFileDirClash(paths: PublishedPath[]): void {
  const files = new Set(paths.map((p) => p.file));
  for (const p of paths) {
    const parts = p.file.split('/');
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      if (files.has(dir)) {
        throw new RegistrishError(`published paths clash: "${dir}" would be a file and also the folder of "${p.file}"`, {
          hint: 'Rename one of the repositories in images.json ("name").',
        });
      }
    }
  }
}

