// The package entry. `import registrish from "registrish"` gives the Eleventy plugin; the named
// exports are for scripts and other tools. CommonJS configs (`.eleventy.js`, `eleventy.config.cjs`)
// `require("registrish")` and get the plugin itself: Node ≥ 20.19 loads this ES module with
// require() (no top-level await anywhere in it), and returns the "module.exports" export.

import { registrish } from './eleventy/plugin.ts';

export { registrish as default, registrish as 'module.exports' };
export { DEFAULT_OPTIONS, resolveOptions, type RegistrishOptions } from './eleventy/options.ts';

export { buildRegistry, publishRegistry, resolveRegistry } from './build.ts';
export type { BuildOptions, BuildSummary, PublishOptions, ResolvedRegistry, ResolveOptions } from './build.ts';
export type { ImageSpec, RegistrishConfig } from './config/types.ts';
export type { PublishedPath } from './model/published-path.ts';

export { headersFor } from './publish/headers.ts';
export { HOSTS, hostNamed, type Host, type HostWriter } from './hosts/index.ts';
export { renderNetlifyHeaders } from './hosts/netlify.ts';
export { startPreviewServer } from './serve/server.ts';

export { formatError, RegistrishError } from './util/errors.ts';
export type { Logger } from './util/log.ts';
