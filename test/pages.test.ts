import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import v8 from 'node:v8';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RegistryData } from '../src/catalog/types.ts';
import { netlifyHost } from '../src/eleventy/plugin.ts';
import { oneByte } from '../src/pages/html.ts';
import { renderRepository } from '../src/pages/render.ts';
import { SCRIPT } from '../src/pages/script.ts';
import { STYLE } from '../src/pages/style.ts';
import { startPreviewServer, type PreviewServer } from '../src/serve/server.ts';
import { keyPair, seedSignedApp } from './harness/attachments.ts';
import { launchChromium } from './harness/browser.ts';
import { ctrPull, skopeoCopy, startContainerd, type Containerd } from './harness/clients.ts';
import { filesUnder } from './harness/fs-walk.ts';
import { makeLayer, MT, pushBlob, seedUpstream, sha256, tagManifest, type Fixtures } from './harness/images.ts';
import { makeTempDir, removeDir, run } from './harness/procs.ts';
import { startRegistry, type UpstreamRegistry } from './harness/upstream.ts';

// The site half: the default pages and the `registry` data, rendered by real Eleventy from the same
// build that writes v2/, served by the preview server and read in Debian's Chromium (axe-core for
// accessibility, in light and dark schemes, at desktop and phone width). The commands read from a
// page pull with skopeo and containerd.

const REPO = path.resolve(import.meta.dirname, '..');
const ELEVENTY = path.join(REPO, 'node_modules/@11ty/eleventy/cmd.cjs');
const AXE = createRequire(import.meta.url).resolve('axe-core/axe.min.js');

let dir: string;
let up: UpstreamRegistry;
let fx: Fixtures;
let site: string;
let out: string;
let serve: PreviewServer;
let browser: Browser;
let containerd: Containerd;
let data: RegistryData;
let pages: string[];

/** An image whose manifest carries OCI annotations and whose config carries labels, some hostile. */
async function pushAnnotated(): Promise<string> {
  const layer = makeLayer([{ name: 'app', content: 'annotated\n' }]);
  const config = Buffer.from(
    JSON.stringify({
      created: '2026-03-04T05:06:07Z',
      architecture: 'amd64',
      os: 'linux',
      config: { Labels: { 'org.opencontainers.image.licenses': 'Apache-2.0', 'com.example.note': '<script>window.__pwned=1</script>' } },
      rootfs: { type: 'layers', diff_ids: [layer.diffId] },
      history: [{ created: '2026-03-04T05:06:07Z', created_by: 'COPY app /app' }],
    }),
  );
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MT.ociManifest,
      config: { mediaType: MT.ociConfig, digest: sha256(config), size: config.length },
      layers: [{ mediaType: MT.ociLayerGzip, digest: layer.digest, size: layer.blob.length }],
      annotations: {
        'org.opencontainers.image.title': 'Annotated',
        'org.opencontainers.image.description': 'An image that says what it is <b>bold</b>',
        'org.opencontainers.image.source': 'javascript:alert(1)',
        'org.opencontainers.image.url': 'https://example.com/annotated',
        'org.opencontainers.image.version': '2.1.0',
        // Outside ASCII and the BMP: the pages write it as character references (oneByte).
        'com.example.note': 'Zoë Ångström — 日本語 🐳',
      },
    }),
  );
  for (const b of [config, layer.blob]) await pushBlob(up.url, 'tools/annotated', b);
  return tagManifest(up.url, 'tools/annotated', '2.1', manifest, MT.ociManifest);
}

beforeAll(async () => {
  dir = makeTempDir('rsh-pages-');
  up = await startRegistry({ storageDir: path.join(dir, 'storage') });
  const daemon = startContainerd();
  fx = await seedUpstream(up.url);
  await seedSignedApp(up.url, up.host, keyPair('ec'));
  await pushAnnotated();
  site = path.join(dir, 'site');
  out = path.join(site, '_site');
  await mkdir(path.join(site, 'src'), { recursive: true });
  await writeFile(path.join(site, 'package.json'), '{ "type": "module" }\n');
  await writeFile(path.join(site, 'src/index.md'), '# A site that serves images\n\nSee [the images](/images/).\n');
  // The site's own template reading the same data: here, all of it as JSON for the checks below.
  await writeFile(path.join(site, 'src/registry.11ty.js'), 'export const data = { permalink: "/registry.json" };\nexport function render(d) { return JSON.stringify(d.registry); }\n');
  await writeFile(
    path.join(site, 'eleventy.config.js'),
    `import registrish from ${JSON.stringify(path.join(REPO, 'dist/index.js'))};
export default function (eleventyConfig) {
  eleventyConfig.addPlugin(registrish, { cacheDir: '.cache/reg', pages: { title: 'Example registry' } });
  return { dir: { input: 'src', output: '_site' } };
}
`,
  );
  await writeFile(
    path.join(site, 'images.json'),
    JSON.stringify({
      images: [
        `${up.host}/oci/multi:1.0`,
        { source: `${up.host}/oci/multi:1.0`, name: 'deep/nested/path/multi', tags: ['1.0', 'stable'] },
        `${up.host}/docker/list:2.0`,
        { source: `${up.host}/docker/single`, tags: ['v1', 'v2'] },
        { source: `${up.host}/signed/app:1.0`, attachments: true },
        `${up.host}/tools/annotated:2.1`,
      ],
    }),
  );
  const r = await run(process.execPath, [ELEVENTY], { cwd: site, timeoutMs: 120_000, env: { ...process.env, NETLIFY: '', URL: '' } });
  expect(r.stdout).toMatch(/\[registrish\] 6 images, /u);
  data = JSON.parse(await readFile(path.join(out, 'registry.json'), 'utf8')) as RegistryData;
  pages = (await filesUnder(path.join(out, 'images'))).filter((f) => f.endsWith('.html')).map((f) => `/${path.relative(out, f).replace(/index\.html$/u, '')}`);
  serve = await startPreviewServer({ dir: out, port: 0 });
  browser = await launchChromium();
  containerd = await daemon;
}, 300_000);

afterAll(async () => {
  await browser?.close();
  await serve?.close();
  await containerd?.stop();
  await up?.stop();
  removeDir(dir);
});

/** A page in the browser, with every console error, page error and request to another origin recorded. */
async function open(url: string, opts: { scheme?: 'light' | 'dark'; width?: number; js?: boolean } = {}): Promise<{ page: Page; problems: string[] }> {
  const context = await browser.newContext({ colorScheme: opts.scheme ?? 'light', viewport: { width: opts.width ?? 1200, height: 900 }, javaScriptEnabled: opts.js ?? true });
  const page = await context.newPage();
  const problems: string[] = [];
  const origin = new URL(serve.url).origin;
  page.on('console', (m) => m.type() === 'error' && problems.push(`console: ${m.text()}`));
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('request', (req) => new URL(req.url()).origin !== origin && problems.push(`request to another origin: ${req.url()}`));
  const res = await page.goto(serve.url + url);
  expect(res?.status(), url).toBe(200);
  return { page, problems };
}

describe('the registry data templates read', () => {
  it('describes every repository, tag and platform, with sizes, dates, labels, annotations and the images.json entry', () => {
    expect(data.repositories.map((r) => r.name)).toEqual(['deep/nested/path/multi', 'docker/list', 'docker/single', 'oci/multi', 'signed/app', 'tools/annotated']);
    const multi = data.repositories.find((r) => r.name === 'oci/multi')!;
    expect(multi.url).toBe('/images/oci/multi/');
    expect(multi.platforms).toEqual(['linux/amd64', 'linux/arm64/v8']);
    const tag = multi.tags[0]!;
    expect(tag).toMatchObject({ name: '1.0', digest: fx['oci/multi:1.0']!.digest, index: true, url: `/images/oci/multi/manifests/${fx['oci/multi:1.0']!.digest.replace(':', '-')}/` });
    expect(tag.entry).toEqual({ index: 0, source: `${up.host}/oci/multi:1.0`, private: false, name: 'oci/multi', tags: ['1.0'] });
    // The attestation manifest is not a platform.
    expect(tag.platforms.map((p) => p.platform)).toEqual(['linux/amd64', 'linux/arm64/v8']);
    const amd = tag.platforms[0]!;
    const f = fx['oci/multi:1.0']!.platforms.find((p) => p.platform === 'linux/amd64')!;
    expect(amd.digest).toBe(f.digest);
    expect(amd.layers.map((l) => l.digest)).toEqual(f.layerDigests);
    expect(amd.size).toBe(amd.config.size + amd.layers.reduce((n, l) => n + l.size, 0));
    expect(amd.created).toBe('1970-01-01T00:00:00Z');
    expect(multi.size).toBe(Math.max(...tag.platforms.map((p) => p.size)));

    const annotated = data.repositories.find((r) => r.name === 'tools/annotated')!;
    expect(annotated.description).toBe('An image that says what it is <b>bold</b>');
    expect(annotated.updated).toBe('2026-03-04T05:06:07Z');
    expect(annotated.tags[0]!.info).toEqual({
      title: 'Annotated',
      description: 'An image that says what it is <b>bold</b>',
      source: 'javascript:alert(1)',
      licenses: 'Apache-2.0',
      version: '2.1.0',
      url: 'https://example.com/annotated',
    });
    expect(annotated.tags[0]!.platforms[0]!.layers[0]!.createdBy).toBe('COPY app /app');
    const signed = data.repositories.find((r) => r.name === 'signed/app')!;
    // Attachments are listed with their image, not as tags of their own.
    expect(signed.tags.map((t) => t.name)).toEqual(['1.0']);
    expect(signed.tags[0]!.attachments.tags).toEqual([`${signed.tags[0]!.digest.replace(':', '-')}.sig`, `${signed.tags[0]!.platforms[0]!.digest.replace(':', '-')}.att`].sort());
    expect(signed.tags[0]!.attachments.referrers).toBe(2);
  });
});

describe('the default pages', () => {
  it('a catalog, a page per repository and per image (names with slashes too), each well under 100 KB, none inside /v2/', async () => {
    const want = ['/images/', ...data.repositories.flatMap((r) => [r.url!, ...new Set(r.tags.map((t) => t.url!))])];
    expect(pages.sort()).toEqual(want.sort());
    // Two tags of one image share its page.
    const nested = data.repositories.find((r) => r.name === 'deep/nested/path/multi')!;
    expect(nested.tags.map((t) => t.url)).toEqual([`/images/deep/nested/path/multi/manifests/${fx['oci/multi:1.0']!.digest.replace(':', '-')}/`, nested.tags[0]!.url]);
    for (const p of pages) expect((await stat(path.join(out, p, 'index.html'))).size, p).toBeLessThan(100 * 1024);
    const inV2 = (await filesUnder(path.join(out, 'v2'))).filter((f) => f.endsWith('.html') && !f.endsWith('v2/index.html'));
    expect(inV2).toEqual([]);
  });

  it('in Chromium: no console error, no request to another origin, every link resolves, axe finds no violation (light and dark)', async () => {
    const axe = await readFile(AXE, 'utf8');
    const links = new Set<string>();
    // Every page is loaded; axe runs on each kind of page (catalog, repository, tags, tag; with
    // hostile metadata and a multi-platform index) in both schemes: pages of one kind differ only in data.
    const image = (name: string) => data.repositories.find((r) => r.name === name)!.tags[0]!.url!;
    const kinds = ['/images/', '/images/oci/multi/', image('oci/multi'), image('deep/nested/path/multi'), image('tools/annotated')];
    const runs = [...pages.map((url) => [url, 'light'] as const), ...kinds.map((url) => [url, 'dark'] as const)];
    for (const [url, scheme] of runs) {
      const { page, problems } = await open(url, { scheme });
      if (kinds.includes(url)) {
        await page.addScriptTag({ content: axe });
        const violations = await page.evaluate(async () => {
          const result = await (window as unknown as { axe: { run(o: unknown): Promise<{ violations: Array<{ id: string; nodes: Array<{ target: unknown }> }> }> } }).axe.run({ resultTypes: ['violations'] });
          return result.violations.map((v) => `${v.id}: ${JSON.stringify(v.nodes.map((n) => n.target))}`);
        });
        expect(violations, `${url} (${scheme})`).toEqual([]);
      }
      for (const href of await page.$$eval('a[href]', (as) => as.map((a) => (a as HTMLAnchorElement).href))) links.add(href.replace(/#.*$/u, ''));
      expect(problems, url).toEqual([]);
      // The hostile label stays text.
      expect(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).toBeUndefined();
      await page.context().close();
    }
    const origin = new URL(serve.url).origin;
    const internal = [...links].filter((l) => l.startsWith(origin));
    for (const l of internal) expect((await fetch(l)).status, l).toBe(200);
    // Every page is linked from another one.
    expect(pages.filter((p) => p !== '/images/' && !internal.includes(origin + p))).toEqual([]);
    // Only the image's own https URL leaves the site; the `javascript:` source is not a link.
    expect([...links].filter((l) => !l.startsWith(origin))).toEqual(['https://example.com/annotated']);
  });

  it('the pull commands read from a page pull with skopeo and containerd', async () => {
    const nested = data.repositories.find((r) => r.name === 'deep/nested/path/multi')!;
    const { page, problems } = await open(nested.tags[0]!.url!);
    const command = async (label: string, n = 0) => (await page.locator(`.cmd[data-label^="${label} "] code`).nth(n).innerText()).trim();
    const host = new URL(serve.url).host;
    // The page's other tag, by its own command.
    expect(await command('docker, stable')).toBe(`docker pull ${host}/deep/nested/path/multi:stable`);
    const podman = await command('podman');
    expect(podman).toBe(`podman pull --tls-verify=false ${host}/deep/nested/path/multi:1.0`);
    const ref = podman.split(' ').at(-1)!;
    const want = fx['oci/multi:1.0']!;
    expect((await skopeoCopy(ref, { arch: 'amd64' })).manifestDigest).toBe(want.platforms.find((p) => p.platform === 'linux/amd64')!.digest);
    // The ctr line as shown, with the test daemon's socket (and its snapshotter) added.
    const ctr = (await command('ctr')).split(' ');
    expect(ctr.slice(0, 4)).toEqual(['ctr', 'image', 'pull', '--plain-http']);
    const pulled = await run('ctr', ['--address', containerd.address, '--namespace', 'pages', ...ctr.slice(1, -1), '--snapshotter', 'native', ctr.at(-1)!], { timeoutMs: 120_000 });
    expect(pulled.stdout + pulled.stderr).toMatch(/unpacking linux\/amd64/u);
    // By digest: the second set of commands.
    const byDigest = (await command('ctr', 1)).split(' ').at(-1)!;
    expect(byDigest).toBe(`${host}/deep/nested/path/multi@${want.digest}`);
    expect((await ctrPull(containerd.address, byDigest)).digest).toBe(want.digest);
    expect(problems).toEqual([]);
    await page.context().close();
  });

  it('without JavaScript: a visible placeholder, selectable commands, no dead buttons; at phone width nothing overflows', async () => {
    const { page } = await open('/images/oci/multi/', { js: false, width: 375 });
    const cmd = page.locator('.cmd code').first();
    expect(await cmd.innerText()).toBe('docker pull your-registry-host/oci/multi:1.0');
    expect(await page.locator('[data-host-note]').first().isVisible()).toBe(true);
    expect(await cmd.evaluate((e) => getComputedStyle(e).userSelect)).toBe('all');
    expect(await page.locator('.cmd button').count()).toBe(0);
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(375);
    await page.context().close();
    // With JavaScript the host is filled in and every command gets a copy button.
    const withJs = await open('/images/oci/multi/', { width: 375 });
    expect(await withJs.page.locator('.cmd code').first().innerText()).toBe(`docker pull ${new URL(serve.url).host}/oci/multi:1.0`);
    expect(await withJs.page.locator('.cmd button').count()).toBe(await withJs.page.locator('.cmd').count());
    expect(await withJs.page.locator('[data-host-note]').first().isVisible()).toBe(false);
    await withJs.page.context().close();
  });

  it('image metadata shows as text: annotations, labels, layer commands; only http(s) sources become links', async () => {
    const { page, problems } = await open(data.repositories.find((r) => r.name === 'tools/annotated')!.tags[0]!.url!);
    const text = await page.locator('main').innerText();
    expect(text).toContain('An image that says what it is <b>bold</b>');
    expect(text).toContain('<script>window.__pwned=1</script>');
    expect(text).toContain('COPY app /app');
    expect(text).toContain('Apache-2.0');
    expect(text).toContain('Zoë Ångström — 日本語 🐳');
    expect(await page.title()).toMatch(/^tools\/annotated:2\.1 — /u);
    // Every page is ASCII on disk (one byte a character in memory while Eleventy holds it).
    const html = await (await fetch(new URL(page.url()))).text();
    expect(html).toContain('Zo&#235;');
    expect([...html].filter((c) => c.charCodeAt(0) > 0x7f)).toEqual([]);
    expect(await page.locator('a[href^="javascript:"]').count()).toBe(0);
    expect(await page.locator('svg.chart title').first().textContent()).toMatch(/^1 layer, .* in all; the largest is layer 1/u);
    expect(problems).toEqual([]);
    await page.context().close();
  });

  it('screenshots of the catalog and a repository page (docs/screenshots with REGISTRISH_SCREENSHOTS=docs)', async () => {
    const target = process.env.REGISTRISH_SCREENSHOTS === 'docs' ? path.join(REPO, 'docs/screenshots') : path.join(dir, 'shots');
    await mkdir(target, { recursive: true });
    for (const [name, url] of [['catalog', '/images/'], ['repository', '/images/oci/multi/']] as const) {
      const { page } = await open(url, { width: 1000 });
      const file = path.join(target, `${name}.png`);
      await page.screenshot({ path: file, fullPage: true });
      expect((await stat(file)).size).toBeGreaterThan(10_000);
      await page.context().close();
    }
  });
});

describe('the registry host in commands', () => {
  it('a known host is written into the commands, with no placeholder and no plain-HTTP flags', async () => {
    const repo = data.repositories.find((r) => r.name === 'oci/multi')!;
    const html = renderRepository({ ...data, host: 'registry.example.com' }, repo, { path: '/images/', standalone: true, title: 'x' });
    expect(html).toContain('docker pull registry.example.com/oci/multi:1.0');
    expect(html).toContain('podman pull registry.example.com/oci/multi:1.0');
    expect(html).not.toContain('your-registry-host');
    expect(html).not.toContain('<span data-plain-http');
  });

  it("comes from Netlify's URL in a Netlify build only", () => {
    expect(netlifyHost({ NETLIFY: 'true', URL: 'https://my-site.netlify.app' })).toBe('my-site.netlify.app');
    expect(netlifyHost({ URL: 'https://my-site.netlify.app' })).toBeUndefined();
    expect(netlifyHost({ NETLIFY: 'true', URL: 'not a url' })).toBeUndefined();
  });
});


describe('page HTML in memory', () => {
  it('is ASCII and one byte a character, even from two-byte text (Eleventy keeps every page until the build ends)', () => {
    // How V8 holds a string, read from its serializer: tag '"' one byte a character, 'c' two.
    const encoding = (x: string) => ({ '"': 'one-byte', c: 'two-byte' })[String.fromCharCode(v8.serialize(x).subarray(2).find((b) => b !== 0)!)];
    const page = '<p>Zo\u00eb \u2014 \u65e5\u672c\u8a9e \u{1f433}</p>'.repeat(1000);
    expect(encoding(page)).toBe('two-byte');
    const out = oneByte(page);
    expect(out.startsWith('<p>Zo&#235; &#8212; &#26085;&#26412;&#35486; &#128051;</p><p>')).toBe(true);
    expect(encoding(out)).toBe('one-byte');
    // Why the copy: a replace alone leaves an ASCII text two bytes a character.
    expect(encoding(page.replace(/[^\x00-\x7f]/gu, '?'))).toBe('two-byte');
  });

  it('leaves the inline stylesheet and script as they are: they are ASCII (a reference in <style> or <script> would not be decoded)', () => {
    expect(STYLE).toMatch(/^[\x00-\x7f]*$/u);
    expect(SCRIPT).toMatch(/^[\x00-\x7f]*$/u);
  });
});
