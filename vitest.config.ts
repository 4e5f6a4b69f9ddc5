import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['guest-js/**/*.test.ts'],
    environment: 'node',
    setupFiles: ['guest-js/tests/setup.ts'],
    restoreMocks: true,
  },
})
