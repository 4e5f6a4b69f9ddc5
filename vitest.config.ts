import { svelte } from '@sveltejs/vite-plugin-svelte'
import { defineConfig } from 'vitest/config'

export default defineConfig({
  // Compiles the Svelte components of guest-js/tests/svelte/ with the real compiler (no svelte.config.js: the
  // package itself ships no component).
  plugins: [svelte({ configFile: false })],
  // Svelte's client runtime (`mount`) under the `browser` condition; its default export is the server's.
  resolve: { conditions: ['browser'] },
  test: {
    include: ['guest-js/**/*.test.ts', 'guest-js/**/*.test.tsx'],
    environment: 'node',
    setupFiles: ['guest-js/tests/setup.ts'],
    restoreMocks: true,
  },
})
