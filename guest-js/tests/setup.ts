// `@tauri-apps/api/mocks` talks to `window.__TAURI_INTERNALS__`; Node has no `window`, and the bindings need
// nothing else from a DOM (Node 20 has EventTarget, Event, MessageEvent and Blob), so no jsdom.
const g = globalThis as { window?: unknown }
g.window ??= globalThis
