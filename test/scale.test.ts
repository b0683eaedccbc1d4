import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCheck } from '../src/check/run.ts';
import { mergeHeadersFile } from '../src/hosts/headers-file.ts';
import { planNetlifyRules, renderNetlifyHeaders } from '../src/hosts/netlify.ts';
import type { PublishedPath } from '../src/model/published-path.ts';
import { headersFor } from '../src/publish/headers.ts';
import { startPreviewServer, type PreviewServer } from '../src/serve/server.ts';
import { CLIENTS, expectPull, hostSiteCases, sha, startHostSite, type HostSite } from './harness/host-site.ts';

// The compact Netlify `_headers` (what a registry of tens of thousands of blobs gets: one rule per
// repository for its blobs, no per-blob Docker-Content-Digest) served by the preview server, which
// reads it with Netlify's own parser: every URL gets its headers, the four real clients pull every
// image kind, and `registrish check --host netlify` finds nothing to fail.

let site: HostSite;
let server: PreviewServer;

/** `/v2/<name>` of each repository whose blobs share a wildcard rule. */
let compactRepos: Set<string>;
const inCompactRule = (p: PublishedPath): boolean => p.kind === 'blob' && compactRepos.has(p.urlPath.replace(/\/blobs\/[^/]+$/u, ''));
/** headersFor(p), without the blob digest the compact form leaves out. */
const expected = (p: PublishedPath): Array<[string, string]> => headersFor(p).filter(([n]) => !(inCompactRule(p) && n === 'Docker-Content-Digest'));

beforeAll(async () => {
  site = await startHostSite('netlify', 'cmp');
  // This registry is small, so the build wrote the exact form: replace it with the compact one.
  const written = await readFile(path.join(site.out, '_headers'), 'utf8');
  expect(written).not.toContain('/blobs/*');
  await writeFile(path.join(site.out, '_headers'), mergeHeadersFile(written, renderNetlifyHeaders(site.summary.paths, { compact: true })).text);
  compactRepos = new Set(planNetlifyRules(site.summary.paths, { compact: true }).flatMap((r) => (r.path.endsWith('/blobs/*') ? [r.path.slice(0, -'/blobs/*'.length)] : [])));
  server = await startPreviewServer({ dir: site.out, port: 0, host: '127.0.0.1' });
});

afterAll(async () => {
  await server?.close();
  await site?.stop();
});

describe('the compact Netlify _headers, served by the preview server', () => {
  it('has one wildcard rule per repository with several blobs, and exact rules for the rest', () => {
    const rules = planNetlifyRules(site.summary.paths, { compact: true });
    const blobs = new Map<string, number>();
    for (const p of site.summary.paths.filter((x) => x.kind === 'blob')) {
      const repo = /^\/v2\/(.+)\/blobs\//u.exec(p.urlPath)![1]!;
      blobs.set(repo, (blobs.get(repo) ?? 0) + 1);
    }
    const grouped = [...blobs].filter(([, n]) => n > 1).map(([r]) => r);
    expect(grouped.length).toBeGreaterThan(3);
    expect(rules.filter((r) => r.path.endsWith('/blobs/*')).map((r) => r.path)).toEqual(grouped.sort().map((r) => `/v2/${r}/blobs/*`));
    const singles = [...blobs].filter(([, n]) => n === 1).length;
    expect(rules.length).toBe(site.summary.paths.filter((p) => p.kind !== 'blob').length + grouped.length + singles);
  });

  it('answers every published URL with headersFor(p) (grouped blobs without Docker-Content-Digest), on GET and HEAD', async () => {
    for (const p of site.summary.paths) {
      const get = await fetch(server.url + p.urlPath);
      expect(get.status, p.urlPath).toBe(200);
      for (const [name, value] of expected(p)) expect(get.headers.get(name), `${p.urlPath} ${name}`).toBe(value);
      if (inCompactRule(p)) expect(get.headers.get('docker-content-digest'), p.urlPath).toBeNull();
      const body = Buffer.from(await get.arrayBuffer());
      expect(body.length, p.urlPath).toBe(p.size);
      if (p.digest && p.kind !== 'referrers') expect(sha(body), p.urlPath).toBe(p.digest);
      const head = await fetch(server.url + p.urlPath, { method: 'HEAD' });
      expect(head.headers.get('content-type'), p.urlPath).toBe(p.contentType);
      expect(head.headers.get('content-length'), p.urlPath).toBe(String(p.size));
    }
  });

  it('registrish check --host netlify reports no failure', async () => {
    const report = await runCheck({ url: server.url, host: 'netlify' });
    const failures = report.rows.flatMap((r) => r.problems.filter((p) => p.severity === 'fail').map((p) => `${r.label}: ${p.message}`));
    expect(failures).toEqual([]);
    // Every blob was checked (HEAD and GET), and a missing blob digest is not even a warning.
    const blobRows = report.rows.filter((r) => r.label.startsWith('HEAD blob') || r.label.startsWith('GET  blob'));
    expect(blobRows.length).toBeGreaterThan(10);
    expect(blobRows.flatMap((r) => r.problems)).toEqual([]);
  });
});

describe.each(CLIENTS)('%s pulls through the compact _headers', (client) => {
  it.each(hostSiteCases(() => site.fx).map((c) => [c.kind, c] as const))('%s', async (_kind, c) => {
    await expectPull(client, `127.0.0.1:${server.port}`, c, site);
  });
});
