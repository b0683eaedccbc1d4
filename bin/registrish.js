#!/usr/bin/env node
// The `registrish` command: serve, check, deploy (dist/ is compiled from src/ by tsc).
import { main } from '../dist/cli/main.js';

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
