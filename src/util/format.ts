// Small formatting helpers shared by log lines, reports and messages.

/** `1536` → `1.5 KiB`. One decimal, binary units. */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${units[i]}`;
}

/** `sha256:0123456789abcdef…` → `sha256:0123456789ab…`: enough to tell digests apart in a log line. */
export function shortDigest(digest: string): string {
  const [alg, hex] = digest.split(':', 2);
  return hex && hex.length > 12 ? `${alg}:${hex.slice(0, 12)}…` : digest;
}

/** JSON-quotes a value for a message: control characters become visible, long values are cut. */
export function quote(value: unknown): string {
  if (typeof value !== 'string') return String(JSON.stringify(value));
  // Long enough for any digest (sha512 is 135 characters); hostile 10k-character names are cut.
  if (value.length > 140) return `${JSON.stringify(value.slice(0, 100))}… (${value.length} characters)`;
  return JSON.stringify(value);
}

/** Plain code-unit order: deterministic across machines and locales (every file we write is sorted by it). */
export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
