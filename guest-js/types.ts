// The wire contract with the Rust side, hand-kept beside `crates/core/src/frame.rs` and `crates/core/src/options.rs`.
// Change both together; `tests/frames.test.ts` round-trips the JSON samples that the Rust test
// `envelope_matches_the_documented_json` asserts (`tests/fixtures/frames.json`).

/** How a connection reaches its server. */
export type Transport = 'websocket' | 'sse' | 'poll'

/**
 * The observable state of a connection.
 *
 * - `connecting`: an attempt to open the stream is under way.
 * - `connected`: the stream is open and delivering.
 * - `reconnecting`: the stream dropped; waiting `delayMs` before the next attempt.
 * - `polling`: degraded but delivering, HTTP polling instead of a stream.
 * - `failed`: terminal until `reconnect()` is called (a fatal error, or retries exhausted).
 * - `disconnected`: closed on purpose, by the app or by the server.
 */
export type State = 'connecting' | 'connected' | 'reconnecting' | 'polling' | 'failed' | 'disconnected'

/** A state transition. */
export interface StateFrame {
  kind: 'state'
  seq: number
  state: State
  transport?: Transport
  attempt?: number
  delayMs?: number
  reason?: string
  /** On `connected` over WebSocket: the subprotocol the server chose, if any. */
  protocol?: string
  /**
   * True on the copy of the current state that a subscription joining a live upstream gets first. Its `seq`
   * repeats an earlier frame's, so it is not counted for gap detection; the next frame has a later `seq`.
   */
  snapshot?: boolean
}

/** Data from the server. */
export interface MessageFrame {
  kind: 'message'
  seq: number
  transport: Transport
  /** SSE event type (`"message"` when the server named none); absent for WebSocket. */
  event?: string
  /** The text, or base64 (standard alphabet, padded) when `binary` is true: see `decodeBinary`. */
  data: string
  /** SSE last event id (`""` when none was set); absent for WebSocket. */
  lastEventId?: string
  /** Present and true when `data` is base64 of a binary WebSocket message. */
  binary?: boolean
}

/** Something went wrong. `fatal: true` is followed by a `failed` state. */
export interface ErrorFrame {
  kind: 'error'
  seq: number
  message: string
  fatal: boolean
}

/** A WebSocket close handshake (from either side), with its code and reason. */
export interface CloseFrame {
  kind: 'close'
  seq: number
  code: number
  reason: string
}

/**
 * One frame of the envelope, tagged by `kind`. `seq` starts at 1 per connection and rises by exactly one
 * per frame. Frames arrive in batches, in `seq` order: to the bindings (`connect`'s `route: "direct"`), as a
 * script that calls the page's receiver; to a caller that passes no route, as the array payload of the event
 * `realtime://<id>`.
 */
export type Frame = StateFrame | MessageFrame | ErrorFrame | CloseFrame

/** The `kind` tags of {@link Frame}. */
export type FrameKind = Frame['kind']

/** Exponential backoff: delay = min(initialDelayMs x multiplier^(n-1), maxDelayMs), shortened by up to `jitter`. */
export interface ReconnectOptions {
  /** Delay before the first retry, in ms; at least 100. Default: 1000. */
  initialDelayMs?: number
  /** Growth per attempt. Default: 2. */
  multiplier?: number
  /** Ceiling of the delay, in ms; a lower value is raised to `initialDelayMs`. Default: 30000. */
  maxDelayMs?: number
  /** Largest fraction by which a delay is shortened at random (0 turns jitter off). Default: 0.2. */
  jitter?: number
  /** Attempts before `failed`; `null` for unlimited. Default: unlimited. */
  maxRetries?: number | null
  /** How long a connection must stay up before the attempt count resets, in ms. Default: 5000. */
  stableAfterMs?: number
  /** Reconnect also after the server closes a WebSocket normally (1000). Default: false. */
  onNormalClose?: boolean
}

/**
 * Liveness: WebSocket ping/pong or an application heartbeat, and an idle timeout for SSE. `message`, `reply`,
 * `protocolPing` and `deliverReplies` are for WebSocket connections only (refused on SSE and polling).
 */
export interface HeartbeatOptions {
  /** WebSocket ping interval (and application heartbeat interval), in ms; at least 100. Default: 30000. */
  pingIntervalMs?: number
  /**
   * Time allowed for the pong (or the heartbeat's reply), in ms; at least 100. Default: 10000. Also the write
   * deadline: a message that takes longer to write means the server stopped reading, and the connection
   * reconnects. After the machine wakes or the network changes, it is also the time an SSE stream has to show a
   * byte.
   */
  pongTimeoutMs?: number
  /** SSE: reconnect when no byte at all arrives for this long, in ms; at least 100. Default: 45000. */
  idleTimeoutMs?: number
  /**
   * WebSocket: a text message sent every `pingIntervalMs` as an application heartbeat (e.g.
   * `'{"type":"ping"}'`), for servers that ignore protocol pings; 1 to 4096 bytes. It waits while a message is
   * being written, is never queued while the connection is down, and is not counted as a send. A missing
   * answer within `pongTimeoutMs` forces a reconnect. Default: none.
   */
  message?: string
  /**
   * WebSocket: the text that answers `message` (e.g. `'{"type":"pong"}'`). Set, only a message equal to it
   * proves the link alive, and such messages are not relayed to the page (see `deliverReplies`); unset, any
   * message from the server does. Default: none.
   */
  reply?: string
  /** WebSocket: send protocol pings too (each must get its pong). Default: true without `message`, false with it. */
  protocolPing?: boolean
  /** WebSocket: relay messages equal to `reply` to the page as well. Default: false. */
  deliverReplies?: boolean
}

/** Bounds of the outbound queue that holds sends while not connected. Overflow is an error to the caller. */
export interface QueueOptions {
  /** Messages held at most. Default: 1000. */
  maxMessages?: number
  /** Bytes held at most. Default: 1048576 (1 MiB). */
  maxBytes?: number
}

/** The degraded path: HTTP polling when streaming cannot be had. */
export interface FallbackOptions {
  /** URL to GET while degraded. Without it there is no fallback. Default: none. */
  pollUrl?: string
  /**
   * URL to POST sends to while a WebSocket connection is polling, one at a time, the queued ones first; it wins
   * over the top-level `sendUrl` there. On SSE and poll connections it stands in for a missing top-level
   * `sendUrl`. Default: none (sends are queued).
   */
  sendUrl?: string
  /** Time between the end of one poll and the next, in ms; at least 100. Default: 2000. */
  intervalMs?: number
  /** Consecutive failed attempts before polling. Default: 3. */
  afterFailures?: number
  /** Time between attempts to get the stream back, in ms; at least 100. Default: 30000. */
  probeIntervalMs?: number
}

/**
 * What the app asks for. The Rust side refuses unknown fields, so a typo is an error rather than a silent
 * default. Outside Tauri (a plain browser) the same options apply as far as a browser can honour them (SSE over
 * `fetch`, POSTs to `sendUrl`, the reconnect policy, the queue, an application heartbeat, polling); what it cannot do (a `share`
 * key, WebSocket `headers`, WebSocket pings without `heartbeat.message`) is refused with an error naming the
 * option: see the README, "Running in a plain browser".
 */
export interface ConnectOptions {
  /** `ws://`, `wss://`, `http://` or `https://`. */
  url: string
  /** Default: `websocket` for ws(s) URLs, `sse` for http(s) URLs. */
  transport?: Transport
  /**
   * Request headers, sent on every attempt (at most 64, 16 KiB in all). The names the Fetch standard forbids to
   * pages (`Host`, `Connection`, `Content-Length`, `Transfer-Encoding`, `Cookie`, `Origin`, `Proxy-*`, `Sec-*`,
   * ...) are refused. Default: none.
   */
  headers?: Record<string, string>
  /** WebSocket subprotocols (`Sec-WebSocket-Protocol`), at most 64. Default: none. */
  protocols?: string[]
  /** SSE request method (`CONNECT`, `TRACE` and `TRACK` are refused). Default: `GET`. */
  method?: string
  /** SSE request body, re-sent on every reconnect. Default: none. */
  body?: string
  /** SSE `Last-Event-ID` for the first request. Default: none. */
  lastEventId?: string
  /**
   * URL (http or https, in the scope like `url`) that `send()` POSTs each message to, one at a time and in order,
   * with `headers` and the app's secret headers: on SSE and poll connections always, whatever the stream's state;
   * on a WebSocket while it polls (`fallback.sendUrl` wins there). A POST that fails for a network error, a
   * timeout, 408, 429 or 5xx is retried with the `reconnect` backoff (or a longer `Retry-After`) before any later
   * send, up to `reconnect.maxRetries`; any other status fails that send alone. Every try of one send carries the
   * same `Idempotency-Key` header (unless `headers` sets one). Default: none (`send()` on SSE and poll connections is refused).
   */
  sendUrl?: string
  /**
   * Reconnect policy, or `false` for none. Default: on (`true`), with initialDelayMs 1000, multiplier 2,
   * maxDelayMs 30000, jitter 0.2, maxRetries unlimited, stableAfterMs 5000, onNormalClose false.
   */
  reconnect?: boolean | ReconnectOptions
  /**
   * Liveness checks, or `false` for none. Default: on (`true`), with pingIntervalMs 30000, pongTimeoutMs 10000,
   * idleTimeoutMs 45000, protocol pings and no application heartbeat (`message`).
   */
  heartbeat?: boolean | HeartbeatOptions
  /** Outbound queue limits while not connected. Default: maxMessages 1000, maxBytes 1048576 (1 MiB). */
  queue?: QueueOptions
  /**
   * Polling fallback, or `false`. Default: off until a `pollUrl` is given; then intervalMs 2000,
   * afterFailures 3, probeIntervalMs 30000.
   */
  fallback?: boolean | FallbackOptions
  /**
   * `true` (default): identical options from this webview share one upstream. `false`: a private upstream.
   * A string (1-256 bytes): an explicit share key, the only way to share across webviews; a joiner must bring
   * identical options, and the key held with other options is an error.
   */
  share?: boolean | string
  /**
   * Largest message accepted from the server, in bytes (a WebSocket message, an SSE event or line).
   * Default: 16777216 (16 MiB).
   */
  maxMessageSize?: number
  /** Time allowed to open the stream (TCP, TLS, upgrade or response headers), in ms; at least 100. Default: 10000. */
  connectTimeoutMs?: number
  /**
   * Send this webview's cookies for each request's URL (the WebSocket upgrade, the SSE request and every redirect
   * hop, polls, `sendUrl` POSTs) and store every response's `Set-Cookie` back into the webview's cookie store, as
   * `EventSource`'s option of that name does. A `share` key of a credentialed connection can be joined only from
   * the webview that opened it. Outside Tauri: `fetch` with `credentials: 'include'` (a browser's WebSocket sends
   * its cookies anyway). Default: false.
   */
  withCredentials?: boolean
}

/** What the `connect` command gives. */
export interface ConnectResult {
  id: string
  state: State
  /** True when this subscription joined an existing upstream. */
  shared: boolean
}

/**
 * What `setOnConnect()` accepts: a string (text), bytes (binary), or any other value, sent as its JSON text
 * (`{ type: 'subscribe', topic: 'prices' }` becomes `'{"type":"subscribe","topic":"prices"}'`).
 */
export type OnConnectData =
  | string
  | ArrayBuffer
  | ArrayBufferView
  | Blob
  | Record<string, unknown>
  | unknown[]
  | number
  | boolean
  | null

/** What `setOnConnect()` (the `set_on_connect` command) gives. */
export interface OnConnectResult {
  /** True when the connection is open, so the message was also written now; false: it waits for the next open. */
  connected: boolean
}

/** What `removeOnConnect()` (the `remove_on_connect` command) gives. */
export interface RemovedResult {
  /** False when this connection had no message under that key. */
  removed: boolean
}

/** What the `send` command gives. */
export interface SendResult {
  /**
   * True when the message is held for delivery after a reconnect (WebSocket). A POSTed send resolves once the
   * server took it (2xx), always with `false`.
   */
  queued: boolean
}

/** A plain object or an array: `send()` POSTs it as JSON (`JSON.stringify`), `application/json`. */
export type JsonBody = { [key: string]: unknown } | readonly unknown[]

/** Options of one `send()`. */
export interface SendOptions {
  /**
   * The `Content-Type` of the POST when the message goes to `sendUrl` (ignored by a WebSocket frame). Default:
   * `application/json` for a plain object or array, the Blob's own type for a typed Blob; otherwise a
   * `Content-Type` in the connection's `headers`, else `text/plain; charset=utf-8` for text and
   * `application/octet-stream` for bytes. A value HTTP cannot carry (line breaks, non-ASCII, over 256
   * characters) is refused.
   */
  contentType?: string
}

/**
 * One subscription and its upstream, as the `inspect` command reports it (`ConnectionInfo` in
 * `crates/core/src/hub/mod.rs`).
 */
export interface ConnectionInfo {
  id: string
  url: string
  transport: Transport
  state: State
  attempt: number
  framesIn: number
  framesOut: number
  bytesIn: number
  bytesOut: number
  /** Messages waiting in the outbound queue. */
  queued: number
  /** Bytes waiting in the outbound queue. */
  queuedBytes: number
  lastError: string | null
  lastEventId: string | null
  /** The WebSocket subprotocol the server chose. */
  protocol: string | null
  /** Subscriptions to this upstream, all owners together. */
  subscribers: number
  /** Subscriptions to this upstream per owner (webview label). */
  owners: Record<string, number>
  /**
   * Whether this upstream can be joined (by identical options from this webview, or by its share key); not
   * whether this subscription joined, which is `Connection.shared`.
   */
  joinable: boolean
  /** Tasks alive for this upstream: its connection task and one delivery task per subscriber. */
  tasks: number
}

/** The value of {@link Connection.state}: the fields of the latest `state` frame. */
export interface StateValue {
  state: State
  transport?: Transport
  attempt?: number
  delayMs?: number
  reason?: string
}

/** The Svelte store contract (`subscribe` returns the unsubscribe function), plus a synchronous `get()`. */
export interface Readable<T> {
  /** Calls `run` at once with the current value, then on each change. Returns the unsubscribe function. */
  subscribe(run: (value: T) => void): () => void
  /** The current value. */
  get(): T
}

/** Given to `on('gap')` handlers when a frame's `seq` is not the previous one plus one. */
export interface GapInfo {
  /** The `seq` that should have come next. */
  expected: number
  /** The `seq` that came. */
  got: number
}

/** The reserved names of {@link Connection.on}; any other string names an SSE event type. */
export type HandlerKind = FrameKind | 'frame' | 'gap'

/** Removes the handler it was returned for. Calling it twice is harmless. */
export type Unsubscribe = () => void

/** The values of field `F` across the members of `T` (distributes over a union). */
type FieldValue<T, F extends string> = T extends unknown ? (F extends keyof T ? T[F] : never) : never

/**
 * The handlers of {@link Connection.handle}, by the value of field `F`. With a union of message types
 * (`{ type: 'update'; id: number } | { type: 'delete'; id: number }`) each handler gets its own member and an
 * unknown name is a type error; with the default `T` any name goes and messages are `Record<string, any>`.
 */
export type MessageHandlers<T, F extends string = 'type'> = string extends FieldValue<T, F>
  ? { [type: string]: (message: T, frame: MessageFrame) => void }
  : {
      [K in FieldValue<T, F> & (string | number) as `${K}`]?: (
        message: Extract<T, { [P in F]: K }>,
        frame: MessageFrame,
      ) => void
    }

/** Options of {@link Connection.handle}. */
export interface HandleOptions<F extends string = 'type'> {
  /** The field of each JSON message whose value (a string or a number) names its handler. Default: `'type'`. */
  field?: F
  /**
   * Takes every message no handler of this registration takes: a type without a handler, and messages that
   * cannot be dispatched (binary, not JSON, not an object, no such field), whose `message` is then the parsed
   * JSON or `undefined`. Default: none (types without a handler are ignored, undispatchable messages are an
   * `error` event).
   */
  fallback?: (message: unknown, frame: MessageFrame) => void
}

/** Options of {@link Connection.messages}. */
export interface MessagesOptions {
  /** How many of the latest messages the store keeps, from 1 to 10 000. Default: 100. */
  last?: number
}

/** A connection opened with `connect()`. */
export interface Connection {
  /** The subscription id chosen by these bindings, as the plugin's commands and `inspect` know it. */
  readonly id: string
  /** True when this subscription joined an existing upstream (see `ConnectOptions.share`). */
  readonly shared: boolean
  /** The current state (the latest `state` frame), as a Svelte-compatible store. */
  readonly state: Readable<StateValue>
  /**
   * The latest error, as a Svelte-compatible store: an `error` frame from Rust, or a message `handle()` could not
   * dispatch; `null` at first, and again once the connection is `connected` (the error is over).
   */
  readonly error: Readable<ErrorFrame | null>

  /**
   * A new store of the latest messages (at most `last`, default 100), oldest first, a new array on each
   * message. It records from this call (it is a `'message'` handler, so it also gets the frames held before the
   * first `on()`) until the connection closes, except while it has no subscriber after having had one: when
   * its last subscriber leaves (a component destroyed) it stops, and the next subscriber starts it again.
   */
  messages(options?: MessagesOptions): Readable<readonly MessageFrame[]>

  /**
   * Dispatches JSON messages by type: each message frame's `data` is parsed once (for all `handle()`
   * registrations of this connection), and the handler named by its `field` (default `'type'`) is called with
   * the parsed object and the frame. Only the handlers' own properties count (`__proto__` or `constructor`
   * reaches nothing else). A type without a handler goes to `fallback`, else is ignored; a message that cannot
   * be dispatched (binary, not JSON, not an object, no such field) goes to `fallback`, else becomes one
   * non-fatal `error` (to `on('error')` handlers and the `error` store, not to `'frame'` handlers), never an
   * exception. A handler that throws is reported and does not stop the others. Returns the unsubscribe function.
   */
  handle<T extends object = Record<string, any>, F extends string = 'type'>(
    handlers: MessageHandlers<T, F>,
    options?: HandleOptions<F>,
  ): Unsubscribe

  /**
   * Adds a handler. The reserved kinds take precedence over SSE event types of the same name:
   *
   * - `'message'`: every message frame (WebSocket, and SSE of any event type). Binary WebSocket messages
   *   come with `binary: true` and base64 `data`: use `decodeBinary(frame)`.
   * - `'state'`, `'error'`, `'close'`: frames of that kind.
   * - `'frame'`: every frame.
   * - `'gap'`: a frame's `seq` was not the previous `seq` + 1 (`{ expected, got }`), told just before
   *   that frame is handed out. The first frame received sets the baseline.
   * - any other string: SSE message frames whose `event` equals it (e.g. `on('summary', …)`).
   *
   * Frames received before the first `on()` call are held (at most 10 000, the oldest dropped beyond that,
   * which then shows as a gap) and handed out in order in a later task, so every handler attached
   * synchronously after `await connect()` gets them. After that, frames are handed out as they arrive.
   * For one frame, `'frame'` handlers run first, then the kind's, then the SSE event type's.
   */
  on(kind: 'message', handler: (frame: MessageFrame) => void): Unsubscribe
  on(kind: 'state', handler: (frame: StateFrame) => void): Unsubscribe
  on(kind: 'error', handler: (frame: ErrorFrame) => void): Unsubscribe
  on(kind: 'close', handler: (frame: CloseFrame) => void): Unsubscribe
  on(kind: 'frame', handler: (frame: Frame) => void): Unsubscribe
  on(kind: 'gap', handler: (gap: GapInfo) => void): Unsubscribe
  on(eventType: string, handler: (frame: MessageFrame) => void): Unsubscribe

  /**
   * Sends a message: a WebSocket frame, or, on SSE and poll connections (and a WebSocket while it polls), a
   * POST to `sendUrl`. Strings go as text; `ArrayBuffer`, typed arrays, `DataView` and `Blob` go as binary
   * (base64 on the wire); a plain object or array goes as its JSON text, `application/json` when POSTed. Sends
   * go out in call order. Resolves with `queued: true` when the message is held for delivery after a reconnect
   * (WebSocket); a POST resolves once the server took it. Rejects when the queue is full, when the server
   * refused the POST (the message names the status and the URL, and an `error` frame says which send), or when
   * its retries ran out.
   */
  send(data: string | ArrayBuffer | ArrayBufferView | Blob | JsonBody, options?: SendOptions): Promise<SendResult>
  /**
   * Keeps a message that is written right after every open of the WebSocket, before the messages queued while
   * it was down, so the server has its topic subscriptions (or an auth handshake) back before anything else
   * arrives. `data`: a string (text), bytes (`ArrayBuffer`, typed array, `DataView`, `Blob`: binary), or any
   * other value, sent as its JSON text. Setting a `key` again replaces its data and keeps its place; messages go
   * in the order their keys were first set. When the connection is open, the message is written now as well
   * (`connected: true`). Keys (1-256 bytes) are this connection's own, even on a shared upstream, and go when it
   * closes. At most 64 messages and 256 KiB per upstream by default. WebSocket only: rejects on SSE and polling.
   * Goes in call order with `send()`.
   */
  setOnConnect(key: string, data: OnConnectData): Promise<OnConnectResult>
  /** Stops re-sending the message under `key` (nothing is sent for it: unsubscribing is the app's own message). */
  removeOnConnect(key: string): Promise<RemovedResult>
  /**
   * Ends this subscription (the upstream closes when no subscriber is left), after sends already made.
   * No handler runs once it is called. Always stops delivery, sets `state` to `disconnected` and drops every
   * `on()` handler, even when the command rejects (the promise then rejects too). Calling it again returns the
   * same promise.
   */
  close(code?: number, reason?: string): Promise<void>
  /** A manual retry, e.g. from `failed`. */
  reconnect(): Promise<void>
  /** This connection's counters and state. */
  inspect(): Promise<ConnectionInfo>
}
