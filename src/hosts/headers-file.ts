import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { RegistrishError } from '../util/errors.ts';

// The `_headers` file format that Netlify and Cloudflare Pages both read: keeping a site's own
// rules beside ours (between markers), and matching rule paths the way Netlify's parser does.

export const BEGIN_MARKER = '# registrish:begin';
export const END_MARKER = '# registrish:end';

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
    // Our pattern rules (the compact form's `/v2/<name>/manifests/*`, …) stand for many URLs: a user rule
    // for one of them overlaps too.
    const hits = ours.filter((u) => re.test(u) || (u.includes('*') && netlifyRulePattern(u).test(rule.path)));
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

/** Reads the site's own `_headers` in `outDir` (if any) and puts `generated` into it (mergeHeadersFile). */
export async function mergeIntoSiteHeaders(outDir: string, generated: string): Promise<{ text: string; warnings: string[] }> {
  let existing: string | undefined;
  try {
    existing = await readFile(path.join(outDir, '_headers'), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  return mergeHeadersFile(existing, generated);
}
