import type { RegistryData, RepositoryData, TagData } from '../catalog/types.ts';
import { KIND_LABELS } from '../model/artifact-kind.ts';
import { formatBytes, shortDigest } from '../util/format.ts';
import { apptainerCommands, fluxCommands, helmCommands, orasCommands, pullCommands, renderCommands, wasmCommands, type CommandLine } from './commands.ts';
import { esc, safeHref } from './html.ts';
import { renderReadme } from './markdown.ts';

// What a page shows for each kind of artifact: the commands its users type, and the facts they
// look for (a chart's metadata, README and values; an artifact's files). Container images keep
// their platforms and layers (render.ts).

/** The name `helm repo add` is shown with (any name works; this one is the registry's). */
export const HELM_REPO_NAME = 'registry';

/** The version Helm is asked for: the chart's own (a tag writes `+` as `_`). */
function chartVersion(tag: TagData): string {
  return tag.chart?.version || tag.name.replace(/_/gu, '+');
}

/** The commands that get this tag, for its kind. */
export function commandsFor(data: RegistryData, repo: RepositoryData, tag: TagData, ref: { tag?: string; digest?: string } = { tag: tag.name }): CommandLine[] {
  const host = data.host;
  // Tools other than container runtimes take tags; by digest, ORAS takes `name@digest` as well.
  const tagOrDigest = ref.tag ?? ref.digest!;
  const orasRef = (cmds: CommandLine[]) => (ref.tag !== undefined ? cmds : cmds.map((c) => ({ ...c, html: c.html.replace(`:${esc(tagOrDigest)}`, `@${esc(tagOrDigest)}`) })));
  switch (tag.kind) {
    case 'image':
      return pullCommands(host, repo.name, ref);
    case 'helm-chart': {
      const chart = tag.chart?.name ?? repo.name.split('/').at(-1)!;
      return helmCommands(host, repo.name, chartVersion(tag), data.helmRepository ? { url: data.helmRepository.url, name: HELM_REPO_NAME, chart } : undefined);
    }
    case 'wasm':
      return orasRef(wasmCommands(host, repo.name, tagOrDigest));
    case 'flux':
      return orasRef(fluxCommands(host, repo.name, tagOrDigest));
    case 'apptainer':
      return orasRef(apptainerCommands(host, repo.name, tagOrDigest));
    default:
      return orasRef(orasCommands(host, repo.name, tagOrDigest));
  }
}

/** Only container images have something else to pull by digest than by tag with other commands. */
export function hasDigestCommands(tag: TagData): boolean {
  return tag.kind !== 'helm-chart';
}

export function kindLabel(tag: { kind: TagData['kind'] }): string {
  return KIND_LABELS[tag.kind];
}

function link(url: string | undefined): string {
  const href = safeHref(url);
  return href ? `<a href="${esc(href)}" rel="nofollow noopener">${esc(url)}</a>` : esc(url ?? '');
}

function facts(rows: Array<[string, string]>): string {
  return rows.length ? `<dl>${rows.map(([k, v]) => `<dt>${k}</dt><dd>${v}</dd>`).join('')}</dl>` : '';
}

/** A chart's metadata (Chart.yaml), README and default values. */
export function chartSection(tag: TagData): string {
  const c = tag.chart;
  if (!c) return '';
  const rows: Array<[string, string]> = [
    ['Chart', `<code>${esc(c.name)}</code> ${esc(c.version)}`],
  ];
  if (c.appVersion) rows.push(['App version', esc(c.appVersion)]);
  if (c.type) rows.push(['Type', esc(c.type)]);
  if (c.kubeVersion) rows.push(['Kubernetes', `<code>${esc(c.kubeVersion)}</code>`]);
  if (c.deprecated) rows.push(['Deprecated', 'yes']);
  if (c.home) rows.push(['Home page', link(c.home)]);
  if (c.sources.length) rows.push(['Sources', c.sources.map(link).join('<br>')]);
  if (c.keywords.length) rows.push(['Keywords', c.keywords.map((k) => `<span class="pill">${esc(k)}</span>`).join('')]);
  if (c.maintainers.length) {
    rows.push([
      'Maintainers',
      c.maintainers
        .map((m) => {
          const url = safeHref(m.url);
          const name = url ? `<a href="${esc(url)}" rel="nofollow noopener">${esc(m.name)}</a>` : esc(m.name);
          return m.email ? `${name} (${esc(m.email)})` : name;
        })
        .join('<br>'),
    ]);
  }
  // Never an <img>: the page loads nothing from another origin.
  if (c.icon) rows.push(['Icon', link(c.icon)]);
  rows.push(['Chart archive', `<code>${esc(shortDigest(c.archive.digest))}</code>, ${esc(formatBytes(c.archive.size))}`]);
  const deps = c.dependencies.length
    ? `<h3 id="dependencies">Dependencies</h3>
<div class="scroll" role="region" aria-label="Dependencies" tabindex="0"><table>
<thead><tr><th scope="col">Chart</th><th scope="col">Version</th><th scope="col">Repository</th><th scope="col" class="hide-narrow">Condition</th></tr></thead>
<tbody>
${c.dependencies.map((d) => `<tr><th scope="row">${esc(d.alias ? `${d.name} (as ${d.alias})` : d.name)}</th><td><code>${esc(d.version ?? '')}</code></td><td>${link(d.repository)}</td><td class="hide-narrow"><code>${esc(d.condition ?? '')}</code></td></tr>`).join('\n')}
</tbody></table></div>`
    : '';
  const skipped = c.skipped ? `<p class="muted">Not shown: ${esc(c.skipped)}.</p>` : '';
  const readme = c.readme !== undefined ? `<h2 id="readme">README</h2>\n<div class="readme">${renderReadme(c.readme)}</div>` : '';
  const values =
    c.values !== undefined
      ? `<h2 id="values">Default values</h2>
<p class="muted"><code>values.yaml</code> of the chart; <code>helm show values</code> prints the same.</p>
<pre class="values" tabindex="0" aria-label="values.yaml"><code>${esc(c.values)}</code></pre>`
      : '';
  // (The description is the page's lead paragraph.)
  return `<h2 id="chart">Chart</h2>
${facts(rows)}
${deps}
${skipped}
${readme}
${values}`;
}

/** An artifact's type and files (WebAssembly, Flux, SIF, anything ORAS pushed). */
export function artifactSection(tag: TagData): string {
  const a = tag.artifact;
  if (!a) return '';
  const rows: Array<[string, string]> = [
    ['Artifact type', `<code>${esc(a.artifactType)}</code>`],
    ['Config', `<code>${esc(a.configMediaType)}</code>`],
    ['Size', esc(formatBytes(a.size))],
  ];
  const files = a.files
    .map((f) => `<tr><th scope="row">${f.title ? esc(f.title) : '<span class="muted">untitled</span>'}</th><td><code>${esc(f.mediaType)}</code></td><td class="num">${esc(formatBytes(f.size))}</td><td class="hide-narrow"><code>${esc(shortDigest(f.digest))}</code></td></tr>`)
    .join('\n');
  const annotations = Object.entries(a.annotations);
  return `<h2 id="artifact">${esc(kindLabel(tag))}</h2>
${facts(rows)}
<h3 id="files">Files</h3>
<div class="scroll" role="region" aria-label="Files" tabindex="0"><table>
<thead><tr><th scope="col">File</th><th scope="col">Media type</th><th scope="col" class="num">Size</th><th scope="col" class="hide-narrow">Digest</th></tr></thead>
<tbody>
${files}
</tbody></table></div>
${annotations.length ? `<h3 id="artifact-annotations">Annotations</h3><dl>${annotations.map(([k, v]) => `<dt><code>${esc(k)}</code></dt><dd>${esc(v)}</dd>`).join('')}</dl>` : ''}`;
}

/** A chart version's page lists the chart's other versions (Artifact Hub's sidebar), highest first. */
export function otherChartVersions(repo: RepositoryData, current: readonly TagData[]): string {
  const shown = new Set(current.map((t) => t.digest));
  const others = repo.tags.filter((t) => !shown.has(t.digest)).slice(0, 20);
  if (others.length === 0) return '';
  const rows = others
    .map((t) => `<tr><th scope="row"><a href="${esc(t.url ?? '#')}">${esc(t.chart?.version || t.name)}</a></th><td>${esc(t.chart?.appVersion ?? '')}</td></tr>`)
    .join('\n');
  const more = repo.tags.length - shown.size > others.length ? `<p><a href="${esc(repo.url ?? '#')}#tags">All versions</a></p>` : '';
  return `<h2 id="versions">Other versions</h2>
<div class="scroll" role="region" aria-label="Other versions" tabindex="0"><table>
<thead><tr><th scope="col">Version</th><th scope="col">App version</th></tr></thead>
<tbody>
${rows}
</tbody></table></div>
${more}`;
}
