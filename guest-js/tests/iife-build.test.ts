// The committed `api-iife.js` (the Rust build reads it, and Tauri injects it) is what the sources build now.
// `scripts/test` also checks that `npm run build`, which rewrites it, left it unchanged in git.
// In Node, not jsdom: esbuild checks that it runs with Node's own typed arrays.

import { expect, it } from 'vitest'

import committed from '../../api-iife.js?raw'
import { buildIife } from '../../scripts/build-iife.mjs'

it('api-iife.js is what `npm run build:iife` builds from the sources now', async () => {
  const fresh = await buildIife()
  // A boolean, not the two minified texts: their diff would say nothing.
  expect(committed === fresh, 'api-iife.js is stale: run `npm run build:iife` and commit api-iife.js').toBe(true)
})
