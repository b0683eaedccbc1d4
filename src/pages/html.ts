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

/**
 * The page with every character outside ASCII as a character reference, as a one-byte string.
 * Eleventy keeps every page's HTML until the build ends; V8 stores a string holding any character
 * above U+00FF (one `—` in a title is enough) at two bytes per character, so at 10,000 pages this
 * halves what the pages hold (issue 18). Only our own ASCII stylesheet and script are raw text
 * (`<style>`, `<script>`), where a reference would not be decoded; everything from upstream is in
 * text and attributes, where it is. The Buffer round trip makes the copy one-byte: a `replace` on a
 * two-byte string returns a two-byte string even when every character left is ASCII.
 */
export function oneByte(html: string): string {
  return Buffer.from(html.replace(/[^\x00-\x7f]/gu, (c) => `&#${c.codePointAt(0)};`), 'latin1').toString('latin1');
}
