import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { REDEPLOY } from '../check/problems.ts';
import { RegistrishError } from '../util/errors.ts';
import { headersFor } from '../publish/headers.ts';
import type { Host, HostCheck, HostFile } from './host.ts';
import { compareStrings } from '../util/format.ts';
import { BEGIN_MARKER, mergeIntoSiteHeaders } from './headers-file.ts';
import type { PublishedPath } from '../model/published-path.ts';
import { ERROR_CONTENT_TYPE, notFoundBody, publishedRepositories, type NotFoundKind } from '../publish/not-found.ts';
import { onSite } from '../publish/blob-store.ts';
import { BLOB_REDIRECTS_COMMENT, mergeRedirectsFile, planBlobRedirects, readSiteRedirects, renderNetlifyRedirects } from './redirects-file.ts';

// Cloudflare Pages writer: `_headers` within Pages' limits, and a top-level `404.html`.
//
// How Pages reads `_headers` (workers-sdk, packages/pages-shared: metadata-generator/parseHeaders.ts,
// asset-server/rulesEngine.ts and handler.ts): at most 100 rules, lines ≤ 2,000 characters; a rule
// path becomes a RegExp: every `*` is `(?<splat>.*)` (so two `*` in one rule make an invalid RegExp
// and the rule is silently dropped), then every `:name` (a letter, then word characters) is
// `(?<name>[^/]+)`, anchored, case-sensitive. Every matching rule applies in file order; a header a
// rule sets that an earlier matching rule already set is *appended* (comma-joined), and `! Name`
// deletes it first. `:name` in a header value is replaced by what the placeholder matched.
//
// Consequences for a registry:
// - a digest URL cannot be written literally: `sha256:abc…` would read `:abc…` as a placeholder
//   (and `sha256:0…` is literal only by luck). We write `sha256:*` (the splat takes the hex), which
//   also lets one rule give every blob of a name depth its exact digest:
//   `/v2/:r1_/blobs/sha256:*` → `Docker-Content-Digest: sha256::splat`;
// - one rule per URL cannot fit 100 rules; rules are grouped: one for what every URL shares, one per
//   name depth for blobs and for digest manifests (with their most common type), and for digest
//   manifests of another type `! Content-Type` + their own (per repository when that saves rules,
//   else per manifest), and one each for /v2/, /v2/_catalog and all tags/list; then tags:
//   - while it fits in 100 rules, one exact rule per tag (a tag's digest is its own);
//   - beyond, compact tags: per name depth one rule `/v2/:r1_/manifests/:t_` (the most common tag
//     type, no Docker-Content-Digest: no client needs it), placed before the digest rules, which
//     `! Content-Type` / `! Cache-Control` what it set on digest URLs; repositories or tags of
//     another type get their own rule. Then rules grow with repositories and with manifests whose
//     type differs from the rest of their repository — in a multi-platform one, one per index.
// - after rendering, the rules are applied to every published URL with the semantics above
//   (cloudflareHeadersFor) and must give exactly headersFor(p): else the build fails, never serves
//   a wrong header.
// Without a top-level 404.html, Pages answers a missing path with /index.html and status 200 (a
// missing blob would look like a download of the home page): one is written unless the site has one.

export const CLOUDFLARE_MAX_RULES = 100;
export const CLOUDFLARE_MAX_LINE = 2000;
export const CLOUDFLARE_MAX_FILE_BYTES = 25 * 1024 * 1024;
export const CLOUDFLARE_MAX_FILES = 20_000;
export const CLOUDFLARE_404 = '404.html';
/** Pages reads at most 100 dynamic `_redirects` rules (`*` or `:name`) and 2,000 static ones, lines ≤ 1,000 characters. */
export const CLOUDFLARE_MAX_DYNAMIC_REDIRECTS = 100;
export const CLOUDFLARE_MAX_STATIC_REDIRECTS = 2000;
export const CLOUDFLARE_MAX_REDIRECT_LINE = 1000;

/**
 * How Pages counts the rules of a `_redirects` text (workers-sdk, pages-shared
 * metadata-generator/parseRedirects.ts, as wrangler 4.60.0 bundles it): a rule whose path holds `*`
 * or `:name` is dynamic, and so is every rule after the first dynamic one; rules beyond a limit are
 * dropped silently at deploy time.
 */
export function countCloudflareRedirects(text: string): { static: number; dynamic: number; longLines: number[] } {
  let statics = 0;
  let dynamic = 0;
  const longLines: number[] = [];
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (line.length > CLOUDFLARE_MAX_REDIRECT_LINE) longLines.push(i + 1);
    const from = line.split(/\s+/u)[0]!;
    if (dynamic === 0 && !/\*|:[A-Za-z]\w*/u.test(from)) statics++;
    else dynamic++;
  }
  return { static: statics, dynamic, longLines };
}

/**
 * `_redirects` for blobs kept in an object store: one 307 rule per repository
 * (`/v2/<name>/blobs/:digest  <base>:digest  307`), first in the file, the site's own rules kept
 * after it. Pages applies `_redirects` before serving files, so the blobs' 404.html never answers
 * them. Without a store: none (a site's own `_redirects` is left as it is, but an old block of ours emptied).
 */
export async function renderCloudflareRedirects(outDir: string, paths: readonly PublishedPath[]): Promise<HostFile[]> {
  const rules = planBlobRedirects(paths);
  const existing = await readSiteRedirects(outDir);
  if (rules.length === 0) {
    // A build without a store after one with it: empty our old block, or blobs would still be sent away.
    return existing?.includes(BEGIN_MARKER) ? [{ file: '_redirects', text: mergeRedirectsFile(existing, renderNetlifyRedirects([])) }] : [];
  }
  // Pages drops a rule whose target is neither a path nor https:// (parseRedirects' validateUrl), loopback included.
  if (!rules[0]!.to.startsWith('https://')) {
    throw new RegistrishError(`Cloudflare Pages redirects only to https:// addresses, not to the blob store ${rules[0]!.to.replace(/:digest$/u, '')}`, {
      hint: 'Set blobs.url to the https:// address of the store (an R2 public bucket or custom domain, a CDN).',
    });
  }
  const text = mergeRedirectsFile(existing, renderNetlifyRedirects([{ comment: BLOB_REDIRECTS_COMMENT, rules }]));
  const counts = countCloudflareRedirects(text);
  if (counts.dynamic > CLOUDFLARE_MAX_DYNAMIC_REDIRECTS) {
    throw new RegistrishError(
      `_redirects would have ${counts.dynamic} dynamic rules (${rules.length} blob redirects, one per repository); Cloudflare Pages reads at most ${CLOUDFLARE_MAX_DYNAMIC_REDIRECTS} and drops the rest, so some blob URLs would answer 404`,
      { hint: `Publish at most ${CLOUDFLARE_MAX_DYNAMIC_REDIRECTS} repositories with blobs in a store on one Pages site${counts.dynamic > rules.length ? ', and remove some of your own _redirects rules (on Pages every rule after a dynamic one counts as dynamic)' : ''}, or use another host.` },
    );
  }
  if (counts.static > CLOUDFLARE_MAX_STATIC_REDIRECTS) {
    throw new RegistrishError(`_redirects would have ${counts.static} static rules; Cloudflare Pages reads at most ${CLOUDFLARE_MAX_STATIC_REDIRECTS}`, { hint: 'Remove some of your own _redirects rules.' });
  }
  if (counts.longLines.length) {
    throw new RegistrishError(`_redirects line ${counts.longLines[0]} is longer than ${CLOUDFLARE_MAX_REDIRECT_LINE} characters, which Cloudflare Pages ignores`, {
      hint: 'Use a shorter blobs.url or store prefix, or shorten your own rule.',
    });
  }
  return [{ file: '_redirects', text }];
}

export interface CfRule {
  path: string;
  set: Array<[name: string, value: string]>;
  unset: string[];
}

const DIGEST_RE = /^sha256:[0-9a-f]{64}$/u;

interface Parsed {
  p: PublishedPath;
  /** repository name, for manifests/blobs/tags */
  repo?: string;
  /** last segment */
  ref?: string;
}

function parse(p: PublishedPath): Parsed {
  const m = /^\/v2\/(.+)\/(manifests|blobs|referrers)\/([^/]+)$/u.exec(p.urlPath);
  if (m && (p.kind === 'manifest' || p.kind === 'blob' || p.kind === 'referrers')) return { p, repo: m[1], ref: m[3] };
  const t = /^\/v2\/(.+)\/tags\/list$/u.exec(p.urlPath);
  if (t && p.kind === 'tags') return { p, repo: t[1] };
  return { p };
}

/** The rule path for a literal URL part: refuses anything Pages would read as a pattern. */
function literal(s: string): string {
  if (/[*:\s]/u.test(s)) throw new RegistrishError(`${JSON.stringify(s)} cannot be written literally in a Cloudflare _headers rule`);
  return s;
}

// `:r1_` … `:r12_`: Pages replaces placeholders by plain string splitting, so no name may be a
// prefix of another (`:r1` would also cut `:r10`).
const placeholders = (depth: number): string => Array.from({ length: depth }, (_, i) => `:r${i + 1}_`).join('/');

/**
 * How tags are written: `exact`, one rule per tag (with its Docker-Content-Digest); `compact`, per
 * name depth one rule for every tag (`/v2/:r1_/manifests/:t_`, the most common tag type), a rule
 * per repository whose own type differs (when that saves rules) and one per tag of yet another
 * type, and no Docker-Content-Digest on tags (no client needs it: README, "Which headers clients
 * need"). `auto` (the writer): exact while that fits Pages' 100 rules, else compact.
 */
export type CloudflareTags = 'exact' | 'compact';

/** Groups the published paths into Cloudflare rules (see the comment at the top). */
export function planCloudflareRules(paths: readonly PublishedPath[], options: { tags?: CloudflareTags } = {}): CfRule[] {
  const compactTags = options.tags === 'compact';
  const parsed = paths.map(parse);
  const rules: CfRule[] = [];
  const headerMap = (p: PublishedPath): Map<string, string> => new Map(headersFor(p));

  // 1. Headers every URL shares, on /v2/*.
  // (Only the registry's own URLs: the Helm repository's index.yaml is outside the /v2/* rule.)
  const all = paths.filter((p) => p.urlPath.startsWith('/v2/')).map(headerMap);
  const shared = [...(all[0] ?? new Map())].filter(([n, v]) => all.every((h) => h.get(n) === v));
  const sharedNames = new Set(shared.map(([n]) => n));
  if (shared.length) rules.push({ path: '/v2/*', set: shared, unset: [] });
  const rest = (p: PublishedPath, drop: string[] = []): Array<[string, string]> =>
    headersFor(p).filter(([n]) => !sharedNames.has(n) && !drop.includes(n));

  // 2. /v2/ and /v2/_catalog, exactly.
  for (const x of parsed.filter((x) => x.p.kind === 'base' || x.p.kind === 'catalog')) {
    rules.push({ path: literal(x.p.urlPath), set: rest(x.p), unset: [] });
  }

  // 3. Every tags/list in one rule when they agree (they do: JSON, short cache).
  const tagLists = parsed.filter((x) => x.p.kind === 'tags');
  const sameHeaders = (xs: Parsed[]): boolean => xs.every((x) => JSON.stringify(rest(x.p)) === JSON.stringify(rest(xs[0]!.p)));
  if (tagLists.length && sameHeaders(tagLists)) rules.push({ path: '/v2/*/tags/list', set: rest(tagLists[0]!.p), unset: [] });
  else for (const x of tagLists) rules.push({ path: literal(x.p.urlPath), set: rest(x.p), unset: [] });

  // 4. Blobs and digest manifests: one rule per name depth; the digest comes from the splat.
  const depthOf = (x: Parsed): number => x.repo!.split('/').length;
  const mostCommon = (xs: Parsed[]): string => {
    const counts = new Map<string, number>();
    for (const x of xs) counts.set(x.p.contentType, (counts.get(x.p.contentType) ?? 0) + 1);
    return [...counts].sort((a, b) => b[1] - a[1] || compareStrings(a[0], b[0]))[0]![0];
  };
  /** The compact tag rules (see CloudflareTags), pushed in order; the header names they set. */
  const tagRules = (tags: Parsed[]): string[] => {
    const drop = ['Docker-Content-Digest', 'Content-Type'];
    const names = new Set<string>();
    const overrides: CfRule[] = [];
    for (const depth of [...new Set(tags.map(depthOf))].sort((a, b) => a - b)) {
      const group = tags.filter((x) => depthOf(x) === depth);
      const first = rest(group[0]!.p, drop);
      if (!group.every((x) => JSON.stringify(rest(x.p, drop)) === JSON.stringify(first))) {
        throw new RegistrishError(`Cloudflare: tags at name depth ${depth} do not share their headers; cannot group them`);
      }
      const depthType = mostCommon(group);
      const set: Array<[string, string]> = [['Content-Type', depthType], ...first];
      for (const [n] of set) names.add(n);
      rules.push({ path: `/v2/${placeholders(depth)}/manifests/:t_`, set, unset: [] });
      for (const repo of [...new Set(group.map((x) => x.repo!))].sort(compareStrings)) {
        const ts = group.filter((x) => x.repo === repo);
        const own = mostCommon(ts);
        const withOwn = 1 + ts.filter((x) => x.p.contentType !== own).length;
        const type = withOwn < ts.filter((x) => x.p.contentType !== depthType).length ? own : depthType;
        if (type !== depthType) overrides.push({ path: `/v2/${literal(repo)}/manifests/:t_`, set: [['Content-Type', type]], unset: ['Content-Type'] });
        for (const x of ts.filter((t) => t.p.contentType !== type)) {
          overrides.push({ path: literal(x.p.urlPath), set: [['Content-Type', x.p.contentType]], unset: ['Content-Type'] });
        }
      }
    }
    rules.push(...overrides);
    return [...names];
  };
  const digestRule = (kind: 'blobs' | 'manifests', xs: Parsed[], withType: boolean): void => {
    for (const depth of [...new Set(xs.map(depthOf))].sort((a, b) => a - b)) {
      const group = xs.filter((x) => depthOf(x) === depth);
      const drop = ['Docker-Content-Digest', ...(withType ? [] : ['Content-Type'])];
      const first = rest(group[0]!.p, drop);
      if (!group.every((x) => JSON.stringify(rest(x.p, drop)) === JSON.stringify(first))) {
        throw new RegistrishError(`Cloudflare: ${kind} at name depth ${depth} do not share their headers; cannot group them`);
      }
      const set: Array<[string, string]> = [...first];
      if (group.every((x) => x.p.digest === x.ref)) set.push(['Docker-Content-Digest', 'sha256::splat']);
      rules.push({ path: `/v2/${placeholders(depth)}/${kind}/sha256:*`, set, unset: [] });
    }
  };
  const blobs = parsed.filter((x) => x.p.kind === 'blob');
  if (blobs.some((x) => !DIGEST_RE.test(x.ref!))) throw new RegistrishError('Cloudflare: a blob URL does not end in a sha256 digest');
  digestRule('blobs', blobs, true);

  const digestManifests = parsed.filter((x) => x.p.kind === 'manifest' && x.p.immutable && DIGEST_RE.test(x.ref!));
  const tagManifests = parsed.filter((x) => x.p.kind === 'manifest' && !digestManifests.includes(x));
  // Compact tags: their rules match digest URLs too (`:t_` is any segment), so they come before
  // the digest rules, which unset what they set.
  const tagNames = compactTags ? tagRules(tagManifests) : [];
  digestRule('manifests', digestManifests, false);
  if (tagNames.length) {
    for (const depth of new Set(digestManifests.map(depthOf))) {
      rules.find((r) => r.path === `/v2/${placeholders(depth)}/manifests/sha256:*`)!.unset.push(...tagNames);
    }
  }
  // Content-Type of digest manifests, fewest rules first: the most common type of a name depth
  // goes on its depth rule; a repository whose own most common type differs (and saves rules)
  // replaces it (`! Content-Type`, then its type); single manifests of yet another type replace it
  // again. Later rules come later in the file, which is the order Pages applies them in.
  const majority = (xs: Parsed[]): string => {
    const counts = new Map<string, number>();
    for (const x of xs) counts.set(x.p.contentType, (counts.get(x.p.contentType) ?? 0) + 1);
    return [...counts].sort((a, b) => b[1] - a[1] || compareStrings(a[0], b[0]))[0]![0];
  };
  const repoRules: CfRule[] = [];
  const exceptions: CfRule[] = [];
  for (const depth of [...new Set(digestManifests.map(depthOf))].sort((a, b) => a - b)) {
    const group = digestManifests.filter((x) => depthOf(x) === depth);
    const depthType = majority(group);
    rules.find((r) => r.path === `/v2/${placeholders(depth)}/manifests/sha256:*`)!.set.unshift(['Content-Type', depthType]);
    for (const repo of [...new Set(group.map((x) => x.repo!))].sort(compareStrings)) {
      const ms = group.filter((x) => x.repo === repo);
      const own = majority(ms);
      const withOwn = 1 + ms.filter((x) => x.p.contentType !== own).length;
      const type = withOwn < ms.filter((x) => x.p.contentType !== depthType).length ? own : depthType;
      if (type !== depthType) {
        repoRules.push({ path: `/v2/${literal(repo)}/manifests/sha256:*`, set: [['Content-Type', type]], unset: ['Content-Type'] });
      }
      for (const x of ms.filter((m) => m.p.contentType !== type)) {
        exceptions.push({ path: `/v2/${literal(repo)}/manifests/sha256:*${x.ref!.slice('sha256:'.length)}`, set: [['Content-Type', x.p.contentType]], unset: ['Content-Type'] });
      }
    }
  }
  rules.push(...repoRules, ...exceptions);

  // 5. Referrers answers: one rule per name depth (every one is an OCI index with a short cache).
  const referrers = parsed.filter((x) => x.p.kind === 'referrers');
  if (referrers.some((x) => !DIGEST_RE.test(x.ref!))) throw new RegistrishError('Cloudflare: a referrers URL does not end in a sha256 digest');
  for (const depth of [...new Set(referrers.map(depthOf))].sort((a, b) => a - b)) {
    const group = referrers.filter((x) => depthOf(x) === depth);
    if (!sameHeaders(group)) throw new RegistrishError(`Cloudflare: referrers at name depth ${depth} do not share their headers; cannot group them`);
    rules.push({ path: `/v2/${placeholders(depth)}/referrers/sha256:*`, set: rest(group[0]!.p), unset: [] });
  }

  // 6. Tags, exact: one rule each (the digest differs per tag); and the Helm repository's index.yaml,
  // outside /v2/*: all of its own headers.
  const done = new Set<PublishedPath>([...parsed.filter((x) => ['base', 'catalog', 'tags', 'blob', 'referrers'].includes(x.p.kind)), ...digestManifests, ...(compactTags ? tagManifests : [])].map((x) => x.p));
  for (const x of parsed.filter((x) => !done.has(x.p))) rules.push({ path: literal(x.p.urlPath), set: x.p.urlPath.startsWith('/v2/') ? rest(x.p) : headersFor(x.p), unset: [] });
  return rules;
}

/**
 * What Pages must send beyond headersFor(p): a tag's `Content-Length`. Pages' asset server answers
 * HEAD and GET of a file chunked, without Content-Length (measured with `wrangler pages dev`
 * 4.60.0), and docker refuses a tag's HEAD/GET without it ("missing or empty Content-Length
 * header"); a Content-Length written in `_headers` is sent as written. Tags already have one exact
 * rule each, so this costs a line per tag and no rule. Manifests by digest share grouped rules (their
 * sizes differ) and keep none: docker, skopeo, podman and containerd fetch those with GET, which
 * needs no length (test/cloudflare-pages.test.ts pulls every test image with all four).
 */
export function cloudflareExtraHeaders(p: PublishedPath): Array<[string, string]> {
  return p.kind === 'manifest' && !p.immutable ? [['Content-Length', String(p.size)]] : [];
}

/**
 * The answers beside the content, added to the planned rules without changing which rules there
 * are (so planCloudflareRules can change freely; what it must keep: one exact rule per tag URL,
 * and a first rule `/v2/*` for what every URL shares — one is added when there is none):
 * - every tag rule gets cloudflareExtraHeaders();
 * - a missing URL under /v2/ is answered by the nearest `404.html` (renderCloudflareNotFound) with
 *   status 404, and Pages applies the `_headers` rules matching the *request* path to it (measured):
 *   `/v2/*` sets the error body's `Content-Type: application/json` first, and every later rule that
 *   sets Content-Type removes it first (`! Content-Type`), since Pages would comma-join the two. A
 *   missing digest still matches its grouped digest rule, so its error body carries the manifest or
 *   blob type (a rule cannot tell a missing file from a present one); clients read it all the same.
 */
export function withCloudflareAnswers(rules: readonly CfRule[], paths: readonly PublishedPath[], form: CloudflareTags = 'exact'): CfRule[] {
  // Compact tags carry no digest: docker then takes a tag's descriptor from the body of a GET and
  // needs no length (measured with wrangler pages dev: test/cloudflare-pages.test.ts); a pattern rule could not carry one.
  const tags = new Map(form === 'exact' ? paths.filter((p) => cloudflareExtraHeaders(p).length > 0).map((p) => [p.urlPath, p]) : []);
  const out = rules.map((r): CfRule => {
    const tag = tags.get(r.path);
    const set: Array<[string, string]> = tag ? [...r.set, ...cloudflareExtraHeaders(tag)] : [...r.set];
    const setsType = set.some(([n]) => n.toLowerCase() === 'content-type');
    const unset = setsType && !r.unset.some((n) => n.toLowerCase() === 'content-type') ? ['Content-Type', ...r.unset] : [...r.unset];
    return { path: r.path, set, unset };
  });
  const first = out[0]?.path === '/v2/*' ? out[0] : undefined;
  const errorType: [string, string] = ['Content-Type', ERROR_CONTENT_TYPE];
  if (first) {
    first.unset = first.unset.filter((n) => n.toLowerCase() !== 'content-type');
    first.set = [errorType, ...first.set.filter(([n]) => n.toLowerCase() !== 'content-type')];
    return out;
  }
  return [{ path: '/v2/*', set: [errorType], unset: [] }, ...out];
}

/** The rules the Cloudflare `_headers` is written from: planned with `tags`, then withCloudflareAnswers(). */
export function cloudflareRules(paths: readonly PublishedPath[], tags: CloudflareTags = cloudflareTagsFor(paths)): CfRule[] {
  return withCloudflareAnswers(planCloudflareRules(paths, { tags }), paths, tags);
}

/**
 * Pages answers a missing path with the `404.html` nearest to it (its folder, then each parent):
 * `v2/<name>/manifests/404.html` and `…/blobs/404.html` for each published repository,
 * `v2/404.html` for everything else under /v2/; the site's own (or our) top-level 404.html stays
 * the answer everywhere else. A tag named `404.html` cannot exist on Pages (see checkCloudflare).
 */
export function renderCloudflareNotFound(paths: readonly PublishedPath[]): HostFile[] {
  const file = (f: string, kind: NotFoundKind): HostFile => ({ file: f, text: notFoundBody(kind) });
  return [
    file(`v2/${CLOUDFLARE_404}`, 'name'),
    ...publishedRepositories(paths).flatMap((repo) => [
      file(`v2/${repo}/manifests/${CLOUDFLARE_404}`, 'manifest'),
      file(`v2/${repo}/blobs/${CLOUDFLARE_404}`, 'blob'),
    ]),
  ];
}

export function renderCloudflareRules(rules: readonly CfRule[]): string {
  const blocks = rules.map((r) => [r.path, ...r.unset.map((n) => `  ! ${n}`), ...r.set.map(([n, v]) => `  ${n}: ${v}`)].join('\n'));
  const head = [
    '# Generated by registrish for Cloudflare Pages: grouped rules (Pages reads at most 100).',
    '# Every matching rule applies; a header set twice is comma-joined, so no URL is matched by two rules',
    '# setting the same header (except after "! Name", which removes the earlier value).',
  ].join('\n');
  return `${head}\n${blocks.map((b) => `\n${b}\n`).join('')}`;
}

/** Pages' rule path → RegExp, as asset-server/rulesEngine.ts builds it. */
export function cloudflareRuleRegExp(rulePath: string): RegExp | undefined {
  const esc = (s: string): string => s.replace(/[-/\\^$*+?.()|[\]{}]/gu, '\\$&');
  let re = rulePath.split('*').map(esc).join('(?<splat>.*)');
  for (const m of [...re.matchAll(/:([A-Za-z]\w*)/gu)]) re = re.split(m[0]).join(`(?<${m[1]}>[^/]+)`);
  try {
    return new RegExp(`^${re}$`);
  } catch {
    return undefined; // Pages drops such a rule silently
  }
}

/** The headers Pages would send for `urlPath` from `rules` (names lower-cased, in order). */
export function cloudflareHeadersFor(rules: readonly CfRule[], urlPath: string, compiled = compileRules(rules)): Map<string, string> {
  const headers = new Map<string, string>();
  const seen = new Set<string>();
  for (const [i, r] of rules.entries()) {
    const m = compiled[i]?.exec(urlPath);
    if (!m) continue;
    for (const n of r.unset) headers.delete(n.toLowerCase());
    for (const [n, v0] of r.set) {
      let v = v0;
      for (const [k, val] of Object.entries(m.groups ?? {})) v = v.replaceAll(`:${k}`, val ?? '');
      const key = n.toLowerCase();
      const prev = headers.get(key);
      headers.set(key, seen.has(key) && prev !== undefined ? `${prev}, ${v}` : v);
      seen.add(key);
    }
  }
  return headers;
}

function compileRules(rules: readonly CfRule[]): Array<RegExp | undefined> {
  return rules.map((r) => cloudflareRuleRegExp(r.path));
}

/**
 * What a URL must get with tags written `tags`: headersFor(p), without the digest of a compact tag
 * (a pattern rule cannot carry it), with a tag's Content-Length where tags have exact rules
 * (cloudflareExtraHeaders: only an exact rule can carry a per-file size).
 */
export function cloudflareWanted(p: PublishedPath, tags: CloudflareTags = 'exact'): Array<[string, string]> {
  const compactTag = tags === 'compact' && p.kind === 'manifest' && !p.immutable;
  if (compactTag) return headersFor(p).filter(([n]) => n !== 'Docker-Content-Digest');
  return [...headersFor(p), ...cloudflareExtraHeaders(p)];
}

/** The tag form the writer uses: exact while the rules (with the not-found answers) fit Pages' limit, else compact. */
export function cloudflareTagsFor(paths: readonly PublishedPath[]): CloudflareTags {
  return withCloudflareAnswers(planCloudflareRules(paths, { tags: 'exact' }), paths).length <= CLOUDFLARE_MAX_RULES ? 'exact' : 'compact';
}

/** Mismatches between what Pages would send and cloudflareWanted(p, tags), one message per URL. */
export function cloudflareMismatches(rules: readonly CfRule[], paths: readonly PublishedPath[], tags: CloudflareTags = 'exact'): string[] {
  const out: string[] = [];
  const compiled = compileRules(rules);
  for (const p of paths) {
    const got = cloudflareHeadersFor(rules, p.urlPath, compiled);
    const want = new Map(cloudflareWanted(p, tags).map(([n, v]) => [n.toLowerCase(), v]));
    const diff = [...new Set([...got.keys(), ...want.keys()])].filter((k) => got.get(k) !== want.get(k));
    if (diff.length) out.push(`${p.urlPath}: ${diff.map((k) => `${k} would be ${JSON.stringify(got.get(k) ?? null)} instead of ${JSON.stringify(want.get(k) ?? null)}`).join('; ')}`);
  }
  return out;
}

/**
 * The rules of a `_headers` text as Cloudflare Pages reads them: a path line (`/…` or `https://…`)
 * starts a rule, `Name: value` sets, `! Name` unsets; comments and blank lines are skipped.
 */
export function parseCloudflareHeaders(text: string): Array<CfRule & { line: number }> {
  const rules: Array<CfRule & { line: number }> = [];
  for (const [i, raw] of text.replace(/\r\n/gu, '\n').split('\n').entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith('/') || line.startsWith('https://')) {
      rules.push({ path: line, set: [], unset: [], line: i + 1 });
      continue;
    }
    const rule = rules.at(-1);
    if (!rule) continue;
    if (line.startsWith('!')) {
      rule.unset.push(line.slice(1).trim());
      continue;
    }
    const colon = line.indexOf(':');
    if (colon > 0) rule.set.push([line.slice(0, colon).trim(), line.slice(colon + 1).trim()]);
  }
  // Pages drops a path without header lines; a host-qualified rule never matches a bare path.
  return rules.filter((r) => (r.set.length > 0 || r.unset.length > 0) && !r.path.startsWith('https://'));
}

/**
 * Every rule of the final `_headers` (the registry's and the site's own) applied with Pages'
 * semantics to every published URL: a site rule that changes a registry header is a build error.
 */
export function cloudflareMergedProblem(mergedText: string, ours: readonly CfRule[], paths: readonly PublishedPath[], tags: CloudflareTags = 'exact'): string | undefined {
  const all = parseCloudflareHeaders(mergedText);
  const ourKeys = new Set(ours.map((r) => JSON.stringify([r.path, r.set, r.unset])));
  const bad = cloudflareMismatches(all, paths, tags);
  if (bad.length === 0) return undefined;
  const example = bad[0]!;
  const url = example.slice(0, example.indexOf(': '));
  const culprits = all.filter((r) => !ourKeys.has(JSON.stringify([r.path, r.set, r.unset])) && cloudflareRuleRegExp(r.path)?.test(url));
  const who = culprits.length
    ? `your _headers rule${culprits.length > 1 ? 's' : ''} ${culprits.map((r) => `"${r.path}" (line ${r.line})`).join(', ')}`
    : 'the merged _headers rules';
  return `on Cloudflare Pages every matching _headers rule applies and repeated headers are comma-joined: ${who} would change registry headers, e.g. ${example}${bad.length > 1 ? ` (and ${bad.length - 1} more URL${bad.length > 2 ? 's' : ''})` : ''}`;
}

const repoOf = (p: PublishedPath): string => parse(p).repo ?? p.urlPath;

export function checkCloudflare(paths: readonly PublishedPath[]): HostCheck {
  const errors: string[] = [];
  const warnings: string[] = [];
  const big = paths.filter((p) => p.size > CLOUDFLARE_MAX_FILE_BYTES);
  if (big.length) {
    const names = [...new Set(big.map(repoOf))].sort(compareStrings);
    errors.push(
      `Cloudflare Pages refuses files over 25 MiB: ${big.length} file(s) of ${names.join(', ')} ` +
        `(e.g. ${big[0]!.file}, ${(big[0]!.size / 1024 / 1024).toFixed(1)} MiB). Publish smaller images or use another host.`,
    );
  }
  // With the 404.html files that answer for missing content.
  const files = new Set(paths.map((p) => p.file)).size + renderCloudflareNotFound(paths).length;
  if (files + 2 > CLOUDFLARE_MAX_FILES) {
    errors.push(`the registry alone is ${files} files; Cloudflare Pages deploys at most ${CLOUDFLARE_MAX_FILES} files (free plan). Publish fewer images or tags.`);
  } else if (files > CLOUDFLARE_MAX_FILES * 0.8) {
    warnings.push(`the registry is ${files} files; Cloudflare Pages deploys at most ${CLOUDFLARE_MAX_FILES}, the rest of your site included`);
  }
  for (const p of paths) {
    const ref = p.urlPath.split('/').at(-1)!;
    // Pages redirects `…/index` to `…/` and `x.html` to `x`: such tags can never be fetched.
    if (p.kind === 'manifest' && (ref === 'index' || ref.endsWith('.html'))) {
      errors.push(`${p.urlPath}: Cloudflare Pages redirects URLs ending in "/index" or ".html"; rename the tag`);
    }
  }
  let rules: CfRule[] = [];
  let tags: CloudflareTags = 'exact';
  try {
    tags = cloudflareTagsFor(paths);
    rules = cloudflareRules(paths, tags);
  } catch (err) {
    errors.push((err as Error).message);
    return { errors, warnings };
  }
  if (rules.length > CLOUDFLARE_MAX_RULES) {
    const exceptions = rules.filter((r) => r.unset.includes('Content-Type') && !r.set.some(([n]) => n === 'Docker-Content-Digest'));
    const names = [...new Set(exceptions.map((r) => /^\/v2\/(.+)\/manifests\//u.exec(r.path)?.[1] ?? r.path))].sort(compareStrings);
    errors.push(
      `the registry needs ${rules.length} _headers rules even with one rule for all tags of a name depth; Cloudflare Pages reads at most ${CLOUDFLARE_MAX_RULES}. ` +
        `${exceptions.length} of them are for manifests whose type differs from the rest of their repository (in a multi-platform repository: one per index), in ${names.slice(0, 10).join(', ')}${names.length > 10 ? ', …' : ''}. ` +
        'Publish fewer tags of multi-platform images, or fewer repositories.',
    );
    // Applying thousands of rules to every URL would cost rules × URLs, for a build that fails anyway.
    return { errors, warnings };
  }
  const text = renderCloudflareRules(rules);
  const long = text.split('\n').findIndex((l) => l.length > CLOUDFLARE_MAX_LINE);
  if (long >= 0) errors.push(`_headers line ${long + 1} is longer than ${CLOUDFLARE_MAX_LINE} characters, which Cloudflare Pages ignores`);
  const bad = cloudflareMismatches(rules, paths, tags);
  if (bad.length) errors.push(`Cloudflare _headers rules would not give the exact headers (a bug in registrish, please report it): ${bad.slice(0, 3).join(' | ')}`);
  return { errors, warnings };
}

const NOT_FOUND_HTML = '<!doctype html>\n<meta charset="utf-8">\n<title>Not found</title>\n<h1>404 Not found</h1>\n';

export async function renderCloudflare(outDir: string, allPaths: PublishedPath[]): Promise<{ files: HostFile[]; warnings: string[] }> {
  // `_headers` only for files on the site: blobs in a store are answered by `_redirects`.
  const paths = onSite(allPaths);
  const redirects = await renderCloudflareRedirects(outDir, allPaths);
  const tags = cloudflareTagsFor(paths);
  const rules = cloudflareRules(paths, tags);
  const merged = await mergeIntoSiteHeaders(outDir, renderCloudflareRules(rules));
  // The site's own rules count against the same limit.
  const ruleCount = merged.text.split('\n').filter((l) => /^\s*(\/|https:\/\/)/u.test(l)).length;
  if (ruleCount > CLOUDFLARE_MAX_RULES) {
    throw new RegistrishError(
      `_headers would have ${ruleCount} rules (${rules.length} for the registry); Cloudflare Pages reads at most ${CLOUDFLARE_MAX_RULES}`,
      { hint: 'Remove some of your own _headers rules, or publish fewer tags.' },
    );
  }
  const problem = cloudflareMergedProblem(merged.text, rules, paths, tags);
  if (problem) {
    throw new RegistrishError(problem, {
      hint: 'Narrow your own _headers rule so it does not match /v2/ URLs, or drop the registry header names from it.',
    });
  }
  const files: HostFile[] = [{ file: '_headers', text: merged.text }, ...redirects, ...renderCloudflareNotFound(allPaths)];
  let has404 = true;
  try {
    await readFile(path.join(outDir, CLOUDFLARE_404));
  } catch {
    has404 = false;
  }
  if (!has404) files.push({ file: CLOUDFLARE_404, text: NOT_FOUND_HTML });
  return { files, warnings: merged.warnings };
}

export const cloudflare: Host = {
  name: 'cloudflare',
  // Blobs in a store: `_redirects` (renderCloudflareRedirects); the 25 MiB limit applies to what stays (checkHosts).
  writer: { check: checkCloudflare, render: renderCloudflare, blobRedirects: true, siteFiles: ['_headers', '_redirects', CLOUDFLARE_404] },
  fixes: {
    'base-status': 'Check v2/index.html was uploaded and no _redirects rule matches /v2/.',
    status: `${REDEPLOY} Cloudflare Pages allows 20,000 files (free plan) and 25 MiB per file.`,
    'manifest-type': 'Deploy the generated _headers at the output root (Cloudflare Pages: at most 100 rules, 2,000 characters a line; every matching rule applies).',
    'type-params': 'Look for a Transform Rule, Worker or second _headers rule adding the parameter (Cloudflare joins repeated headers).',
    'digest-header-missing': 'The generated _headers sets it: deploy it with the site.',
    'head-length': 'Serve the static file: a Worker / Pages Function answering this path drops Content-Length on HEAD.',
    'content-encoding': 'Remove any Content-Encoding from _headers / Transform Rules for /v2/.',
    'error-body': 'Deploy the 404.html files the build writes under v2/ (Pages answers a missing path with the nearest one) and the generated _headers.',
    'missing-200': 'Add a top-level 404.html: without it Cloudflare Pages answers index.html with 200 for any missing path.',
  },
};
