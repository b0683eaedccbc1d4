// Bundles src/ into dist/ (npm runs this as `prepare`, i.e. on `npm install` / `npm ci` of this
// package and before `npm pack`). loader.js uses the bundle only while it matches src/ exactly.
// Usage: node scripts/build-dist.mjs [ROOT]   (ROOT: the package folder; default this one)
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { HASH_FILE, sourceHash } from '../loader.js';

const root = path.resolve(process.argv[2] ?? path.join(path.dirname(fileURLToPath(import.meta.url)), '..'));
let esbuild;
try {
  esbuild = await import('esbuild');
} catch {
  // An install without dev dependencies: loader.js then runs src/ through tsx, which works, slower.
  console.warn('registrish: esbuild is not installed; skipping dist/ (src/ will run through tsx)');
  process.exit(0);
}

const out = path.join(root, 'dist');
const tmp = `${out}.tmp-${process.pid}`;
// Hashed before bundling: a file changed during the build makes the hash stale, never the bundle.
const hash = await sourceHash(path.join(root, 'src'));
await rm(tmp, { recursive: true, force: true });
await mkdir(tmp, { recursive: true });
try {
  await esbuild.build({
    absWorkingDir: root,
    entryPoints: ['src/index.ts', 'src/cli.ts'],
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    // Dependencies stay in node_modules; `new URL('../package.json', import.meta.url)` still
    // finds the package root, since dist/ sits at the same depth as src/.
    packages: 'external',
    outdir: tmp,
    logLevel: 'warning',
  });
  await writeFile(path.join(tmp, HASH_FILE), `${hash}\n`);
  await rm(out, { recursive: true, force: true });
  await rename(tmp, out);
} catch (err) {
  await rm(tmp, { recursive: true, force: true });
  // Never fail an install over it: without a current bundle, loader.js runs src/ through tsx.
  // (test/loader.test.ts fails when bundling does, so CI still notices.)
  console.warn(`registrish: could not bundle src/ into dist/ (${err?.message ?? err}); src/ will run through tsx`);
}
