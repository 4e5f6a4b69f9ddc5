// The Connection handle: whatever carries its frames (the Tauri backend, `tauri.ts`, or the browser's own sockets,
// `browser.ts`), it holds frames until the app attaches handlers, hands them out in `seq` order, reports gaps,
// keeps sends in call order, and goes quiet on close.

import { toOnConnectPayload, toPayload, type SendData } from './base64.js'
import { RealtimeError, toRealtimeError } from './errors.js'
import { writable, type Writable } from './store.js'
import { decodeBatch } from './wire.js'
import type {
  Connection,
  ConnectionInfo,
  ConnectResult,
  ErrorFrame,
  Frame,
  GapInfo,
  HandleOptions,
  JsonBody,
  MessageFrame,
  MessagesOptions,
  OnConnectData,
  OnConnectResult,
  Readable,
  RemovedResult,
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

/** How many messages a {@link Connection.messages} store keeps when `last` is not given. */
export const DEFAULT_LAST_MESSAGES = 100

/** What a connection needs from whatever carries it: the Tauri IPC, or the browser's own sockets. */
export interface Backend {
  /** `contentType`: for a POST to `sendUrl`; undefined for the default of the payload's kind. */
  send(payload: string | Uint8Array, contentType?: string): Promise<SendResult>
  setOnConnect(key: string, payload: string | Uint8Array): Promise<OnConnectResult>
  removeOnConnect(key: string): Promise<RemovedResult>
  close(code?: number, reason?: string): Promise<void>
  reconnect(): Promise<void>
  inspect(): Promise<ConnectionInfo>
  /** Stops delivery for good (leave the receiver, or close the browser socket). Never rejects. */
  detach(): Promise<void>
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

type MessageHandler = (message: unknown, frame: MessageFrame) => void

/** What `handle()` makes of a message frame: the parsed JSON, or why there is none. */
type Parsed = { ok: true; value: unknown } | { ok: false; reason: string }

function parseMessage(frame: MessageFrame): Parsed {
  if (frame.binary === true) return { ok: false, reason: 'it is binary' }
  try {
    return { ok: true, value: JSON.parse(frame.data) as unknown }
  } catch (e) {
    return { ok: false, reason: `it is not JSON (${e instanceof Error ? e.message : String(e)})` }
  }
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
  readonly error: Readable<ErrorFrame | null>

  private backend: Backend | undefined
  private readonly handlers = new Map<string, Set<AnyHandler>>()
  /** Frames waiting for the first `on()`; `null` once frames are handed out as they arrive. */
  private held: Frame[] | null = []
  private flushing = false
  private flushScheduled = false
  /** The `seq` expected next; set by the first frame received. */
  private nextSeq: number | undefined
  private sawStateFrame = false
  private readonly stateStore: Writable<StateValue> = writable<StateValue>({ state: 'connecting' }, report)
  private readonly errorStore: Writable<ErrorFrame | null> = writable<ErrorFrame | null>(null, report)
  /** The frame `handle()` parsed last, shared by every `handle()` registration (each frame is parsed once). */
  private parsedFrame: MessageFrame | undefined
  private parsed: Parsed = { ok: false, reason: '' }
  /** The last frame `handle()` reported as undispatchable: one `error` per frame, however many registrations. */
  private reportedFrame: MessageFrame | undefined
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
    this.state = this.stateStore.readable
    this.error = this.errorStore.readable
  }

  private get stateValue(): StateValue {
    return this.stateStore.readable.get()
  }

  /** Called with the `connect` result once delivery has started. */
  attach(result: Pick<ConnectResult, 'state' | 'shared'>, backend: Backend): void {
    this.backend = backend
    this.shared = result.shared
    // A state frame received meanwhile is newer than the snapshot in the result.
    if (!this.sawStateFrame && result.state !== this.stateValue.state) this.setState({ state: result.state })
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
        // An error is news until the connection is back: a UI showing `$error` clears once it is.
        if (frame.state === 'connected' && this.errorStore.readable.get() !== null) this.errorStore.set(null)
      } else if (frame.kind === 'error') {
        this.errorStore.set(frame)
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

  handle(handlers: Record<string, unknown>, options: HandleOptions<string> = {}): Unsubscribe {
    if (typeof handlers !== 'object' || handlers === null) {
      throw new TypeError('handle() takes an object of handlers by message type, e.g. { update: (m) => ... }')
    }
    const field = options.field ?? 'type'
    if (typeof field !== 'string' || field === '') throw new TypeError('handle(): `field` must be a non-empty string')
    const fallback = options.fallback
    if (fallback !== undefined && typeof fallback !== 'function') {
      throw new TypeError('handle(): `fallback` must be a function')
    }
    // A Map of the object's own entries: a message whose type is `__proto__` or `constructor` finds no handler
    // rather than something of Object.prototype.
    const table = new Map<string, MessageHandler>()
    for (const [name, handler] of Object.entries(handlers)) {
      if (typeof handler !== 'function') throw new TypeError(`handle(): the handler for "${name}" is not a function`)
      table.set(name, handler as MessageHandler)
    }
    return this.on('message', (frame: MessageFrame) => {
      const parsed = this.parse(frame)
      let reason: string
      if (!parsed.ok) {
        reason = parsed.reason
      } else if (typeof parsed.value !== 'object' || parsed.value === null || Array.isArray(parsed.value)) {
        reason = 'it is not a JSON object'
      } else if (!Object.hasOwn(parsed.value, field)) {
        reason = `it has no "${field}" field`
      } else {
        const key = (parsed.value as Record<string, unknown>)[field]
        if (typeof key !== 'string' && typeof key !== 'number') {
          reason = `its "${field}" is neither a string nor a number`
        } else {
          // A type nobody registered here is not an error: other registrations may take it.
          ;(table.get(String(key)) ?? fallback)?.(parsed.value, frame)
          return
        }
      }
      if (fallback) fallback(parsed.ok ? parsed.value : undefined, frame)
      else this.undispatchable(frame, reason)
    })
  }

  messages(options: MessagesOptions = {}): Readable<readonly MessageFrame[]> {
    const last = options.last ?? DEFAULT_LAST_MESSAGES
    if (!Number.isInteger(last) || last < 1 || last > MAX_HELD_FRAMES) {
      throw new RangeError(`messages(): \`last\` must be an integer from 1 to ${MAX_HELD_FRAMES}, got ${String(last)}`)
    }
    const store = writable<readonly MessageFrame[]>([], report)
    const record = (frame: MessageFrame) => {
      const kept = store.readable.get()
      // A new array each time: React and `$derived` see a change by identity.
      store.set(kept.length < last ? [...kept, frame] : [...kept.slice(kept.length - last + 1), frame])
    }
    // Recording from now, so that nothing between this call and a component's mount is lost; paused while the
    // store has had subscribers and has none left, so that a component that makes one per mount leaves no
    // handler behind when it is destroyed.
    let stop: Unsubscribe | undefined = this.on('message', record)
    let subscribers = 0
    return {
      subscribe: (run) => {
        subscribers++
        stop ??= this.on('message', record)
        const unsubscribe = store.readable.subscribe(run)
        let done = false
        return () => {
          if (done) return
          done = true
          unsubscribe()
          if (--subscribers === 0) {
            stop?.()
            stop = undefined
          }
        }
      },
      get: store.readable.get,
    }
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

  setOnConnect(key: string, data: OnConnectData): Promise<OnConnectResult> {
    if (typeof key !== 'string') return Promise.reject(new TypeError('setOnConnect() takes a string key'))
    // In the sends' chain: a send made after it reaches the server after it.
    return this.inOrder(async (backend) => backend.setOnConnect(key, await toOnConnectPayload(data)))
  }

  removeOnConnect(key: string): Promise<RemovedResult> {
    if (typeof key !== 'string') return Promise.reject(new TypeError('removeOnConnect() takes a string key'))
    return this.inOrder((backend) => backend.removeOnConnect(key))
  }

  /** Runs `op` after every earlier send and on-connect call, rejecting with a RealtimeError once closed. */
  private inOrder<T>(op: (backend: Backend) => Promise<T>): Promise<T> {
    if (this.closing || this.done) {
      return Promise.reject(new RealtimeError(`connection ${this.id} is closed`))
    }
    let backend: Backend
    try {
      backend = this.requireBackend()
    } catch (e) {
      return Promise.reject(e)
    }
    const result = this.sendChain.then(() => op(backend))
    this.sendChain = result.catch(() => undefined)
    return result.catch((e: unknown) => {
      throw e instanceof TypeError ? e : toRealtimeError(e)
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
    this.stateStore.set(value)
  }

  private parse(frame: MessageFrame): Parsed {
    if (this.parsedFrame !== frame) {
      this.parsedFrame = frame
      this.parsed = parseMessage(frame)
    }
    return this.parsed
  }

  /** A message `handle()` cannot dispatch, told to `error` handlers and the `error` store, never thrown. */
  private undispatchable(frame: MessageFrame, reason: string): void {
    if (this.reportedFrame === frame) return
    this.reportedFrame = frame
    const error: ErrorFrame = {
      kind: 'error',
      seq: frame.seq,
      message:
        `message ${frame.seq} cannot be dispatched by handle(): ${reason}; ` +
        'pass handle() a `fallback` to take such messages',
      fatal: false,
    }
    this.errorStore.set(error)
    this.call('error', error)
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
