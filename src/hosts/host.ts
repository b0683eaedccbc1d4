import type { ProblemKind } from '../check/problems.ts';
import type { ResponseHeaders } from '../http/response.ts';
import type { PublishedPath } from '../model/published-path.ts';
import { onSite } from '../publish/blob-store.ts';
import { RegistrishError } from '../util/errors.ts';

// A host the registry can be served from. The build renders each selected host's configuration
// from the neutral description of every URL (model/published-path.ts); `registrish check` asks the
// host how to fix what it finds. A host knows nothing about registries or the plan: adding one is
// one file here and one line in index.ts.

export interface HostCheck {
  errors: string[];
  warnings: string[];
}

export interface HostFile {
  /** Path relative to the output folder. */
  file: string;
  text: string;
}

/** The configuration files a host reads (`_headers`, `.htaccess`, an nginx config). */
export interface HostWriter {
  /** Limits of the host; errors stop the build before anything is replaced in the output. */
  check(paths: PublishedPath[]): HostCheck;
  /**
   * The host's configuration files (may read what the output holds now, e.g. a site's own `_headers`).
   * `options`: this host's own options (the plugin's option named after the host), checked by the host.
   */
  render(outDir: string, paths: PublishedPath[], options?: unknown): Promise<{ files: HostFile[]; warnings: string[] }>;
  /**
   * The host's files send blobs kept in an object store (paths with a `location`: the `blobs`
   * option) there with a 307. A host without it refuses such a build in checkHosts().
   */
  blobRedirects?: boolean;
  /**
   * Files of the site that render() reads from the output (a site's own `_headers`). The plugin
   * publishes the registry before Eleventy writes the site, and renders again when one changed.
   */
  siteFiles?: readonly string[];
}

export interface Host {
  readonly name: string;
  /** Files the build writes for this host; absent for hosts filled by `registrish deploy` (S3). */
  readonly writer?: HostWriter;
  /** This host's fix for a kind of problem `registrish check` finds (the generic fix otherwise). */
  readonly fixes: Partial<Record<ProblemKind, string>>;
  /** A host-specific look at the answer to `GET /v2/` (Apache: are the generated files read at all?). */
  probeBase?(headers: ResponseHeaders): { kind: ProblemKind; message: string } | undefined;
}

/** Each host's own options, by host name (e.g. `{ netlify: { headers: 'compact' } }`). */
export type HostOptions = Readonly<Record<string, unknown>>;

/** Renders every given host's files, prefixing warnings with the host's name. */
export async function renderHosts(
  hosts: readonly Host[],
  outDir: string,
  paths: PublishedPath[],
  hostOptions: HostOptions = {},
): Promise<{ files: HostFile[]; warnings: string[] }> {
  const files: HostFile[] = [];
  const warnings: string[] = [];
  const owner = new Map<string, { host: string; text: string }>();
  for (const host of hosts) {
    if (!host.writer) continue;
    const r = await host.writer.render(outDir, paths, hostOptions[host.name]);
    for (const f of r.files) {
      const other = owner.get(f.file);
      // The same file with the same text (the shared error bodies under v2/_errors/) is written once.
      if (other?.text === f.text) continue;
      // Netlify and Cloudflare Pages both read `_headers`, with different rules: one output, one host.
      if (other) throw new RegistrishError(`hosts "${other.host}" and "${host.name}" both write ${f.file}: build them into separate output folders`);
      owner.set(f.file, { host: host.name, text: f.text });
      files.push(f);
    }
    warnings.push(...r.warnings.map((m) => `${host.name}: ${m}`));
  }
  return { files, warnings };
}

/** The site files (output-relative) that these hosts' files are rendered from (HostWriter.siteFiles). */
export function siteFilesRead(hosts: readonly Host[]): string[] {
  return [...new Set(hosts.flatMap((h) => h.writer?.siteFiles ?? []))].sort();
}

/** Each host's limits; warnings prefixed with its name, errors collected (the caller fails the build). */
export function checkHosts(hosts: readonly Host[], paths: PublishedPath[]): HostCheck {
  const out: HostCheck = { errors: [], warnings: [] };
  const elsewhere = paths.some((p) => p.location !== undefined);
  for (const host of hosts) {
    if (!host.writer) continue;
    if (elsewhere && !host.writer.blobRedirects) {
      out.errors.push(
        `${host.name}: blobs in an object store (the "blobs" option) are not supported on this host yet: its files cannot send blob URLs to the store. ` +
          'Use nginx, apache, netlify, cloudflare or `registrish serve`, or build without "blobs".',
      );
      continue;
    }
    // A host's limits (file sizes, counts) apply to what stays on the site.
    const r = host.writer.check(onSite(paths));
    out.errors.push(...r.errors.map((e) => `${host.name}: ${e}`));
    out.warnings.push(...r.warnings.map((w) => `${host.name}: ${w}`));
  }
  return out;
}
