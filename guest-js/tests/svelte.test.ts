// @vitest-environment jsdom
// Real Svelte 5 components (guest-js/tests/svelte/), compiled by the Svelte compiler through vite-plugin-svelte,
// mounted in jsdom against the fake Rust side: the store pattern and the provider (context) pattern of the README.

import { flushSync, mount, unmount } from 'svelte'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { connect } from '../index.js'
import type { MessageFrame, Readable } from '../types.js'
import { err, FakeRust, msg, resetTauri, seqFrom, settle, st } from './helpers.js'
import App from './svelte/App.svelte'
import Feed from './svelte/Feed.svelte'

let rust: FakeRust
let target: HTMLElement

beforeEach(() => {
  rust = new FakeRust()
  seqFrom(1)
  target = document.createElement('div')
  document.body.append(target)
})
afterEach(() => {
  target.remove()
  resetTauri()
})

const text = (testId: string) => target.querySelector(`[data-testid="${testId}"]`)?.textContent ?? null
const items = () => [...target.querySelectorAll('[data-testid="messages"] li')].map((li) => li.textContent)

/** Wraps a store to count its live subscriptions. */
function counted<T>(store: Readable<T>): Readable<T> & { live: () => number } {
  let live = 0
  return {
    get: store.get,
    subscribe(run) {
      live++
      const off = store.subscribe(run)
      let done = false
      return () => {
        if (!done) live--
        done = true
        off()
      }
    },
    live: () => live,
  }
}

describe('store pattern', () => {
  it('updates the DOM as frames arrive, and unsubscribes every store on unmount', async () => {
    const conn = await connect({ url: 'wss://example.test/feed' })
    const state = counted(conn.state)
    const error = counted(conn.error)
    const messagesOf = conn.messages.bind(conn)
    const stores: ReturnType<typeof counted<readonly MessageFrame[]>>[] = []
    // The component reads the stores off the connection: hand it counting ones.
    const view = Object.assign(Object.create(conn) as typeof conn, {
      state,
      error,
      messages: (o?: { last?: number }) => {
        const s = counted(messagesOf(o))
        stores.push(s)
        return s
      },
    })

    const component = mount(Feed, { target, props: { connection: view } })
    flushSync()
    expect(text('status')).toBe('connecting')
    expect(items()).toEqual([])
    expect([state.live(), error.live(), stores.length, stores[0]?.live()]).toEqual([1, 1, 1, 1])

    await rust.emit(conn.id, [st('connected'), msg('one'), msg('two'), msg('three')])
    await settle()
    flushSync()
    expect(text('status')).toBe('connected')
    expect(items()).toEqual(['two', 'three'])
    expect(text('error')).toBeNull()

    await rust.emit(conn.id, [err('connection reset', false), st('reconnecting', { attempt: 2 })])
    flushSync()
    expect(text('status')).toBe('reconnecting (attempt 2)')
    expect(text('error')).toBe('connection reset')

    unmount(component)
    expect([state.live(), error.live(), stores[0]!.live()]).toEqual([0, 0, 0])
    expect(target.innerHTML).toBe('')
    // The messages store of the destroyed component records no more.
    await rust.emit(conn.id, [st('connected'), msg('after')])
    expect(stores[0]!.get().map((f) => f.data)).toEqual(['two', 'three'])
    expect(stores).toHaveLength(1)
    await conn.close()
  })
})

describe('provider pattern', () => {
  it('opens one connection for all its children, which read it from context', async () => {
    const component = mount(App, { target, props: { options: { url: 'wss://example.test/chat' } } })
    flushSync()
    expect(text('opening')).toBe('connecting…')
    await settle()
    flushSync()
    expect(rust.commands('connect')).toHaveLength(1)
    expect(text('status')).toBe('connecting')

    const id = rust.id()
    await rust.emit(id, [st('connected'), msg('hello'), msg('world')])
    await settle()
    flushSync()
    expect(text('status')).toBe('connected')
    expect(items()).toEqual(['hello', 'world'])

    // A child sends through the same connection.
    const input = target.querySelector<HTMLInputElement>('[data-testid="draft"]')!
    input.value = 'hi there'
    input.dispatchEvent(new Event('input', { bubbles: true }))
    target.querySelector('form')!.requestSubmit()
    await settle()
    expect(rust.commands('send')).toEqual([{ id, data: 'hi there' }])

    unmount(component)
    await settle()
    // onDestroy closed the connection: the close command went out and the page's receiver let it go.
    expect(rust.commands('close')).toEqual([{ id }])
    expect(rust.listeners(id)).toBe(0)
    expect(target.innerHTML).toBe('')
  })

  it('shows why when connect fails, and closes nothing', async () => {
    rust.handlers.connect = () => {
      throw 'url not allowed by the realtime scope: wss://example.test/chat'
    }
    const component = mount(App, { target, props: { options: { url: 'wss://example.test/chat' } } })
    await settle()
    flushSync()
    expect(text('failed')).toBe('url not allowed by the realtime scope: wss://example.test/chat')
    expect(text('status')).toBeNull()
    unmount(component)
    await settle()
    expect(rust.commands('close')).toEqual([])
  })
})
