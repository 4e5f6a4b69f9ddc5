// The Tauri backend: the plugin's commands behind the Backend interface. It registers a connection with the
// page's receiver before `connect` starts delivery, asks for the direct route, and acknowledges processed frames
// (flow control).

import { invoke } from '@tauri-apps/api/core'

import { encodeBase64 } from './base64.js'
import type { Backend, ConnectionImpl } from './connection.js'
import { RealtimeError, toRealtimeError } from './errors.js'
import { receiver } from './receiver.js'
import type {
  ConnectionInfo,
  ConnectOptions,
  ConnectResult,
  OnConnectResult,
  RemovedResult,
  SendResult,
} from './types.js'

/**
 * Flow control with the Rust side: at most this much is delivered to the webview and not yet processed by
 * the handlers; Rust then pauses (and so does its read from the server) until the bindings acknowledge.
 * The bindings acknowledge every quarter window, so a slow page bounds memory instead of queueing scripts.
 */
export const ACK_WINDOW = { frames: 4096, bytes: 8 * 1024 * 1024 } as const

/** True inside a Tauri webview (or under `@tauri-apps/api/mocks`). */
export function inTauri(): boolean {
  const internals = (globalThis as { __TAURI_INTERNALS__?: { invoke?: unknown } }).__TAURI_INTERNALS__
  return typeof internals?.invoke === 'function'
}

function defined<T extends object>(obj: T): T {
  return Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== undefined)) as T
}

function tauriBackend(id: string): Backend {
  // Frames and data bytes processed in all at the last acknowledgement.
  let ackedFrames = 0
  let ackedBytes = 0
  return {
    send: (payload, contentType) =>
      invoke<SendResult>(
        'plugin:realtime|send',
        defined(
          typeof payload === 'string'
            ? { id, data: payload, contentType }
            : { id, data: encodeBase64(payload), binary: true, contentType },
        ),
      ),
    setOnConnect: (key, payload) =>
      invoke<OnConnectResult>(
        'plugin:realtime|set_on_connect',
        typeof payload === 'string'
          ? { id, key, data: payload }
          : { id, key, data: encodeBase64(payload), binary: true },
      ),
    removeOnConnect: (key) => invoke<RemovedResult>('plugin:realtime|remove_on_connect', { id, key }),
    close: async (code, reason) => {
      await invoke('plugin:realtime|close', defined({ id, code, reason }))
    },
    reconnect: async () => {
      await invoke('plugin:realtime|reconnect', { id })
    },
    inspect: async () => {
      const list = await invoke<ConnectionInfo[]>('plugin:realtime|inspect', { id })
      const info = list.find((i) => i.id === id) ?? list[0]
      if (!info) throw new RealtimeError(`no connection with id ${id}`)
      return info
    },
    progress: (frames, bytes) => {
      if (frames - ackedFrames < ACK_WINDOW.frames / 4 && bytes - ackedBytes < ACK_WINDOW.bytes / 4) return
      ackedFrames = frames
      ackedBytes = bytes
      invoke('plugin:realtime|ack', { id, frames }).catch(() => {
        // The connection is closing or gone: nothing left to pace.
      })
    },
    detach: async () => {
      // Batches still in flight are ignored from now on.
      receiver().connections.delete(id)
    },
  }
}

/**
 * Opens `conn` through the plugin: registered with the page's receiver before `connect` is invoked, so no frame
 * is sent unheard; rejects with a RealtimeError (and leaves the receiver) when `connect` does.
 */
export async function connectTauri(conn: ConnectionImpl, options: ConnectOptions): Promise<void> {
  const connections = receiver().connections
  connections.set(conn.id, conn)
  let result: ConnectResult
  try {
    result = await invoke<ConnectResult>('plugin:realtime|connect', {
      id: conn.id,
      options,
      ack: ACK_WINDOW,
      route: 'direct',
    })
  } catch (e) {
    connections.delete(conn.id)
    await conn.abandon()
    throw toRealtimeError(e)
  }
  conn.attach(result, tauriBackend(conn.id))
}

/** `inspect()` in Tauri: this webview's subscriptions, or one by id. */
export async function inspectTauri(id?: string): Promise<ConnectionInfo[]> {
  try {
    return await invoke<ConnectionInfo[]>('plugin:realtime|inspect', id === undefined ? {} : { id })
  } catch (e) {
    throw toRealtimeError(e)
  }
}
