// Package entry for other Eleventy sites: `import registrish from "registrish"`.
// The plugin is written in TypeScript; loader.js runs the bundle npm install made of it, or the
// sources themselves through tsx when that bundle is missing or out of date.
import { loadEntry } from './loader.js';

const { module: mod } = await loadEntry('index');

export default mod.default;
export const { buildRegistry, formatError, resolveOptions, startPreviewServer, renderNetlifyHeaders, headersFor, HOST_WRITERS, RegistrishError, DEFAULT_OPTIONS } = mod;
