import { createHash } from 'node:crypto';
import { discard, firstHeader, type ResponseHeaders } from '../http/response.ts';
import { formatBytes, shortDigest } from '../util/format.ts';
import { checkEncoding, headAnswer } from './answer.ts';
import type { CheckedDescriptor } from './manifests.ts';
import { fail, newRow, warn, type CheckRow } from './problems.ts';
import type { CheckContext, Got } from './probe.ts';

// Configs and layers: HEAD (size, as containerd reads it), GET streamed through the hash (a layer
// can be gigabytes, never buffered), and a resumed download the way containers/image sends it.

/** HEAD one blob and, when `download`, GET it and hash its bytes. */
export async function checkBlob(ctx: CheckContext, name: string, desc: CheckedDescriptor, download: boolean): Promise<CheckRow[]> {
  const urlPath = `/v2/${name}/blobs/${desc.digest}`;
  const label = `blob ${shortDigest(desc.digest)} (${formatBytes(desc.size)})`;
  const headRow = newRow(name, `HEAD ${label}`);
  const rows = [headRow];
  const head = await ctx.send('HEAD', urlPath);
  const headers = await headAnswer(headRow, head);
  if (headers) {
    const len = firstHeader(headers, 'content-length');
    if (len === undefined) fail(headRow, 'head-length', 'no Content-Length');
    else if (Number(len) !== desc.size) fail(headRow, len === '0' ? 'head-length' : 'length-wrong', `Content-Length ${len}, the blob is ${desc.size} bytes`);
    checkBlobDigestHeader(headRow, headers, desc.digest);
  }
  attributeToStore(ctx, headRow, head);
  if (!download) return rows;

  const getRow = newRow(name, `GET  ${label}`);
  rows.push(getRow);
  const got = await ctx.send('GET', urlPath);
  if ('error' in got) return fail(getRow, got.kind, got.error), rows;
  attributeToStore(ctx, getRow, got);
  if (got.status !== 200) {
    await discard(got.body);
    fail(getRow, 'status', `answered ${got.status} (expected 200)`);
    attributeToStore(ctx, getRow, got);
    return rows;
  }
  checkEncoding(getRow, got.headers);
  checkBlobDigestHeader(getRow, got.headers, desc.digest);
  const len = firstHeader(got.headers, 'content-length');
  if (len !== undefined && Number(len) !== desc.size) fail(getRow, 'length-wrong', `Content-Length ${len}, the blob is ${desc.size} bytes`);
  // Streamed through the hash: a layer can be gigabytes.
  const algorithm = desc.digest.split(':', 1)[0]!;
  const hash = createHash(algorithm);
  let size = 0;
  try {
    for await (const chunk of got.body) {
      hash.update(chunk as Buffer);
      size += (chunk as Buffer).length;
    }
  } catch (e) {
    return fail(getRow, 'request-failed', `reading the body: ${e instanceof Error ? e.message : String(e)}`), rows;
  }
  const digest = `${algorithm}:${hash.digest('hex')}`;
  if (size !== desc.size) fail(getRow, 'length-wrong', `received ${size} bytes, the blob is ${desc.size}`);
  if (digest !== desc.digest) fail(getRow, 'body-digest', `bytes hash to ${shortDigest(digest)}`);
  attributeToStore(ctx, getRow, got);
  return rows;
}

/**
 * A blob answered by another origin came through the site's redirect (the `blobs` option): the
 * row says so, and each problem names the store, so the report tells which of the two is wrong.
 */
function attributeToStore(ctx: CheckContext, row: CheckRow, got: Got): void {
  if ('error' in got || !got.url || !ctx.origin) return;
  const at = new URL(got.url);
  if (at.origin === new URL(ctx.origin).origin) return;
  const store = `${at.origin}${at.pathname}`;
  if (!row.label.includes(' → store ')) row.label += ` → store ${at.origin}`;
  for (const p of row.problems) {
    if (!p.message.startsWith('the store ')) p.message = `the store ${store} ${p.message}`;
  }
}

/** A resumed download, as containers/image sends it: `Range: bytes=1-` must answer 206 with the rest. */
export async function checkRange(ctx: CheckContext, name: string, desc: CheckedDescriptor): Promise<CheckRow> {
  const row = newRow(name, `GET  blob ${shortDigest(desc.digest)} with Range: bytes=1-`);
  const got = await ctx.send('GET', `/v2/${name}/blobs/${desc.digest}`, { range: 'bytes=1-' });
  if ('error' in got) return warn(row, 'range', got.error);
  if (got.status !== 206) {
    await discard(got.body);
    warn(row, 'range', `answered ${got.status} (expected 206)`);
    attributeToStore(ctx, row, got);
    return row;
  }
  checkEncoding(row, got.headers);
  const expected = `bytes 1-${desc.size - 1}/${desc.size}`;
  const contentRange = firstHeader(got.headers, 'content-range');
  if (contentRange !== expected) warn(row, 'range', `Content-Range ${contentRange === undefined ? 'missing' : `"${contentRange}"`} (expected "${expected}")`);
  let size = 0;
  try {
    for await (const chunk of got.body) size += (chunk as Buffer).length;
  } catch (e) {
    return warn(row, 'range', `reading the body: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (size !== desc.size - 1) warn(row, 'range', `received ${size} bytes (expected ${desc.size - 1})`);
  attributeToStore(ctx, row, got);
  return row;
}

/** With --quick: the smallest config-like blob and the smallest layer of the repository are downloaded. */
export function quickSample(blobs: CheckedDescriptor[]): Set<string> {
  const bySize = [...blobs].sort((a, b) => a.size - b.size);
  const isLayer = (d: CheckedDescriptor): boolean => /(layer|rootfs)/u.test(d.mediaType ?? '');
  const picks = [bySize.find((d) => !isLayer(d)), bySize.find(isLayer)].filter((d): d is CheckedDescriptor => d !== undefined);
  return new Set(picks.map((d) => d.digest));
}

/** On blobs the header is optional (S3 cannot send it), but a wrong one is still wrong. */
function checkBlobDigestHeader(row: CheckRow, headers: ResponseHeaders, digest: string): void {
  const sent = firstHeader(headers, 'docker-content-digest');
  if (sent !== undefined && sent.trim() !== digest) fail(row, 'digest-header-wrong', `Docker-Content-Digest ${shortDigest(sent.trim())}, the blob is ${shortDigest(digest)}`);
}
