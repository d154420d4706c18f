import { defineConfig } from 'vitest/config';

// Browser journeys: Vitest is only the runner here (no jsdom); playwright-core drives the system Chromium.
export default defineConfig({
  test: {
    include: ['e2e/**/*.e2e.ts'],
    environment: 'node',
    testTimeout: 60_000,
    hookTimeout: 240_000, // `go run` compiles the server before /readyz answers
    fileParallelism: false,
    pool: 'forks',
  },
});
