import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { RealtimeErrorEvent, RealtimeEventSource } from '../index.js'
import { err, FakeRust, resetTauri, seqFrom, settle, sse, st } from './helpers.js'

let rust: FakeRust

beforeEach(() => {
  rust = new FakeRust()
  seqFrom(1)
})
afterEach(() => resetTauri())

function record(source: RealtimeEventSource, named: string[] = []): string[] {
  const log: string[] = []
  const text = (e: Event): string => {
    if (e instanceof RealtimeErrorEvent) return `error:${e.message}@${source.readyState}`
    if (e.type === 'open') return `open@${source.readyState}`
    const m = e as MessageEvent
    return `${e.type}:${m.data}:${m.lastEventId}:${m.origin}`
  }
  source.onopen = (e) => log.push(text(e))
  source.onmessage = (e) => log.push(`onmessage ${text(e)}`)
  source.onerror = (e) => log.push(text(e))
  for (const type of named) source.addEventListener(type, (e) => log.push(`listener ${text(e)}`))
  return log
}

describe('RealtimeEventSource', () => {
  it('looks like the browser EventSource', () => {
    const source = new RealtimeEventSource('https://example.test/stream')
    expect([RealtimeEventSource.CONNECTING, RealtimeEventSource.OPEN, RealtimeEventSource.CLOSED]).toEqual([0, 1, 2])
    expect([source.CONNECTING, source.OPEN, source.CLOSED]).toEqual([0, 1, 2])
    expect(source.readyState).toBe(0)
    expect(source.url).toBe('https://example.test/stream')
    expect(source.withCredentials).toBe(false)
    expect(() => new RealtimeEventSource('::')).toThrow(expect.objectContaining({ name: 'SyntaxError' }))
  })

  it('sends headers, method, body, lastEventId and withCredentials to Rust', async () => {
    new RealtimeEventSource('https://api.example.test/v1/chat', {
      headers: { authorization: 'Bearer t' },
      method: 'POST',
      body: '{"prompt":"hi"}',
      lastEventId: '7',
      withCredentials: true,
      reconnect: { maxRetries: 3 },
    })
    await settle()
    expect(rust.commands('connect')[0]?.options).toStrictEqual({
      url: 'https://api.example.test/v1/chat',
      headers: { authorization: 'Bearer t' },
      method: 'POST',
      body: '{"prompt":"hi"}',
      lastEventId: '7',
      withCredentials: true,
      reconnect: { maxRetries: 3 },
    })
  })

  it('fires open, onmessage for unnamed events, listeners for named ones, error while reconnecting, open again', async () => {
    const source = new RealtimeEventSource('https://example.test/stream')
    const log = record(source, ['summary'])
    await settle()
    const id = rust.id()
    await rust.emit(id, [st('connecting', { transport: 'sse', attempt: 0 }), st('connected', { transport: 'sse' })])
    await settle()
    await rust.emit(id, [sse('message', 'plain', '1'), sse('summary', 'sum', '2'), sse('other', 'unheard', '3')])
    await rust.emit(id, [st('reconnecting', { attempt: 1, delayMs: 1000, reason: 'stream ended' })])
    expect(source.readyState).toBe(RealtimeEventSource.CONNECTING)
    await rust.emit(id, [st('connecting', { attempt: 1 }), st('connected', { transport: 'sse' }), sse('message', 'x', '4')])

    expect(log).toEqual([
      'open@1',
      'onmessage message:plain:1:https://example.test',
      'listener summary:sum:2:https://example.test',
      'error:stream ended@0',
      'open@1',
      'onmessage message:x:4:https://example.test',
    ])
  })

  it('gives polled messages that name no event to onmessage, and counts polling as open', async () => {
    const source = new RealtimeEventSource('https://example.test/stream')
    const log = record(source)
    await settle()
    await rust.emit(rust.id(), [
      st('polling', { transport: 'poll', reason: '3 failed attempts' }),
      { kind: 'message', seq: 2, transport: 'poll', data: '{"n":1}' },
    ])
    await settle()
    expect(log).toEqual(['open@1', 'onmessage message:{"n":1}::https://example.test'])
  })

  it('fires error with CLOSED when it fails, and releases the connection', async () => {
    const source = new RealtimeEventSource('https://example.test/stream')
    const log = record(source)
    await settle()
    await rust.emit(rust.id(), [
      st('connecting'),
      err('HTTP 401 Unauthorized', true),
      st('failed', { reason: 'HTTP 401 Unauthorized' }),
    ])
    await settle()
    expect(log).toEqual(['error:HTTP 401 Unauthorized@2'])
    expect(source.readyState).toBe(RealtimeEventSource.CLOSED)
    expect(rust.listeners(rust.id())).toBe(0)
  })

  it('fires error with CLOSED when connect is refused', async () => {
    rust.handlers.connect = () => {
      throw 'url not allowed by the realtime scope: https://example.test/stream'
    }
    const source = new RealtimeEventSource('https://example.test/stream')
    const log = record(source)
    await settle()
    expect(log).toEqual(['error:url not allowed by the realtime scope: https://example.test/stream@2'])
  })

  it('close() goes CLOSED at once, invokes close, unlistens and fires nothing more', async () => {
    const source = new RealtimeEventSource('https://example.test/stream')
    const log = record(source)
    await settle()
    const id = rust.id()
    await rust.emit(id, [st('connected')])
    await settle()
    source.close()
    expect(source.readyState).toBe(RealtimeEventSource.CLOSED)
    await rust.emit(id, [sse('message', 'late', '9')])
    await settle()
    expect(log).toEqual(['open@1'])
    expect(rust.commands('close')).toEqual([{ id }])
    expect(rust.listeners(id)).toBe(0)
  })
})
