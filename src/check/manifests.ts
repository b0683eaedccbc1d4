import { createHash } from 'node:crypto';
import { firstHeader, readCapped, readPrefixLenient, type ResponseBody, type ResponseHeaders } from '../http/response.ts';
import { isValidDigest } from '../model/digest.ts';
import {
  DOCKER_FOREIGN_LAYER,
  MANIFEST_ACCEPT,
  MAX_MANIFEST_BYTES,
  isIndexType,
  isKnownManifestType,
  isManifestType,
  manifestMediaType,
  stripParams,
} from '../model/media-types.ts';
import { RegistrishError } from '../util/errors.ts';
import { formatBytes, shortDigest } from '../util/format.ts';
import { checkEncoding, headAnswer, looksLikeHtml } from './answer.ts';
import { fail, newRow, warn, type CheckRow } from './problems.ts';
import type { CheckContext } from './probe.ts';

// A manifest by tag or by digest, HEAD and GET, held to what containerd, docker and crane expect:
// status, exact Content-Type, Content-Length, Docker-Content-Digest, and (by digest) the body's
// size and hash against the parent's descriptor.

/** A descriptor as a served manifest lists it: untrusted JSON, only digest and size are checked. */
export interface CheckedDescriptor {
  mediaType?: string;
  digest: string;
  size: number;
  platform?: { os?: string; architecture?: string; variant?: string };
}

export interface ManifestFacts {
  digest: string;
  size: number;
  mediaType: string;
  /** An index's child manifests. */
  children: CheckedDescriptor[];
  /** An image manifest's config and layers (foreign layers left out: they are not on this host). */
  blobs: CheckedDescriptor[];
}

/**
 * HEAD and GET one manifest. `ref` is a tag (descriptor undefined) or a digest (descriptor from
 * the parent, or from the tag's answer): by digest the type, size and hash are held to it.
 */
export async function checkManifestRef(
  ctx: CheckContext,
  name: string,
  ref: string,
  desc: CheckedDescriptor | undefined,
): Promise<{ rows: CheckRow[]; facts?: ManifestFacts }> {
  const urlPath = `/v2/${name}/manifests/${ref}`;
  const label = desc ? `${name}@${shortDigest(ref)}${platformText(desc)}` : `${name}:${ref}`;
  const headRow = newRow(name, `HEAD ${label}`);
  const getRow = newRow(name, `GET  ${label}`);
  const rows = [headRow, getRow];

  // GET first (the HEAD's checks need the real size and type), shown after the HEAD.
  const got = await ctx.send('GET', urlPath, { accept: MANIFEST_ACCEPT });
  let facts: ManifestFacts | undefined;
  if ('error' in got) fail(getRow, got.kind, got.error);
  else if (got.status !== 200) {
    const text = await readPrefixLenient(got.body, 4096);
    fail(getRow, 'status', `answered ${got.status}${looksLikeHtml(text) ? ' (an HTML page)' : ''} (expected 200)`);
  } else {
    facts = await inspectManifestGet(getRow, got, desc);
  }

  const headers = await headAnswer(headRow, await ctx.send('HEAD', urlPath, { accept: MANIFEST_ACCEPT }));
  if (headers) {
    const len = firstHeader(headers, 'content-length');
    if (len === undefined) fail(headRow, 'head-length', 'no Content-Length');
    else if (Number(len) === 0) fail(headRow, 'head-length', 'Content-Length is 0');
    else if (facts && Number(len) !== facts.size) fail(headRow, 'length-wrong', `Content-Length ${len}, the manifest is ${facts.size} bytes`);
    if (facts) {
      checkManifestType(headRow, headers, facts.mediaType);
      checkDigestHeader(headRow, headers, facts.digest);
    }
  }
  return { rows, facts };
}

/** Checks a manifest's 200 answer and reads what the walk needs from it (undefined once unreadable). */
async function inspectManifestGet(
  row: CheckRow,
  got: { headers: ResponseHeaders; body: ResponseBody },
  desc: CheckedDescriptor | undefined,
): Promise<ManifestFacts | undefined> {
  checkEncoding(row, got.headers);
  const algorithm = desc ? desc.digest.split(':', 1)[0]! : 'sha256';
  let bytes: Buffer;
  try {
    bytes = await readCapped(got.body, MAX_MANIFEST_BYTES, () => new RegistrishError(`body larger than ${formatBytes(MAX_MANIFEST_BYTES)}`));
  } catch (e) {
    return void fail(row, 'request-failed', e instanceof Error ? e.message : String(e));
  }
  const digest = `${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}`;
  const len = firstHeader(got.headers, 'content-length');
  if (len !== undefined && Number(len) !== bytes.length) fail(row, 'length-wrong', `Content-Length ${len}, body ${bytes.length} bytes`);
  if (desc) {
    if (digest !== desc.digest) fail(row, 'body-digest', `body hashes to ${shortDigest(digest)}, not ${shortDigest(desc.digest)}`);
    if (bytes.length !== desc.size) fail(row, 'length-wrong', `body is ${bytes.length} bytes, the descriptor says ${desc.size}`);
  }
  let mediaType: string;
  let doc: Record<string, unknown>;
  try {
    mediaType = manifestMediaType(bytes, desc?.mediaType);
    doc = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
  } catch (e) {
    const what = looksLikeHtml(bytes.subarray(0, 512).toString('utf8')) ? 'an HTML page' : e instanceof Error ? e.message : String(e);
    return void fail(row, 'manifest-invalid', what);
  }
  checkManifestType(row, got.headers, mediaType);
  checkDigestHeader(row, got.headers, desc?.digest ?? digest);
  const children = isIndexType(mediaType) ? descriptors(doc.manifests).filter((d) => isKnownManifestType(d.mediaType)) : [];
  const blobs = isManifestType(mediaType)
    ? [...descriptors([doc.config]), ...descriptors(doc.layers)].filter((d) => d.mediaType !== DOCKER_FOREIGN_LAYER)
    : [];
  return { digest: desc?.digest ?? digest, size: bytes.length, mediaType, children, blobs };
}

function checkManifestType(row: CheckRow, headers: ResponseHeaders, mediaType: string): void {
  const raw = firstHeader(headers, 'content-type');
  if (raw === mediaType) return;
  // Exact but for parameters: containers/image, containerd and docker strip them; crane does not.
  if (stripParams(raw) === mediaType) return void fail(row, 'type-params', `Content-Type "${raw}" has parameters; send exactly "${mediaType}"`);
  fail(row, 'manifest-type', `Content-Type ${raw === undefined ? 'missing' : `"${raw}"`}, the manifest is ${mediaType}`);
}

function checkDigestHeader(row: CheckRow, headers: ResponseHeaders, digest: string): void {
  const sent = firstHeader(headers, 'docker-content-digest');
  if (sent === undefined) warn(row, 'digest-header-missing', 'no Docker-Content-Digest');
  else if (sent.trim() !== digest) fail(row, 'digest-header-wrong', `Docker-Content-Digest ${shortDigest(sent.trim())}, the content is ${shortDigest(digest)}`);
}

/** The well-formed entries of a descriptor list (the rest are skipped: the JSON is untrusted). */
function descriptors(value: unknown): CheckedDescriptor[] {
  if (!Array.isArray(value)) return [];
  return value.filter(
    (d): d is CheckedDescriptor =>
      !!d && typeof d === 'object' && isValidDigest((d as CheckedDescriptor).digest) && Number.isSafeInteger((d as CheckedDescriptor).size),
  );
}

function platformText(desc: CheckedDescriptor): string {
  const p = desc.platform;
  if (!p?.os || !p.architecture) return '';
  return ` (${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''})`;
}
