// The Tauri backend's flow control: acknowledgements by frames or by bytes, never a rejection from `ack`, and
// none once the connection is closed.

import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { ACK_WINDOW, connect } from '../index.js'
import { FakeRust, msg, resetTauri, seqFrom, settle } from './helpers.js'

let rust: FakeRust

beforeEach(() => {
  rust = new FakeRust()
  seqFrom(1)
})
afterEach(() => resetTauri())

describe('acknowledgements', () => {
  it('come every quarter of the byte window too, for large frames', async () => {
    const conn = await connect({ url: 'wss://example.test/feed' })
    conn.on('message', () => {})
    await settle()
    const big = 'x'.repeat(ACK_WINDOW.bytes / 8 + 1)
    await rust.emit(conn.id, [msg(big)])
    await settle()
    expect(rust.commands('ack')).toEqual([])
    await rust.emit(conn.id, [msg(big)])
    await settle()
    expect(rust.commands('ack')).toEqual([{ id: conn.id, frames: 2 }])
  })

  it('that Rust refuses (the connection is gone) change nothing for the page', async () => {
    rust.handlers.ack = () => {
      throw 'unknown connection'
    }
    const conn = await connect({ url: 'wss://example.test/feed' })
    const got: string[] = []
    conn.on('message', (f) => got.push(f.data))
    await settle()
    const quarter = ACK_WINDOW.frames / 4
    await rust.emit(conn.id, Array.from({ length: quarter }, (_, i) => msg(`m${i}`)))
    await rust.emit(conn.id, [msg('after')])
    await settle()
    // A rejection left unhandled would fail this test.
    expect(rust.commands('ack')).toHaveLength(1)
    expect(got.at(-1)).toBe('after')
  })

  it('stop once the connection is closed', async () => {
    const conn = await connect({ url: 'wss://example.test/feed' })
    let seen = 0
    conn.on('message', () => {
      seen++
    })
    await settle()
    const quarter = ACK_WINDOW.frames / 4
    await rust.emit(conn.id, Array.from({ length: quarter - 1 }, (_, i) => msg(`m${i}`)))
    await conn.close()
    await rust.emit(conn.id, [msg('late')])
    await settle()
    expect(seen).toBe(quarter - 1)
    expect(rust.commands('ack')).toEqual([])
  })
})
