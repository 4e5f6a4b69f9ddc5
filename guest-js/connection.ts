// `connect()` and the Connection handle: registered with the page's receiver before delivery starts; hold frames
// until the app attaches handlers; hand them out in `seq` order; delivery goes quiet on close.

import { invoke } from '@tauri-apps/api/core'

import { encodeBase64, toPayload, type SendData } from './base64.js'
import { connectBrowser, inspectBrowser } from './browser.js'
import { RealtimeError, toRealtimeError } from './errors.js'
import { decodeBatch } from './wire.js'
import type {
  Connection,
  ConnectionInfo,
  ConnectOptions,
  ConnectResult,
  Frame,
  GapInfo,
  Readable,
  SendResult,
  StateFrame,
  StateValue,
  Unsubscribe,
} from './types.js'

/**
 * Frames held for a connection that has no `on()` handler yet. Beyond this the oldest are dropped, and the
 * first frame handed out afterwards is reported to `on('gap')` handlers.
 */
export const MAX_HELD_FRAMES = 10_000

/**
 * Flow control with the Rust side: at most this much is delivered to the webview and not yet processed by
 * the handlers; Rust then pauses (and so does its read from the server) until the bindings acknowledge.
 * The bindings acknowledge every quarter window, so a slow page bounds memory instead of queueing scripts.
 */
export const ACK_WINDOW = { frames: 4096, bytes: 8 * 1024 * 1024 } as const

/** Event name of a connection's frames when `connect` is invoked with neither `direct` nor a channel. */
export const eventName = (id: string): string => `realtime://${id}`

/**
 * The global through which Rust delivers batches: it evaluates `window.__TAURI_PLUGIN_REALTIME__.deliver(id,
 * batch)` with the batch as an array literal (`src/core/wire.rs`), one script per batch. Shared by every copy of
 * the bindings a page loads, and defined once.
 */
export const RECEIVER = '__TAURI_PLUGIN_REALTIME__'

interface Receiver {
  readonly connections: Map<string, { receiveWire(message: unknown): void }>
  deliver(id: string, batch: unknown): void
}

/** The page's receiver, made on first use. */
export function receiver(): Receiver {
  const g = globalThis as unknown as Record<string, Receiver | undefined>
  let r = g[RECEIVER]
  if (!r) {
    const connections: Receiver['connections'] = new Map()
    r = Object.freeze({
      connections,
      // A batch for a connection this page does not hold (closed, or opened by the page before a reload) is dropped.
      deliver: (id: string, batch: unknown) => connections.get(id)?.receiveWire(batch),
    })
    Object.defineProperty(g, RECEIVER, { value: r, enumerable: false })
  }
  return r
}

/** What a connection needs from whatever carries it: the Tauri IPC, or the browser's own sockets. */
export interface Backend {
  send(payload: string | Uint8Array): Promise<SendResult>
  close(code?: number, reason?: string): Promise<void>
  reconnect(): Promise<void>
  inspect(): Promise<ConnectionInfo>
  /** Stops delivery for good (leave the receiver, or close the browser socket). Never rejects. */
  detach(): Promise<void>
  /** The browser's EventSource has no wildcard: outside Tauri it must be told each event type to relay. */
  watch?(type: string): void
  /** Tells Rust how many frames the handlers have processed in all (flow control). Never rejects. */
  ack?(frames: number): void
}

/** Where a backend delivers frames. */
export interface FrameSink {
  receive(payload: Frame[] | Frame): void
}

const KINDS: ReadonlySet<string> = new Set(['message', 'state', 'error', 'close', 'frame', 'gap'])

type AnyHandler = (value: never) => void

function report(error: unknown): void {
  // A throwing handler must not stop the others or the rest of the batch; surface it like an uncaught error.
  const g = globalThis as { reportError?: (e: unknown) => void }
  if (typeof g.reportError === 'function') g.reportError(error)
  else console.error(error)
}

function stateValueOf(f: StateFrame): StateValue {
  const v: StateValue = { state: f.state }
  if (f.transport !== undefined) v.transport = f.transport
  if (f.attempt !== undefined) v.attempt = f.attempt
  if (f.delayMs !== undefined) v.delayMs = f.delayMs
  if (f.reason !== undefined) v.reason = f.reason
  return v
}

function checkSendData(data: unknown): void {
  const ok =
    typeof data === 'string' ||
    data instanceof ArrayBuffer ||
    ArrayBuffer.isView(data) ||
    (typeof Blob !== 'undefined' && data instanceof Blob)
  if (!ok) throw new TypeError('send() takes a string, ArrayBuffer, typed array, DataView or Blob')
}

/** The Connection handle. Not exported from the package: apps get it from `connect()`. */
export class ConnectionImpl implements Connection, FrameSink {
  readonly id: string
  shared = false
  readonly state: Readable<StateValue>

  private backend: Backend | undefined
  private readonly handlers = new Map<string, Set<AnyHandler>>()
  /** Frames waiting for the first `on()`; `null` once frames are handed out as they arrive. */
  private held: Frame[] | null = []
  private flushing = false
  private flushScheduled = false
  /** The `seq` expected next; set by the first frame received. */
  private nextSeq: number | undefined
  private sawStateFrame = false
  private stateValue: StateValue = { state: 'connecting' }
  private readonly stateSubscribers = new Set<{ run: (v: StateValue) => void }>()
  private sendChain: Promise<unknown> = Promise.resolve()
  private closing: Promise<void> | undefined
  private stopped = false
  /** Set once closed: frames are ignored and no handler runs any more. */
  private done = false
  /** Frames handed to handlers, and their data length, in all and at the last acknowledgement. */
  private processed = 0
  private processedBytes = 0
  private ackedFrames = 0
  private ackedBytes = 0

  constructor(id: string) {
    this.id = id
    this.state = {
      subscribe: (run) => {
        const sub = { run }
        this.stateSubscribers.add(sub)
        run(this.stateValue)
        return () => {
          this.stateSubscribers.delete(sub)
        }
      },
      get: () => this.stateValue,
    }
  }

  /** Called with the `connect` result once delivery has started. */
  attach(result: Pick<ConnectResult, 'state' | 'shared'>, backend: Backend): void {
    this.backend = backend
    this.shared = result.shared
    // A state frame received meanwhile is newer than the snapshot in the result.
    if (!this.sawStateFrame && result.state !== this.stateValue.state) this.setState({ state: result.state })
    for (const type of this.handlers.keys()) if (!KINDS.has(type)) backend.watch?.(type)
  }

  /** Nothing more is handed to handlers: closed, or closing. */
  private get halted(): boolean {
    return this.done || this.stopped
  }

  /** A batch from Rust in the compact encoding (see `wire.ts`): an array, or its JSON as a string or UTF-8 bytes. */
  receiveWire(message: unknown): void {
    if (this.halted) return
    let frames: Frame[]
    try {
      frames = decodeBatch(message)
    } catch (e) {
      report(e)
      return
    }
    this.receive(frames)
  }

  receive(payload: Frame[] | Frame): void {
    if (this.halted) return
    const frames = Array.isArray(payload) ? payload : [payload]
    for (const frame of frames) {
      // A joiner's snapshot repeats an old seq: the numbering to check starts with the frame after it.
      const snapshot = frame.kind === 'state' && frame.snapshot === true
      if (this.nextSeq === undefined && !snapshot) this.nextSeq = frame.seq
      if (frame.kind === 'state') {
        this.sawStateFrame = true
        this.setState(stateValueOf(frame))
      }
      if (this.held) this.held.push(frame)
      else this.dispatch(frame)
      if (this.halted) return
    }
    this.maybeAck()
    if (this.held && !this.flushing && this.held.length > MAX_HELD_FRAMES) {
      this.held.splice(0, this.held.length - MAX_HELD_FRAMES)
    }
  }

  on(kind: string, handler: (value: never) => void): Unsubscribe {
    if (this.done) return () => {}
    let set = this.handlers.get(kind)
    if (!set) {
      set = new Set()
      this.handlers.set(kind, set)
      if (!KINDS.has(kind)) this.backend?.watch?.(kind)
    }
    set.add(handler)
    if (this.held && !this.flushScheduled) {
      this.flushScheduled = true
      // A later task, so that every handler attached synchronously after `await connect()` gets the held frames.
      setTimeout(() => this.flush(), 0)
    }
    return () => {
      this.handlers.get(kind)?.delete(handler)
    }
  }

  /** Outside Tauri, asks the browser's EventSource to relay this event type (no-op in Tauri). */
  watch(type: string): void {
    this.backend?.watch?.(type)
  }

  send(data: SendData): Promise<SendResult> {
    if (this.closing || this.done) {
      return Promise.reject(new RealtimeError(`connection ${this.id} is closed`))
    }
    try {
      checkSendData(data)
    } catch (e) {
      return Promise.reject(e)
    }
    const backend = this.requireBackend()
    // One send in flight at a time: Tauri may run async commands concurrently, and a Blob needs an await
    // to read, so chaining is what keeps messages in call order.
    const result = this.sendChain.then(async () => backend.send(await toPayload(data)))
    this.sendChain = result.catch(() => undefined)
    return result.catch((e: unknown) => {
      throw toRealtimeError(e)
    })
  }

  close(code?: number, reason?: string): Promise<void> {
    // No handler runs once close is called, though the command is still on its way.
    this.stopped = true
    this.closing ??= this.doClose(code, reason)
    return this.closing
  }

  async reconnect(): Promise<void> {
    if (this.closing || this.done) throw new RealtimeError(`connection ${this.id} is closed`)
    try {
      await this.requireBackend().reconnect()
    } catch (e) {
      throw toRealtimeError(e)
    }
  }

  async inspect(): Promise<ConnectionInfo> {
    try {
      return await this.requireBackend().inspect()
    } catch (e) {
      throw toRealtimeError(e)
    }
  }

  /** Drops everything without a close command: used when `connect` itself failed. */
  async abandon(): Promise<void> {
    this.done = true
    this.held = null
    this.handlers.clear()
    await this.backend?.detach()
  }

  private async doClose(code?: number, reason?: string): Promise<void> {
    let error: RealtimeError | undefined
    try {
      await this.sendChain
      await this.requireBackend().close(code, reason)
    } catch (e) {
      error = toRealtimeError(e)
    }
    await this.abandon()
    if (this.stateValue.state !== 'disconnected') this.setState({ state: 'disconnected' })
    if (error) throw error
  }

  private requireBackend(): Backend {
    if (!this.backend) throw new RealtimeError(`connection ${this.id} is not open yet`)
    return this.backend
  }

  private setState(value: StateValue): void {
    this.stateValue = value
    for (const sub of [...this.stateSubscribers]) {
      if (!this.stateSubscribers.has(sub)) continue
      try {
        sub.run(value)
      } catch (e) {
        report(e)
      }
    }
  }

  private flush(): void {
    const held = this.held
    if (!held || this.halted) return
    this.flushing = true
    // Frames that a handler causes to arrive meanwhile are appended to `held` and handed out in turn.
    for (let i = 0; i < held.length && !this.halted; i++) this.dispatch(held[i]!)
    this.flushing = false
    this.held = null
    this.maybeAck()
  }

  private maybeAck(): void {
    if (this.done || !this.backend?.ack) return
    if (
      this.processed - this.ackedFrames >= ACK_WINDOW.frames / 4 ||
      this.processedBytes - this.ackedBytes >= ACK_WINDOW.bytes / 4
    ) {
      this.ackedFrames = this.processed
      this.ackedBytes = this.processedBytes
      this.backend.ack(this.processed)
    }
  }

  private dispatch(frame: Frame): void {
    if (frame.kind === 'state' && frame.snapshot === true) {
      // Not part of the numbering (see StateFrame.snapshot).
    } else {
      if (this.nextSeq !== undefined && frame.seq !== this.nextSeq) {
        const gap: GapInfo = { expected: this.nextSeq, got: frame.seq }
        this.call('gap', gap)
      }
      this.nextSeq = frame.seq + 1
    }
    this.processed++
    if (frame.kind === 'message') this.processedBytes += frame.data.length
    this.call('frame', frame)
    this.call(frame.kind, frame)
    if (frame.kind === 'message' && frame.event !== undefined && !KINDS.has(frame.event)) {
      this.call(frame.event, frame)
    }
  }

  private call(kind: string, value: unknown): void {
    const set = this.handlers.get(kind)
    if (!set || set.size === 0) return
    if (set.size === 1) {
      // The common case, per frame: no copy of the set. A handler that closed the connection stops the rest.
      if (this.halted) return
      const handler = set.values().next().value as (v: unknown) => void
      try {
        handler(value)
      } catch (e) {
        report(e)
      }
      return
    }
    for (const handler of [...set]) {
      // A handler removed by an earlier one (or by close) does not run.
      if (this.halted || !set.has(handler)) continue
      try {
        ;(handler as (v: unknown) => void)(value)
      } catch (e) {
        report(e)
      }
    }
  }
}

/** True inside a Tauri webview (or under `@tauri-apps/api/mocks`). */
export function inTauri(): boolean {
  const internals = (globalThis as { __TAURI_INTERNALS__?: { invoke?: unknown } }).__TAURI_INTERNALS__
  return typeof internals?.invoke === 'function'
}

/** A fresh id matching /^[A-Za-z0-9_-]{1,64}$/. */
export function newId(): string {
  const c = globalThis.crypto
  if (typeof c?.randomUUID === 'function') return c.randomUUID()
  // `randomUUID` needs a secure context; a dev server on a LAN address is not one.
  return Array.from(c.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('')
}

function defined<T extends object>(obj: T): T {
  return Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== undefined)) as T
}

function tauriBackend(id: string): Backend {
  return {
    send: (payload) =>
      invoke<SendResult>(
        'plugin:realtime|send',
        typeof payload === 'string' ? { id, data: payload } : { id, data: encodeBase64(payload), binary: true },
      ),
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
    ack: (frames) => {
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

/** Opens a connection and returns the internal handle (the drop-in classes need `watch`). */
export async function connectInternal(options: ConnectOptions): Promise<ConnectionImpl> {
  if (!options || typeof options.url !== 'string') throw new TypeError('connect() needs options with a `url` string')
  const conn = new ConnectionImpl(newId())
  if (!inTauri()) {
    conn.attach({ state: 'connecting', shared: false }, connectBrowser(conn.id, options, conn))
    return conn
  }
  // Registered before `connect` starts delivery, so no frame is sent unheard.
  const connections = receiver().connections
  connections.set(conn.id, conn)
  let result: ConnectResult
  try {
    result = await invoke<ConnectResult>('plugin:realtime|connect', { id: conn.id, options, ack: ACK_WINDOW, direct: true })
  } catch (e) {
    connections.delete(conn.id)
    await conn.abandon()
    throw toRealtimeError(e)
  }
  conn.attach(result, tauriBackend(conn.id))
  return conn
}

/**
 * Opens a connection (or joins an identical one, see `ConnectOptions.share`).
 *
 * Registers with the page's receiver before Rust connects, so no frame is lost. Frames that arrive before
 * the first `on()` call are held (at most {@link MAX_HELD_FRAMES}) and handed out in order in a later task.
 * Rejects with a {@link RealtimeError} carrying the Rust side's message (invalid options, URL not allowed by
 * the scope, ...). Outside Tauri it uses the browser's own `WebSocket` / `EventSource` behind the same interface.
 */
export async function connect(options: ConnectOptions): Promise<Connection> {
  return connectInternal(options)
}

/** Every connection this webview can see (or one, by id), with counters, queue depth and last error. */
export async function inspect(id?: string): Promise<ConnectionInfo[]> {
  if (!inTauri()) return inspectBrowser(id)
  try {
    return await invoke<ConnectionInfo[]>('plugin:realtime|inspect', id === undefined ? {} : { id })
  } catch (e) {
    throw toRealtimeError(e)
  }
}
