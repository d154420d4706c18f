/// <reference types="vitest/config" />
import { writeFileSync } from 'node:fs';
import { defineConfig, type Plugin } from 'vite';
import react from '@vitejs/plugin-react';

// dist/.keep is tracked so that the Go package's //go:embed compiles before a build; emptying dist removes it,
// so it is written back after every build.
function keepDist(): Plugin {
  return {
    name: 'tamarack-keep-dist',
    apply: 'build',
    closeBundle() {
      writeFileSync(new URL('./dist/.keep', import.meta.url), '');
    },
  };
}

// The build must satisfy the server's Content-Security-Policy (script-src 'self'; style-src 'self'):
// no inline scripts (the module-preload polyfill would be one), CSS in files, nothing inlined as data: but images.
export default defineConfig({
  plugins: [react(), keepDist()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    sourcemap: false,
    chunkSizeWarningLimit: 1200,
  },
  server: {
    proxy: {
      '/api': { target: process.env.TAMARACK_API ?? 'http://127.0.0.1:8080', ws: true },
    },
  },
  test: {
    environment: 'jsdom',
    globals: true,
    setupFiles: ['./src/test/setup.ts'],
    include: ['src/**/*.test.{ts,tsx}'],
    css: false,
    testTimeout: 30_000, // see asyncUtilTimeout in src/test/setup.ts
  },
});
