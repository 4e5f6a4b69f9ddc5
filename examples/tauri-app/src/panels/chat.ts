// The chat's delivery marks and its reconnect banner, beside the chat in main.ts.
//
// Delivered: the demo server echoes every text, and a WebSocket keeps order, so the first message still waiting
// whose text comes back is the one delivered. `send()` tells only whether a message went out now or waits in the
// plugin's queue (`{ queued: true }`); the echo is what says the server has it.

import type { Connection, StateValue } from 'tauri-plugin-realtime-api'

/** What an outgoing chat item says about itself: `sending`, `queued`, `sent`, `delivered` or `failed`. */
export type Delivery = 'sending' | 'queued' | 'sent' | 'delivered' | 'failed'

const LABELS: Record<Delivery, string> = {
  sending: 'sending…',
  queued: 'queued: waiting for the connection',
  sent: 'sent',
  delivered: 'delivered',
  failed: 'not sent',
}

export function mark(item: HTMLElement, delivery: Delivery): void {
  item.dataset.delivery = delivery
  item.classList.toggle('queued', delivery === 'queued')
  let label = item.querySelector<HTMLElement>('.delivery')
  if (!label) {
    label = document.createElement('span')
    label.className = 'delivery'
    item.append(label)
  }
  label.textContent = LABELS[delivery]
}

/** Marks outgoing items delivered when their echo arrives, oldest first. */
export class DeliveryTracker {
  private waiting: Array<{ text: string; item: HTMLElement }> = []
  private sent = 0

  /** Tracks `item` (the text `text`); returns its number, counted from 1 in the order typed. */
  add(text: string, item: HTMLElement): number {
    this.waiting.push({ text, item })
    this.sent += 1
    item.dataset.n = String(this.sent)
    mark(item, 'sending')
    return this.sent
  }

  /** The answer of `send()`: queued, or gone out now (unless its echo came first). */
  sendResult(item: HTMLElement, queued: boolean): void {
    if (item.dataset.delivery !== 'sending') return
    mark(item, queued ? 'queued' : 'sent')
  }

  failed(item: HTMLElement): void {
    this.waiting = this.waiting.filter((w) => w.item !== item)
    mark(item, 'failed')
  }

  /** A text from the server: the echo of the oldest waiting message with that text, if any. */
  echo(text: string): boolean {
    const index = this.waiting.findIndex((w) => w.text === text)
    if (index < 0) return false
    const [found] = this.waiting.splice(index, 1)
    if (found) mark(found.item, 'delivered')
    return true
  }
}

/**
 * The banner under the chat's badge: while `reconnecting`, a countdown to the next attempt (from the state's
 * `delayMs`); once `failed` (after `maxRetries`), why, and a Reconnect button that calls `conn.reconnect()`.
 */
export function reconnectBanner(
  conn: Connection,
  maxRetries: number,
  el: {
    banner: HTMLElement
    text: HTMLElement
    countdown: HTMLElement
    reconnect: HTMLButtonElement
    /** The line under the badge, which says the same as the banner while it shows. */
    detail: HTMLElement
  },
): void {
  let timer: ReturnType<typeof setInterval> | undefined
  const stopTimer = () => {
    if (timer !== undefined) clearInterval(timer)
    timer = undefined
  }

  el.reconnect.addEventListener('click', () => {
    el.reconnect.disabled = true
    el.text.textContent = 'Reconnecting…'
    conn.reconnect().catch((error: unknown) => {
      el.text.textContent = `Reconnect failed: ${error instanceof Error ? error.message : String(error)}`
      el.reconnect.disabled = false
    })
  })

  conn.state.subscribe((value: StateValue) => {
    stopTimer()
    el.banner.dataset.state = value.state
    el.detail.hidden = value.state === 'reconnecting' || value.state === 'failed'
    if (value.state === 'reconnecting') {
      el.banner.hidden = false
      el.reconnect.hidden = true
      const attempt = value.attempt ? `attempt ${value.attempt} of ${maxRetries}` : ''
      el.text.textContent = `Connection lost${value.reason ? ` (${value.reason})` : ''}. Reconnecting${attempt ? `, ${attempt},` : ''}`
      if (value.delayMs === undefined) {
        el.countdown.textContent = 'now'
        el.countdown.dataset.remainingMs = '0'
        return
      }
      const due = Date.now() + value.delayMs
      const tick = () => {
        const left = Math.max(0, due - Date.now())
        el.countdown.dataset.remainingMs = String(left)
        el.countdown.textContent = left > 0 ? `in ${(left / 1000).toFixed(1)} s` : 'now'
        if (left === 0) stopTimer()
      }
      tick()
      timer = setInterval(tick, 100)
    } else if (value.state === 'failed') {
      el.banner.hidden = false
      el.countdown.textContent = ''
      el.countdown.dataset.remainingMs = ''
      el.text.textContent = `Gave up${value.reason ? `: ${value.reason}` : ''}.`
      el.reconnect.hidden = false
      el.reconnect.disabled = false
    } else {
      el.banner.hidden = true
      el.reconnect.hidden = true
      el.countdown.textContent = ''
      el.countdown.dataset.remainingMs = ''
    }
  })
}
