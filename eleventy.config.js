// Eleventy 3.1 looks for JavaScript config files only, and Node 20 cannot strip types: this
// repository's own site config is TypeScript (.eleventy.ts), loaded through tsx (a dev dependency).
// Sites that install the package need none of this: they import "registrish" (compiled, in dist/).
import { tsImport } from 'tsx/esm/api';

const { default: config } = await tsImport('./.eleventy.ts', import.meta.url);
export default config;
