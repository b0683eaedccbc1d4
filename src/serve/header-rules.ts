import { readFile } from 'node:fs/promises';
import type { Header } from '@netlify/headers-parser';
import { netlifyRulePattern } from '../hosts/headers-file.ts';
import type { HeaderList } from '../publish/headers.ts';
import { RegistrishError } from '../util/errors.ts';

// The preview server's `_headers` rules: read in one linear pass and indexed by their leading
// literal path segments, so that a 20,000-rule file loads in milliseconds and a request looks at
// the few rules that can match it, not at all of them. What matches is decided by the parser's own
// pattern (netlifyRulePattern, Netlify's forRegExp), tested on those candidates only: the index
// only ever leaves out rules that cannot match. Netlify's own parser (@netlify/headers-parser)
// stays the reference: test/serve-rules.test.ts compares both on seeded random files, and a file
// it would report errors in (or one with its quirks) is read by it, for its exact messages.
//
// Why not the parser itself: its line reducer copies the list of rules read so far for every
// header line (quadratic: 0.6 s at 2,000 rules, 265 s at 20,000: bench/serve.ts), and matching by its output
// means testing every rule's RegExp on every request.

/** A parsed `_headers` rule, as @netlify/headers-parser returns it with `minimal: false`. */
export type HeaderRule = Pick<Header, 'for' | 'forRegExp' | 'values'>;

/** The rules of a `_headers` file, in file order, with an index of where each can match. */
export class HeaderRuleIndex {
  private readonly root: TrieNode = newNode();
  /** Per rule: its whole path, case folded, when it is plain text (no placeholder, no `*`). */
  private readonly exact: Array<string | undefined>;

  constructor(readonly rules: readonly HeaderRule[]) {
    this.exact = rules.map(() => undefined);
    rules.forEach((rule, i) => {
      const { segments, whole } = literalSegments(rule.for);
      if (whole) this.exact[i] = `/${segments.join('/')}`;
      let node = this.root;
      for (const key of segments) {
        let child = node.children.get(key);
        if (!child) node.children.set(key, (child = newNode()));
        node = child;
      }
      node.rules.push(i);
    });
  }

  /** The rules whose path matches `urlPath` (decoded), in file order. */
  matching(urlPath: string): HeaderRule[] {
    // A plain-text rule's pattern is `^/<its text>/?$`, case-insensitive: a comparison of folded
    // text says the same without compiling it (V8 also drops compiled patterns left unused a while).
    const folded = foldSegment(urlPath);
    return this.candidates(urlPath).flatMap((i) => {
      const exact = this.exact[i];
      const rule = this.rules[i]!;
      const hit = exact === undefined ? rule.forRegExp.test(urlPath) : folded === exact || folded === `${exact}/`;
      return hit ? [rule] : [];
    });
  }

  /**
   * Indexes (file order) of the rules that may match `urlPath`: a rule sits at the node of its
   * literal leading segments, so only the nodes along the path's own segments can hold one.
   */
  candidates(urlPath: string): number[] {
    let node: TrieNode | undefined = this.root;
    const found: number[] = [];
    const segments = urlPath.split('/');
    for (let i = 1; node; i++) {
      for (const r of node.rules) found.push(r);
      node = i < segments.length ? node.children.get(foldSegment(segments[i]!)) : undefined;
    }
    return found.sort((a, b) => a - b);
  }
}

interface TrieNode {
  children: Map<string, TrieNode>;
  /** Indexes (file order) of the rules whose literal leading segments end here. */
  rules: number[];
}

const newNode = (): TrieNode => ({ children: new Map(), rules: [] });

/**
 * The leading segments of a rule path that a matching URL must have, exactly (case folded), as
 * whole segments; `whole` when that is the entire path. The parser's pattern is `^/` + its parts joined by `/` + `/?$`; a part stops
 * the run when it is not plain text (`:placeholder`, anything with `*`, whose text is a live
 * regular expression), when it is not ASCII (folded below only for ASCII), or when a standalone
 * `*` follows it: that `*` becomes `/?(.*)`, so `/a/*` also matches `/abc` and `a` is only a prefix.
 */
function literalSegments(forPath: string): { segments: string[]; whole: boolean } {
  const parts = forPath
    .trim()
    .split('/')
    .map((p) => p.trimEnd())
    .filter(Boolean);
  const segments: string[] = [];
  const ascii = /^[\x20-\x7e]*$/u.test(forPath);
  for (const [i, part] of parts.entries()) {
    if (part.startsWith(':') || part.includes('*') || (!ascii && !/^[\x20-\x7e]*$/u.test(part)) || parts[i + 1] === '*') break;
    segments.push(part.toLowerCase());
  }
  return { segments, whole: segments.length === parts.length };
}

/**
 * A URL segment as the index keys it. The patterns are case-insensitive Unicode regular
 * expressions: an ASCII letter also matches its other case and, by simple case folding, U+017F
 * (long s) for `s` and U+212A (Kelvin sign) for `k` — the only non-ASCII code points that match
 * any printable ASCII character (checked over every code point in the test).
 */
export function foldSegment(segment: string): string {
  let s = segment;
  if (/[\u017f\u212a]/u.test(s)) s = s.replace(/\u017f/gu, 's').replace(/\u212a/gu, 'k');
  return s.replace(/[A-Z]+/gu, (m) => m.toLowerCase());
}

/** Headers the matching rules give `urlPath`: all of them, the later rule winning per header name. */
export function matchHeaders(rules: readonly HeaderRule[] | HeaderRuleIndex, urlPath: string): HeaderList {
  const merged = new Map<string, [string, string]>();
  for (const rule of matchingRules(rules, urlPath)) {
    for (const [name, value] of Object.entries(rule.values)) merged.set(name.toLowerCase(), [name, value]);
  }
  return [...merged.values()];
}

/**
 * The rules whose path matches `urlPath`, in file order: through the index, or (a plain list, as
 * the parser returns it) by testing every rule — the reference the index is compared with.
 */
export function matchingRules(rules: readonly HeaderRule[] | HeaderRuleIndex, urlPath: string): HeaderRule[] {
  // forRegExp has no `g` flag, so test() keeps no state between calls.
  return rules instanceof HeaderRuleIndex ? rules.matching(urlPath) : rules.filter((r) => r.forRegExp.test(urlPath));
}

/** Reads a `_headers` file as Netlify's parser would; throws listing every error it reports. */
export async function loadHeaderRules(file: string): Promise<HeaderRuleIndex> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return new HeaderRuleIndex([]);
    return new HeaderRuleIndex(await parseWithNetlify(file)); // its own "Could not read" message
  }
  const rules = parseHeadersText(text);
  return new HeaderRuleIndex(rules ?? (await parseWithNetlify(file)));
}

/** Netlify's parser on the file; its errors thrown as one message. */
async function parseWithNetlify(file: string): Promise<HeaderRule[]> {
  // Loaded only here: a file without errors or quirks never needs it (its import is most of serve's start-up).
  const { parseAllHeaders } = await import('@netlify/headers-parser');
  const { headers, errors } = await parseAllHeaders({ headersFiles: [file], configHeaders: [], minimal: false });
  if (errors.length > 0) {
    const list = errors.map((e) => `  - ${e.message.replace(/\n/gu, '\n    ')}`).join('\n');
    throw new RegistrishError(`${file}: Netlify's _headers parser reports ${errors.length} error(s):\n${list}`, {
      hint: 'Netlify would ignore these lines too; fix the file (or rebuild) and request again.',
    });
  }
  return headers.filter((h): h is Header => 'forRegExp' in h);
}

/**
 * The rules of a `_headers` text exactly as @netlify/headers-parser 9 reads them (line_parser,
 * normalize, merge: a path line starts with `/`; `Name: value` lines join the rule above; one name
 * twice in a block is comma-joined; values have their comma lists normalized; a path with no
 * headers is dropped; a rule identical to a later one is dropped), in one pass. Undefined when the
 * parser would report an error, or on input where its results are quirks of JavaScript objects
 * (a header named `constructor` or `__proto__`): the caller then asks the parser itself.
 */
export function parseHeadersText(text: string): HeaderRule[] | undefined {
  const blocks: Array<{ for: string; values: Record<string, string> }> = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith('/')) {
      blocks.push({ for: line, values: {} });
      continue;
    }
    const colon = line.indexOf(':');
    if (colon < 0) continue; // neither a path nor a header: the parser skips it too
    const name = line.slice(0, colon).trim();
    const value = line.slice(colon + 1).trim();
    const current = blocks.at(-1);
    if (name === '' || value === '' || !current || name === 'undefined' || name in Object.prototype) return undefined;
    const before = current.values[name];
    current.values[name] = before === undefined ? value : `${before}, ${value}`;
  }
  const rules: HeaderRule[] = [];
  for (const block of blocks) {
    const names = Object.keys(block.values);
    if (names.length === 0) continue;
    const values: Record<string, string> = {};
    for (const name of names) {
      const v = block.values[name]!;
      values[name] = v.includes(',') ? v.split(/\s*,\s*/gu).join(', ') : v;
    }
    const rule = new LazyRule(block.for, values);
    // A part with `*` inside it is a live regular expression to the parser, which fails on a bad one.
    if (rule.for.includes('*') && rule.for.split('/').some((p) => !p.startsWith(':') && p.trimEnd() !== '*' && p.includes('*'))) {
      try {
        void rule.forRegExp;
      } catch {
        return undefined;
      }
    }
    rules.push(rule);
  }
  return withoutEarlierDuplicates(rules);
}

/** A rule whose pattern is compiled on its first test (most rules of a large file never are). */
class LazyRule implements HeaderRule {
  readonly for: string;
  private pattern?: RegExp;
  constructor(
    forPath: string,
    readonly values: Record<string, string>,
  ) {
    this.for = forPath;
  }
  get forRegExp(): RegExp {
    return (this.pattern ??= netlifyRulePattern(this.for));
  }
}

/** The parser's merge step: of rules with the same path and the same headers, the last one is kept. */
function withoutEarlierDuplicates(rules: HeaderRule[]): HeaderRule[] {
  // Only rules that share a path can be duplicates: most files have none, and pay one Map.
  const perPath = new Map<string, number>();
  for (const r of rules) perPath.set(r.for, (perPath.get(r.for) ?? 0) + 1);
  if (perPath.size === rules.length) return rules;
  const key = (r: HeaderRule): string =>
    JSON.stringify([r.for, Object.entries(r.values).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))]);
  const seen = new Set<string>();
  const kept: HeaderRule[] = [];
  for (let i = rules.length - 1; i >= 0; i--) {
    const rule = rules[i]!;
    if (perPath.get(rule.for) !== 1) {
      const k = key(rule);
      if (seen.has(k)) continue;
      seen.add(k);
    }
    kept.push(rule);
  }
  return kept.reverse();
}
