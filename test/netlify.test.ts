import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { parseAllHeaders } from '@netlify/headers-parser';
import { afterAll, describe, expect, it } from 'vitest';
import { headersFor } from '../src/publish/headers.ts';
import {
  NETLIFY_EXACT_MAX_RULES,
  NETLIFY_SLOW_COST,
  checkNetlifyLimits,
  compactHeadersFor,
  netlify,
  netlifyHeadersForm,
  netlifyParseCost,
  planNetlifyRules,
  renderNetlifyHeaders,
} from '../src/hosts/netlify.ts';
import { loadHeaderRules, matchHeaders, matchingRules, type HeaderRule } from '../src/serve/header-rules.ts';
import { makeTempDir, removeDir } from './harness/procs.ts';
import { BEGIN_MARKER, END_MARKER, mergeHeadersFile, netlifyRulePattern } from '../src/hosts/headers-file.ts';
import { type PublishedPath } from '../src/model/published-path.ts';
import { resolveOptions } from '../src/eleventy/options.ts';

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

/**
 * What Netlify sends for `urlPath` from the parser's rules: every matching rule, in file order, the
 * later one winning per header name (names compared case-insensitively) — what `netlify dev` does
 * with the same parser's output (headersForPath), written here apart from src/serve on purpose.
 */
function netlifySends(rules: readonly HeaderRule[], urlPath: string): Array<[string, string]> {
  const out = new Map<string, [string, string]>();
  for (const r of rules) if (r.forRegExp.test(urlPath)) for (const [n, v] of Object.entries(r.values)) out.set(n.toLowerCase(), [n, v]);
  return [...out.values()];
}

/** `count` distinct tags of one repository (one URL each). */
function manyTags(count: number, name = 'many'): PublishedPath[] {
  return Array.from({ length: count }, (_, i) => manifest(name, `t${i}`, OCI_MANIFEST, `sha256:${i.toString(16).padStart(64, '0')}`));
}

const d = (n: number, salt: string): string => `sha256:${createHash('sha256').update(`${salt}${n}`).digest('hex')}`;

/** A single-platform repository: `tags` tags, each its own manifest (tag and digest URL) and 3 blobs, and its tags/list. */
function singleRepo(name: string, tags: number, type = OCI_MANIFEST): PublishedPath[] {
  return [
    json(`/v2/${name}/tags/list`, `v2/${name}/tags/list`, 'tags'),
    ...Array.from({ length: tags }, (_, t) => {
      const m = d(t, `${name}/m`);
      return [manifest(name, `v${t}`, type, m), manifest(name, m, type, m), ...[0, 1, 2].map((b) => blob(name, d(t * 3 + b, `${name}/b`)))];
    }).flat(),
  ];
}

/** A multi-platform repository: each tag an OCI index of two platform manifests (tag, index and child digest URLs). */
function multiRepo(name: string, tags: number): PublishedPath[] {
  return [
    json(`/v2/${name}/tags/list`, `v2/${name}/tags/list`, 'tags'),
    ...Array.from({ length: tags }, (_, t) => {
      const index = d(t, `${name}/i`);
      const children = [0, 1].map((c) => d(t * 2 + c, `${name}/c`));
      return [
        manifest(name, `v${t}`, OCI_INDEX, index),
        manifest(name, index, OCI_INDEX, index),
        ...children.map((c) => manifest(name, c, OCI_MANIFEST, c)),
        ...children.map((c) => blob(name, d(t * 2 + Number(c === children[1]), `${name}/b`))),
      ];
    }).flat(),
  ];
}

/** Parses `paths`' compact form with Netlify's parser and expects every URL to get exactly compactHeadersFor(p). */
async function expectCompactServes(paths: PublishedPath[]): Promise<HeaderRule[]> {
  const { rules, errors } = await parseFile(renderNetlifyHeaders(paths, { headers: 'compact' }));
  expect(errors).toEqual([]);
  for (const p of paths) expect(netlifySends(rules, p.urlPath), p.urlPath).toEqual(compactHeadersFor(p));
  return rules;
}

describe('renderNetlifyHeaders: the compact form', () => {
  it("gives every URL exactly headersFor(p) without Docker-Content-Digest, through Netlify's parser", async () => {
    const paths = [...samplePaths(), blob('team/tools/deep', `sha256:${hex('5')}`)];
    const rules = await expectCompactServes(paths);
    expect(rules.map((r) => r.for).filter((f) => f.includes('*'))).toEqual([
      '/v2/*/tags/list',
      '/v2/alpine/blobs/*',
      '/v2/alpine/manifests/*',
      '/v2/alpine/manifests/sha256:*',
      '/v2/team/tools/deep/blobs/*',
      '/v2/team/tools/deep/manifests/*',
      '/v2/team/tools/deep/manifests/sha256:*',
    ]);
    // Exact rules only where a URL differs from its patterns: /v2/, the catalog, and in alpine the
    // index by digest (its other digest URLs are platform manifests); deep's two types are one each.
    const exact = rules.filter((r) => !r.for.includes('*'));
    expect(exact.map((r) => r.for)).toEqual([
      '/v2/',
      '/v2/_catalog',
      `/v2/alpine/manifests/sha256:${hex('a')}`,
      '/v2/team/tools/deep/manifests/V1.2.3-RC_1',
      `/v2/team/tools/deep/manifests/sha256:${hex('d')}`,
    ]);
    expect(exact[2]!.values).toEqual({ 'Content-Type': OCI_INDEX });
    expect(rules.flatMap((r) => Object.keys(r.values)).filter((n) => n === 'Docker-Content-Digest')).toEqual([]);
    // Case-insensitive like every Netlify rule, and no pattern reaches another repository.
    expect(netlifySends(rules, '/v2/ALPINE/manifests/LATEST')).toEqual(compactHeadersFor(paths[4]!));
    expect(rules.filter((r) => r.forRegExp.test(`/v2/team/tools/blobs/sha256:${hex('4')}`))).toEqual([]);
  });

  it('has rules that follow repositories, not tags: none per tag of a single-platform repository', () => {
    const count = (paths: PublishedPath[]) => planNetlifyRules(paths, { headers: 'compact' }).length;
    expect(count(singleRepo('one', 3))).toBe(4); // manifests/*, manifests/sha256:*, blobs/*, its tags/list
    expect(count(singleRepo('one', 300))).toBe(4);
    expect(count([...singleRepo('one', 300), ...singleRepo('two', 300), ...singleRepo('three', 5, DOCKER_MANIFEST)])).toBe(1 + 3 * 3);
    // A repository mixing types: one exact rule per URL of its less common type (tag and digest).
    const docker = [0, 1].flatMap((i) => [manifest('mix', `d${i}`, DOCKER_MANIFEST, d(i, 'docker')), manifest('mix', d(i, 'docker'), DOCKER_MANIFEST, d(i, 'docker'))]);
    expect(count([...singleRepo('mix', 10), ...docker])).toBe(4 + 4);
  });

  it('a multi-platform repository keeps one exact rule per index (its type differs from its platform manifests)', async () => {
    const rules = planNetlifyRules(multiRepo('multi', 50), { headers: 'compact' });
    expect(rules.filter((r) => r.path.includes('*')).map((r) => r.path)).toEqual(['/v2/multi/blobs/*', '/v2/multi/manifests/*', '/v2/multi/manifests/sha256:*']);
    const exact = rules.filter((r) => !r.path.includes('*') && r.path !== '/v2/multi/tags/list');
    expect(rules).toHaveLength(3 + 1 + 50);
    expect(exact.every((r) => r.path.startsWith('/v2/multi/manifests/sha256:') && JSON.stringify(r.headers) === JSON.stringify([['Content-Type', OCI_INDEX]]))).toBe(true);
    await expectCompactServes(multiRepo('multi', 50));
  });

  it("corrects URLs another repository's pattern catches (the parser's `manifests/?(.*)`), whatever the names", async () => {
    // `/v2/alpine/blobs/*` is `^/v2/alpine/blobs/?(.*)/?$` to Netlify's parser: it also matches the
    // repository alpine/blobstore; `/v2/x/manifests/*` matches everything of x/manifests/y.
    const paths = [
      ...samplePaths(),
      ...singleRepo('alpine/blobstore', 3, DOCKER_MANIFEST),
      ...singleRepo('x', 2),
      ...singleRepo('x/manifests/y', 2, DOCKER_MANIFEST),
      ...singleRepo('x/manifestsy', 2, DOCKER_MANIFEST),
      ...multiRepo('x/manifests/sha256', 2),
      manifest('team/tools/deep', 'blobs', OCI_MANIFEST, `sha256:${hex('d')}`),
      { ...samplePaths()[2]!, urlPath: '/v2/alpine/referrers/sha256:' + hex('a'), file: 'v2/alpine/referrers/sha256:' + hex('a'), kind: 'referrers' as const, contentType: OCI_INDEX },
      { ...samplePaths()[2]!, urlPath: '/v2/alpine/referrers/sha256:' + hex('b'), file: 'v2/alpine/referrers/sha256:' + hex('b'), kind: 'referrers' as const, contentType: OCI_INDEX },
    ];
    const rules = await expectCompactServes(paths);
    expect(rules.map((r) => r.for)).toContain('/v2/alpine/referrers/*');
    const { rules: global } = await parseFile('/v2/x/manifests/*\n  X-Test: 1\n');
    expect(global[0]!.forRegExp.test('/v2/x/manifests/y/blobs/sha256:0')).toBe(true);
    expect(global[0]!.forRegExp.test('/v2/x/manifestsy/tags/list')).toBe(true);
  });

  it('is the exact form, forced or below NETLIFY_EXACT_MAX_RULES URLs with auto, and compact above', () => {
    const base = samplePaths();
    const atLimit = [...base, ...manyTags(NETLIFY_EXACT_MAX_RULES - base.length)];
    const over = [...atLimit, manyTags(1, 'one')[0]!];
    expect(netlifyHeadersForm(atLimit)).toBe('exact');
    expect(netlifyHeadersForm(over)).toBe('compact');
    expect(netlifyHeadersForm(over, 'exact')).toBe('exact');
    expect(netlifyHeadersForm(base, 'compact')).toBe('compact');
    // The same URL twice counts once.
    expect(netlifyHeadersForm([...atLimit, atLimit[5]!])).toBe('exact');
    expect(planNetlifyRules(atLimit)).toHaveLength(NETLIFY_EXACT_MAX_RULES);
    expect(planNetlifyRules(over).length).toBeLessThan(20);
    expect(renderNetlifyHeaders(over)).toBe(renderNetlifyHeaders(over, { headers: 'compact' }));
    expect(renderNetlifyHeaders(atLimit)).toBe(renderNetlifyHeaders(atLimit, { headers: 'exact' }));
  });

  it('is deterministic, with a comment that says the order matters', () => {
    const paths = [...samplePaths(), ...multiRepo('m', 3)];
    const text = renderNetlifyHeaders(paths, { headers: 'compact' });
    expect(renderNetlifyHeaders([...paths].reverse(), { headers: 'compact' })).toBe(text);
    expect(text.startsWith('# Generated by registrish')).toBe(true);
    expect(text).toMatch(/later rule wins, so keep the order/u);
    expect(text).toContain(`\n/v2/alpine/manifests/*\n  Content-Type: ${OCI_INDEX}\n  Cache-Control: public, max-age=60\n  X-Content-Type-Options: nosniff\n`);
    expect(text).toContain(`\n/v2/alpine/manifests/sha256:*\n  Content-Type: ${OCI_MANIFEST}\n  Cache-Control: public, max-age=31536000, immutable\n  X-Content-Type-Options: nosniff\n`);
  });

  it('the writer takes the netlify option, and warns when even the compact form has too many rules', async () => {
    const out = fs.mkdtempSync(path.join(tmp, 'w-'));
    const small = await netlify.writer!.render(out, samplePaths());
    expect(small.files[0]!.text).not.toContain('/*');
    expect(small.warnings).toEqual([]);
    const forced = await netlify.writer!.render(out, samplePaths(), { headers: 'compact' });
    expect(forced.files[0]!.text).toContain('\n/v2/alpine/manifests/sha256:*\n');
    const many = await netlify.writer!.render(out, manyTags(20_000));
    expect(many.warnings).toEqual([]);
    expect(many.files[0]!.text.split('\n').filter((l) => l.startsWith('/'))).toHaveLength(1);
    // 10,000 exact rules of 4 headers: 5e8, about a second of Netlify's parser; 10,001 warn.
    expect(netlifyParseCost(planNetlifyRules(manyTags(10_000), { headers: 'exact' }))).toBe(NETLIFY_SLOW_COST);
    expect((await netlify.writer!.render(out, manyTags(10_000), { headers: 'exact' })).warnings).toEqual([]);
    const exact = await netlify.writer!.render(out, manyTags(10_001), { headers: 'exact' });
    expect(exact.warnings).toHaveLength(1);
    expect(exact.warnings[0]).toMatch(/^_headers has 10001 rules in the exact form .*"compact"/u);
    // Multi-platform: one 2-line rule per index; 10,000 indexes are fine, 16,000 are not.
    expect((await netlify.writer!.render(out, multiRepo('m', 10_000), { headers: 'compact' })).warnings).toEqual([]);
    const multi = await netlify.writer!.render(out, multiRepo('m', 16_000), { headers: 'compact' });
    expect(multi.warnings[0]).toMatch(/^_headers needs 16004 rules even in the compact form \(16001 exact rules: in multi-platform repositories one per index/u);
    for (const bad of [{ headers: 'small' }, { header: 'exact' }, 'compact', null]) {
      await expect(netlify.writer!.render(out, samplePaths(), bad), JSON.stringify(bad)).rejects.toThrow(/netlify host option must be \{ headers: "exact" \| "compact" \| "auto" \}/u);
    }
  });

  it('warns about a site rule that overlaps one of its pattern rules', () => {
    const generated = renderNetlifyHeaders(samplePaths(), { headers: 'compact' });
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

describe('the plugin option netlify: { headers }', () => {
  it('defaults to auto, takes exact and compact, and names the option when wrong', () => {
    expect(resolveOptions({}).netlify).toEqual({ headers: 'auto' });
    expect(resolveOptions({ netlify: {} }).netlify).toEqual({ headers: 'auto' });
    expect(resolveOptions({ netlify: { headers: 'compact' } }).netlify).toEqual({ headers: 'compact' });
    expect(resolveOptions({ netlify: { headers: 'exact' } }).netlify).toEqual({ headers: 'exact' });
    expect(() => resolveOptions({ netlify: { headers: 'small' as never } })).toThrow('[registrish] option "netlify.headers" must be one of "exact", "compact", "auto"');
    expect(() => resolveOptions({ netlify: { compact: true } as never })).toThrow('[registrish] unknown option "netlify.compact" (known: headers)');
    expect(() => resolveOptions({ netlify: 'compact' as never })).toThrow('[registrish] option "netlify" must be an object like { headers: "auto" }');
  });
});
