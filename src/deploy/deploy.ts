import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readFile, realpath } from 'node:fs/promises';
import path from 'node:path';
import type { Dispatcher } from 'undici';
import { UsageError } from '../cli/args.ts';
import { createAgent } from '../http/transport.ts';
import { isIndexType } from '../model/media-types.ts';
import type { PublishedPath } from '../model/published-path.ts';
import { headersFor } from '../publish/headers.ts';
import { readPathsFile } from '../publish/paths-file.ts';
import { mapLimit } from '../util/concurrency.ts';
import { HttpError, RegistrishError } from '../util/errors.ts';
import { IN_PROGRESS_ABOUT, parseRecord, RECORD_FILE, sameContent, serializeRecord, storedSame, type DeployRecord, type RecordEntry } from './record.ts';
import { S3Client, type S3Credentials, type S3ListedObject, type S3ObjectInfo, type S3RequestCounts } from './s3-client.ts';

// Uploads a built registry to an S3-compatible store with each object's Content-Type and
// Cache-Control from headersFor(), skipping objects already there with the same digest, in an
// order that never exposes a tag before its content. What is already there comes from one listing
// and the deploy record (record.ts); a HEAD only where they cannot tell. Argument handling is in
// command.ts.

export interface DeployTarget {
  bucket: string;
  /** '' or ending with '/'. */
  prefix: string;
}

/** True when a `/`-separated path has an empty, `.` or `..` segment, also percent-encoded. */
export function badSegment(p: string): boolean {
  return p.split('/').some((seg) => {
    let decoded = seg;
    // Decode repeatedly: `%252e` is `%2e` once decoded, which a proxy or store may decode again.
    for (let i = 0; i < 4 && /%[0-9a-f]{2}/iu.test(decoded); i++) {
      try {
        decoded = decodeURIComponent(decoded);
      } catch {
        return true;
      }
    }
    return decoded === '' || decoded === '.' || decoded === '..' || decoded.includes('/');
  });
}

/** Every key deploy writes passes this; the `v2/` key of `GET /v2/` is the one trailing slash allowed. */
export function assertSafeKey(key: string): void {
  const body = key.endsWith('/v2/') || key === 'v2/' ? key.slice(0, -1) : key;
  if (badSegment(body)) throw new UsageError(`refusing the object key "${key}": empty, "." or ".." segment`);
}

/** One object to put: where, what, and the headers it is stored with. */
export interface Upload {
  key: string;
  file: string;
  size: number;
  /** sha256 hex of the bytes (signed payload hash and the `digest` metadata). */
  sha256: string;
  headers: Record<string, string>;
  /** 0 blobs, 1 manifests by digest, 2 indexes by digest, 3 tag manifests and referrers answers, 4 tags/list, _catalog and /v2/. */
  phase: number;
  /** A store refusing it (MinIO rejects non-empty keys ending in `/`) is a warning, not a failure. */
  optional?: boolean;
}

export interface DeployOptions {
  dir: string;
  target: DeployTarget;
  endpoint: URL;
  region: string;
  credentials: S3Credentials;
  pathStyle: boolean;
  acl?: string;
  delete: boolean;
  dryRun: boolean;
  concurrency: number;
  log: (line: string) => void;
  /** Retry delay base (tests make it short). */
  retryBaseMs?: number;
  /** Keys per listing page (default: the store's, 1000 on S3); tests make it small to see the pages. */
  listPageSize?: number;
  /** Sees every request sent (the benchmark counts them on the wire, as bench/build.mjs does). */
  interceptor?: Dispatcher.DispatcherComposeInterceptor;
}

export interface DeploySummary {
  uploaded: string[];
  skipped: number;
  deleted: string[];
  /** Bytes of the objects uploaded (what `uploaded` names). */
  bytes: number;
  /** Requests sent, by kind, retries included. */
  requests: S3RequestCounts;
  /** Request body bytes sent (objects, the record, retries) and response body bytes read (listings, the record). */
  sentBytes: number;
  receivedBytes: number;
  /** The deploy record: written, unchanged (so not written again), or not written (dry run, failure). */
  record: 'written' | 'unchanged' | 'not written';
}

/** Object metadata header carrying the content's sha256, compared on the next deploy. */
const DIGEST_META = 'x-amz-meta-digest';
const ACL_META = 'x-amz-meta-acl';

function phaseOf(p: PublishedPath): number {
  if (p.kind === 'blob') return 0;
  if (p.kind === 'manifest' && p.immutable) return isIndexType(p.contentType) ? 2 : 1;
  // Tags, and referrers answers (they list manifests stored by digest in phases 1 and 2).
  if (p.kind === 'manifest' || p.kind === 'referrers') return 3;
  // Lists and the base last, so a list never names a tag whose manifest is not stored yet.
  return 4;
}

/** The uploads a built tree needs, from its paths file (types are never guessed from files). */
export async function planUploads(dir: string, prefix: string, acl?: string): Promise<Upload[]> {
  const paths = await readPathsFile(dir);
  // Built with the `blobs` option: blob URLs are redirects, which a bucket cannot answer per URL.
  if (paths.some((p) => p.location !== undefined)) {
    throw new RegistrishError(`${dir} was built with the \`blobs\` option: its blob URLs are redirects to the store, which an S3 bucket cannot answer`, {
      hint: 'Serve the site from a host that answers them (nginx, Apache), and upload the blobs with `registrish deploy --blobs s3://BUCKET[/PREFIX]`.',
    });
  }
  const root = await realpath(dir);
  const uploads: Upload[] = [];
  await Promise.all(
    paths.map(async (p) => {
      const file = path.join(dir, ...p.file.split('/'));
      // lstat: a symlink (which could point anywhere on disk) is never followed nor uploaded.
      const st = await lstat(file).catch(() => undefined);
      if (!st) throw new RegistrishError(`${file} is listed in the build's paths file but missing`, { hint: 'Rebuild the site.' });
      if (!st.isFile()) throw new RegistrishError(`${file} is not a regular file (a symlink or a directory); refusing to upload it`, { hint: 'Rebuild the site.' });
      // …nor one reached through a symlinked folder leading out of the build.
      const real = await realpath(file);
      if (!real.startsWith(root + path.sep)) throw new RegistrishError(`${file} resolves outside ${dir} (a symlinked folder); refusing to upload it`, { hint: 'Rebuild the site.' });
      assertSafeKey(prefix + p.file);
      if (st.size !== p.size) throw new RegistrishError(`${file} is ${st.size} bytes, the build described ${p.size}`, { hint: 'Rebuild the site.' });
      // A blob's or manifest's sha256 digest is the hash of its bytes; anything else is hashed here.
      const sha256 = p.digest?.startsWith('sha256:') ? p.digest.slice(7) : await hashFile(file);
      const headers: Record<string, string> = {};
      // Docker-Content-Digest and the API-version header cannot be set on S3 objects (only
      // x-amz-meta-*); clients do without them (see docs/hosting-s3.md).
      for (const [name, value] of headersFor(p)) {
        if (name === 'Content-Type' || name === 'Cache-Control') headers[name.toLowerCase()] = value;
      }
      headers[DIGEST_META] = `sha256:${sha256}`;
      if (acl) {
        headers['x-amz-acl'] = acl;
        // A HEAD cannot show an object's ACL: remember the one asked for, so that adding or
        // changing --acl later re-uploads (re-ACLs) what was stored without it.
        headers[ACL_META] = acl;
      }
      const base = { file, size: st.size, sha256, headers, phase: phaseOf(p) };
      uploads.push({ ...base, key: prefix + p.file });
      // `GET /v2/` on a REST endpoint reads the key `v2/`; website endpoints read `v2/index.html`.
      if (p.kind === 'base') uploads.push({ ...base, key: `${prefix}v2/`, optional: true });
    }),
  );
  return uploads.sort((a, b) => a.phase - b.phase || a.key.localeCompare(b.key));
}

async function hashFile(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** Same bytes (digest and size) and same headers: nothing to do. */
function upToDate(u: Upload, info: S3ObjectInfo | undefined): boolean {
  if (!info) return false;
  return (
    info.meta['digest'] === `sha256:${u.sha256}` &&
    info.size === u.size &&
    info.contentType === u.headers['content-type'] &&
    info.cacheControl === u.headers['cache-control'] &&
    info.meta['acl'] === u.headers[ACL_META]
  );
}

/** The headers a record entry keeps: all but the digest metadata, which is `sha256:<sha256>`. */
function recordedHeaders(u: Upload): Record<string, string> {
  const { [DIGEST_META]: _digest, ...rest } = u.headers;
  return rest;
}

/** A record entry for an object just stored (or found up to date by a HEAD), when the store said enough. */
function entryFor(u: Upload, etag: string | undefined, storedMs: number | undefined): RecordEntry | undefined {
  if (!etag || storedMs === undefined) return undefined;
  return { etag, size: u.size, sha256: u.sha256, headers: recordedHeaders(u), stored: Math.floor(storedMs / 1000) };
}

/** Delete the tags first and the blobs last, so a reader never sees a tag whose content is gone. */
function deleteRank(key: string): number {
  if (/\/blobs\/[^/]+$/u.test(key)) return 2;
  if (/\/manifests\/sha256:[^/]+$/u.test(key)) return 1;
  return 0;
}

/**
 * What to do about one object: `skip` (the listing and the record show it is as wanted), `put`
 * (absent from the listing, or the record shows other bytes or headers), `head` (nothing else tells).
 */
function decide(u: Upload, prefix: string, listed: Map<string, S3ListedObject> | undefined, record: DeployRecord | undefined): { action: 'skip' | 'put' | 'head'; entry?: RecordEntry } {
  // No listing (refused): a HEAD per object, as before the record existed.
  if (!listed) return { action: 'head' };
  const l = listed.get(u.key);
  if (!l) return { action: 'put' };
  const entry = record?.get(u.key.slice(prefix.length));
  if (!entry || !storedSame(entry, l)) return { action: 'head' };
  return sameContent(entry, { sha256: u.sha256, size: u.size, headers: recordedHeaders(u) }) ? { action: 'skip', entry } : { action: 'put' };
}

/** A 403 AccessDenied on the listing: credentials without s3:ListBucket, which HEADs can do without. */
function listingRefused(err: unknown): boolean {
  return err instanceof HttpError && err.status === 403 && /\bAccessDenied\b/u.test(err.message);
}

export async function deploy(o: DeployOptions): Promise<DeploySummary> {
  const uploads = await planUploads(o.dir, o.target.prefix, o.acl);
  const agent = createAgent({ connections: Math.max(2, o.concurrency) });
  const client = new S3Client({
    endpoint: o.endpoint,
    region: o.region,
    bucket: o.target.bucket,
    credentials: o.credentials,
    pathStyle: o.pathStyle,
    dispatcher: o.interceptor ? agent.compose(o.interceptor) : agent,
    retryBaseMs: o.retryBaseMs,
  });
  const summary: DeploySummary = {
    uploaded: [],
    skipped: 0,
    deleted: [],
    bytes: 0,
    requests: client.requests,
    sentBytes: 0,
    receivedBytes: 0,
    record: 'not written',
  };
  const verb = o.dryRun ? 'would upload' : 'upload';
  const where = `s3://${o.target.bucket}/${o.target.prefix}`;
  const recordKey = o.target.prefix + RECORD_FILE;
  try {
    // One listing of the registry tree serves both the up-to-date decisions and --delete.
    let listed: Map<string, S3ListedObject> | undefined;
    try {
      const objects = await client.listObjects(`${o.target.prefix}v2/`, { maxKeys: o.listPageSize });
      listed = new Map(objects.map((x) => [x.key, x]));
    } catch (err) {
      if (o.delete || !listingRefused(err)) throw err;
      o.log(`warning: listing ${where}v2/ was refused (no s3:ListBucket): checking every object with a HEAD instead; grant s3:ListBucket for a cheaper deploy`);
    }
    let record: DeployRecord | undefined;
    let recordText: string | undefined;
    if (listed?.has(recordKey)) {
      try {
        recordText = await client.get(recordKey);
      } catch (err) {
        o.log(`warning: could not read the deploy record s3://${o.target.bucket}/${recordKey} (${err instanceof Error ? err.message : String(err)}); checking the objects it would have vouched for`);
      }
      record = recordText === undefined ? undefined : parseRecord(recordText);
      if (recordText !== undefined && !record) o.log(`warning: the deploy record s3://${o.target.bucket}/${recordKey} is not one registrish writes; ignoring it`);
    }
    // What this deploy knows it stored (or found as wanted): the next deploy's record.
    const next: DeployRecord = new Map();
    // Decided from the listing and the record alone (no request), before anything changes.
    const decisions = new Map(uploads.map((u) => [u.key, decide(u, o.target.prefix, listed, record)]));
    /** What the record key holds now, as far as this deploy knows (undefined: none, or unknown). */
    let storedText = recordText;
    const putRecord = async (text: string): Promise<void> => {
      const body = Buffer.from(text);
      await client.put(recordKey, { kind: 'buffer', data: body }, createHash('sha256').update(body).digest('hex'), {
        'content-type': 'application/json',
        'cache-control': 'no-store',
      });
    };

    // The record must never name an object that is not there as it says, even when this deploy
    // is killed at any instant. So before the first PUT or DELETE of an object the stored record
    // names (or might name: no listing, or a record we could not read), the record is replaced by
    // one holding only the entries of the objects this deploy leaves alone — the ones it skips,
    // and the ones it already stored or found as wanted — and the full record is written last, as
    // before. One PUT more per deploy that changes what the record names; none for a deploy that
    // changes nothing, a first deploy, or one that only adds objects. Not a DELETE of the record:
    // that would need s3:DeleteObject (deploy without --delete does not), and the next deploy after
    // a kill would check every object with a HEAD instead of only those this one touched.
    const recordMayName = (key: string): boolean =>
      !listed || (listed.has(recordKey) && (record === undefined || record.has(key.slice(o.target.prefix.length))));
    let invalidating: Promise<void> | undefined;
    const beforeChange = async (key: string): Promise<void> => {
      if (!recordMayName(key)) return;
      invalidating ??= (async () => {
        const kept: DeployRecord = new Map();
        for (const [k, d] of decisions) if (d.action === 'skip') kept.set(k.slice(o.target.prefix.length), d.entry!);
        for (const [rel, entry] of next) kept.set(rel, entry);
        const text = serializeRecord(kept, IN_PROGRESS_ABOUT);
        try {
          await putRecord(text);
        } catch (err) {
          throw new RegistrishError(
            `could not replace the deploy record s3://${o.target.bucket}/${recordKey} before changing what it names (${err instanceof Error ? err.message : String(err)}); nothing it names was changed`,
            { hint: 'Deploy again: what was stored is kept, and checked by the next deploy.' },
          );
        }
        storedText = text;
      })();
      await invalidating;
    };

    // Phase by phase: everything of one phase is stored before the next one starts.
    for (const phase of [0, 1, 2, 3, 4]) {
      await mapLimit(
        uploads.filter((u) => u.phase === phase),
        o.concurrency,
        async (u) => {
          const rel = u.key.slice(o.target.prefix.length);
          const d = decisions.get(u.key)!;
          if (d.action === 'skip') {
            next.set(rel, d.entry!);
            summary.skipped++;
            return;
          }
          if (d.action === 'head') {
            const info = await client.head(u.key);
            if (upToDate(u, info)) {
              const entry = entryFor(u, info!.etag, info!.lastModified);
              if (entry) next.set(rel, entry);
              summary.skipped++;
              return;
            }
          }
          if (!o.dryRun) {
            await beforeChange(u.key);
            try {
              // Small files are read whole; blobs are streamed from disk on each attempt (multipart when large).
              const stored =
                u.size <= 1024 * 1024
                  ? await client.put(u.key, { kind: 'buffer', data: await readFile(u.file) }, u.sha256, u.headers)
                  : await client.putFile(u.key, u.file, u.size, u.sha256, u.headers);
              const entry = entryFor(u, stored.etag, stored.date);
              if (entry) next.set(rel, entry);
            } catch (err) {
              if (!(u.optional && err instanceof HttpError && err.status >= 400 && err.status < 500)) throw err;
              o.log(`warning: the store refused ${u.key} (${err.message}); GET /v2/ then works only through a website endpoint or CDN serving v2/index.html`);
              return;
            }
          }
          // Logged once stored, so the log never claims an upload that failed.
          o.log(`${verb} s3://${o.target.bucket}/${u.key} (${u.size} bytes, ${u.headers['content-type']})`);
          summary.uploaded.push(u.key);
          summary.bytes += u.size;
        },
      );
    }
    if (o.dryRun && client.forbiddenHeads > 0) {
      o.log(
        `warning: ${client.forbiddenHeads} objects answered 403: missing (without s3:ListBucket S3 cannot say 404), or the credentials are refused; a real deploy will tell`,
      );
    }
    if (o.delete && listed) {
      // Only the registry tree is ours: the rest of the bucket (a web site, other prefixes) is left
      // alone. Objects that appeared since the listing are not ours to judge either.
      const wanted = new Set(uploads.map((u) => u.key));
      const stale = [...listed.keys()].filter((k) => !wanted.has(k) && k !== recordKey);
      for (const rank of [0, 1, 2]) {
        await mapLimit(
          stale.filter((k) => deleteRank(k) === rank),
          o.concurrency,
          async (key) => {
            if (!o.dryRun) {
              await beforeChange(key);
              await client.delete(key);
            }
            o.log(`${o.dryRun ? 'would delete' : 'delete'} s3://${o.target.bucket}/${key}`);
            summary.deleted.push(key);
          },
        );
      }
    }
    // Last, once everything else succeeded; not again when nothing changed (always after an
    // in-progress record). A failed write costs the next deploy HEADs for what this one touched,
    // never a wrong skip: the record is a cache, so it is only a warning.
    if (!o.dryRun) {
      const text = serializeRecord(next);
      if (text === storedText) summary.record = 'unchanged';
      else {
        try {
          await putRecord(text);
          summary.record = 'written';
        } catch (err) {
          o.log(`warning: could not write the deploy record s3://${o.target.bucket}/${recordKey} (${err instanceof Error ? err.message : String(err)}); the next deploy checks with a HEAD each object the record left there does not vouch for`);
        }
      }
    }
  } finally {
    summary.sentBytes = client.sentBytes;
    summary.receivedBytes = client.receivedBytes;
    await agent.close();
  }
  return summary;
}
