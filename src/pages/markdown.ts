import { createRequire } from 'node:module';
import type MarkdownItType from 'markdown-it';
import { esc, safeHref } from './html.ts';

// A chart's README as HTML. The Markdown is the chart author's, so it is rendered without raw HTML
// (markdown-it, the library Eleventy itself renders Markdown with, escapes it), links only to
// http(s)/mailto and to anchors (anything else stays text), and images become links: a page never
// loads anything from another origin. markdown-it is loaded for the first README (its CommonJS
// build, synchronously): imported with the package, it cost about as much as the rest of the entry.

let loaded: MarkdownItType | undefined;

function markdown(): MarkdownItType {
  if (loaded) return loaded;
  const MarkdownIt = createRequire(import.meta.url)('markdown-it') as typeof MarkdownItType;
  const md = new MarkdownIt({ html: false, linkify: false, typographer: false });
  md.validateLink = (url: string): boolean => /^(?:https?:|mailto:|#)/iu.test(url.trim());
  md.renderer.rules.image = (tokens, idx) => {
    const token = tokens[idx]!;
    const alt = token.content || 'image';
    const href = safeHref(token.attrGet('src') ?? undefined);
    return href ? `<a href="${esc(href)}" rel="nofollow noopener">[image: ${esc(alt)}]</a>` : `[image: ${esc(alt)}]`;
  };
  const defaultLinkOpen = md.renderer.rules.link_open ?? ((tokens, idx, options, _env, self) => self.renderToken(tokens, idx, options));
  md.renderer.rules.link_open = (tokens, idx, options, env, self) => {
    const href = tokens[idx]!.attrGet('href') ?? '';
    if (!href.startsWith('#')) tokens[idx]!.attrSet('rel', 'nofollow noopener');
    return defaultLinkOpen(tokens, idx, options, env, self);
  };
  return (loaded = md);
}

/** The README's HTML, its headings moved down so that its highest one is an `h3` (below the page's own `h2`). */
export function renderReadme(text: string): string {
  const md = markdown();
  const tokens = md.parse(text, {});
  const headings = tokens.filter((t) => (t.type === 'heading_open' || t.type === 'heading_close') && /^h[1-6]$/u.test(t.tag));
  const top = Math.min(6, ...headings.map((t) => Number(t.tag.slice(1))));
  for (const t of headings) t.tag = `h${Math.min(6, Number(t.tag.slice(1)) - top + 3)}`;
  return md.renderer.render(tokens, md.options, {});
}
