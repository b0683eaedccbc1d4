// Compiles src/ into dist/ (.js + .d.ts) with tsc: what the package runs and what consumers' type
// checkers read. npm runs it as `prepare` (before `npm pack`, and on `npm install` of a git
// checkout); the test setup runs it incrementally so tests always exercise the current sources.
// Usage: node scripts/build-dist.mjs [--clean]
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
// A clean build leaves nothing in dist/ that src/ no longer has (a moved or deleted module).
if (process.argv.includes('--clean')) rmSync(path.join(root, 'dist'), { recursive: true, force: true });
const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
const r = spawnSync(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.build.json')], { stdio: 'inherit' });
process.exit(r.status ?? 1);
