// Outside Tauri: the options a connection runs on, checked as the engine checks them (`crates/core/src/options.rs`:
// change them together), and refused, with an error naming the option, where a browser cannot honour them.

import { RealtimeError } from './errors.js'
import type { ConnectOptions, FallbackOptions, HeartbeatOptions, Transport } from './types.js'

/** The engine's floor for every interval a page chooses (`MIN_INTERVAL_MS`). */
export const MIN_INTERVAL_MS = 100
/** Longest wait a server can impose with `retry:` or `Retry-After` (`MAX_SERVER_DELAY`): ten minutes. */
export const MAX_SERVER_DELAY_MS = 600_000
const MAX_QUEUE_MESSAGES = 100_000
const MAX_QUEUE_BYTES = 64 << 20
const MAX_MESSAGE_SIZE = 64 << 20
/** Longest close reason a close frame can carry (`MAX_CLOSE_REASON` in `transport/ws.rs`). */
export const MAX_CLOSE_REASON = 123

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
    deliverReplies: boolean
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
  /**
   * Where sends are POSTed (the engine's `post_url`): for SSE and polling the top-level `sendUrl`, else the
   * fallback's; for a WebSocket, only while it polls, the fallback's, else the top-level one.
   */
  postUrl: URL | undefined
  maxMessageSize: number
  connectTimeoutMs: number
  /** `fetch`'s `credentials`: `include` with `withCredentials`, else fetch's own default. */
  credentials: RequestCredentials
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
  const sendUrl = httpUrl('sendUrl', options.sendUrl)
  if (f && (f.pollUrl !== undefined || transport === 'poll')) {
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
      const cookie = /^cookie2?$/i.test(name) ? '; pass `withCredentials: true` to send the page\'s cookies' : ''
      throw invalid(`header ${JSON.stringify(name)} is forbidden to pages by the Fetch standard; leave it out${cookie}`)
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
  const postUrl =
    transport === 'websocket' ? (fallback?.sendUrl ?? sendUrl) : (sendUrl ?? fallback?.sendUrl)
  for (const u of [url, fallback?.pollUrl, fallback?.sendUrl, sendUrl]) {
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

  const h = toggle<HeartbeatOptions>('heartbeat', options.heartbeat, true)
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
    if (h.deliverReplies !== undefined && h.reply === undefined) {
      throw invalid('`heartbeat.deliverReplies` needs `heartbeat.reply`: it says whether those replies reach the page')
    }
    if (h.protocolPing === true) {
      throw refused(
        '`heartbeat.protocolPing`',
        'a browser cannot send WebSocket pings (it only answers the server\'s); use `heartbeat.message`',
      )
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
      deliverReplies: h.deliverReplies === true,
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
  if (options.withCredentials !== undefined && typeof options.withCredentials !== 'boolean') {
    throw invalid('`withCredentials` must be true or false')
  }

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
    postUrl,
    maxMessageSize,
    connectTimeoutMs,
    credentials: options.withCredentials === true ? 'include' : 'same-origin',
  }
}
