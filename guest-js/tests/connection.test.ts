import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'

import { ACK_WINDOW, connect, inspect, MAX_HELD_FRAMES, RealtimeError } from '../index.js'
import type { Frame, GapInfo, MessageFrame, StateValue } from '../types.js'
import { closeF, err, FakeRust, msg, resetTauri, seqFrom, settle, sse, st } from './helpers.js'

let rust: FakeRust

beforeEach(() => {
  rust = new FakeRust()
  seqFrom(1)
})
afterEach(() => resetTauri())

describe('connect', () => {
  it('asks for the direct route to a receiver registered beforehand, with an id the caller chose', async () => {
    const options = { url: 'wss://example.test/feed', headers: { authorization: 'Bearer x' } }
    const conn = await connect(options)

    expect(conn.id).toMatch(/^[A-Za-z0-9_-]{1,64}$/)
    expect(rust.order()).toEqual(['plugin:realtime|connect'])
    const [args] = rust.commands('connect')
    expect(args).toEqual({ id: conn.id, options, ack: ACK_WINDOW, route: 'direct' })
    expect(rust.listeners(conn.id)).toBe(1)
  })

  it('keeps frames that Rust sends before connect has answered', async () => {
    rust.handlers.connect = (a) => {
      // Rust starts delivering as soon as it has the subscription, before its answer reaches the page.
      queueMicrotask(() => void rust.emit(String(a.id), [st('connected'), msg('early')]))
      return { id: a.id, state: 'connecting', shared: false }
    }
    const conn = await connect({ url: 'wss://example.test/feed' })
    const got: string[] = []
    conn.on('message', (f) => got.push(f.data))
    await settle()
    expect(got).toEqual(['early'])
    expect(conn.state.get().state).toBe('connected')
  })

  it('acknowledges processed frames every quarter window, and never frames still held', async () => {
    const conn = await connect({ url: 'wss://example.test/feed' })
    const quarter = ACK_WINDOW.frames / 4
    const batch = (from: number, n: number) => Array.from({ length: n }, (_, i) => msg(`m${from + i}`))
    // Held (no handler yet): delivered to nobody, so not acknowledged.
    await rust.emit(conn.id, batch(1, quarter))
    await settle()
    expect(rust.commands('ack')).toEqual([])
    let seen = 0
    conn.on('message', () => {
      seen++
    })
    await settle()
    expect(seen).toBe(quarter)
    expect(rust.commands('ack')).toEqual([{ id: conn.id, frames: quarter }])
    // Fewer than a quarter more: no new acknowledgement yet.
    await rust.emit(conn.id, batch(quarter + 1, quarter - 1))
    await settle()
    expect(rust.commands('ack')).toHaveLength(1)
    await rust.emit(conn.id, batch(2 * quarter, 1))
    await settle()
    expect(rust.commands('ack')).toEqual([
      { id: conn.id, frames: quarter },
      { id: conn.id, frames: 2 * quarter },
    ])
  })

  it('does not report a gap for a late joiner whose snapshot repeats an old seq', async () => {
    const conn = await connect({ url: 'wss://example.test/feed' })
    const gaps: GapInfo[] = []
    const states: string[] = []
    conn.on('gap', (g: GapInfo) => gaps.push(g))
    conn.on('state', (f: Frame) => states.push(f.kind === 'state' ? f.state : ''))
    seqFrom(2)
    await rust.emit(conn.id, [st('connected', { transport: 'websocket', snapshot: true })])
    seqFrom(6)
    await rust.emit(conn.id, [msg('live'), msg('next')])
    seqFrom(9)
    await rust.emit(conn.id, [msg('after a real gap')])
    await settle()
    expect(states).toEqual(['connected'])
    expect(conn.state.get().state).toBe('connected')
    expect(gaps).toEqual([{ expected: 8, got: 9 }])
  })

  it('gives each connection its own id', async () => {
    const a = await connect({ url: 'wss://example.test/a' })
    const b = await connect({ url: 'wss://example.test/a' })
    expect(a.id).not.toBe(b.id)
  })

  it('keeps frames that Rust emits while connect is still running, and hands them out after on()', async () => {
    // The Rust side starts delivery inside the connect command, before its answer reaches the webview.
    rust.handlers.connect = async (a) => {
      await rust.emit(String(a.id), [st('connecting', { transport: 'websocket', attempt: 0 })])
      await rust.emit(String(a.id), [st('connected', { transport: 'websocket' }), msg('hello')])
      return { id: a.id, state: 'connecting', shared: false }
    }
    const conn = await connect({ url: 'wss://example.test/feed' })
    await rust.emit(conn.id, [msg('second')])

    const frames: number[] = []
    const messages: string[] = []
    const states: string[] = []
    conn.on('frame', (f) => frames.push(f.seq))
    // Not synchronously: handlers attached right after the first on() must get the held frames too.
    expect(frames).toEqual([])
    conn.on('message', (f) => messages.push(f.data))
    conn.on('state', (f) => states.push(f.state))
    await settle()

    expect(frames).toEqual([1, 2, 3, 4])
    expect(messages).toEqual(['hello', 'second'])
    expect(states).toEqual(['connecting', 'connected'])

    // Afterwards frames are handed out as they arrive, not held.
    await rust.emit(conn.id, [msg('live')])
    expect(messages).toEqual(['hello', 'second', 'live'])
  })

  it('holds at most MAX_HELD_FRAMES and reports the dropped ones as a gap', async () => {
    const conn = await connect({ url: 'wss://example.test/feed' })
    const extra = 5
    const batch: Frame[] = []
    for (let i = 0; i < MAX_HELD_FRAMES + extra; i++) batch.push(msg(`m${i}`))
    for (let i = 0; i < batch.length; i += 256) await rust.emit(conn.id, batch.slice(i, i + 256))

    const seqs: number[] = []
    const gaps: GapInfo[] = []
    conn.on('message', (f) => seqs.push(f.seq))
    conn.on('gap', (g) => gaps.push(g))
    await settle()

    expect(seqs.length).toBe(MAX_HELD_FRAMES)
    expect(seqs[0]).toBe(extra + 1)
    expect(seqs.at(-1)).toBe(MAX_HELD_FRAMES + extra)
    expect(gaps).toEqual([{ expected: 1, got: extra + 1 }])
  })

  it('rejects with the Rust message as a RealtimeError, and leaves the receiver, when connect fails', async () => {
    rust.handlers.connect = () => {
      throw 'url not allowed by the realtime scope: wss://evil.test/'
    }
    const failure = await connect({ url: 'wss://evil.test/' }).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(failure).toBeInstanceOf(RealtimeError)
    expect((failure as Error).message).toBe('url not allowed by the realtime scope: wss://evil.test/')
    const id = rust.id()
    expect(rust.listeners(id)).toBe(0)
  })

  it('refuses options without a url before any IPC', async () => {
    await expect(connect(undefined as never)).rejects.toThrow(TypeError)
    expect(rust.calls).toEqual([])
  })
})

describe('dispatch', () => {
  it('hands out a batch payload frame by frame in seq order, across kinds', async () => {
    const conn = await connect({ url: 'wss://example.test/feed' })
    const log: string[] = []
    conn.on('state', (f) => log.push(`state:${f.seq}:${f.state}`))
    conn.on('message', (f) => log.push(`message:${f.seq}:${f.data}`))
    conn.on('error', (f) => log.push(`error:${f.seq}`))
    conn.on('close', (f) => log.push(`close:${f.seq}:${f.code}`))
    await settle()

    await rust.emit(conn.id, [
      st('connected', { transport: 'websocket' }),
      msg('a'),
      msg('b'),
      err('boom', false),
      closeF(1001, 'going away'),
      st('reconnecting', { attempt: 1, delayMs: 1000 }),
    ])
    expect(log).toEqual([
      'state:1:connected',
      'message:2:a',
      'message:3:b',
      'error:4',
      'close:5:1001',
      'state:6:reconnecting',
    ])
  })

  it('accepts a payload that is a single frame rather than an array', async () => {
    const conn = await connect({ url: 'wss://example.test/feed' })
    const got: string[] = []
    conn.on('message', (f) => got.push(f.data))
    await settle()
    await rust.emit(conn.id, msg('alone'))
    expect(got).toEqual(['alone'])
  })

  it('filters SSE frames by event type; reserved kinds win over event types of the same name', async () => {
    const conn = await connect({ url: 'https://example.test/stream' })
    const summary: string[] = []
    const all: string[] = []
    const states: string[] = []
    conn.on('summary', (f) => summary.push(f.data))
    conn.on('message', (f) => all.push(`${f.event}:${f.data}`))
    conn.on('state', (f) => states.push(f.state))
    await settle()

    await rust.emit(conn.id, [
      st('connected', { transport: 'sse' }),
      sse('message', 'plain', '1'),
      sse('summary', 'sum', '2'),
      sse('delta', 'd', '3'),
      sse('state', 'not a state frame', '4'),
      sse('summary', 'sum2', '5'),
    ])
    expect(summary).toEqual(['sum', 'sum2'])
    expect(all).toEqual(['message:plain', 'summary:sum', 'delta:d', 'state:not a state frame', 'summary:sum2'])
    expect(states).toEqual(['connected'])
  })

  it('stops calling a handler once it is unsubscribed, and keeps going when a handler throws', async () => {
    const conn = await connect({ url: 'wss://example.test/feed' })
    const errors = vi.spyOn(console, 'error').mockImplementation(() => {})
    const a: string[] = []
    const b: string[] = []
    conn.on('message', () => {
      throw new Error('handler bug')
    })
    const offA = conn.on('message', (f) => a.push(f.data))
    conn.on('message', (f) => b.push(f.data))
    await settle()

    await rust.emit(conn.id, [msg('1')])
    offA()
    offA()
    await rust.emit(conn.id, [msg('2')])
    expect(a).toEqual(['1'])
    expect(b).toEqual(['1', '2'])
    expect(errors).toHaveBeenCalledTimes(2)
  })

  it('reports a seq gap as { expected, got } just before the frame that shows it', async () => {
    const conn = await connect({ url: 'wss://example.test/feed' })
    const log: string[] = []
    conn.on('frame', (f) => log.push(`frame:${f.seq}`))
    conn.on('gap', (g) => log.push(`gap:${g.expected}->${g.got}`))
    await settle()

    seqFrom(1)
    await rust.emit(conn.id, [st('connected'), msg('a')])
    seqFrom(4)
    await rust.emit(conn.id, [msg('b'), msg('c')])
    expect(log).toEqual(['frame:1', 'frame:2', 'gap:3->4', 'frame:4', 'frame:5'])
  })

  it('takes the first frame as the baseline (a late joiner of a shared upstream starts above 1)', async () => {
    const conn = await connect({ url: 'wss://example.test/feed' })
    const gaps: GapInfo[] = []
    const seqs: number[] = []
    conn.on('gap', (g) => gaps.push(g))
    conn.on('frame', (f) => seqs.push(f.seq))
    seqFrom(41)
    await rust.emit(conn.id, [st('connected'), msg('x')])
    await settle()
    expect(seqs).toEqual([41, 42])
    expect(gaps).toEqual([])
  })
})

describe('state store', () => {
  it('calls a subscriber at once and on each change, and stops after unsubscribe', async () => {
    const conn = await connect({ url: 'https://example.test/stream' })
    const seen: StateValue[] = []
    const unsubscribe = conn.state.subscribe((v) => seen.push(v))
    expect(seen).toEqual([{ state: 'connecting' }])

    // The store follows frames as they arrive, even with no on() handler attached.
    await rust.emit(conn.id, [
      st('connected', { transport: 'sse' }),
      st('reconnecting', { attempt: 1, delayMs: 1000, reason: 'stream ended' }),
    ])
    expect(seen).toEqual([
      { state: 'connecting' },
      { state: 'connected', transport: 'sse' },
      { state: 'reconnecting', attempt: 1, delayMs: 1000, reason: 'stream ended' },
    ])
    expect(conn.state.get()).toEqual({ state: 'reconnecting', attempt: 1, delayMs: 1000, reason: 'stream ended' })

    unsubscribe()
    await rust.emit(conn.id, [st('connected', { transport: 'sse' })])
    expect(seen).toHaveLength(3)
    expect(conn.state.get().state).toBe('connected')
  })

  it('keeps two subscriptions of the same function apart (Svelte contract)', async () => {
    const conn = await connect({ url: 'https://example.test/stream' })
    const calls: string[] = []
    const run = (v: StateValue) => calls.push(v.state)
    const off1 = conn.state.subscribe(run)
    conn.state.subscribe(run)
    off1()
    await rust.emit(conn.id, [st('connected')])
    expect(calls).toEqual(['connecting', 'connecting', 'connected'])
  })

  it('starts from the state that connect reports when joining a shared upstream', async () => {
    rust.handlers.connect = (a) => ({ id: a.id, state: 'connected', shared: true })
    const conn = await connect({ url: 'wss://example.test/feed' })
    expect(conn.shared).toBe(true)
    expect(conn.state.get()).toEqual({ state: 'connected' })
  })

  it('prefers a state frame received during connect over the snapshot in its answer', async () => {
    rust.handlers.connect = async (a) => {
      await rust.emit(String(a.id), [st('connecting'), st('connected', { transport: 'websocket' })])
      return { id: a.id, state: 'connecting', shared: false }
    }
    const conn = await connect({ url: 'wss://example.test/feed' })
    expect(conn.state.get()).toEqual({ state: 'connected', transport: 'websocket' })
  })
})

describe('send', () => {
  it('sends text as it is and binary as padded standard base64 with binary: true', async () => {
    const conn = await connect({ url: 'wss://example.test/feed' })
    const bytes = new Uint8Array([0, 1, 2, 250, 251, 252, 253, 254, 255])
    await conn.send('héllo')
    await conn.send(new Uint8Array([0, 1, 2]))
    await conn.send(bytes.buffer)
    await conn.send(new DataView(bytes.buffer, 3, 4))
    await conn.send(new Uint16Array([0x0201]))
    await conn.send(new Blob([new Uint8Array([104, 105])]))
    await conn.send(new Uint8Array([]))

    expect(rust.commands('send')).toEqual([
      { id: conn.id, data: 'héllo' },
      { id: conn.id, data: 'AAEC', binary: true },
      { id: conn.id, data: 'AAEC+vv8/f7/', binary: true },
      { id: conn.id, data: '+vv8/Q==', binary: true },
      { id: conn.id, data: 'AQI=', binary: true },
      { id: conn.id, data: 'aGk=', binary: true },
      { id: conn.id, data: '', binary: true },
    ])
  })

  it('sends a plain object or array as JSON typed application/json, and a content type the caller gives', async () => {
    const conn = await connect({ url: 'https://example.test/events', sendUrl: 'https://example.test/api/messages/send' })
    await conn.send({ type: 'NEW_MESSAGE', text: 'hi' })
    await conn.send([1, 'two'])
    await conn.send(Object.assign(Object.create(null) as object, { bare: true }))
    await conn.send('plain')
    await conn.send('<m/>', { contentType: 'application/xml' })
    await conn.send({ a: 1 }, { contentType: 'application/merge-patch+json' })
    await conn.send(new Blob(['{}'], { type: 'application/json' }))
    await conn.send(new Uint8Array([1]), { contentType: 'application/cbor' })

    expect(rust.commands('send')).toEqual([
      { id: conn.id, data: '{"type":"NEW_MESSAGE","text":"hi"}', contentType: 'application/json' },
      { id: conn.id, data: '[1,"two"]', contentType: 'application/json' },
      { id: conn.id, data: '{"bare":true}', contentType: 'application/json' },
      { id: conn.id, data: 'plain' },
      { id: conn.id, data: '<m/>', contentType: 'application/xml' },
      { id: conn.id, data: '{"a":1}', contentType: 'application/merge-patch+json' },
      { id: conn.id, data: 'e30=', binary: true, contentType: 'application/json' },
      { id: conn.id, data: 'AQ==', binary: true, contentType: 'application/cbor' },
    ])
  })

  it('refuses objects that are not plain or not JSON, and a content type that is not a string', async () => {
    const conn = await connect({ url: 'https://example.test/events', sendUrl: 'https://example.test/send' })
    await expect(conn.send(new Date() as never)).rejects.toThrow(TypeError)
    await expect(conn.send(new Map() as never)).rejects.toThrow(TypeError)
    await expect(conn.send({ n: 1n })).rejects.toThrow(TypeError)
    await expect(conn.send('x', { contentType: 1 as never })).rejects.toThrow(/contentType/)
    expect(rust.commands('send')).toEqual([])
  })

  it('rejects with the Rust message when the server refused a POST, and the next send still goes', async () => {
    const refusal = 'send failed: https://example.test/send answered HTTP 400 Bad Request; the message was not delivered'
    rust.handlers.send = (a) => {
      if (a.data === '{"bad":true}') throw refusal
      return { queued: false }
    }
    const conn = await connect({ url: 'https://example.test/events', sendUrl: 'https://example.test/send' })
    const bad = conn.send({ bad: true })
    const good = conn.send({ good: true })
    await expect(bad).rejects.toThrow(RealtimeError)
    await expect(bad).rejects.toThrow(refusal)
    await expect(good).resolves.toEqual({ queued: false })
  })

  it('returns what Rust answers (queued while reconnecting)', async () => {
    rust.handlers.send = () => ({ queued: true })
    const conn = await connect({ url: 'wss://example.test/feed' })
    await expect(conn.send('x')).resolves.toEqual({ queued: true })
  })

  it('keeps call order with one send in flight at a time, even when a Blob must be read first', async () => {
    let inFlight = 0
    let most = 0
    rust.handlers.send = async () => {
      inFlight++
      most = Math.max(most, inFlight)
      await settle(1)
      inFlight--
      return { queued: false }
    }
    const conn = await connect({ url: 'wss://example.test/feed' })
    await Promise.all([conn.send(new Blob(['first'])), conn.send('second'), conn.send('third')])
    expect(rust.commands('send').map((a) => a.data)).toEqual(['Zmlyc3Q=', 'second', 'third'])
    expect(most).toBe(1)
  })

  it('rejects with the Rust message when the queue is full, and the next send still goes', async () => {
    let n = 0
    rust.handlers.send = () => {
      if (n++ === 0) throw 'outbound queue full: 1000 messages; wait for the connection or raise queue.maxMessages'
      return { queued: false }
    }
    const conn = await connect({ url: 'wss://example.test/feed' })
    const first = conn.send('a')
    const second = conn.send('b')
    await expect(first).rejects.toThrow(/^outbound queue full/)
    await expect(first).rejects.toBeInstanceOf(RealtimeError)
    await expect(second).resolves.toEqual({ queued: false })
  })

  it('refuses what it cannot send', async () => {
    const conn = await connect({ url: 'wss://example.test/feed' })
    await expect(conn.send(42 as never)).rejects.toThrow(TypeError)
    expect(rust.commands('send')).toEqual([])
  })
})

describe('close', () => {
  it('invokes close, ends delivery, sets disconnected and drops every handler', async () => {
    const conn = await connect({ url: 'wss://example.test/feed' })
    const got: string[] = []
    const states: string[] = []
    conn.on('message', (f) => got.push(f.data))
    conn.state.subscribe((v) => states.push(v.state))
    await settle()
    await rust.emit(conn.id, [st('connected'), msg('before')])

    await conn.close(1000, 'done')
    expect(rust.commands('close')).toEqual([{ id: conn.id, code: 1000, reason: 'done' }])
    expect(rust.listeners(conn.id)).toBe(0)
    expect(conn.state.get()).toEqual({ state: 'disconnected' })
    expect(states).toEqual(['connecting', 'connected', 'disconnected'])

    const stray = vi.spyOn(console, 'warn').mockImplementation(() => {})
    await rust.emit(conn.id, [msg('after')])
    expect(got).toEqual(['before'])
    expect(stray).not.toHaveBeenCalled()
    expect(conn.on('message', () => {})).toBeTypeOf('function')
  })

  it('runs no further handler once a handler has closed the connection', async () => {
    const conn = await connect({ url: 'wss://example.test/feed' })
    const got: string[] = []
    conn.on('frame', (f) => {
      if (f.kind === 'message' && f.data === 'stop') void conn.close()
    })
    conn.on('message', (f) => got.push(f.data))
    await settle()
    await rust.emit(conn.id, [msg('a'), msg('stop'), msg('b')])
    await settle()
    expect(got).toEqual(['a'])
  })

  it('omits code and reason when not given', async () => {
    const conn = await connect({ url: 'wss://example.test/feed' })
    await conn.close()
    expect(rust.calls.find((c) => c.cmd === 'plugin:realtime|close')?.args).toStrictEqual({ id: conn.id })
  })

  it('ends delivery and sets disconnected even when the close command rejects, then rejects with its message', async () => {
    rust.handlers.close = () => {
      throw 'no connection with id x'
    }
    const conn = await connect({ url: 'wss://example.test/feed' })
    const got: string[] = []
    conn.on('message', (f) => got.push(f.data))
    await settle()

    await expect(conn.close()).rejects.toThrow('no connection with id x')
    expect(rust.listeners(conn.id)).toBe(0)
    expect(conn.state.get().state).toBe('disconnected')
    await rust.emit(conn.id, [msg('after')])
    expect(got).toEqual([])
  })

  it('is idempotent: a second close returns the same promise and invokes nothing more', async () => {
    const conn = await connect({ url: 'wss://example.test/feed' })
    const a = conn.close()
    const b = conn.close()
    expect(b).toBe(a)
    await a
    expect(rust.commands('close')).toHaveLength(1)
    expect(rust.order()).toEqual(['plugin:realtime|connect', 'plugin:realtime|close'])
  })

  it('lets sends made before close go out first, and refuses sends after it', async () => {
    const conn = await connect({ url: 'wss://example.test/feed' })
    const sent = conn.send(new Blob(['x']))
    const closed = conn.close()
    await expect(conn.send('late')).rejects.toThrow(/closed/)
    await Promise.all([sent, closed])
    expect(rust.order().filter((c) => c.startsWith('plugin:realtime|'))).toEqual([
      'plugin:realtime|connect',
      'plugin:realtime|send',
      'plugin:realtime|close',
    ])
  })

  it('ignores frames emitted while nobody has called on() yet and the connection closes', async () => {
    const conn = await connect({ url: 'wss://example.test/feed' })
    await rust.emit(conn.id, [msg('held')])
    await conn.close()
    const got: MessageFrame[] = []
    conn.on('message', (f) => got.push(f))
    await settle()
    expect(got).toEqual([])
  })
})

describe('reconnect and inspect', () => {
  it('invokes reconnect with the id', async () => {
    const conn = await connect({ url: 'wss://example.test/feed' })
    await conn.reconnect()
    expect(rust.commands('reconnect')).toEqual([{ id: conn.id }])
  })

  it("returns this connection's info", async () => {
    const conn = await connect({ url: 'wss://example.test/feed' })
    const got = await conn.inspect()
    expect(rust.commands('inspect')).toEqual([{ id: conn.id }])
    expect(got.id).toBe(conn.id)
    expect(got.framesIn).toBe(3)
  })

  it('lists every connection, or one by id, with the module-level inspect()', async () => {
    rust.handlers.inspect = (a) => (a.id === undefined ? [{ id: 'a' }, { id: 'b' }] : [{ id: a.id }])
    await expect(inspect()).resolves.toEqual([{ id: 'a' }, { id: 'b' }])
    await expect(inspect('b')).resolves.toEqual([{ id: 'b' }])
    expect(rust.commands('inspect')).toStrictEqual([{}, { id: 'b' }])
  })

  it('surfaces a rejected reconnect as a RealtimeError', async () => {
    rust.handlers.reconnect = () => {
      throw 'connection is not failed'
    }
    const conn = await connect({ url: 'wss://example.test/feed' })
    await expect(conn.reconnect()).rejects.toThrow(new RealtimeError('connection is not failed'))
  })
})

