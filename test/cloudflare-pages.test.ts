import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLIENTS, expectPull, hostSiteCases, sha, startHostSite, type HostSite } from './harness/host-site.ts';
import { startPagesDev, type PagesDev } from './harness/pages-dev.ts';
import { registryAnswersTests } from './harness/registry-answers.ts';
import { headersFor } from '../src/publish/headers.ts';

// The Cloudflare writer's output served by Cloudflare's own local Pages server (`wrangler pages
// dev`, test/harness/pages-dev.ts) to the four real pull clients: docker included, which needs the
// tag's Content-Length that the asset server does not send by itself.

let site: HostSite;
let pages: PagesDev;

beforeAll(async () => {
  site = await startHostSite('cloudflare', 'cfp');
  pages = await startPagesDev(site.out, site.runDir);
});

afterAll(async () => {
  await pages?.stop();
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
