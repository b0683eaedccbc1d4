import { quote } from '../util/format.ts';

// Telling a user what they meant: unknown keys with the closest known one ("tag" → "tags"),
// and values described by type in messages.

/** Collects one problem: where (`images[2].tags`) and what. */
export type Report = (where: string, message: string) => void;

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function describeType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  switch (typeof v) {
    case 'string':
      return `a string (${quote(v)})`;
    case 'number':
    case 'boolean':
      return `a ${typeof v} (${String(v)})`;
    case 'object':
      return 'an object';
    default:
      return typeof v;
  }
}

export function checkKeys(
  obj: Record<string, unknown>,
  known: readonly string[],
  at: string,
  report: Report,
  aliases: Record<string, string> = {},
): void {
  for (const key of Object.keys(obj)) {
    if (known.includes(key)) continue;
    const suggestion = aliases[key.toLowerCase()] ?? closestKey(key, known);
    report(
      at,
      suggestion
        ? `unknown key ${quote(key)} — did you mean "${suggestion}"?`
        : `unknown key ${quote(key)} (allowed: ${known.map((k) => `"${k}"`).join(', ')})`,
    );
  }
}

/** The known key a typo most likely meant: small edit distance (case-insensitive), or a prefix. */
function closestKey(key: string, known: readonly string[]): string | undefined {
  const k = key.toLowerCase();
  let best: { key: string; d: number } | undefined;
  for (const candidate of known) {
    const d = editDistance(k, candidate.toLowerCase());
    if (!best || d < best.d) best = { key: candidate, d };
  }
  if (best && best.d <= Math.max(1, Math.floor(k.length / 3))) return best.key;
  if (k.length >= 4) return known.find((c) => c.toLowerCase().startsWith(k));
  return undefined;
}

/** Optimal string alignment distance: Levenshtein plus adjacent transpositions (`nmae` → `name`). */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

