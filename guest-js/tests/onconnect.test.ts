// `setOnConnect` / `removeOnConnect`: what the bindings invoke (text, bytes as base64, any other value as its
// JSON), in call order with `send()`, what they answer and how they fail. Outside Tauri, against a real server:
// `browser.test.ts`.

import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { connect, RealtimeError } from '../index.js'
import { FakeRust, resetTauri, settle } from './helpers.js'

let rust: FakeRust

describe('in Tauri', () => {
  beforeEach(() => {
    rust = new FakeRust()
    rust.handlers.set_on_connect = () => ({ connected: true })
    rust.handlers.remove_on_connect = () => ({ removed: true })
  })
  afterEach(() => resetTauri())

  it('sends text as is, bytes as base64 and any other value as its JSON text', async () => {
    const conn = await connect({ url: 'wss://example.test/feed' })
    await expect(conn.setOnConnect('auth', 'token t0k')).resolves.toEqual({ connected: true })
    await conn.setOnConnect('topic:prices', { type: 'subscribe', topic: 'prices' })
    await conn.setOnConnect('hello', new Uint8Array([0, 1, 2]))
    await conn.setOnConnect('list', ['a', 1])
    expect(rust.commands('set_on_connect')).toEqual([
      { id: conn.id, key: 'auth', data: 'token t0k' },
      { id: conn.id, key: 'topic:prices', data: '{"type":"subscribe","topic":"prices"}' },
      { id: conn.id, key: 'hello', data: 'AAEC', binary: true },
      { id: conn.id, key: 'list', data: '["a",1]' },
    ])
    await expect(conn.removeOnConnect('topic:prices')).resolves.toEqual({ removed: true })
    expect(rust.commands('remove_on_connect')).toEqual([{ id: conn.id, key: 'topic:prices' }])
  })

  it('keeps call order with send(), even when an earlier send is slow', async () => {
    let release: () => void = () => {}
    const slow = new Promise<void>((resolve) => {
      release = resolve
    })
    rust.handlers.send = async (a) => {
      if (a.data === 'first') await slow
      return { queued: false }
    }
    const conn = await connect({ url: 'wss://example.test/feed' })
    const first = conn.send('first')
    const set = conn.setOnConnect('topic', 'sub')
    const removed = conn.removeOnConnect('old')
    const last = conn.send('last')
    await settle()
    expect(rust.commands('set_on_connect')).toEqual([])
    release()
    await Promise.all([first, set, removed, last])
    const order = rust.order().filter((c) => /\|(send|set_on_connect|remove_on_connect)$/.test(c))
    expect(order).toEqual([
      'plugin:realtime|send',
      'plugin:realtime|set_on_connect',
      'plugin:realtime|remove_on_connect',
      'plugin:realtime|send',
    ])
  })

  it('rejects with what Rust says, and refuses what cannot be sent without a call', async () => {
    rust.handlers.set_on_connect = () => {
      throw 'on-connect messages are for WebSocket connections; this one streams server-sent events'
    }
    const conn = await connect({ url: 'https://example.test/feed' })
    const e = await conn.setOnConnect('topic', 'sub').catch((x: unknown) => x)
    expect(e).toBeInstanceOf(RealtimeError)
    expect((e as Error).message).toMatch(/for WebSocket connections/)
    const calls = rust.commands('set_on_connect').length
    await expect(conn.setOnConnect('fn', (() => 1) as unknown as string)).rejects.toThrow(TypeError)
    await expect(conn.setOnConnect(1 as unknown as string, 'x')).rejects.toThrow(TypeError)
    const cyclic: Record<string, unknown> = {}
    cyclic.self = cyclic
    await expect(conn.setOnConnect('cyclic', cyclic)).rejects.toThrow(/could not turn the data into JSON/)
    expect(rust.commands('set_on_connect')).toHaveLength(calls)
    // A failed call does not stop the ones after it.
    await expect(conn.send('after')).resolves.toEqual({ queued: false })
    await conn.close()
    await expect(conn.setOnConnect('topic', 'sub')).rejects.toThrow(/is closed/)
    await expect(conn.removeOnConnect('topic')).rejects.toThrow(/is closed/)
  })
})
