import { afterEach, beforeEach, describe, expect, expectTypeOf, it, vi } from 'vitest'

import { connect } from '../index.js'
import type { ErrorFrame, MessageFrame } from '../types.js'
import { err, FakeRust, msg, resetTauri, seqFrom, settle, sse, st } from './helpers.js'

let rust: FakeRust

beforeEach(() => {
  rust = new FakeRust()
  seqFrom(1)
})
afterEach(() => resetTauri())

const json = (value: unknown) => msg(JSON.stringify(value))

describe('handle', () => {
  it('calls the handler named by the type field with the parsed object and the frame', async () => {
    const conn = await connect({ url: 'wss://example.test/feed' })
    const got: string[] = []
    conn.handle({
      notification: (m, f) => got.push(`notification ${m.text} #${f.seq}`),
      update: (m) => got.push(`update ${m.id}`),
      delete: (m) => got.push(`delete ${m.id}`),
    })
    await rust.emit(conn.id, [
      st('connected'),
      json({ type: 'update', id: 7 }),
      json({ type: 'notification', text: 'hi' }),
      json({ type: 'delete', id: 7 }),
    ])
    await settle()
    expect(got).toEqual(['update 7', 'notification hi #3', 'delete 7'])
  })

  it('dispatches by another field, SSE frames too, and takes numbers as names', async () => {
    const conn = await connect({ url: 'https://example.test/events' })
    const got: unknown[] = []
    conn.handle({ 2: (m) => got.push(m), ready: (m) => got.push(m.op) }, { field: 'op' })
    await rust.emit(conn.id, [sse('message', '{"op":2,"d":1}'), sse('x', '{"op":"ready"}'), json({ type: 'ready' })])
    await settle()
    // The last one has no `op`: an error event, as the error store shows.
    expect(got).toEqual([{ op: 2, d: 1 }, 'ready'])
    expect(conn.error.get()?.message).toMatch(/message 3 .*has no "op" field/)
  })

  it('parses each frame once for all registrations', async () => {
    const conn = await connect({ url: 'wss://example.test/feed' })
    const parse = vi.spyOn(JSON, 'parse')
    const a: number[] = []
    const b: number[] = []
    conn.handle({ tick: (m) => a.push(m.n) })
    conn.handle({ tick: (m) => b.push(m.n * 10) })
    conn.handle({ other: () => {} })
    await rust.emit(conn.id, [json({ type: 'tick', n: 1 }), json({ type: 'tick', n: 2 })])
    await settle()
    expect(a).toEqual([1, 2])
    expect(b).toEqual([10, 20])
    const parsedData = parse.mock.calls.filter(([text]) => typeof text === 'string' && text.includes('"tick"'))
    expect(parsedData).toHaveLength(2)
  })

  it('reaches nothing through __proto__, constructor or other inherited names', async () => {
    const conn = await connect({ url: 'wss://example.test/feed' })
    const fallback: unknown[] = []
    const hit: string[] = []
    conn.handle({ ok: () => hit.push('ok') }, { fallback: (m) => fallback.push(m) })
    await rust.emit(conn.id, [
      msg('{"type":"__proto__"}'),
      json({ type: 'constructor' }),
      json({ type: 'toString' }),
      json({ type: 'hasOwnProperty' }),
      json({ type: 'ok' }),
    ])
    await settle()
    expect(hit).toEqual(['ok'])
    expect(fallback).toEqual(['__proto__', 'constructor', 'toString', 'hasOwnProperty'].map((type) => ({ type })))
    // A handler named __proto__ in the object literal sets its prototype; it is no handler either.
    expect(Object.prototype.hasOwnProperty.call(Object.prototype, 'ok')).toBe(false)
  })

  it('does not read the type from the prototype of the parsed object', async () => {
    const conn = await connect({ url: 'wss://example.test/feed' })
    const errors: ErrorFrame[] = []
    const hit: string[] = []
    const fallback: unknown[] = []
    conn.on('error', (e) => errors.push(e))
    // A field named like a method of Object.prototype must not be found through it.
    conn.handle({ function: () => hit.push('function') }, { field: 'toString' })
    conn.handle({ function: () => hit.push('function') }, { field: 'valueOf', fallback: (m) => fallback.push(m) })
    await rust.emit(conn.id, [json({})])
    await settle()
    expect(hit).toEqual([])
    expect(fallback).toEqual([{}])
    expect(errors.map((e) => e.message)).toEqual([expect.stringContaining('it has no "toString" field')])
  })

  it('turns what cannot be dispatched into one error event per frame, never a throw', async () => {
    const conn = await connect({ url: 'wss://example.test/feed' })
    const errors: ErrorFrame[] = []
    const frames: number[] = []
    const after: string[] = []
    conn.on('error', (e) => errors.push(e))
    conn.on('frame', (f) => frames.push(f.seq))
    conn.handle({ a: () => {} })
    conn.handle({ b: () => {} })
    conn.on('message', (f) => after.push(f.data))
    await rust.emit(conn.id, [
      msg('not json'),
      json([1, 2]),
      json('text'),
      json(null),
      json({ kind: 'a' }),
      json({ type: null }),
      msg('AAEC', { binary: true }),
      json({ type: 'unknown' }),
    ])
    await settle()
    expect(errors.map((e) => [e.seq, e.fatal])).toEqual([
      [1, false],
      [2, false],
      [3, false],
      [4, false],
      [5, false],
      [6, false],
      [7, false],
    ])
    const reasons = errors.map((e) => e.message)
    expect(reasons[0]).toMatch(
      /^message 1 cannot be dispatched by handle\(\): it is not JSON \(.+\); pass handle\(\) a `fallback`/,
    )
    expect(reasons.slice(1)).toEqual([
      expect.stringContaining('it is not a JSON object'),
      expect.stringContaining('it is not a JSON object'),
      expect.stringContaining('it is not a JSON object'),
      expect.stringContaining('it has no "type" field'),
      expect.stringContaining('its "type" is neither a string nor a number'),
      expect.stringContaining('it is binary'),
    ])
    // Synthetic errors are not frames from Rust, and every message still reaches the other handlers.
    expect(frames).toEqual([1, 2, 3, 4, 5, 6, 7, 8])
    expect(after).toHaveLength(8)
    expect(conn.error.get()?.seq).toBe(7)
  })

  it('gives the fallback what no handler takes, with the parsed value or undefined', async () => {
    const conn = await connect({ url: 'wss://example.test/feed' })
    const errors: ErrorFrame[] = []
    const fallback: [unknown, number][] = []
    conn.on('error', (e) => errors.push(e))
    conn.handle({ a: () => {} }, { fallback: (m, f) => fallback.push([m, f.seq]) })
    await rust.emit(conn.id, [msg('not json'), json([1]), json({ type: 'b' }), msg('AA==', { binary: true })])
    await settle()
    expect(fallback).toEqual([
      [undefined, 1],
      [[1], 2],
      [{ type: 'b' }, 3],
      [undefined, 4],
    ])
    expect(errors).toEqual([])
  })

  it('keeps delivering when a handler throws, and stops after unsubscribe', async () => {
    const conn = await connect({ url: 'wss://example.test/feed' })
    const reported: unknown[] = []
    vi.spyOn(console, 'error').mockImplementation((e: unknown) => reported.push(e))
    const got: string[] = []
    const off = conn.handle({
      boom: () => {
        throw new Error('handler failed')
      },
      ok: (m) => got.push(`first ${m.n}`),
    })
    conn.handle({ boom: () => got.push('second boom'), ok: (m) => got.push(`second ${m.n}`) })
    await rust.emit(conn.id, [json({ type: 'boom' }), json({ type: 'ok', n: 1 })])
    await settle()
    expect(got).toEqual(['second boom', 'first 1', 'second 1'])
    expect(reported).toEqual([new Error('handler failed')])
    off()
    await rust.emit(conn.id, [json({ type: 'ok', n: 2 })])
    expect(got).toEqual(['second boom', 'first 1', 'second 1', 'second 2'])
  })

  it('refuses handlers that are not functions and options of the wrong type, at once', async () => {
    const conn = await connect({ url: 'wss://example.test/feed' })
    expect(() => conn.handle({ a: 'nope' as never })).toThrow('handle(): the handler for "a" is not a function')
    expect(() => conn.handle(null as never)).toThrow(TypeError)
    expect(() => conn.handle({}, { field: '' as never })).toThrow('`field` must be a non-empty string')
    expect(() => conn.handle({}, { fallback: 1 as never })).toThrow('`fallback` must be a function')
  })

  it('types each handler by its member of a union, and refuses unknown names', async () => {
    type Msg = { type: 'update'; id: number } | { type: 'note'; text: string }
    const conn = await connect({ url: 'wss://example.test/feed' })
    conn.handle<Msg>({
      update: (m) => expectTypeOf(m).toEqualTypeOf<{ type: 'update'; id: number }>(),
      note: (m) => expectTypeOf(m.text).toBeString(),
    })
    // @ts-expect-error: no member of Msg has type 'delete'
    conn.handle<Msg>({ delete: () => {} })
    conn.handle<{ op: 1; d: string }, 'op'>({ 1: (m) => expectTypeOf(m.d).toBeString() }, { field: 'op' })
    conn.handle({ any: (m: Record<string, unknown>, f: MessageFrame) => [m, f] })
  })
})

describe('error store', () => {
  it('holds the latest error frame, null at first and again once connected', async () => {
    const conn = await connect({ url: 'wss://example.test/feed' })
    const seen: (string | null)[] = []
    const off = conn.error.subscribe((e) => seen.push(e?.message ?? null))
    await rust.emit(conn.id, [st('connected'), err('HTTP 503', false), st('reconnecting'), err('refused', false)])
    expect(conn.error.get()).toEqual({ kind: 'error', seq: 4, message: 'refused', fatal: false })
    await rust.emit(conn.id, [st('connected')])
    off()
    await rust.emit(conn.id, [err('later', true)])
    expect(seen).toEqual([null, 'HTTP 503', 'refused', null])
    expect(conn.error.get()?.message).toBe('later')
  })
})

describe('messages store', () => {
  it('keeps the last N messages, oldest first, a new array each time', async () => {
    const conn = await connect({ url: 'wss://example.test/feed' })
    const last3 = conn.messages({ last: 3 })
    const arrays: (readonly MessageFrame[])[] = []
    const off = last3.subscribe((list) => arrays.push(list))
    await rust.emit(conn.id, [st('connected'), msg('a'), msg('b'), msg('c'), msg('d')])
    await settle()
    expect(last3.get().map((f) => f.data)).toEqual(['b', 'c', 'd'])
    expect(arrays.map((l) => l.map((f) => f.data).join(''))).toEqual(['', 'a', 'ab', 'abc', 'bcd'])
    expect(new Set(arrays).size).toBe(arrays.length)
    off()
    off()
    expect(arrays).toHaveLength(5)
  })

  it('records before its first subscriber, pauses when its last one leaves and resumes with the next', async () => {
    const conn = await connect({ url: 'wss://example.test/feed' })
    const list = conn.messages({ last: 10 })
    const data = () => list.get().map((f) => f.data)
    await rust.emit(conn.id, [msg('before mount')])
    await settle()
    expect(data()).toEqual(['before mount'])

    const a = list.subscribe(() => {})
    const b = list.subscribe(() => {})
    await rust.emit(conn.id, [msg('two watching')])
    a()
    await rust.emit(conn.id, [msg('one watching')])
    b()
    // Destroyed: its handler is gone, nothing more is recorded.
    await rust.emit(conn.id, [msg('nobody watching')])
    expect(data()).toEqual(['before mount', 'two watching', 'one watching'])

    const c = list.subscribe(() => {})
    await rust.emit(conn.id, [msg('watched again')])
    expect(data()).toEqual(['before mount', 'two watching', 'one watching', 'watched again'])
    c()
  })

  it('gets the frames held before the first on(), and keeps 100 by default', async () => {
    const conn = await connect({ url: 'wss://example.test/feed' })
    await rust.emit(
      conn.id,
      Array.from({ length: 120 }, (_, i) => msg(`m${i}`)),
    )
    const all = conn.messages()
    await settle()
    expect(all.get()).toHaveLength(100)
    expect(all.get()[0]!.data).toBe('m20')
  })

  it('stops recording once the connection closes', async () => {
    const conn = await connect({ url: 'wss://example.test/feed' })
    const list = conn.messages({ last: 5 })
    await rust.emit(conn.id, [msg('a')])
    await settle()
    await conn.close()
    expect(list.get().map((f) => f.data)).toEqual(['a'])
    expect(conn.messages().get()).toEqual([])
  })

  it('refuses a count out of range', async () => {
    const conn = await connect({ url: 'wss://example.test/feed' })
    for (const last of [0, -1, 1.5, 10_001, Number.NaN, '3' as never]) {
      expect(() => conn.messages({ last })).toThrow(/`last` must be an integer from 1 to 10000/)
    }
  })
})
