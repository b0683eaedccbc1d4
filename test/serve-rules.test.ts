import fs from 'node:fs';
import path from 'node:path';
import { parseAllHeaders, type Header } from '@netlify/headers-parser';
import { afterAll, describe, expect, it } from 'vitest';
import { renderNetlifyHeaders } from '../src/hosts/netlify.ts';
import { type PublishedPath } from '../src/model/published-path.ts';
import { foldSegment, loadHeaderRules, matchHeaders, matchingRules, type HeaderRule } from '../src/serve/header-rules.ts';
import { makeTempDir, removeDir } from './harness/procs.ts';

// `registrish serve` reads `_headers` in one pass and matches through an index; Netlify's own
// parser, with every rule's pattern tested in turn, is the reference. Seeded random files of every
// rule shape (exact paths, `*` splats alone and inside a segment, `:placeholders`, other cases,
// trailing and doubled slashes, overlapping and repeated rules, repeated header names, comments,
// junk lines, regex characters) and seeded random paths must give the same rules and headers.
// A failure names the seed: SERVE_RULES_SEED=<n> replays that file alone.

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

describe("serve's _headers matching against Netlify's parser", () => {
  const only = process.env.SERVE_RULES_SEED;
  const seeds = only ? [Number(only)] : Array.from({ length: 400 }, (_, i) => 1000 + i);

  it(`gives every path the same rules and headers (${seeds.length} seeded files × 60 paths)`, async () => {
    let compared = 0;
    let withErrors = 0;
    for (const seed of seeds) {
      const { text, paths } = generate(seed);
      const file = path.join(tmp, `headers-${seed}`);
      fs.writeFileSync(file, text);
      const reference = await netlifyParse(file);
      if (reference.errors.length > 0) {
        withErrors++;
        await expect(loadHeaderRules(file), `seed ${seed}`).rejects.toThrow(
          `Netlify's _headers parser reports ${reference.errors.length} error(s)`,
        );
        continue;
      }
      const index = await loadHeaderRules(file);
      expect(shape(index.rules), `seed ${seed}: the rules read`).toEqual(shape(reference.rules));
      for (const p of paths) {
        const want = matchingRules(reference.rules, p);
        expect(shape(matchingRules(index, p)), `seed ${seed}, path ${JSON.stringify(p)}`).toEqual(shape(want));
        expect(matchHeaders(index, p), `seed ${seed}, path ${JSON.stringify(p)}`).toEqual(matchHeaders(reference.rules, p));
        compared++;
      }
    }
    // The generator must cover both outcomes, and mostly files that load.
    if (!only) {
      expect(withErrors).toBeGreaterThan(5);
      expect(compared).toBeGreaterThan(seeds.length * 50);
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
