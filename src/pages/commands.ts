import { esc } from './html.ts';

// Pull commands for one image reference, for each client people use. When the build does not
// know the registry's host, the page fills it in (a placeholder stays visible without JavaScript),
// and a page served over plain HTTP (a preview) shows the flags each client then needs.

export interface CommandLine {
  label: string;
  /** HTML of the command (escaped; may hold the host placeholder and plain-HTTP flags). */
  html: string;
}

/** The host as HTML: the known one, or a placeholder the page's script replaces. */
function hostHtml(host: string | undefined): string {
  return host ? esc(host) : '<span class="host" data-host>your-registry-host</span>';
}

/** A flag shown only when the page (and so the registry) is served over plain HTTP. */
function plainFlag(host: string | undefined, flag: string): string {
  return host ? '' : `<span data-plain-http hidden>${esc(flag)} </span>`;
}

/** `name:tag` or `name@sha256:…` → the commands that pull it. */
export function pullCommands(host: string | undefined, name: string, ref: { tag?: string; digest?: string }): CommandLine[] {
  const image = `${hostHtml(host)}/${esc(name)}${ref.tag !== undefined ? `:${esc(ref.tag)}` : `@${esc(ref.digest)}`}`;
  return [
    { label: 'docker', html: `docker pull ${image}` },
    { label: 'podman', html: `podman pull ${plainFlag(host, '--tls-verify=false')}${image}` },
    { label: 'nerdctl', html: `nerdctl pull ${plainFlag(host, '--insecure-registry')}${image}` },
    { label: 'ctr', html: `ctr image pull ${plainFlag(host, '--plain-http')}${image}` },
    { label: 'Kubernetes', html: `image: ${image}` },
  ];
}

export function renderCommands(lines: CommandLine[], what: string): string {
  return `<div class="cmds">${lines
    .map((l) => `<div class="cmd" data-label="${esc(`${l.label} ${what}`)}"><span class="label">${esc(l.label)}</span><code>${l.html}</code></div>`)
    .join('')}</div>`;
}

/** `oci://HOST/NAME`, the way Helm names a chart in a registry. */
function chartRef(host: string | undefined, name: string): string {
  return `oci://${hostHtml(host)}/${esc(name)}`;
}

/**
 * The commands of a Helm chart's users. Helm writes `+` in a version as `_` in the tag, and finds
 * the tag from `--version`; plain-HTTP registries need `--plain-http` (Helm 3.13 and later).
 */
export function helmCommands(host: string | undefined, name: string, version: string, repo?: { url: string; name: string; chart: string }): CommandLine[] {
  const chart = chartRef(host, name);
  const v = `--version ${esc(version)}`;
  const plain = plainFlag(host, '--plain-http');
  const release = esc(name.split('/').at(-1)!);
  const lines: CommandLine[] = [
    { label: 'helm install', html: `helm install ${plain}${release} ${chart} ${v}` },
    { label: 'helm pull', html: `helm pull ${plain}${chart} ${v}` },
    { label: 'helm show values', html: `helm show values ${plain}${chart} ${v}` },
  ];
  if (repo) {
    // The classic repository (index.yaml), for Helm versions or tools without OCI support.
    const site = host ? `https://${esc(host)}` : '<span class="host" data-origin>https://your-registry-host</span>';
    lines.push({ label: 'helm repo add', html: `helm repo add ${esc(repo.name)} ${site}${esc(repo.url)}` });
    lines.push({ label: 'helm install (repo)', html: `helm install ${release} ${esc(repo.name)}/${esc(repo.chart)} ${v}` });
  }
  return lines;
}

/** Tools that pull a WebAssembly module or component from a registry. */
export function wasmCommands(host: string | undefined, name: string, tag: string): CommandLine[] {
  const ref = `${hostHtml(host)}/${esc(name)}:${esc(tag)}`;
  return [
    { label: 'oras', html: `oras pull ${plainFlag(host, '--plain-http')}${ref}` },
    { label: 'wkg', html: `wkg oci pull ${ref}` },
  ];
}

/** Flux's own command for its artifacts, and ORAS. */
export function fluxCommands(host: string | undefined, name: string, tag: string): CommandLine[] {
  return [
    { label: 'flux', html: `flux pull artifact oci://${hostHtml(host)}/${esc(name)}:${esc(tag)} --output ./${esc(name.split('/').at(-1)!)}` },
    ...orasCommands(host, name, tag),
  ];
}

/** Apptainer pulls SIF images from OCI registries with its `oras://` scheme. */
export function apptainerCommands(host: string | undefined, name: string, tag: string): CommandLine[] {
  return [
    { label: 'apptainer', html: `apptainer pull ${plainFlag(host, '--no-https')}oras://${hostHtml(host)}/${esc(name)}:${esc(tag)}` },
    ...orasCommands(host, name, tag),
  ];
}

/** Any OCI artifact: ORAS pulls its files into the current folder. */
export function orasCommands(host: string | undefined, name: string, tag: string): CommandLine[] {
  return [{ label: 'oras', html: `oras pull ${plainFlag(host, '--plain-http')}${hostHtml(host)}/${esc(name)}:${esc(tag)}` }];
}
