import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Compiles dist/ from src/ once before the tests (the CLI and other sites load it).
    globalSetup: ['./test/global-setup.ts'],
    // Tests start real registries, nginx-like servers and container daemons: give them time,
    // and no more workers than this 2-core machine has.
    testTimeout: 120_000,
    hookTimeout: 240_000,
    maxWorkers: 2,
    reporters: ['default', './test/summary-reporter.ts'],
  },
});
