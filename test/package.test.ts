import { cp, mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir, removeDir, run } from './harness/procs.ts';

// The package as users get it: `npm pack`, then the tarball installed into a fresh Eleventy site
// that loads it from an ES module config and from a CommonJS one, a TypeScript consumer that
// type-checks against the shipped declarations with skipLibCheck off, and the CLI from its bin.

const REPO = path.resolve(import.meta.dirname, '..');
const installed = (name: string): Promise<string> =>
  readFile(path.join(REPO, 'node_modules', name, 'package.json'), 'utf8').then((t) => (JSON.parse(t) as { version: string }).version);

let tmp: string;
let site: string;
let tarball: string;

beforeAll(async () => {
  tmp = makeTempDir('rsh-pack-');
  // `npm pack` runs `prepare` (a clean tsc build into dist/) and writes the tarball. It runs in a
  // copy of the package, so that rebuilding dist/ cannot pull it from under tests running beside this one.
  const pkg = path.join(tmp, 'pkg');
  await mkdir(pkg);
  for (const f of ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json', 'images.schema.json', 'README.md', 'src', 'bin', 'scripts']) {
    await cp(path.join(REPO, f), path.join(pkg, f), { recursive: true });
  }
  await symlink(path.join(REPO, 'node_modules'), path.join(pkg, 'node_modules'));
  const packed = await run('npm', ['pack', '--silent', '--pack-destination', tmp], { cwd: pkg, timeoutMs: 180_000 });
  tarball = path.join(tmp, packed.stdout.trim().split('\n').at(-1)!);
  site = path.join(tmp, 'site');
  await mkdir(path.join(site, 'src'), { recursive: true });
  await writeFile(path.join(site, 'package.json'), JSON.stringify({ name: 'a-site', private: true }));
  await writeFile(path.join(site, 'src/index.md'), '# A site\n');
  await writeFile(path.join(site, 'images.json'), JSON.stringify({ images: [{ source: `oci:${path.join(REPO, 'example/hello')}:1.0`, name: 'demo/hello' }] }));
  // The same versions as this checkout's, so npm finds them in its cache.
  const deps = [tarball, `@11ty/eleventy@${await installed('@11ty/eleventy')}`, `@types/node@${await installed('@types/node')}`];
  await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error', ...deps], { cwd: site, timeoutMs: 300_000 });
}, 600_000);
afterAll(() => removeDir(tmp));

const eleventy = (config: string) =>
  run(process.execPath, [path.join(site, 'node_modules/@11ty/eleventy/cmd.cjs'), `--config=${config}`], { cwd: site, timeoutMs: 120_000 });

describe('the packed package', () => {
  it('holds the compiled code and declarations, not the sources or tests', async () => {
    const list = (await run('tar', ['-tzf', tarball])).stdout.split('\n').filter(Boolean);
    expect(list).toContain('package/dist/index.js');
    expect(list).toContain('package/dist/index.d.ts');
    expect(list).toContain('package/bin/registrish.js');
    expect(list).toContain('package/images.schema.json');
    expect(list.filter((f) => /^package\/(src|test)\/|tsbuildinfo|\.test\./u.test(f))).toEqual([]);
  });

  it('builds a registry from an ES module Eleventy config, with its pages moved into a layout of the site', async () => {
    await mkdir(path.join(site, 'src/_includes'), { recursive: true });
    await writeFile(path.join(site, 'src/_includes/base.njk'), '<!doctype html><html lang="en"><title>{{ title }}</title><body><main class="site-layout">{{ content | safe }}</main></body></html>\n');
    await writeFile(
      path.join(site, 'eleventy.config.mjs'),
      `import registrish from 'registrish';
export default function (eleventyConfig) {
  eleventyConfig.addPlugin(registrish, { cacheDir: '.cache/esm', pages: { path: '/registry/', layout: 'base.njk' } });
  return { dir: { input: 'src', output: 'out-esm' } };
}
`,
    );
    const r = await eleventy('eleventy.config.mjs');
    expect(r.stdout).toMatch(/\[registrish\] 1 images, 1 tags, 3 manifests .*fetched 4/u);
    expect(await readFile(path.join(site, 'out-esm/v2/demo/hello/tags/list'), 'utf8')).toBe('{"name":"demo/hello","tags":["1.0"]}\n');
    const page = await readFile(path.join(site, 'out-esm/registry/demo/hello/index.html'), 'utf8');
    expect(page).toMatch(/^<!doctype html><html lang="en"><title>demo\/hello<\/title><body><main class="site-layout"><div class="rsh">/u);
    expect(page).toContain('docker pull <span class="host" data-host>your-registry-host</span>/demo/hello:1.0');
  });

  it('builds a registry from a CommonJS Eleventy config (require of the ES module) whose own page reads the registry data', async () => {
    await mkdir(path.join(site, 'cjs-src'), { recursive: true });
    await writeFile(
      path.join(site, 'cjs-src/list.njk'),
      '---\npermalink: /list.txt\n---\n{% for r in registry.repositories %}{{ r.name }}: {% for t in r.tags %}{{ t.name }} {{ t.platforms | length }} platforms {{ t.digest }}{% endfor %}{% endfor %}\n',
    );
    await writeFile(
      path.join(site, 'eleventy.config.cjs'),
      `const registrish = require('registrish');
module.exports = function (eleventyConfig) {
  eleventyConfig.addPlugin(registrish, { cacheDir: '.cache/cjs', pages: false });
  return { dir: { input: 'cjs-src', output: 'out-cjs' } };
};
`,
    );
    const r = await eleventy('eleventy.config.cjs');
    expect(r.stdout).toMatch(/\[registrish\] 1 images, 1 tags, 3 manifests .*fetched 4/u);
    expect(await readFile(path.join(site, 'out-cjs/_headers'), 'utf8')).toContain('/v2/demo/hello/manifests/1.0');
    const index = JSON.parse(await readFile(path.join(REPO, 'example/hello/index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
    expect(await readFile(path.join(site, 'out-cjs/list.txt'), 'utf8')).toBe(`demo/hello: 1.0 2 platforms ${index.manifests[0]!.digest}\n`);
    // Pages switched off: none written.
    await expect(readFile(path.join(site, 'out-cjs/images/index.html'))).rejects.toThrow(/ENOENT/u);
  });

  it('type-checks a TypeScript consumer with skipLibCheck off (ES module and CommonJS)', async () => {
    await writeFile(
      path.join(site, 'consumer.mts'),
      `import registrish, { buildRegistry, resolveOptions, type BuildSummary, type RegistrishOptions } from 'registrish';
const options: RegistrishOptions = { hosts: ['netlify'], concurrency: 4 };
export const plugin: (config: any, options?: RegistrishOptions) => void = registrish;
export async function build(): Promise<BuildSummary> {
  return buildRegistry({ images: 'images.json', outputDir: '_site', cacheDir: '.cache', hosts: resolveOptions(options).hosts,
    imageConcurrency: 2, blobConcurrency: 2, linkMode: 'copy', logger: { info() {}, warn() {} } });
}
`,
    );
    await writeFile(
      path.join(site, 'consumer.cts'),
      `import registrish = require('registrish');
export const plugin: (config: any, options?: { hosts?: string[] }) => void = registrish;
`,
    );
    await writeFile(
      path.join(site, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: { module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', strict: true, skipLibCheck: false, noEmit: true, types: ['node'] },
        files: ['consumer.mts', 'consumer.cts'],
      }),
    );
    const tsc = await run(process.execPath, [path.join(REPO, 'node_modules/typescript/bin/tsc'), '-p', site], { cwd: site, allowFailure: true });
    expect(tsc.stdout + tsc.stderr).toBe('');
    expect(tsc.code).toBe(0);
  });

  it('runs its CLI from the installed bin, and reports what loading it costs', async () => {
    const version = await run(path.join(site, 'node_modules/.bin/registrish'), ['--version'], { cwd: site });
    expect(version.stdout.trim()).toBe(JSON.parse(await readFile(path.join(REPO, 'package.json'), 'utf8')).version);
    // What `import("registrish")` costs a site (the benchmark tracks it; printed here for the log).
    const probe = await run(
      process.execPath,
      ['--input-type=module', '-e', `const t = performance.now(); const rss = process.memoryUsage().rss; await import('registrish');
console.log(JSON.stringify({ ms: Math.round(performance.now() - t), rssMiB: Math.round((process.memoryUsage().rss - rss) / 1048576) }));`],
      { cwd: site },
    );
    const cost = JSON.parse(probe.stdout) as { ms: number; rssMiB: number };
    console.log(`import("registrish") from the installed package: ${cost.ms} ms, +${cost.rssMiB} MiB RSS`);
    expect(cost.ms).toBeGreaterThan(0);
  });
});
