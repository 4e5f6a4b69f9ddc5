import { defineConfig } from 'vite'

// The bench page, built into `dist/` (src-tauri/tauri.conf.json `build.frontendDist`).
export default defineConfig({
  clearScreen: false,
  resolve: {
    // `tauri-plugin-realtime-api` is linked from the repo root, which has its own copy of @tauri-apps/api:
    // bundle one copy only.
    dedupe: ['@tauri-apps/api'],
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
  },
})
