// Outside Tauri (a plain browser during `vite dev`): the same Connection, carried by the browser's own `WebSocket`
// and by `fetch` streaming for SSE and polling, with the engine's reconnect policy, state frames, outbound queue,
// liveness checks and polling fallback re-done here as a browser can do them. What a browser cannot do (sharing
// across webviews, WebSocket headers or protocol pings, what `fetch` would refuse) is refused when `connect()` is
// called, with an error naming the option, never ignored. Mirrors `crates/core/src/{options,backoff,policy}.rs`,
// `connection.rs` and `transport/{sse,poll}.rs`: change them together.

import { createParser, type EventSourceMessage, type ParseError } from 'eventsource-parser'

import { encodeBase64 } from './base64.js'
import type { Backend, FrameSink } from './connection.js'
import { RealtimeError } from './errors.js'
import type {
  ConnectionInfo,
  ConnectOptions,
  FallbackOptions,
  Frame,
  HeartbeatOptions,
  SendResult,
  State,
  Transport,
} from './types.js'

type Body = { [K in Frame['kind']]: Omit<Extract<Frame, { kind: K }>, 'seq'> }[Frame['kind']]

const live = new Set<Backend>()

/** `inspect()` outside Tauri: the connections of this page. */
export async function inspectBrowser(id?: string): Promise<ConnectionInfo[]> {
  const all = await Promise.all([...live].map((b) => b.inspect()))
  return id === undefined ? all : all.filter((i) => i.id === id)
}

// ---------------------------------------------------------------------------------------------------------------
// Options: the engine's defaults and checks (`options.rs`), and the refusals of what a browser cannot do.

/** The engine's floor for every interval a page chooses (`MIN_INTERVAL_MS`). */
export const MIN_INTERVAL_MS = 100
/** Longest wait a server can impose with `retry:` or `Retry-After` (`MAX_SERVER_DELAY`): ten minutes. */
export const MAX_SERVER_DELAY_MS = 600_000
/** `setTimeout` fires at once past a signed 32-bit delay: longer waits are cut to this (about 24.8 days). */
const MAX_TIMER_MS = 2 ** 31 - 1
const MAX_QUEUE_MESSAGES = 100_000
const MAX_QUEUE_BYTES = 64 << 20
const MAX_MESSAGE_SIZE = 64 << 20
const MAX_CLOSE_REASON = 123

/** The reconnect policy, resolved (`ReconnectOptions` with its defaults). */
export interface Policy {
  initialDelayMs: number
  multiplier: number
  maxDelayMs: number
  jitter: number
  maxRetries: number | null
  stableAfterMs: number
  onNormalClose: boolean
}

/**
 * `heartbeat.message` / `heartbeat.reply` (the application heartbeat) come to `HeartbeatOptions` with the engine's
 * support for them; until then they are read through this type.
 */
type Heartbeat = HeartbeatOptions & { message?: string; reply?: string }

/** What `connectBrowser` runs on: the options checked, with their defaults. */
export interface BrowserOptions {
  url: URL
  transport: 'websocket' | 'sse' | 'poll'
  headers: Record<string, string>
  protocols: string[]
  method: string
  body: string | undefined
  lastEventId: string | undefined
  reconnect: Policy | null
  heartbeat: {
    pingIntervalMs: number
    pongTimeoutMs: number
    idleTimeoutMs: number
    message: string | undefined
    reply: string | undefined
  } | null
  queue: { maxMessages: number; maxBytes: number }
  /** The polling fallback: with a `pollUrl`, or for `transport: 'poll'` (which polls `url`). */
  fallback: {
    pollUrl: URL
    sendUrl: URL | undefined
    intervalMs: number
    afterFailures: number
    probeIntervalMs: number
  } | null
  maxMessageSize: number
  connectTimeoutMs: number
}

function invalid(message: string): RealtimeError {
  return new RealtimeError(`invalid connect options: ${message}`)
}

/** The start of every refusal: says that the option works in Tauri, and what to do in a plain browser. */
function refused(option: string, why: string): RealtimeError {
  return new RealtimeError(`${option} is not available outside Tauri: ${why}`)
}

function integer(field: string, value: unknown, fallback: number, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > max) {
    throw invalid(`\`${field}\` must be a whole number from 0 to ${max}, got ${JSON.stringify(value)}`)
  }
  if (value < min) throw invalid(`\`${field}\` must be at least ${min} ms, got ${value}`)
  return value
}

function toggle<T extends object>(field: string, value: boolean | T | undefined, byDefault: boolean): T | null {
  if (value === undefined) return byDefault ? ({} as T) : null
  if (value === true) return {} as T
  if (value === false) return null
  if (typeof value !== 'object' || value === null) throw invalid(`\`${field}\` must be true, false or an object`)
  return value
}

/** The Fetch standard's forbidden request header names (`is_forbidden_header` in `options.rs`). */
const FORBIDDEN_HEADERS = new Set([
  'accept-charset',
  'accept-encoding',
  'access-control-request-headers',
  'access-control-request-method',
  'connection',
  'content-length',
  'cookie',
  'cookie2',
  'date',
  'dnt',
  'expect',
  'host',
  'keep-alive',
  'origin',
  'referer',
  'set-cookie',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'via',
])
const FORBIDDEN_METHODS = new Set(['CONNECT', 'TRACE', 'TRACK'])
const METHOD_OVERRIDES = new Set(['x-http-method', 'x-http-method-override', 'x-method-override'])

function forbiddenHeader(name: string, value: string): boolean {
  const n = name.toLowerCase()
  if (FORBIDDEN_HEADERS.has(n) || n.startsWith('proxy-') || n.startsWith('sec-')) return true
  return METHOD_OVERRIDES.has(n) && value.split(',').some((m) => FORBIDDEN_METHODS.has(m.trim().toUpperCase()))
}

/** A subprotocol is an HTTP token (`options.rs`). */
function isToken(p: string): boolean {
  return p.length > 0 && /^[\x21-\x7e]+$/.test(p) && !/[()<>@,;:\\"/[\]?={}]/.test(p)
}

/**
 * Checks `options` as the engine does and refuses what a browser cannot do. Throws a {@link RealtimeError} that
 * names the option.
 */
export function resolveBrowserOptions(options: ConnectOptions): BrowserOptions {
  let url: URL
  try {
    url = new URL(options.url)
  } catch {
    throw invalid(`\`url\` is not a valid URL: ${JSON.stringify(options.url)}`)
  }
  const schemeTransport =
    url.protocol === 'ws:' || url.protocol === 'wss:'
      ? 'websocket'
      : url.protocol === 'http:' || url.protocol === 'https:'
        ? 'sse'
        : undefined
  if (!schemeTransport) throw invalid(`unsupported url scheme \`${url.protocol}\`; use ws, wss, http or https`)
  const transport: Transport = options.transport ?? schemeTransport
  if (transport !== 'websocket' && transport !== 'sse' && transport !== 'poll') {
    throw invalid(`unknown transport ${JSON.stringify(transport)}`)
  }
  if (transport !== schemeTransport && !(transport === 'poll' && schemeTransport === 'sse')) {
    throw invalid(`transport \`${transport}\` does not go with a ${url.protocol} url`)
  }

  // Forced polling uses the fallback's defaults even with `fallback: false`, as the engine does.
  const f = toggle<FallbackOptions>('fallback', options.fallback, false) ?? (transport === 'poll' ? {} : null)
  let fallback: BrowserOptions['fallback'] = null
  // Forced polling keeps the fallback's settings even without a poll URL: it polls `url`.
  if (f && (f.pollUrl !== undefined || transport === 'poll')) {
    const httpUrl = (field: string, raw: string | undefined): URL | undefined => {
      if (raw === undefined) return undefined
      let u: URL
      try {
        u = new URL(raw)
      } catch {
        throw invalid(`\`${field}\` is not a valid URL: ${JSON.stringify(raw)}`)
      }
      if (u.protocol !== 'http:' && u.protocol !== 'https:') throw invalid(`\`${field}\` must be an http or https URL`)
      return u
    }
    fallback = {
      pollUrl: httpUrl('fallback.pollUrl', f.pollUrl) ?? url,
      sendUrl: httpUrl('fallback.sendUrl', f.sendUrl),
      intervalMs: integer('fallback.intervalMs', f.intervalMs, 2000, MIN_INTERVAL_MS),
      afterFailures: integer('fallback.afterFailures', f.afterFailures, 3),
      probeIntervalMs: integer('fallback.probeIntervalMs', f.probeIntervalMs, 30_000, MIN_INTERVAL_MS),
    }
  }
  if (typeof options.share === 'string') {
    throw refused(
      'a `share` key',
      'a key shares one upstream across webviews, and a plain browser page has its own sockets only; pass ' +
        '`share: true` or leave it out (outside Tauri every connect() opens its own socket)',
    )
  }

  const headers = options.headers ?? {}
  const headerNames = Object.keys(headers)
  const protocols = options.protocols ?? []
  if (!Array.isArray(protocols) || protocols.some((p) => typeof p !== 'string' || !isToken(p))) {
    throw invalid('`protocols` must be WebSocket subprotocols: tokens without spaces or separators')
  }
  if (protocols.length > 0 && transport !== 'websocket') {
    throw invalid('`protocols` is only for WebSocket connections')
  }
  for (const name of headerNames) {
    const value = headers[name]
    if (!isToken(name)) throw invalid(`invalid header name ${JSON.stringify(name)}`)
    if (typeof value !== 'string' || /[\0\r\n]/.test(value)) {
      throw invalid(`invalid value for header ${JSON.stringify(name)}: no line breaks or control characters allowed`)
    }
    // fetch throws a TypeError for these, which a page cannot tell from a network error: refused here instead.
    if (/[^\0-\xff]/.test(value)) {
      throw refused(
        `header ${JSON.stringify(name)} with characters past U+00FF`,
        "the browser's fetch sends header values as bytes of Latin-1 only; percent-encode the value",
      )
    }
    if (forbiddenHeader(name, value)) {
      throw invalid(`header ${JSON.stringify(name)} is forbidden to pages by the Fetch standard; leave it out`)
    }
  }
  const method = (options.method ?? 'GET').toUpperCase()
  if (transport === 'poll' && (options.method !== undefined || options.body !== undefined)) {
    throw invalid('`method` and `body` are only for SSE connections; polls are GETs')
  }
  if (transport === 'websocket') {
    if (headerNames.length > 0) {
      throw refused(
        '`headers` on a WebSocket',
        "the browser's WebSocket cannot send request headers; pass a token in the URL or in `protocols` when " +
          'not in Tauri (or keep secrets in Rust with `Builder::header`)',
      )
    }
    if (options.method !== undefined || options.body !== undefined) {
      throw invalid('`method` and `body` are only for SSE connections; send data over a WebSocket with send()')
    }
    if (options.lastEventId !== undefined) throw invalid('`lastEventId` is only for SSE connections')
  }
  for (const u of [url, fallback?.pollUrl, fallback?.sendUrl]) {
    if (u && (u.protocol === 'http:' || u.protocol === 'https:') && (u.username || u.password)) {
      throw refused(
        'a URL with a user name or password',
        "the browser's fetch refuses such URLs; send the credentials in an `Authorization` header",
      )
    }
  }
  if (transport === 'sse') {
    if (!isToken(method)) throw invalid(`invalid HTTP method ${JSON.stringify(options.method)}`)
    if (FORBIDDEN_METHODS.has(method)) {
      throw invalid(`HTTP method ${method} is not allowed (the Fetch standard forbids it); use GET or POST`)
    }
    if (options.body !== undefined && (method === 'GET' || method === 'HEAD')) {
      throw refused(
        `\`body\` with ${method}`,
        "the browser's fetch sends no body with GET or HEAD; set `method: 'POST'`",
      )
    }
    if (options.lastEventId !== undefined && /[\0\r\n]/.test(options.lastEventId)) {
      throw invalid('`lastEventId` must not contain NUL or line breaks')
    }
  }

  const r = toggle<NonNullable<Exclude<ConnectOptions['reconnect'], boolean>>>('reconnect', options.reconnect, true)
  let reconnect: Policy | null = null
  if (r) {
    const initialDelayMs = integer('reconnect.initialDelayMs', r.initialDelayMs, 1000, MIN_INTERVAL_MS)
    const multiplier = r.multiplier ?? 2
    if (typeof multiplier !== 'number' || !Number.isFinite(multiplier) || multiplier < 1) {
      throw invalid('`reconnect.multiplier` must be a number >= 1')
    }
    const jitter = r.jitter ?? 0.2
    if (typeof jitter !== 'number' || !(jitter >= 0 && jitter <= 1)) {
      throw invalid('`reconnect.jitter` must be between 0 and 1')
    }
    const maxRetries = r.maxRetries === null ? null : integer('reconnect.maxRetries', r.maxRetries, -1)
    reconnect = {
      initialDelayMs,
      multiplier,
      // `{ initialDelayMs: 60000 }` alone means a minute between attempts, not the default 30 s ceiling.
      maxDelayMs: Math.max(integer('reconnect.maxDelayMs', r.maxDelayMs, 30_000), initialDelayMs),
      jitter,
      maxRetries: maxRetries === -1 ? null : maxRetries,
      stableAfterMs: integer('reconnect.stableAfterMs', r.stableAfterMs, 5000),
      onNormalClose: r.onNormalClose === true,
    }
  }

  const h = toggle<Heartbeat>('heartbeat', options.heartbeat, true)
  let heartbeat: BrowserOptions['heartbeat'] = null
  if (h) {
    for (const field of ['message', 'reply'] as const) {
      if (h[field] !== undefined && typeof h[field] !== 'string') throw invalid(`\`heartbeat.${field}\` must be text`)
    }
    if (transport !== 'websocket' && (h.message !== undefined || h.reply !== undefined)) {
      throw invalid('`heartbeat.message` and `heartbeat.reply` are for WebSocket; SSE uses `heartbeat.idleTimeoutMs`')
    }
    if (h.reply !== undefined && h.message === undefined) {
      throw invalid('`heartbeat.reply` needs `heartbeat.message`: it is the answer to that message')
    }
    if (transport === 'websocket' && h.message === undefined) {
      for (const field of ['pingIntervalMs', 'pongTimeoutMs'] as const) {
        if (h[field] !== undefined) {
          throw refused(
            `\`heartbeat.${field}\` without \`heartbeat.message\``,
            'a browser cannot send WebSocket pings (it only answers the server\'s); set `heartbeat.message` (and ' +
              '`heartbeat.reply`) for an application heartbeat, or leave the field out',
          )
        }
      }
    }
    heartbeat = {
      pingIntervalMs: integer('heartbeat.pingIntervalMs', h.pingIntervalMs, 30_000, MIN_INTERVAL_MS),
      pongTimeoutMs: integer('heartbeat.pongTimeoutMs', h.pongTimeoutMs, 10_000, MIN_INTERVAL_MS),
      idleTimeoutMs: integer('heartbeat.idleTimeoutMs', h.idleTimeoutMs, 45_000, MIN_INTERVAL_MS),
      message: h.message,
      reply: h.reply,
    }
  }

  const q = options.queue ?? {}
  const queue = {
    maxMessages: integer('queue.maxMessages', q.maxMessages, 1000, 0, MAX_QUEUE_MESSAGES),
    maxBytes: integer('queue.maxBytes', q.maxBytes, 1 << 20, 0, MAX_QUEUE_BYTES),
  }
  const maxMessageSize = integer('maxMessageSize', options.maxMessageSize, 16 << 20, 0, MAX_MESSAGE_SIZE)
  if (maxMessageSize === 0) throw invalid(`\`maxMessageSize\` must be between 1 and ${MAX_MESSAGE_SIZE} bytes`)
  const connectTimeoutMs = integer('connectTimeoutMs', options.connectTimeoutMs, 10_000, MIN_INTERVAL_MS)

  if (transport === 'websocket' && typeof WebSocket === 'undefined') {
    throw new RealtimeError('no WebSocket in this environment: outside Tauri the bindings need the browser\'s own')
  }
  const streamingFetch = typeof fetch === 'function' && typeof ReadableStream !== 'undefined'
  if ((transport !== 'websocket' || fallback) && !streamingFetch) {
    throw new RealtimeError('no streaming fetch in this environment: outside Tauri SSE and polling need fetch')
  }
  return {
    url,
    transport,
    headers: { ...headers },
    protocols: [...protocols],
    method,
    body: options.body,
    lastEventId: options.lastEventId,
    reconnect,
    heartbeat,
    queue,
    fallback,
    maxMessageSize,
    connectTimeoutMs,
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The reconnect policy (`backoff.rs`, `policy.rs`): pure, so tests assert exact delays.

/**
 * Delay before attempt `attempt` (1-based): min(base x multiplier^(attempt-1), max(maxDelayMs, base)), then
 * shortened by `jitter x sample` where `sample` is in [0, 1). `base` is `initialDelayMs`, or the SSE `retry:`.
 */
export function backoffDelay(policy: Policy, baseMs: number, attempt: number, sample: number): number {
  const exp = Math.min(Math.max(attempt - 1, 0), 64)
  const raw = baseMs * policy.multiplier ** exp
  const capped = Math.min(raw, Math.max(policy.maxDelayMs, baseMs))
  const s = Math.min(Math.max(sample, 0), 1)
  return Math.max(Math.floor(capped * (1 - policy.jitter * s)), 0)
}

/** What an open stream achieved before it ended. */
export interface Progress {
  uptimeMs: number
  delivered: boolean
}

/** How an attempt, or an open stream, ended (`Ended` and `AttemptError` in the engine). */
export type Ended =
  | { kind: 'retry'; reason: string; retryAfterMs?: number }
  | { kind: 'fatal'; reason: string }
  | { kind: 'stop'; reason: string }
  /** The server cannot stream (an SSE answer of another content type): poll, with a poll URL, else fail. */
  | { kind: 'noStream'; reason: string }
  | { kind: 'dropped'; reason: string; progress: Progress }
  | { kind: 'finished'; progress: Progress }
  | { kind: 'serverClosed'; code: number; reason: string; progress: Progress }

/** The next step (`Step` in the engine). */
export type Step =
  | { kind: 'retry'; attempt: number; delayMs: number; reason: string }
  | { kind: 'fail'; reason: string }
  | { kind: 'disconnect'; reason: string }
  | { kind: 'fallback'; reason: string }

/**
 * The engine's `decide`: `attempt` is the number of the attempt that just ended (0 for the first), `sample` in
 * [0, 1) drives the jitter, `fallbackAfter` is `fallback.afterFailures` when a poll URL is set (else null). A
 * stream that delivered a message or stayed up `stableAfterMs` starts the count afresh.
 */
export function decide(
  policy: Policy | null,
  baseMs: number,
  attempt: number,
  ended: Ended,
  sample: number,
  fallbackAfter: number | null = null,
): Step {
  const afterOpen = (p: Progress): number =>
    p.delivered || (policy !== null && p.uptimeMs >= policy.stableAfterMs) ? 1 : attempt + 1
  let reason: string
  let next: number
  let retryAfterMs: number | undefined
  switch (ended.kind) {
    case 'fatal':
      return { kind: 'fail', reason: ended.reason }
    case 'stop':
      return { kind: 'disconnect', reason: ended.reason }
    case 'noStream':
      return { kind: fallbackAfter !== null ? 'fallback' : 'fail', reason: ended.reason }
    case 'retry':
      ;[reason, next, retryAfterMs] = [ended.reason, attempt + 1, ended.retryAfterMs]
      break
    case 'serverClosed':
      if (ended.code === 1000 && !policy?.onNormalClose) {
        return {
          kind: 'disconnect',
          reason: `server closed the connection (1000${ended.reason ? ` ${ended.reason}` : ''})`,
        }
      }
      reason = `server closed the connection (${ended.code}${ended.reason ? ` ${ended.reason}` : ''})`
      next = afterOpen(ended.progress)
      break
    case 'dropped':
      ;[reason, next] = [ended.reason, afterOpen(ended.progress)]
      break
    case 'finished':
      ;[reason, next] = ['stream ended', afterOpen(ended.progress)]
      break
  }
  if (!policy) {
    return ended.kind === 'finished'
      ? { kind: 'disconnect', reason: 'stream ended and reconnect is off' }
      : { kind: 'fail', reason: `${reason} (reconnect is off)` }
  }
  if (fallbackAfter !== null && next >= fallbackAfter) {
    return { kind: 'fallback', reason: `${next} failed attempts: ${reason}` }
  }
  if (policy.maxRetries !== null && next > policy.maxRetries) {
    return { kind: 'fail', reason: `gave up after ${next - 1} retries: ${reason}` }
  }
  let delayMs = backoffDelay(policy, baseMs, next, sample)
  if (retryAfterMs !== undefined) delayMs = Math.max(delayMs, Math.min(retryAfterMs, MAX_SERVER_DELAY_MS))
  return { kind: 'retry', attempt: next, delayMs, reason }
}

/** `Retry-After` in its delay-seconds form, capped; the HTTP-date form is rare for streams and is ignored. */
export function parseRetryAfter(value: string | null): number | undefined {
  const v = value?.trim()
  if (!v || !/^\d+$/.test(v)) return undefined
  return Math.min(Number(v) * 1000, MAX_SERVER_DELAY_MS)
}

/** `text/event-stream`, ignoring case, parameters and white space. */
function isEventStream(contentType: string): boolean {
  return (contentType.split(';')[0] ?? '').trim().toLowerCase() === 'text/event-stream'
}

/** The engine's words for an SSE line or event past `maxMessageSize` (`sse.rs`). */
function sseTooLarge(limit: number): string {
  return `sse line or event data larger than ${limit} bytes; raise maxMessageSize or fix the server`
}

/** HTTP statuses worth retrying, as the engine classifies them (`classify_status`). */
function retryableStatus(status: number): boolean {
  return status === 408 || status === 429 || (status >= 500 && status <= 599)
}

function utf8Length(s: string): number {
  let n = 0
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c < 0x80) n += 1
    else if (c < 0x800) n += 2
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      n += 4
      i++
    } else n += 3
  }
  return n
}

function describe(e: unknown): string {
  if (e instanceof Error) {
    const cause = (e as { cause?: unknown }).cause
    return cause instanceof Error && !e.message.includes(cause.message) ? `${e.message}: ${cause.message}` : e.message
  }
  return String(e)
}

const now = (): number => (typeof performance !== 'undefined' ? performance.now() : Date.now())

function later(ms: number, run: () => void): ReturnType<typeof setTimeout> {
  return setTimeout(run, Math.min(Math.max(ms, 0), MAX_TIMER_MS))
}

// ---------------------------------------------------------------------------------------------------------------
// The connection: one attempt at a time, each with its generation, so late callbacks of an old one do nothing.

/** The live part of one attempt: how to stop it, and how to write to it (WebSocket, once open). */
interface Attempt {
  stop(code?: number, reason?: string): void
  write?(payload: string | Uint8Array): void
  open: boolean
  protocol: string | null
}

type Payload = string | Uint8Array

/** The degraded path while it lasts (`Phase::Polling` in the engine). */
interface Polling {
  /** Whether it tries the stream again every `probeIntervalMs` (not for `transport: 'poll'`). */
  probes: boolean
  next?: ReturnType<typeof setTimeout>
  inFlight?: AbortController
  /** A poll's time came while a probe was trying: it goes when the probe fails. */
  due: boolean
  probeTimer?: ReturnType<typeof setTimeout>
  /** A probe's time came while a poll was in flight: it goes when the poll ends. */
  probeDue: boolean
  failures: number
  etag: string | null
  lastModified: string | null
  lastBody: string | undefined
  /** A POST to `sendUrl` in flight, to abort when polling stops. */
  posting?: AbortController
  stopped: boolean
}

/** What one poll found, or why it failed. */
type Polled =
  | { kind: 'nothing' }
  | { kind: 'body'; data: string; bytes: number }
  | { kind: 'events'; events: { event: string; data: string; lastEventId: string }[] }
  | { kind: 'failed'; fatal: boolean; reason: string; retryAfterMs?: number }

/** Longest wait between failed polls, unless the server asks for more with `Retry-After`. */
const MAX_POLL_BACKOFF_MS = 30_000

/**
 * The wait after `failures` failed polls in a row (`poll_backoff`): the interval doubled per failure up to 30 s
 * (or the interval, if longer), or what the server asked for with `Retry-After` when that is longer still.
 */
export function pollBackoff(intervalMs: number, failures: number, retryAfterMs?: number): number {
  const backoff = Math.min(intervalMs * 2 ** Math.min(failures, 4), Math.max(MAX_POLL_BACKOFF_MS, intervalMs))
  return retryAfterMs === undefined ? backoff : Math.max(backoff, Math.min(retryAfterMs, MAX_SERVER_DELAY_MS))
}

/** Events after the one carrying `lastId`; all of them when none does (`after_last_id`). */
export function afterLastId<T extends { lastEventId: string }>(events: T[], lastId: string): T[] {
  if (!lastId) return events
  for (let i = events.length - 1; i >= 0; i--) if (events[i]!.lastEventId === lastId) return events.slice(i + 1)
  return events
}

function endedReason(how: Ended): string {
  return how.kind === 'finished' ? 'stream ended' : how.reason
}

class BrowserConnection implements Backend {
  private seq = 0
  private state: State = 'connecting'
  private attempt = 0
  private lastError: string | null = null
  private lastEventId: string | null
  private readonly counters = { framesIn: 0, framesOut: 0, bytesIn: 0, bytesOut: 0 }
  /** The backoff's base: `initialDelayMs`, replaced by an SSE `retry:`. */
  private baseMs: number
  private generation = 0
  private current: Attempt | undefined
  /** The current attempt is a probe from polling: no `connecting` frame, and its failure resumes polling. */
  private probing = false
  private polling: Polling | undefined
  private wait: ReturnType<typeof setTimeout> | undefined
  private readonly queue: { payload: Payload; bytes: number }[] = []
  private queuedBytes = 0
  private detached = false

  constructor(
    private readonly id: string,
    private readonly opts: BrowserOptions,
    private readonly sink: FrameSink,
  ) {
    this.lastEventId = opts.lastEventId ?? null
    this.baseMs = opts.reconnect?.initialDelayMs ?? 1000
  }

  start(): void {
    if (this.opts.transport === 'poll') this.poll('transport is poll', false)
    else this.open(0)
  }

  private emit(body: Body): void {
    if (this.detached) return
    if (body.kind === 'state') this.state = body.state
    this.sink.receive([{ ...body, seq: ++this.seq } as Frame])
  }

  private emitState(state: State, extra: { attempt?: number; delayMs?: number; reason?: string; protocol?: string }) {
    const transport =
      state === 'polling'
        ? { transport: 'poll' as const }
        : state === 'connecting' || state === 'connected'
          ? { transport: this.opts.transport }
          : {}
    this.emit({ kind: 'state', state, ...transport, ...extra })
  }

  private report(message: string): void {
    this.lastError = message
    this.emit({ kind: 'error', message, fatal: false })
  }

  /** Starts attempt `attempt` (0 for the first, or after `reconnect()`), or a probe from polling. */
  private open(attempt: number, probe = false): void {
    this.probing = probe
    const gen = ++this.generation
    if (!probe) {
      this.attempt = attempt
      this.emitState('connecting', { attempt })
    }
    this.current = this.opts.transport === 'websocket' ? this.openWebSocket(gen) : this.openSse(gen)
  }

  /** Stops the live attempt and any wait; later callbacks of that attempt see a newer generation. */
  private stopStream(code?: number, reason?: string): void {
    this.generation++
    this.probing = false
    clearTimeout(this.wait)
    this.wait = undefined
    const c = this.current
    this.current = undefined
    c?.stop(code, reason)
  }

  /** Stops everything: the stream, polling and every timer. */
  private halt(code?: number, reason?: string): void {
    this.stopStream(code, reason)
    this.stopPolling('the connection closed')
  }

  /** The attempt of generation `gen` ended: what the policy says comes next. */
  private ended(gen: number, how: Ended): void {
    if (gen !== this.generation || this.detached) return
    const p = this.polling
    if (this.probing && p && how.kind !== 'fatal') {
      // The stream is still not to be had: keep polling, and try again a probe interval later.
      this.stopStream()
      this.lastError = endedReason(how)
      this.probeLater(p)
      if (p.due) {
        p.due = false
        this.runPoll(p)
      }
      return
    }
    this.halt()
    const fallbackAfter = this.opts.fallback && this.opts.transport !== 'poll' ? this.opts.fallback.afterFailures : null
    const step = decide(this.opts.reconnect, this.baseMs, this.attempt, how, Math.random(), fallbackAfter)
    if (step.kind === 'retry') {
      this.attempt = step.attempt
      this.lastError = step.reason
      const waitGen = this.generation
      this.wait = later(step.delayMs, () => {
        if (waitGen === this.generation) this.open(step.attempt)
      })
      this.emitState('reconnecting', { attempt: step.attempt, delayMs: step.delayMs, reason: step.reason })
    } else if (step.kind === 'fallback') {
      this.lastError = step.reason
      this.attempt = 0
      this.poll(step.reason, true)
    } else if (step.kind === 'fail') {
      this.lastError = step.reason
      this.emit({ kind: 'error', message: step.reason, fatal: true })
      this.emitState('failed', { reason: step.reason })
    } else {
      this.emitState('disconnected', { reason: step.reason })
    }
  }

  private connected(gen: number, protocol: string | null): void {
    if (gen !== this.generation) return
    // A probe that opened ends polling; none was in flight, as a probe starts only between polls.
    this.probing = false
    this.stopPolling('the connection left polling')
    this.emitState('connected', protocol ? { protocol } : {})
    // Queued sends go out first, in order: the browser's send() is synchronous, so none can overtake them.
    const write = this.current?.write
    if (!write) return
    for (const { payload, bytes } of this.queue.splice(0)) {
      write(payload)
      this.counted(bytes)
    }
    this.queuedBytes = 0
  }

  private counted(bytes: number): void {
    this.counters.framesOut++
    this.counters.bytesOut += bytes
  }

  // --- Polling -----------------------------------------------------------------------------------------------------

  /** Degrades to polling (`probes`: and tries the stream every probe interval). */
  private poll(reason: string, probes: boolean): void {
    const p: Polling = {
      probes,
      due: false,
      probeDue: false,
      failures: 0,
      etag: null,
      lastModified: null,
      lastBody: undefined,
      stopped: false,
    }
    this.polling = p
    this.emitState('polling', { reason })
    // The first poll goes at once.
    p.next = later(0, () => this.runPoll(p))
    if (probes) this.probeLater(p)
    this.postQueued(p)
  }

  private stopPolling(why: string): void {
    const p = this.polling
    if (!p) return
    this.polling = undefined
    p.stopped = true
    clearTimeout(p.next)
    clearTimeout(p.probeTimer)
    p.inFlight?.abort()
    p.posting?.abort(new Error(why))
  }

  private probeLater(p: Polling): void {
    const every = this.opts.fallback?.probeIntervalMs ?? 30_000
    clearTimeout(p.probeTimer)
    p.probeTimer = later(every, () => {
      if (p.stopped || this.probing) return
      // A probe and a poll never overlap, so the stream resumes exactly after the last polled event.
      if (p.inFlight) p.probeDue = true
      else this.open(0, true)
    })
  }

  private runPoll(p: Polling): void {
    if (p.stopped) return
    if (this.probing) {
      p.due = true
      return
    }
    const abort = new AbortController()
    p.inFlight = abort
    void this.pollOnce(p, abort).then((polled) => {
      if (p.stopped) return
      p.inFlight = undefined
      this.polled(p, polled)
      if (p.probeDue && !p.stopped) {
        p.probeDue = false
        this.open(0, true)
      }
    })
  }

  /** Relays what a poll found, and sets when the next one goes. */
  private polled(p: Polling, polled: Polled): void {
    const interval = this.opts.fallback?.intervalMs ?? 2000
    let wait = interval
    if (polled.kind === 'failed') {
      if (polled.fatal) {
        this.ended(this.generation, { kind: 'fatal', reason: polled.reason })
        return
      }
      p.failures++
      wait = pollBackoff(interval, p.failures, polled.retryAfterMs)
      this.report(`${polled.reason}; polling again in ${wait} ms`)
    } else {
      p.failures = 0
      if (polled.kind === 'body') {
        this.counters.framesIn++
        this.counters.bytesIn += polled.bytes
        this.emit({ kind: 'message', transport: 'poll', data: polled.data })
      } else if (polled.kind === 'events') {
        for (const ev of polled.events) {
          if (p.stopped) return
          if (ev.lastEventId) this.lastEventId = ev.lastEventId
          this.counters.framesIn++
          this.counters.bytesIn += utf8Length(ev.data)
          this.emit({ kind: 'message', transport: 'poll', ...ev })
        }
      }
    }
    if (!p.stopped) p.next = later(wait, () => this.runPoll(p))
  }

  /** One conditional GET of the poll URL, bounded by `connectTimeoutMs` and `maxMessageSize`. */
  private async pollOnce(p: Polling, abort: AbortController): Promise<Polled> {
    const { opts } = this
    const fallback = opts.fallback!
    const headers: Record<string, string> = { ...opts.headers }
    if (p.etag) headers['If-None-Match'] = p.etag
    if (p.lastModified) headers['If-Modified-Since'] = p.lastModified
    const resume = this.lastEventId ?? ''
    if (resume) headers['Last-Event-ID'] = resume
    let timedOut = false
    const timeout = later(opts.connectTimeoutMs, () => {
      timedOut = true
      abort.abort()
    })
    try {
      const response = await fetch(fallback.pollUrl.href, { headers, signal: abort.signal, cache: 'no-store' })
      const status = response.status
      if (status === 304) return { kind: 'nothing' }
      if (status < 200 || status > 299) {
        void response.body?.cancel().catch(() => undefined)
        const reason = `HTTP ${status}${response.statusText ? ` ${response.statusText}` : ''}`
        // Only credentials problems end polling; anything else may pass, so keep polling.
        if (status === 401 || status === 403) return { kind: 'failed', fatal: true, reason }
        const retryAfterMs = retryableStatus(status) ? parseRetryAfter(response.headers.get('retry-after')) : undefined
        return { kind: 'failed', fatal: false, reason: `poll answered ${reason}`, retryAfterMs }
      }
      const isSse = isEventStream(response.headers.get('content-type') ?? '')
      const etag = response.headers.get('etag')
      const lastModified = response.headers.get('last-modified')
      const chunks: Uint8Array[] = []
      let size = 0
      const reader = response.body?.getReader()
      for (;;) {
        const next = reader ? await reader.read() : { done: true as const, value: undefined }
        if (next.done) break
        size += next.value.byteLength
        if (size > opts.maxMessageSize) {
          void reader?.cancel().catch(() => undefined)
          return {
            kind: 'failed',
            fatal: true,
            reason: `poll answer larger than ${opts.maxMessageSize} bytes; raise maxMessageSize`,
          }
        }
        chunks.push(next.value)
      }
      p.etag = etag
      p.lastModified = lastModified
      const bytes = new Uint8Array(size)
      let at = 0
      for (const c of chunks) {
        bytes.set(c, at)
        at += c.byteLength
      }
      const body = new TextDecoder().decode(bytes)
      if (body === p.lastBody) return { kind: 'nothing' }
      p.lastBody = body
      if (!isSse) return { kind: 'body', data: body, bytes: size }
      const events: { event: string; data: string; lastEventId: string }[] = []
      let id = ''
      let tooLarge = false
      const parser = createParser({
        onEvent: (ev) => {
          if (ev.id !== undefined) id = ev.id
          if (utf8Length(ev.data) > opts.maxMessageSize) tooLarge = true
          events.push({ event: ev.event || 'message', data: ev.data, lastEventId: id })
        },
        onError: (e) => {
          if (e.type === 'max-buffer-size-exceeded') tooLarge = true
        },
        maxBufferSize: opts.maxMessageSize,
      })
      parser.feed(body)
      if (tooLarge) {
        return {
          kind: 'failed',
          fatal: true,
          reason: sseTooLarge(opts.maxMessageSize),
        }
      }
      // An event before the document's first `id:` keeps the id we had: polling must not erase the resume point.
      const fresh = afterLastId(events, resume).map((ev) => (ev.lastEventId ? ev : { ...ev, lastEventId: resume }))
      return fresh.length === 0 ? { kind: 'nothing' } : { kind: 'events', events: fresh }
    } catch (e) {
      return { kind: 'failed', fatal: false, reason: timedOut ? 'poll timed out' : `poll failed: ${describe(e)}` }
    } finally {
      clearTimeout(timeout)
    }
  }

  /** POSTs one message to `sendUrl` (a WebSocket that polls); resolves with why it failed, if it did. */
  private async post(p: Polling, payload: Payload, bytes: number): Promise<string | undefined> {
    const { opts } = this
    const abort = new AbortController()
    p.posting = abort
    let timedOut = false
    const timeout = later(opts.connectTimeoutMs, () => {
      timedOut = true
      abort.abort()
    })
    const contentType = typeof payload === 'string' ? 'text/plain; charset=utf-8' : 'application/octet-stream'
    try {
      const response = await fetch(opts.fallback!.sendUrl!.href, {
        method: 'POST',
        headers: { ...opts.headers, 'Content-Type': contentType },
        body: payload as BodyInit,
        signal: abort.signal,
        cache: 'no-store',
      })
      void response.body?.cancel().catch(() => undefined)
      if (!response.ok) return `sendUrl answered HTTP ${response.status}`
      this.counted(bytes)
      return undefined
    } catch (e) {
      if (timedOut) return 'sendUrl did not answer in time'
      const why = abort.signal.reason
      return why instanceof Error && p.stopped ? why.message : describe(e)
    } finally {
      clearTimeout(timeout)
      if (p.posting === abort) p.posting = undefined
      this.postQueued(p)
    }
  }

  /** Writes the oldest queued message to `sendUrl`, when polling with one and no POST is in flight. */
  private postQueued(p: Polling): void {
    if (p.stopped || p.posting || this.opts.transport !== 'websocket' || !this.opts.fallback?.sendUrl) return
    const next = this.queue.shift()
    if (!next) return
    this.queuedBytes -= next.bytes
    void this.post(p, next.payload, next.bytes).then((why) => {
      if (why !== undefined) this.report(`a queued message may not have reached the server: ${why}`)
    })
  }

  // --- WebSocket ------------------------------------------------------------------------------------------------

  private openWebSocket(gen: number): Attempt {
    const { opts } = this
    let ws: WebSocket
    try {
      ws = new WebSocket(opts.url.href, opts.protocols)
    } catch (e) {
      // Checked options make this rare (a port the browser blocks): nothing a retry would change.
      queueMicrotask(() => this.ended(gen, { kind: 'fatal', reason: `invalid WebSocket request: ${describe(e)}` }))
      return { stop() {}, open: false, protocol: null }
    }
    ws.binaryType = 'arraybuffer'
    // The close event that follows says all a browser tells; a listener is kept so that no error goes unhandled.
    ws.onerror = () => {}
    let openedAt = 0
    let delivered = false
    const progress = (): Progress => ({ uptimeMs: now() - openedAt, delivered })
    const hb = opts.heartbeat?.message !== undefined ? opts.heartbeat : null
    let idle: ReturnType<typeof setTimeout> | undefined
    let pong: ReturnType<typeof setTimeout> | undefined
    const timeout = later(opts.connectTimeoutMs, () =>
      this.ended(gen, { kind: 'retry', reason: `no WebSocket handshake within ${opts.connectTimeoutMs} ms` }),
    )
    const stopTimers = (): void => {
      clearTimeout(timeout)
      clearTimeout(idle)
      clearTimeout(pong)
    }
    // An application heartbeat: `message` after `pingIntervalMs` with nothing received, then a reply (any
    // message, or one equal to `reply`) within `pongTimeoutMs`, or the link is taken for dead.
    const armIdle = (): void => {
      if (!hb) return
      clearTimeout(idle)
      idle = later(hb.pingIntervalMs, () => {
        if (gen !== this.generation) return
        ws.send(hb.message!)
        clearTimeout(pong)
        pong = later(hb.pongTimeoutMs, () =>
          this.ended(gen, {
            kind: 'dropped',
            reason: `no reply to the heartbeat within ${hb.pongTimeoutMs} ms`,
            progress: progress(),
          }),
        )
      })
    }
    const attempt: Attempt = {
      open: false,
      protocol: null,
      stop: (code, reason) => {
        stopTimers()
        ws.onopen = ws.onmessage = ws.onclose = null
        try {
          ws.close(code ?? 1000, reason)
        } catch {
          // Already closing.
        }
      },
      write: (payload) => ws.send(payload as string | ArrayBufferView<ArrayBuffer>),
    }
    ws.onopen = () => {
      if (gen !== this.generation) return
      clearTimeout(timeout)
      openedAt = now()
      attempt.open = true
      attempt.protocol = ws.protocol || null
      armIdle()
      this.connected(gen, attempt.protocol)
    }
    ws.onmessage = (e: MessageEvent) => {
      if (gen !== this.generation) return
      const text = typeof e.data === 'string' ? e.data : undefined
      const bytes = text === undefined ? new Uint8Array(e.data as ArrayBuffer) : undefined
      const size = text !== undefined ? utf8Length(text) : bytes!.byteLength
      if (size > opts.maxMessageSize) {
        // Retrying would only repeat it, as the engine says.
        this.ended(gen, {
          kind: 'fatal',
          reason: `message from the server too large (${size} bytes, limit ${opts.maxMessageSize}); raise ` +
            'maxMessageSize',
        })
        return
      }
      const isReply = hb !== null && hb.reply !== undefined && text === hb.reply
      if (hb && (hb.reply === undefined || isReply)) clearTimeout(pong)
      armIdle()
      // The heartbeat's replies are the link's business, not the page's.
      if (isReply) return
      delivered = true
      this.counters.framesIn++
      this.counters.bytesIn += size
      if (text !== undefined) this.emit({ kind: 'message', transport: 'websocket', data: text })
      else this.emit({ kind: 'message', transport: 'websocket', data: encodeBase64(bytes!), binary: true })
    }
    ws.onclose = (e: CloseEvent) => {
      if (gen !== this.generation) return
      stopTimers()
      if (!attempt.open) {
        // The browser does not say why an upgrade failed (refused, 4xx, DNS): all retry, as a network error does.
        this.ended(gen, {
          kind: 'retry',
          reason: `network error: the WebSocket did not open (code ${e.code}; the browser's console says why)`,
        })
      } else if (e.code === 1006) {
        this.ended(gen, { kind: 'dropped', reason: 'connection closed without a close frame', progress: progress() })
      } else {
        this.emit({ kind: 'close', code: e.code, reason: e.reason })
        this.ended(gen, { kind: 'serverClosed', code: e.code, reason: e.reason, progress: progress() })
      }
    }
    return attempt
  }

  // --- SSE over fetch ---------------------------------------------------------------------------------------------

  private openSse(gen: number): Attempt {
    const { opts } = this
    const abort = new AbortController()
    const timers = {
      connect: later(opts.connectTimeoutMs, () =>
        this.ended(gen, { kind: 'retry', reason: `no response within ${opts.connectTimeoutMs} ms` }),
      ),
      idle: undefined as ReturnType<typeof setTimeout> | undefined,
    }
    const attempt: Attempt = {
      open: false,
      protocol: null,
      stop: () => {
        clearTimeout(timers.connect)
        clearTimeout(timers.idle)
        abort.abort()
      },
    }
    const headers: Record<string, string> = { Accept: 'text/event-stream' }
    // The app's own `Accept`, if any, replaces ours rather than joining it.
    for (const [name, value] of Object.entries(opts.headers)) {
      if (name.toLowerCase() === 'accept') delete headers.Accept
      headers[name] = value
    }
    // Sent on every attempt that has one (WHATWG), the first one included when `lastEventId` is given.
    if (this.lastEventId) headers['Last-Event-ID'] = this.lastEventId
    const init: RequestInit = { method: opts.method, headers, signal: abort.signal, cache: 'no-store' }
    if (opts.body !== undefined) init.body = opts.body
    fetch(opts.url.href, init).then(
      (response) => {
        clearTimeout(timers.connect)
        return this.streamSse(gen, attempt, response, (timer) => {
          clearTimeout(timers.idle)
          timers.idle = timer
        })
      },
      (e: unknown) => this.ended(gen, { kind: 'retry', reason: `network error: ${describe(e)}` }),
    )
    return attempt
  }

  private async streamSse(
    gen: number,
    attempt: Attempt,
    response: Response,
    setIdle: (timer: ReturnType<typeof setTimeout> | undefined) => void,
  ): Promise<void> {
    if (gen !== this.generation) return
    const { opts } = this
    const status = response.status
    const reason = `HTTP ${status}${response.statusText ? ` ${response.statusText}` : ''}`
    const contentType = response.headers.get('content-type') ?? ''
    const refuse = (how: Ended): void => {
      void response.body?.cancel().catch(() => undefined)
      this.ended(gen, how)
    }
    if (status === 204) {
      return refuse({ kind: 'stop', reason: 'server answered 204 No Content: it asks the client to stop' })
    }
    if (status !== 200) {
      return refuse(
        retryableStatus(status)
          ? { kind: 'retry', reason, retryAfterMs: parseRetryAfter(response.headers.get('retry-after')) }
          : { kind: 'fatal', reason },
      )
    }
    if (!isEventStream(contentType)) {
      return refuse({
        kind: 'noStream',
        reason: `server answered with content type ${JSON.stringify(contentType || '(none)')}, not text/event-stream`,
      })
    }
    let delivered = false
    const openedAt = now()
    const progress = (): Progress => ({ uptimeMs: now() - openedAt, delivered })
    let tooLarge = false
    const parser = createParser({
      onEvent: (ev: EventSourceMessage) => {
        if (gen !== this.generation || tooLarge) return
        // The parser bounds what it buffers across chunks; an event whole in one chunk is checked here.
        if (utf8Length(ev.data) > opts.maxMessageSize) {
          tooLarge = true
          return
        }
        if (ev.id !== undefined) this.lastEventId = ev.id
        delivered = true
        this.counters.framesIn++
        this.counters.bytesIn += utf8Length(ev.data)
        this.emit({
          kind: 'message',
          transport: 'sse',
          event: ev.event || 'message',
          data: ev.data,
          lastEventId: this.lastEventId ?? '',
        })
      },
      onRetry: (ms: number) => {
        if (Number.isSafeInteger(ms) && ms >= 0) this.baseMs = Math.min(ms, MAX_SERVER_DELAY_MS)
      },
      onError: (e: ParseError) => {
        // Unknown fields and a bad `retry` are ignored, as WHATWG says; only the size bound ends the stream.
        if (e.type === 'max-buffer-size-exceeded') tooLarge = true
      },
      maxBufferSize: opts.maxMessageSize,
    })
    const idleMs = opts.heartbeat?.idleTimeoutMs
    const armIdle = (): void => {
      if (idleMs === undefined) return
      setIdle(
        later(idleMs, () =>
          this.ended(gen, { kind: 'dropped', reason: `no data for ${idleMs} ms`, progress: progress() }),
        ),
      )
    }
    const reader = response.body?.getReader()
    attempt.open = true
    this.connected(gen, null)
    armIdle()
    if (!reader) return this.ended(gen, { kind: 'finished', progress: progress() })
    const decoder = new TextDecoder()
    try {
      for (;;) {
        const { done, value } = await reader.read()
        if (gen !== this.generation) return
        if (!done) armIdle()
        parser.feed(done ? decoder.decode() : decoder.decode(value, { stream: true }))
        if (tooLarge) {
          void reader.cancel().catch(() => undefined)
          return this.ended(gen, {
            kind: 'fatal',
            reason: sseTooLarge(opts.maxMessageSize),
          })
        }
        if (done) break
      }
    } catch (e) {
      return this.ended(gen, { kind: 'dropped', reason: `network error: ${describe(e)}`, progress: progress() })
    }
    this.ended(gen, { kind: 'finished', progress: progress() })
  }

  // --- Backend ----------------------------------------------------------------------------------------------------

  async send(payload: Payload): Promise<SendResult> {
    if (this.opts.transport !== 'websocket') {
      const what = this.opts.transport === 'sse' ? 'server-sent events' : 'polling'
      throw new RealtimeError(`send() is for WebSocket connections; this one streams ${what} and cannot send`)
    }
    if (this.detached || this.state === 'disconnected') {
      throw new RealtimeError(`connection ${JSON.stringify(this.id)} is closed; connect again`)
    }
    const bytes = typeof payload === 'string' ? utf8Length(payload) : payload.byteLength
    if (bytes > this.opts.maxMessageSize) {
      throw new RealtimeError(`message of ${bytes} bytes is larger than the limit of ${this.opts.maxMessageSize} bytes`)
    }
    const c = this.current
    if (c?.open && c.write && this.queue.length === 0) {
      c.write(payload)
      this.counted(bytes)
      return { queued: false }
    }
    const p = this.polling
    if (p && this.opts.fallback?.sendUrl && !p.posting && this.queue.length === 0) {
      const why = await this.post(p, payload, bytes)
      if (why !== undefined) {
        throw new RealtimeError(
          `send failed: ${why}; it may not have reached the server; the message was not delivered`,
        )
      }
      return { queued: false }
    }
    // Held while down (also while `failed`, for `reconnect()`), as the engine does.
    const { maxMessages, maxBytes } = this.opts.queue
    if (this.queue.length >= maxMessages) {
      throw this.queueFull(`${this.queue.length} messages held`)
    }
    if (this.queuedBytes + bytes > maxBytes) {
      throw this.queueFull(`${this.queuedBytes} bytes held, this message adds ${bytes}, limit ${maxBytes}`)
    }
    this.queue.push({ payload, bytes })
    this.queuedBytes += bytes
    return { queued: true }
  }

  private queueFull(why: string): RealtimeError {
    return new RealtimeError(
      `outbound queue is full (${why}); wait for the connection to come back, or raise queue.maxMessages / ` +
        'queue.maxBytes',
    )
  }

  async close(code?: number, reason?: string): Promise<void> {
    if (code !== undefined && code !== 1000 && !(code >= 3000 && code <= 4999)) {
      throw new RealtimeError(`invalid close: code ${code} is not allowed; use 1000 or 3000-4999`)
    }
    if (reason !== undefined && utf8Length(reason) > MAX_CLOSE_REASON) {
      throw new RealtimeError(
        `invalid close: reason is ${utf8Length(reason)} bytes; at most ${MAX_CLOSE_REASON} are allowed`,
      )
    }
    this.halt(code, reason)
    const dropped = this.queue.splice(0).length
    this.queuedBytes = 0
    if (this.state === 'disconnected' || this.state === 'failed') return
    if (dropped > 0) this.report(`${dropped} queued messages were not sent: the connection closed`)
    this.emitState('disconnected', { reason: 'closed by the app' })
  }

  /** A fresh attempt now: from `failed`, to skip a backoff wait, or, while polling, to probe at once. */
  async reconnect(): Promise<void> {
    if (this.detached) return
    const p = this.polling
    if (p?.probes) {
      if (this.probing) return
      if (p.inFlight) p.probeDue = true
      else this.open(0, true)
      return
    }
    this.halt(1000, 'reconnecting')
    if (this.opts.transport === 'poll') this.poll('transport is poll', false)
    else this.open(0)
  }

  async inspect(): Promise<ConnectionInfo> {
    return {
      id: this.id,
      url: this.opts.url.href,
      transport: this.polling ? 'poll' : this.opts.transport,
      state: this.state,
      // The count goes on while connected (a stream that drops with nothing to show keeps growing the backoff),
      // but a connected stream is at attempt 0, as the engine reports it.
      attempt: this.state === 'connected' ? 0 : this.attempt,
      ...this.counters,
      queued: this.queue.length,
      queuedBytes: this.queuedBytes,
      lastError: this.lastError,
      lastEventId: this.lastEventId,
      protocol: this.current?.open ? this.current.protocol : null,
      subscribers: 1,
      owners: {},
      joinable: false,
      // The browser runs the socket: no plugin task.
      tasks: 0,
    }
  }

  async detach(): Promise<void> {
    this.detached = true
    live.delete(this)
    try {
      this.halt()
    } catch {
      // Already closed or closing: nothing left to release.
    }
  }
}

/** Opens a connection outside Tauri. Throws a {@link RealtimeError} for options it refuses. */
export function connectBrowser(id: string, options: ConnectOptions, sink: FrameSink): Backend {
  const conn = new BrowserConnection(id, resolveBrowserOptions(options), sink)
  live.add(conn)
  conn.start()
  return conn
}
