// A drop-in for the browser's `WebSocket`, carried by the plugin: existing code switches with one import.

import { decodeBase64, type SendData } from './base64.js'
import { connectInternal } from './connect.js'
import type { ConnectionImpl } from './connection.js'
import { toRealtimeError } from './errors.js'
import { CloseEventImpl, domError, handlerAttributes, MessageEventImpl, RealtimeErrorEvent } from './events.js'
import type { ConnectOptions, Frame } from './types.js'

/** The plugin's options for {@link RealtimeWebSocket}, besides the URL and subprotocols. */
export type RealtimeWebSocketInit = Omit<ConnectOptions, 'url' | 'protocols'>

type Handler<E extends Event> = ((this: RealtimeWebSocket, ev: E) => unknown) | null

/**
 * Shaped like the browser's `WebSocket`, but the socket lives in Rust (headers, no mixed-content block,
 * reconnect, heartbeats, a send queue). Differences, all deliberate:
 *
 * - With `reconnect` on (the default), a dropped connection fires `error` and goes back to `CONNECTING`, then
 *   fires `open` again when it is back; `close` fires once, at the end (`failed` or `disconnected`). Pass
 *   `{ reconnect: false }` as `init` for the browser's one-shot behaviour.
 * - `send()` while reconnecting is queued by the plugin rather than refused; a send that the plugin rejects
 *   (queue full) fires `error`.
 * - `error` events are {@link RealtimeErrorEvent}s with a `message`. They fire when the connection drops
 *   (`reconnecting`) or fails, as the browser's do; an `error` frame that changes no state (see `connect()`)
 *   fires none.
 * - `protocol` is the subprotocol the server chose, set before `open` fires. `bufferedAmount` is always 0.
 */
export class RealtimeWebSocket extends EventTarget {
  static readonly CONNECTING = 0
  static readonly OPEN = 1
  static readonly CLOSING = 2
  static readonly CLOSED = 3
  readonly CONNECTING = 0
  readonly OPEN = 1
  readonly CLOSING = 2
  readonly CLOSED = 3

  /** The URL, serialised (http and https become ws and wss, as the browser does). */
  readonly url: string
  /** The subprotocol the server chose (`""` when none), known from `open` on. */
  protocol: string = ''
  readonly extensions: string = ''
  readonly bufferedAmount: number = 0
  /** How binary messages arrive: `'blob'` (default, as in the browser) or `'arraybuffer'`. */
  binaryType: BinaryType = 'blob'

  onopen: Handler<Event> = null
  onmessage: Handler<MessageEvent> = null
  onerror: Handler<Event> = null
  onclose: Handler<CloseEvent> = null

  private state = 0
  private conn: ConnectionImpl | undefined
  private opened = false
  private closeFrame: { code: number; reason: string } | undefined
  private requested: { code?: number; reason?: string } | undefined
  private lastError = ''
  private readonly origin: string

  constructor(url: string | URL, protocols?: string | string[], init?: RealtimeWebSocketInit) {
    super()
    let parsed: URL
    try {
      parsed = new URL(String(url))
    } catch {
      throw domError(`invalid URL: ${String(url)}`, 'SyntaxError')
    }
    if (parsed.protocol === 'http:') parsed.protocol = 'ws:'
    else if (parsed.protocol === 'https:') parsed.protocol = 'wss:'
    if (parsed.protocol !== 'ws:' && parsed.protocol !== 'wss:') {
      throw domError(`the URL's scheme must be ws, wss, http or https: ${parsed.href}`, 'SyntaxError')
    }
    const list = protocols === undefined ? [] : typeof protocols === 'string' ? [protocols] : [...protocols]
    if (new Set(list).size !== list.length) throw domError('duplicate subprotocol', 'SyntaxError')
    this.url = parsed.href
    this.origin = parsed.origin
    handlerAttributes(this, ['open', 'message', 'error', 'close'], (type) => {
      const h = { open: this.onopen, message: this.onmessage, error: this.onerror, close: this.onclose }[type]
      return (h ?? null) as ((this: RealtimeWebSocket, ev: Event) => unknown) | null
    })
    const options: ConnectOptions = { ...init, url: this.url }
    if (list.length > 0) options.protocols = list
    connectInternal(options).then(
      (conn) => this.attach(conn),
      (e: unknown) => {
        this.lastError = toRealtimeError(e).message
        this.finish(false)
      },
    )
  }

  /** `CONNECTING`, `OPEN`, `CLOSING` or `CLOSED`. */
  get readyState(): number {
    return this.state
  }

  /**
   * Sends text (a string) or binary (ArrayBuffer, typed array, DataView, Blob). Throws `InvalidStateError`
   * before the first `open`, as the browser does; ignored once `CLOSING` or `CLOSED`.
   */
  send(data: SendData): void {
    if (this.state === RealtimeWebSocket.CONNECTING && !this.opened) {
      throw domError('the WebSocket is still connecting', 'InvalidStateError')
    }
    if (this.state === RealtimeWebSocket.CLOSING || this.state === RealtimeWebSocket.CLOSED || !this.conn) return
    this.conn.send(data).catch((e: unknown) => this.fire(new RealtimeErrorEvent(toRealtimeError(e).message)))
  }

  /** Closes with an optional code (1000 or 3000-4999) and reason (at most 123 UTF-8 bytes). */
  close(code?: number, reason?: string): void {
    if (code !== undefined && code !== 1000 && !(code >= 3000 && code <= 4999)) {
      throw domError(`close code must be 1000 or 3000-4999, got ${code}`, 'InvalidAccessError')
    }
    if (reason !== undefined && new TextEncoder().encode(reason).byteLength > 123) {
      throw domError('close reason must be at most 123 UTF-8 bytes', 'SyntaxError')
    }
    if (this.state === RealtimeWebSocket.CLOSING || this.state === RealtimeWebSocket.CLOSED) return
    this.requested = { code, reason }
    this.state = RealtimeWebSocket.CLOSING
    const conn = this.conn
    // Still connecting: `attach` (or the failed connect) finishes the job.
    if (!conn) return
    conn.close(code, reason).then(
      () => this.finish(true),
      (e: unknown) => {
        this.lastError = toRealtimeError(e).message
        this.finish(true)
      },
    )
  }

  private attach(conn: ConnectionImpl): void {
    if (this.requested) {
      // close() before the connection was up: the browser fails the connection (error, then close 1006).
      void conn.close().catch(() => undefined)
      this.finish(false)
      return
    }
    this.conn = conn
    conn.on('frame', (frame: Frame) => this.onFrame(frame))
  }

  private onFrame(frame: Frame): void {
    if (this.state === RealtimeWebSocket.CLOSED) return
    switch (frame.kind) {
      case 'message': {
        let data: unknown = frame.data
        if (frame.binary) {
          const bytes = decodeBase64(frame.data)
          data =
            this.binaryType === 'arraybuffer'
              ? bytes.buffer.byteLength === bytes.byteLength
                ? bytes.buffer
                : bytes.slice().buffer
              : new Blob([bytes as BlobPart])
        }
        this.fire(new MessageEventImpl('message', { data, origin: this.origin }))
        break
      }
      case 'error':
        this.lastError = frame.message
        break
      case 'close':
        this.closeFrame = { code: frame.code, reason: frame.reason }
        break
      case 'state':
        switch (frame.state) {
          case 'connected':
          case 'polling':
            if (this.state === RealtimeWebSocket.CONNECTING) {
              if (frame.protocol !== undefined) this.protocol = frame.protocol
              this.state = RealtimeWebSocket.OPEN
              this.opened = true
              this.closeFrame = undefined
              this.fire(new Event('open'))
            }
            break
          case 'reconnecting':
            if (this.state === RealtimeWebSocket.OPEN || this.state === RealtimeWebSocket.CONNECTING) {
              this.state = RealtimeWebSocket.CONNECTING
              this.fire(new RealtimeErrorEvent(frame.reason ?? this.lastError))
            }
            break
          case 'failed':
            this.lastError = frame.reason ?? this.lastError
            this.finish(false)
            break
          case 'disconnected':
            this.finish(true)
            break
          case 'connecting':
            break
        }
        break
    }
  }

  /** To `CLOSED`, with `error` first when not clean, then `close`; releases the plugin's subscription. */
  private finish(clean: boolean): void {
    if (this.state === RealtimeWebSocket.CLOSED) return
    this.state = RealtimeWebSocket.CLOSED
    const code = this.closeFrame?.code ?? (clean ? (this.requested?.code ?? 1005) : 1006)
    const reason = this.closeFrame?.reason ?? (clean ? (this.requested?.reason ?? '') : '')
    if (!clean) this.fire(new RealtimeErrorEvent(this.lastError))
    this.fire(new CloseEventImpl('close', { code, reason, wasClean: clean }))
    void this.conn?.close().catch(() => undefined)
  }

  private fire(event: Event): void {
    this.dispatchEvent(event)
  }
}
