import { defineConfig } from 'vite'

// The page runs in the Tauri webview, built into `dist/` (tauri.conf.json `build.frontendDist`).
export default defineConfig({
  clearScreen: false,
  resolve: {
    // `tauri-plugin-realtime-api` is linked from the repo root, which has its own copy of @tauri-apps/api:
    // bundle one copy only.
    dedupe: ['@tauri-apps/api'],
  },
  server: {
    host: '127.0.0.1',
    port: 1420,
    strictPort: true,
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
  },
})
