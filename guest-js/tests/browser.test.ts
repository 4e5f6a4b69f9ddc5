// Outside Tauri (no `__TAURI_INTERNALS__`): the bindings run on the browser's own WebSocket and EventSource.
// Here those are small fakes that the test drives as the network would.

import { createServer } from 'node:http'

import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { connect, inspect, RealtimeError, RealtimeEventSource, RealtimeWebSocket } from '../index.js'
import type { Frame, StateValue } from '../types.js'
import { resetTauri, settle } from './helpers.js'

class FakeCloseEvent extends Event {
  constructor(
    readonly code: number,
    readonly reason: string,
    readonly wasClean: boolean,
  ) {
    super('close')
  }
}

class FakeWebSocket extends EventTarget {
  static instances: FakeWebSocket[] = []
  readyState = 0
  binaryType = 'blob'
  sent: unknown[] = []
  closedWith: [number | undefined, string | undefined] | undefined
  onopen: ((e: Event) => void) | null = null
  onmessage: ((e: MessageEvent) => void) | null = null
  onerror: ((e: Event) => void) | null = null
  onclose: ((e: FakeCloseEvent) => void) | null = null
  constructor(
    readonly url: string,
    readonly protocols: string[],
  ) {
    super()
    FakeWebSocket.instances.push(this)
  }
  send(data: unknown) {
    this.sent.push(data)
  }
  close(code?: number, reason?: string) {
    this.closedWith = [code, reason]
    this.readyState = 2
  }
  serverOpen() {
    this.readyState = 1
    this.onopen?.(new Event('open'))
  }
  serverMessage(data: unknown) {
    this.onmessage?.(new MessageEvent('message', { data }))
  }
  serverClose(code: number, reason: string, wasClean: boolean) {
    this.readyState = 3
    if (!wasClean) this.onerror?.(new Event('error'))
    this.onclose?.(new FakeCloseEvent(code, reason, wasClean))
  }
}

class FakeEventSource extends EventTarget {
  static instances: FakeEventSource[] = []
  readyState = 0
  closed = false
  onopen: ((e: Event) => void) | null = null
  onerror: ((e: Event) => void) | null = null
  constructor(readonly url: string) {
    super()
    FakeEventSource.instances.push(this)
  }
  close() {
    this.closed = true
    this.readyState = 2
  }
  serverOpen() {
    this.readyState = 1
    this.onopen?.(new Event('open'))
  }
  serverEvent(type: string, data: string, lastEventId = '') {
    this.dispatchEvent(new MessageEvent(type, { data, lastEventId }))
  }
  serverError(giveUp: boolean) {
    this.readyState = giveUp ? 2 : 0
    this.onerror?.(new Event('error'))
  }
}

const g = globalThis as { WebSocket?: unknown; EventSource?: unknown }
const saved = { WebSocket: g.WebSocket, EventSource: g.EventSource }

beforeEach(() => {
  resetTauri()
  FakeWebSocket.instances = []
  FakeEventSource.instances = []
  g.WebSocket = FakeWebSocket
  g.EventSource = FakeEventSource
})
afterEach(() => {
  g.WebSocket = saved.WebSocket
  g.EventSource = saved.EventSource
})

const lastWs = () => FakeWebSocket.instances.at(-1)!
const lastEs = () => FakeEventSource.instances.at(-1)!

describe('outside Tauri', () => {
  it('refuses what the browser cannot send, with a clear error', async () => {
    await expect(connect({ url: 'https://example.test/s', headers: { authorization: 'x' } })).rejects.toThrow(
      /headers need the Tauri runtime/,
    )
    await expect(connect({ url: 'https://example.test/s', method: 'POST', body: '{}' })).rejects.toThrow(
      new RealtimeError(
        "method, body need the Tauri runtime: outside Tauri the bindings use the browser's own WebSocket / EventSource, which cannot send them",
      ),
    )
    await expect(connect({ url: 'https://example.test/s', lastEventId: '3' })).rejects.toThrow(/lastEventId/)
    expect(FakeEventSource.instances).toEqual([])
    // An explicit GET and empty headers are what the browser does anyway.
    await expect(connect({ url: 'https://example.test/s', method: 'get', headers: {} })).resolves.toBeDefined()
  })

  it('relays a browser WebSocket as numbered frames behind the same Connection', async () => {
    const conn = await connect({ url: 'wss://example.test/feed', protocols: ['chat'] })
    const ws = lastWs()
    expect([ws.url, ws.protocols, ws.binaryType]).toEqual(['wss://example.test/feed', ['chat'], 'arraybuffer'])
    const frames: Frame[] = []
    const states: StateValue[] = []
    conn.on('frame', (f) => frames.push(f))
    conn.state.subscribe((v) => states.push(v))
    ws.serverOpen()
    ws.serverMessage('hello')
    ws.serverMessage(new Uint8Array([0, 1, 2]).buffer)
    await settle()
    expect(frames).toEqual([
      { kind: 'state', seq: 1, state: 'connecting', transport: 'websocket', attempt: 0 },
      { kind: 'state', seq: 2, state: 'connected', transport: 'websocket' },
      { kind: 'message', seq: 3, transport: 'websocket', data: 'hello' },
      { kind: 'message', seq: 4, transport: 'websocket', data: 'AAEC', binary: true },
    ])
    expect(states.map((s) => s.state)).toEqual(['connecting', 'connected'])

    await conn.send('up')
    await conn.send(new Uint8Array([7]))
    expect(ws.sent).toEqual(['up', new Uint8Array([7])])
    expect(await conn.inspect()).toMatchObject({ id: conn.id, state: 'connected', framesIn: 2, framesOut: 2 })
    expect((await inspect()).map((i) => i.id)).toContain(conn.id)

    await conn.close(1000, 'bye')
    expect(ws.closedWith).toEqual([1000, 'bye'])
    expect(conn.state.get().state).toBe('disconnected')
    expect((await inspect()).map((i) => i.id)).not.toContain(conn.id)
  })

  it('reports an abnormal WebSocket close as a fatal error and failed', async () => {
    const conn = await connect({ url: 'wss://example.test/feed' })
    const kinds: string[] = []
    conn.on('frame', (f) => kinds.push(f.kind === 'state' ? `state:${f.state}` : f.kind))
    lastWs().serverClose(1006, '', false)
    await settle()
    expect(kinds).toEqual(['state:connecting', 'error', 'state:failed'])
    await expect(conn.send('x')).rejects.toThrow(/not connected/)
  })

  it('relays a browser EventSource, including the named event types asked for', async () => {
    const conn = await connect({ url: 'https://example.test/stream' })
    const es = lastEs()
    const summary: string[] = []
    const all: string[] = []
    conn.on('summary', (f) => summary.push(f.data))
    conn.on('message', (f) => all.push(`${f.event}:${f.data}:${f.lastEventId}`))
    es.serverOpen()
    es.serverEvent('message', 'plain', '1')
    es.serverEvent('summary', 'sum', '2')
    es.serverError(false)
    es.serverOpen()
    await settle()
    expect(summary).toEqual(['sum'])
    expect(all).toEqual(['message:plain:1', 'summary:sum:2'])
    expect(conn.state.get()).toEqual({ state: 'connected', transport: 'sse' })
    await expect(conn.send('x')).rejects.toThrow(/needs `sendUrl`/)
    await conn.close()
    expect(es.closed).toBe(true)
  })

  it('POSTs sends beside a browser EventSource to sendUrl, with fetch, to a real server', async () => {
    const got: string[] = []
    const server = createServer((req, res) => {
      let body = ''
      const text = new TextDecoder()
      req.on('data', (c) => (body += text.decode(c, { stream: true })))
      req.on('end', () => {
        got.push(`${req.method} ${req.url} ${req.headers['content-type']} ${body}`)
        res.statusCode = body.includes('bad') ? 400 : 204
        res.end()
      })
    })
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok))
    try {
      const { port } = server.address() as { port: number }
      const sendUrl = `http://127.0.0.1:${port}/send`
      const conn = await connect({ url: 'https://example.test/stream', sendUrl })
      await expect(conn.send({ text: 'hi' })).resolves.toEqual({ queued: false })
      await conn.send('plain')
      await expect(conn.send({ text: 'bad' })).rejects.toThrow(`${sendUrl} answered HTTP 400`)
      expect(got).toEqual([
        'POST /send application/json {"text":"hi"}',
        'POST /send text/plain; charset=utf-8 plain',
        'POST /send application/json {"text":"bad"}',
      ])
      await conn.close()
    } finally {
      await new Promise<void>((ok) => server.close(ok))
    }
  })

  it('runs RealtimeWebSocket on the browser WebSocket', async () => {
    const ws = new RealtimeWebSocket('wss://example.test/feed')
    const log: string[] = []
    ws.onopen = () => log.push('open')
    ws.onmessage = (e) => log.push(`message:${e.data}`)
    ws.onclose = (e) => log.push(`close:${e.code}:${e.reason}:${e.wasClean}`)
    await settle()
    lastWs().serverOpen()
    lastWs().serverMessage('hi')
    await settle()
    ws.send('up')
    expect(lastWs().sent).toEqual([])
    await settle()
    expect(lastWs().sent).toEqual(['up'])
    lastWs().serverClose(1000, 'bye', true)
    await settle()
    expect(log).toEqual(['open', 'message:hi', 'close:1000:bye:true'])
    expect(ws.readyState).toBe(RealtimeWebSocket.CLOSED)
  })

  it('runs RealtimeEventSource on the browser EventSource, named events and reconnect included', async () => {
    const source = new RealtimeEventSource('https://example.test/stream')
    const log: string[] = []
    source.onopen = () => log.push(`open@${source.readyState}`)
    source.onerror = () => log.push(`error@${source.readyState}`)
    source.onmessage = (e) => log.push(`message:${e.data}`)
    source.addEventListener('summary', (e) => log.push(`summary:${(e as MessageEvent).data}`))
    await settle()
    const es = lastEs()
    es.serverOpen()
    es.serverEvent('summary', 's1', '1')
    es.serverEvent('message', 'm1', '2')
    es.serverError(false)
    es.serverOpen()
    es.serverError(true)
    await settle()
    expect(log).toEqual(['open@1', 'summary:s1', 'message:m1', 'error@0', 'open@1', 'error@2'])
    expect(source.readyState).toBe(RealtimeEventSource.CLOSED)
  })
})
