import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { REDEPLOY } from '../check/problems.ts';
import { RegistrishError } from '../util/errors.ts';
import { headersFor } from '../publish/headers.ts';
import type { Host, HostCheck, HostFile } from './host.ts';
import { compareStrings } from '../util/format.ts';
import { mergeIntoSiteHeaders } from './headers-file.ts';
import type { PublishedPath } from '../model/published-path.ts';

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
//   else per manifest), one per tag
//   (a tag's digest is its own), and one each for /v2/, /v2/_catalog and all tags/list.
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

/** Groups the published paths into Cloudflare rules (see the comment at the top). */
export function planCloudflareRules(paths: readonly PublishedPath[]): CfRule[] {
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
  digestRule('manifests', digestManifests, false);
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

  // 6. Tags: one exact rule each (the digest differs per tag).
  const done = new Set<PublishedPath>([...parsed.filter((x) => ['base', 'catalog', 'tags', 'blob', 'referrers'].includes(x.p.kind)), ...digestManifests].map((x) => x.p));
  // (And the Helm repository's index.yaml, outside /v2/*: all of its own headers.)
  for (const x of parsed.filter((x) => !done.has(x.p))) rules.push({ path: literal(x.p.urlPath), set: x.p.urlPath.startsWith('/v2/') ? rest(x.p) : headersFor(x.p), unset: [] });
  return rules;
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

/** Mismatches between what Pages would send and headersFor(p), one message per URL. */
export function cloudflareMismatches(rules: readonly CfRule[], paths: readonly PublishedPath[]): string[] {
  const out: string[] = [];
  const compiled = compileRules(rules);
  for (const p of paths) {
    const got = cloudflareHeadersFor(rules, p.urlPath, compiled);
    const want = new Map(headersFor(p).map(([n, v]) => [n.toLowerCase(), v]));
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
export function cloudflareMergedProblem(mergedText: string, ours: readonly CfRule[], paths: readonly PublishedPath[]): string | undefined {
  const all = parseCloudflareHeaders(mergedText);
  const ourKeys = new Set(ours.map((r) => JSON.stringify([r.path, r.set, r.unset])));
  const bad = cloudflareMismatches(all, paths);
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
  const files = new Set(paths.map((p) => p.file)).size;
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
  try {
    rules = planCloudflareRules(paths);
  } catch (err) {
    errors.push((err as Error).message);
    return { errors, warnings };
  }
  if (rules.length > CLOUDFLARE_MAX_RULES) {
    const tagRules = paths.filter((p) => p.kind === 'manifest' && !p.immutable);
    const names = [...new Set(tagRules.map(repoOf))].sort(compareStrings);
    errors.push(
      `the registry needs ${rules.length} _headers rules; Cloudflare Pages reads at most ${CLOUDFLARE_MAX_RULES} ` +
        `(one per tag — ${tagRules.length} tags, in ${names.join(', ')} — one per repository with digest manifests, and a few shared). ` +
        'Publish fewer tags or repositories.',
    );
    // Applying thousands of rules to every URL would cost rules × URLs, for a build that fails anyway.
    return { errors, warnings };
  }
  const text = renderCloudflareRules(rules);
  const long = text.split('\n').findIndex((l) => l.length > CLOUDFLARE_MAX_LINE);
  if (long >= 0) errors.push(`_headers line ${long + 1} is longer than ${CLOUDFLARE_MAX_LINE} characters, which Cloudflare Pages ignores`);
  const bad = cloudflareMismatches(rules, paths);
  if (bad.length) errors.push(`Cloudflare _headers rules would not give the exact headers (a bug in registrish, please report it): ${bad.slice(0, 3).join(' | ')}`);
  return { errors, warnings };
}

const NOT_FOUND_HTML = '<!doctype html>\n<meta charset="utf-8">\n<title>Not found</title>\n<h1>404 Not found</h1>\n';

export async function renderCloudflare(outDir: string, paths: PublishedPath[]): Promise<{ files: HostFile[]; warnings: string[] }> {
  const rules = planCloudflareRules(paths);
  const merged = await mergeIntoSiteHeaders(outDir, renderCloudflareRules(rules));
  // The site's own rules count against the same limit.
  const ruleCount = merged.text.split('\n').filter((l) => /^\s*(\/|https:\/\/)/u.test(l)).length;
  if (ruleCount > CLOUDFLARE_MAX_RULES) {
    throw new RegistrishError(
      `_headers would have ${ruleCount} rules (${rules.length} for the registry); Cloudflare Pages reads at most ${CLOUDFLARE_MAX_RULES}`,
      { hint: 'Remove some of your own _headers rules, or publish fewer tags.' },
    );
  }
  const problem = cloudflareMergedProblem(merged.text, rules, paths);
  if (problem) {
    throw new RegistrishError(problem, {
      hint: 'Narrow your own _headers rule so it does not match /v2/ URLs, or drop the registry header names from it.',
    });
  }
  const files: HostFile[] = [{ file: '_headers', text: merged.text }];
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
  writer: { check: checkCloudflare, render: renderCloudflare },
  fixes: {
    'base-status': 'Check v2/index.html was uploaded and no _redirects rule matches /v2/.',
    status: `${REDEPLOY} Cloudflare Pages allows 20,000 files (free plan) and 25 MiB per file.`,
    'manifest-type': 'Deploy the generated _headers at the output root (Cloudflare Pages: at most 100 rules, 2,000 characters a line; every matching rule applies).',
    'type-params': 'Look for a Transform Rule, Worker or second _headers rule adding the parameter (Cloudflare joins repeated headers).',
    'digest-header-missing': 'The generated _headers sets it: deploy it with the site.',
    'head-length': 'Serve the static file: a Worker / Pages Function answering this path drops Content-Length on HEAD.',
    'content-encoding': 'Remove any Content-Encoding from _headers / Transform Rules for /v2/.',
    'missing-200': 'Add a top-level 404.html: without it Cloudflare Pages answers index.html with 200 for any missing path.',
  },
};
