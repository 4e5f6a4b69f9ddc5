// Outside Tauri (no `__TAURI_INTERNALS__`): the bindings run on the browser's own WebSocket and on `fetch`
// streaming for SSE, against real servers on 127.0.0.1 port 0 (Node's `http` for SSE, the `ws` package for
// WebSocket). Node 20 has `fetch` but no `WebSocket` client: the `ws` package's client, shaped like the browser's,
// stands in for it where Node has none.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createServer as createTcpServer, type AddressInfo, type Socket } from 'node:net'

import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { WebSocket as WsClient, WebSocketServer, type WebSocket as ServerSocket } from 'ws'

import type { Policy } from '../browser-options.js'
import { afterLastId, backoffDelay, decide, pollBackoff, type Ended } from '../browser-policy.js'
import { connect, inspect, RealtimeError, RealtimeEventSource, RealtimeWebSocket } from '../index.js'
import type { Connection, ConnectOptions, Frame, HeartbeatOptions, StateFrame } from '../types.js'
import { resetTauri } from './helpers.js'

const g = globalThis as { WebSocket?: unknown }
const savedWebSocket = g.WebSocket
const cleanups: (() => unknown)[] = []

beforeEach(() => {
  resetTauri()
  g.WebSocket ??= WsClient
})
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
  g.WebSocket = savedWebSocket
})

/** Waits until `check` returns a value other than undefined/false, for at most `ms`. */
// Within vitest's 5 s per test, so that a wait that fails says what it waited for.
async function until<T>(what: string, check: () => T | undefined | false, ms = 4000): Promise<T> {
  const deadline = Date.now() + ms
  for (let i = 0; i < 10_000; i++) {
    const v = check()
    if (v !== undefined && v !== false) return v
    if (Date.now() > deadline) break
    await new Promise((r) => setTimeout(r, 5))
  }
  throw new Error(`expected ${what} within ${ms} ms`)
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** A connection with every frame it got recorded, closed after the test. */
async function open(options: ConnectOptions): Promise<{ conn: Connection; frames: Frame[] }> {
  const conn = await connect(options)
  const frames: Frame[] = []
  conn.on('frame', (f) => frames.push(f))
  cleanups.push(() => conn.close().catch(() => undefined))
  return { conn, frames }
}

const states = (frames: Frame[]) => frames.filter((f): f is StateFrame => f.kind === 'state')
const lastState = (frames: Frame[]) => states(frames).at(-1)
const stripSeq = (frames: Frame[]) => frames.map(({ seq: _seq, ...rest }) => rest)

/** The frames must be numbered 1, 2, 3... with no gap. */
function expectNumbered(frames: Frame[]): void {
  expect(frames.map((f) => f.seq)).toEqual(frames.map((_, i) => i + 1))
}

const fast = { initialDelayMs: 100, jitter: 0 }

// --- servers ------------------------------------------------------------------------------------------------------

interface WsServer {
  url: string
  sockets: ServerSocket[]
  /** Text messages received, per connection in order of connection. */
  received: string[][]
}

async function wsServer(onConnection?: (socket: ServerSocket, index: number) => void): Promise<WsServer> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  await new Promise<void>((resolve) => wss.once('listening', resolve))
  const server: WsServer = {
    url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/feed`,
    sockets: [],
    received: [],
  }
  wss.on('connection', (socket) => {
    const index = server.sockets.length
    const log: string[] = []
    server.sockets.push(socket)
    server.received.push(log)
    socket.on('message', (data, binary) => log.push(binary ? `bin:${[...(data as Buffer)].join(',')}` : String(data)))
    onConnection?.(socket, index)
  })
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const s of server.sockets) s.terminate()
        wss.close(() => resolve())
      }),
  )
  return server
}

interface Request {
  method: string
  url: string
  headers: IncomingMessage['headers']
  body: string
}

interface HttpServer {
  url: string
  requests: Request[]
}

async function httpServer(handle: (req: Request, res: ServerResponse, index: number) => void): Promise<HttpServer> {
  const requests: Request[] = []
  const open = new Set<ServerResponse>()
  const server: Server = createServer((req, res) => {
    let body = ''
    req.setEncoding('utf8')
    req.on('data', (chunk: string) => (body += chunk))
    req.on('end', () => {
      const r = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body }
      requests.push(r)
      open.add(res)
      res.on('close', () => open.delete(res))
      handle(r, res, requests.length - 1)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const res of open) res.destroy()
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  )
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/stream`, requests }
}

function eventStream(res: ServerResponse, body = ''): void {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' })
  res.flushHeaders()
  if (body) res.write(body)
}

/** A port nothing listens on: bound, then closed. */
async function closedPort(): Promise<number> {
  const s = createServer()
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
  const port = (s.address() as AddressInfo).port
  await new Promise<void>((resolve) => s.close(() => resolve()))
  return port
}

/** A TCP server that accepts and never answers: no upgrade, no response headers. */
async function silentServer(): Promise<number> {
  const sockets: Socket[] = []
  const server = createTcpServer((socket) => sockets.push(socket))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy()
        server.close(() => resolve())
      }),
  )
  return (server.address() as AddressInfo).port
}

// --- the policy ---------------------------------------------------------------------------------------------------

const defaults: Policy = {
  initialDelayMs: 1000,
  multiplier: 2,
  maxDelayMs: 30_000,
  jitter: 0.2,
  maxRetries: null,
  stableAfterMs: 5000,
  onNormalClose: false,
}

describe('the reconnect policy outside Tauri (as backoff.rs and policy.rs)', () => {
  it('doubles from one second and caps at thirty, jitter only shortening', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 8].map((n) => backoffDelay(defaults, 1000, n, 0))).toEqual([
      1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000,
    ])
    const cases: [number, number, number][] = [
      [1, 0.5, 900],
      [1, 0.999_999, 800],
      [3, 1, 3200],
      [7, 0.25, 28500],
    ]
    for (const [attempt, sample, want] of cases) {
      expect(backoffDelay(defaults, 1000, attempt, sample), `attempt ${attempt} sample ${sample}`).toBe(want)
    }
    // An SSE `retry:` base above the ceiling is honoured as given.
    expect(backoffDelay(defaults, 60_000, 1, 0)).toBe(60_000)
  })

  it('decides as the engine does', () => {
    const up = (uptimeMs: number, delivered: boolean) => ({ uptimeMs, delivered })
    const limited = { ...defaults, maxRetries: 2 }
    const cases: [Policy | null, number, Ended, ReturnType<typeof decide>][] = [
      [defaults, 0, { kind: 'retry', reason: 'refused' }, { kind: 'retry', attempt: 1, delayMs: 1000, reason: 'refused' }],
      [defaults, 3, { kind: 'retry', reason: 'refused' }, { kind: 'retry', attempt: 4, delayMs: 8000, reason: 'refused' }],
      [
        defaults,
        0,
        { kind: 'retry', reason: 'HTTP 503', retryAfterMs: 7000 },
        { kind: 'retry', attempt: 1, delayMs: 7000, reason: 'HTTP 503' },
      ],
      [defaults, 0, { kind: 'fatal', reason: 'HTTP 401' }, { kind: 'fail', reason: 'HTTP 401' }],
      [defaults, 0, { kind: 'stop', reason: '204' }, { kind: 'disconnect', reason: '204' }],
      [
        defaults,
        4,
        { kind: 'dropped', reason: 'reset', progress: up(60_000, false) },
        { kind: 'retry', attempt: 1, delayMs: 1000, reason: 'reset' },
      ],
      [
        defaults,
        2,
        { kind: 'dropped', reason: 'reset', progress: up(10, false) },
        { kind: 'retry', attempt: 3, delayMs: 4000, reason: 'reset' },
      ],
      [
        defaults,
        2,
        { kind: 'finished', progress: up(10, true) },
        { kind: 'retry', attempt: 1, delayMs: 1000, reason: 'stream ended' },
      ],
      [
        defaults,
        0,
        { kind: 'serverClosed', code: 1000, reason: 'bye', progress: up(10, true) },
        { kind: 'disconnect', reason: 'server closed the connection (1000 bye)' },
      ],
      [
        { ...defaults, onNormalClose: true },
        0,
        { kind: 'serverClosed', code: 1000, reason: '', progress: up(10, true) },
        { kind: 'retry', attempt: 1, delayMs: 1000, reason: 'server closed the connection (1000)' },
      ],
      [
        defaults,
        0,
        { kind: 'serverClosed', code: 1012, reason: 'restart', progress: up(10, false) },
        { kind: 'retry', attempt: 1, delayMs: 1000, reason: 'server closed the connection (1012 restart)' },
      ],
      [limited, 2, { kind: 'retry', reason: 'refused' }, { kind: 'fail', reason: 'gave up after 2 retries: refused' }],
      [null, 0, { kind: 'retry', reason: 'refused' }, { kind: 'fail', reason: 'refused (reconnect is off)' }],
      [
        null,
        0,
        { kind: 'finished', progress: up(10, true) },
        { kind: 'disconnect', reason: 'stream ended and reconnect is off' },
      ],
    ]
    for (const [policy, attempt, ended, want] of cases) {
      expect(decide(policy, policy?.initialDelayMs ?? 1000, attempt, ended, 0), JSON.stringify(ended)).toEqual(want)
    }
    // With a poll URL: at once when the server cannot stream, and after `afterFailures` failed attempts.
    expect(decide(defaults, 1000, 0, { kind: 'noStream', reason: 'json' }, 0, 3)).toEqual({ kind: 'fallback', reason: 'json' })
    expect(decide(defaults, 1000, 0, { kind: 'noStream', reason: 'json' }, 0)).toEqual({ kind: 'fail', reason: 'json' })
    expect(decide(defaults, 1000, 1, { kind: 'retry', reason: 'refused' }, 0, 3)).toMatchObject({ kind: 'retry', attempt: 2 })
    expect(decide(defaults, 1000, 2, { kind: 'retry', reason: 'refused' }, 0, 3)).toEqual({
      kind: 'fallback',
      reason: '3 failed attempts: refused',
    })
    // A server's Retry-After is capped at ten minutes.
    expect(decide(defaults, 1000, 0, { kind: 'retry', reason: 'x', retryAfterMs: 1e12 }, 0)).toMatchObject({
      delayMs: 600_000,
    })
  })
})

describe('polling outside Tauri (as transport/poll.rs)', () => {
  it('backs off failed polls, doubling up to 30 s, and relays only events after the last id', () => {
    expect([1, 2, 3, 4, 5, 9].map((n) => pollBackoff(2000, n))).toEqual([4000, 8000, 16000, 30000, 30000, 30000])
    expect(pollBackoff(60_000, 1)).toBe(60_000)
    expect(pollBackoff(2000, 1, 9000)).toBe(9000)
    const evs = ['1', '2', '2', '3'].map((lastEventId, i) => ({ lastEventId, data: String(i) }))
    expect(afterLastId(evs, '2').map((e) => e.data)).toEqual(['3'])
    expect(afterLastId(evs, '').map((e) => e.data)).toEqual(['0', '1', '2', '3'])
    expect(afterLastId(evs, 'gone').map((e) => e.data)).toEqual(['0', '1', '2', '3'])
  })
})

// --- refusals -----------------------------------------------------------------------------------------------------

describe('outside Tauri, what a browser cannot do is refused', () => {
  it('names the option and says why', async () => {
    const sse = 'http://127.0.0.1:9/s'
    const ws = 'ws://127.0.0.1:9/s'
    const cases: [ConnectOptions, RegExp][] = [
      [{ url: sse, fallback: { pollUrl: 'ws://127.0.0.1:9/p' } }, /`fallback.pollUrl` must be an http or https URL/],
      [{ url: sse, fallback: { pollUrl: sse, intervalMs: 5 } }, /`fallback.intervalMs` must be at least 100 ms, got 5/],
      [{ url: ws, transport: 'poll' }, /transport `poll` does not go with a ws: url/],
      [{ url: sse, transport: 'poll', body: 'x' }, /polls are GETs/],
      [{ url: ws, share: 'room-1' }, /^a `share` key is not available outside Tauri: a key shares one upstream across webviews/],
      [{ url: ws, headers: { 'X-Token': 't' } }, /^`headers` on a WebSocket is not available outside Tauri: the browser's WebSocket cannot send request headers/],
      [{ url: ws, heartbeat: { pingIntervalMs: 1000 } }, /^`heartbeat.pingIntervalMs` without `heartbeat.message` is not available outside Tauri: a browser cannot send WebSocket pings/],
      [{ url: sse, body: '{}' }, /^`body` with GET is not available outside Tauri: .*set `method: 'POST'`/],
      [{ url: sse, headers: { Cookie: 'a=b' } }, /header "Cookie" is forbidden to pages by the Fetch standard; leave it out; pass `withCredentials: true`/],
      [{ url: sse, method: 'TRACE' }, /HTTP method TRACE is not allowed/],
      [{ url: sse, protocols: ['chat'] }, /`protocols` is only for WebSocket connections/],
      [{ url: ws, method: 'POST' }, /`method` and `body` are only for SSE connections/],
      [{ url: sse, reconnect: { initialDelayMs: 10 } }, /`reconnect.initialDelayMs` must be at least 100 ms, got 10/],
      [{ url: sse, reconnect: { jitter: 2 } }, /`reconnect.jitter` must be between 0 and 1/],
      [{ url: sse, queue: { maxMessages: -1 } }, /`queue.maxMessages` must be a whole number/],
      [{ url: sse, heartbeat: { message: 'ping' } as HeartbeatOptions }, /`heartbeat.message` and `heartbeat.reply` are for WebSocket/],
      [{ url: ws, heartbeat: { reply: 'pong' } as HeartbeatOptions }, /`heartbeat.reply` needs `heartbeat.message`/],
      [{ url: 'ftp://127.0.0.1/x' }, /unsupported url scheme `ftp:`/],
      // What fetch would reject with a TypeError, which a page cannot tell from a network error.
      [{ url: sse, headers: { 'X-Name': 'Zoë ✓' } }, /^header "X-Name" with characters past U\+00FF is not available outside Tauri/],
      [{ url: sse, headers: { 'bad name': 'x' } }, /invalid header name "bad name"/],
      [{ url: 'http://u:p@127.0.0.1:9/s' }, /^a URL with a user name or password is not available outside Tauri/],
      [{ url: sse, method: 'PO ST' }, /invalid HTTP method "PO ST"/],
    ]
    for (const [options, want] of cases) {
      const got = await connect(options).then(
        () => 'connected',
        (e: unknown) => e,
      )
      expect(got, JSON.stringify(options)).toBeInstanceOf(RealtimeError)
      expect((got as Error).message, JSON.stringify(options)).toMatch(want)
    }
    expect(await inspect()).toEqual([])
  })

  it('accepts what means nothing more than the default in a page', async () => {
    const server = await httpServer((_req, res) => eventStream(res))
    // `share: true` (the default) and a fallback without a poll URL: nothing to share, nothing to poll.
    const { conn, frames } = await open({ url: server.url, share: true, fallback: true, method: 'get', headers: {} })
    await until('connected', () => lastState(frames)?.state === 'connected')
    expect(conn.shared).toBe(false)
  })
})

// --- WebSocket ----------------------------------------------------------------------------------------------------

describe('outside Tauri, WebSocket', () => {
  it('relays text and binary as numbered frames, sends, inspects and closes with a handshake', async () => {
    const closedWith: [number, string][] = []
    const server = await wsServer((socket, i) => {
      socket.on('close', (code, reason) => (closedWith[i] = [code, String(reason)]))
      socket.send('hello')
      socket.send(new Uint8Array([0, 1, 2]))
    })
    const { conn, frames } = await open({ url: server.url, protocols: ['chat'] })
    await until('two messages', () => frames.filter((f) => f.kind === 'message').length === 2)
    expect(stripSeq(frames)).toEqual([
      { kind: 'state', state: 'connecting', transport: 'websocket', attempt: 0 },
      { kind: 'state', state: 'connected', transport: 'websocket', protocol: 'chat' },
      { kind: 'message', transport: 'websocket', data: 'hello' },
      { kind: 'message', transport: 'websocket', data: 'AAEC', binary: true },
    ])
    expectNumbered(frames)

    expect(await conn.send('up')).toEqual({ queued: false })
    expect(await conn.send(new Uint8Array([7]))).toEqual({ queued: false })
    await until('the sends', () => server.received[0]?.length === 2)
    expect(server.received[0]).toEqual(['up', 'bin:7'])
    expect(await conn.inspect()).toMatchObject({
      id: conn.id,
      state: 'connected',
      framesIn: 2,
      framesOut: 2,
      bytesIn: 8,
      bytesOut: 3,
      protocol: 'chat',
      queued: 0,
    })
    expect((await inspect()).map((i) => i.id)).toContain(conn.id)

    await expect(conn.close(1001, 'x')).rejects.toThrow(/invalid close: code 1001 is not allowed; use 1000 or 3000-4999/)
    const again = await open({ url: server.url })
    await until('connected', () => lastState(again.frames)?.state === 'connected')
    await again.conn.close(4000, 'bye')
    await until('the server saw the close', () => closedWith[1])
    expect(closedWith).toEqual([[1000, ''], [4000, 'bye']])
    expect(again.conn.state.get().state).toBe('disconnected')
    expect((await inspect()).map((i) => i.id)).not.toContain(again.conn.id)
  })

  it('reconnects after the server drops, with the policy, and counts afresh after a delivered message', async () => {
    const server = await wsServer((socket, i) => {
      if (i === 0) {
        socket.send('first')
        setTimeout(() => socket.terminate(), 20)
      }
    })
    const { frames } = await open({ url: server.url, reconnect: fast })
    await until('a second connection', () => server.sockets.length === 2 && lastState(frames)?.state === 'connected')
    expect(stripSeq(frames)).toEqual([
      { kind: 'state', state: 'connecting', transport: 'websocket', attempt: 0 },
      { kind: 'state', state: 'connected', transport: 'websocket' },
      { kind: 'message', transport: 'websocket', data: 'first' },
      {
        kind: 'state',
        state: 'reconnecting',
        attempt: 1,
        delayMs: 100,
        reason: 'connection closed without a close frame',
      },
      { kind: 'state', state: 'connecting', transport: 'websocket', attempt: 1 },
      { kind: 'state', state: 'connected', transport: 'websocket' },
    ])
    expectNumbered(frames)
  })

  it('holds sends while down, bounded, and writes them in order after the reconnect', async () => {
    const server = await wsServer((socket, i) => {
      if (i === 0) setTimeout(() => socket.close(1012, 'restart'), 20)
    })
    const { conn, frames } = await open({
      url: server.url,
      // Long enough for the sends below to find the connection down.
      reconnect: { initialDelayMs: 1000, jitter: 0 },
      queue: { maxMessages: 2, maxBytes: 1000 },
    })
    await until('reconnecting', () => lastState(frames)?.state === 'reconnecting')
    expect(frames.filter((f) => f.kind === 'close').map((f) => stripSeq([f])[0])).toEqual([
      { kind: 'close', code: 1012, reason: 'restart' },
    ])
    expect(lastState(frames)).toMatchObject({
      attempt: 1,
      delayMs: 1000,
      reason: 'server closed the connection (1012 restart)',
    })
    expect(await conn.send('a')).toEqual({ queued: true })
    expect(await conn.send('b')).toEqual({ queued: true })
    await expect(conn.send('c')).rejects.toThrow(
      'outbound queue is full (2 messages held); wait for the connection to come back, or raise queue.maxMessages / queue.maxBytes',
    )
    expect(await conn.inspect()).toMatchObject({ state: 'reconnecting', queued: 2, queuedBytes: 2 })
    await until('connected again', () => lastState(frames)?.state === 'connected' && server.sockets.length === 2)
    expect(await conn.send('d')).toEqual({ queued: false })
    await until('three messages on the second connection', () => server.received[1]?.length === 3)
    expect(server.received).toEqual([[], ['a', 'b', 'd']])
    expect(await conn.inspect()).toMatchObject({ queued: 0, queuedBytes: 0, framesOut: 3 })
  })

  it('writes on-connect messages after every open, in first-insertion order, before the queued sends', async () => {
    const server = await wsServer((socket, i) => {
      socket.on('message', (data) => {
        if (i === 0 && String(data) === 'drop') socket.close(1012, 'restart')
      })
    })
    const { conn, frames } = await open({ url: server.url, reconnect: { initialDelayMs: 1000, jitter: 0 } })
    await until('connected', () => lastState(frames)?.state === 'connected')
    expect(await conn.setOnConnect('auth', 'login')).toEqual({ connected: true })
    expect(await conn.setOnConnect('topic', { topic: 'a' })).toEqual({ connected: true })
    await conn.setOnConnect('gone', 'x')
    expect(await conn.removeOnConnect('gone')).toEqual({ removed: true })
    expect(await conn.removeOnConnect('gone')).toEqual({ removed: false })
    await conn.send('drop')
    await until('reconnecting', () => lastState(frames)?.state === 'reconnecting')
    // Replaced in place while down: written on the next open only.
    expect(await conn.setOnConnect('auth', 'login v2')).toEqual({ connected: false })
    expect(await conn.send('queued')).toEqual({ queued: true })
    await until('three messages on the second connection', () => server.received[1]?.length === 3)
    expect(server.received).toEqual([
      ['login', '{"topic":"a"}', 'x', 'drop'],
      ['login v2', '{"topic":"a"}', 'queued'],
    ])
    const sse = await httpServer((_req, res) => eventStream(res))
    const { conn: stream } = await open({ url: sse.url })
    await expect(stream.setOnConnect('auth', 'login')).rejects.toThrow(
      'on-connect messages are for WebSocket connections; this one streams server-sent events',
    )
  })

  it('bounds the queue by bytes too, and holds sends made before the first open', async () => {
    const server = await wsServer()
    const conn = await connect({ url: server.url, queue: { maxBytes: 4 } })
    cleanups.push(() => conn.close().catch(() => undefined))
    const first = conn.send('abc')
    await expect(conn.send('de')).rejects.toThrow(/outbound queue is full \(3 bytes held, this message adds 2, limit 4\)/)
    expect(await first).toEqual({ queued: true })
    await until('the held send', () => server.received[0]?.length === 1)
    expect(server.received[0]).toEqual(['abc'])
  })

  it('forces a reconnect when the application heartbeat gets no reply', async () => {
    // The server reads but never answers.
    const server = await wsServer()
    const heartbeat = { message: 'ping', reply: 'pong', pingIntervalMs: 100, pongTimeoutMs: 100 }
    const { frames } = await open({ url: server.url, reconnect: fast, heartbeat: heartbeat as HeartbeatOptions })
    await until('reconnecting', () => lastState(frames)?.state === 'reconnecting')
    expect(lastState(frames)).toMatchObject({ attempt: 1, reason: 'no reply to the heartbeat within 100 ms' })
    expect(server.received[0]).toEqual(['ping'])
    await until('a second connection', () => server.sockets.length === 2)
  })

  it('keeps the link while the heartbeat is answered, and does not deliver the replies', async () => {
    const server = await wsServer((socket) => {
      socket.on('message', (data) => {
        if (String(data) === 'ping') socket.send('pong')
      })
    })
    // A generous reply time: a loaded machine must not turn a late pong into a reconnect.
    const heartbeat = { message: 'ping', reply: 'pong', pingIntervalMs: 100, pongTimeoutMs: 2000 }
    const { conn, frames } = await open({ url: server.url, reconnect: fast, heartbeat: heartbeat as HeartbeatOptions })
    await until('four heartbeats', () => (server.received[0]?.length ?? 0) >= 4)
    expect(server.sockets).toHaveLength(1)
    expect(states(frames).map((f) => f.state)).toEqual(['connecting', 'connected'])
    expect(frames.filter((f) => f.kind === 'message')).toEqual([])
    // Heartbeats are not the app's sends.
    expect(await conn.inspect()).toMatchObject({ framesOut: 0, framesIn: 0 })
  })

  it('ends at a normal server close, and reconnect() opens again from any state', async () => {
    const server = await wsServer((socket, i) => {
      if (i === 0) socket.close(1000, 'bye')
    })
    const { conn, frames } = await open({ url: server.url, reconnect: fast })
    await until('disconnected', () => lastState(frames)?.state === 'disconnected')
    expect(stripSeq(frames.slice(2))).toEqual([
      { kind: 'close', code: 1000, reason: 'bye' },
      { kind: 'state', state: 'disconnected', reason: 'server closed the connection (1000 bye)' },
    ])
    await expect(conn.send('x')).rejects.toThrow(/is closed; connect again/)
    await conn.reconnect()
    await until('connected again', () => lastState(frames)?.state === 'connected' && server.sockets.length === 2)
    // From connected: the old socket closes, a new attempt starts at 0.
    await conn.reconnect()
    await until('a third connection', () => lastState(frames)?.state === 'connected' && server.sockets.length === 3)
    expect(states(frames).slice(-2).map((f) => [f.state, f.attempt])).toEqual([
      ['connecting', 0],
      ['connected', undefined],
    ])
    expectNumbered(frames)
  })

  it('gives up after maxRetries, fails with the reason, and close() works while waiting', async () => {
    const url = `ws://127.0.0.1:${await closedPort()}/feed`
    const { conn, frames } = await open({ url, reconnect: { ...fast, maxRetries: 2 } })
    await until('failed', () => lastState(frames)?.state === 'failed')
    expect(states(frames).map((f) => [f.state, f.attempt, f.delayMs])).toEqual([
      ['connecting', 0, undefined],
      ['reconnecting', 1, 100],
      ['connecting', 1, undefined],
      ['reconnecting', 2, 200],
      ['connecting', 2, undefined],
      ['failed', undefined, undefined],
    ])
    const error = frames.find((f) => f.kind === 'error')
    expect(error).toMatchObject({ fatal: true, message: expect.stringMatching(/^gave up after 2 retries: network error/) })
    expect(lastState(frames)?.reason).toBe((error as { message: string }).message)
    // Sends are held while failed, for reconnect().
    expect(await conn.send('later')).toEqual({ queued: true })

    const waiting = await open({ url, reconnect: { initialDelayMs: 60_000, jitter: 0 } })
    await until('reconnecting', () => lastState(waiting.frames)?.state === 'reconnecting')
    await waiting.conn.close()
    expect(waiting.conn.state.get().state).toBe('disconnected')
    expect(await inspect(waiting.conn.id)).toEqual([])
  })

  it('gives up an attempt after connectTimeoutMs, WebSocket and SSE alike', async () => {
    const port = await silentServer()
    for (const url of [`ws://127.0.0.1:${port}/feed`, `http://127.0.0.1:${port}/stream`]) {
      const { frames } = await open({ url, reconnect: fast, connectTimeoutMs: 100 })
      await until(`${url}: reconnecting`, () => lastState(frames)?.state === 'reconnecting')
      expect(lastState(frames)?.reason, url).toBe(
        url.startsWith('ws:') ? 'no WebSocket handshake within 100 ms' : 'no response within 100 ms',
      )
    }
  })

  it('fails at once without a reconnect policy', async () => {
    const url = `ws://127.0.0.1:${await closedPort()}/feed`
    const { frames } = await open({ url, reconnect: false })
    await until('failed', () => lastState(frames)?.state === 'failed')
    expect(lastState(frames)?.reason).toMatch(/^network error: .* \(reconnect is off\)$/)
  })

  it('fails at a message larger than maxMessageSize, as the engine does', async () => {
    const server = await wsServer((socket) => socket.send('x'.repeat(11)))
    const { frames } = await open({ url: server.url, reconnect: fast, maxMessageSize: 10 })
    await until('failed', () => lastState(frames)?.state === 'failed')
    expect(lastState(frames)?.reason).toBe('message from the server too large (11 bytes, limit 10); raise maxMessageSize')
    expect(frames.filter((f) => f.kind === 'message')).toEqual([])
  })

  it('runs RealtimeWebSocket, reconnects included', async () => {
    const server = await wsServer((socket, i) => {
      socket.send(`hi${i}`)
      if (i === 0) setTimeout(() => socket.terminate(), 20)
      else socket.on('message', () => socket.close(1000, 'bye'))
    })
    const ws = new RealtimeWebSocket(server.url, undefined, { reconnect: fast })
    const log: string[] = []
    ws.onopen = () => log.push('open')
    ws.onmessage = (e) => log.push(`message:${e.data}`)
    ws.onerror = () => log.push('error')
    ws.onclose = (e) => log.push(`close:${e.code}:${e.reason}:${e.wasClean}`)
    await until('two opens', () => log.filter((l) => l === 'open').length === 2 && log.includes('message:hi1'))
    ws.send('up')
    await until('closed', () => ws.readyState === RealtimeWebSocket.CLOSED)
    expect(log).toEqual(['open', 'message:hi0', 'error', 'open', 'message:hi1', 'close:1000:bye:true'])
    expect(server.received[1]).toEqual(['up'])
  })
})

// --- SSE ----------------------------------------------------------------------------------------------------------

describe('outside Tauri, SSE over fetch', () => {
  it('sends headers and a POST body on every attempt, Last-Event-ID on resume, and honours retry:', async () => {
    const server = await httpServer((_req, res, i) => {
      if (i === 0) {
        eventStream(res, 'retry: 150\nid: 1\ndata: a\n\n: comment\nevent: summary\ndata: b\ndata: c\n\n')
        res.end()
      } else {
        eventStream(res, 'id: 2\ndata: d\n\n')
      }
    })
    const { conn, frames } = await open({
      url: server.url,
      method: 'POST',
      headers: { Authorization: 'Bearer t', 'Content-Type': 'application/json' },
      body: '{"q":1}',
      lastEventId: 'x0',
      reconnect: { initialDelayMs: 1000, jitter: 0 },
    })
    const summary: string[] = []
    conn.on('summary', (f) => summary.push(f.data))
    await until('the second stream', () => frames.filter((f) => f.kind === 'message').length === 3)
    expect(stripSeq(frames)).toEqual([
      { kind: 'state', state: 'connecting', transport: 'sse', attempt: 0 },
      { kind: 'state', state: 'connected', transport: 'sse' },
      { kind: 'message', transport: 'sse', event: 'message', data: 'a', lastEventId: '1' },
      { kind: 'message', transport: 'sse', event: 'summary', data: 'b\nc', lastEventId: '1' },
      // `retry: 150` replaced the 1000 ms base; a stream that delivered counts afresh.
      { kind: 'state', state: 'reconnecting', attempt: 1, delayMs: 150, reason: 'stream ended' },
      { kind: 'state', state: 'connecting', transport: 'sse', attempt: 1 },
      { kind: 'state', state: 'connected', transport: 'sse' },
      { kind: 'message', transport: 'sse', event: 'message', data: 'd', lastEventId: '2' },
    ])
    expectNumbered(frames)
    expect(summary).toEqual(['b\nc'])
    expect(server.requests.map((r) => [r.method, r.body, r.headers['last-event-id'], r.headers.authorization])).toEqual([
      ['POST', '{"q":1}', 'x0', 'Bearer t'],
      ['POST', '{"q":1}', '1', 'Bearer t'],
    ])
    expect(server.requests[0]!.headers.accept).toBe('text/event-stream')
    expect(await conn.inspect()).toMatchObject({ transport: 'sse', state: 'connected', lastEventId: '2', framesIn: 3 })
    await expect(conn.send('x')).rejects.toThrow(
      'send() on a connection that streams server-sent events needs `sendUrl`',
    )
  })

  it('says once that an event id a header cannot carry is not sent back, and resumes without it', async () => {
    const server = await httpServer((_req, res, i) => {
      eventStream(res, i < 2 ? 'id: caf\u00e9 \u2713\ndata: a\n\n' : '')
      if (i < 2) res.end()
    })
    const { frames } = await open({ url: server.url, reconnect: fast })
    await until('a third request', () => server.requests.length === 3)
    expect(server.requests.map((r) => r.headers['last-event-id'])).toEqual([undefined, undefined, undefined])
    expect(frames.filter((f) => f.kind === 'error').map((f) => stripSeq([f])[0])).toEqual([
      {
        kind: 'error',
        message:
          'the server\'s event id "caf\u00e9 \u2713" has characters that an HTTP header cannot carry; reconnects do not ' +
          'send it as Last-Event-ID',
        fatal: false,
      },
    ])
  })

  it('classifies answers as the engine does: 204 stops, 4xx and other content types fail, 5xx retries', async () => {
    const server = await httpServer((req, res) => {
      const path = req.url
      if (path === '/204') res.writeHead(204).end()
      else if (path === '/401') res.writeHead(401, 'Unauthorized').end()
      else if (path === '/json') res.writeHead(200, { 'content-type': 'application/json' }).end('{}')
      else res.writeHead(503, 'Service Unavailable', { 'retry-after': '1' }).end()
    })
    const base = server.url.replace('/stream', '')
    const ended = async (path: string, state: string) => {
      const { frames } = await open({ url: `${base}${path}`, reconnect: fast })
      await until(`${path}: ${state}`, () => lastState(frames)?.state === state)
      return frames
    }
    const noContent = await ended('/204', 'disconnected')
    expect(lastState(noContent)?.reason).toBe('server answered 204 No Content: it asks the client to stop')

    const unauthorized = await ended('/401', 'failed')
    expect(stripSeq(unauthorized.slice(1))).toEqual([
      { kind: 'error', message: 'HTTP 401 Unauthorized', fatal: true },
      { kind: 'state', state: 'failed', reason: 'HTTP 401 Unauthorized' },
    ])

    const json = await ended('/json', 'failed')
    expect(lastState(json)?.reason).toBe('server answered with content type "application/json", not text/event-stream')

    // Retry-After (1 s) is longer than the policy's 100 ms: it wins.
    const unavailable = await ended('/503', 'reconnecting')
    expect(lastState(unavailable)).toMatchObject({ attempt: 1, delayMs: 1000, reason: 'HTTP 503 Service Unavailable' })
  })

  it('reconnects when nothing arrives for idleTimeoutMs, and after a network error', async () => {
    const server = await httpServer((_req, res) => eventStream(res))
    const { frames } = await open({ url: server.url, reconnect: fast, heartbeat: { idleTimeoutMs: 100 } })
    await until('a second request', () => server.requests.length === 2)
    expect(states(frames)[2]).toMatchObject({ state: 'reconnecting', attempt: 1, reason: 'no data for 100 ms' })

    const refused = await open({ url: `http://127.0.0.1:${await closedPort()}/s`, reconnect: fast })
    await until('reconnecting', () => lastState(refused.frames)?.state === 'reconnecting')
    expect(lastState(refused.frames)?.reason).toMatch(/^network error: /)
  })

  it('fails at an event larger than maxMessageSize, after the events before it, whole or in pieces', async () => {
    for (const pieces of [[`data: ok\n\ndata: ${'x'.repeat(100)}\n\n`], ['data: ok\n\ndata: ', 'x'.repeat(60), 'x'.repeat(60)]]) {
      const server = await httpServer((_req, res) => {
        eventStream(res)
        pieces.forEach((p, i) => setTimeout(() => res.write(p), i * 20))
      })
      const { frames } = await open({ url: server.url, reconnect: fast, maxMessageSize: 50 })
      await until('failed', () => lastState(frames)?.state === 'failed')
      expect(lastState(frames)?.reason).toBe(
        'sse line or event data larger than 50 bytes; raise maxMessageSize or fix the server',
      )
      expect(frames.filter((f) => f.kind === 'message').map((f) => (f as { data: string }).data)).toEqual(['ok'])
    }
  })

  it('POSTs sends to sendUrl in order, retrying 503 with one Idempotency-Key, failing a 400 alone', async () => {
    const posts = await httpServer((req, res, i) => {
      if (i === 0) res.writeHead(503, 'Service Unavailable').end()
      else if (req.body === 'bad') res.writeHead(400, 'Bad Request').end()
      else res.writeHead(204).end()
    })
    const sse = await httpServer((_req, res) => eventStream(res))
    const { conn, frames } = await open({
      url: sse.url,
      sendUrl: posts.url.replace('/stream', '/send'),
      headers: { Authorization: 'Bearer t' },
      reconnect: fast,
    })
    await until('connected', () => lastState(frames)?.state === 'connected')
    const first = conn.send('a')
    const json = conn.send({ type: 'NEW_MESSAGE', text: 'hi' })
    await expect(conn.send('bad')).rejects.toThrow(
      /^send failed: http:\/\/127\.0\.0\.1:\d+\/send answered HTTP 400 Bad Request; the message was not delivered$/,
    )
    expect(await first).toEqual({ queued: false })
    expect(await json).toEqual({ queued: false })
    expect(await conn.send('c', { contentType: 'text/x-chat' })).toEqual({ queued: false })
    expect(posts.requests.map((r) => r.body)).toEqual(['a', 'a', '{"type":"NEW_MESSAGE","text":"hi"}', 'bad', 'c'])
    const keys = posts.requests.map((r) => r.headers['idempotency-key'])
    expect(keys[0]).toBe(keys[1])
    expect(new Set(keys).size).toBe(4)
    expect(posts.requests.map((r) => r.headers['content-type'])).toEqual([
      'text/plain; charset=utf-8',
      'text/plain; charset=utf-8',
      'application/json',
      'text/plain; charset=utf-8',
      'text/x-chat',
    ])
    expect(posts.requests.every((r) => r.headers.authorization === 'Bearer t')).toBe(true)
    expect(frames.filter((f) => f.kind === 'error').map((f) => stripSeq([f])[0])).toEqual([
      expect.objectContaining({ fatal: false, message: expect.stringMatching(/^send #3 \(3 bytes of text\/plain\) failed: .* answered HTTP 400 Bad Request; later sends go on$/) }),
    ])
    const bare = await open({ url: sse.url })
    await expect(bare.conn.send('x')).rejects.toThrow(
      'send() on a connection that streams server-sent events needs `sendUrl`',
    )
  })

  it('close() ends the request and every timer; nothing follows', async () => {
    const server = await httpServer((_req, res) => eventStream(res, 'data: a\n\n'))
    const { conn, frames } = await open({ url: server.url, reconnect: fast, heartbeat: { idleTimeoutMs: 100 } })
    await until('a message', () => frames.some((f) => f.kind === 'message'))
    await conn.close()
    const seen = frames.length
    // Past the idle timeout and the reconnect delay: no new request, no frame.
    await sleep(300)
    expect(server.requests).toHaveLength(1)
    expect(frames).toHaveLength(seen)
  })

  it('runs RealtimeEventSource, named events and reconnect included', async () => {
    const server = await httpServer((_req, res, i) => {
      eventStream(res, i === 0 ? 'id: 1\nevent: summary\ndata: s1\n\nid: 2\ndata: m1\n\n' : 'data: m2\n\n')
      if (i === 0) res.end()
      else if (i === 1) setTimeout(() => res.destroy(), 20)
    })
    const source = new RealtimeEventSource(server.url, { reconnect: { ...fast, maxRetries: 1 } })
    const log: string[] = []
    source.onopen = () => log.push(`open@${source.readyState}`)
    source.onerror = () => log.push(`error@${source.readyState}`)
    source.onmessage = (e) => log.push(`message:${e.data}:${e.lastEventId}`)
    source.addEventListener('summary', (e) => log.push(`summary:${(e as MessageEvent).data}`))
    cleanups.push(() => source.close())
    await until('a second open and m2', () => log.includes('message:m2:2'))
    expect(log.slice(0, 6)).toEqual(['open@1', 'summary:s1', 'message:m1:2', 'error@0', 'open@1', 'message:m2:2'])
    expect(server.requests[1]!.headers['last-event-id']).toBe('2')
  })
})

// --- polling ------------------------------------------------------------------------------------------------------

describe('outside Tauri, withCredentials', () => {
  /** Every fetch's URL path and `credentials`, while the test runs. */
  function spyFetch(): string[] {
    const seen: string[] = []
    const real = globalThis.fetch
    globalThis.fetch = ((input: RequestInfo | URL, init?: RequestInit) => {
      seen.push(`${new URL(String(input)).pathname} ${init?.credentials ?? '(default)'}`)
      return real(input, init)
    }) as typeof fetch
    cleanups.push(() => {
      globalThis.fetch = real
    })
    return seen
  }

  it("makes SSE, polls and sends fetch with credentials: 'include', and only then", async () => {
    const server = await httpServer((req, res) => {
      if (req.method === 'POST') res.writeHead(204).end()
      else if (req.url?.startsWith('/poll')) res.writeHead(200, { 'Content-Type': 'text/plain' }).end('p')
      else eventStream(res, 'data: a\n\n')
    })
    const base = server.url.replace('/stream', '')
    const seen = spyFetch()
    const sse = await open({ url: server.url, sendUrl: `${base}/send`, withCredentials: true, reconnect: fast })
    await until('a message', () => sse.frames.some((f) => f.kind === 'message'))
    await sse.conn.send('x')
    const poll = await open({ url: `${base}/poll`, transport: 'poll', withCredentials: true })
    await until('a poll', () => poll.frames.some((f) => f.kind === 'message'))
    const plain = await open({ url: server.url, reconnect: fast })
    await until('a message', () => plain.frames.some((f) => f.kind === 'message'))
    expect(seen).toEqual(['/stream include', '/send include', '/poll include', '/stream same-origin'])
    await expect(connect({ url: server.url, withCredentials: 'yes' as unknown as boolean })).rejects.toThrow(
      '`withCredentials` must be true or false',
    )
  })

  it('RealtimeEventSource honours { withCredentials } as EventSource does', async () => {
    const server = await httpServer((_req, res) => eventStream(res, 'data: a\n\n'))
    const seen = spyFetch()
    const source = new RealtimeEventSource(server.url, { withCredentials: true })
    cleanups.push(() => source.close())
    expect(source.withCredentials).toBe(true)
    await until('a request', () => seen.length > 0)
    expect(seen[0]).toBe('/stream include')
    const plain = new RealtimeEventSource(server.url)
    cleanups.push(() => plain.close())
    expect(plain.withCredentials).toBe(false)
  })
})

describe('outside Tauri, the polling fallback over fetch', () => {
  it('polls at once when the server cannot stream, relays changed bodies only, and probes back to the stream', async () => {
    let streams = false
    const bodies = ['v1', 'v1', 'v2']
    const server = await httpServer((req, res) => {
      if (req.url === '/stream') {
        if (streams) eventStream(res, 'id: 9\ndata: live\n\n')
        else res.writeHead(200, { 'content-type': 'application/json' }).end('{}')
      } else if (req.headers['if-none-match'] === '"v2"') {
        res.writeHead(304).end()
      } else {
        const body = bodies.shift() ?? 'v2'
        res.writeHead(200, { 'content-type': 'text/plain', etag: `"${body}"` }).end(body)
        // Once the last body is out, the stream comes back for the next probe.
        streams = bodies.length === 0
      }
    })
    const pollUrl = server.url.replace('/stream', '/poll')
    const { conn, frames } = await open({
      url: server.url,
      reconnect: fast,
      fallback: { pollUrl, intervalMs: 100, probeIntervalMs: 400 },
    })
    await until('back on the stream', () => frames.some((f) => f.kind === 'message' && f.data === 'live'))
    const seen = stripSeq(frames)
    expect(seen.slice(0, 3)).toEqual([
      { kind: 'state', state: 'connecting', transport: 'sse', attempt: 0 },
      {
        kind: 'state',
        state: 'polling',
        transport: 'poll',
        reason: 'server answered with content type "application/json", not text/event-stream',
      },
      { kind: 'message', transport: 'poll', data: 'v1' },
    ])
    expect(seen.filter((f) => f.kind === 'message').map((f) => (f as { data: string }).data)).toEqual(['v1', 'v2', 'live'])
    expect(seen.slice(-2)).toEqual([
      { kind: 'state', state: 'connected', transport: 'sse' },
      { kind: 'message', transport: 'sse', event: 'message', data: 'live', lastEventId: '9' },
    ])
    expectNumbered(frames)
    const polls = server.requests.filter((r) => r.url === '/poll')
    expect(polls.some((r) => r.headers['if-none-match'] === '"v2"')).toBe(true)
    expect(await conn.inspect()).toMatchObject({ transport: 'sse', state: 'connected' })
  })

  it('polls an event-stream document, relaying only events after the last id, with Last-Event-ID', async () => {
    const docs = ['id: 1\ndata: a\n\nid: 2\ndata: b\n\n', 'id: 1\ndata: a\n\nid: 2\ndata: b\n\nid: 3\ndata: c\n\n']
    const server = await httpServer((req, res) => {
      if (req.url === '/stream') res.writeHead(200, { 'content-type': 'text/html' }).end('<p>no</p>')
      else eventStream(res, docs[Math.min(server.requests.filter((r) => r.url === '/poll').length - 1, 1)])
      if (req.url === '/poll') res.end()
    })
    const pollUrl = server.url.replace('/stream', '/poll')
    const { frames } = await open({ url: server.url, fallback: { pollUrl, intervalMs: 100 } })
    await until('a, b and c', () => frames.filter((f) => f.kind === 'message').length === 3)
    expect(frames.filter((f) => f.kind === 'message').map((f) => stripSeq([f])[0])).toEqual([
      { kind: 'message', transport: 'poll', event: 'message', data: 'a', lastEventId: '1' },
      { kind: 'message', transport: 'poll', event: 'message', data: 'b', lastEventId: '2' },
      { kind: 'message', transport: 'poll', event: 'message', data: 'c', lastEventId: '3' },
    ])
    const polls = server.requests.filter((r) => r.url === '/poll')
    expect(polls[1]!.headers['last-event-id']).toBe('2')
  })

  it('degrades a WebSocket after afterFailures, POSTs sends to sendUrl in order, the queued ones first', async () => {
    const posted: [string, string][] = []
    const server = await httpServer((req, res) => {
      if (req.url === '/send') {
        posted.push([String(req.headers['content-type']), req.body])
        res.writeHead(req.body === 'refuse' ? 500 : 204).end()
      } else {
        res.writeHead(200, { 'content-type': 'text/plain' }).end('snapshot')
      }
    })
    const base = server.url.replace('/stream', '')
    const url = `ws://127.0.0.1:${await closedPort()}/feed`
    const { conn, frames } = await open({
      url,
      reconnect: { initialDelayMs: 1000, jitter: 0 },
      fallback: { pollUrl: `${base}/poll`, sendUrl: `${base}/send`, afterFailures: 2, intervalMs: 100 },
    })
    await until('reconnecting', () => lastState(frames)?.state === 'reconnecting')
    expect(await conn.send('queued-1')).toEqual({ queued: true })
    expect(await conn.send('queued-2')).toEqual({ queued: true })
    await until('polling', () => lastState(frames)?.state === 'polling')
    // The second failed attempt reaches afterFailures: no third wait.
    expect(states(frames).map((f) => f.state)).toEqual(['connecting', 'reconnecting', 'connecting', 'polling'])
    expect(lastState(frames)?.reason).toMatch(/^2 failed attempts: network error/)
    await until('the queued sends posted', () => posted.length === 2)
    // The server has the second POST before the page has its answer: wait for the page to count it.
    for (let i = 0; i < 400 && (await conn.inspect()).framesOut < 2; i++) await sleep(5)
    expect(await conn.send('now')).toEqual({ queued: false })
    await expect(conn.send('refuse')).rejects.toThrow(
      'send failed: sendUrl answered HTTP 500; it may not have reached the server; the message was not delivered',
    )
    expect(posted).toEqual([
      ['text/plain; charset=utf-8', 'queued-1'],
      ['text/plain; charset=utf-8', 'queued-2'],
      ['text/plain; charset=utf-8', 'now'],
      ['text/plain; charset=utf-8', 'refuse'],
    ])
    await until('the snapshot', () => frames.some((f) => f.kind === 'message'))
    expect(await conn.inspect()).toMatchObject({ transport: 'poll', state: 'polling', framesOut: 3, queued: 0 })
  })

  it('reconnect() while polling probes the stream at once, and close() ends polling', async () => {
    let streams = false
    const server = await httpServer((req, res) => {
      if (req.url === '/poll') res.writeHead(200, { 'content-type': 'text/plain' }).end('snapshot')
      else if (streams) eventStream(res, 'data: live\n\n')
      else res.writeHead(200, { 'content-type': 'text/html' }).end('<p>no</p>')
    })
    const pollUrl = server.url.replace('/stream', '/poll')
    const { conn, frames } = await open({ url: server.url, fallback: { pollUrl, intervalMs: 100, probeIntervalMs: 600_000 } })
    await until('the snapshot', () => frames.some((f) => f.kind === 'message'))
    streams = true
    await conn.reconnect()
    await until('back on the stream', () => frames.some((f) => f.kind === 'message' && f.data === 'live'))
    expect(states(frames).map((f) => f.state)).toEqual(['connecting', 'polling', 'connected'])

    streams = false
    const again = await open({ url: server.url, fallback: { pollUrl, intervalMs: 100 } })
    await until('polling', () => again.frames.some((f) => f.kind === 'message'))
    await again.conn.close()
    const polls = server.requests.filter((r) => r.url === '/poll').length
    // Past two poll intervals: no poll after close.
    await sleep(300)
    expect(server.requests.filter((r) => r.url === '/poll')).toHaveLength(polls)
  })

  it("transport: 'poll' polls the url itself; failed polls back off without leaving polling; 401 fails", async () => {
    const answers = [500, 200, 401]
    const server = await httpServer((_req, res) => {
      const status = answers.shift() ?? 401
      res.writeHead(status, { 'content-type': 'text/plain' }).end(status === 200 ? 'ok' : '')
    })
    const { frames } = await open({ url: server.url, transport: 'poll', fallback: { intervalMs: 100 } })
    await until('failed', () => lastState(frames)?.state === 'failed')
    expect(stripSeq(frames)).toEqual([
      { kind: 'state', state: 'polling', transport: 'poll', reason: 'transport is poll' },
      {
        kind: 'error',
        message: 'poll answered HTTP 500 Internal Server Error; polling again in 200 ms',
        fatal: false,
      },
      { kind: 'message', transport: 'poll', data: 'ok' },
      { kind: 'error', message: 'HTTP 401 Unauthorized', fatal: true },
      { kind: 'state', state: 'failed', reason: 'HTTP 401 Unauthorized' },
    ])
    await expect((await connect({ url: server.url, transport: 'poll' })).send('x')).rejects.toThrow(
      'send() on a connection that streams by polling needs `sendUrl`',
    )
  })
})
