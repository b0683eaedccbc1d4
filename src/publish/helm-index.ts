import { stringify } from 'yaml';
import type { HelmChartData, RegistryData } from '../catalog/types.ts';
import { YAML_TYPE } from '../model/media-types.ts';
import type { PublishedPath } from '../model/published-path.ts';

// The classic Helm chart repository: an `index.yaml` in Helm's documented format (apiVersion v1,
// entries by chart name, generated), whose URLs point at the chart archives the registry already
// publishes as blobs. `helm repo add NAME https://HOST/charts` then works without OCI support,
// from the same files. Written with the `yaml` library: chart metadata is upstream text, and
// quoting YAML by hand is where such files break.


interface IndexEntry {
  apiVersion: string;
  name: string;
  version: string;
  [key: string]: unknown;
}

/** `index.yaml` for every chart the registry data lists; undefined when there is none or the repository is off. */
export function helmIndex(data: RegistryData): { path: PublishedPath; body: string } | undefined {
  const repo = data.helmRepository;
  if (!repo) return undefined;
  const entries = new Map<string, IndexEntry[]>();
  const seen = new Set<string>();
  for (const r of data.repositories) {
    for (const t of r.tags) {
      const c = t.chart;
      // Helm needs a name and a version; a chart without them cannot be an entry.
      if (!c?.archive.digest.startsWith('sha256:') || !c.version || seen.has(`${c.name}@${c.version}`)) continue;
      seen.add(`${c.name}@${c.version}`);
      const list = entries.get(c.name) ?? [];
      list.push(entry(c, `/v2/${r.name}/blobs/${c.archive.digest}`, t.created ?? data.generated));
      entries.set(c.name, list);
    }
  }
  if (entries.size === 0) return undefined;
  const doc = {
    apiVersion: 'v1',
    entries: Object.fromEntries([...entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))),
    generated: data.generated,
  };
  const body = stringify(doc, { lineWidth: 0 });
  const file = repo.index.replace(/^\//u, '');
  return {
    path: { urlPath: repo.index, file, kind: 'helm-index', contentType: YAML_TYPE, size: Buffer.byteLength(body), immutable: false },
    body,
  };
}

/** One chart version: Chart.yaml's fields as Helm writes them, plus where the archive is and its SHA-256. */
function entry(c: HelmChartData, url: string, created: string): IndexEntry {
  const e: IndexEntry = { apiVersion: c.apiVersion ?? 'v2', name: c.name, version: c.version };
  const optional: Array<[string, unknown]> = [
    ['appVersion', c.appVersion],
    ['description', c.description],
    ['type', c.type],
    ['kubeVersion', c.kubeVersion],
    ['home', c.home],
    ['icon', c.icon],
    ['keywords', c.keywords.length ? c.keywords : undefined],
    ['sources', c.sources.length ? c.sources : undefined],
    ['maintainers', c.maintainers.length ? c.maintainers : undefined],
    ['dependencies', c.dependencies.length ? c.dependencies : undefined],
    ['deprecated', c.deprecated || undefined],
    ['annotations', Object.keys(c.annotations).length ? c.annotations : undefined],
  ];
  for (const [k, v] of optional) if (v !== undefined) e[k] = v;
  e.created = created;
  // Helm's digest is the archive's SHA-256 in hex; the blob's digest is that very hash.
  e.digest = c.archive.digest.replace(/^sha256:/u, '');
  // Absolute paths: Helm resolves them against the repository URL, so they work wherever the site is.
  e.urls = [url];
  return e;
}
