// The compact batch encoding: the fixture's `wire` is what `crates/core/src/wire.rs` writes for its `frames`, and
// its `script` what `src/relay/receiver.rs` writes around it (Rust tests assert both byte for byte); here the
// bindings must expand it back, as the array literal Rust evaluates, and through a connection.

import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'

import { connect } from '../index.js'
import type { Frame, GapInfo } from '../types.js'
import { decodeBatch } from '../wire.js'
import fixture from './fixtures/batch.json'
import { FakeRust, resetTauri, settle } from './helpers.js'

const frames = fixture.frames as Frame[]

describe('decodeBatch', () => {
  it('expands the fixture written by the Rust encoder', () => {
    expect(fixture.wire.length).toBeLessThan(JSON.stringify(frames).length)
    expect(decodeBatch(JSON.parse(fixture.wire))).toEqual(frames)
  })

  it('gives every frame of a run the keys of a full frame, in the same order', () => {
    const [, first, second] = decodeBatch(JSON.parse(fixture.wire))
    expect(Object.keys(second!)).toEqual(Object.keys(first!))
  })

  it('refuses a string that follows no message frame, and anything but an array', () => {
    expect(() => decodeBatch(['a'])).toThrow(/element 0 is a string but does not follow a message frame/)
    expect(() => decodeBatch([{ kind: 'close', seq: 1, code: 1000, reason: '' }, 'a'])).toThrow(/element 1/)
    expect(() => decodeBatch({ kind: 'close' })).toThrow(/expected an array/)
    // A JSON text is not a batch: the direct route evaluates the array itself.
    expect(() => decodeBatch(fixture.wire)).toThrow(/expected an array/)
  })
})

describe('a connection fed compact batches', () => {
  let rust: FakeRust
  beforeEach(() => {
    rust = new FakeRust()
  })
  afterEach(() => resetTauri())

  it('hands out every frame of batches evaluated as Rust sends them, in order', async () => {
    const conn = await connect({ url: 'wss://example.test/feed' })
    const got: Frame[] = []
    conn.on('frame', (f) => got.push(f))
    await settle()
    rust.evaluate(conn.id, fixture.wire)
    rust.evaluate(conn.id, fixture.wire)
    await settle()
    expect(got).toEqual([...frames, ...frames])
  })

  it('takes the very script Rust writes for the fixture', async () => {
    rust.handlers.connect = (a) => ({ id: a.id, state: 'connecting', shared: false })
    const conn = await connect({ url: 'wss://example.test/feed' })
    const got: Frame[] = []
    conn.on('frame', (f) => got.push(f))
    await settle()
    ;(0, eval)(fixture.script.replace(JSON.stringify(fixture.id), JSON.stringify(conn.id)))
    expect(got).toEqual(frames)
  })

  it('ignores a batch for a connection the page does not hold', async () => {
    const conn = await connect({ url: 'wss://example.test/feed' })
    const got: Frame[] = []
    conn.on('frame', (f) => got.push(f))
    await settle()
    // As after a reload: Rust evaluates a batch addressed to a subscription of the page that was.
    ;(0, eval)(fixture.script)
    expect(got).toEqual([])
  })

  it('reports a malformed batch and shows the frames it held as a gap', async () => {
    const conn = await connect({ url: 'wss://example.test/feed' })
    const gaps: GapInfo[] = []
    const got: number[] = []
    conn.on('gap', (g) => gaps.push(g))
    conn.on('frame', (f) => got.push(f.seq))
    await settle()
    const reported = vi.fn()
    const original = globalThis.reportError
    globalThis.reportError = reported
    try {
      await rust.emit(conn.id, [{ kind: 'message', seq: 1, transport: 'websocket', data: 'a' }])
      rust.evaluate(conn.id, '["lost"]')
      await rust.emit(conn.id, [{ kind: 'message', seq: 3, transport: 'websocket', data: 'c' }])
      await settle()
    } finally {
      globalThis.reportError = original
    }
    expect(reported).toHaveBeenCalledTimes(1)
    expect(got).toEqual([1, 3])
    expect(gaps).toEqual([{ expected: 2, got: 3 }])
  })
})
