import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { RealtimeErrorEvent, RealtimeWebSocket } from '../index.js'
import { closeF, err, FakeRust, msg, resetTauri, seqFrom, settle, st } from './helpers.js'

let rust: FakeRust

beforeEach(() => {
  rust = new FakeRust()
  seqFrom(1)
})
afterEach(() => resetTauri())

/** Every event the socket fires, as text, through both `on<type>` and `addEventListener`. */
function record(ws: RealtimeWebSocket): string[] {
  const log: string[] = []
  const describe = (e: Event): string => {
    if (e.type === 'message') {
      const d = (e as MessageEvent).data
      return `message:${typeof d === 'string' ? d : Object.prototype.toString.call(d)}`
    }
    if (e.type === 'close') {
      const c = e as CloseEvent
      return `close:${c.code}:${c.reason}:${c.wasClean ? 'clean' : 'unclean'}`
    }
    if (e.type === 'error') return `error:${(e as RealtimeErrorEvent).message}`
    return e.type
  }
  ws.onopen = (e) => log.push(`${describe(e)}@${ws.readyState}`)
  ws.onmessage = (e) => log.push(describe(e))
  ws.onerror = (e) => log.push(`${describe(e)}@${ws.readyState}`)
  ws.onclose = (e) => log.push(`${describe(e)}@${ws.readyState}`)
  for (const type of ['open', 'message', 'error', 'close']) ws.addEventListener(type, () => log.push(`listener:${type}`))
  return log
}

describe('RealtimeWebSocket', () => {
  it('looks like the browser WebSocket', () => {
    const ws = new RealtimeWebSocket('wss://example.test/feed')
    expect([RealtimeWebSocket.CONNECTING, RealtimeWebSocket.OPEN, RealtimeWebSocket.CLOSING, RealtimeWebSocket.CLOSED]).toEqual(
      [0, 1, 2, 3],
    )
    expect([ws.CONNECTING, ws.OPEN, ws.CLOSING, ws.CLOSED]).toEqual([0, 1, 2, 3])
    expect(ws.readyState).toBe(RealtimeWebSocket.CONNECTING)
    expect(ws.url).toBe('wss://example.test/feed')
    expect(ws.binaryType).toBe('blob')
    expect(ws.bufferedAmount).toBe(0)
    expect(ws.protocol).toBe('')
    expect(ws).toBeInstanceOf(EventTarget)
  })

  it('connects with the URL, subprotocols and plugin options', async () => {
    new RealtimeWebSocket(new URL('https://example.test/feed'), 'chat', { reconnect: false, share: 'k' })
    await settle()
    expect(rust.commands('connect')[0]?.options).toEqual({
      url: 'wss://example.test/feed',
      protocols: ['chat'],
      reconnect: false,
      share: 'k',
    })
  })

  it('takes the subprotocol the server chose from the connected frame, before open fires', async () => {
    const ws = new RealtimeWebSocket('wss://example.test/feed', ['chat.v1', 'chat.v2'])
    let atOpen = 'unset'
    ws.onopen = () => {
      atOpen = ws.protocol
    }
    await settle()
    await rust.emit(rust.id(), [st('connected', { transport: 'websocket', protocol: 'chat.v2' })])
    await settle()
    expect(atOpen).toBe('chat.v2')
  })

  it('throws SyntaxError for a URL it cannot use, as the browser does', () => {
    expect(() => new RealtimeWebSocket('not a url')).toThrow(expect.objectContaining({ name: 'SyntaxError' }))
    expect(() => new RealtimeWebSocket('ftp://example.test/')).toThrow(expect.objectContaining({ name: 'SyntaxError' }))
    expect(() => new RealtimeWebSocket('wss://example.test/', ['a', 'a'])).toThrow(
      expect.objectContaining({ name: 'SyntaxError' }),
    )
  })

  it('fires open, message, error on reconnecting, open again, then close with the server code and reason', async () => {
    const ws = new RealtimeWebSocket('wss://example.test/feed')
    const log = record(ws)
    await settle()
    const id = rust.id()
    await rust.emit(id, [st('connecting', { transport: 'websocket', attempt: 0 }), st('connected', { transport: 'websocket' })])
    await settle()
    expect(ws.readyState).toBe(RealtimeWebSocket.OPEN)
    await rust.emit(id, [msg('hello')])
    await rust.emit(id, [st('reconnecting', { attempt: 1, delayMs: 1000, reason: 'stream ended' })])
    expect(ws.readyState).toBe(RealtimeWebSocket.CONNECTING)
    await rust.emit(id, [st('connecting', { attempt: 1 }), st('connected', { transport: 'websocket' }), msg('again')])
    await rust.emit(id, [closeF(1000, 'bye'), st('disconnected', { reason: 'closed by the server' })])

    expect(log).toEqual([
      'open@1',
      'listener:open',
      'message:hello',
      'listener:message',
      'error:stream ended@0',
      'listener:error',
      'open@1',
      'listener:open',
      'message:again',
      'listener:message',
      'close:1000:bye:clean@3',
      'listener:close',
    ])
    expect(ws.readyState).toBe(RealtimeWebSocket.CLOSED)
    // The finished socket releases its subscription and listener.
    await settle()
    expect(rust.commands('close')).toEqual([{ id }])
    expect(rust.listeners(id)).toBe(0)
  })

  it('gives binary messages as Blob by default and as ArrayBuffer on request', async () => {
    const ws = new RealtimeWebSocket('wss://example.test/feed')
    const data: unknown[] = []
    ws.onmessage = (e) => data.push(e.data)
    await settle()
    await rust.emit(rust.id(), [st('connected'), msg('AAEC', { binary: true })])
    await settle()
    ws.binaryType = 'arraybuffer'
    await rust.emit(rust.id(), [msg('/w==', { binary: true }), msg('text')])

    expect(data[0]).toBeInstanceOf(Blob)
    expect([...new Uint8Array(await (data[0] as Blob).arrayBuffer())]).toEqual([0, 1, 2])
    expect(data[1]).toBeInstanceOf(ArrayBuffer)
    expect([...new Uint8Array(data[1] as ArrayBuffer)]).toEqual([255])
    expect(data[2]).toBe('text')
  })

  it('fires error with the Rust message, then an unclean close 1006, when the connection fails', async () => {
    const ws = new RealtimeWebSocket('wss://example.test/feed')
    const log = record(ws)
    await settle()
    await rust.emit(rust.id(), [
      st('connecting'),
      err('HTTP 401 Unauthorized', true),
      st('failed', { reason: 'HTTP 401 Unauthorized' }),
    ])
    await settle()
    expect(log).toEqual([
      'error:HTTP 401 Unauthorized@3',
      'listener:error',
      'close:1006::unclean@3',
      'listener:close',
    ])
  })

  it('fires error then close 1006 when connect itself is refused', async () => {
    rust.handlers.connect = () => {
      throw 'url not allowed by the realtime scope: wss://example.test/feed'
    }
    const ws = new RealtimeWebSocket('wss://example.test/feed')
    const log = record(ws)
    await settle()
    expect(log).toEqual([
      'error:url not allowed by the realtime scope: wss://example.test/feed@3',
      'listener:error',
      'close:1006::unclean@3',
      'listener:close',
    ])
    expect(rust.listeners(rust.id())).toBe(0)
  })

  it('close(code, reason) goes CLOSING, invokes close, then fires a clean close with that code', async () => {
    const ws = new RealtimeWebSocket('wss://example.test/feed')
    const log = record(ws)
    await settle()
    await rust.emit(rust.id(), [st('connected')])
    await settle()
    ws.close(4000, 'done')
    expect(ws.readyState).toBe(RealtimeWebSocket.CLOSING)
    ws.close(4001, 'twice')
    await settle()
    expect(rust.commands('close')).toEqual([{ id: rust.id(), code: 4000, reason: 'done' }])
    expect(log.slice(-2)).toEqual(['close:4000:done:clean@3', 'listener:close'])
    expect(ws.readyState).toBe(RealtimeWebSocket.CLOSED)
    expect(rust.listeners(rust.id())).toBe(0)
  })

  it('close() while still connecting fails the connection and releases it once it is up', async () => {
    const ws = new RealtimeWebSocket('wss://example.test/feed')
    const log = record(ws)
    ws.close()
    expect(ws.readyState).toBe(RealtimeWebSocket.CLOSING)
    await settle()
    expect(log).toEqual(['error:@3', 'listener:error', 'close:1006::unclean@3', 'listener:close'])
    expect(rust.commands('close')).toHaveLength(1)
    expect(rust.listeners(rust.id())).toBe(0)
  })

  it('validates close codes and reasons as the browser does', () => {
    const ws = new RealtimeWebSocket('wss://example.test/feed')
    expect(() => ws.close(1001)).toThrow(expect.objectContaining({ name: 'InvalidAccessError' }))
    expect(() => ws.close(1000, 'x'.repeat(124))).toThrow(expect.objectContaining({ name: 'SyntaxError' }))
    expect(ws.readyState).toBe(RealtimeWebSocket.CONNECTING)
  })

  it('throws InvalidStateError on send before open, sends after, and queues while reconnecting', async () => {
    const ws = new RealtimeWebSocket('wss://example.test/feed')
    expect(() => ws.send('early')).toThrow(expect.objectContaining({ name: 'InvalidStateError' }))
    await settle()
    await rust.emit(rust.id(), [st('connected')])
    await settle()
    ws.send('one')
    ws.send(new Uint8Array([0, 1, 2]))
    await rust.emit(rust.id(), [st('reconnecting', { attempt: 1 })])
    ws.send('while reconnecting')
    await settle()
    expect(rust.commands('send')).toEqual([
      { id: rust.id(), data: 'one' },
      { id: rust.id(), data: 'AAEC', binary: true },
      { id: rust.id(), data: 'while reconnecting' },
    ])
  })

  it('fires error when the plugin refuses a send', async () => {
    rust.handlers.send = () => {
      throw 'outbound queue full'
    }
    const ws = new RealtimeWebSocket('wss://example.test/feed')
    const log = record(ws)
    await settle()
    await rust.emit(rust.id(), [st('connected')])
    await settle()
    ws.send('x')
    await settle()
    expect(log).toContain('error:outbound queue full@1')
    expect(ws.readyState).toBe(RealtimeWebSocket.OPEN)
  })
})
