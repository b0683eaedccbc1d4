import { discard, firstHeader, readPrefixLenient } from '../http/response.ts';
import { MANIFEST_ACCEPT } from '../model/media-types.ts';
import { NOT_FOUND_CODES, type NotFoundKind } from '../publish/not-found.ts';
import { isValidRepositoryName, isValidTag } from '../model/reference.ts';
import { looksLikeHtml } from './answer.ts';
import { fail, newRow, warn, type CheckRow, type ProblemKind } from './problems.ts';
import type { CheckContext } from './probe.ts';

// The registry-wide endpoints: the `/v2/` ping, discovery through `_catalog` and `tags/list`,
// and paths that must not exist.

const MISSING_TAG = 'registrish-check-missing-tag';
const MISSING_DIGEST = `sha256:${'0'.repeat(64)}`;
const JSON_ACCEPT = 'application/json';

export async function checkBase(ctx: CheckContext): Promise<CheckRow> {
  const row = newRow('registry', 'GET /v2/');
  const got = await ctx.send('GET', '/v2/');
  if ('error' in got) return fail(row, got.kind === 'status' ? 'base-status' : 'request-failed', got.error);
  await discard(got.body);
  // containers/image and crane accept exactly these; 401 is a registry asking for a login.
  if (got.status !== 200 && got.status !== 401) fail(row, 'base-status', `answered ${got.status} (expected 200 or 401)`);
  const version = firstHeader(got.headers, 'docker-distribution-api-version');
  if (got.status === 200 && version !== 'registry/2.0') {
    warn(row, 'api-version', version === undefined ? 'no Docker-Distribution-API-Version header' : `Docker-Distribution-API-Version is ${JSON.stringify(version)}, not "registry/2.0"`);
  }
  // Apache: without its sentinel header the generated .htaccess files are not read at all.
  const probed = ctx.host?.probeBase?.(got.headers);
  if (probed) fail(row, probed.kind, probed.message);
  return row;
}

export interface Discovered {
  /** The `GET /v2/_catalog` row. */
  row: CheckRow;
  targets: Array<{ name: string; tags: string[] }>;
  /** Each repository's tags/list row, placed at the top of its table. */
  tagListRows: Map<string, CheckRow>;
}

/** The names from `/v2/_catalog`, and each one's tags from its tags/list. */
export async function discover(ctx: CheckContext): Promise<Discovered> {
  const row = newRow('registry', 'GET /v2/_catalog');
  const doc = await getJson(ctx, row, '/v2/_catalog', 'catalog');
  const repos = doc && Array.isArray(doc.repositories) ? doc.repositories.filter(isValidRepositoryName) : undefined;
  if (doc && !repos) fail(row, 'catalog', 'no "repositories" list in the answer');
  if (repos && repos.length === 0) fail(row, 'catalog', 'the catalog lists no repositories');
  const found = await Promise.all((repos ?? []).map(async (name) => ({ name, ...(await listedTags(ctx, name)) })));
  return {
    row,
    targets: found.map(({ name, tags }) => ({ name, tags })),
    tagListRows: new Map(found.map((f) => [f.name, f.listRow])),
  };
}

/** The tags a repository's tags/list names, and its row (failed when there are none). */
export async function listedTags(ctx: CheckContext, name: string): Promise<{ tags: string[]; listRow: CheckRow }> {
  const listRow = newRow(name, `GET /v2/${name}/tags/list`);
  const list = await getJson(ctx, listRow, `/v2/${name}/tags/list`, 'tags-list');
  const tags = list && Array.isArray(list.tags) ? list.tags.filter(isValidTag) : [];
  if (list && tags.length === 0) fail(listRow, 'tags-list', 'no tags listed');
  return { tags, listRow };
}

/** tags/list must list every tag we were told is published. */
export async function checkTagsList(ctx: CheckContext, name: string, tags: string[]): Promise<CheckRow> {
  const row = newRow(name, `GET /v2/${name}/tags/list`);
  const list = await getJson(ctx, row, `/v2/${name}/tags/list`, 'tags-list');
  if (!list) return row;
  const listed = new Set(Array.isArray(list.tags) ? list.tags : []);
  const absent = tags.filter((t) => !listed.has(t));
  if (absent.length) fail(row, 'tags-list', `does not list ${absent.map((t) => `"${t}"`).join(', ')}`);
  return row;
}

async function getJson(ctx: CheckContext, row: CheckRow, urlPath: string, kind: ProblemKind): Promise<Record<string, unknown> | undefined> {
  const got = await ctx.send('GET', urlPath, { accept: JSON_ACCEPT });
  if ('error' in got) return void fail(row, kind, got.error);
  const text = await readPrefixLenient(got.body, 1024 * 1024);
  if (got.status !== 200) return void fail(row, kind, `answered ${got.status} (expected 200)`);
  try {
    const doc = JSON.parse(text) as unknown;
    if (doc && typeof doc === 'object' && !Array.isArray(doc)) return doc as Record<string, unknown>;
  } catch {
    // reported below
  }
  fail(row, kind, `the answer is not a JSON object${looksLikeHtml(text) ? ' (an HTML page)' : ''}`);
  return undefined;
}

/** Not a repository name any registry publishes here (checkMissingPaths asks for it). */
const MISSING_REPO = 'registrish-check-missing/repository';

/**
 * A tag and a blob of `repo`, and a repository, that do not exist must answer 404 (not a site's
 * HTML page with 200), with the OCI error body that clients print (docker: "manifest unknown").
 */
export async function checkMissingPaths(ctx: CheckContext, repo: string): Promise<CheckRow[]> {
  return [
    await checkMissing(ctx, `/v2/${repo}/manifests/${MISSING_TAG}`, 'manifest', MANIFEST_ACCEPT),
    await checkMissing(ctx, `/v2/${repo}/blobs/${MISSING_DIGEST}`, 'blob', undefined, `/v2/${repo}/blobs/sha256:000…`),
    await checkMissing(ctx, `/v2/${MISSING_REPO}/manifests/${MISSING_TAG}`, 'name', MANIFEST_ACCEPT),
  ];
}

async function checkMissing(ctx: CheckContext, urlPath: string, kind: NotFoundKind, accept?: string, shown = urlPath): Promise<CheckRow> {
  const row = newRow('registry', `GET ${shown} (missing on purpose)`);
  const got = await ctx.send('GET', urlPath, { accept });
  if ('error' in got) return fail(row, got.kind, got.error);
  const head = await readPrefixLenient(got.body, 4096);
  if (got.status === 404) {
    // Sent to a blob store by the site's redirect (the `blobs` option): the store answers a missing
    // object in its own words; no static store can send the OCI error body, and no client needs it
    // for a blob (blobs are only asked for as a manifest names them).
    const at = got.url && ctx.origin ? new URL(got.url) : undefined;
    if (at && at.origin !== new URL(ctx.origin!).origin) {
      row.label += ` → store ${at.origin}`;
      return row;
    }
    const problem = errorBodyProblem(head);
    const want = NOT_FOUND_CODES[kind].code;
    if (problem) return warn(row, 'error-body', `${problem} (expected the OCI error body, code ${want})`);
    return row;
  }
  if (got.status >= 200 && got.status < 300) {
    return fail(row, 'missing-200', `answered ${got.status}${looksLikeHtml(head) ? ' with an HTML page' : ''} instead of 404`);
  }
  return warn(row, 'missing-not-404', `answered ${got.status} instead of 404`);
}

/** What keeps a 404 body from being read as the OCI error body (`{"errors":[{"code":…}]}`), or undefined. */
function errorBodyProblem(body: string): string | undefined {
  try {
    const doc = JSON.parse(body) as { errors?: Array<{ code?: unknown }> };
    if (Array.isArray(doc.errors) && doc.errors.length > 0 && doc.errors.every((e) => typeof e?.code === 'string')) return undefined;
  } catch {
    return `the 404 body is not JSON${looksLikeHtml(body) ? ' (an HTML page)' : ''}`;
  }
  return 'the 404 body has no "errors" list with codes';
}
