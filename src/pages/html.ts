// HTML built from data that comes from upstream registries (labels, annotations, tag names):
// everything interpolated goes through esc(); markup is only ever our own literals.

const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function esc(value: unknown): string {
  return String(value ?? '').replace(/[&<>"']/gu, (c) => ENTITIES[c]!);
}

/** `2026-01-31T12:00:00Z` → `2026-01-31`; anything unparsable is shown as it is. */
export function formatDate(iso: string | undefined): string {
  if (!iso) return '';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toISOString().slice(0, 10);
}

/** A URL from image metadata, only when it is http(s): a `javascript:` label must never become a link. */
export function safeHref(url: string | undefined): string | undefined {
  if (!url) return undefined;
  try {
    const u = new URL(url);
    return u.protocol === 'https:' || u.protocol === 'http:' ? u.href : undefined;
  } catch {
    return undefined;
  }
}
