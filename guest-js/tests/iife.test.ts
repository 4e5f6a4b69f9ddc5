// @vitest-environment jsdom
// `api-iife.js`, the global API script Tauri injects with `withGlobalTauri: true`: evaluated in a page as Tauri
// evaluates it, a working `window.__TAURI__.realtime` beside the other entries. (That the committed file is a fresh
// build is `iife-build.test.ts`: esbuild does not run in jsdom.)

import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import committed from '../../api-iife.js?raw'
import type * as Api from '../index.js'
import { FakeRust, msg, resetTauri, seqFrom, settle, st } from './helpers.js'

const g = globalThis as { __TAURI__?: Record<string, unknown> }

/** Runs the script in the page's global scope, as an initialization script runs. */
const evaluate = () => (0, eval)(committed)

let rust: FakeRust

beforeEach(() => {
  rust = new FakeRust()
  seqFrom(1)
})
afterEach(() => {
  delete g.__TAURI__
  resetTauri()
})

describe('api-iife.js', () => {
  it('adds the bindings as window.__TAURI__.realtime, keeping the other plugins’ entries', async () => {
    const other = { open: () => 'the other plugin' }
    g.__TAURI__ = { opener: other }
    evaluate()

    const tauri = g.__TAURI__
    expect(tauri.opener).toBe(other)
    expect(Object.keys(tauri).sort()).toEqual(['opener', 'realtime'])
    const realtime = tauri.realtime as typeof Api
    expect(typeof realtime.connect).toBe('function')
    expect(typeof realtime.RealtimeWebSocket).toBe('function')

    // The bundled bindings work: they invoke the plugin and take frames through the page's receiver.
    const conn = await realtime.connect({ url: 'wss://example.test/room' })
    expect(rust.commands('connect')).toEqual([
      { id: conn.id, options: { url: 'wss://example.test/room' }, ack: realtime.ACK_WINDOW, route: 'direct' },
    ])
    const got: string[] = []
    conn.on('message', (f) => got.push(f.data))
    await rust.emit(conn.id, [st('connected'), msg('hello')])
    await settle()
    expect(got).toEqual(['hello'])
    expect(conn.state.get().state).toBe('connected')
  })

  it('does nothing without window.__TAURI__, and leaves a realtime entry that is already there', () => {
    evaluate()
    expect(g.__TAURI__).toBeUndefined()

    const first = { connect: () => 'first copy' }
    g.__TAURI__ = { realtime: first }
    evaluate()
    expect(g.__TAURI__.realtime).toBe(first)
  })
})
