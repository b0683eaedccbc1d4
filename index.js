// Package entry for other Eleventy sites: `import registrish from "registrish"`.
// The plugin is written in TypeScript; tsx's scoped loader runs it on Node 20 without a build step
// and without changing how the rest of the host site's modules load.
import { tsImport } from 'tsx/esm/api';

const mod = await tsImport('./src/index.ts', import.meta.url);

export default mod.default;
export const { buildRegistry, formatError, resolveOptions, startPreviewServer, renderNetlifyHeaders, headersFor, HOST_WRITERS, RegistrishError, DEFAULT_OPTIONS } = mod;
