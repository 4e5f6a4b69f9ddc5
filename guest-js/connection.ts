// The Connection handle: whatever carries its frames (the Tauri backend, `tauri.ts`, or the browser's own sockets,
// `browser.ts`), it holds frames until the app attaches handlers, hands them out in `seq` order, reports gaps,
// keeps sends in call order, and goes quiet on close.

import { toPayload, type SendData } from './base64.js'
import { RealtimeError, toRealtimeError } from './errors.js'
import { decodeBatch } from './wire.js'
import type {
  Connection,
  ConnectionInfo,
  ConnectResult,
  Frame,
  GapInfo,
  JsonBody,
  Readable,
  SendOptions,
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

/** What a connection needs from whatever carries it: the Tauri IPC, or the browser's own sockets. */
export interface Backend {
  /** `contentType`: for a POST to `sendUrl`; undefined for the default of the payload's kind. */
  send(payload: string | Uint8Array, contentType?: string): Promise<SendResult>
  close(code?: number, reason?: string): Promise<void>
  reconnect(): Promise<void>
  inspect(): Promise<ConnectionInfo>
  /** Stops delivery for good (leave the receiver, or close the browser socket). Never rejects. */
  detach(): Promise<void>
  /** The browser's EventSource has no wildcard: outside Tauri it must be told each event type to relay. */
  watch?(type: string): void
  /**
   * How many frames the handlers have processed in all, and the length of their data: the Tauri backend
   * acknowledges them to Rust (flow control). Called after every batch; never throws.
   */
  progress?(frames: number, bytes: number): void
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

function isJsonBody(data: unknown): data is JsonBody {
  if (Array.isArray(data)) return true
  if (data === null || typeof data !== 'object') return false
  const proto: unknown = Object.getPrototypeOf(data)
  return proto === Object.prototype || proto === null
}

/** What goes to the backend for `data`: a plain object or array as its JSON text, typed as JSON. */
function toSendData(data: unknown, options: SendOptions | undefined): [SendData, string | undefined] {
  let contentType = options?.contentType
  if (contentType !== undefined && typeof contentType !== 'string') {
    throw new TypeError('send() options: `contentType` must be a string')
  }
  if (isJsonBody(data)) {
    const text = JSON.stringify(data) as string | undefined
    if (text === undefined) throw new TypeError('send() could not turn this object into JSON')
    return [text, contentType ?? 'application/json']
  }
  const ok =
    typeof data === 'string' ||
    data instanceof ArrayBuffer ||
    ArrayBuffer.isView(data) ||
    (typeof Blob !== 'undefined' && data instanceof Blob)
  if (!ok) {
    throw new TypeError('send() takes a string, ArrayBuffer, typed array, DataView, Blob, plain object or array')
  }
  if (contentType === undefined && typeof Blob !== 'undefined' && data instanceof Blob && data.type !== '') {
    contentType = data.type
  }
  return [data as SendData, contentType]
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
  /** Frames handed to handlers, and their data length, in all. */
  private processed = 0
  private processedBytes = 0

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

  /** A batch from Rust in the compact encoding (see `wire.ts`), as the page's receiver hands it over. */
  receiveWire(batch: unknown): void {
    if (this.halted) return
    let frames: Frame[]
    try {
      frames = decodeBatch(batch)
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
    this.reportProgress()
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

  send(data: SendData | JsonBody, options?: SendOptions): Promise<SendResult> {
    if (this.closing || this.done) {
      return Promise.reject(new RealtimeError(`connection ${this.id} is closed`))
    }
    let body: SendData
    let contentType: string | undefined
    try {
      ;[body, contentType] = toSendData(data, options)
    } catch (e) {
      return Promise.reject(e)
    }
    const backend = this.requireBackend()
    // One send in flight at a time: Tauri may run async commands concurrently, and a Blob needs an await
    // to read, so chaining is what keeps messages in call order.
    const result = this.sendChain.then(async () => backend.send(await toPayload(body), contentType))
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
    this.reportProgress()
  }

  private reportProgress(): void {
    if (!this.done) this.backend?.progress?.(this.processed, this.processedBytes)
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
