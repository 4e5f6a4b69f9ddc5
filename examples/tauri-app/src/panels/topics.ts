// Topics and message types: a WebSocket app server of the usual kind (the demo server's `/topics`), which speaks
// JSON with a `type`, keeps topic subscriptions per socket (a reconnect loses them) and answers an application
// heartbeat, `{"type":"ping"}` -> `{"type":"pong"}`. What the bindings give for it (README, "Topics and
// heartbeats" and "Message types"):
//
// - each subscription is an on-connect message (`setOnConnect`), which Rust writes again after every reconnect,
//   before anything queued; unsubscribing sends the server's own message and drops it (`removeOnConnect`);
// - `conn.handle({...})` dispatches each message by its `type`;
// - `heartbeat: { message, reply }` sends the application ping instead of a protocol ping, and reconnects when
//   no pong comes back in time. `deliverReplies: true` relays the pongs too, so this panel can show them.

import { connect, type Connection, type StateValue } from 'tauri-plugin-realtime-api'
import { showState } from './connections-dom'

/** What `/topics` sends. */
type Incoming =
  | { type: 'subscribed'; topic: string }
  | { type: 'unsubscribed'; topic: string }
  | { type: 'headline'; topic: string; n: number; title: string }
  | { type: 'price'; topic: string; n: number; symbol: string; value: number }
  | { type: 'reading'; topic: string; n: number; celsius: number }
  | { type: 'notice'; topic: string; n: number; text: string }
  | { type: 'pong' }
  | { type: 'error'; message: string }

/** One open `/topics` socket as the demo server's status shows it. */
export interface TopicSocketStatus {
  id: number
  topics: string[]
  subscribes: number
  unsubscribes: number
  pings: number
  published: number
}

/** The parts of the demo server's status this panel shows. */
export interface TopicsStatus {
  topicSockets?: TopicSocketStatus[]
  pingsAnswered?: number
  pingsIgnored?: number
  answerPings?: boolean
}

/** The application heartbeat: a ping every 2 s, and a pong within 2 s or the connection reconnects. */
export const HEARTBEAT = {
  pingIntervalMs: 2000,
  pongTimeoutMs: 2000,
  message: '{"type":"ping"}',
  reply: '{"type":"pong"}',
  deliverReplies: true,
}

const MAX_ITEMS = 60

function el<T extends HTMLElement = HTMLElement>(id: string): T {
  const found = document.getElementById(id)
  if (!found) throw new Error(`missing #${id}`)
  return found as T
}

const ui = {
  url: el('topics-url'),
  state: el('topics-state'),
  detail: el('topics-detail'),
  toggles: Array.from(document.querySelectorAll<HTMLButtonElement>('.topic-toggle')),
  subscribed: el('topics-subscribed'),
  server: el('topics-server'),
  heartbeat: el('topics-heartbeat'),
  counts: el<HTMLUListElement>('topics-counts'),
  log: el<HTMLUListElement>('topics-log'),
}

/** Topics the page wants, in the order subscribed; those the server confirmed since the last (re)connect. */
const wanted: string[] = []
const confirmed = new Set<string>()
const counts = new Map<string, number>()
let pongs = 0
let lastPong = 0
let lastState: StateValue = { state: 'connecting' }

function showSubscribed(): void {
  ui.subscribed.dataset.topics = wanted.join(',')
  ui.subscribed.dataset.confirmed = wanted.filter((t) => confirmed.has(t)).join(',')
  ui.subscribed.replaceChildren()
  if (wanted.length === 0) ui.subscribed.textContent = 'none'
  for (const topic of wanted) {
    const chip = document.createElement('span')
    chip.className = 'topic-chip'
    chip.dataset.confirmed = String(confirmed.has(topic))
    chip.textContent = confirmed.has(topic) ? topic : `${topic} (waiting)`
    ui.subscribed.append(chip)
  }
  for (const toggle of ui.toggles) {
    const topic = toggle.dataset.topic ?? ''
    toggle.setAttribute('aria-pressed', String(wanted.includes(topic)))
  }
}

function count(type: string): void {
  counts.set(type, (counts.get(type) ?? 0) + 1)
  let item = ui.counts.querySelector<HTMLLIElement>(`li[data-type="${CSS.escape(type)}"]`)
  if (!item) {
    item = document.createElement('li')
    item.dataset.type = type
    ui.counts.append(item)
  }
  item.dataset.count = String(counts.get(type))
  item.textContent = `${type} ${counts.get(type)}`
}

function log(type: string, topic: string, text: string): void {
  const item = document.createElement('li')
  item.className = `event ${type}`
  item.dataset.type = type
  const fields: Array<[string, string]> = [
    ['type', type],
    ['id', topic],
    ['data', text],
  ]
  for (const [name, value] of fields) {
    const span = document.createElement('span')
    span.className = name
    span.textContent = value
    item.append(span)
  }
  ui.log.append(item)
  while (ui.log.children.length > MAX_ITEMS) ui.log.firstElementChild?.remove()
  ui.log.scrollTop = ui.log.scrollHeight
}

function showHeartbeat(): void {
  const hb = ui.heartbeat
  hb.dataset.pongs = String(pongs)
  if (lastState.state === 'reconnecting' && lastState.reason?.includes('heartbeat')) {
    hb.dataset.health = 'missed'
    hb.textContent = `heartbeat: no pong within ${HEARTBEAT.pongTimeoutMs / 1000} s, reconnecting (${pongs} pongs so far)`
    return
  }
  if (pongs === 0) {
    hb.dataset.health = 'waiting'
    hb.textContent = 'heartbeat: waiting for the first pong'
    return
  }
  const ago = (Date.now() - lastPong) / 1000
  hb.dataset.health = ago * 1000 <= HEARTBEAT.pingIntervalMs + HEARTBEAT.pongTimeoutMs ? 'ok' : 'late'
  hb.textContent = `heartbeat: ${pongs} pong${pongs === 1 ? '' : 's'}, the last ${ago.toFixed(1)} s ago (a ping every ${HEARTBEAT.pingIntervalMs / 1000} s)`
}

/** The server's side, from the status the page polls: which topics each open socket holds. */
export function showTopicsStatus(status: TopicsStatus): void {
  const sockets = status.topicSockets ?? []
  ui.server.dataset.sockets = String(sockets.length)
  ui.server.dataset.topics = sockets.map((s) => s.topics.join(',')).join(';')
  const held = sockets.map((s) => `socket #${s.id}: ${s.topics.join(', ') || 'no topic'}`).join(' · ')
  ui.server.textContent = `server: ${held || 'no socket open'} · pings answered ${status.pingsAnswered ?? 0}, ignored ${status.pingsIgnored ?? 0}`
}

async function toggle(conn: Connection, topic: string): Promise<void> {
  const key = `topic:${topic}`
  if (wanted.includes(topic)) {
    wanted.splice(wanted.indexOf(topic), 1)
    confirmed.delete(topic)
    showSubscribed()
    // Leaving is the server's own message; then stop re-sending the subscription after reconnects.
    await conn.send(JSON.stringify({ type: 'unsubscribe', topic }))
    await conn.removeOnConnect(key)
  } else {
    wanted.push(topic)
    showSubscribed()
    // Written now if connected, and again right after every reconnect, before anything queued.
    await conn.setOnConnect(key, { type: 'subscribe', topic })
  }
}

export async function startTopics(url: string): Promise<void> {
  ui.url.textContent = url
  let conn: Connection
  try {
    conn = await connect({ url, heartbeat: HEARTBEAT, reconnect: { maxDelayMs: 3000 } })
  } catch (error) {
    ui.state.textContent = 'failed'
    ui.state.dataset.state = 'failed'
    ui.detail.textContent = error instanceof Error ? error.message : String(error)
    return
  }
  conn.state.subscribe((value) => {
    lastState = value
    showState(ui.state, ui.detail, value)
    // A new socket holds nothing until the on-connect messages are answered.
    if (value.state !== 'connected') {
      confirmed.clear()
      showSubscribed()
    }
    showHeartbeat()
  })

  conn.handle<Incoming>(
    {
      subscribed: (m) => {
        count(m.type)
        confirmed.add(m.topic)
        showSubscribed()
        log(m.type, m.topic, 'the server holds it')
      },
      unsubscribed: (m) => {
        count(m.type)
        log(m.type, m.topic, 'the server dropped it')
      },
      headline: (m) => {
        count(m.type)
        log(m.type, m.topic, m.title)
      },
      price: (m) => {
        count(m.type)
        log(m.type, m.topic, `${m.symbol} ${m.value}`)
      },
      reading: (m) => {
        count(m.type)
        log(m.type, m.topic, `${m.celsius} °C`)
      },
      notice: (m) => {
        count(m.type)
        log(m.type, m.topic, m.text)
      },
      pong: (m) => {
        count(m.type)
        pongs += 1
        lastPong = Date.now()
        showHeartbeat()
      },
      error: (m) => {
        count(m.type)
        log(m.type, '', m.message)
      },
    },
    { fallback: (m) => log('unknown', '', JSON.stringify(m) ?? 'not JSON') },
  )
  conn.on('error', (frame) => log('error', '', frame.message))

  for (const button of ui.toggles) {
    button.disabled = false
    button.addEventListener('click', () => {
      const topic = button.dataset.topic
      if (!topic) return
      toggle(conn, topic).catch((error: unknown) => {
        log('error', topic, error instanceof Error ? error.message : String(error))
      })
    })
  }
  setInterval(showHeartbeat, 250)
}
