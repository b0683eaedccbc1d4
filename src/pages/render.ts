import type { PlatformData, RegistryData, RepositoryData, TagData } from '../catalog/types.ts';
import { formatBytes, shortDigest } from '../util/format.ts';
import { layerChart } from './chart.ts';
import { artifactSection, chartSection, commandsFor, hasDigestCommands, kindLabel, otherChartVersions } from './artifacts.ts';
import { renderCommands } from './commands.ts';
import { esc, formatDate, oneByte, safeHref } from './html.ts';
import { SCRIPT } from './script.ts';
import { STYLE } from './style.ts';

// The default pages: a catalog of every repository, a page per repository, a page per image (the
// tags that point at it, its platforms and layers). Plain HTML from the `registry` data: readable without JavaScript,
// no request to any other origin.

/** Tags listed on a repository page; the rest are on its tags page. */
export const TAGS_ON_REPOSITORY_PAGE = 100;

export interface PageOptions {
  /** Where the pages live (`/images/`). */
  path: string;
  /**
   * True: a whole HTML document. False: the content only, for a site layout to wrap (the layout
   * gives the page its <head>, landmarks and title).
   */
  standalone: boolean;
  /** The site's name, shown in the header. */
  title: string;
}

interface Crumb {
  text: string;
  href?: string;
}

function shell(o: PageOptions, title: string, crumbs: Crumb[], body: string, description: string): string {
  const nav = `<nav aria-label="Breadcrumb"><ol>${crumbs
    .map((c, i) => `<li>${c.href && i < crumbs.length - 1 ? `<a href="${esc(c.href)}">${esc(c.text)}</a>` : `<span${i === crumbs.length - 1 ? ' aria-current="page"' : ''}>${esc(c.text)}</span>`}</li>`)
    .join('')}</ol></nav>`;
  const status = '<div id="copy-status" class="skip" role="status" aria-live="polite"></div>';
  if (!o.standalone) return oneByte(`<div class="rsh"><style>${STYLE}</style>${nav}${body}${status}<script>${SCRIPT}</script></div>`);
  return oneByte(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<meta name="description" content="${esc(description)}">
<link rel="icon" href="data:,">
<style>${STYLE}</style>
</head>
<body class="rsh">
<a class="skip" href="#main">Skip to the content</a>
<header><p>${esc(o.title)}</p>${nav}</header>
<main id="main">
${body}
</main>
<footer><p>A static container registry, built by Registrish. The images are served from <code>/v2/</code>; pull them with the commands on each page.</p></footer>
${status}
<script>${SCRIPT}</script>
</body>
</html>
`);
}

function hostNote(data: RegistryData): string {
  return data.host
    ? ''
    : '<p class="muted" data-host-note>Without JavaScript the commands cannot show this site\'s address: replace <span class="host">your-registry-host</span> with the host name in your address bar.</p>';
}

function pills(items: string[]): string {
  return items.map((p) => `<span class="pill">${esc(p)}</span>`).join('');
}

function sizeRange(platforms: PlatformData[], tag?: TagData): string {
  if (platforms.length === 0) return tag?.artifact ? formatBytes(tag.artifact.size) : tag?.chart ? formatBytes(tag.chart.archive.size) : '';
  const sizes = platforms.map((p) => p.size);
  const lo = Math.min(...sizes);
  const hi = Math.max(...sizes);
  return lo === hi ? formatBytes(lo) : `${formatBytes(lo)} – ${formatBytes(hi)}`;
}

/** The kinds present, in the order of KIND_LABELS, as a filter (shown with JavaScript only: it hides rows). */
function kindFilter(data: RegistryData): string {
  const kinds = [...new Set(data.repositories.map((r) => r.kind))];
  if (kinds.length < 2) return '';
  const count = (k: string) => data.repositories.filter((r) => r.kind === k).length;
  const option = (value: string, label: string, n: number, checked = false) =>
    `<label><input type="radio" name="kind" value="${esc(value)}"${checked ? ' checked' : ''}> ${esc(label)} (${n})</label>`;
  return `<fieldset class="filter" data-kind-filter hidden><legend>Show</legend>${option('', 'All', data.repositories.length, true)}${kinds
    .map((k) => option(k, kindLabel({ kind: k }), count(k)))
    .join('')}</fieldset>`;
}

export function renderCatalog(data: RegistryData, o: PageOptions): string {
  const tags = data.repositories.reduce((n, r) => n + r.tags.length, 0);
  const onlyImages = data.repositories.every((r) => r.kind === 'image');
  const rows = data.repositories
    .map(
      (r) => `<tr data-kind="${esc(r.kind)}"><th scope="row"><a href="${esc(r.url ?? '#')}">${esc(r.name)}</a></th><td>${esc(kindLabel(r))}</td><td class="hide-narrow">${esc(r.description ?? '')}</td><td class="num">${r.tags.length}</td><td class="hide-narrow">${pills(r.platforms)}</td><td class="num">${esc(formatBytes(r.size))}</td><td class="hide-narrow date">${esc(formatDate(r.updated))}</td></tr>`,
    )
    .join('\n');
  const heading = onlyImages ? 'Container images' : 'Images and artifacts';
  const body = `<h1>${heading}</h1>
<p>${data.repositories.length} ${data.repositories.length === 1 ? 'repository' : 'repositories'}, ${tags} ${tags === 1 ? 'tag' : 'tags'}. ${onlyImages ? 'Pull any of them with' : 'Pull an image with'} <code>docker pull ${data.host ? esc(data.host) : '<span class="host" data-host>your-registry-host</span>'}/NAME:TAG</code>${onlyImages ? '' : '; each repository\'s page has the commands for its kind'}.</p>
${hostNote(data)}
${kindFilter(data)}
<div class="scroll" role="region" aria-label="Repositories" tabindex="0"><table>
<thead><tr><th scope="col">Repository</th><th scope="col">Kind</th><th scope="col" class="hide-narrow">Description</th><th scope="col" class="num">Tags</th><th scope="col" class="hide-narrow">Platforms</th><th scope="col" class="num">Size</th><th scope="col" class="hide-narrow">Updated</th></tr></thead>
<tbody>
${rows}
</tbody></table></div>
<p class="muted">Size: the download of a repository's newest tag (its largest platform), compressed.</p>`;
  return shell(o, `${heading} — ${o.title}`, [{ text: 'Images', href: o.path }], body, `${data.repositories.length} ${onlyImages ? 'container image repositories' : 'repositories of images and artifacts'}`);
}

/** The tag shown first on a repository page: `latest` when there is one, else the newest. */
export function defaultTag(repo: RepositoryData): TagData | undefined {
  return repo.tags.find((t) => t.name === 'latest') ?? repo.tags[0];
}

function tagRows(repo: RepositoryData, tags: TagData[]): string {
  return tags
    .map(
      (t) => `<tr><th scope="row"><a href="${esc(t.url ?? '#')}">${esc(t.name)}</a></th><td class="hide-narrow"><code>${esc(shortDigest(t.digest))}</code></td><td class="hide-narrow">${t.kind === 'image' ? pills(t.platforms.map((p) => p.platform)) : repo.kind === 'helm-chart' ? esc(t.chart?.appVersion ?? '') : esc(kindLabel(t))}</td><td class="num">${esc(sizeRange(t.platforms, t))}</td><td class="date">${esc(formatDate(t.created))}</td></tr>`,
    )
    .join('\n');
}

function tagTable(repo: RepositoryData, tags: TagData[]): string {
  return `<div class="scroll" role="region" aria-label="Tags of ${esc(repo.name)}" tabindex="0"><table>
<thead><tr><th scope="col">${repo.kind === 'helm-chart' ? 'Version' : 'Tag'}</th><th scope="col" class="hide-narrow">Digest</th><th scope="col" class="hide-narrow">${repo.kind === 'image' ? 'Platforms' : repo.kind === 'helm-chart' ? 'App version' : 'Kind'}</th><th scope="col" class="num">Size</th><th scope="col">Created</th></tr></thead>
<tbody>
${tagRows(repo, tags)}
</tbody></table></div>`;
}

export function renderRepository(data: RegistryData, repo: RepositoryData, o: PageOptions): string {
  const tag = defaultTag(repo);
  const info = tag?.info ?? {};
  const source = safeHref(info.source);
  const facts: Array<[string, string]> = [];
  if (source) facts.push(['Source', `<a href="${esc(source)}">${esc(info.source)}</a>`]);
  if (info.licenses) facts.push(['Licenses', esc(info.licenses)]);
  facts.push(['Kind', esc(kindLabel(repo))]);
  if (repo.kind === 'image') facts.push(['Platforms', pills(repo.platforms) || '<span class="muted">not stated</span>']);
  facts.push([repo.kind === 'helm-chart' ? 'Versions' : 'Tags', String(repo.tags.length)]);
  if (repo.updated) facts.push(['Updated', esc(formatDate(repo.updated))]);
  const shown = repo.tags.slice(0, TAGS_ON_REPOSITORY_PAGE);
  const more =
    repo.tags.length > shown.length
      ? `<p><a href="${esc(`${repo.url ?? ''}tags/`)}">All ${repo.tags.length} tags</a> (the ${shown.length} newest are listed here).</p>`
      : '';
  const pull = tag
    ? `<h2 id="pull">${tag.kind === 'helm-chart' ? 'Install' : 'Pull'} ${esc(tag.name)}</h2>
${hostNote(data)}
${renderCommands(commandsFor(data, repo, tag), `${repo.name}:${tag.name}`)}
${hasDigestCommands(tag) ? `<details><summary>By digest: always this very ${tag.kind === 'image' ? 'image' : 'artifact'}</summary>
${renderCommands(commandsFor(data, repo, tag, { digest: tag.digest }), `${repo.name} by digest`)}
</details>` : ''}`
    : '';
  // A chart's page is its newest version's: metadata, README, values (Artifact Hub's layout).
  const about = tag?.kind === 'helm-chart' ? chartSection(tag) : tag && tag.kind !== 'image' ? artifactSection(tag) : '';
  const body = `<h1>${esc(repo.name)}</h1>
${repo.description ? `<p>${esc(repo.description)}</p>` : ''}
<dl>${facts.map(([k, v]) => `<dt>${k}</dt><dd>${v}</dd>`).join('')}</dl>
${pull}
${about}
<h2 id="tags">${repo.kind === 'helm-chart' ? 'Versions' : 'Tags'}</h2>
${tagTable(repo, shown)}
${more}`;
  return shell(o, `${repo.name} — ${o.title}`, [{ text: 'Images', href: o.path }, { text: repo.name }], body, repo.description ?? `${kindLabel(repo)} ${repo.name}`);
}

export function renderAllTags(data: RegistryData, repo: RepositoryData, o: PageOptions): string {
  const body = `<h1>Tags of ${esc(repo.name)}</h1>
<p>${repo.tags.length} tags, newest first.</p>
${tagTable(repo, repo.tags)}`;
  return shell(o, `Tags of ${repo.name} — ${o.title}`, [{ text: 'Images', href: o.path }, { text: repo.name, href: repo.url }, { text: 'Tags' }], body, `Every tag of ${repo.name}`);
}

function record(title: string, id: string, values: Record<string, string>): string {
  const entries = Object.entries(values);
  if (entries.length === 0) return '';
  return `<h4 id="${esc(id)}">${esc(title)}</h4><dl>${entries.map(([k, v]) => `<dt><code>${esc(k)}</code></dt><dd>${esc(v)}</dd>`).join('')}</dl>`;
}

function platformSection(p: PlatformData, i: number): string {
  const id = `p${i}`;
  const layers = p.layers
    .map(
      (l, j) =>
        `<tr><td class="num">${j + 1}</td><td><code>${esc(shortDigest(l.digest))}</code></td><td class="num">${esc(formatBytes(l.size))}</td><td class="hide-narrow"><code>${esc((l.createdBy ?? '').slice(0, 160))}</code></td></tr>`,
    )
    .join('\n');
  return `<section aria-labelledby="${id}">
<h3 id="${id}">${esc(p.platform)}</h3>
<dl><dt>Manifest</dt><dd><code>${esc(p.digest)}</code></dd><dt>Size</dt><dd>${esc(formatBytes(p.size))} compressed (config and ${p.layers.length} ${p.layers.length === 1 ? 'layer' : 'layers'})</dd>${p.created ? `<dt>Created</dt><dd>${esc(formatDate(p.created))}</dd>` : ''}</dl>
${layerChart(`${id}-chart`, p.layers)}
<div class="scroll" role="region" aria-label="Layers of ${esc(p.platform)}" tabindex="0"><table>
<thead><tr><th scope="col" class="num">#</th><th scope="col">Layer</th><th scope="col" class="num">Size</th><th scope="col" class="hide-narrow">Created by</th></tr></thead>
<tbody>
${layers}
</tbody></table></div>
${record('Labels', `${id}-labels`, p.labels)}
${record('Annotations', `${id}-annotations`, p.annotations)}
</section>`;
}

/** The tags of a repository that point at one image, the one shown first first (`latest`, else the newest). */
export interface ImagePage {
  repository: RepositoryData;
  tags: TagData[];
}

/** Every image of every repository, once each, with the tags that point at it. */
export function imagePages(repositories: RepositoryData[]): ImagePage[] {
  return repositories.flatMap((repository) => {
    const byDigest = new Map<string, TagData[]>();
    for (const t of repository.tags) byDigest.set(t.digest, [...(byDigest.get(t.digest) ?? []), t]);
    return [...byDigest.values()].map((tags) => ({ repository, tags: [...tags.filter((t) => t.name === 'latest'), ...tags.filter((t) => t.name !== 'latest')] }));
  });
}

export function renderImage(data: RegistryData, page: ImagePage, o: PageOptions): string {
  const { repository: repo, tags } = page;
  const tag = tags[0]!;
  const facts: Array<[string, string]> = [
    ['Tags', tags.map((t) => `<code>${esc(t.name)}</code>`).join(', ')],
    ['Digest', `<code>${esc(tag.digest)}</code>`],
    ['Kind', esc(kindLabel(tag))],
    ['Type', `${tag.index ? (tag.kind === 'image' ? 'multi-platform index' : 'index') : tag.kind === 'image' ? 'image manifest' : 'manifest'} (<code>${esc(tag.mediaType)}</code>)`],
  ];
  if (tag.created) facts.push(['Created', esc(formatDate(tag.created))]);
  for (const [k, label] of [['source', 'Source'], ['url', 'Home page']] as const) {
    const href = safeHref(tag.info[k]);
    if (href) facts.push([label, `<a href="${esc(href)}">${esc(tag.info[k])}</a>`]);
  }
  for (const [k, label] of [['version', 'Version'], ['revision', 'Revision'], ['licenses', 'Licenses']] as const) {
    if (tag.info[k]) facts.push([label, esc(tag.info[k])]);
  }
  // A private upstream's name (or a path on the build machine) is not published unless the site asks.
  if (tag.entry.source) facts.push(['From', `<code>${esc(tag.entry.source)}</code> (images.json entry ${tag.entry.index + 1})`]);
  if (tag.attachments.tags.length || tag.attachments.referrers) {
    const parts = [...tag.attachments.tags.map((t) => `<code>${esc(t)}</code>`), ...(tag.attachments.referrers ? [`${tag.attachments.referrers} referrers`] : [])];
    facts.push(['Attached', parts.join(', ')]);
  }
  const others = tags.slice(1);
  const lead = tag.info.description ?? tag.chart?.description;
  const body = `<h1>${esc(repo.name)}:${esc(tag.name)}</h1>
${lead ? `<p>${esc(lead)}</p>` : ''}
<dl>${facts.map(([k, v]) => `<dt>${k}</dt><dd>${v}</dd>`).join('')}</dl>
<h2 id="pull">${tag.kind === 'helm-chart' ? 'Install' : 'Pull'}</h2>
${hostNote(data)}
${hasDigestCommands(tag) ? '<h3>By tag</h3>' : ''}
${renderCommands(commandsFor(data, repo, tag), `${repo.name}:${tag.name}`)}
${others.length ? `<h3>Other tags of this ${tag.kind === 'image' ? 'image' : 'artifact'}</h3>\n${renderCommands(others.map((t) => commandsFor(data, repo, t)[0]!).map((c, i) => ({ ...c, label: `${c.label}, ${others[i]!.name}` })), `${repo.name} other tags`)}` : ''}
${hasDigestCommands(tag) ? `<h3>By digest</h3>\n${renderCommands(commandsFor(data, repo, tag, { digest: tag.digest }), `${repo.name} by digest`)}` : ''}
${
  tag.kind === 'image'
    ? `<h2 id="platforms">Platforms</h2>\n${tag.platforms.map(platformSection).join('\n') || '<p class="muted">No image manifest.</p>'}`
    : tag.kind === 'helm-chart'
      ? `${chartSection(tag)}\n${otherChartVersions(repo, tags)}`
      : artifactSection(tag)
}
${record(`Annotations of the ${tag.kind === 'image' ? 'image' : 'manifest'}`, 'annotations', tag.annotations)}`;
  return shell(
    o,
    `${repo.name}:${tag.name} — ${o.title}`,
    [{ text: 'Images', href: o.path }, { text: repo.name, href: repo.url }, { text: tags.map((t) => t.name).join(', ') }],
    body,
    tag.info.description ?? tag.chart?.description ?? `${repo.name}:${tag.name}, ${tag.kind === 'image' ? tag.platforms.map((p) => p.platform).join(', ') : kindLabel(tag)}`,
  );
}
