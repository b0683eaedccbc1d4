#!/usr/bin/env node
// The CLI: the bundle npm install made of src/, or src/ itself through tsx's scoped loader when
// that bundle is missing or out of date (loader.js).
import { loadEntry } from '../loader.js';

const { module } = await loadEntry('cli');
process.exitCode = await module.main(process.argv.slice(2));
