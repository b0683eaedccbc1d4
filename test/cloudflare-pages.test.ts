import { cp, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLIENTS, expectPull, hostSiteCases, sha, startHostSite, type HostSite } from './harness/host-site.ts';
import { startPagesDev, type PagesDev } from './harness/pages-dev.ts';
import { registryAnswersTests } from './harness/registry-answers.ts';
import { headersFor } from '../src/publish/headers.ts';
import { cloudflareRules, cloudflareWanted, renderCloudflareRules } from '../src/hosts/cloudflare.ts';

// The Cloudflare writer's output served by Cloudflare's own local Pages server (`wrangler pages
// dev`, test/harness/pages-dev.ts) to the four real pull clients: docker included, which needs the
// tag's Content-Length that the asset server does not send by itself.

let site: HostSite;
let pages: PagesDev;
// The same site with compact tags (what the writer switches to beyond 100 rules): one rule for all
// tags of a name depth, so no per-tag Docker-Content-Digest and no per-tag Content-Length. Written
// with the writer's own rules rather than seeding hundreds of tags, so the pulls stay quick.
let compact: PagesDev;

beforeAll(async () => {
  site = await startHostSite('cloudflare', 'cfp');
  const compactOut = path.join(site.runDir, 'compact-site');
  await cp(site.out, compactOut, { recursive: true });
  await writeFile(path.join(compactOut, '_headers'), renderCloudflareRules(cloudflareRules(site.summary.paths, 'compact')));
  [pages, compact] = await Promise.all([startPagesDev(site.out, site.runDir), startPagesDev(compactOut, path.join(site.runDir, 'compact-run'))]);
});

afterAll(async () => {
  await pages?.stop();
  await compact?.stop();
  await site?.stop();
});

describe('wrangler pages dev serves the generated _headers', () => {
  it('answers every published URL with its bytes and exactly headersFor(p); tags with their Content-Length on HEAD', async () => {
    for (const p of site.summary.paths) {
      const res = await fetch(pages.url + p.urlPath, { dispatcher: pages.dispatcher });
      expect(res.status, p.urlPath).toBe(200);
      for (const [name, value] of headersFor(p)) expect(res.headers.get(name), `${p.urlPath} ${name}`).toBe(value);
      const body = Buffer.from(await res.arrayBuffer());
      expect(body.length, p.urlPath).toBe(p.size);
      if (p.digest) expect(sha(body), p.urlPath).toBe(p.digest);
      if (p.kind === 'manifest' && !p.immutable) {
        const head = await fetch(pages.url + p.urlPath, { method: 'HEAD', dispatcher: pages.dispatcher });
        expect(head.headers.get('content-length'), p.urlPath).toBe(String(p.size));
      }
    }
  });

  it('the 404.html files answering for missing content are where Pages looks for them', async () => {
    expect(JSON.parse(await readFile(path.join(site.out, 'v2', 'oci', 'multi', 'manifests', '404.html'), 'utf8')).errors[0].code).toBe('MANIFEST_UNKNOWN');
    expect(JSON.parse(await readFile(path.join(site.out, 'v2', '404.html'), 'utf8')).errors[0].code).toBe('NAME_UNKNOWN');
  });
});

describe('Cloudflare Pages (wrangler pages dev): what a registry answers besides content', () => {
  registryAnswersTests(() => ({ base: pages.url, registry: `127.0.0.1:${pages.port}`, site, insecureTls: { dispatcher: pages.dispatcher } }), { digestErrorsTyped: false });
});

describe.each(CLIENTS)('%s pulls from wrangler pages dev', (client) => {
  it.each(hostSiteCases(() => site.fx).map((c) => [c.kind, c] as const))('%s', async (_kind, c) => {
    await expectPull(client, `127.0.0.1:${pages.port}`, c, site, { https: true });
  });
});

describe('compact tags on wrangler pages dev: no per-tag digest or length, and docker still pulls', () => {
  it('answers every published URL with exactly what the compact form promises', async () => {
    for (const p of site.summary.paths) {
      const res = await fetch(compact.url + p.urlPath, { method: 'HEAD', dispatcher: compact.dispatcher });
      expect(res.status, p.urlPath).toBe(200);
      for (const [name, value] of cloudflareWanted(p, 'compact')) expect(res.headers.get(name), `${p.urlPath} ${name}`).toBe(value);
      if (p.kind === 'manifest' && !p.immutable) expect(res.headers.get('docker-content-digest'), p.urlPath).toBeNull();
    }
  });

  // docker takes a tag's descriptor from a GET's body when the HEAD has no Docker-Content-Digest, and
  // then needs no Content-Length (with the digest present it refuses an answer without one).
  describe.each(CLIENTS)('%s', (client) => {
    it.each(hostSiteCases(() => site.fx).map((c) => [c.kind, c] as const))('%s', async (_kind, c) => {
      await expectPull(client, `127.0.0.1:${compact.port}`, c, site, { https: true });
    });
  });
});
