import { spawn } from 'node:child_process';
import { cp, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { matchHeaders, loadHeaderRules } from '../src/serve/header-rules.ts';
import { makeTempDir, removeDir, run, waitFor } from './harness/procs.ts';

// The plugin inside real Eleventy 3, as users run it: this repository's own config
// (`npx eleventy`, offline, from the shipped images.json) and another site that imports
// the package entry.

const REPO = path.resolve(import.meta.dirname, '..');
const ELEVENTY = path.join(REPO, 'node_modules/@11ty/eleventy/cmd.cjs');

let tmp: string;
beforeAll(() => {
  tmp = makeTempDir('rsh-11ty-');
});
afterAll(() => removeDir(tmp));

describe('this repository built with npx eleventy', () => {
  it('builds the shipped images.json offline into a registry with Netlify headers', async () => {
    const out = path.join(tmp, 'site-out');
    const r = await run('npx', ['eleventy', `--output=${out}`], { cwd: REPO, timeoutMs: 120_000 });
    expect(r.stdout).toMatch(/\[registrish\] 1 images, 2 tags, 3 manifests .* 4 blobs/);
    const index = JSON.parse(await readFile(path.join(REPO, 'example/hello/index.json'), 'utf8')).manifests[0];
    const tagged = await readFile(path.join(out, 'v2/hello/manifests/latest'));
    expect(tagged).toEqual(await readFile(path.join(REPO, 'example/hello/blobs/sha256', index.digest.slice(7))));
    const rules = await loadHeaderRules(path.join(out, '_headers'));
    expect(matchHeaders(rules, '/v2/hello/manifests/1.0')).toContainEqual(['Content-Type', 'application/vnd.oci.image.index.v1+json']);
    expect(await readFile(path.join(out, 'index.html'), 'utf8')).toMatch(/static container registry/);
  });
});

describe('another Eleventy site using the package', () => {
  let site: string;
  beforeAll(async () => {
    site = path.join(tmp, 'other-site');
    await cp(path.join(REPO, 'site'), path.join(site, 'src'), { recursive: true });
    // An ESM site importing the compiled package entry (test/package.test.ts installs the packed
    // tarball itself, in ESM and CommonJS sites).
    await writeFile(path.join(site, 'package.json'), '{ "type": "module" }\n');
    await writeFile(
      path.join(site, 'eleventy.config.js'),
      `import registrish from ${JSON.stringify(path.join(REPO, 'dist/index.js'))};
export default function (eleventyConfig) {
  eleventyConfig.addPlugin(registrish, { images: 'registry.json', cacheDir: '.cache/reg' });
  return { dir: { input: 'src', output: 'public' } };
}
`,
    );
    await writeFile(
      path.join(site, 'registry.json'),
      JSON.stringify({ images: [{ source: `oci:${path.join(REPO, 'example/hello')}:1.0`, name: 'demo/hello' }] }),
    );
  });

  it('builds into its own output folder, then rebuilds from the cache', async () => {
    const first = await run('node', [ELEVENTY], { cwd: site, timeoutMs: 120_000 });
    expect(first.stdout).toMatch(/\[registrish\] .*fetched 4 .*reused 0/);
    expect(await readFile(path.join(site, 'public/v2/demo/hello/tags/list'), 'utf8')).toBe('{"name":"demo/hello","tags":["1.0"]}\n');
    const second = await run('node', [ELEVENTY], { cwd: site, timeoutMs: 120_000 });
    expect(second.stdout).toMatch(/\[registrish\] .*fetched 0 .*reused 4/);
  });

  it('fails the build with a message naming the entry and field', async () => {
    await writeFile(path.join(site, 'registry.json'), JSON.stringify({ images: [{ source: 'alpine', tags: ['Bad Tag!'] }] }));
    const r = await run('node', [ELEVENTY], { cwd: site, timeoutMs: 120_000, allowFailure: true });
    expect(r.code).not.toBe(0);
    expect(r.stdout + r.stderr).toContain('images[0].tags[0]: "Bad Tag!" is not a valid tag');
  });

  it('rejects unknown plugin options, naming the plugin', async () => {
    const cfg = path.join(site, 'eleventy.config.js');
    const original = await readFile(cfg, 'utf8');
    await writeFile(cfg, original.replace("cacheDir: '.cache/reg'", "cacheDir: '.cache/reg', concurency: 3"));
    const r = await run('node', [ELEVENTY], { cwd: site, timeoutMs: 120_000, allowFailure: true });
    await writeFile(cfg, original);
    expect(r.code).not.toBe(0);
    expect(r.stdout + r.stderr).toContain('[registrish] unknown option "concurency"');
  });

  it('in --watch, a template edit keeps the registry; an images.json edit rebuilds it', async () => {
    await writeFile(
      path.join(site, 'registry.json'),
      JSON.stringify({ images: [{ source: `oci:${path.join(REPO, 'example/hello')}:1.0`, name: 'demo/hello' }] }),
    );
    const child = spawn('node', [ELEVENTY, '--watch'], { cwd: site, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    try {
      await waitFor(() => (/Watching/.test(output) ? true : undefined), { timeoutMs: 60_000, what: 'eleventy --watch to start' });
      const builds = () => (output.match(/\[registrish\] \d+ images/g) ?? []).length;
      expect(builds()).toBe(1);
      // "Watching" is printed before the watcher is ready to see changes: edit again every 2 s until
      // a rebuild shows (an edit made too early is simply not seen).
      const page = path.join(site, 'src/index.md');
      const original = await readFile(page, 'utf8');
      let edits = 0;
      await waitFor(
        async () => {
          if (/registry\.json unchanged/.test(output)) return true;
          await writeFile(page, `${original}\nEdited ${++edits}.\n`);
          return undefined;
        },
        { timeoutMs: 60_000, intervalMs: 2_000, what: 'a template rebuild' },
      );
      expect(builds()).toBe(1);
      await writeFile(
        path.join(site, 'registry.json'),
        JSON.stringify({ images: [{ source: `oci:${path.join(REPO, 'example/hello')}:1.0`, name: 'demo/hello', tags: ['1.0', 'two'] }] }),
      );
      await waitFor(() => (builds() === 2 ? true : undefined), { timeoutMs: 60_000, what: 'a registry rebuild after editing registry.json' });
      expect(await readFile(path.join(site, 'public/v2/demo/hello/tags/list'), 'utf8')).toBe('{"name":"demo/hello","tags":["1.0","two"]}\n');
      // The pages follow: rendered from the new resolution, not a stale one.
      await waitFor(async () => ((await readFile(path.join(site, 'public/images/demo/hello/index.html'), 'utf8').catch(() => '')).includes('>two</a>') ? true : undefined), {
        timeoutMs: 30_000,
        what: 'the page of the new tag',
      });
    } finally {
      child.kill('SIGTERM');
    }
  });
});

describe('a site with its own _headers, _redirects and 404 page', () => {
  // The registry is published in eleventy.before, before Eleventy writes the site: the site's own
  // files that host files are made from are copied (or rendered) over ours afterwards, and the
  // plugin must merge again. Cold (nothing in the output yet) and warm.
  let site: string;
  const build = async (hosts: string[], out: string) => {
    await writeFile(
      path.join(site, 'eleventy.config.js'),
      `import registrish from ${JSON.stringify(path.join(REPO, 'dist/index.js'))};
export default function (eleventyConfig) {
  eleventyConfig.addPassthroughCopy({ 'src/_headers': '_headers', 'src/_redirects': '_redirects' });
  eleventyConfig.addPlugin(registrish, { images: 'registry.json', cacheDir: '.cache/reg', hosts: ${JSON.stringify(hosts)} });
  return { dir: { input: 'src', output: ${JSON.stringify(out)} } };
}
`,
    );
    const r = await run('node', [ELEVENTY], { cwd: site, timeoutMs: 120_000 });
    expect(r.stdout).toMatch(/\[registrish\] 1 images/);
  };
  beforeAll(async () => {
    site = path.join(tmp, 'own-files-site');
    await cp(path.join(REPO, 'site'), path.join(site, 'src'), { recursive: true });
    await writeFile(path.join(site, 'package.json'), '{ "type": "module" }\n');
    await writeFile(path.join(site, 'src/_headers'), '/about/*\n  X-Site-Own: yes\n');
    await writeFile(path.join(site, 'src/_redirects'), '/old /new 301\n');
    await writeFile(path.join(site, 'src/404.md'), '---\npermalink: /404.html\n---\n# Not here (the site\'s own)\n');
    await writeFile(path.join(site, 'registry.json'), JSON.stringify({ images: [{ source: `oci:${path.join(REPO, 'example/hello')}:1.0`, name: 'demo/hello' }] }));
  });

  for (const host of ['netlify', 'cloudflare']) {
    it(`${host}: the site's rules and ours, cold and warm`, async () => {
      const out = `public-${host}`;
      for (const round of ['cold', 'warm']) {
        await build([host], out);
        const headers = await readFile(path.join(site, out, '_headers'), 'utf8');
        expect(headers, round).toContain('X-Site-Own: yes');
        expect(headers, round).toContain('# registrish:begin');
        const rules = await loadHeaderRules(path.join(site, out, '_headers'));
        expect(matchHeaders(rules, '/v2/demo/hello/manifests/1.0'), round).toContainEqual(['Content-Type', 'application/vnd.oci.image.index.v1+json']);
        expect(matchHeaders(rules, '/about/x'), round).toContainEqual(['X-Site-Own', 'yes']);
        const redirects = await readFile(path.join(site, out, '_redirects'), 'utf8');
        expect(redirects, round).toContain('/old /new 301');
        if (host === 'netlify') expect(redirects, round).toContain('# registrish:begin');
        expect(await readFile(path.join(site, out, '404.html'), 'utf8'), round).toContain("the site's own");
      }
    });
  }
});
