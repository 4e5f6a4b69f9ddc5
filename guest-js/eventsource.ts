// A drop-in for the browser's `EventSource`, carried by the plugin: headers, POST bodies and an initial
// Last-Event-ID become possible, and existing code switches with one import.

import { connectInternal } from './connect.js'
import type { ConnectionImpl } from './connection.js'
import { toRealtimeError } from './errors.js'
import { domError, handlerAttributes, MessageEventImpl, RealtimeErrorEvent } from './events.js'
import type { ConnectOptions, Frame } from './types.js'

/**
 * The plugin's options for {@link RealtimeEventSource}: `headers`, `method`, `body`, `lastEventId` and the rest
 * of {@link ConnectOptions} besides the URL. `withCredentials` is `EventSource`'s own: the webview's cookies go
 * with every request and `Set-Cookie` lands in its store (outside Tauri, `fetch` with `credentials: 'include'`).
 */
export type RealtimeEventSourceInit = Omit<ConnectOptions, 'url' | 'protocols'>

type Handler<E extends Event> = ((this: RealtimeEventSource, ev: E) => unknown) | null

/**
 * Shaped like the browser's `EventSource`; the stream lives in Rust. As in the browser: `open` on each
 * (re)connection, `error` with `readyState` back to `CONNECTING` while reconnecting, `error` with `CLOSED` when
 * it gives up (`failed`, or the server ended it for good), `message` for unnamed events, and named events
 * through `addEventListener(type)`. `error` events are {@link RealtimeErrorEvent}s with a `message`.
 */
export class RealtimeEventSource extends EventTarget {
  static readonly CONNECTING = 0
  static readonly OPEN = 1
  static readonly CLOSED = 2
  readonly CONNECTING = 0
  readonly OPEN = 1
  readonly CLOSED = 2

  readonly url: string
  /** Whether the stream carries the webview's cookies, as given to the constructor. Default: false. */
  readonly withCredentials: boolean

  onopen: Handler<Event> = null
  onmessage: Handler<MessageEvent> = null
  onerror: Handler<Event> = null

  private state = 0
  private conn: ConnectionImpl | undefined
  private closed = false
  private lastError = ''
  private readonly origin: string

  constructor(url: string | URL, init?: RealtimeEventSourceInit) {
    super()
    let parsed: URL
    try {
      parsed = new URL(String(url))
    } catch {
      throw domError(`invalid URL: ${String(url)}`, 'SyntaxError')
    }
    this.url = parsed.href
    this.origin = parsed.origin
    handlerAttributes(this, ['open', 'message', 'error'], (type) => {
      const h = { open: this.onopen, message: this.onmessage, error: this.onerror }[type]
      return (h ?? null) as ((this: RealtimeEventSource, ev: Event) => unknown) | null
    })
    this.withCredentials = init?.withCredentials === true
    connectInternal({ ...init, url: this.url }).then(
      (conn) => this.attach(conn),
      (e: unknown) => {
        this.lastError = toRealtimeError(e).message
        this.fail()
      },
    )
  }

  /** `CONNECTING`, `OPEN` or `CLOSED`. */
  get readyState(): number {
    return this.state
  }

  /** Stops the stream. No event fires afterwards. */
  close(): void {
    if (this.closed) return
    this.closed = true
    this.state = RealtimeEventSource.CLOSED
    void this.conn?.close().catch(() => undefined)
  }

  private attach(conn: ConnectionImpl): void {
    if (this.closed) {
      void conn.close().catch(() => undefined)
      return
    }
    this.conn = conn
    conn.on('frame', (frame: Frame) => this.onFrame(frame))
  }

  private onFrame(frame: Frame): void {
    if (this.closed) return
    switch (frame.kind) {
      case 'message':
        this.dispatchEvent(
          new MessageEventImpl(frame.event ?? 'message', {
            data: frame.data,
            lastEventId: frame.lastEventId ?? '',
            origin: this.origin,
          }),
        )
        break
      case 'error':
        this.lastError = frame.message
        break
      case 'close':
        break
      case 'state':
        switch (frame.state) {
          case 'connected':
          case 'polling':
            if (this.state !== RealtimeEventSource.OPEN) {
              this.state = RealtimeEventSource.OPEN
              this.dispatchEvent(new Event('open'))
            }
            break
          case 'reconnecting':
            this.state = RealtimeEventSource.CONNECTING
            this.dispatchEvent(new RealtimeErrorEvent(frame.reason ?? this.lastError))
            break
          case 'failed':
          case 'disconnected':
            this.lastError = frame.reason ?? this.lastError
            this.fail()
            break
          case 'connecting':
            break
        }
        break
    }
  }

  /** Gives up, as the browser does: `CLOSED`, one `error`, and the plugin's subscription released. */
  private fail(): void {
    if (this.closed) return
    this.closed = true
    this.state = RealtimeEventSource.CLOSED
    this.dispatchEvent(new RealtimeErrorEvent(this.lastError))
    void this.conn?.close().catch(() => undefined)
  }
}
