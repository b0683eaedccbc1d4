import { execFile } from 'node:child_process';
import { appendFile, cp, mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { distIsCurrent, loadEntry } from '../loader.js';
import { DEFAULT_OPTIONS } from '../src/index.ts';
import { makeTempDir, removeDir } from './harness/procs.ts';

// The package runs the bundle `npm install` builds (scripts/build-dist.mjs) only while it matches
// src/ exactly, and src/ through tsx otherwise. Checked on a copy of the package, so the real
// dist/ of this checkout is never touched.

const REPO = path.resolve(import.meta.dirname, '..');
const EXAMPLE = path.join(REPO, 'example', 'hello');
let tmp: string;
let pkg: string;

/** A copy of the package (sources, loader, build script) with its dist/ built. */
async function packageCopy(name: string): Promise<string> {
  const root = path.join(tmp, name);
  await mkdir(root);
  for (const f of ['src', 'loader.js', 'package.json', 'scripts']) await cp(path.join(REPO, f), path.join(root, f), { recursive: true });
  await symlink(path.join(REPO, 'node_modules'), path.join(root, 'node_modules'));
  await promisify(execFile)(process.execPath, [path.join(root, 'scripts/build-dist.mjs'), root]);
  return root;
}

beforeAll(async () => {
  tmp = makeTempDir('rsh-loader-');
  pkg = await packageCopy('pkg');
}, 60_000);
afterAll(() => removeDir(tmp));

/** A real build of the shipped example through whichever code `loadEntry` picked. */
async function buildExample(mod: Record<string, any>, name: string): Promise<Buffer> {
  const dir = path.join(tmp, name);
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, 'images.json'), JSON.stringify({ images: [{ source: `oci:${EXAMPLE}:1.0`, name: 'hello' }] }));
  await mod.buildRegistry({
    images: path.join(dir, 'images.json'),
    outputDir: path.join(dir, '_site'),
    cacheDir: path.join(dir, '.cache'),
    hosts: ['netlify'],
    imageConcurrency: 2,
    blobConcurrency: 2,
    linkMode: 'hardlink',
    logger: { info: () => {}, warn: () => {} },
  });
  return readFile(path.join(dir, '_site/v2/hello/manifests/1.0'));
}

describe('loader', () => {
  it('uses the bundle built from this very src/, and it builds a registry like the sources do', async () => {
    expect(await distIsCurrent(pkg)).toBe(true);
    const { module, from } = await loadEntry('index', pkg);
    expect(from).toBe('dist');
    expect(module.DEFAULT_OPTIONS).toEqual(DEFAULT_OPTIONS);
    const cli = await loadEntry('cli', pkg);
    expect(cli.from).toBe('dist');
    expect(typeof cli.module.main).toBe('function');
    const manifest = await buildExample(module, 'bundle');
    const index = JSON.parse(await readFile(path.join(EXAMPLE, 'index.json'), 'utf8')).manifests[0];
    expect(manifest).toEqual(await readFile(path.join(EXAMPLE, 'blobs/sha256', index.digest.slice(7))));
  });

  it('falls back to src/ through tsx as soon as any source differs from what was bundled', async () => {
    await appendFile(path.join(pkg, 'src', 'errors.ts'), '\n// edited after the bundle was built\n');
    expect(await distIsCurrent(pkg)).toBe(false);
    const { module, from } = await loadEntry('index', pkg);
    expect(from).toBe('src');
    expect(await buildExample(module, 'sources')).toEqual(await readFile(path.join(tmp, 'bundle/_site/v2/hello/manifests/1.0')));
  });

  it('falls back when a source file is added, or when dist/ is missing', async () => {
    await promisify(execFile)(process.execPath, [path.join(pkg, 'scripts/build-dist.mjs'), pkg]);
    expect(await distIsCurrent(pkg)).toBe(true);
    await writeFile(path.join(pkg, 'src', 'extra.ts'), 'export const x = 1;\n');
    expect(await distIsCurrent(pkg)).toBe(false);
    await rm(path.join(pkg, 'src', 'extra.ts'));
    expect(await distIsCurrent(pkg)).toBe(true);
    await mkdir(path.join(pkg, 'src', 'sub'));
    await writeFile(path.join(pkg, 'src', 'sub', 'later.ts'), 'export const y = 2;\n');
    expect(await distIsCurrent(pkg)).toBe(false); // subfolders count too
    await rm(path.join(pkg, 'src', 'sub'), { recursive: true });
    expect(await distIsCurrent(pkg)).toBe(true);
    await rm(path.join(pkg, 'dist'), { recursive: true });
    expect((await loadEntry('index', pkg)).from).toBe('src');
  });

  it('a bundle that matches but does not load falls back with a warning; a failed bundling never fails the install', async () => {
    // A fresh copy: an ES module once imported stays cached under its URL.
    const pkg = await packageCopy('pkg-broken');
    const hash = await readFile(path.join(pkg, 'dist', 'source-hash'), 'utf8');
    await rm(path.join(pkg, 'dist', 'index.js'));
    const warnings: string[] = [];
    const warn = console.warn;
    console.warn = (m: string) => warnings.push(m);
    try {
      expect((await loadEntry('index', pkg)).from).toBe('src');
    } finally {
      console.warn = warn;
    }
    expect(warnings).toEqual([expect.stringMatching(/^registrish: dist\/index\.js did not load \(.*\); running src\/ through tsx instead$/)]);

    await appendFile(path.join(pkg, 'src', 'errors.ts'), '\nexport const = ;\n');
    const r = await promisify(execFile)(process.execPath, [path.join(pkg, 'scripts/build-dist.mjs'), pkg]);
    expect(r.stderr).toMatch(/registrish: could not bundle src\/ into dist\/ .*; src\/ will run through tsx/s);
    expect(await readFile(path.join(pkg, 'dist', 'source-hash'), 'utf8')).toBe(hash);
    expect(await distIsCurrent(pkg)).toBe(false);
  }, 60_000);
});
