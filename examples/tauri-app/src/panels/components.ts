// Components and connections: the same feed (`/feed/stream`) shown by the three web-component patterns of the
// README's "Web components" section, with buttons that add and remove elements and live counts of what each
// pattern holds: subscriptions and upstreams in the plugin (`inspect()`), and streams open at the demo server.
//
// Each pattern asks for `/feed/stream?via=<pattern>` so that its upstream is its own and the server can count it
// (the server ignores the query otherwise).

import { invoke } from '@tauri-apps/api/core'
import { connect, inspect, type Connection, type ConnectionInfo, type MessageFrame } from 'tauri-plugin-realtime-api'
import { consumeConnection, defineRealtimeElements } from 'tauri-plugin-realtime-api/elements'

import { h, message, panel, type PanelUrls } from './connections-dom'

export type Pattern = 'own' | 'service' | 'provider'

const PATTERNS: Array<{ name: Pattern; title: string; how: string; tag: string }> = [
  { name: 'own', title: 'Own connection', how: 'connect() in connectedCallback, close() in disconnectedCallback', tag: 'feed-own' },
  { name: 'service', title: 'Shared service', how: 'subscribe() to one module-level connection', tag: 'feed-subscriber' },
  { name: 'provider', title: '<realtime-connection>', how: 'children take the provider’s connection', tag: 'feed-child' },
]

/** What `demo_room_feeds_status` gives (the part this panel reads). */
interface RoomFeedsStatus {
  feeds: Record<string, number>
}

/** How often the counts are refreshed. */
const COUNTS_EVERY_MS = 500

let feedStream = ''
const urlOf = (pattern: Pattern): string => `${feedStream}?via=${pattern}`

/** Shows a feed event in a component: the newest id and text, and how many it got. */
function show(host: HTMLElement, frame: MessageFrame): void {
  const count = Number(host.dataset.count ?? '0') + 1
  host.dataset.count = String(count)
  host.dataset.lastId = frame.lastEventId ?? ''
  host.replaceChildren(
    h('span', { class: 'feed-item-id' }, `#${frame.lastEventId ?? ''}`),
    h('span', { class: 'feed-item-text' }, frame.data),
    h('span', { class: 'feed-item-count' }, `${count} received`),
  )
}

function waiting(host: HTMLElement, text = 'waiting for the feed…'): void {
  host.dataset.count = '0'
  host.replaceChildren(h('span', { class: 'feed-item-text' }, text))
}

// Pattern 1: a component that owns its connection.
class FeedOwn extends HTMLElement {
  #connection: Promise<Connection> | undefined

  connectedCallback(): void {
    waiting(this)
    const opening = connect({ url: urlOf('own') })
    this.#connection = opening
    opening.then(
      (connection) => connection.on('notice', (frame: MessageFrame) => show(this, frame)),
      (error: unknown) => waiting(this, `failed: ${message(error)}`),
    )
  }

  disconnectedCallback(): void {
    // close() drops every handler; a connection still opening is closed as soon as it is open.
    this.#connection?.then((connection) => connection.close()).catch(() => undefined)
    this.#connection = undefined
  }
}

// Pattern 2: one connection for the whole page, opened by the first subscriber and closed after the last.
type Listener = (frame: MessageFrame) => void
const listeners = new Set<Listener>()
let serviceOpening: Promise<Connection> | undefined

function openService(): Promise<Connection> {
  serviceOpening ??= connect({ url: urlOf('service') }).then(
    (connection) => {
      connection.on('notice', (frame: MessageFrame) => {
        for (const listener of [...listeners]) listener(frame)
      })
      return connection
    },
    (error: unknown) => {
      serviceOpening = undefined // the next subscriber tries again
      throw error
    },
  )
  return serviceOpening
}

function subscribe(listener: Listener): () => void {
  listeners.add(listener)
  openService().catch(() => undefined)
  return () => {
    if (!listeners.delete(listener) || listeners.size > 0) return
    const closing = serviceOpening
    serviceOpening = undefined
    closing?.then((connection) => connection.close()).catch(() => undefined)
  }
}

class FeedSubscriber extends HTMLElement {
  #unsubscribe: (() => void) | undefined

  connectedCallback(): void {
    waiting(this)
    this.#unsubscribe = subscribe((frame) => show(this, frame))
  }

  disconnectedCallback(): void {
    this.#unsubscribe?.()
    this.#unsubscribe = undefined
  }
}

// Pattern 3: children of a <realtime-connection>, which opens one connection while it is in the document.
class FeedChild extends HTMLElement {
  #stop: (() => void) | undefined

  connectedCallback(): void {
    waiting(this)
    this.#stop = consumeConnection(this, (connection) =>
      connection.on('notice', (frame: MessageFrame) => show(this, frame)),
    )
  }

  disconnectedCallback(): void {
    this.#stop?.()
    this.#stop = undefined
  }
}

function define(): void {
  defineRealtimeElements()
  if (!customElements.get('feed-own')) customElements.define('feed-own', FeedOwn)
  if (!customElements.get('feed-subscriber')) customElements.define('feed-subscriber', FeedSubscriber)
  if (!customElements.get('feed-child')) customElements.define('feed-child', FeedChild)
}

/** The components panel, appended to `parent`. */
export function startComponents(parent: HTMLElement, urls: PanelUrls): void {
  feedStream = urls.feedStream
  define()

  const total = h('p', { id: 'cmp-total', class: 'detail' }, '\u00a0')
  const section = panel('components', 'Components and connections', [
    'three ways web components hold the same feed ',
    h('code', {}, new URL(urls.feedStream).pathname),
  ])
  section.classList.add('panel-wide')
  const columns = h('div', { class: 'cmp-columns' })
  section.append(total, columns)
  parent.append(section)

  const holders: Record<Pattern, HTMLElement> = {} as Record<Pattern, HTMLElement>
  const figures: Record<Pattern, HTMLElement> = {} as Record<Pattern, HTMLElement>
  for (const { name, title, how, tag } of PATTERNS) {
    const holder = h('div', { id: `cmp-${name}-elements`, class: 'cmp-elements' })
    const figure = h('p', { id: `cmp-${name}-counts`, class: 'cmp-counts' }, '\u00a0')
    const add = h('button', { id: `cmp-${name}-add`, type: 'button', class: 'secondary' }, 'Add')
    const remove = h('button', { id: `cmp-${name}-remove`, type: 'button', class: 'secondary' }, 'Remove')
    add.addEventListener('click', () => addElement(name, tag, holder))
    remove.addEventListener('click', () => removeElement(name, holder))
    columns.append(
      h(
        'div',
        { class: 'cmp-column', 'data-pattern': name },
        h('h3', { class: 'cmp-title' }, title),
        h('p', { class: 'cmp-how' }, how),
        h('div', { class: 'toolbar' }, add, remove),
        figure,
        holder,
      ),
    )
    holders[name] = holder
    figures[name] = figure
  }
  void watchCounts(holders, figures, total)
}

function addElement(pattern: Pattern, tag: string, holder: HTMLElement): void {
  const element = document.createElement(tag)
  element.className = 'feed-item'
  if (pattern !== 'provider') {
    holder.append(element)
    return
  }
  // The provider lives while it has children: with none left it leaves the document and its connection closes.
  let provider = holder.querySelector('realtime-connection')
  if (!provider) {
    provider = document.createElement('realtime-connection')
    provider.setAttribute('url', urlOf('provider'))
    holder.append(provider)
  }
  provider.append(element)
}

function removeElement(pattern: Pattern, holder: HTMLElement): void {
  const items = holder.querySelectorAll('.feed-item')
  const last = items[items.length - 1]
  if (!last) return
  if (pattern === 'provider' && items.length === 1) holder.querySelector('realtime-connection')?.remove()
  else last.remove()
}

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`

/** Refreshes every count from the page, `inspect()` and the demo server, one round at a time. */
async function watchCounts(
  holders: Record<Pattern, HTMLElement>,
  figures: Record<Pattern, HTMLElement>,
  total: HTMLElement,
): Promise<void> {
  let infos: ConnectionInfo[] = []
  let server: Record<string, number> | undefined
  try {
    infos = await inspect()
    server = (await invoke<RoomFeedsStatus>('demo_room_feeds_status')).feeds
  } catch (error) {
    total.textContent = `counts unavailable: ${message(error)}`
  }
  const sums = { upstreams: 0, subscribers: 0, streams: 0 }
  for (const { name } of PATTERNS) {
    const mine = infos.filter((info) => info.url === urlOf(name))
    const elements = holders[name].querySelectorAll('.feed-item').length
    // Identical options from one webview share one upstream, so every subscription here reports the same one.
    const upstreams = mine.length > 0 ? 1 : 0
    const subscribers = mine[0]?.subscribers ?? 0
    const streams = server?.[name] ?? 0
    sums.upstreams += upstreams
    sums.subscribers += subscribers
    sums.streams += streams
    const figure = figures[name]
    Object.assign(figure.dataset, {
      elements: String(elements),
      subscriptions: String(mine.length),
      upstreams: String(upstreams),
      subscribers: String(subscribers),
      server: String(streams),
    })
    figure.textContent = `${plural(elements, 'element')} · ${plural(upstreams, 'upstream')}, ${plural(subscribers, 'subscriber')} · server: ${plural(streams, 'stream')}`
  }
  if (server) {
    Object.assign(total.dataset, {
      upstreams: String(sums.upstreams),
      subscribers: String(sums.subscribers),
      server: String(sums.streams),
    })
    total.textContent = `plugin (inspect): ${plural(sums.upstreams, 'upstream')}, ${plural(sums.subscribers, 'subscriber')} · demo server: ${plural(sums.streams, 'feed stream')} open (an upstream lingers 3 s after its last subscriber)`
  }
  setTimeout(() => void watchCounts(holders, figures, total), COUNTS_EVERY_MS)
}
