// The entry of `api-iife.js`, the plugin's global API script: with `withGlobalTauri: true`, Tauri injects it into
// every page after its own `window.__TAURI__`, and it adds the bindings there as `realtime`. Not part of the npm
// package (`tsconfig.build.json` leaves it out): unlike the modules, importing it has an effect.

import * as realtime from './index.js'

const tauri = (globalThis as { __TAURI__?: unknown }).__TAURI__
// Only into Tauri's own object, as the official plugins do, beside the other plugins' entries; an entry that is
// already there (a second copy of the script) is left as it is.
if (typeof tauri === 'object' && tauri !== null && !Object.prototype.hasOwnProperty.call(tauri, 'realtime')) {
  Object.defineProperty(tauri, 'realtime', { value: Object.freeze({ ...realtime }), enumerable: true })
}
