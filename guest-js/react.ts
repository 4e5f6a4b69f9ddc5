/**
 * The React binding of tauri-plugin-realtime (`tauri-plugin-realtime-api/react`; React 18 or 19 is an optional
 * peer dependency, needed only for this entry point).
 *
 * {@link useRealtime} opens a connection for the life of a component: its state, last message and error as
 * React state, `send`, and the connection itself for `on()` and `handle()`.
 *
 * @module
 */

import { useCallback, useEffect, useRef, useState } from 'react'

import type { SendData } from './base64.js'
import { connect } from './connect.js'
import { RealtimeError, toRealtimeError } from './errors.js'
import type {
  Connection,
  ConnectOptions,
  ErrorFrame,
  MessageFrame,
  SendResult,
  StateValue,
  Unsubscribe,
} from './types.js'

/** What {@link useRealtime} gives, on every render. */
export interface RealtimeHook {
  /**
   * The connection's state (its `state` store). `connecting` until `connect()` resolves, `failed` when it
   * rejected, `disconnected` when the options are `null`.
   */
  state: StateValue
  /** The latest message frame, or `null` before the first (one render per batch of frames, not per frame). */
  lastMessage: MessageFrame | null
  /**
   * The latest error: the connection's `error` store (an `error` frame, `null` again once connected), or the
   * {@link RealtimeError} with which `connect()` rejected.
   */
  error: ErrorFrame | RealtimeError | null
  /**
   * Sends through the connection, once it is open (a send before that waits for `connect()`). Rejects when the
   * options are `null` or the component unmounted. The same function across renders.
   */
  send: (data: SendData) => Promise<SendResult>
  /** The connection once `connect()` has resolved, else `null`: for `on()`, `handle()`, `reconnect()`, `inspect()`. */
  connection: Connection | null
}

interface View {
  /** The options key this view belongs to: a view of other options is never shown. */
  key: string | null
  state: StateValue
  lastMessage: MessageFrame | null
  error: ErrorFrame | RealtimeError | null
  connection: Connection | null
}

/** One `connect()` of the hook, from its effect until its close. */
interface Entry {
  key: string
  opening: Promise<Connection>
  /** The effect was cleaned up; the close waits a microtask for StrictMode's immediate second mount. */
  closeScheduled: boolean
  disposed: boolean
}

function initial(key: string | null): View {
  return {
    key,
    state: { state: key === null ? 'disconnected' : 'connecting' },
    lastMessage: null,
    error: null,
    connection: null,
  }
}

function open(key: string, options: ConnectOptions, update: (key: string, patch: Partial<View>) => void): Entry {
  const entry: Entry = { key, opening: undefined as never, closeScheduled: false, disposed: false }
  entry.opening = connect(options).then(
    (connection) => {
      // Disposed while connecting: `dispose` closes it.
      if (!entry.disposed) update(key, { connection, state: connection.state.get() })
      return connection
    },
    (e: unknown) => {
      const error = toRealtimeError(e)
      if (!entry.disposed) update(key, { state: { state: 'failed', reason: error.message }, error })
      throw error
    },
  )
  // The rejection is shown as `error`; `send` and `dispose` handle it again where they wait for it.
  entry.opening.catch(() => {})
  return entry
}

function dispose(entry: Entry): void {
  entry.disposed = true
  // `close()` always stops delivery; if its command fails there is nobody left to tell but the console.
  void entry.opening.then(
    (connection) => connection.close().catch((e: unknown) => console.error(e)),
    () => {},
  )
}

/**
 * Opens a connection while the component is mounted, and closes it on unmount. New options (compared by their
 * JSON) close it and open another; `null` or `undefined` options open nothing (waiting for a token, say).
 *
 * Under `StrictMode`, whose development build mounts, unmounts and mounts again at once, the close is deferred
 * by a microtask and cancelled by the second mount: one upstream, one `connect`.
 *
 * The connection's state, last message and error are React state; for dispatch by message type or TanStack
 * Query invalidation, use `connection.handle()` in an effect that depends on `connection` (README, "React"):
 * it runs in the commit that shows the connection, with the hook's own subscriptions, so it also gets the
 * frames that arrived before `connect()` resolved.
 */
export function useRealtime(options: ConnectOptions | null | undefined): RealtimeHook {
  const key = options ? JSON.stringify(options) : null
  const [view, setView] = useState<View>(() => initial(key))
  const entryRef = useRef<Entry | null>(null)

  useEffect(() => {
    if (key === null) return
    let entry = entryRef.current
    if (entry && entry.key === key && entry.closeScheduled && !entry.disposed) {
      entry.closeScheduled = false
    } else {
      // `options` of the render whose key changed; the key stands for them in the dependencies.
      entry = open(key, options!, (k, patch) =>
        setView((v) => ({ ...(v.key === k ? v : initial(k)), ...patch })),
      )
      entryRef.current = entry
    }
    const current = entry
    return () => {
      current.closeScheduled = true
      queueMicrotask(() => {
        if (!current.closeScheduled) return
        dispose(current)
        if (entryRef.current === current) entryRef.current = null
      })
    }
  }, [key])

  // Subscribed in an effect, not when `connect()` resolves: the first `on()` hands out the frames held since
  // connect a task later, so the app's own `on()` and `handle()` in effects of the same commit get them too.
  const connection = view.key === key ? view.connection : null
  useEffect(() => {
    if (!connection) return
    const set = (patch: Partial<View>) => setView((v) => (v.connection === connection ? { ...v, ...patch } : v))
    const offs: Unsubscribe[] = [
      connection.state.subscribe((state) => set({ state })),
      connection.error.subscribe((error) => set({ error })),
      connection.on('message', (lastMessage) => set({ lastMessage })),
    ]
    return () => {
      for (const off of offs) off()
    }
  }, [connection])

  const send = useCallback((data: SendData): Promise<SendResult> => {
    const entry = entryRef.current
    // Closing (unmounted, or new options whose effect has not run): this render's connection is over.
    if (!entry || entry.disposed || entry.closeScheduled) {
      return Promise.reject(new RealtimeError('useRealtime: no connection to send on (options are null, or unmounted)'))
    }
    return entry.opening.then((connection) => connection.send(data))
  }, [])

  const shown = view.key === key ? view : initial(key)
  return { state: shown.state, lastMessage: shown.lastMessage, error: shown.error, send, connection: shown.connection }
}
