// How the package runs its TypeScript. `npm install` bundles src/ into dist/ (the prepare script,
// scripts/build-dist.mjs); that bundle is used when it was built from exactly the src/ next to it.
// Otherwise (a checkout being edited, an install that skipped scripts) src/ itself is loaded
// through tsx's scoped loader, which changes nothing else in the host process. The bundle starts
// ~0.15 s sooner and takes ~30 MB less memory: no loader thread (docs/performance.md).
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = path.dirname(fileURLToPath(import.meta.url));
/** Written next to the bundle: the hash of the src/ it was built from. */
export const HASH_FILE = 'source-hash';

/** SHA-256 over every file under `srcDir`, subfolders included (relative paths and bytes, sorted). */
export async function sourceHash(srcDir) {
  const files = (await readdir(srcDir, { recursive: true, withFileTypes: true }))
    .filter((e) => e.isFile())
    .map((e) => path.relative(srcDir, path.join(e.parentPath ?? e.path, e.name)))
    .sort();
  const contents = await Promise.all(files.map((name) => readFile(path.join(srcDir, name))));
  const h = createHash('sha256');
  files.forEach((name, i) => h.update(`${name}\0${contents[i].length}\0`).update(contents[i]));
  return h.digest('hex');
}

/** Is dist/ under `root` built from the src/ under `root`? */
export async function distIsCurrent(root = ROOT) {
  try {
    const [want, have] = await Promise.all([
      sourceHash(path.join(root, 'src')),
      readFile(path.join(root, 'dist', HASH_FILE), 'utf8'),
    ]);
    return want === have.trim();
  } catch {
    return false;
  }
}

/**
 * Loads `src/<entry>.ts` (index or cli): from the bundle when it is current, else through tsx.
 * `from` says which, for the benchmark and the tests.
 */
export async function loadEntry(entry, root = ROOT) {
  if (await distIsCurrent(root)) {
    try {
      return { module: await import(pathToFileURL(path.join(root, 'dist', `${entry}.js`)).href), from: 'dist' };
    } catch (err) {
      // A bundle that matches the sources but does not load (a file lost since it was built): the
      // sources still work, so say so and use them.
      console.warn(`registrish: dist/${entry}.js did not load (${err?.message ?? err}); running src/ through tsx instead`);
    }
  }
  const { tsImport } = await import('tsx/esm/api');
  // tsconfig: false: tsx would otherwise read the tsconfig.json of the current directory, which is
  // the user's project, not ours.
  const module = await tsImport(pathToFileURL(path.join(root, 'src', `${entry}.ts`)).href, { parentURL: import.meta.url, tsconfig: false });
  return { module, from: 'src' };
}
