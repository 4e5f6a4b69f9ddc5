// @vitest-environment jsdom
// useRealtime with React Testing Library in jsdom, against the fake Rust side: one connect under StrictMode,
// close on unmount, reconnect on new options, state, messages and errors as React state.

import { act, cleanup, render, renderHook, screen } from '@testing-library/react'
import { StrictMode, useEffect } from 'react'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'

import { RealtimeError } from '../index.js'
import { useRealtime } from '../react.js'
import type { ConnectOptions, Frame } from '../types.js'
import { err, FakeRust, msg, resetTauri, seqFrom, settle, st } from './helpers.js'

let rust: FakeRust

beforeEach(() => {
  rust = new FakeRust()
  seqFrom(1)
})
afterEach(async () => {
  cleanup()
  // The deferred close of what is still mounted, while the fake Rust side still answers.
  await settle()
  resetTauri()
})

const feed = { url: 'wss://example.test/feed' }

async function deliver(id: string, frames: Frame[]): Promise<void> {
  await act(async () => {
    await rust.emit(id, frames)
    await settle()
  })
}

/** Lets connect resolve and a deferred close run, inside act. */
const flush = () => act(() => settle())

describe('useRealtime', () => {
  it('opens one upstream under StrictMode, and closes it on unmount', async () => {
    const { result, unmount } = renderHook(() => useRealtime(feed), { wrapper: StrictMode })
    expect(result.current.state).toEqual({ state: 'connecting' })
    expect(result.current.connection).toBeNull()
    await flush()
    expect(rust.commands('connect')).toHaveLength(1)
    expect(rust.commands('close')).toEqual([])
    const id = rust.id()
    expect(result.current.connection?.id).toBe(id)

    unmount()
    await settle()
    expect(rust.commands('connect')).toHaveLength(1)
    expect(rust.commands('close')).toEqual([{ id }])
    expect(rust.listeners(id)).toBe(0)
  })

  it('gives state, the last message and errors as React state, one render per batch', async () => {
    let renders = 0
    const { result } = renderHook(() => {
      renders++
      return useRealtime(feed)
    })
    await flush()
    const id = rust.id()
    await deliver(id, [st('connected', { transport: 'websocket' }), msg('a'), msg('b')])
    expect(result.current.state).toEqual({ state: 'connected', transport: 'websocket' })
    expect(result.current.lastMessage?.data).toBe('b')
    expect(result.current.error).toBeNull()

    const before = renders
    await deliver(id, Array.from({ length: 50 }, (_, i) => msg(`m${i}`)))
    expect(result.current.lastMessage?.data).toBe('m49')
    expect(renders - before).toBe(1)

    await deliver(id, [err('HTTP 503 Service Unavailable', false), st('reconnecting', { attempt: 1, delayMs: 1000 })])
    expect(result.current.state.state).toBe('reconnecting')
    expect(result.current.error).toMatchObject({ kind: 'error', message: 'HTTP 503 Service Unavailable' })
    await deliver(id, [st('connected')])
    expect(result.current.error).toBeNull()
  })

  it('sends through the connection, waiting for connect when called before it resolves', async () => {
    const { result, unmount } = renderHook(() => useRealtime(feed))
    const first = result.current.send
    const sent = result.current.send('early')
    await flush()
    await expect(sent).resolves.toEqual({ queued: false })
    await act(() => result.current.send('later'))
    expect(result.current.send).toBe(first)
    expect(rust.commands('send')).toEqual([
      { id: rust.id(), data: 'early' },
      { id: rust.id(), data: 'later' },
    ])
    unmount()
    await expect(first('after')).rejects.toThrow(RealtimeError)
  })

  it('closes and reopens when the options change, and never shows the old connection for the new options', async () => {
    const { result, rerender } = renderHook((options: ConnectOptions) => useRealtime(options), {
      initialProps: feed,
      wrapper: StrictMode,
    })
    await flush()
    const old = rust.id(0)
    await deliver(old, [st('connected'), msg('old')])
    expect(result.current.lastMessage?.data).toBe('old')

    // Same options in a new object: nothing happens.
    rerender({ ...feed })
    await flush()
    expect(rust.commands('connect')).toHaveLength(1)

    rerender({ url: 'wss://example.test/other' })
    // The render with the new options already shows nothing of the old connection.
    expect(result.current).toMatchObject({ state: { state: 'connecting' }, lastMessage: null, connection: null })
    await flush()
    expect(rust.commands('connect').map((a) => (a.options as ConnectOptions).url)).toEqual([
      'wss://example.test/feed',
      'wss://example.test/other',
    ])
    expect(rust.commands('close')).toEqual([{ id: old }])
    expect(result.current.connection?.id).toBe(rust.id(1))
  })

  it('opens nothing for null options, and opens once they are given', async () => {
    const { result, rerender } = renderHook((options: ConnectOptions | null) => useRealtime(options), {
      initialProps: null as ConnectOptions | null,
    })
    await flush()
    expect(result.current.state).toEqual({ state: 'disconnected' })
    expect(rust.commands('connect')).toEqual([])
    await expect(result.current.send('x')).rejects.toThrow('no connection to send on')
    rerender(feed)
    await flush()
    expect(rust.commands('connect')).toHaveLength(1)
  })

  it('shows a rejected connect as failed with its RealtimeError', async () => {
    rust.handlers.connect = () => {
      throw 'url not allowed by the realtime scope: wss://example.test/feed'
    }
    const { result, unmount } = renderHook(() => useRealtime(feed))
    await flush()
    expect(result.current.state).toEqual({
      state: 'failed',
      reason: 'url not allowed by the realtime scope: wss://example.test/feed',
    })
    expect(result.current.error).toBeInstanceOf(RealtimeError)
    unmount()
    await settle()
    expect(rust.commands('close')).toEqual([])
  })

  it('closes a connection that was still opening when the component unmounted', async () => {
    let answer: (() => void) | undefined
    rust.handlers.connect = (a) =>
      new Promise((resolve) => {
        answer = () => resolve({ id: a.id, state: 'connecting', shared: false })
      })
    const { unmount } = renderHook(() => useRealtime(feed))
    await settle()
    unmount()
    await settle()
    expect(rust.commands('close')).toEqual([])
    answer!()
    await settle()
    expect(rust.commands('close')).toEqual([{ id: rust.id() }])
  })

  it('hands the frames sent before connect resolved to the hook and to handlers the app adds in effects', async () => {
    // Rust delivers as soon as it has the subscription, before its answer reaches the page.
    rust.handlers.connect = async (a) => {
      await rust.emit(String(a.id), [st('connected'), msg('{"type":"welcome","user":"ada"}')])
      return { id: a.id, state: 'connecting', shared: false }
    }
    const welcomed: string[] = []
    function Welcome() {
      const { lastMessage, connection } = useRealtime(feed)
      useEffect(() => connection?.handle({ welcome: (m) => welcomed.push(m.user) }), [connection])
      return <p>{lastMessage?.data ?? 'nothing yet'}</p>
    }
    render(
      <StrictMode>
        <Welcome />
      </StrictMode>,
    )
    // Connect resolves and the effects subscribe; then the held frames are handed out, a task later.
    await flush()
    await flush()
    expect(welcomed).toEqual(['ada'])
    expect(screen.getByText('{"type":"welcome","user":"ada"}')).toBeTruthy()
  })

  it('drives handle() from an effect: messages by type invalidate queries (README, "React")', async () => {
    const queryClient = { invalidateQueries: vi.fn(async (_filters: { queryKey: unknown[] }) => {}) }
    function Orders() {
      const { state, connection } = useRealtime(feed)
      useEffect(
        () =>
          connection?.handle({
            'order.updated': (m) => void queryClient.invalidateQueries({ queryKey: ['orders', m.id] }),
            'order.deleted': () => void queryClient.invalidateQueries({ queryKey: ['orders'] }),
          }),
        [connection],
      )
      return <p>{state.state}</p>
    }
    const { unmount } = render(
      <StrictMode>
        <Orders />
      </StrictMode>,
    )
    await flush()
    const id = rust.id()
    await deliver(id, [
      st('connected'),
      msg(JSON.stringify({ type: 'order.updated', id: 7 })),
      msg(JSON.stringify({ type: 'order.deleted', id: 8 })),
      msg(JSON.stringify({ type: 'other' })),
    ])
    expect(screen.getByText('connected')).toBeTruthy()
    // Once each: StrictMode's second effect run replaced the first registration, it did not add one.
    expect(queryClient.invalidateQueries.mock.calls).toEqual([[{ queryKey: ['orders', 7] }], [{ queryKey: ['orders'] }]])
    unmount()
    await settle()
    expect(rust.commands('close')).toEqual([{ id }])
  })
})
