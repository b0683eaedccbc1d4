import fs from 'node:fs';

// The package's own version, for the User-Agent and `registrish --version`. Read from package.json
// two levels up: src/util/ and dist/util/ sit at the same depth.

let cached: string | undefined;

export function packageVersion(): string {
  if (cached === undefined) {
    try {
      const pkg = JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
      cached = typeof pkg.version === 'string' ? pkg.version : '0.0.0';
    } catch {
      cached = '0.0.0';
    }
  }
  return cached;
}
