import fs from 'node:fs';
import path from 'node:path';
import { parseAllHeaders } from '@netlify/headers-parser';
import { afterAll, describe, expect, it } from 'vitest';
import { headersFor } from '../src/publish/headers.ts';
import {
  NETLIFY_COMPACT_ABOVE_RULES,
  checkNetlifyLimits,
  netlify,
  netlifyUsesCompact,
  planNetlifyRules,
  renderNetlifyHeaders,
} from '../src/hosts/netlify.ts';
import { loadHeaderRules, matchHeaders, matchingRules, type HeaderRule } from '../src/serve/header-rules.ts';
import { makeTempDir, removeDir } from './harness/procs.ts';
import { BEGIN_MARKER, END_MARKER, mergeHeadersFile, netlifyRulePattern } from '../src/hosts/headers-file.ts';
import { type PublishedPath } from '../src/model/published-path.ts';

const tmp = makeTempDir('rsh-netlify-');
afterAll(() => removeDir(tmp));

const hex = (c: string): string => c.repeat(64);
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';

function json(urlPath: string, file: string, kind: PublishedPath['kind']): PublishedPath {
  return { urlPath, file, kind, contentType: 'application/json', size: 30, immutable: false };
}
function manifest(name: string, ref: string, type: string, digest: string): PublishedPath {
  const byDigest = ref.startsWith('sha256:');
  return {
    urlPath: `/v2/${name}/manifests/${ref}`,
    file: `v2/${name}/manifests/${ref}`,
    kind: 'manifest',
    contentType: type,
    digest,
    size: 1234,
    immutable: byDigest,
  };
}
function blob(name: string, digest: string, size = 4096): PublishedPath {
  return {
    urlPath: `/v2/${name}/blobs/${digest}`,
    file: `v2/${name}/blobs/${digest}`,
    kind: 'blob',
    contentType: 'application/octet-stream',
    digest,
    size,
    immutable: true,
  };
}

/** What a multi-arch alpine, a nested single-arch image and an uppercase tag publish. */
function samplePaths(): PublishedPath[] {
  const index = `sha256:${hex('a')}`;
  const amd64 = `sha256:${hex('b')}`;
  const arm64 = `sha256:${hex('c')}`;
  const nested = `sha256:${hex('d')}`;
  const list = `sha256:${hex('e')}`;
  return [
    json('/v2/', 'v2/index.html', 'base'),
    json('/v2/_catalog', 'v2/_catalog', 'catalog'),
    json('/v2/alpine/tags/list', 'v2/alpine/tags/list', 'tags'),
    manifest('alpine', '3.20', OCI_INDEX, index),
    manifest('alpine', 'latest', OCI_INDEX, index),
    manifest('alpine', index, OCI_INDEX, index),
    manifest('alpine', amd64, OCI_MANIFEST, amd64),
    manifest('alpine', arm64, OCI_MANIFEST, arm64),
    blob('alpine', `sha256:${hex('1')}`),
    blob('alpine', `sha256:${hex('2')}`, 3_000_000),
    blob('alpine', `sha256:${hex('3')}`),
    json('/v2/team/tools/deep/tags/list', 'v2/team/tools/deep/tags/list', 'tags'),
    manifest('team/tools/deep', 'V1.2.3-RC_1', DOCKER_MANIFEST, nested),
    manifest('team/tools/deep', nested, DOCKER_MANIFEST, nested),
    manifest('team/tools/deep', 'multi', DOCKER_LIST, list),
    manifest('team/tools/deep', list, DOCKER_LIST, list),
    blob('team/tools/deep', `sha256:${hex('4')}`),
  ];
}

async function parseFile(text: string, name = '_headers'): Promise<{ rules: HeaderRule[]; errors: Error[] }> {
  const dir = fs.mkdtempSync(path.join(tmp, 'h-'));
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  // The real signature (lib/all.d.ts): headersFiles, netlifyConfigPath?, configHeaders, minimal.
  const { headers, errors } = await parseAllHeaders({ headersFiles: [file], configHeaders: [], minimal: false });
  return { rules: headers.filter((h): h is HeaderRule => 'forRegExp' in h), errors };
}

describe('renderNetlifyHeaders', () => {
  it("is read back by Netlify's parser as exactly one rule per URL with exactly headersFor(p)", async () => {
    const paths = samplePaths();
    const text = renderNetlifyHeaders(paths);
    const { rules, errors } = await parseFile(text);
    expect(errors).toEqual([]);
    expect(rules).toHaveLength(paths.length);
    for (const p of paths) {
      const hits = matchingRules(rules, p.urlPath);
      expect(hits.map((r) => r.for), p.urlPath).toEqual([p.urlPath]);
      expect(matchHeaders(rules, p.urlPath), p.urlPath).toEqual(headersFor(p));
    }
  });

  it('writes digest paths with a literal ":" that the parser does not take for a placeholder', async () => {
    const paths = samplePaths();
    const { rules } = await parseFile(renderNetlifyHeaders(paths));
    const digestUrl = `/v2/alpine/manifests/sha256:${hex('b')}`;
    const rule = matchingRules(rules, digestUrl)[0]!;
    expect(rule.for).toBe(digestUrl);
    expect(rule.forRegExp.test(`/v2/alpine/manifests/sha256:${hex('f')}`)).toBe(false);
    expect(rule.forRegExp.test('/v2/alpine/manifests/anything')).toBe(false);
    // Contrast: a segment that *starts* with ":" is a placeholder and matches any reference.
    const { rules: placeholder } = await parseFile('/v2/alpine/manifests/:ref\n  X-Test: 1\n');
    expect(placeholder[0]!.forRegExp.test(digestUrl)).toBe(true);
  });

  it('matches URLs case-insensitively, like Netlify', async () => {
    const { rules } = await parseFile(renderNetlifyHeaders(samplePaths()));
    expect(matchingRules(rules, '/v2/team/tools/deep/manifests/v1.2.3-rc_1').map((r) => r.for)).toEqual([
      '/v2/team/tools/deep/manifests/V1.2.3-RC_1',
    ]);
    expect(matchingRules(rules, '/V2/ALPINE/TAGS/LIST')).toHaveLength(1);
  });

  it('is deterministic and sorted, with a generated-by comment', () => {
    const paths = samplePaths();
    const text = renderNetlifyHeaders(paths);
    expect(renderNetlifyHeaders([...paths].reverse())).toBe(text);
    expect(text.startsWith('# Generated by registrish')).toBe(true);
    const urls = text.split('\n').filter((l) => l.startsWith('/'));
    expect(urls).toEqual([...urls].sort());
    expect(text).toContain(`/v2/alpine/manifests/3.20\n  Content-Type: ${OCI_INDEX}\n  Docker-Content-Digest: sha256:${hex('a')}\n`);
  });

  it('accepts a URL listed twice with the same headers, refuses different ones', () => {
    const p = samplePaths()[3]!;
    expect(renderNetlifyHeaders([p, { ...p }]).match(/^\/v2\//gmu)).toHaveLength(1);
    expect(() => renderNetlifyHeaders([p, { ...p, contentType: OCI_MANIFEST }])).toThrow(/published twice/u);
  });

  it('refuses URLs Netlify would read as patterns', () => {
    const base = samplePaths()[3]!;
    for (const urlPath of ['/v2/x/manifests/:tag', '/v2/x/*', '/v2/x y', 'v2/x', '/v2/x\n  Content-Type: text/html']) {
      expect(() => renderNetlifyHeaders([{ ...base, urlPath }]), urlPath).toThrow(/cannot write a Netlify _headers rule/u);
    }
  });
});

/** headersFor(p), without the blob digest the compact form leaves out. */
function compactHeadersFor(p: PublishedPath): Array<[string, string]> {
  return headersFor(p).filter(([n]) => !(p.kind === 'blob' && n === 'Docker-Content-Digest'));
}

/** `count` distinct tags of one repository (one URL each). */
function manyTags(count: number, name = 'many'): PublishedPath[] {
  return Array.from({ length: count }, (_, i) => manifest(name, `t${i}`, OCI_MANIFEST, `sha256:${i.toString(16).padStart(64, '0')}`));
}

/** samplePaths() with a second blob in team/tools/deep (a repository with one blob keeps its exact rule). */
const twoBlobsEach = (): PublishedPath[] => [...samplePaths(), blob('team/tools/deep', `sha256:${hex('5')}`)];

describe('renderNetlifyHeaders: the compact form', () => {
  it("gives every URL exactly headersFor(p) through Netlify's parser, blobs without their digest, one rule each", async () => {
    const paths = twoBlobsEach();
    const { rules, errors } = await parseFile(renderNetlifyHeaders(paths, { compact: true }));
    expect(errors).toEqual([]);
    expect(rules.map((r) => r.for).filter((f) => f.includes('*'))).toEqual(['/v2/alpine/blobs/*', '/v2/team/tools/deep/blobs/*']);
    expect(rules).toHaveLength(paths.filter((p) => p.kind !== 'blob').length + 2);
    for (const p of paths) {
      expect(matchingRules(rules, p.urlPath), p.urlPath).toHaveLength(1);
      expect(matchHeaders(rules, p.urlPath), p.urlPath).toEqual(compactHeadersFor(p));
    }
    // A blob of one repository is never matched by another's rule, nor a nested repository's blob.
    expect(matchingRules(rules, `/v2/team/tools/blobs/sha256:${hex('4')}`)).toEqual([]);
    // A repository with a single blob has nothing to save: it keeps the exact rule, digest included.
    const single = samplePaths();
    const { rules: singleRules } = await parseFile(renderNetlifyHeaders(single, { compact: true }));
    expect(singleRules.map((r) => r.for).filter((f) => f.includes('*'))).toEqual(['/v2/alpine/blobs/*']);
    const deepBlob = single.find((p) => p.kind === 'blob' && p.urlPath.startsWith('/v2/team/'))!;
    expect(matchHeaders(singleRules, deepBlob.urlPath)).toEqual(headersFor(deepBlob));
  });

  it('is the exact form for everything but blobs', () => {
    const paths = twoBlobsEach();
    const exact = planNetlifyRules(paths, { compact: false });
    const compact = planNetlifyRules(paths, { compact: true });
    expect(exact).toHaveLength(paths.length);
    expect(exact.every((r) => !r.path.includes('*'))).toBe(true);
    expect(compact.filter((r) => !r.path.includes('*'))).toEqual(exact.filter((r) => !r.path.includes('/blobs/')));
    expect(compact.find((r) => r.path === '/v2/alpine/blobs/*')!.headers).toEqual([
      ['Content-Type', 'application/octet-stream'],
      ['Cache-Control', 'public, max-age=31536000, immutable'],
      ['X-Content-Type-Options', 'nosniff'],
    ]);
    const text = renderNetlifyHeaders(paths, { compact: true });
    expect(text.startsWith('# Generated by registrish')).toBe(true);
    expect(text).toContain('\n/v2/alpine/blobs/*\n  Content-Type: application/octet-stream\n  Cache-Control: public, max-age=31536000, immutable\n  X-Content-Type-Options: nosniff\n');
    expect(renderNetlifyHeaders([...paths].reverse(), { compact: true })).toBe(text);
  });

  it("keeps exact blob rules for a repository whose wildcard would catch another URL (the parser's `blobs/?(.*)`)", async () => {
    // `/v2/alpine/blobs/*` is `^/v2/alpine/blobs/?(.*)/?$` to Netlify's parser: it also matches
    // the repository alpine/blobstore. A single `/v2/*/blobs/*` would even catch a tag named "blobs".
    const store = manifest('alpine/blobstore', '1.0', OCI_MANIFEST, `sha256:${hex('f')}`);
    const blobsTag = manifest('team/tools/deep', 'blobs', OCI_MANIFEST, `sha256:${hex('d')}`);
    const paths = [...twoBlobsEach(), store, blobsTag];
    const { rules, errors } = await parseFile(renderNetlifyHeaders(paths, { compact: true }));
    expect(errors).toEqual([]);
    expect(rules.map((r) => r.for).filter((f) => f.includes('*'))).toEqual(['/v2/team/tools/deep/blobs/*']);
    for (const p of paths) {
      expect(matchingRules(rules, p.urlPath), p.urlPath).toHaveLength(1);
      const want = p.urlPath.startsWith('/v2/alpine/blobs/') ? headersFor(p) : compactHeadersFor(p);
      expect(matchHeaders(rules, p.urlPath), p.urlPath).toEqual(want);
    }
    const { rules: global } = await parseFile('/v2/*/blobs/*\n  X-Test: 1\n');
    expect(global[0]!.forRegExp.test(blobsTag.urlPath)).toBe(true);
    expect(global[0]!.forRegExp.test(store.urlPath)).toBe(true);
  });

  it('is chosen above NETLIFY_COMPACT_ABOVE_RULES URLs, or forced either way', () => {
    const base = samplePaths();
    const atLimit = [...base, ...manyTags(NETLIFY_COMPACT_ABOVE_RULES - base.length)];
    const over = [...atLimit, manyTags(1, 'one')[0]!];
    expect(netlifyUsesCompact(atLimit)).toBe(false);
    expect(netlifyUsesCompact(over)).toBe(true);
    expect(netlifyUsesCompact(over, false)).toBe(false);
    expect(netlifyUsesCompact(base, true)).toBe(true);
    // The same URL twice counts once.
    expect(netlifyUsesCompact([...atLimit, atLimit[5]!])).toBe(false);
    expect(planNetlifyRules(atLimit)).toHaveLength(NETLIFY_COMPACT_ABOVE_RULES);
    // alpine's three blobs share a rule; team/tools/deep's single blob keeps its own.
    expect(planNetlifyRules(over)).toHaveLength(NETLIFY_COMPACT_ABOVE_RULES + 1 - 3 + 1);
    expect(renderNetlifyHeaders(over)).toBe(renderNetlifyHeaders(over, { compact: true }));
    expect(renderNetlifyHeaders(atLimit)).toBe(renderNetlifyHeaders(atLimit, { compact: false }));
  });

  it('the writer chooses by itself, and warns when even the compact form has too many rules', async () => {
    const out = fs.mkdtempSync(path.join(tmp, 'w-'));
    const small = await netlify.writer!.render(out, samplePaths());
    expect(small.files[0]!.text).not.toContain('/blobs/*');
    expect(small.warnings).toEqual([]);
    const blobs = Array.from({ length: NETLIFY_COMPACT_ABOVE_RULES }, (_, i) => blob('big', `sha256:${i.toString(16).padStart(64, '0')}`, 10));
    const compact = await netlify.writer!.render(out, [...samplePaths(), ...blobs]);
    expect(compact.files[0]!.text).toContain('\n/v2/big/blobs/*\n');
    expect(compact.files[0]!.text.split('\n').filter((l) => l.startsWith('/'))).toHaveLength(samplePaths().length - 3 + 1 + 1);
    expect(compact.warnings).toEqual([]);
    // Tags cannot be compacted: each carries its own digest and type.
    const many = await netlify.writer!.render(out, manyTags(NETLIFY_COMPACT_ABOVE_RULES + 1));
    expect(many.warnings).toHaveLength(1);
    expect(many.warnings[0]).toMatch(/^_headers needs 10001 rules .*one per tag — 10001 — .* square of its rules/u);
  });

  it('warns about a site rule that overlaps one of its wildcard rules', () => {
    const generated = renderNetlifyHeaders(samplePaths(), { compact: true });
    const { warnings } = mergeHeadersFile(`/v2/alpine/blobs/sha256:${hex('1')}\n  Cache-Control: no-store\n`, generated);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('/v2/alpine/blobs/*');
    expect(warnings[0]).toContain('Cache-Control');
  });
});

describe('netlifyRulePattern', () => {
  it("builds the same RegExp as Netlify's parser", async () => {
    const patterns = ['/*', '/v2/*', '/v2/:name/manifests/*', '/a/b*c/d', '/V2/x.y-z/', '/v2/x/manifests/sha256:ab', '/'];
    const { rules, errors } = await parseFile(patterns.map((p) => `${p}\n  X-Test: 1\n`).join(''));
    expect(errors).toEqual([]);
    expect(rules.map((r) => r.for)).toEqual(patterns);
    for (const rule of rules) {
      const ours = netlifyRulePattern(rule.for);
      expect([ours.source, ours.flags], rule.for).toEqual([rule.forRegExp.source, rule.forRegExp.flags]);
    }
  });
});

describe('checkNetlifyLimits', () => {
  it('passes a normal registry', () => {
    expect(checkNetlifyLimits(samplePaths())).toEqual({ errors: [], warnings: [] });
  });

  it('refuses URLs that differ only in case, naming both', () => {
    const paths = [...samplePaths(), manifest('alpine', 'LATEST', OCI_INDEX, `sha256:${hex('a')}`)];
    const { errors } = checkNetlifyLimits(paths);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toContain('/v2/alpine/manifests/latest');
    expect(errors[0]).toContain('/v2/alpine/manifests/LATEST');
  });

  it('refuses more than 54,000 files in one directory', () => {
    const many = Array.from({ length: 54_001 }, (_, i) => blob('big', `sha256:${i.toString(16).padStart(64, '0')}`, 10));
    const { errors } = checkNetlifyLimits(many);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/^v2\/big\/blobs\/ would hold 54001 files/u);
    expect(checkNetlifyLimits(many.slice(1)).errors).toEqual([]);
  });

  it('warns (only) about files over 10 MB, naming them', () => {
    const big = blob('alpine', `sha256:${hex('9')}`, 50 * 1024 * 1024);
    const { errors, warnings } = checkNetlifyLimits([...samplePaths(), big]);
    expect(errors).toEqual([]);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain(big.file);
    expect(warnings[0]).toContain('50.0 MiB');
  });

  it('reports URLs that cannot be written as rules', () => {
    const p = { ...samplePaths()[3]!, urlPath: '/v2/x/manifests/:bad' };
    expect(checkNetlifyLimits([p]).errors[0]).toMatch(/placeholder/u);
  });
});

describe('mergeHeadersFile', () => {
  const generated = renderNetlifyHeaders(samplePaths());
  const user = '# my site\n/blog/*\n  X-Frame-Options: DENY\n';

  it('wraps our rules in markers when there is no _headers yet', () => {
    const { text, warnings } = mergeHeadersFile(undefined, generated);
    expect(warnings).toEqual([]);
    expect(text).toBe(`${BEGIN_MARKER}\n${generated}${END_MARKER}\n`);
  });

  it("keeps the user's rules, appends ours, and is idempotent", () => {
    const once = mergeHeadersFile(user, generated);
    expect(once.warnings).toEqual([]);
    expect(once.text.startsWith(user)).toBe(true);
    expect(once.text).toContain(`${BEGIN_MARKER}\n${generated}${END_MARKER}\n`);
    const twice = mergeHeadersFile(once.text, generated);
    expect(twice.text).toBe(once.text);
    expect(mergeHeadersFile(undefined, generated).text).toBe(mergeHeadersFile(mergeHeadersFile(undefined, generated).text, generated).text);
  });

  it('replaces the previous block in place, keeping rules before and after it', async () => {
    const old = mergeHeadersFile(user, renderNetlifyHeaders(samplePaths().slice(0, 3))).text;
    const edited = `${old}\n/about\n  X-Robots-Tag: noindex\n`;
    const { text, warnings } = mergeHeadersFile(edited, generated);
    expect(warnings).toEqual([]);
    expect(text.startsWith(user)).toBe(true);
    expect(text.endsWith('\n/about\n  X-Robots-Tag: noindex\n')).toBe(true);
    expect(text.split(BEGIN_MARKER)).toHaveLength(2);
    expect(mergeHeadersFile(text, generated).text).toBe(text);

    // Netlify still reads our URLs as exactly headersFor(p).
    const { rules, errors } = await parseFile(text);
    expect(errors).toEqual([]);
    for (const p of samplePaths()) expect(matchHeaders(rules, p.urlPath), p.urlPath).toEqual(headersFor(p));
    expect(matchHeaders(rules, '/about')).toEqual([['X-Robots-Tag', 'noindex']]);
  });

  it('warns about user rules that also match registry URLs, naming the rule', () => {
    const existing = '/*\n  Content-Type: text/html\n/v2/*\n  X-Frame-Options: DENY\n/blog/*\n  X-A: b\n/v2/:repo/tags/list\n';
    const { warnings } = mergeHeadersFile(existing, generated);
    expect(warnings).toHaveLength(2); // the headerless rule is dropped by the parser: harmless
    expect(warnings[0]).toMatch(/^_headers rule "\/\*" \(line 1\) also matches 17 registry URLs/u);
    expect(warnings[0]).toContain('Content-Type');
    expect(warnings[1]).toMatch(/^_headers rule "\/v2\/\*" \(line 3\)/u);
  });

  it('warns about user rules after our block with the right line number', () => {
    const prev = mergeHeadersFile(undefined, generated).text;
    const { text, warnings } = mergeHeadersFile(`${prev}/V2/alpine/*\n  Cache-Control: no-store\n`, generated);
    const line = text.split('\n').indexOf('/V2/alpine/*') + 1;
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain(`"/V2/alpine/*" (line ${line})`);
    expect(warnings[0]).toContain('Cache-Control');
  });

  it('warns about header lines that would attach to our last rule', () => {
    const prev = mergeHeadersFile(undefined, generated).text;
    const { warnings } = mergeHeadersFile(`${prev}  X-Oops: 1\n`, generated);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/would be added to registrish's last rule/u);
  });

  it('refuses to guess with broken markers', () => {
    expect(() => mergeHeadersFile(`${user}${BEGIN_MARKER}\n/v2/\n  X: y\n`, generated)).toThrow(/expected one of each/u);
    expect(() => mergeHeadersFile(`${END_MARKER}\n${BEGIN_MARKER}\n`, generated)).toThrow(/expected one of each/u);
  });
});

describe('loadHeaderRules', () => {
  it("reports the parser's errors", async () => {
    const file = path.join(tmp, 'bad_headers');
    fs.writeFileSync(file, 'X-Orphan: 1\n/ok\n  : novalue\n');
    await expect(loadHeaderRules(file)).rejects.toThrow(/Netlify's _headers parser reports 2 error\(s\)/u);
  });
});
