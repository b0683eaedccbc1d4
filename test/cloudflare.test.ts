import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildRegistry, type BuildSummary } from '../src/build.ts';
import { createHash } from 'node:crypto';
import { CLOUDFLARE_404, CLOUDFLARE_MAX_RULES, checkCloudflare, cloudflareMergedProblem, cloudflareRules, cloudflareTagsFor, cloudflareWanted, parseCloudflareHeaders, planCloudflareRules, renderCloudflare } from '../src/hosts/cloudflare.ts';
import { headersFor } from '../src/publish/headers.ts';
import { renderNetlifyHeaders } from '../src/hosts/netlify.ts';
import { seedUpstream } from './harness/images.ts';
import { keyPair, seedSignedApp } from './harness/attachments.ts';
import { makeTempDir, removeDir } from './harness/procs.ts';
import { startRegistry, type UpstreamRegistry } from './harness/upstream.ts';
import { type PublishedPath } from '../src/model/published-path.ts';

// The generated `_headers` checked against Pages' own rules at scale and at the limits, re-implemented
// below independently of src/hosts/cloudflare.ts from workers-sdk's packages/pages-shared:
// metadata-generator/parseHeaders.ts (100 rules, 2,000-character lines, `! Name` unsets, names
// lower-cased, repeated names in one rule joined with ", "), asset-server/rulesEngine.ts (`*` →
// `(?<splat>.*)`, then `:name` → `(?<name>[^/]+)`, anchored, case-sensitive; an invalid RegExp drops
// the rule), and asset-server/handler.ts (every matching rule in file order; unset, then set, or
// append when an earlier rule already set the name; `:name` in values replaced). Cloudflare's own
// local Pages server, `wrangler pages dev`, serves a build to the four real clients in
// test/cloudflare-pages.test.ts.

interface Rule {
  path: string;
  set: Record<string, string>;
  unset: string[];
}

function parsePagesHeaders(text: string): { rules: Rule[]; invalid: string[] } {
  const rules: Rule[] = [];
  const invalid: string[] = [];
  let rule: Rule | undefined;
  const flush = () => {
    if (rule && (Object.keys(rule.set).length || rule.unset.length)) rules.push(rule);
    else if (rule) invalid.push(`no headers: ${rule.path}`);
  };
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    if (line.length > 2000) {
      invalid.push('line too long');
      continue;
    }
    if (/^([^\s]+:\/\/|^\/)/u.test(line)) {
      if (rules.length >= 100) {
        invalid.push('more than 100 rules');
        break;
      }
      flush();
      rule = { path: new URL(`//${line}`, 'relative://').pathname, set: {}, unset: [] };
      continue;
    }
    if (!line.includes(':')) {
      if (rule && line.startsWith('! ')) rule.unset.push(line.slice(2));
      else invalid.push(line);
      continue;
    }
    const [rawName, ...rawValue] = line.split(':');
    const name = rawName!.trim().toLowerCase();
    const value = rawValue.join(':').trim();
    if (!rule || !name || !value || name.includes(' ')) {
      invalid.push(line);
      continue;
    }
    rule.set[name] = rule.set[name] ? `${rule.set[name]}, ${value}` : value;
  }
  flush();
  return { rules, invalid };
}

function pagesRegExp(rulePath: string): RegExp | undefined {
  let r = rulePath.split('*').map((s) => s.replace(/[-/\\^$*+?.()|[\]{}]/g, '\\$&')).join('(?<splat>.*)');
  for (const m of r.matchAll(/:([A-Za-z]\w*)/g)) r = r.split(m[0]).join(`(?<${m[1]}>[^/]+)`);
  try {
    return new RegExp(`^${r}$`);
  } catch {
    return undefined;
  }
}

function pagesResponseHeaders(rules: Rule[], urlPath: string): Headers {
  // Pages' own defaults for an extension-less asset; every rule below must override them.
  const headers = new Headers({ 'content-type': 'application/octet-stream', 'x-content-type-options': 'nosniff' });
  const { pathname } = new URL(`https://example.pages.dev${urlPath}`);
  const seen = new Set<string>();
  for (const r of rules) {
    const m = pagesRegExp(r.path)?.exec(pathname);
    if (!m) continue;
    for (const n of r.unset) headers.delete(n);
    for (const [n, v0] of Object.entries(r.set)) {
      let v = v0;
      for (const [k, val] of Object.entries(m.groups ?? {})) v = v.replaceAll(`:${k}`, val ?? '');
      if (seen.has(n)) headers.append(n, v);
      else {
        headers.set(n, v);
        seen.add(n);
      }
    }
  }
  return headers;
}

let storage: string;
let project: string;
let out: string;
let up: UpstreamRegistry;
let summary: BuildSummary;

beforeAll(async () => {
  storage = makeTempDir('rsh-up-');
  project = makeTempDir('rsh-cf-');
  out = path.join(project, '_site');
  up = await startRegistry({ storageDir: storage });
  await seedUpstream(up.url);
  await seedSignedApp(up.url, up.host, keyPair('ec'));
  const images = {
    images: [
      { source: `${up.host}/signed/app:1.0`, attachments: true },
      { source: `${up.host}/signed/app:1.0`, name: 'x/y/signed', attachments: true },
      `${up.host}/oci/multi:1.0`,
      `${up.host}/docker/list:2.0`,
      `${up.host}/a/b/c`,
      { source: `${up.host}/docker/single`, tags: ['v1', 'v2'] },
      { source: `${up.host}/oci/single:1.0`, tags: ['1.0', 'Release.1.0-RC_1'] },
      { source: `${up.host}/oci/multi:1.0`, name: 'x/y/z/w/deep', tags: ['1.0'] },
    ],
  };
  await writeFile(path.join(project, 'images.json'), JSON.stringify(images, null, 2));
  summary = await buildRegistry({
    images: path.join(project, 'images.json'),
    outputDir: out,
    cacheDir: path.join(project, '.cache', 'registrish'),
    hosts: ['cloudflare'],
    imageConcurrency: 4,
    blobConcurrency: 6,
    linkMode: 'hardlink',
    logger: { info: () => {}, warn: () => {} },
    env: { DOCKER_CONFIG: path.join(project, 'no-docker-config') },
  });
});

afterAll(async () => {
  await up?.stop();
  removeDir(storage);
  removeDir(project);
});

describe('Cloudflare Pages _headers', () => {
  it('fits Pages limits and parses without an invalid line', async () => {
    const text = await readFile(path.join(out, '_headers'), 'utf8');
    const { rules, invalid } = parsePagesHeaders(text);
    expect(invalid).toEqual([]);
    expect(rules.length).toBeLessThanOrEqual(CLOUDFLARE_MAX_RULES);
    // Far fewer rules than URLs: blobs and digest manifests are grouped.
    expect(rules.length).toBeLessThan(summary.paths.length / 2);
    for (const r of rules) expect(pagesRegExp(r.path), r.path).toBeDefined();
  });

  it('gives every published URL exactly headersFor(p), Docker-Content-Digest of blobs included', async () => {
    const { rules } = parsePagesHeaders(await readFile(path.join(out, '_headers'), 'utf8'));
    for (const p of summary.paths) {
      const got = pagesResponseHeaders(rules, p.urlPath);
      for (const [name, value] of headersFor(p)) expect(got.get(name), `${p.urlPath} ${name}`).toBe(value);
      if (!headersFor(p).some(([n]) => n === 'Docker-Content-Digest')) expect(got.get('docker-content-digest'), p.urlPath).toBeNull();
      if (p.kind !== 'base') expect(got.get('docker-distribution-api-version'), p.urlPath).toBeNull();
    }
  });

  it('gives each tag its Content-Length and a missing tag or repository the error type, at no extra rule', async () => {
    const { rules } = parsePagesHeaders(await readFile(path.join(out, '_headers'), 'utf8'));
    for (const p of summary.paths.filter((x) => x.kind === 'manifest' && !x.immutable)) {
      expect(pagesResponseHeaders(rules, p.urlPath).get('content-length'), p.urlPath).toBe(String(p.size));
    }
    for (const missing of ['/v2/oci/multi/manifests/typo', '/v2/x/y/z/w/deep/manifests/typo', '/v2/nosuch/tags/list']) {
      expect(pagesResponseHeaders(rules, missing).get('content-type'), missing).toBe('application/json');
    }
    expect(cloudflareRules(summary.paths)).toHaveLength(planCloudflareRules(summary.paths).length);
  });

  it('the matcher has teeth: Netlify\'s one-literal-rule-per-URL file would give wrong headers on Pages', () => {
    // `sha256:<hex starting with a letter>` reads as a placeholder, so such a rule matches every
    // digest of its folder and Content-Types get comma-joined.
    const { rules } = parsePagesHeaders(renderNetlifyHeaders(summary.paths));
    const wrong = summary.paths.filter((p) => pagesResponseHeaders(rules, p.urlPath).get('content-type') !== p.contentType);
    expect(wrong.length).toBeGreaterThan(0);
  });

  it('writes a top-level 404.html (else a missing blob answers the home page with 200), keeping the site\'s own', async () => {
    expect(await readFile(path.join(out, CLOUDFLARE_404), 'utf8')).toMatch(/404/u);
    const site = makeTempDir('rsh-cf2-');
    try {
      await writeFile(path.join(site, CLOUDFLARE_404), '<p>mine</p>');
      await writeFile(path.join(site, '_headers'), '/assets/*\n  Cache-Control: max-age=9\n');
      const r = await renderCloudflare(site, summary.paths);
      expect(r.files.map((f) => f.file).filter((f) => !f.startsWith('v2/'))).toEqual(['_headers']);
      const text = r.files[0]!.text;
      expect(text.startsWith('/assets/*\n  Cache-Control: max-age=9\n')).toBe(true);
      expect(text).toContain('# registrish:begin');
    } finally {
      removeDir(site);
    }
  });

  it('a site\'s own rules count against the 100 rules', async () => {
    const site = makeTempDir('rsh-cf3-');
    try {
      const own = Array.from({ length: 99 }, (_, i) => `/page${i}\n  X-Mine: ${i}\n`).join('');
      await writeFile(path.join(site, '_headers'), own);
      await expect(renderCloudflare(site, summary.paths)).rejects.toThrow(/at most 100/u);
    } finally {
      removeDir(site);
    }
  });

  it('a site rule that overlaps registry headers is a build error naming the rule and a URL', async () => {
    const site = makeTempDir('rsh-cf4-');
    try {
      const repo = summary.paths.find((p) => p.kind === 'manifest')!.urlPath.split('/')[2]!;
      await writeFile(path.join(site, '_headers'), `/index.html\n  X-Frame-Options: DENY\n\n/v2/${repo}/*\n  Cache-Control: no-store\n`);
      await expect(renderCloudflare(site, summary.paths)).rejects.toThrow(new RegExp(`"/v2/${repo}/\\*" \\(line 4\\).*e\\.g\\. /v2/${repo}/`, 'su'));
    } finally {
      removeDir(site);
    }
  });

  it('a site rule that does not touch /v2/ still passes, and Pages\' parser agrees with the merged file', async () => {
    const site = makeTempDir('rsh-cf5-');
    try {
      await writeFile(path.join(site, '_headers'), '/index.html\n  X-Frame-Options: DENY\n');
      const r = await renderCloudflare(site, summary.paths);
      const text = r.files[0]!.text;
      expect(text).toContain('X-Frame-Options: DENY');
      expect(parseCloudflareHeaders(text).map((x) => x.path)).toEqual(parsePagesHeaders(text).rules.map((x) => x.path));
      expect(cloudflareMergedProblem(text, planCloudflareRules(summary.paths), summary.paths)).toBeUndefined();
    } finally {
      removeDir(site);
    }
  });
});

describe('Cloudflare limits in check()', () => {
  const manifest = (repo: string, tag: string, i: number): PublishedPath => ({
    urlPath: `/v2/${repo}/manifests/${tag}`,
    file: `v2/${repo}/manifests/${tag}`,
    kind: 'manifest',
    contentType: 'application/vnd.oci.image.manifest.v1+json',
    digest: `sha256:${i.toString(16).padStart(64, '0')}`,
    size: 100,
    immutable: false,
  });

  it('the built registry passes', () => {
    expect(checkCloudflare(summary.paths)).toEqual({ errors: [], warnings: [] });
  });

  it('more tags than 100 rules at one rule each: compact tags carry them (their digests are not in the tag rules)', () => {
    const many = [...summary.paths, ...Array.from({ length: 120 }, (_, i) => manifest(i % 2 ? 'big/one' : 'big/two', `t${i}`, i))];
    expect(planCloudflareRules(many, { tags: 'exact' }).length).toBeGreaterThan(CLOUDFLARE_MAX_RULES);
    expect(checkCloudflare(many).errors).toEqual([]);
    expect(planCloudflareRules(many, { tags: 'compact' }).length).toBeLessThanOrEqual(CLOUDFLARE_MAX_RULES);
  });

  it('a file over 25 MiB: an error naming the image', () => {
    const big: PublishedPath = { urlPath: `/v2/huge/blobs/sha256:${'a'.repeat(64)}`, file: `v2/huge/blobs/sha256:${'a'.repeat(64)}`, kind: 'blob', contentType: 'application/octet-stream', digest: `sha256:${'a'.repeat(64)}`, size: 26 * 1024 * 1024, immutable: true };
    expect(checkCloudflare([...summary.paths, big]).errors.join('\n')).toMatch(/25 MiB.*huge/su);
  });

  it('more than 20,000 files: an error', () => {
    const blobs: PublishedPath[] = Array.from({ length: 20_000 }, (_, i) => {
      const d = `sha256:${i.toString(16).padStart(64, '0')}`;
      return { urlPath: `/v2/many/blobs/${d}`, file: `v2/many/blobs/${d}`, kind: 'blob', contentType: 'application/octet-stream', digest: d, size: 1, immutable: true };
    });
    expect(checkCloudflare([...summary.paths, ...blobs]).errors.join('\n')).toMatch(/at most 20000 files/u);
  });

  it('tags Pages would redirect (…/index, ….html): an error', () => {
    const { errors } = checkCloudflare([...summary.paths, manifest('r', 'index', 1), manifest('r', 'page.html', 2)]);
    expect(errors.filter((e) => /redirects/u.test(e))).toHaveLength(2);
  });

  it('paths under a repository named like a blob folder are still exact, or refused', () => {
    // A repository "foo/blobs" puts its tags/list under /v2/foo/blobs/…: the grouped blob rule
    // of depth 1 must not give it a blob's headers — it does not, since that rule needs "sha256:".
    const tags: PublishedPath = { urlPath: '/v2/foo/blobs/tags/list', file: 'v2/foo/blobs/tags/list', kind: 'tags', contentType: 'application/json', size: 10, immutable: false };
    expect(checkCloudflare([...summary.paths, tags]).errors).toEqual([]);
  });
});

describe('Cloudflare compact tags (one rule for every tag of a name depth)', () => {
  const d = (i: number, salt: string): string => `sha256:${createHash('sha256').update(`${salt}${i}`).digest('hex')}`;
  /** `n` more tags of an existing single-platform repository, each its own manifest. */
  const moreTags = (repo: string, n: number, type = 'application/vnd.oci.image.manifest.v1+json'): PublishedPath[] =>
    Array.from({ length: n }, (_, i) => {
      const digest = d(i, `${repo}/${type}`);
      const m = { kind: 'manifest' as const, contentType: type, digest, size: 100 };
      return [
        { ...m, urlPath: `/v2/${repo}/manifests/more${i}`, file: `v2/${repo}/manifests/more${i}`, immutable: false },
        { ...m, urlPath: `/v2/${repo}/manifests/${digest}`, file: `v2/${repo}/manifests/${digest}`, immutable: true },
      ];
    }).flat();

  it('carries hundreds of tags in a few rules, every URL getting exactly its headers (tags without their digest)', async () => {
    const paths = [...summary.paths, ...moreTags('oci/single', 300), ...moreTags('docker/single', 200, 'application/vnd.docker.distribution.manifest.v2+json'), ...moreTags('x/y/z/w/deep', 5)];
    expect(planCloudflareRules(paths, { tags: 'exact' }).length).toBeGreaterThan(500);
    expect(cloudflareTagsFor(paths)).toBe('compact');
    const { errors, warnings } = checkCloudflare(paths);
    expect(errors).toEqual([]);
    expect(warnings).toEqual([]);
    const site = makeTempDir('rsh-cf6-');
    try {
      const text = (await renderCloudflare(site, paths)).files[0]!.text;
      const { rules, invalid } = parsePagesHeaders(text);
      expect(invalid).toEqual([]);
      expect(rules.length).toBeLessThanOrEqual(CLOUDFLARE_MAX_RULES);
      expect(rules.map((r) => r.path)).toContain('/v2/:r1_/:r2_/manifests/:t_');
      for (const p of paths) {
        const got = pagesResponseHeaders(rules, p.urlPath);
        for (const [name, value] of cloudflareWanted(p, 'compact')) expect(got.get(name), `${p.urlPath} ${name}`).toBe(value);
        if (p.kind === 'manifest' && !p.immutable) expect(got.get('docker-content-digest'), p.urlPath).toBeNull();
        if (p.kind === 'manifest' && p.immutable) expect(got.get('docker-content-digest'), p.urlPath).toBe(p.digest);
      }
    } finally {
      removeDir(site);
    }
  });

  it('stays exact (a rule per tag, with its digest) while that fits 100 rules', () => {
    expect(cloudflareTagsFor(summary.paths)).toBe('exact');
    expect(planCloudflareRules(summary.paths).length).toBe(planCloudflareRules(summary.paths, { tags: 'exact' }).length);
  });

  it('still refuses what does not fit, naming the manifests that need their own rule', () => {
    // Multi-platform: every index's type differs from its platform manifests' — one rule each.
    const indexes = Array.from({ length: 120 }, (_, i) => {
      const digest = d(i, 'idx');
      const m = { kind: 'manifest' as const, contentType: 'application/vnd.oci.image.index.v1+json', digest, size: 100 };
      return [
        { ...m, urlPath: `/v2/multi/manifests/t${i}`, file: `v2/multi/manifests/t${i}`, immutable: false },
        { ...m, urlPath: `/v2/multi/manifests/${digest}`, file: `v2/multi/manifests/${digest}`, immutable: true },
      ];
    }).flat();
    const children = moreTags('multi', 240).filter((p) => p.immutable);
    const { errors } = checkCloudflare([...summary.paths, ...indexes, ...children]);
    expect(errors.join('\n')).toMatch(/at most 100\. 1\d\d of them are for manifests whose type differs .*one per index\), in .*multi/su);
  });
});
