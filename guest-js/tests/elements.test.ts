// @vitest-environment jsdom
// `<realtime-connection>` and `consumeConnection` in a DOM, over the fake Rust side: what the element invokes,
// what its children get, and that removing it leaves nothing behind while moving it keeps its connection.

import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import {
  CONNECTION_ELEMENT,
  consumeConnection,
  defineRealtimeElements,
  RealtimeConnectionElement,
  STATE_EVENT,
  type RealtimeStateDetail,
} from '../elements.js'
import type { Connection, Unsubscribe } from '../types.js'
import { FakeRust, msg, resetTauri, seqFrom, settle, st } from './helpers.js'

/** A consumer as an app would write it: the connection's messages as lines, its handler removed on cleanup. */
class ChatPanel extends HTMLElement {
  lines: string[] = []
  connection: Connection | null = null
  cleanups = 0
  private stop: Unsubscribe | undefined

  connectedCallback(): void {
    this.stop = consumeConnection(this, (connection) => {
      this.connection = connection
      const off = connection.on('message', (frame) => this.lines.push(frame.data))
      return () => {
        off()
        this.connection = null
        this.cleanups++
      }
    })
  }

  disconnectedCallback(): void {
    this.stop?.()
  }
}
customElements.define('chat-panel', ChatPanel)

let rust: FakeRust

beforeEach(() => {
  rust = new FakeRust()
  seqFrom(1)
})
afterEach(async () => {
  document.body.replaceChildren()
  await settle()
  resetTauri()
})

function provider(attributes: Record<string, string>, ...children: Node[]): RealtimeConnectionElement {
  const el = document.createElement(CONNECTION_ELEMENT) as RealtimeConnectionElement
  for (const [name, value] of Object.entries(attributes)) el.setAttribute(name, value)
  el.append(...children)
  return el
}

const panel = () => document.createElement('chat-panel') as ChatPanel

/** Every `realtime-state` event that reaches `target`, with the element it came from. */
function states(target: EventTarget): { from: EventTarget | null; detail: RealtimeStateDetail; composed: boolean }[] {
  const seen: { from: EventTarget | null; detail: RealtimeStateDetail; composed: boolean }[] = []
  target.addEventListener(STATE_EVENT, (e) => {
    const event = e as CustomEvent<RealtimeStateDetail>
    seen.push({ from: event.target, detail: event.detail, composed: event.composed })
  })
  return seen
}

describe('defining the element', () => {
  // First in the file: the registry is this file's, and nothing has defined the element yet.
  it('is not defined by the import, and children upgraded before it get the connection once it is', async () => {
    expect(customElements.get(CONNECTION_ELEMENT)).toBeUndefined()
    const chat = panel()
    document.body.append(provider({ url: 'wss://example.test/room' }, chat))
    await settle()
    expect(rust.commands('connect')).toEqual([])

    defineRealtimeElements()
    defineRealtimeElements() // again: harmless
    expect(customElements.get(CONNECTION_ELEMENT)).toBe(RealtimeConnectionElement)
    await settle()
    expect(rust.commands('connect')).toHaveLength(1)
    expect(chat.connection?.id).toBe(rust.id(0))
  })
})

describe('<realtime-connection>', () => {
  beforeEach(() => defineRealtimeElements())

  it('connects once with its attributes and options, and hands children the connection and its frames', async () => {
    const a = panel()
    const b = panel()
    const el = provider({ url: 'wss://example.test/room', protocols: 'chat.v2, chat.v1', share: 'room-1' }, a, b)
    el.options = { headers: { 'X-Client': 'desktop' }, url: 'wss://ignored.test/' }
    document.body.append(el)
    el.options = { ...el.options, heartbeat: false } // in the same task: still one connect
    await settle()

    expect(rust.commands('connect')).toEqual([
      {
        id: rust.id(0),
        options: {
          url: 'wss://example.test/room',
          headers: { 'X-Client': 'desktop' },
          heartbeat: false,
          protocols: ['chat.v2', 'chat.v1'],
          share: 'room-1',
        },
        ack: expect.anything(),
        route: 'direct',
      },
    ])
    expect(el.connection?.id).toBe(rust.id(0))
    expect(a.connection).toBe(el.connection)
    expect(b.connection).toBe(el.connection)
    expect(document.querySelector('chat-panel')?.closest(CONNECTION_ELEMENT)?.connection).toBe(el.connection)

    await rust.emit(rust.id(0), [st('connected'), msg('hello'), msg('again')])
    await settle()
    expect(a.lines).toEqual(['hello', 'again'])
    expect(b.lines).toEqual(['hello', 'again'])
  })

  it('reflects the state as an attribute and as bubbling, composed realtime-state events', async () => {
    const seen = states(document.body)
    const el = provider({ url: 'wss://example.test/room' })
    document.body.append(el)
    await settle()
    const id = rust.id(0)
    await rust.emit(id, st('connected', { transport: 'websocket' }))
    expect(el.getAttribute('state')).toBe('connected')
    await rust.emit(id, st('reconnecting', { attempt: 1, delayMs: 1000, reason: 'stream ended' }))
    expect(el.getAttribute('state')).toBe('reconnecting')

    expect(seen.map((s) => s.detail)).toEqual([
      { state: 'connecting' },
      { state: 'connected', transport: 'websocket' },
      { state: 'reconnecting', attempt: 1, delayMs: 1000, reason: 'stream ended' },
    ])
    expect(seen.every((s) => s.from === el && s.composed)).toBe(true)
    expect(el.stateValue).toEqual(seen[2]!.detail)
  })

  it('is failed with the reason when connect is refused, and retries on reconnect()', async () => {
    const refusal = 'url not allowed by the realtime scope: wss://denied.test/'
    rust.handlers.connect = () => {
      throw refusal
    }
    const seen = states(document.body)
    const chat = panel()
    const el = provider({ url: 'wss://denied.test/' }, chat)
    document.body.append(el)
    await settle()
    expect(el.getAttribute('state')).toBe('failed')
    expect(seen.at(-1)?.detail).toEqual({ state: 'failed', reason: refusal })
    expect(el.connection).toBeNull()
    expect(chat.connection).toBeNull()

    rust.handlers.connect = (a) => ({ id: a.id, state: 'connecting', shared: false })
    await el.reconnect()
    await settle()
    expect(rust.commands('connect')).toHaveLength(2)
    expect(chat.connection?.id).toBe(rust.id(1))
    expect(el.getAttribute('state')).toBe('connecting')
  })

  it('says that it needs a url, and connects once it has one', async () => {
    const seen = states(document.body)
    const el = provider({})
    document.body.append(el)
    await settle()
    expect(rust.commands('connect')).toEqual([])
    expect(el.getAttribute('state')).toBe('failed')
    expect(seen.at(-1)?.detail.reason).toMatch(/needs a url attribute/)

    el.setAttribute('url', 'https://example.test/stream')
    await settle()
    expect(rust.commands('connect').map((a) => a.options)).toEqual([{ url: 'https://example.test/stream' }])
  })

  it('reopens once when attributes change in one task, not when they are set to the same value', async () => {
    const chat = panel()
    const el = provider({ url: 'wss://example.test/a' }, chat)
    document.body.append(el)
    await settle()
    const first = rust.id(0)

    el.setAttribute('url', 'wss://example.test/a')
    await settle()
    expect(rust.commands('connect')).toHaveLength(1)

    el.setAttribute('url', 'wss://example.test/b')
    el.setAttribute('transport', 'websocket')
    el.setAttribute('share', 'false')
    await settle()
    expect(rust.commands('close')).toEqual([{ id: first }])
    expect(rust.commands('connect').map((a) => a.options)).toEqual([
      { url: 'wss://example.test/a' },
      { url: 'wss://example.test/b', transport: 'websocket', share: false },
    ])
    expect(chat.cleanups).toBe(1)
    expect(chat.connection?.id).toBe(rust.id(1))
    expect(rust.listeners(first)).toBe(0)
  })

  it('closes its connection once when removed, after its consumers let go, and says nothing more', async () => {
    const chat = panel()
    const el = provider({ url: 'wss://example.test/room' }, chat)
    document.body.append(el)
    await settle()
    const id = rust.id(0)
    await rust.emit(id, st('connected'))
    const seen = states(el)

    el.remove()
    await settle()
    expect(rust.commands('close')).toEqual([{ id }])
    expect(rust.listeners(id)).toBe(0)
    expect(chat.cleanups).toBe(1)
    expect(chat.connection).toBeNull()
    expect(el.connection).toBeNull()
    expect(el.getAttribute('state')).toBe('disconnected')
    expect(seen.map((s) => s.detail.state)).toEqual(['disconnected'])

    // Late frames for the closed subscription reach nobody, and change nothing.
    await rust.emit(id, [st('reconnecting', { attempt: 1 }), msg('late')])
    await settle()
    expect(chat.lines).toEqual([])
    expect(seen).toHaveLength(1)
    expect(rust.commands('close')).toHaveLength(1)
  })

  it('removes a removed child’s handlers and keeps serving the others', async () => {
    const a = panel()
    const b = panel()
    const el = provider({ url: 'wss://example.test/room' }, a, b)
    document.body.append(el)
    await settle()
    a.remove()
    await rust.emit(rust.id(0), msg('after'))
    await settle()
    expect(a.lines).toEqual([])
    expect(a.cleanups).toBe(1)
    expect(b.lines).toEqual(['after'])
    expect(rust.commands('close')).toEqual([])
  })

  it('closes a connection that connect gives only after the element was removed', async () => {
    let answer: (value: unknown) => void = () => {}
    rust.handlers.connect = (a) =>
      new Promise((resolve) => {
        answer = () => resolve({ id: a.id, state: 'connecting', shared: false })
      })
    const chat = panel()
    const el = provider({ url: 'wss://example.test/room' }, chat)
    document.body.append(el)
    await settle()
    expect(rust.commands('connect')).toHaveLength(1)

    el.remove()
    await settle()
    expect(rust.commands('close')).toEqual([])
    answer(undefined)
    await settle()
    expect(rust.commands('close')).toEqual([{ id: rust.id(0) }])
    expect(chat.connection).toBeNull()
    expect(chat.cleanups).toBe(0)
    expect(rust.listeners(rust.id(0))).toBe(0)
  })

  it('keeps its connection when moved, in one task or across awaits, and its children keep their frames', async () => {
    const left = document.createElement('div')
    const right = document.createElement('div')
    document.body.append(left, right)
    const chat = panel()
    const el = provider({ url: 'wss://example.test/room' }, chat)
    left.append(el)
    await settle()

    right.append(el) // a move within one task
    await settle()
    el.remove() // a framework that detaches, awaits, then inserts
    await Promise.resolve()
    await Promise.resolve()
    left.append(el)
    await settle()

    expect(rust.commands('connect')).toHaveLength(1)
    expect(rust.commands('close')).toEqual([])
    expect(el.getAttribute('state')).toBe('connecting')
    await rust.emit(rust.id(0), msg('still here'))
    await settle()
    // Once: the handler the panel had before each move was removed when it left.
    expect(chat.lines).toEqual(['still here'])
    expect(chat.connection?.id).toBe(rust.id(0))
  })

  it('opens one subscription per element for the same URL; sharing the upstream is the engine’s', async () => {
    const one = provider({ url: 'wss://example.test/room' })
    const two = provider({ url: 'wss://example.test/room' })
    document.body.append(one, two)
    await settle()
    const calls = rust.commands('connect')
    expect(calls).toHaveLength(2)
    expect(calls[0]!.options).toEqual({ url: 'wss://example.test/room' })
    expect(calls[1]!.options).toEqual(calls[0]!.options) // identical options, no `share: false`: Rust may share
    expect(calls[0]!.id).not.toBe(calls[1]!.id)

    one.remove()
    await settle()
    expect(rust.commands('close')).toEqual([{ id: calls[0]!.id }])
    expect(two.connection?.id).toBe(calls[1]!.id)
  })

  it('answers from the nearest provider, also to consumers in a shadow root', async () => {
    const inner = panel()
    const host = document.createElement('div')
    const shadowed = panel()
    host.attachShadow({ mode: 'open' }).append(shadowed)
    const outer = provider({ url: 'wss://example.test/outer' }, host, provider({ url: 'wss://example.test/inner' }, inner))
    document.body.append(outer)
    await settle()
    const byUrl = new Map(rust.commands('connect').map((a) => [(a.options as { url: string }).url, String(a.id)]))
    expect(shadowed.connection?.id).toBe(byUrl.get('wss://example.test/outer'))
    expect(inner.connection?.id).toBe(byUrl.get('wss://example.test/inner'))
  })
})

describe('consumeConnection', () => {
  beforeEach(() => defineRealtimeElements())

  it('says what to do when no provider answers', () => {
    const lone = document.createElement('div')
    document.body.append(lone)
    expect(() => consumeConnection(lone, () => {})).toThrow(/no <realtime-connection> answered for <div>: put it inside one/)
  })

  it('tells a consumer that is not an element of its own when the provider leaves, and gives it the next', async () => {
    const child = document.createElement('div')
    const el = provider({ url: 'wss://example.test/a' }, child)
    document.body.append(el)
    await settle()
    const events: string[] = []
    consumeConnection(child, (c) => {
      events.push(`use ${c.id}`)
      return () => events.push(`cleanup ${c.id}`)
    })
    el.remove()
    await settle()
    expect(events).toEqual([`use ${rust.id(0)}`, `cleanup ${rust.id(0)}`])
    document.body.append(el)
    await settle()
    expect(events).toEqual([`use ${rust.id(0)}`, `cleanup ${rust.id(0)}`, `use ${rust.id(1)}`])
  })

  it('stops at unsubscribe: the cleanup runs once and no later connection is given', async () => {
    const child = document.createElement('div')
    const el = provider({ url: 'wss://example.test/a' }, child)
    document.body.append(el)
    await settle()
    const given: string[] = []
    let cleanups = 0
    const stop = consumeConnection(child, (c) => {
      given.push(c.id)
      return () => cleanups++
    })
    expect(given).toEqual([rust.id(0)])
    stop()
    stop()
    el.setAttribute('url', 'wss://example.test/b')
    await settle()
    expect(rust.commands('connect')).toHaveLength(2)
    expect(given).toEqual([rust.id(0)])
    expect(cleanups).toBe(1)
  })
})
