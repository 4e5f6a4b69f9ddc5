// Outside Tauri (a plain browser during `vite dev`): the browser's own WebSocket / EventSource behind the same
// Connection interface, synthesising numbered frames. Deliberately small: no reconnect for WebSocket (the
// browser's EventSource reconnects by itself), no queue, no fallback, no sharing.

import { encodeBase64 } from './base64.js'
import type { Backend, FrameSink } from './connection.js'
import { RealtimeError } from './errors.js'
import type { ConnectionInfo, ConnectOptions, Frame, State, Transport } from './types.js'

type Body = { [K in Frame['kind']]: Omit<Extract<Frame, { kind: K }>, 'seq'> }[Frame['kind']]

const live = new Set<Backend>()

/** `inspect()` outside Tauri: the connections of this page. */
export async function inspectBrowser(id?: string): Promise<ConnectionInfo[]> {
  const all = await Promise.all([...live].map((b) => b.inspect()))
  return id === undefined ? all : all.filter((i) => i.id === id)
}

function refuseWhatTheBrowserCannotDo(options: ConnectOptions): void {
  const refused: string[] = []
  if (options.headers && Object.keys(options.headers).length > 0) refused.push('headers')
  if (options.method !== undefined && options.method.toUpperCase() !== 'GET') refused.push('method')
  if (options.body !== undefined) refused.push('body')
  if (options.lastEventId !== undefined) refused.push('lastEventId')
  if (options.transport === 'poll') refused.push('transport `poll`')
  if (refused.length > 0) {
    throw new RealtimeError(
      `${refused.join(', ')} need the Tauri runtime: outside Tauri the bindings use the browser's own ` +
        `WebSocket / EventSource, which cannot send them`,
    )
  }
}

export function connectBrowser(id: string, options: ConnectOptions, sink: FrameSink): Backend {
  refuseWhatTheBrowserCannotDo(options)
  let url: URL
  try {
    url = new URL(options.url)
  } catch {
    throw new RealtimeError(`\`url\` is not a valid URL: ${JSON.stringify(options.url)}`)
  }
  const schemeTransport: Transport | undefined =
    url.protocol === 'ws:' || url.protocol === 'wss:'
      ? 'websocket'
      : url.protocol === 'http:' || url.protocol === 'https:'
        ? 'sse'
        : undefined
  if (!schemeTransport) throw new RealtimeError(`unsupported url scheme \`${url.protocol}\`; use ws, wss, http or https`)
  const transport = options.transport ?? schemeTransport
  if (transport !== schemeTransport) {
    throw new RealtimeError(`transport \`${transport}\` does not go with a ${url.protocol} url`)
  }
  if (transport === 'websocket' && typeof WebSocket === 'undefined') throw new RealtimeError('no WebSocket here')
  if (transport === 'sse' && typeof EventSource === 'undefined') throw new RealtimeError('no EventSource here')

  let seq = 0
  let state: State = 'connecting'
  let attempt = 0
  let lastError: string | null = null
  let lastEventId: string | null = null
  const counters = { framesIn: 0, framesOut: 0, bytesIn: 0, bytesOut: 0 }
  let detached = false
  let socket: WebSocket | EventSource | undefined
  const types = new Set<string>(['message'])

  const emit = (body: Body): void => {
    if (detached) return
    if (body.kind === 'state') state = body.state
    if (body.kind === 'error') lastError = body.message
    sink.receive([{ ...body, seq: ++seq } as Frame])
  }

  const onSseMessage = (e: MessageEvent): void => {
    if (socket !== e.target) return
    counters.framesIn++
    counters.bytesIn += String(e.data).length
    lastEventId = e.lastEventId
    emit({ kind: 'message', transport: 'sse', event: e.type, data: String(e.data), lastEventId: e.lastEventId })
  }

  const openWebSocket = (): void => {
    emit({ kind: 'state', state: 'connecting', transport, attempt })
    const ws = new WebSocket(url.href, options.protocols ?? [])
    ws.binaryType = 'arraybuffer'
    socket = ws
    let errored = false
    ws.onopen = () => {
      if (socket === ws) emit({ kind: 'state', state: 'connected', transport })
    }
    ws.onmessage = (e: MessageEvent) => {
      if (socket !== ws) return
      counters.framesIn++
      if (typeof e.data === 'string') {
        counters.bytesIn += e.data.length
        emit({ kind: 'message', transport, data: e.data })
      } else {
        const bytes = new Uint8Array(e.data as ArrayBuffer)
        counters.bytesIn += bytes.byteLength
        emit({ kind: 'message', transport, data: encodeBase64(bytes), binary: true })
      }
    }
    ws.onerror = () => {
      errored = true
    }
    ws.onclose = (e: CloseEvent) => {
      if (socket !== ws) return
      socket = undefined
      if (e.wasClean) emit({ kind: 'close', code: e.code, reason: e.reason })
      if (e.wasClean && !errored) {
        emit({ kind: 'state', state: 'disconnected', ...(e.reason ? { reason: e.reason } : {}) })
      } else {
        const message = `websocket closed abnormally (code ${e.code})`
        emit({ kind: 'error', message, fatal: true })
        emit({ kind: 'state', state: 'failed', reason: message })
      }
    }
  }

  const openEventSource = (): void => {
    emit({ kind: 'state', state: 'connecting', transport, attempt })
    const es = new EventSource(url.href)
    socket = es
    es.onopen = () => {
      if (socket !== es) return
      attempt = 0
      emit({ kind: 'state', state: 'connected', transport })
    }
    es.onerror = () => {
      if (socket !== es) return
      if (es.readyState === 2) {
        // CLOSED: the browser gave up (HTTP error, wrong content type).
        socket = undefined
        emit({ kind: 'error', message: 'event stream failed', fatal: true })
        emit({ kind: 'state', state: 'failed', reason: 'event stream failed' })
      } else {
        attempt++
        emit({ kind: 'state', state: 'reconnecting', attempt, reason: 'stream error' })
      }
    }
    for (const type of types) es.addEventListener(type, onSseMessage as EventListener)
  }

  // Beside an event stream, a send is the browser's own POST to `sendUrl` (CORS applies; no retries here).
  const post = async (payload: string | Uint8Array, contentType?: string) => {
    const sendUrl = options.sendUrl ?? (typeof options.fallback === 'object' ? options.fallback.sendUrl : undefined)
    if (sendUrl === undefined) {
      throw new RealtimeError(
        'send() on a connection that streams server-sent events needs `sendUrl`: set it to the http(s) URL that ' +
          'takes each message as a POST',
      )
    }
    const type = contentType ?? (typeof payload === 'string' ? 'text/plain; charset=utf-8' : 'application/octet-stream')
    let res: Response
    try {
      res = await fetch(sendUrl, {
        method: 'POST',
        headers: { 'content-type': type },
        body: payload as BodyInit,
      })
    } catch (e) {
      throw new RealtimeError(`send failed: POST to ${sendUrl} failed (${String(e)}); it may not have reached the server`)
    }
    if (!res.ok) throw new RealtimeError(`send failed: ${sendUrl} answered HTTP ${res.status}; the message was not delivered`)
    counters.framesOut++
    counters.bytesOut += typeof payload === 'string' ? payload.length : payload.byteLength
    return { queued: false }
  }

  const open = transport === 'websocket' ? openWebSocket : openEventSource
  const shut = (code?: number, reason?: string): void => {
    const s = socket
    if (!s) return
    // `close` first: it throws for a bad code, and the socket must then stay known so that detach closes it.
    if (transport === 'websocket') (s as WebSocket).close(code, reason)
    else s.close()
    socket = undefined
  }

  const backend: Backend = {
    async send(payload, contentType) {
      if (transport !== 'websocket') return post(payload, contentType)
      const ws = socket as WebSocket | undefined
      if (!ws || ws.readyState !== 1) {
        throw new RealtimeError('not connected (outside Tauri, sends are not queued)')
      }
      ws.send(payload as string | ArrayBufferView<ArrayBuffer>)
      counters.framesOut++
      counters.bytesOut += typeof payload === 'string' ? payload.length : payload.byteLength
      return { queued: false }
    },
    async close(code, reason) {
      shut(code, reason)
    },
    async reconnect() {
      shut()
      attempt = 0
      open()
    },
    async inspect() {
      return {
        id,
        url: url.href,
        transport,
        state,
        attempt,
        ...counters,
        queued: 0,
        queuedBytes: 0,
        lastError,
        lastEventId,
        protocol: transport === 'websocket' ? (socket as WebSocket | undefined)?.protocol || null : null,
        subscribers: 1,
        owners: {},
        joinable: false,
        // The browser runs the socket: no plugin task.
        tasks: 0,
      }
    },
    async detach() {
      detached = true
      live.delete(backend)
      try {
        shut()
      } catch {
        // Already closed or closing: nothing left to release.
      }
    },
    watch(type) {
      if (transport !== 'sse' || types.has(type)) return
      types.add(type)
      socket?.addEventListener(type, onSseMessage as EventListener)
    },
  }
  live.add(backend)
  open()
  return backend
}
