import { defineConfig } from 'vitest/config';

// Browser journeys: Vitest is only the runner here (no jsdom); playwright-core drives the system Chromium.
export default defineConfig({
  test: {
    include: ['e2e/**/*.e2e.ts'],
    environment: 'node',
    testTimeout: 120_000,
    hookTimeout: 90_000, // seed, stripe-mock and `tamarack serve` start before the journeys
    fileParallelism: false,
    pool: 'forks',
  },
});
