import path from 'node:path';
import { RegistrishError } from '../util/errors.ts';
import { quote } from '../util/format.ts';
import { characterProblem } from './characters.ts';

// Digests: the grammar we accept, the guard that keeps `sha256:../../x` out of every path, and the
// `blobs/<algorithm>/<hex>` layout shared by our cache and OCI image layouts.

/** Digests we accept: sha256 and sha512, lowercase hex of the exact length. */
export const DIGEST_PATTERN = 'sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128}';
export const DIGEST_ALLOWED = 'allowed: "sha256:" followed by 64 lowercase hex digits, or "sha512:" followed by 128';
const digestRe = new RegExp(`^(?:${DIGEST_PATTERN})$`);

/** Why `digest` is not one we accept, or undefined when it is. */
export function digestProblem(digest: unknown): string | undefined {
  if (typeof digest !== 'string') return `it is ${digest === undefined ? 'missing' : `a ${typeof digest}, not a string`}`;
  if (digestRe.test(digest)) return undefined;
  if (digest === '') return 'it is empty';
  const chars = characterProblem(digest);
  if (chars) return chars;
  const colon = digest.indexOf(':');
  if (colon < 0) return 'it has no algorithm (expected "sha256:…")';
  const algorithm = digest.slice(0, colon);
  const hex = digest.slice(colon + 1);
  const want = algorithm === 'sha256' ? 64 : algorithm === 'sha512' ? 128 : undefined;
  if (want === undefined) return `the algorithm "${algorithm}" is not supported (only sha256 and sha512)`;
  if (/^[a-fA-F0-9]+$/.test(hex) && hex !== hex.toLowerCase()) return 'its hex digits must be lowercase';
  if (!/^[a-f0-9]*$/.test(hex)) return 'it contains characters other than hex digits';
  return `${algorithm} takes ${want} hex digits, this has ${hex.length}`;
}

export function isValidDigest(digest: unknown): digest is string {
  return typeof digest === 'string' && digestRe.test(digest);
}

/**
 * Throws unless `digest` is a well-formed digest. Call this before a digest becomes part of a
 * file path or URL: it is the guard against `sha256:../../x` coming from an upstream or a layout.
 */
export function assertSafeDigest(digest: unknown, context: string): asserts digest is string {
  const problem = digestProblem(digest);
  if (problem !== undefined) {
    throw new RegistrishError(`${context}: ${quote(digest)} is not a valid digest: ${problem} (${DIGEST_ALLOWED})`);
  }
}

/** `sha256:<hex>` of some bytes. */
export function sha256(bytes: Buffer | Uint8Array | string): string {
  // node:crypto loaded on first use: `registrish serve` imports this module for the digest grammar
  // only, and loading crypto is about 7 ms of its start-up.
  return `sha256:${process.getBuiltinModule('node:crypto').createHash('sha256').update(bytes).digest('hex')}`;
}

/** `<root>/blobs/<algorithm>/<hex>`: the layout of both our cache and an OCI image layout. */
export function digestPath(root: string, digest: string): string {
  assertSafeDigest(digest, root);
  const [algorithm, hex] = digest.split(':') as [string, string];
  return path.join(digestDir(root, algorithm), hex);
}

/** The folder holding every `<algorithm>` digest's content under `root`. */
export function digestDir(root: string, algorithm = 'sha256'): string {
  return path.join(root, 'blobs', algorithm);
}
