// POST + SSE chat (the README's "POST + SSE" section): typed events (`WELCOME`, `NEW_MESSAGE`) arrive on one SSE
// stream, and each message goes out as a POST through the plugin (`sendUrl`, `send(object)`). The demo server's
// room can be restarted (its streams end and it answers 503 for 3 s): the stream resumes after its
// `Last-Event-ID`, the POSTs are retried with the same `Idempotency-Key`, and the room stores each message once.

import { invoke } from '@tauri-apps/api/core'
import { connect, type Connection, type MessageFrame } from 'tauri-plugin-realtime-api'

import { append, baseOf, h, message, panel, showState, type PanelUrls } from './connections-dom'

/** A `NEW_MESSAGE` event's data. */
interface RoomMessage {
  id: number
  author: string
  text: string
  clientId?: string
}

/** The room part of the `demo_room_feeds_status` command's answer. */
interface RoomCounts {
  posts: number
  replays: number
  refused: number
  streams: number
  restarts: number
  down: boolean
  stored: number
}

const COUNTS_EVERY_MS = 1000

export function startRoom(parent: HTMLElement, urls: PanelUrls): void {
  const base = baseOf(urls)
  const eventsUrl = `${base}/room/events`
  const sendUrl = `${base}/room/messages`

  const detail = h('p', { id: 'room-detail', class: 'detail' }, '\u00a0')
  const restart = h('button', { id: 'room-restart', type: 'button', class: 'secondary' }, 'Restart the room server')
  const counts = h('span', { id: 'room-server', class: 'figure' }, '\u00a0')
  const log = h('ul', { id: 'room-log', class: 'log chat-log', 'aria-live': 'polite' })
  const name = h('input', { id: 'room-name', type: 'text', value: 'Ada', 'aria-label': 'Your name' })
  const join = h('button', { id: 'room-join', type: 'submit' }, 'Join')
  const joinForm = h('form', { id: 'room-join-form', class: 'composer', autocomplete: 'off' }, name, join)
  const input = h('input', { id: 'room-input', type: 'text', placeholder: 'A message, POSTed', 'aria-label': 'Message' })
  const send = h('button', { id: 'room-send', type: 'submit' }, 'Send')
  const form = h('form', { id: 'room-form', class: 'composer', autocomplete: 'off', hidden: '' }, input, send)

  const section = panel(
    'room',
    'POST + SSE chat',
    ['SSE ', h('code', {}, '/room/events'), ' · POST ', h('code', {}, '/room/messages')],
    'room-state',
  )
  section.append(detail, h('div', { class: 'toolbar' }, counts, h('span', { class: 'spacer' }), restart), log, joinForm, form)
  parent.append(section)

  restart.addEventListener('click', () => {
    restart.disabled = true
    invoke<RoomCounts>('demo_room_restart')
      .then(showCounts, (error: unknown) => append(log, 'note error', [['text', `restart failed: ${message(error)}`]]))
      .finally(() => {
        restart.disabled = false
      })
  })

  function showCounts(room: RoomCounts): void {
    Object.assign(counts.dataset, {
      stored: String(room.stored),
      posts: String(room.posts),
      refused: String(room.refused),
      replays: String(room.replays),
    })
    const down = room.down ? ' · restarting' : ''
    counts.textContent = `server: ${room.stored} stored · ${room.posts} POSTs (${room.refused} refused, ${room.replays} replayed)${down}`
  }

  const watchCounts = async (): Promise<void> => {
    try {
      showCounts((await invoke<{ room: RoomCounts }>('demo_room_feeds_status')).room)
    } catch (error) {
      counts.textContent = `server counts unavailable: ${message(error)}`
    }
    setTimeout(() => void watchCounts(), COUNTS_EVERY_MS)
  }
  void watchCounts()

  joinForm.addEventListener('submit', (event) => {
    event.preventDefault()
    const author = name.value.trim() || 'Ada'
    join.disabled = true
    connect({
      url: eventsUrl,
      sendUrl,
      // Back soon after a restart; POSTs refused meanwhile are retried with the same backoff.
      reconnect: { initialDelayMs: 500, maxDelayMs: 2000 },
    }).then(
      (chat) => joined(chat, author),
      (error: unknown) => {
        join.disabled = false
        showState(badge(), detail, { state: 'failed', reason: message(error) })
      },
    )
  })

  /**
   * Puts a stored message in the server's order: before any later one and before our own still being sent
   * (those wait at the bottom until the server has stored them).
   */
  function place(item: HTMLLIElement, id: number): void {
    for (const other of log.querySelectorAll<HTMLLIElement>('li[data-id], li[data-client-id]')) {
      if (other === item) continue
      const later = other.dataset.id ? Number(other.dataset.id) > id : true
      if (later) {
        if (other !== item.nextElementSibling) other.before(item)
        return
      }
    }
    if (item !== log.lastElementChild) log.append(item)
  }

  const badge = (): HTMLElement => section.querySelector<HTMLElement>('#room-state') as HTMLElement

  function joined(chat: Connection, author: string): void {
    joinForm.hidden = true
    form.hidden = false
    input.focus()
    chat.state.subscribe((value) => showState(badge(), detail, value))
    chat.on('WELCOME', (frame: MessageFrame) => {
      const { messages } = JSON.parse(frame.data) as { messages: number }
      append(log, 'note', [['text', `stream open: the room holds ${messages} message${messages === 1 ? '' : 's'}`]])
    })
    chat.on('NEW_MESSAGE', (frame: MessageFrame) => {
      const msg = JSON.parse(frame.data) as RoomMessage
      // Our own message, shown while it was being sent: the event confirms it in place. A second event for it
      // would be listed again, so a double would show.
      const pending = msg.clientId
        ? log.querySelector<HTMLLIElement>(`li[data-client-id="${CSS.escape(msg.clientId)}"]:not([data-id])`)
        : null
      const item =
        pending ??
        append(log, msg.author === author ? 'out' : 'in', [
          ['who', msg.author],
          ['text', msg.text],
          ['time', ''],
        ])
      item.dataset.id = String(msg.id)
      place(item, msg.id)
      item.classList.remove('queued')
      item.classList.add('delivered')
      const status = item.querySelector('.time')
      if (status) status.textContent = `#${msg.id}`
    })
    chat.on('error', (frame) => {
      append(log, 'note error', [['text', frame.message]])
    })

    form.addEventListener('submit', (event) => {
      event.preventDefault()
      const text = input.value.trim()
      if (!text) return
      input.value = ''
      const clientId = crypto.randomUUID()
      const item = append(log, 'out queued', [
        ['who', author],
        ['text', text],
        ['time', 'sending…'],
      ])
      item.dataset.clientId = clientId
      // One POST of {"author","text","clientId"} as application/json; it resolves once the server took it,
      // after retries if the room was restarting.
      chat.send({ author, text, clientId }).then(
        () => {
          item.classList.add('accepted')
          const status = item.querySelector('.time')
          if (status && !item.dataset.id) status.textContent = 'sent'
        },
        (error: unknown) => {
          item.classList.add('failed')
          append(log, 'note error', [['text', `not sent: ${message(error)}`]])
        },
      )
    })
  }
}
