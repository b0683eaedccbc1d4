// Eleventy 3.1 looks for JavaScript config files only, and Node 20 cannot strip types:
// this loads the TypeScript config (.eleventy.ts) through tsx, so `npx eleventy` just works.
import { tsImport } from 'tsx/esm/api';

const { default: config } = await tsImport('./.eleventy.ts', import.meta.url);
export default config;
