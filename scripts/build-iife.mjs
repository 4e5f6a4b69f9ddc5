#!/usr/bin/env node
// Builds `api-iife.js`, the plugin's global API script (build.rs registers it; Tauri injects it into pages of apps
// with `withGlobalTauri: true`), from `guest-js/global.ts`: the bindings of `guest-js/index.ts` and what they
// import, in one script that sets `window.__TAURI__.realtime`. The built file is committed, because the Rust build
// reads it; `guest-js/tests/iife.test.ts` checks that it equals a fresh build from `buildIife()`.
import { writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

import { build } from 'esbuild'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')

/** The text of `api-iife.js` as the sources build it now. */
export async function buildIife() {
  const result = await build({
    absWorkingDir: root,
    entryPoints: ['guest-js/global.ts'],
    bundle: true,
    format: 'iife',
    // No bundler runs between this script and the webview: lowered for the older WebKit versions Tauri v2 runs on.
    target: 'es2020',
    minify: true,
    write: false,
    logLevel: 'warning',
    banner: { js: '// tauri-plugin-realtime: built by `npm run build:iife` from guest-js/global.ts; do not edit.' },
  })
  return result.outputFiles[0].text
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  writeFileSync(join(root, 'api-iife.js'), await buildIife())
}
