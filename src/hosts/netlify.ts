import path from 'node:path';
import { REDEPLOY } from '../check/problems.ts';
import type { PublishedPath } from '../model/published-path.ts';
import { onSite } from '../publish/blob-store.ts';
import { headersFor } from '../publish/headers.ts';
import { RegistrishError } from '../util/errors.ts';
import { compareStrings } from '../util/format.ts';
import { mergeIntoSiteHeaders, netlifyRulePattern } from './headers-file.ts';
import type { Host, HostCheck } from './host.ts';
import { renderNetlifyNotFound } from './redirects-file.ts';

// Netlify `_headers` writer. Renders what every published URL needs, in one of two forms (the
// `netlify: { headers }` option; `auto` by default):
// - exact: one exact-path rule per URL with exactly headersFor(p); no two rules match one URL;
// - compact: a few pattern rules per repository (`/v2/<name>/manifests/*`, `…/manifests/sha256:*`,
//   `…/blobs/*`, `…/referrers/*`) and one for every tags/list, then exact rules only where a URL's
//   headers differ from its patterns' (in a multi-platform repository: one per index digest). Its
//   rule count follows repositories and media types, not tags; it sends no Docker-Content-Digest.
//
// The compact form relies on Netlify applying every matching rule with, for one header name, the
// later rule winning: what @netlify/headers-parser does for a path listed twice, what `netlify dev`
// (cli, utils/headers.ts headersForPath: Object.assign over the matching rules) and Netlify's own
// local emulation (netlify/primitives, packages/headers: headersForPath) do; the live CDN was not
// deployed to here. Cloudflare Pages, which reads the same file format, comma-joins instead: it has
// its own writer (cloudflare.ts), and a Netlify `_headers` must never be deployed there.
//
// Why `:` in digest paths is written literally (checked against @netlify/headers-parser 9.0.3,
// lib/line_parser.js and lib/for_regexp.js):
// - a line is a path line iff it starts with `/`, so `/v2/x/manifests/sha256:abc…` is never split at
//   its `:` as if it were a `Name: value` header line;
// - the path is split on `/` and a segment is a placeholder only when it *starts* with `:`
//   (`/:name/`); `sha256:abc…` is escaped and matched literally (case-insensitively, like everything);
// - percent-encoding it (`sha256%3Aabc…`) would be wrong: the rule would then require a literal
//   `%3A`, while clients (Docker, containerd, containers/image, crane) send the `:` unencoded.
// Netlify documents placeholders only as whole segments starting with `:`, and its CLI notes that
// production matching uses the same regex approach; the live CDN itself was not deployed to and
// checked here. Registry names and tags can never start a
// segment with `:` or contain `*`, and assertNetlifyPath() refuses such paths rather than letting a
// URL silently turn into a pattern.

/** Netlify refuses deploys with more files than this in one directory. */
export const NETLIFY_MAX_FILES_PER_DIR = 54_000;
/** Files above this size get a warning (Netlify is a site CDN, not a file host). */
export const NETLIFY_LARGE_FILE_BYTES = 10 * 1024 * 1024;

/** Why `urlPath` cannot be written as an exact Netlify rule path, or undefined when it can. */
export function netlifyPathProblem(urlPath: string): string | undefined {
  if (!urlPath.startsWith('/')) return 'it does not start with "/"';
  // Whitespace would be trimmed or split by the line parser; `*` is the splat; `%`, `?`, `#`
  // and `\` have no unambiguous meaning in a rule path. Registry names and tags never contain them.
  const bad = /[\s\u0000-\u001f\u007f*%?#\\]/u.exec(urlPath);
  if (bad) return `it contains ${JSON.stringify(bad[0])}, which Netlify rule paths cannot express literally`;
  if (urlPath.split('/').some((seg) => seg.startsWith(':'))) {
    return 'a segment starts with ":", which Netlify reads as a placeholder';
  }
  if (urlPath.includes('//')) return 'it contains an empty segment ("//"), which Netlify ignores when matching';
  return undefined;
}

function assertNetlifyPath(urlPath: string): void {
  const problem = netlifyPathProblem(urlPath);
  if (problem) {
    throw new RegistrishError(`cannot write a Netlify _headers rule for ${JSON.stringify(urlPath)}: ${problem}`, {
      hint: 'This is a bug in registrish (registry names and tags never need such characters); please report it.',
    });
  }
}

function assertHeaderText(urlPath: string, name: string, value: string): void {
  // A newline would start a new rule; an empty value is a parse error; `:` in a name would split it.
  if (!/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/u.test(name) || /[\r\n]/u.test(value) || value.trim() === '' || value !== value.trim()) {
    throw new RegistrishError(
      `cannot write header ${JSON.stringify(name)}: ${JSON.stringify(value)} for ${urlPath} into _headers`,
    );
  }
}

/** The two forms of the Netlify `_headers`, and `auto`: exact while Netlify reads it fast, else compact. */
export type NetlifyHeadersForm = 'exact' | 'compact' | 'auto';
export const NETLIFY_HEADERS_FORMS: readonly NetlifyHeadersForm[] = ['exact', 'compact', 'auto'];

/** The `netlify` host option (`netlify: { headers }` in the plugin options). */
export interface NetlifyOptions {
  headers?: NetlifyHeadersForm;
}

/**
 * `auto` writes the exact form up to this many rules (one per URL), the compact form above.
 * Why a budget at all: Netlify's build reads the publish folder's `_headers` with
 * @netlify/headers-parser (netlify/build, packages/config: addHeaders → parseAllHeaders), whose
 * line reducer (line_parser.ts, reduceLine) copies the list of rules read so far for every line:
 * time grows with lines × rules (measured with 9.0.3: 10,000 exact rules 0.6 s, 20,000 66 s).
 * Why this number: the parse-time budget is half a second of that parser; it read the exact form
 * of 4,000 URLs in 0.47 CPU s on a busy 2-core machine, 10,000 in 1.1 s (`bench/scale.ts
 * --headers-only`, docs/performance.md "Scale: header rules"). Below it the exact form costs
 * nothing and carries Docker-Content-Digest; above it the compact form's rules follow repositories.
 */
export const NETLIFY_EXACT_MAX_RULES = 4_000;
/**
 * Netlify's parser copies the rules read so far for every line: its time follows rules × lines. The
 * writer warns above this product — about a second: the exact form of 10,000 URLs (5 lines a rule)
 * is 5.0e8 and took 1.1 CPU s, the compact form of 10,000 multi-platform tags (10,603 rules, mostly
 * 2 lines) 2.3e8 and 0.6 s (bench/scale.ts --headers-only).
 */
export const NETLIFY_SLOW_COST = 5e8;

/** Rules × lines of a `_headers`: what Netlify's parser's time follows. */
export function netlifyParseCost(rules: readonly NetlifyRule[]): number {
  return rules.length * rules.reduce((lines, r) => lines + 1 + r.headers.length, 0);
}

export interface NetlifyRule {
  /** The rule path: a literal URL, or a pattern (`/v2/<name>/manifests/*`, …) in the compact form. */
  path: string;
  headers: Array<[name: string, value: string]>;
}

const DIGEST_HEADER = 'docker-content-digest';

/** One exact rule per URL, keyed by URL: refuses URLs Netlify would not read literally, and conflicts. */
function exactRules(paths: readonly PublishedPath[]): Map<string, { p: PublishedPath; rule: NetlifyRule }> {
  const byUrl = new Map<string, { p: PublishedPath; rule: NetlifyRule; key: string }>();
  for (const p of paths) {
    assertNetlifyPath(p.urlPath);
    const headers = headersFor(p);
    for (const [name, value] of headers) assertHeaderText(p.urlPath, name, value);
    const key = JSON.stringify(headers);
    const previous = byUrl.get(p.urlPath);
    if (previous !== undefined && previous.key !== key) {
      throw new RegistrishError(`${p.urlPath} is published twice with different headers`, {
        hint: 'Two images.json entries publish the same repository and tag; give them different names or tags.',
      });
    }
    byUrl.set(p.urlPath, { p, rule: { path: p.urlPath, headers }, key });
  }
  return byUrl;
}

/**
 * What the compact form sends for `p`: headersFor(p) without Docker-Content-Digest, which a
 * pattern rule cannot carry (Netlify has no placeholder in values) and no pull client needs
 * (README, "Which headers clients need").
 */
export function compactHeadersFor(p: PublishedPath): Array<[string, string]> {
  return headersFor(p).filter(([n]) => n.toLowerCase() !== DIGEST_HEADER);
}

/** A pattern rule of the compact form and the published URLs it stands for. */
interface Pattern {
  rule: NetlifyRule;
  /** Lower-cased text every URL it matches starts with (its RegExp is `^<prefix>/?(.*)/?$` or `^<prefix>(.*)/?$`), or undefined for the global tags/list rule. */
  prefix?: string;
  re: RegExp;
}

const REPO_URL_RE = /^\/v2\/(.+)\/(manifests|blobs|referrers)\/([^/]+)$/u;
const TAG_LISTS = '/v2/*/tags/list';

/** The most common value (ties: the smallest), for a pattern's header. */
function majority(values: readonly string[]): string {
  const counts = new Map<string, number>();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  return [...counts].sort((a, b) => b[1] - a[1] || compareStrings(a[0], b[0]))[0]![0];
}

/**
 * The compact form's patterns: per repository one for its manifests (`/v2/<name>/manifests/*`:
 * what its tags share), one for its manifests by digest (`…/manifests/sha256:*`: what they share,
 * later in the file so it wins over the first for them), one for its blobs and one for its
 * referrers answers, each only where it stands for at least two URLs; and one for every tags/list.
 * A pattern sets only headers that every published URL carries (Content-Type, Cache-Control,
 * X-Content-Type-Options), so an exact rule later in the file can always correct it.
 */
function compactPatterns(exact: Map<string, { p: PublishedPath }>): Pattern[] {
  const groups = new Map<string, { path: string; members: PublishedPath[] }>();
  const add = (path: string, p: PublishedPath): void => {
    let g = groups.get(path);
    if (!g) groups.set(path, (g = { path, members: [] }));
    g.members.push(p);
  };
  for (const { p } of exact.values()) {
    const m = REPO_URL_RE.exec(p.urlPath);
    if (p.kind === 'tags') add(TAG_LISTS, p);
    if (!m) continue;
    const [, repo, kind, ref] = m;
    if (p.kind === 'manifest' && kind === 'manifests') add(ref!.startsWith('sha256:') ? `/v2/${repo}/manifests/sha256:*` : `/v2/${repo}/manifests/*`, p);
    else if (p.kind === 'blob' && kind === 'blobs') add(`/v2/${repo}/blobs/*`, p);
    else if (p.kind === 'referrers' && kind === 'referrers') add(`/v2/${repo}/referrers/*`, p);
  }
  const universal = (name: string): boolean => ['content-type', 'cache-control', 'x-content-type-options'].includes(name.toLowerCase());
  const patterns: Pattern[] = [];
  for (const g of groups.values()) {
    if (g.members.length < 2) continue; // one URL: an exact rule is as small and matches nothing else
    const lists = g.members.map((p) => compactHeadersFor(p).filter(([n]) => universal(n)));
    const headers = lists[0]!.map(([name]): [string, string] => [name, majority(lists.map((l) => l.find(([n]) => n === name)?.[1] ?? ''))]);
    if (headers.some(([, v]) => v === '')) continue;
    const prefix = g.path === TAG_LISTS ? undefined : g.path.slice(0, -1).replace(/\/$/u, '').toLowerCase();
    patterns.push({ rule: { path: g.path, headers }, prefix, re: netlifyRulePattern(g.path) });
  }
  return patterns.sort((a, b) => compareStrings(a.rule.path, b.rule.path));
}

/**
 * The patterns that match `urlPath` (Netlify's RegExp, case-insensitive), in file order. Every
 * per-repository pattern matches exactly the URLs starting with its prefix, so the candidates are
 * found by looking up the URL's own prefixes ending in /manifests, /blobs, /referrers or
 * /manifests/sha256:, then confirmed with the RegExp.
 */
function matchingPatterns(urlPath: string, byPrefix: Map<string, Pattern[]>, global: readonly Pattern[], order: Map<Pattern, number>): Pattern[] {
  const u = urlPath.toLowerCase();
  const hits = new Set<Pattern>(global.filter((g) => g.re.test(urlPath)));
  for (const kw of ['/manifests', '/blobs', '/referrers']) {
    for (let i = u.indexOf(kw, 3); i >= 0; i = u.indexOf(kw, i + 1)) {
      for (const end of kw === '/manifests' ? [i + kw.length, i + '/manifests/sha256:'.length] : [i + kw.length]) {
        for (const pattern of byPrefix.get(u.slice(0, end)) ?? []) if (pattern.re.test(urlPath)) hits.add(pattern);
      }
    }
  }
  return [...hits].sort((a, b) => order.get(a)! - order.get(b)!);
}

/**
 * The compact form: the patterns of compactPatterns(), then, for every URL they do not give
 * exactly compactHeadersFor(p) — a manifest whose type differs from its pattern's, a repository's
 * only blob, /v2/, a URL another repository's pattern also catches — one exact rule with just the
 * headers to correct or add. Netlify applies every matching rule and, for one header name, the
 * later rule wins; so after the patterns, each URL's exact rule has the last word.
 */
function compactRules(exact: Map<string, { p: PublishedPath }>): NetlifyRule[] {
  const patterns = compactPatterns(exact);
  const order = new Map(patterns.map((p, i) => [p, i]));
  const byPrefix = new Map<string, Pattern[]>();
  const global: Pattern[] = [];
  for (const pattern of patterns) {
    if (pattern.prefix === undefined) global.push(pattern);
    else byPrefix.set(pattern.prefix, [...(byPrefix.get(pattern.prefix) ?? []), pattern]);
  }
  const exceptions: NetlifyRule[] = [];
  for (const [url, { p }] of exact) {
    const got = new Map<string, string>();
    for (const pattern of matchingPatterns(url, byPrefix, global, order)) for (const [n, v] of pattern.rule.headers) got.set(n.toLowerCase(), v);
    const want = compactHeadersFor(p);
    const wanted = new Set(want.map(([n]) => n.toLowerCase()));
    const extra = [...got.keys()].filter((n) => !wanted.has(n));
    if (extra.length) {
      throw new RegistrishError(`compact _headers: ${url} would get ${extra.join(', ')} from a pattern rule`, {
        hint: 'This is a bug in registrish; set the netlify option { headers: "exact" } meanwhile, and please report it.',
      });
    }
    const diff = want.filter(([n, v]) => got.get(n.toLowerCase()) !== v);
    if (diff.length) exceptions.push({ path: url, headers: diff });
  }
  exceptions.sort((a, b) => compareStrings(a.path, b.path));
  return [...patterns.map((p) => p.rule), ...exceptions];
}

/** Which form `form` means for these paths: `auto` is exact up to NETLIFY_EXACT_MAX_RULES URLs. */
export function netlifyHeadersForm(paths: readonly PublishedPath[], form: NetlifyHeadersForm = 'auto'): 'exact' | 'compact' {
  if (form !== 'auto') return form;
  return new Set(paths.map((p) => p.urlPath)).size > NETLIFY_EXACT_MAX_RULES ? 'compact' : 'exact';
}

/**
 * The rules of the Netlify `_headers` for `paths`, in file order.
 * - exact: one rule per URL carrying exactly headersFor(p), sorted by path; no two overlap.
 * - compact: pattern rules per repository and kind (their number follows repositories), then
 *   exact rules only where a URL differs from its patterns; no Docker-Content-Digest. Order
 *   matters: for one header name the later matching rule wins.
 */
export function planNetlifyRules(paths: readonly PublishedPath[], options: NetlifyOptions = {}): NetlifyRule[] {
  const exact = exactRules(paths);
  if (netlifyHeadersForm(paths, options.headers) === 'compact') return compactRules(exact);
  return [...exact.values()].map(({ rule }) => rule).sort((a, b) => compareStrings(a.path, b.path));
}

/**
 * The Netlify `_headers` text for `paths` (see planNetlifyRules for the forms). Throws on a URL
 * that would not be read back literally, or on one URL listed twice with different headers.
 */
export function renderNetlifyHeaders(paths: readonly PublishedPath[], options: NetlifyOptions = {}): string {
  return renderNetlifyRules(planNetlifyRules(paths, options));
}

/** The `_headers` text of rules from planNetlifyRules. */
export function renderNetlifyRules(rules: readonly NetlifyRule[]): string {
  const compact = rules.some((r) => r.path.includes('*'));
  const head = [
    ...(compact
      ? [
          '# Generated by registrish: container registry headers, compact form: pattern rules per repository, then',
          '# exact rules where a URL differs. Every matching rule applies; for one header the later rule wins, so keep the order.',
          '# No Docker-Content-Digest (no pull client needs it; a pattern cannot carry it).',
        ]
      : ['# Generated by registrish: container registry headers, one exact rule per URL.']),
    '# Do not edit: rewritten on every build. Rules added outside the registrish block are kept.',
  ].join('\n');
  const blocks = rules.map((r) => [r.path, ...r.headers.map(([n, v]) => `  ${n}: ${v}`)].join('\n'));
  return `${head}\n${blocks.map((b) => `\n${b}\n`).join('')}`;
}

/** Netlify matches `/A` and `/a/` with the same rule: case-insensitive, optional trailing slash. */
function netlifyPathKey(urlPath: string): string {
  return urlPath.toLowerCase().replace(/\/+$/u, '');
}

/** Things that would make a Netlify deploy fail or serve the wrong thing. */
export function checkNetlifyLimits(paths: readonly PublishedPath[]): HostCheck {
  const errors: string[] = [];
  const warnings: string[] = [];

  for (const p of paths) {
    const problem = netlifyPathProblem(p.urlPath);
    if (problem) errors.push(`${p.urlPath} cannot be expressed as a Netlify _headers rule: ${problem}`);
  }

  // Netlify matches header rules (and serves files) case-insensitively: two such URLs would both
  // pick up both rules, and one of them would get the other's Content-Type and digest.
  const seen = new Map<string, string>();
  for (const p of paths) {
    const key = netlifyPathKey(p.urlPath);
    const other = seen.get(key);
    if (other === undefined) seen.set(key, p.urlPath);
    else if (other !== p.urlPath) {
      errors.push(
        `${other} and ${p.urlPath} differ only in letter case (or a trailing slash); Netlify matches paths ` +
          'case-insensitively, so they cannot both be published. Rename one of the tags or repositories.',
      );
    }
  }

  const perDir = new Map<string, Set<string>>();
  for (const p of paths) {
    const dir = path.posix.dirname(p.file);
    let files = perDir.get(dir);
    if (!files) perDir.set(dir, (files = new Set()));
    files.add(p.file);
  }
  for (const [dir, files] of [...perDir].sort(([a], [b]) => compareStrings(a, b))) {
    if (files.size > NETLIFY_MAX_FILES_PER_DIR) {
      errors.push(
        `${dir}/ would hold ${files.size} files; Netlify refuses deploys with more than ` +
          `${NETLIFY_MAX_FILES_PER_DIR} files in one directory. Publish fewer tags or images in this repository.`,
      );
    }
  }

  const warned = new Set<string>();
  for (const p of [...paths].sort((a, b) => compareStrings(a.file, b.file))) {
    if (p.size > NETLIFY_LARGE_FILE_BYTES && !warned.has(p.file)) {
      warned.add(p.file);
      warnings.push(
        `${p.file} is ${(p.size / 1024 / 1024).toFixed(1)} MiB; Netlify's terms caution against serving ` +
          'large files from a site (bandwidth and acceptable use) — check your plan before deploying big layers.',
      );
    }
  }

  return { errors, warnings };
}

/**
 * The `netlify` host option, checked: `{ headers: "exact" | "compact" | "auto" }` (auto when absent).
 * The plugin checks it first (eleventy/options.ts); this guards the other callers.
 */
export function netlifyOptions(value: unknown): NetlifyOptions {
  if (value === undefined) return {};
  const v = value as Record<string, unknown> | null;
  const form = v?.headers;
  if (v === null || typeof v !== 'object' || Array.isArray(v) || Object.keys(v).some((k) => k !== 'headers') || (form !== undefined && !NETLIFY_HEADERS_FORMS.includes(form as NetlifyHeadersForm))) {
    throw new RegistrishError(`the netlify host option must be { headers: ${NETLIFY_HEADERS_FORMS.map((f) => `"${f}"`).join(' | ')} }, not ${JSON.stringify(value)}`);
  }
  return form === undefined ? {} : { headers: form as NetlifyHeadersForm };
}

export const netlify: Host = {
  name: 'netlify',
  writer: {
    check: checkNetlifyLimits,
    // Blobs in a store: `_redirects` rules (redirects-file.ts, planBlobRedirects), before the 404 rules.
    blobRedirects: true,
    siteFiles: ['_headers', '_redirects'],
    async render(outDir, allPaths, options) {
      // `_headers` only for files on the site: a blob in a store is answered by its 307 rule.
      const paths = onSite(allPaths);
      // A site's own `_headers` is kept: ours lives between markers inside it.
      const form = netlifyHeadersForm(paths, netlifyOptions(options).headers);
      const rules = planNetlifyRules(paths, { headers: form });
      const generated = renderNetlifyRules(rules);
      const merged = await mergeIntoSiteHeaders(outDir, generated);
      const warnings = [...merged.warnings];
      if (netlifyParseCost(rules) > NETLIFY_SLOW_COST) {
        const exact = rules.filter((r) => !r.path.includes('*')).length;
        warnings.push(
          form === 'compact'
            ? `_headers needs ${rules.length} rules even in the compact form (${exact} exact rules: in multi-platform repositories one per ` +
                `index, whose type differs from its platform manifests'). Netlify's build reads _headers in a time that grows with its rules × ` +
                `lines (measured: 10,603 compact rules 0.6 s; 20,000 rules of 5 lines 66 s): expect a slow or timed-out deploy. Publish fewer tags ` +
                'of multi-platform images, or split the registry across sites.'
            : `_headers has ${rules.length} rules in the exact form (one per URL). Netlify's build reads _headers in a time that grows with ` +
                'its rules × lines (measured: 10,000 rules 1.1 s, 20,000 66 s): use the netlify option { headers: "auto" } ' +
                'or "compact", whose rules follow repositories rather than tags.',
        );
      }
      // `_redirects`: blobs in a store (307), then missing registry URLs (404 with the OCI error bodies).
      return { files: [{ file: '_headers', text: merged.text }, ...(await renderNetlifyNotFound(outDir, allPaths))], warnings };
    },
  },
  fixes: {
    'base-status': 'Check v2/index.html was deployed and no _redirects / netlify.toml rule matches /v2/.',
    status: `${REDEPLOY} Netlify allows at most 54,000 files per directory.`,
    'manifest-type': 'Deploy the generated _headers at the publish root together with the site (it sets the type of every manifest URL). `netlify dev` overwrites Content-Type: check the deployed site, not the dev proxy.',
    'type-params': 'Netlify sends the _headers value as written: look for another rule, an Edge Function or a proxy in front that adds the parameter.',
    'digest-header-missing': 'Expected with the compact _headers (the netlify option headers: "compact", or "auto" on a large registry): its pattern rules cannot carry a per-file digest, and no pull client needs it. With the exact form, the generated _headers sets it: deploy it with the site.',
    'head-length': 'Serve the static file: a Function or Edge Function answering this path drops Content-Length on HEAD.',
    'length-wrong': `Turn off asset optimisation/post-processing for the site. ${REDEPLOY}`,
    'content-encoding': 'Remove any Content-Encoding from _headers for /v2/ and do not upload pre-compressed files under the blob names.',
    'error-body': 'Deploy the generated _redirects (its registrish block first in the file) and v2/_errors/ with the site; a rule of yours above it that matches /v2/ answers first.',
    'missing-200': 'Remove the `/* /index.html 200` fallback from _redirects / netlify.toml, or put a `/v2/* /404.html 404` rule before it.',
  },
};
