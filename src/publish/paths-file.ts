import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { LinkMode } from '../store/store.ts';
import { isValidDigest } from '../model/digest.ts';
import { MANIFEST_TYPES, OCI_INDEX, YAML_TYPE } from '../model/media-types.ts';
import type { PublishedPath } from '../model/published-path.ts';
import { isValidRepositoryName, isValidTag } from '../model/reference.ts';
import { RegistrishError } from '../util/errors.ts';
import { blobUrlProblem } from './blob-store.ts';
import { BLOB_TYPE, JSON_TYPE } from './paths.ts';

// The paths file: the registry's layout saved beside the tree (`v2/.registrish-paths.json`), so the
// commands that run after a build (`deploy`, `check`) know each file's type and digest. Read back,
// it is trusted for nothing: every entry must be exactly a path the build can write.

/**
 * The neutral description of every URL, saved with the tree (and swapped in with it), so commands
 * that run after the build (`deploy`, `check`) know each file's type and digest without a rebuild.
 * Repository names cannot start with a dot, so no registry URL ever collides with it.
 */
export const PATHS_FILE = 'v2/.registrish-paths.json';

export interface PathsFile {
  version: 1;
  paths: PublishedPath[];
  /** How the tree was written (a rebuild that would write it otherwise cannot keep it). */
  linkMode?: LinkMode;
  /** Every host file written with the tree (a host added or dropped means a rewrite). */
  hostFiles?: string[];
}

/** Reads the description a build left in `outDir`. */
export async function readPathsFile(outDir: string): Promise<PublishedPath[]> {
  const file = path.join(outDir, ...PATHS_FILE.split('/'));
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    throw new RegistrishError(`${file} is missing`, { hint: 'Build the site first (npx eleventy), then run this command on its output folder.' });
  }
  let parsed: PathsFile;
  try {
    parsed = JSON.parse(text) as PathsFile;
  } catch {
    throw new RegistrishError(`${file}: not valid JSON`, { hint: 'Rebuild the site.' });
  }
  if (parsed === null || typeof parsed !== 'object' || parsed.version !== 1 || !Array.isArray(parsed.paths)) {
    throw new RegistrishError(`${file}: unknown format`);
  }
  // Commands that upload these files (deploy) trust nothing here: every entry must be exactly a
  // path the build can write, so a tampered file cannot name `../x` or a type the path does not have.
  parsed.paths.forEach((entry: unknown, i) => {
    const problem = pathEntryProblem(entry);
    if (problem) throw new RegistrishError(`${file}: entry ${i} ${problem}`, { hint: 'Rebuild the site; never edit this file by hand.' });
  });
  return parsed.paths;
}

/** Why a paths-file entry is not one the build writes, or undefined when it is. */
function pathEntryProblem(entry: unknown): string | undefined {
  if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) return 'is not an object';
  const e = entry as Record<string, unknown>;
  const { file, urlPath, kind, contentType, digest, size, immutable } = e;
  if (typeof file !== 'string') return 'has no file';
  const where = `(file ${JSON.stringify(file)})`;
  let expected: { kind: PublishedPath['kind']; url: string; pathDigest?: string; ref?: string };
  if (file === 'v2/index.html') expected = { kind: 'base', url: '/v2/' };
  else if (!file.startsWith('v2/')) {
    // Only the Helm repository's index.yaml lives outside v2/, at a path the options allow.
    if (!/^(?:[A-Za-z0-9_~-][A-Za-z0-9._~-]*\/)*index\.yaml$/u.test(file) || file.split('/').some((s) => s === '..')) return `${where} is not a registry path`;
    expected = { kind: 'helm-index', url: `/${file}` };
  }
  else if (file === 'v2/_catalog') expected = { kind: 'catalog', url: '/v2/_catalog' };
  else {
    const m = /^v2\/(.+)\/(?:(tags\/list)|manifests\/([^/]+)|blobs\/([^/]+)|referrers\/([^/]+))$/u.exec(file);
    if (!m || !isValidRepositoryName(m[1])) return `${where} is not a registry path`;
    if (m[2]) expected = { kind: 'tags', url: `/${file}` };
    else if (m[5] !== undefined) {
      if (!isValidDigest(m[5])) return `${where} names an invalid subject digest`;
      expected = { kind: 'referrers', url: `/${file}` };
    }
    else if (m[3] !== undefined) {
      if (isValidDigest(m[3])) expected = { kind: 'manifest', url: `/${file}`, pathDigest: m[3] };
      else if (isValidTag(m[3])) expected = { kind: 'manifest', url: `/${file}`, ref: m[3] };
      else return `${where} names neither a valid tag nor a valid digest`;
    } else {
      if (!isValidDigest(m[4])) return `${where} names an invalid blob digest`;
      expected = { kind: 'blob', url: `/${file}`, pathDigest: m[4] };
    }
  }
  if (urlPath !== expected.url) return `${where} has urlPath ${JSON.stringify(urlPath)}, expected ${JSON.stringify(expected.url)}`;
  if (kind !== expected.kind) return `${where} has kind ${JSON.stringify(kind)}, expected ${JSON.stringify(expected.kind)}`;
  if (digest !== undefined && !isValidDigest(digest)) return `${where} has an invalid digest`;
  if (expected.pathDigest !== undefined && digest !== expected.pathDigest) return `${where} has digest ${JSON.stringify(digest)}, not the one its path names`;
  if ((expected.kind === 'manifest' || expected.kind === 'referrers') && digest === undefined) return `${where} has no digest`;
  const typeOk =
    expected.kind === 'manifest'
      ? typeof contentType === 'string' && MANIFEST_TYPES.includes(contentType)
      : contentType === (expected.kind === 'blob' ? BLOB_TYPE : expected.kind === 'referrers' ? OCI_INDEX : expected.kind === 'helm-index' ? YAML_TYPE : JSON_TYPE);
  if (!typeOk) return `${where} has contentType ${JSON.stringify(contentType)}, not one a ${expected.kind} is served with`;
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) return `${where} has an invalid size`;
  if (immutable !== (expected.pathDigest !== undefined)) return `${where} has immutable ${JSON.stringify(immutable)}, expected ${expected.pathDigest !== undefined}`;
  return locationProblem(e.location, expected.kind, digest, where);
}

/** A blob kept in a store names where (a public URL ending in its digest); nothing else has a location. */
function locationProblem(location: unknown, kind: PublishedPath['kind'], digest: unknown, where: string): string | undefined {
  if (location === undefined) return undefined;
  if (kind !== 'blob') return `${where} has a location, but only blobs are sent elsewhere`;
  if (typeof location !== 'string' || typeof digest !== 'string' || !location.endsWith(`/${digest}`) || blobUrlProblem(location)) {
    return `${where} has location ${JSON.stringify(location)}, not a public URL ending in its digest`;
  }
  return undefined;
}

