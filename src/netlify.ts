import path from 'node:path';
import { RegistrishError } from './errors.ts';
import { headersFor } from './headers.ts';
import type { PublishedPath } from './types.ts';

// Netlify `_headers` writer. Renders headersFor() for every published URL as one exact-path rule.
//
// Why exact paths and no wildcards of ours: Netlify applies every matching rule (the later one wins
// for the same header name, per @netlify/headers-parser and `netlify dev`), while Cloudflare Pages,
// which reads the same file format, comma-joins repeated headers across matching rules. Two rules
// setting Content-Type on one URL would give `application/json, application/vnd.oci…`, which no
// container client accepts. So every URL gets exactly one rule, and nothing else of ours matches it.
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

export const BEGIN_MARKER = '# registrish:begin';
export const END_MARKER = '# registrish:end';

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

/** Code-unit order: deterministic across machines and locales. */
/** Plain code-unit order (locale-independent), shared by every host writer. */
export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * The Netlify `_headers` text for `paths`: one exact-path rule per URL, sorted by URL,
 * carrying exactly headersFor(p). Throws on a URL that would not be read back literally,
 * or on one URL listed twice with different headers.
 */
export function renderNetlifyHeaders(paths: readonly PublishedPath[]): string {
  const byUrl = new Map<string, string>();
  for (const p of paths) {
    assertNetlifyPath(p.urlPath);
    const lines = [p.urlPath];
    for (const [name, value] of headersFor(p)) {
      assertHeaderText(p.urlPath, name, value);
      lines.push(`  ${name}: ${value}`);
    }
    const block = lines.join('\n');
    const previous = byUrl.get(p.urlPath);
    if (previous !== undefined && previous !== block) {
      throw new RegistrishError(`${p.urlPath} is published twice with different headers`, {
        hint: 'Two images.json entries publish the same repository and tag; give them different names or tags.',
      });
    }
    byUrl.set(p.urlPath, block);
  }
  const blocks = [...byUrl.keys()].sort(compareStrings).map((url) => byUrl.get(url)!);
  const head = [
    '# Generated by registrish: container registry headers, one exact rule per URL.',
    '# Do not edit: rewritten on every build. Rules added outside the registrish block are kept.',
  ].join('\n');
  return `${head}\n${blocks.map((b) => `\n${b}\n`).join('')}`;
}

/** Netlify matches `/A` and `/a/` with the same rule: case-insensitive, optional trailing slash. */
function netlifyPathKey(urlPath: string): string {
  return urlPath.toLowerCase().replace(/\/+$/u, '');
}

export interface LimitReport {
  errors: string[];
  warnings: string[];
}

/** Things that would make a Netlify deploy fail or serve the wrong thing. */
export function checkNetlifyLimits(paths: readonly PublishedPath[]): LimitReport {
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

// ---- merging with a user's own _headers ----

interface UserRule {
  path: string;
  /** 1-based line number in the existing file. */
  line: number;
  headerNames: string[];
}

/**
 * The rules of a `_headers` text, read the way @netlify/headers-parser's line parser reads them,
 * plus the line numbers of header lines that come before any path (they attach to whatever rule
 * precedes this text in the file).
 */
function readRules(text: string, lineOffset = 0): { rules: UserRule[]; orphanLines: number[] } {
  const rules: UserRule[] = [];
  const orphanLines: number[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    if (line.startsWith('/')) rules.push({ path: line, line: lineOffset + i + 1, headerNames: [] });
    else if (line.includes(':')) {
      const current = rules.at(-1);
      if (current) current.headerNames.push(line.slice(0, line.indexOf(':')).trim());
      else orphanLines.push(lineOffset + i + 1);
    }
  });
  return { rules, orphanLines };
}

/**
 * The RegExp @netlify/headers-parser 9.0.3 builds for a rule path (lib/for_regexp.js, with
 * escape-string-regexp 5), reproduced because the package only exports parseAllHeaders and we need
 * it synchronously. test/netlify.test.ts checks that both produce the same pattern.
 */
export function netlifyRulePattern(forPath: string): RegExp {
  const escape = (s: string): string => s.replace(/[|\\{}()[\]^$+*?.]/gu, '\\$&').replace(/-/gu, '\\x2d');
  const part = (p: string): string => {
    if (p.startsWith(':')) return '([^/]+)';
    if (p === '*') return '?(.*)';
    if (p.includes('*')) return p.replaceAll('*', '(.*)');
    return escape(p);
  };
  const pattern = forPath
    .trim()
    .split('/')
    .map((p) => p.trimEnd())
    .filter(Boolean)
    .map(part)
    .join('/');
  return new RegExp(`^/${pattern}/?$`, 'iu');
}

function lineCount(text: string): number {
  return text === '' ? 0 : text.split('\n').length - (text.endsWith('\n') ? 1 : 0);
}

/**
 * Puts `generated` (from renderNetlifyHeaders) into a site's existing `_headers` between
 * BEGIN_MARKER/END_MARKER, replacing a previous registrish block and keeping everything else.
 * Idempotent. Warns about user rules that also match one of our URLs.
 */
export function mergeHeadersFile(existing: string | undefined, generated: string): { text: string; warnings: string[] } {
  const block = `${BEGIN_MARKER}\n${generated.replace(/\n*$/u, '\n')}${END_MARKER}\n`;
  const source = (existing ?? '').replace(/\r\n/gu, '\n');
  const lines = source.split('\n');
  const begins = lines.flatMap((l, i) => (l.trim() === BEGIN_MARKER ? [i] : []));
  const ends = lines.flatMap((l, i) => (l.trim() === END_MARKER ? [i] : []));

  let before: string;
  let after: string;
  if (begins.length === 0 && ends.length === 0) {
    // Ours goes last: where hosts let the later rule win, registry headers beat a user's `/*`.
    before = source.trim() === '' ? '' : `${source.replace(/\n*$/u, '')}\n\n`;
    after = '';
  } else if (begins.length === 1 && ends.length === 1 && begins[0]! < ends[0]!) {
    before = lines.slice(0, begins[0]).join('\n');
    before = before === '' ? '' : `${before}\n`;
    after = lines.slice(ends[0]! + 1).join('\n');
  } else {
    // Guessing which lines are ours could delete the user's rules.
    throw new RegistrishError(
      `_headers has ${begins.length} "${BEGIN_MARKER}" and ${ends.length} "${END_MARKER}" lines; expected one of each, in order`,
      { hint: 'Remove the broken registrish block from your _headers (keep your own rules) and rebuild.' },
    );
  }
  const text = `${before}${block}${after}`;

  const generatedRules = readRules(generated).rules;
  const ours = generatedRules.map((r) => r.path);
  const ourHeaders = new Set(generatedRules.flatMap((r) => r.headerNames.map((n) => n.toLowerCase())));
  const userBefore = readRules(before);
  const userAfter = readRules(after, lineCount(before) + lineCount(block));
  const warnings: string[] = [];
  if (userAfter.orphanLines.length > 0) {
    // The parser attaches them to the rule above, which is now our last rule.
    warnings.push(
      `_headers line ${userAfter.orphanLines.join(', ')}: header line(s) right after "${END_MARKER}" without a path ` +
        `of their own would be added to registrish's last rule (${ours.at(-1) ?? 'none'}); put a path line above them.`,
    );
  }
  for (const rule of [...userBefore.rules, ...userAfter.rules]) {
    // The parser drops a path without header lines: it cannot affect anything.
    if (rule.headerNames.length === 0) continue;
    const re = netlifyRulePattern(rule.path);
    const hits = ours.filter((u) => re.test(u));
    if (hits.length === 0) continue;
    const clashing = rule.headerNames.filter((n) => ourHeaders.has(n.toLowerCase()));
    const what =
      clashing.length > 0
        ? `it sets ${clashing.join(', ')}, which registrish also sets: Netlify keeps one value, but Cloudflare Pages ` +
          'joins them with a comma and container clients then reject the response'
        : 'its headers are added to registry responses, and hosts differ in how overlapping rules combine';
    warnings.push(
      `_headers rule "${rule.path}" (line ${rule.line}) also matches ${hits.length} registry URL${hits.length === 1 ? '' : 's'} ` +
        `(e.g. ${hits[0]}); ${what}. Narrow the rule so it does not cover /v2/.`,
    );
  }
  return { text, warnings };
}
