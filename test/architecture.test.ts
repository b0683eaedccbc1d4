import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { HOSTS } from '../src/hosts/index.ts';
import { ATTACHMENT_KINDS } from '../src/resolve/attachments/index.ts';
import { SOURCE_KINDS } from '../src/sources/kinds.ts';

// The shape of the code, checked: no import circles (type-only imports included), one home for
// each helper that once existed twice, every host and source kind file registered, and every path
// CONTRIBUTING.md names exists.

const REPO = path.resolve(import.meta.dirname, '..');
const SRC = path.join(REPO, 'src');

function sourceFiles(dir = SRC): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sourceFiles(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : [],
  );
}

/** Relative imports of a module: static `import`/`export … from` (types too) and dynamic `import()`. */
export function importsOf(file: string, text = readFileSync(file, 'utf8')): string[] {
  const specs = [
    ...text.matchAll(/^\s*(?:import|export)\b[^'";]*?\bfrom\s*'(\.{1,2}\/[^']+)'/gmu),
    ...text.matchAll(/^\s*import\s*'(\.{1,2}\/[^']+)'/gmu),
    ...text.matchAll(/\bimport\(\s*'(\.{1,2}\/[^']+)'\s*\)/gu),
  ].map((m) => m[1]!);
  return specs.map((s) => path.resolve(path.dirname(file), s));
}

/** Every cycle's members (strongly connected components larger than one, or a self-import). */
export function importCycles(graph: Map<string, string[]>): string[][] {
  let index = 0;
  const stack: string[] = [];
  const onStack = new Set<string>();
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const cycles: string[][] = [];
  const visit = (v: string): void => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1 || (graph.get(v) ?? []).includes(v)) cycles.push(scc.sort());
    }
  };
  for (const v of graph.keys()) if (!idx.has(v)) visit(v);
  return cycles;
}

describe('architecture', () => {
  const files = sourceFiles();
  const graph = new Map(files.map((f) => [f, importsOf(f)]));

  it('finds a circle when there is one (the checker itself)', () => {
    const g = new Map([
      ['a', ['b']],
      ['b', ['c']],
      ['c', ['a']],
      ['d', ['a']],
    ]);
    expect(importCycles(g)).toEqual([['a', 'b', 'c']]);
    expect(importsOf('/x/y.ts', "import type { A } from './a.ts';\nexport { b } from '../b.ts';\nconst m = await import('./c.ts');\n")).toEqual([
      '/x/a.ts',
      '/b.ts',
      '/x/c.ts',
    ]);
  });

  it('src/ has no import circles, and every relative import resolves', () => {
    const rel = (f: string) => path.relative(REPO, f);
    expect(importCycles(graph).map((c) => c.map(rel))).toEqual([]);
    const missing = [...graph].flatMap(([f, deps]) => deps.filter((d) => !graph.has(d)).map((d) => `${rel(f)} → ${rel(d)}`));
    expect(missing).toEqual([]);
  });

  it('each helper that once existed twice has exactly one home', () => {
    // Code only: a comment may mention a name without defining it.
    const code = (t: string) => t.split('\n').filter((l) => !/^\s*(\/\/|\/?\*)/u.test(l)).join('\n');
    const texts = files.map((f) => [path.relative(SRC, f), code(readFileSync(f, 'utf8'))] as const);
    const homes = (re: RegExp) => texts.filter(([, t]) => re.test(t)).map(([f]) => f);
    expect(homes(/function (formatBytes|formatSize)\b/u)).toEqual(['util/format.ts']);
    expect(homes(/function (semaphore|mapLimit)\b/u)).toEqual(['util/concurrency.ts']);
    expect(homes(/function (readCapped|readAll|readLimited|readPrefix)\b/u)).toEqual(['http/response.ts']);
    expect(homes(/'registry-1\.docker\.io'|'index\.docker\.io'|'docker\.io'/u)).toEqual(['model/docker-hub.ts']);
    expect(homes(/2 \*\* \(?attempt/u).sort()).toEqual(['http/transport.ts', 'store/store.ts']);
    expect(homes(/function shortDigest\b/u)).toEqual(['util/format.ts']);
    expect(homes(/\blayoutRegistry\(/u).sort()).toEqual(['build.ts', 'publish/paths.ts']);
  });

  it('every host, source kind and attachment kind file is registered (one file + one line adds one)', () => {
    const hostFiles = readdirSync(path.join(SRC, 'hosts')).filter((f) => !['host.ts', 'index.ts', 'headers-file.ts', 'redirects-file.ts'].includes(f));
    expect(HOSTS.map((h) => `${h.name}.ts`).sort()).toEqual(hostFiles.sort());
    const kindFiles = files.filter((f) => /export const \w+Kind: SourceKind</u.test(readFileSync(f, 'utf8')));
    expect(kindFiles.length).toBe(SOURCE_KINDS.length);
    const attachmentFiles = files.filter((f) => /export const \w+: AttachmentKind\b/u.test(readFileSync(f, 'utf8')));
    expect(attachmentFiles.length).toBe(ATTACHMENT_KINDS.length);
  });

  it('every path CONTRIBUTING.md names exists', () => {
    const text = readFileSync(path.join(REPO, 'CONTRIBUTING.md'), 'utf8');
    const named = [...new Set([...text.matchAll(/`((?:src|test|docs|scripts|bench)\/[\w./-]+)`/gu)].map((m) => m[1]!))];
    expect(named.length).toBeGreaterThan(10);
    const absent = named.filter((p) => {
      try {
        readFileSync(path.join(REPO, p.replace(/\/$/u, '/.')));
        return false;
      } catch (err) {
        return (err as NodeJS.ErrnoException).code !== 'EISDIR';
      }
    });
    expect(absent).toEqual([]);
  });
});
