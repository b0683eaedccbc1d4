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
