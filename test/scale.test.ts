import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCheck } from '../src/check/run.ts';
import { compactHeadersFor, planNetlifyRules } from '../src/hosts/netlify.ts';
import { startPreviewServer, type PreviewServer } from '../src/serve/server.ts';
import { CLIENTS, expectPull, hostSiteCases, sha, startHostSite, type HostSite, type PullCase } from './harness/host-site.ts';
import { startNetlifyParserServer, type NetlifyParserServer } from './harness/netlify-parser-server.ts';

// The compact Netlify `_headers` (`netlify: { headers: "compact" }`: pattern rules per repository,
// exact rules only where a URL differs, no Docker-Content-Digest), built for the standard image set
// and served with Netlify's semantics twice: by the preview server (`registrish serve`) and by a
// server that applies the rules of Netlify's own parser (test/harness/netlify-parser-server.ts).
// Every URL gets its headers, the four real clients pull every image kind by tag and the
// multi-platform ones by digest too, and `registrish check --host netlify` passes — and still
// fails a wrong Content-Type.

let site: HostSite;
let preview: PreviewServer;
let parser: NetlifyParserServer;

beforeAll(async () => {
  site = await startHostSite('netlify', 'cmp', { netlify: { headers: 'compact' } });
  preview = await startPreviewServer({ dir: site.out, port: 0, host: '127.0.0.1' });
  parser = await startNetlifyParserServer(site.out);
});

afterAll(async () => {
  await preview?.close();
  await parser?.close();
  await site?.stop();
});

const MULTI_PLATFORM = ['OCI index with attestation', 'Docker manifest list'];

/** The multi-platform cases by the digest of their index (known once the upstream is seeded). */
function byDigest(c: PullCase): PullCase {
  const name = c.ref.slice(0, c.ref.lastIndexOf(':'));
  return { ...c, kind: `${c.kind}, by digest`, get ref() { return `${name}@${c.top()}`; } };
}

/** The standard cases by tag, and the multi-platform ones by digest too. */
function cases(): PullCase[] {
  const byTag = hostSiteCases(() => site.fx);
  return [...byTag, ...byTag.filter((c) => MULTI_PLATFORM.includes(c.kind)).map(byDigest)];
}

describe('the compact Netlify _headers, as built', () => {
  it('has rules per repository and kind, and exact rules only where a URL differs', async () => {
    const text = await readFile(path.join(site.out, '_headers'), 'utf8');
    const rules = planNetlifyRules(site.summary.paths, { headers: 'compact' });
    expect(text).toContain(rules.map((r) => [r.path, ...r.headers.map(([n, v]) => `  ${n}: ${v}`)].join('\n')).join('\n\n'));
    expect(text).not.toMatch(/^\s+Docker-Content-Digest:/mu);
    const patterns = rules.filter((r) => r.path.includes('*'));
    const repos = new Set(site.summary.paths.filter((p) => p.kind === 'manifest').map((p) => p.urlPath.replace(/\/manifests\/[^/]+$/u, '')));
    // At most four per repository (manifests, by digest, blobs, referrers) and one for every tags/list.
    expect(patterns.length).toBeLessThanOrEqual(4 * repos.size + 1);
    expect(patterns.map((r) => r.path)).toContain('/v2/*/tags/list');
    expect(rules.length).toBeLessThan(site.summary.paths.length / 2);
  });

  it.each([
    ['the preview server', () => preview.url],
    ["a server applying Netlify's parser", () => parser.url],
  ])('%s answers every published URL with exactly its headers, on GET and HEAD', async (_name, url) => {
    for (const p of site.summary.paths) {
      const get = await fetch(url() + p.urlPath);
      expect(get.status, p.urlPath).toBe(200);
      for (const [name, value] of compactHeadersFor(p)) expect(get.headers.get(name), `${p.urlPath} ${name}`).toBe(value);
      expect(get.headers.get('docker-content-digest'), p.urlPath).toBeNull();
      const body = Buffer.from(await get.arrayBuffer());
      expect(body.length, p.urlPath).toBe(p.size);
      if (p.digest && p.kind !== 'referrers') expect(sha(body), p.urlPath).toBe(p.digest);
      const head = await fetch(url() + p.urlPath, { method: 'HEAD' });
      expect(head.headers.get('content-type'), p.urlPath).toBe(p.contentType);
      expect(head.headers.get('content-length'), p.urlPath).toBe(String(p.size));
    }
  });
});

describe.each(CLIENTS)('%s pulls through the compact _headers', (client) => {
  it.each(cases().map((c) => [c.kind, c] as const))('preview server: %s', async (_kind, c) => {
    await expectPull(client, `127.0.0.1:${preview.port}`, c, site);
  });
  it.each(cases().filter((c) => MULTI_PLATFORM.some((k) => c.kind.startsWith(k))).map((c) => [c.kind, c] as const))("Netlify's parser: %s", async (_kind, c) => {
    await expectPull(client, `127.0.0.1:${parser.port}`, c, site);
  });
});

describe('registrish check --host netlify on the compact form', () => {
  const failures = (report: Awaited<ReturnType<typeof runCheck>>) =>
    report.rows.flatMap((r) => r.problems.filter((p) => p.severity === 'fail').map((p) => `${r.label}: ${p.kind}: ${p.message}`));

  it('reports no failure; the missing Docker-Content-Digest is a warning that names what it costs', async () => {
    const report = await runCheck({ url: preview.url, host: 'netlify' });
    expect(failures(report)).toEqual([]);
    const problems = report.rows.flatMap((r) => r.problems);
    expect(problems.filter((p) => p.kind !== 'digest-header-missing')).toEqual([]);
    expect(problems.filter((p) => p.kind === 'digest-header-missing').length).toBeGreaterThan(5);
  });

  it('still fails a wrong Content-Type (the pattern rule of the platform manifests edited to application/json)', async () => {
    const file = path.join(site.out, '_headers');
    const good = await readFile(file, 'utf8');
    const bad = good.replace(/(\n\/v2\/oci\/multi\/manifests\/sha256:\*\n {2}Content-Type: )[^\n]+/u, '$1application/json');
    expect(bad).not.toBe(good);
    await writeFile(file, bad);
    try {
      const report = await runCheck({ url: preview.url, host: 'netlify' });
      const wrong = failures(report).filter((f) => f.includes('manifest-type'));
      expect(wrong.length).toBeGreaterThan(0);
      expect(wrong.join('\n')).toMatch(/oci\/multi/u);
    } finally {
      await writeFile(file, good);
    }
  });
});
