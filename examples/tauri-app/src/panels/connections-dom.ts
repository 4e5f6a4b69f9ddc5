// Small DOM helpers of the panels that connections.ts starts: each builds its own section, so the page's
// index.html only holds the first three.

import type { StateValue } from 'tauri-plugin-realtime-api'

/** What the `demo_urls` command gives (the fields the panels use). */
export interface PanelUrls {
  ws: string
  feedStream: string
  status: string
}

/** The demo server's base URL, `http://127.0.0.1:PORT`. */
export const baseOf = (urls: PanelUrls): string => new URL(urls.status).origin

type Child = Node | string

/** `h('button', { id: 'x', class: 'secondary' }, 'Add')`: an element with attributes and children. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag)
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value)
  node.append(...children)
  return node
}

/** A panel section like the page's own: a head with a title, a subtitle and a state badge. */
export function panel(name: string, title: string, sub: Child[], badgeId?: string): HTMLElement {
  const head = h('header', { class: 'panel-head' }, h('div', {}, h('h2', {}, title), h('p', { class: 'panel-sub' }, ...sub)))
  if (badgeId) head.append(h('span', { id: badgeId, class: 'badge', 'data-state': 'disconnected' }, 'disconnected'))
  return h('section', { class: 'panel', 'data-panel': name }, head)
}

/** Shows a connection state as the page's other panels do: the badge says the state, `detail` why and how. */
export function showState(badge: HTMLElement, detail: HTMLElement, value: StateValue): void {
  badge.textContent = value.state
  badge.dataset.state = value.state
  const parts: string[] = []
  if (value.transport) parts.push(`via ${value.transport}`)
  if (value.attempt) parts.push(`attempt ${value.attempt}`)
  if (value.delayMs !== undefined) parts.push(`next try in ${(value.delayMs / 1000).toFixed(1)} s`)
  if (value.reason) parts.push(value.reason)
  detail.textContent = parts.join(' · ') || '\u00a0'
}

export const message = (error: unknown): string => (error instanceof Error ? error.message : String(error))

/** Lists keep at most this many items. */
const MAX_ITEMS = 200

/** Appends an item made of labelled spans, keeps the list bounded and scrolled to the newest item. */
export function append(list: HTMLUListElement, className: string, fields: Array<[string, string]>): HTMLLIElement {
  const item = h('li', { class: className })
  for (const [name, text] of fields) item.append(h('span', { class: name }, text))
  list.append(item)
  while (list.children.length > MAX_ITEMS) list.firstElementChild?.remove()
  list.scrollTop = list.scrollHeight
  return item
}
