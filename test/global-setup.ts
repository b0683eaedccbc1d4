import { spawnSync } from 'node:child_process';
import path from 'node:path';

// Tests that run the package as users do (the CLI, other Eleventy sites, the packed tarball) load
// dist/: compile it from the current src/ first (incremental, a few seconds), so they never test
// a stale build. Type errors do not stop the tests here (`npm run test:all` type-checks first).
export default function setup(): void {
  const root = path.resolve(import.meta.dirname, '..');
  const r = spawnSync(process.execPath, [path.join(root, 'scripts/build-dist.mjs')], { cwd: root, encoding: 'utf8' });
  if (r.status !== 0) {
    process.stderr.write(`global-setup: tsc reported errors while compiling dist/ (tests still run):\n${r.stdout}${r.stderr}\n`);
  }
}
