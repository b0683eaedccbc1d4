// Pagination by `Link: <url>; rel="next"` (RFC 8288), as the distribution spec uses it for
// tags/list, _catalog and the referrers API. A hostile server can point anywhere and loop forever:
// pages are same-origin, never repeat, and their number is bounded by the caller.

/** The `rel="next"` target of a Link header resolved against `base`, or undefined when there is none. */
export function nextLink(header: string | readonly string[] | undefined, base: string | URL): URL | undefined {
  if (header === undefined) return undefined;
  const text = typeof header === 'string' ? header : header.join(', ');
  for (const m of text.matchAll(/<([^>]*)>((?:\s*;\s*[^;,]*)*)/gu)) {
    const params = m[2]!.split(';').map((p) => p.trim()).filter(Boolean);
    const rel = params
      .map((p) => /^rel\s*=\s*"?([^"]*)"?$/iu.exec(p)?.[1])
      .find((v) => v !== undefined);
    if (rel && rel.toLowerCase().split(/\s+/u).includes('next')) {
      try {
        return new URL(m[1]!, base);
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}
