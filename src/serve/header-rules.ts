import { readFile } from 'node:fs/promises';
import type { Header } from '@netlify/headers-parser';
import { netlifyRulePattern } from '../hosts/headers-file.ts';
import type { HeaderList } from '../publish/headers.ts';
import { RegistrishError } from '../util/errors.ts';

// The preview server's `_headers` rules, read so that a 20,000-rule file loads in about a tenth of
// a second of CPU (most of it reading 5 MB) and a request looks at the few rules that can match it,
// not at all of them. Reading finds the path lines and where each rule's header lines are; a rule
// (its header values, its pattern) is made only when a request matches it. Plain rules (no `:placeholder`, no `*`: one
// per URL in the writer's exact form) sit in a Map by folded path; the others in a trie of their
// leading literal segments, decided by the parser's own pattern (netlifyRulePattern, Netlify's
// forRegExp). Netlify's own parser (@netlify/headers-parser) stays the reference:
// test/serve-rules.test.ts compares both on seeded random files, and a file it would report
// errors in (or one with its quirks) is read by it, for its exact messages.
//
// Why not the parser itself: its line reducer copies the list of rules read so far for every
// header line (quadratic: 0.6 s at 2,000 rules, 52–265 s at 20,000: bench/serve.ts), and matching by its output
// means testing every rule's RegExp on every request.

/** A parsed `_headers` rule, as @netlify/headers-parser returns it with `minimal: false`. */
export type HeaderRule = Pick<Header, 'for' | 'forRegExp' | 'values'>;

/** Rules in file order, each made only when asked for. */
export interface RuleList {
  readonly size: number;
  /** Rule `i`'s path (`for`), without making the rule. */
  path(i: number): string;
  make(i: number): HeaderRule;
}

/** The rules of a `_headers` file, in file order, with an index of where each can match. */
export class HeaderRuleIndex {
  private readonly list: RuleList;
  private readonly made: Array<HeaderRule | undefined> = [];
  /** Folded plain path → the plain rules (file order) a URL equal to it (less one trailing `/`) matches. */
  private readonly plain = new Map<string, number | number[]>();
  /** 1 for a rule in the trie: its pattern decides. */
  private readonly patterned: Uint8Array;
  private readonly root: TrieNode = newNode();
  private trieRules = 0;

  constructor(rules: readonly HeaderRule[] | RuleList) {
    this.list = Array.isArray(rules) ? listOf(rules as readonly HeaderRule[]) : (rules as RuleList);
    const { size } = this.list;
    this.patterned = new Uint8Array(size);
    for (let i = 0; i < size; i++) this.add(i, this.list.path(i));
  }

  /** Every rule, in file order, as the parser lists them (makes them all: for tests and the bench, not for serving). */
  get rules(): HeaderRule[] {
    return withoutEarlierDuplicates(Array.from({ length: this.list.size }, (_, i) => this.rule(i)));
  }

  rule(i: number): HeaderRule {
    return (this.made[i] ??= this.list.make(i));
  }

  private add(i: number, forPath: string): void {
    const key = plainKey(forPath);
    if (key !== undefined) {
      const had = this.plain.get(key);
      if (had === undefined) this.plain.set(key, i);
      else if (typeof had === 'number') this.plain.set(key, [had, i]);
      else had.push(i);
      return;
    }
    this.patterned[i] = 1;
    this.trieRules++;
    let node = this.root;
    for (const key of literalSegments(forPath)) {
      let child = node.children.get(key);
      if (!child) node.children.set(key, (child = newNode()));
      node = child;
    }
    node.rules.push(i);
  }

  /** The rules whose path matches `urlPath` (decoded), in file order. */
  matching(urlPath: string): HeaderRule[] {
    const found: HeaderRule[] = [];
    for (const i of this.candidates(urlPath)) {
      const rule = this.rule(i);
      // A plain rule's pattern is `^/<its text>/?$`, case-insensitive: the Map lookup already said it matches.
      if (this.patterned[i] === 0 || rule.forRegExp.test(urlPath)) found.push(rule);
    }
    return withoutEarlierDuplicates(found);
  }

  /**
   * Indexes (file order) of the rules that may match `urlPath`: the plain rules equal to it, and
   * the trie's along the path's own segments (a rule sits at the node of its literal leading segments).
   */
  candidates(urlPath: string): number[] {
    const folded = foldSegment(urlPath);
    const found: number[] = [];
    pushIds(found, this.plain.get(folded));
    if (folded.length > 1 && folded.endsWith('/')) pushIds(found, this.plain.get(folded.slice(0, -1)));
    if (this.trieRules > 0) this.trieCandidates(folded, found);
    return found.length > 1 ? found.sort((a, b) => a - b) : found;
  }

  private trieCandidates(folded: string, found: number[]): void {
    let node: TrieNode | undefined = this.root;
    const segments = folded.split('/');
    for (let i = 1; node; i++) {
      for (const r of node.rules) found.push(r);
      node = i < segments.length ? node.children.get(segments[i]!) : undefined;
    }
  }
}

function pushIds(found: number[], ids: number | number[] | undefined): void {
  if (typeof ids === 'number') found.push(ids);
  else if (ids) found.push(...ids);
}

/** Rules already made (Netlify's parser's output). */
function listOf(rules: readonly HeaderRule[]): RuleList {
  return { size: rules.length, path: (i) => rules[i]!.for, make: (i) => rules[i]! };
}

interface TrieNode {
  children: Map<string, TrieNode>;
  /** Indexes (file order) of the rules whose literal leading segments end here. */
  rules: number[];
}

const newNode = (): TrieNode => ({ children: new Map(), rules: [] });

const PRINTABLE_ASCII = /^[\x20-\x7e]*$/u;
/** An empty part (`//`), a part ending in a space, or a trailing `/`: the pattern drops them. */
const DROPPED_PARTS = /\/\/| \/|\/$/u;
/**
 * A plain path that is its own key: parts of printable ASCII but `*`, `/` and capitals, none
 * starting with `:` or ending with a space (the writer's paths). One test instead of plainKey's five.
 */
const OWN_KEY = /^(?:\/(?!:)[\x20-\x29\x2b-\x2e\x30-\x40\x5b-\x7e]*[\x21-\x29\x2b-\x2e\x30-\x40\x5b-\x7e])+$/u;

/**
 * The folded text a URL must equal (less one trailing `/`) to match a plain rule: its parts as the
 * pattern joins them, lower case. Undefined for a rule with a pattern (a part starting with `:`,
 * or any `*`) or with a character outside printable ASCII (the fold below is exact only for ASCII).
 */
export function plainKey(forPath: string): string | undefined {
  if (OWN_KEY.test(forPath)) return forPath;
  if (forPath.includes('*') || forPath.includes('/:') || !PRINTABLE_ASCII.test(forPath)) return undefined;
  const joined = DROPPED_PARTS.test(forPath) ? `/${ruleParts(forPath).join('/')}` : forPath;
  return joined.toLowerCase();
}

/** A rule path's parts as netlifyRulePattern takes them. */
function ruleParts(forPath: string): string[] {
  return forPath
    .trim()
    .split('/')
    .map((p) => p.trimEnd())
    .filter(Boolean);
}

/**
 * The leading segments of a (non-plain) rule path that a matching URL must have, exactly (case
 * folded), as whole segments. The parser's pattern is `^/` + its parts joined by `/` + `/?$`; a
 * part stops the run when it is not plain text (`:placeholder`, anything with `*`, whose text is a
 * live regular expression), when it is not printable ASCII (folded below only for ASCII), or when
 * a standalone `*` follows it: that `*` becomes `/?(.*)`, so `/a/*` also matches `/abc` and `a` is only a prefix.
 */
function literalSegments(forPath: string): string[] {
  const parts = ruleParts(forPath);
  const segments: string[] = [];
  for (const [i, part] of parts.entries()) {
    if (part.startsWith(':') || part.includes('*') || !PRINTABLE_ASCII.test(part) || parts[i + 1] === '*') break;
    segments.push(part.toLowerCase());
  }
  return segments;
}

/**
 * A URL (or segment) as the index keys it. The patterns are case-insensitive Unicode regular
 * expressions: an ASCII letter also matches its other case and, by simple case folding, U+017F
 * (long s) for `s` and U+212A (Kelvin sign) for `k` — the only non-ASCII code points that match
 * any printable ASCII character (checked over every code point in the test). Length is kept.
 */
export function foldSegment(segment: string): string {
  if (!/[A-Z\u017f\u212a]/u.test(segment)) return segment;
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
    // Decoded whole: read with an encoding, the file comes back as a string of 512 KiB pieces
    // that the first search then copies into one.
    text = (await readFile(file)).toString('utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return new HeaderRuleIndex([]);
    return new HeaderRuleIndex(await parseWithNetlify(file)); // its own "Could not read" message
  }
  return new HeaderRuleIndex(readHeadersText(text) ?? (await parseWithNetlify(file)));
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
 * headers is dropped; a rule identical to a later one is dropped), made lazily. Undefined when the
 * parser would report an error, or on input where its results are quirks of JavaScript objects
 * (a header named `constructor` or `__proto__`): the caller then asks the parser itself.
 */
export function readHeadersText(text: string): RuleList | undefined {
  if (PARSER_NEEDED.test(text)) return undefined;
  return scanRules(text);
}

/** Names the parser's objects treat specially: `undefined` is an error, the others are quirks. */
const SPECIAL_NAMES = ['undefined', ...Object.getOwnPropertyNames(Object.prototype)];

/**
 * A header line the parser reports an error for, or whose name is special: one search of the
 * whole text instead of a test per line (the scan below then only looks at each block's first
 * header line). `[^\S\n]` is the whitespace `trim()` removes, less the line break the parser splits on.
 * A header line is one whose first character (after whitespace) is not `/` or `#` and that has a `:`.
 */
const PARSER_NEEDED = new RegExp(
  [
    '(?:^|\\n)[^\\S\\n]*(?:',
    ':', // no name
    `|(?:${SPECIAL_NAMES.join('|')})[^\\S\\n]*:`,
    '|[^\\s/#:][^\\n:]*:[^\\S\\n]*(?:\\n|$)', // no value
    ')',
  ].join(''),
  'u',
);

const SLASH = 0x2f;
const NEWLINE = 0x0a;
// The regular expressions below are searched from a set lastIndex, synchronously, by scanRules only.
/** A path line that does not start with its `/`: such files are searched by PATH_START, not for `\n/`. */
const INDENTED_PATH = /(?:^|\n)[^\S\n]+\//u;
/** The start of a path line, up to its `/`. */
const PATH_START = /(?:^|\n)[^\S\n]*\//gu;
/** A header line: its first character after whitespace is not `/` or `#`, and it has a `:`. */
const HEADER_LINE = /(?:^|\n)[^\S\n]*[^\s/#][^\n]*:/gu;

/**
 * The rules of a text that PARSER_NEEDED passed: each path line that has a header line before the
 * next path line, and where its block's lines are. Path lines are found by searching for `\n/`
 * (a string search: a regular expression or a loop over the 80,000 lines of a 20,000-rule file
 * costs several times more), header lines by one search that is repeated only once passed.
 * Undefined when the parser must read it after all: a header line before any path, or a `*`
 * inside a part that is not a valid regular expression.
 */
function scanRules(text: string): TextRules | undefined {
  const paths: string[] = [];
  const bodies: number[] = [];
  const nextPath = pathFinder(text);
  let slash = nextPath(0);
  let header = headerLineAt(text, 0);
  if (header < (slash === -1 ? Infinity : slash)) return undefined; // "Path should come before header"
  while (slash !== -1) {
    const eol = lineEnd(text, slash);
    const path = text.slice(slash, eol).trimEnd();
    const body = eol + 1; // the line after the path line
    const following = body <= text.length ? nextPath(body) : -1;
    const end = following === -1 ? text.length : following;
    if (header < body) header = headerLineAt(text, body);
    if (header < end) {
      if (path.includes('*') && !compiles(path)) return undefined;
      paths.push(path);
      bodies.push(body, end);
    }
    slash = following;
  }
  return new TextRules(text, paths, bodies);
}

/** Finds the `/` that starts the first path line at or after a line start; -1 if none. */
function pathFinder(text: string): (from: number) => number {
  if (INDENTED_PATH.test(text)) {
    return (from) => {
      PATH_START.lastIndex = from === 0 ? 0 : from - 1; // from - 1: the line break before it
      const m = PATH_START.exec(text);
      return m ? m.index + m[0].length - 1 : -1;
    };
  }
  return (from) => {
    if (text.charCodeAt(from) === SLASH) return from;
    const nl = text.indexOf('\n/', from);
    return nl === -1 ? -1 : nl + 1;
  };
}

function lineEnd(text: string, from: number): number {
  const nl = text.indexOf('\n', from);
  return nl === -1 ? text.length : nl;
}

/** Where the first header line at or after `from` (a line start) begins; Infinity if none. */
function headerLineAt(text: string, from: number): number {
  if (from > text.length) return Infinity;
  HEADER_LINE.lastIndex = from === 0 ? 0 : from - 1; // from - 1: the line break before it
  const m = HEADER_LINE.exec(text);
  if (!m) return Infinity;
  return text.charCodeAt(m.index) === NEWLINE ? m.index + 1 : m.index;
}

/** Whether the parser can build the pattern: a part with `*` inside it is a live regular expression. */
function compiles(forPath: string): boolean {
  try {
    netlifyRulePattern(forPath);
    return true;
  } catch {
    return false;
  }
}

/** Rules as positions in the text: path, and the span of the lines after it up to the next path. */
class TextRules implements RuleList {
  constructor(
    private readonly text: string,
    private readonly paths: string[],
    /** [start, end) of rule i's lines at 2i, 2i + 1. */
    private readonly bodies: number[],
  ) {}

  get size(): number {
    return this.paths.length;
  }

  path(i: number): string {
    return this.paths[i]!;
  }

  make(i: number): HeaderRule {
    return new LazyRule(this.paths[i]!, blockValues(this.text.slice(this.bodies[2 * i], this.bodies[2 * i + 1])));
  }
}

/** The header values of one rule's lines, as the parser's reducer and normalize make them. */
function blockValues(lines: string): Record<string, string> {
  const values: Record<string, string> = {};
  for (const raw of lines.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const colon = line.indexOf(':');
    if (colon < 0) continue; // neither a path nor a header: the parser skips it too
    const name = line.slice(0, colon).trim();
    const value = line.slice(colon + 1).trim();
    const before = values[name];
    values[name] = before === undefined ? value : `${before}, ${value}`;
  }
  for (const [name, value] of Object.entries(values)) {
    if (value.includes(',')) values[name] = value.split(/\s*,\s*/gu).join(', ');
  }
  return values;
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

/**
 * The parser's merge step: of rules with the same path and the same headers, the last one is
 * kept. Applied to the rules matched for a request, not at reading: identical rules have the same
 * path, so they always match together, and most files have none (reading stays one pass).
 */
function withoutEarlierDuplicates(rules: HeaderRule[]): HeaderRule[] {
  if (rules.length < 2 || new Set(rules.map((r) => r.for)).size === rules.length) return rules;
  const key = (r: HeaderRule): string =>
    JSON.stringify([r.for, Object.entries(r.values).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))]);
  const seen = new Set<string>();
  const kept: HeaderRule[] = [];
  for (let i = rules.length - 1; i >= 0; i--) {
    const k = key(rules[i]!);
    if (seen.has(k)) continue;
    seen.add(k);
    kept.push(rules[i]!);
  }
  return kept.reverse();
}
