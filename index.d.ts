// Types of the package entry (index.js): those of the sources it loads.
export * from './src/index.ts';
export { default } from './src/index.ts';
