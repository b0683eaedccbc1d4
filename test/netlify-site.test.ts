import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NOT_FOUND_FILES } from '../src/publish/not-found.ts';
import { BEGIN_MARKER, END_MARKER } from '../src/hosts/headers-file.ts';
import { mergeRedirectsFile, renderNetlifyRedirects } from '../src/hosts/redirects-file.ts';
import { startPreviewServer, type PreviewServer } from '../src/serve/server.ts';
import { CLIENTS, expectPull, hostSiteCases, startHostSite, type HostSite } from './harness/host-site.ts';
import { startNetlifySite, type NetlifySite } from './harness/netlify-site.ts';
import { registryAnswersTests } from './harness/registry-answers.ts';

// The Netlify writer's output served with Netlify's own rule engines (test/harness/netlify-site.ts:
// netlify-redirector, @netlify/redirect-parser, @netlify/headers-parser) and by `registrish serve`,
// against the four real pull clients: the `_redirects` 404 rules give missing content the OCI
// error body and never shadow a published file; the site's own 404 page stays everywhere else.

const SITE_404 = '<!doctype html><title>Lost</title><p>The site’s own 404 page</p>\n';

let site: HostSite;
let netlify: NetlifySite;
let preview: PreviewServer;

beforeAll(async () => {
  site = await startHostSite('netlify', 'nls');
  await writeFile(path.join(site.out, '404.html'), SITE_404);
  netlify = await startNetlifySite(site.out);
  preview = await startPreviewServer({ dir: site.out, port: 0 });
});

afterAll(async () => {
  await netlify?.close();
  await preview?.close();
  await site?.stop();
});

describe('Netlify _redirects for missing registry content', () => {
  it('puts the 404 rules first, one pair per repository and a /v2/* catch-all, beside the error bodies', async () => {
    const text = await readFile(path.join(site.out, '_redirects'), 'utf8');
    const rules = text.split('\n').filter((l) => l.startsWith('/'));
    expect(rules.at(-1)).toBe(`/v2/*  /${NOT_FOUND_FILES.name}  404`);
    expect(rules).toContain(`/v2/a/b/c/manifests/*  /${NOT_FOUND_FILES.manifest}  404`);
    expect(rules).toContain(`/v2/oci/multi/blobs/*  /${NOT_FOUND_FILES.blob}  404`);
    for (const file of Object.values(NOT_FOUND_FILES)) expect(JSON.parse(await readFile(path.join(site.out, file), 'utf8'))).toHaveProperty('errors');
  });

  it("serves the site's own 404.html outside /v2/", async () => {
    const res = await fetch(`${netlify.url}/no/such/page`);
    expect(res.status).toBe(404);
    expect(await res.text()).toBe(SITE_404);
  });

  it('every published URL still answers 200 with its own bytes (no rule shadows a file)', async () => {
    for (const p of site.summary.paths) {
      const res = await fetch(netlify.url + p.urlPath);
      expect(res.status, p.urlPath).toBe(200);
      expect(res.headers.get('content-type'), p.urlPath).toBe(p.contentType);
      expect((await res.arrayBuffer()).byteLength, p.urlPath).toBe(p.size);
    }
  });
});

describe('mergeRedirectsFile', () => {
  const ours = renderNetlifyRedirects([{ comment: 'test', rules: [{ from: '/v2/*', to: '/x.json', status: 404 }] }]);

  it("puts our block first (Netlify uses the first matching rule), keeps the site's rules after it, and is idempotent", () => {
    const site = '/*  /index.html  200\n';
    const once = mergeRedirectsFile(site, ours);
    expect(once.startsWith(`${BEGIN_MARKER}\n`)).toBe(true);
    expect(once.endsWith(`${END_MARKER}\n\n${site}`)).toBe(true);
    expect(mergeRedirectsFile(once, ours)).toBe(once);
    expect(mergeRedirectsFile(undefined, ours)).toBe(`${BEGIN_MARKER}\n${ours}${END_MARKER}\n`);
  });

  it('replaces a previous block in place, and refuses to guess with broken markers', () => {
    const before = `/old  /new  301\n${BEGIN_MARKER}\n/v2/*  /stale.json  404\n${END_MARKER}\n/*  /index.html  200\n`;
    const text = mergeRedirectsFile(before, ours);
    expect(text).not.toContain('stale');
    expect(text.split('\n')[0]).toBe('/old  /new  301');
    expect(text.trimEnd().split('\n').at(-1)).toBe('/*  /index.html  200');
    expect(() => mergeRedirectsFile(`${BEGIN_MARKER}\n`, ours)).toThrow(/expected one of each/u);
  });
});

describe('Netlify semantics (netlify-redirector)', () => {
  registryAnswersTests(() => ({ base: netlify.url, registry: `127.0.0.1:${netlify.port}`, site }));
});

describe('registrish serve', () => {
  registryAnswersTests(() => ({ base: preview.url, registry: `127.0.0.1:${preview.port}`, site }));
});

// Two image kinds per client are enough here: every URL's answer is checked above, and
// test/e2e.test.ts pulls every kind through the same files with `registrish serve`.
describe.each(CLIENTS)('%s pulls from Netlify semantics', (client) => {
  it.each(hostSiteCases(() => site.fx).slice(0, 2).map((c) => [c.kind, c] as const))('%s', async (_kind, c) => {
    await expectPull(client, `127.0.0.1:${netlify.port}`, c, site);
  });
});
