import { firstHeader, readCapped, readPrefixLenient } from '../http/response.ts';
import { isValidDigest } from '../model/digest.ts';
import { MAX_MANIFEST_BYTES, OCI_INDEX } from '../model/media-types.ts';
import { RegistrishError } from '../util/errors.ts';
import { shortDigest } from '../util/format.ts';
import { checkEncoding, looksLikeHtml } from './answer.ts';
import type { CheckedDescriptor } from './manifests.ts';
import { fail, newRow, type CheckRow } from './problems.ts';
import type { CheckContext } from './probe.ts';

// The referrers API (`/v2/<name>/referrers/<digest>`), as cosign, oras and sigstore policies read
// it: an OCI image index with exactly that Content-Type. A 404 means the host serves none, which
// clients read as "no referrers"; it is a failure only when images.json mirrors attachments.

export interface ReferrersFacts {
  rows: CheckRow[];
  /** The manifests the answers list (checked like any other manifest by the caller). */
  listed: CheckedDescriptor[];
}

export async function checkReferrers(ctx: CheckContext, name: string, subjects: string[], expected: boolean): Promise<ReferrersFacts> {
  const results = await Promise.all(subjects.map((s) => checkOne(ctx, name, s, expected)));
  return { rows: results.flatMap((r) => (r.row ? [r.row] : [])), listed: results.flatMap((r) => r.listed) };
}

async function checkOne(ctx: CheckContext, name: string, subject: string, expected: boolean): Promise<{ row?: CheckRow; listed: CheckedDescriptor[] }> {
  const urlPath = `/v2/${name}/referrers/${subject}`;
  const row = newRow(name, `GET  /v2/${name}/referrers/${shortDigest(subject)}`);
  const got = await ctx.send('GET', urlPath, { accept: OCI_INDEX });
  if ('error' in got) return { row: fail(row, got.kind, got.error), listed: [] };
  // Without attachments in images.json, a host that has no answer says so however it says "missing"
  // (404, S3's 403, a catch-all HTML page: the last two are reported once, by the missing-path checks).
  if (got.status !== 200) {
    const text = await readPrefixLenient(got.body, 4096);
    if (!expected) return { listed: [] };
    const why = got.status === 404 ? ' (images.json mirrors attachments for this image: deploy v2/<name>/referrers/ too)' : '';
    return { row: fail(row, 'referrers', `answered ${got.status}${looksLikeHtml(text) ? ' (an HTML page)' : ''}${why} (expected 200)`), listed: [] };
  }
  let bytes: Buffer;
  try {
    bytes = await readCapped(got.body, MAX_MANIFEST_BYTES, () => new RegistrishError(`body larger than ${MAX_MANIFEST_BYTES} bytes`));
  } catch (e) {
    return { row: fail(row, 'request-failed', e instanceof Error ? e.message : String(e)), listed: [] };
  }
  if (!expected && looksLikeHtml(bytes.subarray(0, 512).toString('utf8'))) return { listed: [] };
  checkEncoding(row, got.headers);
  const type = firstHeader(got.headers, 'content-type');
  if (type !== OCI_INDEX) fail(row, 'referrers', `Content-Type ${type === undefined ? 'missing' : `"${type}"`}, expected exactly "${OCI_INDEX}"`);
  let doc: { manifests?: unknown } | undefined;
  try {
    doc = JSON.parse(bytes.toString('utf8')) as { manifests?: unknown };
  } catch {
    return { row: fail(row, 'referrers', `the answer is not JSON${looksLikeHtml(bytes.subarray(0, 512).toString('utf8')) ? ' (an HTML page)' : ''}`), listed: [] };
  }
  if (!doc || !Array.isArray(doc.manifests)) return { row: fail(row, 'referrers', 'the answer has no "manifests" list'), listed: [] };
  const listed = doc.manifests.filter(
    (d): d is CheckedDescriptor => !!d && typeof d === 'object' && isValidDigest((d as CheckedDescriptor).digest) && Number.isSafeInteger((d as CheckedDescriptor).size),
  );
  if (listed.length !== doc.manifests.length) fail(row, 'referrers', 'an entry is not a descriptor (digest and size)');
  return { row, listed };
}
