import { compareStrings } from '../util/format.ts';
import type { S3ListedObject } from './s3-client.ts';

// The deploy record: what the last deploy knows it stored, kept in the bucket beside the registry,
// so that the next deploy can tell an unchanged object from the listing alone (a listing shows
// key, size, ETag and LastModified, never headers nor metadata) instead of one HEAD per object.
// It is a cache, never the truth: an entry counts only while the listed object still has the
// entry's ETag and size and was not modified after the entry was made (see storedSame); anything
// else falls back to a HEAD. Why it is safe: docs/hosting-s3.md ("What deploy does").
// Every entry is also true as written: a deploy replaces the record with an in-progress one (the
// entries of the objects it leaves alone) before it changes an object the record names, and
// writes the whole record again last (deploy.ts), so a deploy killed at any instant leaves a
// record that names only objects stored as it says.

/**
 * The record's key under the deploy prefix. Under `v2/` so that the one listing deploy makes shows
 * whether it exists, and `aws s3 sync --exclude 'v2/*' --delete` of the rest of the site leaves it
 * alone; no repository name starts with a dot, so it never collides with a registry path.
 */
export const RECORD_FILE = 'v2/.registrish-deploy.json';

/** What is known about one stored object. */
export interface RecordEntry {
  /** The ETag the store answered (normalizeEtag). */
  etag: string;
  size: number;
  /** sha256 hex of the bytes. */
  sha256: string;
  /** The headers it was stored with, the digest metadata left out (it is `sha256:<sha256>`). */
  headers: Record<string, string>;
  /**
   * Unix seconds no earlier than the object's LastModified: the store's `Date` when it answered
   * our PUT, or the LastModified a HEAD showed. A listed LastModified later than this is a write
   * we did not make.
   */
  stored: number;
}

/** Record entries by key relative to the deploy prefix (`v2/…`). */
export type DeployRecord = Map<string, RecordEntry>;

/** The sha256 a key names for its own bytes (blobs and manifests by digest), written only when it differs. */
function impliedSha256(key: string): string | undefined {
  return /\/(?:blobs|manifests)\/sha256:([0-9a-f]{64})$/u.exec(key)?.[1];
}

/** What the record written last by a deploy says about itself (its `about`). */
const RECORD_ABOUT = 'registrish deploy: what the last deploy stored (docs/hosting-s3.md)';
/**
 * What the record a deploy writes before its first change to an object the record names says: it
 * keeps only the objects that deploy leaves alone. Still there afterwards: that deploy did not
 * finish (killed, or failed before writing the record again).
 */
export const IN_PROGRESS_ABOUT = 'registrish deploy: in progress, or did not finish: only the objects it left alone (docs/hosting-s3.md)';

/**
 * The record as stored: deterministic (same entries, same text, so an unchanged record is not
 * written again), one object a line. `objects` maps each key to
 * `[etag, size, index into headers, stored, sha256 unless the key names it]`. `about` is for a
 * reader of the bucket; parseRecord ignores it.
 */
export function serializeRecord(record: DeployRecord, about = RECORD_ABOUT): string {
  const tables: string[] = [];
  const index = new Map<string, number>();
  const lines: string[] = [];
  for (const key of [...record.keys()].sort(compareStrings)) {
    const e = record.get(key)!;
    const headers = JSON.stringify(Object.fromEntries(Object.entries(e.headers).sort(([a], [b]) => compareStrings(a, b))));
    let i = index.get(headers);
    if (i === undefined) {
      i = tables.length;
      index.set(headers, i);
      tables.push(headers);
    }
    const row: Array<string | number> = [e.etag, e.size, i, e.stored];
    if (impliedSha256(key) !== e.sha256) row.push(e.sha256);
    lines.push(`${JSON.stringify(key)}:${JSON.stringify(row)}`);
  }
  return (
    `{"version":1,"about":${JSON.stringify(about)},\n` +
    `"headers":[\n${tables.join(',\n')}\n],\n` +
    `"objects":{\n${lines.join(',\n')}\n}}\n`
  );
}

/** The record read back, trusted for nothing: undefined when it is not one we write (then every object is checked). */
export function parseRecord(text: string): DeployRecord | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (parsed === null || typeof parsed !== 'object') return undefined;
  const { version, headers, objects } = parsed as Record<string, unknown>;
  if (version !== 1 || !Array.isArray(headers) || objects === null || typeof objects !== 'object' || Array.isArray(objects)) return undefined;
  const tables: Array<Record<string, string>> = [];
  for (const h of headers as unknown[]) {
    if (h === null || typeof h !== 'object' || Array.isArray(h) || !Object.values(h).every((v) => typeof v === 'string')) return undefined;
    tables.push(h as Record<string, string>);
  }
  const record: DeployRecord = new Map();
  for (const [key, row] of Object.entries(objects as Record<string, unknown>)) {
    if (!Array.isArray(row)) return undefined;
    const [etag, size, i, stored, sha] = row as unknown[];
    const sha256 = sha ?? impliedSha256(key);
    const ok =
      typeof etag === 'string' &&
      etag !== '' &&
      Number.isSafeInteger(size) &&
      (size as number) >= 0 &&
      Number.isSafeInteger(i) &&
      tables[i as number] !== undefined &&
      Number.isSafeInteger(stored) &&
      typeof sha256 === 'string' &&
      /^[0-9a-f]{64}$/u.test(sha256);
    if (!ok) return undefined;
    record.set(key, { etag, size: size as number, headers: tables[i as number]!, stored: stored as number, sha256 });
  }
  return record;
}

/**
 * True when the listed object is still the one an entry describes: same ETag (a digest of the
 * bytes, or a fresh value per write with SSE-KMS), same size, and no write after the entry was
 * made. LastModified is compared too because a write of the same bytes with other headers (a
 * sync tool, an in-place copy changing the Content-Type) keeps the ETag but not LastModified.
 */
export function storedSame(entry: RecordEntry, listed: S3ListedObject): boolean {
  return entry.etag === listed.etag && entry.size === listed.size && Number.isFinite(listed.lastModified) && Math.floor(listed.lastModified / 1000) <= entry.stored;
}

/** True when an entry's bytes and headers are the ones wanted. */
export function sameContent(entry: RecordEntry, want: { sha256: string; size: number; headers: Record<string, string> }): boolean {
  if (entry.sha256 !== want.sha256 || entry.size !== want.size) return false;
  const a = Object.keys(entry.headers);
  const b = Object.keys(want.headers);
  return a.length === b.length && b.every((k) => entry.headers[k] === want.headers[k]);
}
