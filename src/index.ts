// The package entry. `import registrish from "registrish"` gives the Eleventy plugin; the named
// exports are for scripts and other tools. CommonJS configs (`.eleventy.js`, `eleventy.config.cjs`)
// `require("registrish")` and get the plugin itself: Node ≥ 20.19 loads this ES module with
// require() (no top-level await anywhere in it), and returns the "module.exports" export.
//
// Importing the package (what every Eleventy build does) stays cheap: the functions at the end
// load what they need on first call (the HTTP client and the headers parser above all).

import type { BuildOptions, BuildSummary, PublishOptions, ResolvedRegistry, ResolveOptions } from './build.ts';
import type { CatalogInput, CatalogOptions } from './catalog/data.ts';
import type { RegistryData } from './catalog/types.ts';
import { registrish } from './eleventy/plugin.ts';
import type { PreviewServer, PreviewServerOptions } from './serve/server.ts';
import type { Logger } from './util/log.ts';

export { registrish as default, registrish as 'module.exports' };
export { DEFAULT_OPTIONS, resolveOptions, type BlobsOption, type PagesOption, type RegistrishOptions } from './eleventy/options.ts';
export type { BlobStoreConfig } from './publish/blob-store.ts';

// The `registry` global data templates read.
export type { ArtifactData, ArtifactFile, ArtifactKind, HelmChartData, ImageInfo, LayerData, PlatformData, RegistryData, RepositoryData, TagData } from './catalog/types.ts';
export type { CatalogInput, CatalogOptions } from './catalog/data.ts';

export type { BuildOptions, BuildSummary, PublishOptions, ResolvedRegistry, ResolveOptions } from './build.ts';
export type { ImageSpec, RegistrishConfig } from './config/types.ts';
export type { PublishedPath } from './model/published-path.ts';
export type { PreviewServer, PreviewServerOptions } from './serve/server.ts';
export type { Logger } from './util/log.ts';
export { headersFor } from './publish/headers.ts';
export { HOSTS, hostNamed, type Host, type HostWriter } from './hosts/index.ts';
export { renderNetlifyHeaders } from './hosts/netlify.ts';
export { formatError, RegistrishError } from './util/errors.ts';

/** One build without Eleventy: resolve images.json, then publish v2/ and the host files. */
export async function buildRegistry(options: BuildOptions): Promise<BuildSummary> {
  return (await import('./build.ts')).buildRegistry(options);
}

/** The first half of a build: the plan, with blobs downloading (see publishRegistry). */
export async function resolveRegistry(options: ResolveOptions): Promise<ResolvedRegistry> {
  return (await import('./build.ts')).resolveRegistry(options);
}

/** The second half of a build: wait for the blobs, write v2/ and the host files. */
export async function publishRegistry(resolved: ResolvedRegistry, options: PublishOptions & { logger: Logger }): Promise<BuildSummary> {
  return (await import('./build.ts')).publishRegistry(resolved, options);
}

/** The `registry` global data of a resolved registry. */
export async function buildRegistryData(input: CatalogInput, options?: CatalogOptions): Promise<RegistryData> {
  return (await import('./catalog/data.ts')).buildRegistryData(input, options);
}

/** The preview server (`registrish serve`): a built output served with its `_headers` applied. */
export async function startPreviewServer(options: PreviewServerOptions): Promise<PreviewServer> {
  return (await import('./serve/server.ts')).startPreviewServer(options);
}
