import fs from 'node:fs';
import path from 'node:path';
import { parseAllHeaders, type Header } from '@netlify/headers-parser';
import { afterAll, describe, expect, it } from 'vitest';
import { renderNetlifyHeaders } from '../src/hosts/netlify.ts';
import { type PublishedPath } from '../src/model/published-path.ts';
import { foldSegment, loadHeaderRules, matchHeaders, matchingRules, plainKey, type HeaderRule } from '../src/serve/header-rules.ts';
import { makeTempDir, removeDir } from './harness/procs.ts';

// `registrish serve` reads `_headers` by searching it and matches through an index; Netlify's own
// parser, with every rule's pattern tested in turn, is the reference. Seeded random files of every
// rule shape (exact paths, `*` splats alone and inside a segment, `:placeholders`, other cases,
// trailing and doubled slashes, overlapping and repeated rules, repeated header names, comments,
// junk lines, regex characters) and seeded random paths must give the same rules and headers. A
// second stream aims at the reader's and the index's own ways: plain rules (looked up in a Map)
// beside pattern rules (a trie), rule paths and URLs in other cases and with U+017F and U+212A,
// trailing, doubled and spaced slashes, duplicate rules, indented path lines, every whitespace
// trim() removes, special header names, and the lines the parser reports errors for.
// A failure names the seed: SERVE_RULES_SEED=<n> replays that file alone (in each stream).

const tmp = makeTempDir('rsh-serve-rules-');
afterAll(() => removeDir(tmp));

/** mulberry32: small, seedable, good enough to pick shapes. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WORDS = ['v2', 'alpine', 'Alpine', 'team', 'tools', 'blobs', 'blobstore', 'manifests', 'tags', 'list', 'sha256:ab12', 'x.y', 'xay', 'a-b', 'kit', 'ss', 'é', '3.20'];
const NAMES = ['Content-Type', 'content-type', 'X-A', 'x-a', 'Cache-Control', 'Link', 'X-Odd Name'];
const VALUES = ['1', 'text/html', 'a,b', ' a , b ,c ', 'max-age=0,  no-cache', 'x:y:z', '"q"'];

function generate(seed: number): { text: string; paths: string[] } {
  const r = prng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const segment = (): string => {
    const roll = r();
    if (roll < 0.55) return pick(WORDS);
    if (roll < 0.65) return ':' + pick(['name', 'ref', 'x']);
    if (roll < 0.78) return '*';
    if (roll < 0.88) return pick(['a*', '*.json', 'bl*s', 'x.*', 'sha256:*', 't*g*']);
    if (roll < 0.93) return pick(WORDS).toUpperCase();
    return pick(['a+b', '(x)', '[y]', 'x y ', 'a$', 'ſs', 'Kit']);
  };
  const rulePath = (): string => {
    let p = '';
    const n = Math.floor(r() * 5);
    for (let i = 0; i < n; i++) p += (r() < 0.05 ? '//' : '/') + segment();
    if (p === '' || r() < 0.15) p += '/';
    return p;
  };
  const lines: string[] = ['# generated, seed ' + seed];
  const rules: string[] = [];
  const nRules = 5 + Math.floor(r() * 40);
  for (let i = 0; i < nRules; i++) {
    const p = rules.length > 0 && r() < 0.1 ? pick(rules) : rulePath(); // a path twice
    rules.push(p);
    lines.push(r() < 0.1 ? `  ${p}  ` : p);
    const nHeaders = Math.floor(r() * 4); // 0: a path the parser drops
    for (let j = 0; j < nHeaders; j++) lines.push(`${r() < 0.5 ? '  ' : '\t'}${pick(NAMES)}:${r() < 0.5 ? ' ' : ''}${pick(VALUES)}`);
    if (r() < 0.1) lines.push('');
    if (r() < 0.05) lines.push('  # a comment');
    if (r() < 0.05) lines.push('  not a header line');
  }
  if (r() < 0.05) lines.splice(1, 0, 'X-Orphan: 1'); // before any path: an error
  if (r() < 0.05) lines.push(`/x/${pick(['(*', '[*', 'a{2*'])}`, '  X-A: 1'); // a pattern the parser cannot compile
  const text = lines.join(r() < 0.2 ? '\r\n' : '\n') + (r() < 0.5 ? '\n' : '');

  const paths: string[] = [];
  for (let i = 0; i < 60; i++) {
    let p = r() < 0.5 ? pick(rules).replace(/\s+$/u, '') : rulePath();
    // Fill the patterns' holes with text that a segment could hold, in other cases.
    p = p.replace(/:(name|ref|x)/gu, () => pick(WORDS)).replace(/\*/gu, () => pick(['', 'q', 'q/r', 'blobs/sha256:ab12', '.json']));
    const roll = r();
    if (roll < 0.15) p = p.toUpperCase();
    else if (roll < 0.2) p = p.replace(/s/gu, 'ſ').replace(/k/gu, '\u212a');
    else if (roll < 0.3) p += '/';
    else if (roll < 0.35) p = p.replace('/', '//');
    else if (roll < 0.4) p += pick(['x', '/x', '.json']);
    paths.push(p.startsWith('/') ? p : `/${p}`);
  }
  return { text, paths };
}

async function netlifyParse(file: string): Promise<{ rules: HeaderRule[]; errors: Error[] }> {
  const { headers, errors } = await parseAllHeaders({ headersFiles: [file], configHeaders: [], minimal: false });
  return { rules: headers.filter((h): h is Header => 'forRegExp' in h), errors };
}

const shape = (rules: readonly HeaderRule[]) => rules.map((r) => ({ for: r.for, values: r.values }));

/** Files loaded and paths compared by compareWithParser, for the streams' coverage checks. */
interface Compared {
  files: number;
  withErrors: number;
  paths: number;
  /** Rules read, plain (Map) and pattern (trie), duplicates the parser dropped. */
  plain: number;
  patterned: number;
  duplicates: number;
  /** Paths a plain rule matched though the path is not the rule's own text. */
  foldedHits: number;
}

/** Each seed's file read by the index and by Netlify's parser: the same rules, the same answer for every path. */
async function compareWithParser(seeds: number[], generate: (seed: number) => { text: string; paths: string[] }): Promise<Compared> {
  const c: Compared = { files: 0, withErrors: 0, paths: 0, plain: 0, patterned: 0, duplicates: 0, foldedHits: 0 };
  for (const seed of seeds) {
    const { text, paths } = generate(seed);
    const file = path.join(tmp, `headers-${seed}`);
    fs.writeFileSync(file, text);
    const reference = await netlifyParse(file);
    c.files++;
    if (reference.errors.length > 0) {
      c.withErrors++;
      await expect(loadHeaderRules(file), `seed ${seed}`).rejects.toThrow(`Netlify's _headers parser reports ${reference.errors.length} error(s)`);
      continue;
    }
    const index = await loadHeaderRules(file);
    const rules = index.rules;
    expect(shape(rules), `seed ${seed}: the rules read`).toEqual(shape(reference.rules));
    for (const r of rules) (plainKey(r.for) === undefined ? c.patterned++ : c.plain++);
    c.duplicates += countDropped(text, rules.length);
    for (const p of paths) {
      const want = matchingRules(reference.rules, p);
      const got = matchingRules(index, p);
      expect(shape(got), `seed ${seed}, path ${JSON.stringify(p)}`).toEqual(shape(want));
      expect(matchHeaders(index, p), `seed ${seed}, path ${JSON.stringify(p)}`).toEqual(matchHeaders(reference.rules, p));
      if (got.some((r) => plainKey(r.for) !== undefined && r.for !== p)) c.foldedHits++;
      c.paths++;
    }
  }
  return c;
}

/** How many rules with headers the text has beyond those read: identical ones the parser dropped. */
function countDropped(text: string, read: number): number {
  const blocks = text.split('\n').reduce<boolean[]>((acc, raw) => {
    const line = raw.trim();
    if (line.startsWith('/')) acc.push(false);
    else if (acc.length > 0 && line !== '' && !line.startsWith('#') && line.includes(':')) acc[acc.length - 1] = true;
    return acc;
  }, []);
  return blocks.filter(Boolean).length - read;
}

/** Whitespace that trim() removes, besides the space: the reader must take all of it as the parser does. */
const ODD_SPACES = ['\t', '\v', '\f', '\r', '\u00a0', '\u1680', '\u2003', '\u2028', '\u2029', '\u202f', '\u205f', '\u3000', '\ufeff'];
const PLAIN_WORDS = ['v2', 'alpine', 'Alpine', 'ALPINE', 'kiss', 'Skk', 'ask', 'manifests', 'blobs', 'tags', 'list', 'sha256:ab12', 'x.y', 'a-b', '1.0', 'a+b', '(p)', 'a$', '[q]', '~u', 'a b', 'x:y'];
/** Not ASCII: such a rule is not plain (its fold is the pattern's), though it has no pattern. */
const OTHER_WORDS = ['é', 'ſk', 'Kelvin\u212a', 'straße'];

/** Many plain rules, some patterns, and every way a plain path can be written or asked for. */
function generatePlain(seed: number): { text: string; paths: string[] } {
  const r = prng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const space = (): string => (r() < 0.85 ? pick(['', ' ', '  ', '\t']) : pick(ODD_SPACES));
  const segment = (): string => {
    const roll = r();
    if (roll < 0.95) return pick(PLAIN_WORDS) + (r() < 0.04 ? ' ' : ''); // a part ending in a space: dropped from the pattern
    if (roll < 0.97) return pick(OTHER_WORDS);
    if (roll < 0.985) return ':' + pick(['name', 'x']);
    return pick(['*', 'a*', '*.json']);
  };
  const rulePath = (): string => {
    let p = '';
    const n = 1 + Math.floor(r() * 4);
    for (let i = 0; i < n; i++) p += (r() < 0.04 ? '//' : '/') + segment();
    if (r() < 0.03) p = '/';
    if (r() < 0.1) p += '/';
    return p;
  };
  const header = (name = pick(['Content-Type', 'X-A', 'x-a', 'Link', '123', 'X-B']), value = pick(['1', 'a, b', ' a ,b', 'x:y', 'text/plain'])): string =>
    `${space()}${name}${r() < 0.05 ? space() : ''}:${space()}${value}${space()}`;
  const lines: string[] = [];
  if (r() < 0.1) lines.push(pick(['X-Orphan: 1', '# comment: before', ''])); // an orphan header is an error
  // About one file in ten has a line the parser reports an error for, or a name its objects treat specially.
  const odd = r() < 0.1 ? pick([header('', '1'), header('X-A', ''), header(pick(['constructor', 'toString', '__proto__', 'undefined']))]) : undefined;
  const written: Array<{ path: string; headers: string[] }> = [];
  const nRules = 20 + Math.floor(r() * 120);
  for (let i = 0; i < nRules; i++) {
    const roll = r();
    let rule: { path: string; headers: string[] };
    if (written.length > 0 && roll < 0.08) rule = sameRule(r, pick(written)); // the earlier one is dropped
    else if (written.length > 0 && roll < 0.12) rule = { path: pick(written).path, headers: [header()] }; // same path, other headers
    else if (written.length > 0 && roll < 0.16) rule = { ...pick(written), path: caseVariant(r, pick(written).path) };
    else rule = { path: rulePath(), headers: Array.from({ length: Math.floor(r() * 3) }, () => header()) }; // none: a path the parser drops
    written.push(rule);
    lines.push(`${r() < 0.1 ? space() || '  ' : ''}${rule.path}${r() < 0.1 ? space() : ''}`); // some path lines indented
    lines.push(...rule.headers);
    if (r() < 0.05) lines.push(pick(['', '# note: x', 'junk line', space()]));
  }
  if (odd !== undefined) lines.splice(1 + Math.floor(r() * lines.length), 0, odd);
  let text = lines.join(r() < 0.2 ? '\r\n' : '\n') + (r() < 0.5 ? '\n' : '');
  if (r() < 0.05) text = '\ufeff' + text;

  const paths: string[] = [];
  for (let i = 0; i < 80; i++) {
    let p = r() < 0.8 ? pick(written).path.trim() : rulePath();
    p = p.replace(/:(name|x)/gu, () => pick(PLAIN_WORDS)).replace(/\*/gu, () => pick(['', 'q', 'q/r']));
    const roll = r();
    if (roll < 0.25) p = caseVariant(r, p);
    else if (roll < 0.35) p += '/';
    else if (roll < 0.4) p += '//';
    else if (roll < 0.45) p = p.replace(/ \//gu, '/').replace(/\/\/+/gu, '/'); // the form the pattern matches
    else if (roll < 0.5) p = p.slice(0, -1);
    paths.push(p.startsWith('/') ? p : `/${p}`);
  }
  return { text, paths };
}

/** The same rule again, sometimes with its header lines in another order (the same rule to the parser, if its names differ). */
function sameRule(r: () => number, rule: { path: string; headers: string[] }): { path: string; headers: string[] } {
  return r() < 0.3 ? { ...rule, headers: [...rule.headers].reverse() } : rule;
}

/** `text` in other cases, with U+017F for some `s` and U+212A for some `k`. */
function caseVariant(r: () => number, text: string): string {
  return [...text]
    .map((ch) => {
      const roll = r();
      if (ch === 's' && roll < 0.3) return '\u017f';
      if (ch === 'k' && roll < 0.3) return '\u212a';
      return roll < 0.5 ? ch.toUpperCase() : ch.toLowerCase();
    })
    .join('');
}

describe("serve's _headers matching against Netlify's parser", () => {
  const only = process.env.SERVE_RULES_SEED;

  it(`gives every path the same rules and headers (${only ? 1 : 400} seeded files × 60 paths)`, async () => {
    const seeds = only ? [Number(only)] : Array.from({ length: 400 }, (_, i) => 1000 + i);
    const c = await compareWithParser(seeds, generate);
    // The generator must cover both outcomes, and mostly files that load.
    if (!only) {
      expect(c.withErrors).toBeGreaterThan(5);
      expect(c.paths).toBeGreaterThan(seeds.length * 50);
    }
  });

  it(`does so for plain rules, folded paths, duplicates and odd whitespace (${only ? 1 : 300} seeded files × 80 paths)`, async () => {
    const seeds = only ? [Number(only)] : Array.from({ length: 300 }, (_, i) => 5000 + i);
    const c = await compareWithParser(seeds, generatePlain);
    if (!only) {
      expect(c.withErrors, 'files with errors').toBeGreaterThan(10);
      expect(c.files - c.withErrors, 'files that load').toBeGreaterThan(200);
      expect(c.plain, 'plain rules').toBeGreaterThan(c.patterned * 3);
      expect(c.patterned, 'pattern rules').toBeGreaterThan(500);
      expect(c.duplicates, 'duplicates dropped').toBeGreaterThan(100);
      expect(c.foldedHits, 'plain rules matched by another spelling').toBeGreaterThan(2000);
    }
  });

  it('takes exactly the quirks of the parser: JavaScript object names as headers, `*` splats that swallow a slash', async () => {
    const file = path.join(tmp, 'quirks');
    fs.writeFileSync(file, '/a/*\n  constructor: x\n  X-A: 1\n/a\n  X-B: 2\n');
    const reference = await netlifyParse(file);
    const index = await loadHeaderRules(file);
    expect(shape(index.rules)).toEqual(shape(reference.rules));
    for (const p of ['/a', '/abc', '/a/b/c', '/A/']) expect(matchHeaders(index, p), p).toEqual(matchHeaders(reference.rules, p));
    expect(matchHeaders(index, '/abc')).toContainEqual(['X-A', '1']); // `/a/*` is `^/a/?(.*)/?$`
  });

  it('looks at a handful of rules per request on a 20,000-rule registry file', async () => {
    const paths: PublishedPath[] = [];
    for (let i = 0; i < 4000; i++) {
      const repo = `team${i % 40}/app${i}`;
      const digest = `sha256:${i.toString(16).padStart(64, '0')}`;
      paths.push({ urlPath: `/v2/${repo}/tags/list`, file: `v2/${repo}/tags/list`, kind: 'tags', contentType: 'application/json', size: 10, immutable: false });
      for (const tag of ['1.0', '1.1', 'latest']) {
        paths.push({ urlPath: `/v2/${repo}/manifests/${tag}`, file: `v2/${repo}/manifests/${tag}`, kind: 'manifest', contentType: 'application/vnd.oci.image.manifest.v1+json', digest, size: 10, immutable: false });
      }
      paths.push({ urlPath: `/v2/${repo}/blobs/${digest}`, file: `v2/${repo}/blobs/${digest}`, kind: 'blob', contentType: 'application/octet-stream', digest, size: 10, immutable: true });
    }
    const file = path.join(tmp, 'large_headers');
    fs.writeFileSync(file, `/*\n  X-Site: 1\n${renderNetlifyHeaders(paths, { headers: 'exact' })}`);
    const index = await loadHeaderRules(file);
    expect(index.rules.length).toBe(20_001);
    for (const p of paths.filter((_, i) => i % 97 === 0)) {
      expect(index.candidates(p.urlPath).length, p.urlPath).toBeLessThanOrEqual(3);
      expect(matchingRules(index, p.urlPath).map((r) => r.for)).toEqual(['/*', p.urlPath]);
    }
  });

  it("reads whitespace as the parser's trim() does: `\\s` in the reader's expressions is exactly that set", () => {
    const differ: string[] = [];
    for (let cu = 0; cu <= 0xffff; cu++) {
      const c = String.fromCharCode(cu);
      if (/\s/u.test(c) !== (c.trim() === '')) differ.push(cu.toString(16));
    }
    expect(differ).toEqual([]);
  });

  it('folds every code point that a case-insensitive pattern matches to printable ASCII', () => {
    // The index keys segments by foldSegment; a code point that /iu matches to an ASCII character
    // and that foldSegment left alone would be a rule the index misses.
    const asciiClass = /^[\x20-\x7e]$/iu;
    const found: string[] = [];
    for (let cp = 0x80; cp <= 0x10ffff; cp++) {
      if (cp >= 0xd800 && cp <= 0xdfff) continue;
      const c = String.fromCodePoint(cp);
      if (!asciiClass.test(c)) continue;
      found.push(cp.toString(16));
      const folded = foldSegment(c);
      expect(folded, `U+${cp.toString(16)}`).toMatch(/^[\x20-\x7e]$/u);
      expect(new RegExp(`^${folded}$`, 'iu').test(c)).toBe(true);
    }
    expect(found).toEqual(['17f', '212a']);
    expect(foldSegment('AbC-ſK')).toBe('abc-sk');
  });
});
