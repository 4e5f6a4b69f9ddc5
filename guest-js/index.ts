/**
 * Guest bindings of tauri-plugin-realtime: WebSocket and Server-Sent Events streams opened in Rust, relayed to
 * the webview in batches of frames in `seq` order (each batch a script that calls the page's receiver).
 *
 * - {@link connect} gives a {@link Connection}: `on(kind | eventType, handler)`, `handle(handlers)` (JSON
 *   messages by type), `state` and `error` stores and `messages()` (Svelte contract), `send`, `close`,
 *   `reconnect`, `inspect`.
 * - `tauri-plugin-realtime-api/react` has the `useRealtime` hook.
 * - {@link RealtimeWebSocket} and {@link RealtimeEventSource} are drop-ins for the browser's classes.
 * - Outside Tauri (a plain browser during `vite dev`) the same API runs on the browser's own WebSocket and on
 *   `fetch`, with the plugin's reconnect policy, queue, heartbeat and fallback; what a browser cannot do is
 *   refused with a {@link RealtimeError} that names the option.
 *
 * @module
 */

export { connect, inspect } from './connect.js'
export { MAX_HELD_FRAMES } from './connection.js'
export { ACK_WINDOW } from './tauri.js'
export { decodeBinary, type SendData } from './base64.js'
export { RealtimeError } from './errors.js'
export { RealtimeErrorEvent } from './events.js'
export { RealtimeWebSocket, type RealtimeWebSocketInit } from './websocket.js'
export { RealtimeEventSource, type RealtimeEventSourceInit } from './eventsource.js'
export type * from './types.js'
