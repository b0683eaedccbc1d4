#!/usr/bin/env node
// Runs the TypeScript CLI without a build step. tsx's scoped tsImport compiles only this import
// graph (src/*.ts) and leaves the rest of the process alone. `tsconfig: false`: by default tsx
// would read the tsconfig.json of the current directory, i.e. the user's project, not ours.
import { tsImport } from 'tsx/esm/api';

const { main } = await tsImport('../src/cli.ts', { parentURL: import.meta.url, tsconfig: false });
process.exitCode = await main(process.argv.slice(2));
