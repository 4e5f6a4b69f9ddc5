// Outside Tauri (a plain browser during `vite dev`): the same Connection, carried by the browser's own `WebSocket`
// and by `fetch` streaming for SSE and polling, with the engine's state frames, outbound queue, liveness checks
// and polling fallback re-done here as a browser can do them (`crates/core/src/connection.rs` and
// `transport/{ws,sse,poll}.rs`: change them together). The options, and the refusal of what a browser cannot do,
// are `browser-options.ts`; the reconnect and polling policy is `browser-policy.ts`.

import { createParser, type EventSourceMessage, type ParseError } from 'eventsource-parser'

import { encodeBase64 } from './base64.js'
import { MAX_CLOSE_REASON, MAX_SERVER_DELAY_MS, resolveBrowserOptions, type BrowserOptions } from './browser-options.js'
import {
  afterLastId,
  backoffDelay,
  decide,
  parseRetryAfter,
  pollBackoff,
  type Ended,
  type Progress,
} from './browser-policy.js'
import type { Backend, FrameSink } from './connection.js'
import { RealtimeError } from './errors.js'
import type {
  ConnectionInfo,
  ConnectOptions,
  Frame,
  OnConnectResult,
  RemovedResult,
  SendResult,
  State,
} from './types.js'

type Body = { [K in Frame['kind']]: Omit<Extract<Frame, { kind: K }>, 'seq'> }[Frame['kind']]

const live = new Set<Backend>()

/** `inspect()` outside Tauri: the connections of this page. */
export async function inspectBrowser(id?: string): Promise<ConnectionInfo[]> {
  const all = await Promise.all([...live].map((b) => b.inspect()))
  return id === undefined ? all : all.filter((i) => i.id === id)
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

/** `setTimeout` fires at once past a signed 32-bit delay: longer waits are cut to this (about 24.8 days). */
const MAX_TIMER_MS = 2 ** 31 - 1

/** The engine's bounds of on-connect messages (`MAX_ON_CONNECT_KEY`, `Limits`' defaults). */
const MAX_ON_CONNECT_KEY = 256
const MAX_ON_CONNECT_MESSAGES = 64
const MAX_ON_CONNECT_BYTES = 256 << 10

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

function endedReason(how: Ended): string {
  return how.kind === 'finished' ? 'stream ended' : how.reason
}

class BrowserConnection implements Backend {
  private seq = 0
  private state: State = 'connecting'
  private attempt = 0
  private lastError: string | null = null
  private lastEventId: string | null
  /** The last event id already reported as one a header cannot carry. */
  private unsendableId: string | undefined
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
  /** On-connect messages, in the order their keys were first set (a Map keeps it when a value is replaced). */
  private readonly onConnect = new Map<string, { payload: Payload; bytes: number }>()
  /** Sends POSTed beside the stream so far (their number names a failed one), and how to stop the one going. */
  private posts = 0
  private readonly postKey = Math.random().toString(16).slice(2)
  private beside: AbortController | undefined
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
    // On-connect messages first, then queued sends, in order: the browser's send() is synchronous, so none can
    // overtake them.
    const write = this.current?.write
    if (!write) return
    for (const { payload, bytes } of this.onConnect.values()) {
      write(payload)
      this.counted(bytes)
    }
    for (const { payload, bytes } of this.queue.splice(0)) {
      write(payload)
      this.counted(bytes)
    }
    this.queuedBytes = 0
  }

  /**
   * Adds `Last-Event-ID` when there is one that a header can carry. `fetch` throws a `TypeError` for any other
   * (past U+00FF, or a control character), which would look like a network error for ever: said once, and left out.
   */
  private resumeHeader(headers: Record<string, string>): void {
    const id = this.lastEventId
    if (!id) return
    if (/^[\t\x20-\x7e\x80-\xff]*$/.test(id)) {
      headers['Last-Event-ID'] = id
    } else if (this.unsendableId !== id) {
      this.unsendableId = id
      this.report(
        `the server's event id ${JSON.stringify(id)} has characters that an HTTP header cannot carry; reconnects ` +
          'do not send it as Last-Event-ID',
      )
    }
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
    this.resumeHeader(headers)
    let timedOut = false
    const timeout = later(opts.connectTimeoutMs, () => {
      timedOut = true
      abort.abort()
    })
    try {
      const response = await fetch(fallback.pollUrl.href, {
        headers,
        signal: abort.signal,
        cache: 'no-store',
        credentials: opts.credentials,
      })
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
      const response = await fetch(opts.postUrl!.href, {
        method: 'POST',
        headers: { ...opts.headers, 'Content-Type': contentType },
        body: payload as BodyInit,
        signal: abort.signal,
        cache: 'no-store',
        credentials: opts.credentials,
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
    if (p.stopped || p.posting || this.opts.transport !== 'websocket' || !this.opts.postUrl) return
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
      // The heartbeat's replies are the link's business, not the page's, unless it asks for them.
      if (isReply && !hb.deliverReplies) return
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
    this.resumeHeader(headers)
    const init: RequestInit = {
      method: opts.method,
      headers,
      signal: abort.signal,
      cache: 'no-store',
      credentials: opts.credentials,
    }
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

  async send(payload: Payload, contentType?: string): Promise<SendResult> {
    if (this.detached || this.state === 'disconnected') {
      throw new RealtimeError(`connection ${JSON.stringify(this.id)} is closed; connect again`)
    }
    const bytes = typeof payload === 'string' ? utf8Length(payload) : payload.byteLength
    if (bytes > this.opts.maxMessageSize) {
      throw new RealtimeError(`message of ${bytes} bytes is larger than the limit of ${this.opts.maxMessageSize} bytes`)
    }
    if (this.opts.transport !== 'websocket') return this.postBeside(payload, bytes, contentType)
    const c = this.current
    if (c?.open && c.write && this.queue.length === 0) {
      c.write(payload)
      this.counted(bytes)
      return { queued: false }
    }
    const p = this.polling
    if (p && this.opts.postUrl && !p.posting && this.queue.length === 0) {
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

  /**
   * A send beside an event stream: POSTed to `sendUrl` as the engine does it (the connection keeps sends in
   * call order), whatever the stream is doing; retried by the reconnect policy with one `Idempotency-Key` for
   * all its tries, any other status failing this send alone with an `error` frame that says which.
   */
  private async postBeside(payload: Payload, bytes: number, contentType: string | undefined): Promise<SendResult> {
    const url = this.opts.postUrl
    if (!url) {
      const what = this.opts.transport === 'sse' ? 'server-sent events' : 'by polling'
      throw new RealtimeError(
        `send() on a connection that streams ${what} needs \`sendUrl\`: set it to the http(s) URL that takes ` +
          'each message as a POST',
      )
    }
    const n = ++this.posts
    const ownType = Object.entries(this.opts.headers).find(([k]) => k.toLowerCase() === 'content-type')?.[1]
    const type =
      contentType ?? ownType ?? (typeof payload === 'string' ? 'text/plain; charset=utf-8' : 'application/octet-stream')
    const what = `send #${n} (${bytes} bytes of ${type.split(';')[0]})`
    const shown = `${url.origin}${url.pathname}`
    const headers: Record<string, string> = { 'Idempotency-Key': `${this.postKey}-${n}`, ...this.opts.headers }
    for (const k of Object.keys(headers)) if (k.toLowerCase() === 'content-type') delete headers[k]
    headers['Content-Type'] = type
    const policy = this.opts.reconnect
    for (let tries = 1; ; tries++) {
      const abort = new AbortController()
      this.beside = abort
      let timedOut = false
      const timeout = later(this.opts.connectTimeoutMs, () => {
        timedOut = true
        abort.abort()
      })
      let retry: { reason: string; retryAfterMs: number | undefined } | undefined
      try {
        const response = await fetch(url.href, {
          method: 'POST',
          headers,
          body: payload as BodyInit,
          signal: abort.signal,
          cache: 'no-store',
          credentials: this.opts.credentials,
        })
        void response.body?.cancel().catch(() => undefined)
        if (response.ok) {
          this.counted(bytes)
          return { queued: false }
        }
        const status = `HTTP ${response.status}${response.statusText ? ` ${response.statusText}` : ''}`
        if (!retryableStatus(response.status)) this.failBeside(what, `${shown} answered ${status}`)
        retry = { reason: status, retryAfterMs: parseRetryAfter(response.headers.get('retry-after')) }
      } catch (e) {
        if (e instanceof RealtimeError) throw e
        if (this.detached || abort.signal.aborted && !timedOut) this.failBeside(what, `${shown}: the connection closed`)
        retry = { reason: timedOut ? 'no answer in time' : `network error: ${describe(e)}`, retryAfterMs: undefined }
      } finally {
        clearTimeout(timeout)
        if (this.beside === abort) this.beside = undefined
      }
      if (!policy || (policy.maxRetries !== null && tries > policy.maxRetries)) {
        const gaveUp = `gave up after ${tries === 1 ? '1 try' : `${tries} tries`} (${policy ? 'reconnect.maxRetries' : 'reconnect is off'})`
        this.failBeside(what, `${shown}: ${retry.reason}; ${gaveUp}, it may not have reached the server`)
      }
      const backoff = backoffDelay(policy, this.baseMs, tries, Math.random())
      const wait = Math.max(backoff, retry.retryAfterMs ?? 0)
      const abortWait = new AbortController()
      this.beside = abortWait
      await new Promise<void>((resolve) => {
        const t = later(wait, resolve)
        abortWait.signal.addEventListener('abort', () => {
          clearTimeout(t)
          resolve()
        })
      })
      if (this.detached || abortWait.signal.aborted) this.failBeside(what, `${shown}: the connection closed`)
      if (this.beside === abortWait) this.beside = undefined
    }
  }

  /** A send beside the stream failed for good: said to the page as an `error` frame, and to its caller. */
  private failBeside(what: string, why: string): never {
    if (!this.detached) this.report(`${what} failed: ${why}; later sends go on`)
    throw new RealtimeError(`send failed: ${why}; the message was not delivered`)
  }

  async setOnConnect(key: string, payload: Payload): Promise<OnConnectResult> {
    this.writesOnConnect()
    if (key.length === 0 || utf8Length(key) > MAX_ON_CONNECT_KEY) {
      throw new RealtimeError(
        `invalid on-connect message: the key must be 1 to ${MAX_ON_CONNECT_KEY} bytes, got ${utf8Length(key)}`,
      )
    }
    const bytes = typeof payload === 'string' ? utf8Length(payload) : payload.byteLength
    if (bytes > this.opts.maxMessageSize) {
      throw new RealtimeError(`message of ${bytes} bytes is larger than the limit of ${this.opts.maxMessageSize} bytes`)
    }
    const replaced = this.onConnect.get(key)?.bytes
    let held = bytes - (replaced ?? 0)
    for (const m of this.onConnect.values()) held += m.bytes
    const full =
      replaced === undefined && this.onConnect.size >= MAX_ON_CONNECT_MESSAGES
        ? `${this.onConnect.size} messages are set, the limit is ${MAX_ON_CONNECT_MESSAGES}`
        : held > MAX_ON_CONNECT_BYTES
          ? `they would hold ${held} bytes, the limit is ${MAX_ON_CONNECT_BYTES}`
          : undefined
    if (full !== undefined) {
      throw new RealtimeError(
        `too many on-connect messages on this connection: ${full}; remove some with removeOnConnect()`,
      )
    }
    this.onConnect.set(key, { payload, bytes })
    const c = this.current
    if (!c?.open || !c.write) return { connected: false }
    c.write(payload)
    this.counted(bytes)
    return { connected: true }
  }

  async removeOnConnect(key: string): Promise<RemovedResult> {
    this.writesOnConnect()
    return { removed: this.onConnect.delete(key) }
  }

  /** As the engine says it: only a WebSocket writes after each open. */
  private writesOnConnect(): void {
    if (this.opts.transport === 'websocket') return
    const what = this.opts.transport === 'sse' ? 'server-sent events' : 'by polling'
    throw new RealtimeError(
      `on-connect messages are for WebSocket connections; this one streams ${what}: send what the server needs ` +
        'after each `connected` state instead',
    )
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
    // A send beside the stream ends with the connection; its caller is told.
    this.beside?.abort()
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
    this.beside?.abort()
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
