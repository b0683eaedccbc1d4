import path from 'node:path';
import { REDEPLOY } from '../check/problems.ts';
import type { PublishedPath } from '../model/published-path.ts';
import { headersFor } from '../publish/headers.ts';
import { RegistrishError } from '../util/errors.ts';
import { compareStrings } from '../util/format.ts';
import { mergeIntoSiteHeaders, netlifyRulePattern } from './headers-file.ts';
import type { Host, HostCheck } from './host.ts';
import { renderNetlifyNotFound } from './redirects-file.ts';

// Netlify `_headers` writer. Renders headersFor() for every published URL, in one of two forms:
// - exact (the default while it stays small): one exact-path rule per URL;
// - compact (chosen when the exact form would exceed NETLIFY_COMPACT_ABOVE_RULES rules; 10,000 tags
//   over 50,000 blobs are 70,000 rules, 21 MB): the same, except that the blobs of each repository share
//   one rule `/v2/<name>/blobs/*` without Docker-Content-Digest (docker, containerd, podman/skopeo and crane
//   verify a blob by its hash, not by that header; `registrish check` does not ask for it on blobs).
//
// Why no overlapping rules of ours: Netlify applies every matching rule (the later one wins for the
// same header name, per @netlify/headers-parser and `netlify dev`; documented nowhere official),
// while Cloudflare Pages, which reads the same file format, comma-joins repeated headers across
// matching rules. Two rules setting Content-Type on one URL would give `application/json,
// application/vnd.oci…`, which no container client accepts. So every URL is matched by exactly one
// rule of ours in both forms: the compact blob rule is checked against every published URL with the
// parser's own RegExp (compactBlobRules) and not used for a repository where it would catch another.
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

/**
 * Above this many rules a `_headers` is more than Netlify handles well, so the writer switches to
 * the compact form by itself, and warns if even that is more.
 * - Netlify's build reads the publish folder's `_headers` with @netlify/headers-parser
 *   (netlify/build, packages/config/src/headers.ts: addHeaders → parseAllHeaders), whose line
 *   reducer (packages/headers-parser/src/line_parser.ts, reduceLine) copies the list of rules read
 *   so far for every line: time grows with lines × rules. Measured here with 9.0.3 (4 headers a
 *   rule, Node 20): 8,000 rules 0.5 s, 10,000 0.6 s, 11,000 1.1 s, 12,000 5.3 s, 16,000 22 s,
 *   20,000 66 s; 60,000 (the exact form of 50,000 blobs) does not finish in minutes. `registrish
 *   serve` reads it with the same parser.
 * - Netlify documents no limit on header rules; for redirects (the same kind of rule file,
 *   serialized into the deploy) it says a too large output can fail the deploy and recommends
 *   wildcards from 10,000 rules on (https://docs.netlify.com/routing/redirects/), and its support
 *   staff reported builds timing out on `_headers` files over 15 MB
 *   (https://github.com/gatsbyjs/gatsby/issues/28693).
 */
export const NETLIFY_COMPACT_ABOVE_RULES = 10_000;

/** `true`: compact, `false`: one exact rule per URL, `'auto'`: compact above NETLIFY_COMPACT_ABOVE_RULES. */
export type NetlifyCompact = boolean | 'auto';

export interface NetlifyRule {
  /** The rule path: a literal URL, or `/v2/<name>/blobs/*` in the compact form. */
  path: string;
  headers: Array<[name: string, value: string]>;
}

const BLOB_URL_RE = /^\/v2\/(.+)\/blobs\/[^/]+$/u;
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
 * The compact form's blob rules: per repository, `/v2/<name>/blobs/*` with what every blob of it
 * shares (Content-Type, Cache-Control, X-Content-Type-Options) and no Docker-Content-Digest, which
 * is optional on blobs for every client (a static host cannot put the splat into a value).
 * Per repository rather than one rule with a splat for the name: Netlify's parser turns a rule
 * path into a RegExp where `/blobs/*` is `/blobs/?(.*)` (no segment boundary), so a rule for every
 * repository's blobs would also catch a tag named `blobs` or a repository `x/blobstore`. Even
 * `/v2/<name>/blobs/*` catches `/v2/<name>/blobsy/…`: a repository whose rule would match any URL
 * but its own blobs keeps one exact rule per blob, and so does a repository with a single blob
 * (nothing to save).
 */
function compactBlobRules(exact: Map<string, { p: PublishedPath; rule: NetlifyRule }>): { rules: NetlifyRule[]; replaced: Set<string> } {
  const blobsByRepo = new Map<string, PublishedPath[]>();
  for (const { p } of exact.values()) {
    const m = p.kind === 'blob' ? BLOB_URL_RE.exec(p.urlPath) : null;
    if (!m) continue;
    let list = blobsByRepo.get(m[1]!);
    if (!list) blobsByRepo.set(m[1]!, (list = []));
    list.push(p);
  }
  // The rule `/v2/<name>/blobs/*` matches (case-insensitively) every URL that starts with
  // `/v2/<name>/blobs`: find, for each URL, every `<name>` it would be caught by.
  const lowerRepos = new Map<string, string>();
  for (const repo of blobsByRepo.keys()) lowerRepos.set(repo.toLowerCase(), repo);
  const unsafe = new Set<string>();
  for (const { p } of exact.values()) {
    const u = p.urlPath.toLowerCase();
    for (let i = u.indexOf('/blobs', 4); i >= 0; i = u.indexOf('/blobs', i + 1)) {
      const repo = lowerRepos.get(u.slice('/v2/'.length, i));
      if (repo === undefined || unsafe.has(repo)) continue;
      const own = p.kind === 'blob' && BLOB_URL_RE.exec(p.urlPath)?.[1] === repo;
      if (!own && netlifyRulePattern(`/v2/${repo}/blobs/*`).test(p.urlPath)) unsafe.add(repo);
    }
  }
  const rules: NetlifyRule[] = [];
  const replaced = new Set<string>();
  for (const [repo, blobs] of blobsByRepo) {
    // One blob: a rule either way, so it keeps its exact one (with its digest).
    if (unsafe.has(repo) || blobs.length < 2) continue;
    const shared = (p: PublishedPath): Array<[string, string]> => headersFor(p).filter(([n]) => n.toLowerCase() !== DIGEST_HEADER);
    const first = JSON.stringify(shared(blobs[0]!));
    if (!blobs.every((b) => JSON.stringify(shared(b)) === first)) continue;
    rules.push({ path: `/v2/${repo}/blobs/*`, headers: shared(blobs[0]!) });
    for (const b of blobs) replaced.add(b.urlPath);
  }
  return { rules, replaced };
}

/** Whether `compact` (an option value) means the compact form for these paths. */
export function netlifyUsesCompact(paths: readonly PublishedPath[], compact: NetlifyCompact = 'auto'): boolean {
  if (compact !== 'auto') return compact;
  return new Set(paths.map((p) => p.urlPath)).size > NETLIFY_COMPACT_ABOVE_RULES;
}

/**
 * The rules of the Netlify `_headers` for `paths`, sorted by path. Exact form: one rule per URL
 * carrying exactly headersFor(p). Compact form (`compact`, or `'auto'` above
 * NETLIFY_COMPACT_ABOVE_RULES): the same, except the blobs of each repository share one wildcard
 * rule without Docker-Content-Digest. No URL is matched by two of these rules in either form.
 */
export function planNetlifyRules(paths: readonly PublishedPath[], options: { compact?: NetlifyCompact } = {}): NetlifyRule[] {
  const exact = exactRules(paths);
  const rules: NetlifyRule[] = [];
  if (netlifyUsesCompact(paths, options.compact)) {
    const compact = compactBlobRules(exact);
    rules.push(...compact.rules);
    for (const [url, { rule }] of exact) if (!compact.replaced.has(url)) rules.push(rule);
  } else {
    for (const { rule } of exact.values()) rules.push(rule);
  }
  return rules.sort((a, b) => compareStrings(a.path, b.path));
}

/**
 * The Netlify `_headers` text for `paths` (see planNetlifyRules for the two forms). Throws on a URL
 * that would not be read back literally, or on one URL listed twice with different headers.
 */
export function renderNetlifyHeaders(paths: readonly PublishedPath[], options: { compact?: NetlifyCompact } = {}): string {
  return renderNetlifyRules(planNetlifyRules(paths, options));
}

/** The `_headers` text of rules from planNetlifyRules. */
export function renderNetlifyRules(rules: readonly NetlifyRule[]): string {
  const compact = rules.some((r) => r.path.endsWith('*'));
  const head = [
    compact
      ? '# Generated by registrish: container registry headers, one exact rule per URL except blobs: one rule per repository (no per-blob Docker-Content-Digest, which clients do not need on blobs).'
      : '# Generated by registrish: container registry headers, one exact rule per URL.',
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

export const netlify: Host = {
  name: 'netlify',
  writer: {
    check: checkNetlifyLimits,
    async render(outDir, paths) {
      // A site's own `_headers` is kept: ours lives between markers inside it.
      const rules = planNetlifyRules(paths, { compact: 'auto' });
      const generated = renderNetlifyRules(rules);
      const merged = await mergeIntoSiteHeaders(outDir, generated);
      const warnings = [...merged.warnings];
      if (rules.length > NETLIFY_COMPACT_ABOVE_RULES) {
        const tags = paths.filter((p) => p.kind === 'manifest' && !p.immutable).length;
        warnings.push(
          `_headers needs ${rules.length} rules even with one rule per repository for blobs (one per tag — ${tags} — and per ` +
            `manifest). Netlify's build reads _headers in a time that grows with the square of its rules (measured: 10,000 ` +
            `rules 0.6 s, 16,000 22 s, 20,000 66 s): expect a slow or timed-out deploy above ${NETLIFY_COMPACT_ABOVE_RULES}. ` +
            'Publish fewer tags, or split the registry across sites.',
        );
      }
      // Missing registry URLs: `_redirects` 404 rules serving the OCI error bodies (redirects-file.ts).
      return { files: [{ file: '_headers', text: merged.text }, ...(await renderNetlifyNotFound(outDir, paths))], warnings };
    },
  },
  fixes: {
    'base-status': 'Check v2/index.html was deployed and no _redirects / netlify.toml rule matches /v2/.',
    status: `${REDEPLOY} Netlify allows at most 54,000 files per directory.`,
    'manifest-type': 'Deploy the generated _headers at the publish root together with the site (it sets the type of every manifest URL). `netlify dev` overwrites Content-Type: check the deployed site, not the dev proxy.',
    'type-params': 'Netlify sends the _headers value as written: look for another rule, an Edge Function or a proxy in front that adds the parameter.',
    'digest-header-missing': 'The generated _headers sets it: deploy it with the site.',
    'head-length': 'Serve the static file: a Function or Edge Function answering this path drops Content-Length on HEAD.',
    'length-wrong': `Turn off asset optimisation/post-processing for the site. ${REDEPLOY}`,
    'content-encoding': 'Remove any Content-Encoding from _headers for /v2/ and do not upload pre-compressed files under the blob names.',
    'error-body': 'Deploy the generated _redirects (its registrish block first in the file) and v2/_errors/ with the site; a rule of yours above it that matches /v2/ answers first.',
    'missing-200': 'Remove the `/* /index.html 200` fallback from _redirects / netlify.toml, or put a `/v2/* /404.html 404` rule before it.',
  },
};
