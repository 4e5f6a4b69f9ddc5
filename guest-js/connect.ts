// `connect()` and `inspect()`: the Tauri backend inside a Tauri webview, the browser's own sockets outside.

import { connectBrowser, inspectBrowser } from './browser.js'
import { ConnectionImpl } from './connection.js'
import { connectTauri, inspectTauri, inTauri } from './tauri.js'
import type { Connection, ConnectionInfo, ConnectOptions } from './types.js'

/** A fresh id matching /^[A-Za-z0-9_-]{1,64}$/. */
export function newId(): string {
  const c = globalThis.crypto
  if (typeof c?.randomUUID === 'function') return c.randomUUID()
  // `randomUUID` needs a secure context; a dev server on a LAN address is not one.
  return Array.from(c.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('')
}

/** Opens a connection and returns the internal handle, for the drop-in classes. */
export async function connectInternal(options: ConnectOptions): Promise<ConnectionImpl> {
  if (!options || typeof options.url !== 'string') throw new TypeError('connect() needs options with a `url` string')
  const conn = new ConnectionImpl(newId())
  if (inTauri()) await connectTauri(conn, options)
  else conn.attach({ state: 'connecting', shared: false }, connectBrowser(conn.id, options, conn))
  return conn
}

/**
 * Opens a connection (or joins an identical one, see `ConnectOptions.share`).
 *
 * Registers with the page's receiver before Rust connects, so no frame is lost. Frames that arrive before
 * the first `on()` call are held (at most {@link MAX_HELD_FRAMES}) and handed out in order in a later task.
 * Rejects with a {@link RealtimeError} carrying the Rust side's message (invalid options, URL not allowed by
 * the scope, ...). Outside Tauri it uses the browser's own `WebSocket` and `fetch` behind the same interface, and
 * rejects options a browser cannot honour (see the README, "Running in a plain browser").
 */
export async function connect(options: ConnectOptions): Promise<Connection> {
  return connectInternal(options)
}

/** Every connection this webview can see (or one, by id), with counters, queue depth and last error. */
export async function inspect(id?: string): Promise<ConnectionInfo[]> {
  return inTauri() ? inspectTauri(id) : inspectBrowser(id)
}
