// The example page: a WebSocket chat, an SSE search summary and a live feed with polling fallbacks, all opened in
// Rust by tauri-plugin-realtime and relayed here as scripts the webview evaluates. The server is the app's demo server on 127.0.0.1
// (see src-tauri/src/demo.rs).
//
// `index.html?view=chat` is the chat-only view of the second window: its chat joins the main window's upstream
// by an explicit share key (another webview never joins by identical options alone), which `#server-connections`
// shows from the server's side.

import { invoke } from '@tauri-apps/api/core'
import { connect, decodeBinary, type Connection, type MessageFrame } from 'tauri-plugin-realtime-api'
import { DeliveryTracker, reconnectBanner } from './panels/chat'
import { startControl, showControlStatus } from './panels/control'
import { startSession } from './panels/session'
import { startTopics, showTopicsStatus, type TopicSocketStatus } from './panels/topics'
import './style.css'
import { startConnectionPanels } from './panels/connections'
import { showState } from './panels/connections-dom'
import { SummaryHealth, summaryFallback } from './panels/search'

/** What the `demo_urls` command gives. */
interface DemoUrls {
  ws: string
  sse: string
  /** The feed as a finite SSE document, polled when streaming is refused. */
  feed: string
  /** The feed as an SSE stream. */
  feedStream: string
  status: string
  control: string
  /** The topics server (JSON messages with a `type`, subscriptions, application ping). */
  topics: string
  /** The server's base URL, for the other `/control/...` endpoints. */
  base: string
}

/** What the `demo_status` and `demo_set_streaming` commands give: the demo server's view. */
interface DemoStatus {
  streaming: boolean
  chatOpen: number
  chatAccepted: number
  feedStreams: number
  summaryStreams: number
  feedPolls: number
  refused: number
  feedLastId: number
  /** False while the server is stopped (the control panel). */
  listening: boolean
  serverStarts: number
  drops: number
  slowMs: number
  answerPings: boolean
  /** Texts `/chat` received, oldest first. */
  chatReceived: string[]
  /** Close codes clients sent, oldest first. */
  closeCodes: number[]
  topicSockets: TopicSocketStatus[]
  pingsAnswered: number
  pingsIgnored: number
}

/** `all` (the main window) or `chat` (the second window: chat only). */
const view = new URLSearchParams(location.search).get('view') === 'chat' ? 'chat' : 'all'
document.body.dataset.view = view

/** How often the page asks the demo server for its counters. */
const STATUS_EVERY_MS = 1000

/**
 * The chat's options. Both windows use exactly these and name the same share key, so they share one upstream:
 * across webviews only an explicit key shares, and only with identical options. A short maximum delay, because
 * the demo server can be told to refuse streaming, and the chat (which has no fallback) should be back soon after.
 */
const chatOptions = (url: string) => ({
  url,
  share: 'demo-chat',
  // After this many retries in a row without getting through, `failed` and the Reconnect button.
  reconnect: { maxDelayMs: 5000, maxRetries: CHAT_MAX_RETRIES },
})

/** About 25 to 32 s of a stopped server (1, 2, 4, then 5 s apart, less up to 20 % jitter), then `failed`. */
const CHAT_MAX_RETRIES = 8

/** Lists keep at most this many items: the summary stream ticks forever. */
const MAX_ITEMS = 200

function el<T extends HTMLElement = HTMLElement>(id: string): T {
  const found = document.getElementById(id)
  if (!found) throw new Error(`missing #${id}`)
  return found as T
}

const ui = {
  serverAddr: el('server-addr'),
  serverStreaming: el('server-streaming'),
  ws: {
    url: el('ws-url'),
    state: el('ws-state'),
    detail: el('ws-detail'),
    log: el<HTMLUListElement>('ws-log'),
    form: el<HTMLFormElement>('ws-form'),
    input: el<HTMLInputElement>('ws-input'),
    send: el<HTMLButtonElement>('ws-send'),
    connections: el('server-connections'),
    shared: el('ws-shared'),
    openWindow: el<HTMLButtonElement>('open-window'),
    closeWindow: el<HTMLButtonElement>('close-window'),
    banner: el('ws-banner'),
    bannerText: el('ws-banner-text'),
    countdown: el('ws-countdown'),
    reconnect: el<HTMLButtonElement>('ws-reconnect'),
  },
  sse: {
    url: el('sse-url'),
    state: el('sse-state'),
    detail: el('sse-detail'),
    form: el<HTMLFormElement>('sse-form'),
    query: el<HTMLInputElement>('sse-query'),
    summary: el('sse-summary'),
    health: el('sse-health'),
    log: el<HTMLUListElement>('sse-log'),
  },
  feed: {
    url: el('feed-url'),
    pollUrl: el('feed-poll-url'),
    state: el('feed-state'),
    detail: el('feed-detail'),
    toggle: el<HTMLButtonElement>('toggle-streaming'),
    counts: el('feed-counts'),
    log: el<HTMLUListElement>('feed-log'),
  },
}

function showFailure(badge: HTMLElement, detail: HTMLElement, error: unknown): void {
  showState(badge, detail, { state: 'failed', reason: error instanceof Error ? error.message : String(error) })
}

function time(): string {
  return new Date().toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' })
}

/** Appends an item made of labelled spans, keeps the list bounded and scrolled to the newest item. */
function append(list: HTMLUListElement, className: string, fields: Array<[string, string]>): HTMLLIElement {
  const item = document.createElement('li')
  item.className = className
  for (const [name, text] of fields) {
    const span = document.createElement('span')
    span.className = name
    span.textContent = text
    item.append(span)
  }
  list.append(item)
  while (list.children.length > MAX_ITEMS) list.firstElementChild?.remove()
  list.scrollTop = list.scrollHeight
  return item
}

// ------------------------------------------------------------------------------------------------------------
// Chat (WebSocket)
// ------------------------------------------------------------------------------------------------------------

async function startChat(url: string): Promise<void> {
  const { state, detail, log, form, input, send, shared } = ui.ws
  ui.ws.url.textContent = url
  let conn: Connection
  try {
    conn = await connect(chatOptions(url))
  } catch (error) {
    showFailure(state, detail, error)
    return
  }
  conn.state.subscribe((value) => showState(state, detail, value))
  reconnectBanner(conn, CHAT_MAX_RETRIES, {
    banner: ui.ws.banner,
    text: ui.ws.bannerText,
    countdown: ui.ws.countdown,
    reconnect: ui.ws.reconnect,
    detail,
  })
  const delivery = new DeliveryTracker()
  // `shared`: this page joined an upstream that was already open (another window's, or this page's own before a
  // reload, which lingers for 3 s).
  shared.dataset.shared = String(conn.shared)
  shared.textContent = conn.shared ? 'joined the shared connection' : 'opened the connection'

  conn.on('message', (frame: MessageFrame) => {
    const text = frame.binary ? `[${decodeBinary(frame).length} bytes]` : frame.data
    const echo = !frame.binary && delivery.echo(frame.data)
    append(log, echo ? 'in echo' : 'in', [
      ['who', 'server'],
      ['text', text],
      ['time', time()],
    ])
  })
  conn.on('close', (frame) => {
    append(log, 'note', [['text', `closed with code ${frame.code}${frame.reason ? `: ${frame.reason}` : ''}`]])
  })
  conn.on('error', (frame) => {
    append(log, 'note error', [['text', frame.message]])
  })

  form.addEventListener('submit', (event) => {
    event.preventDefault()
    const text = input.value.trim()
    if (!text) return
    input.value = ''
    const item = append(log, 'out', [
      ['who', 'you'],
      ['text', text],
      ['time', time()],
    ])
    delivery.add(text, item)
    conn.send(text).then(
      // Sent while the socket was down: the plugin holds it and sends it after the reconnect.
      (result) => delivery.sendResult(item, result.queued),
      (error: unknown) => {
        delivery.failed(item)
        item.classList.add('failed')
        append(log, 'note error', [['text', `not sent: ${error instanceof Error ? error.message : String(error)}`]])
      },
    )
    input.focus()
  })
  send.disabled = false
}

// ------------------------------------------------------------------------------------------------------------
// Search summary (SSE)
// ------------------------------------------------------------------------------------------------------------

let summaryConn: Connection | undefined
let unsubscribeSummaryState: (() => void) | undefined
/** Counts `startSummary` calls, so that a slow one cannot replace the stream of a later one. */
let summaryRun = 0
/** The summary's health line (src/panels/search.ts). */
const summaryHealth = new SummaryHealth(ui.sse.health)

/** Opens the summary stream for `query`, replacing the one that is open. */
async function startSummary(url: string, query: string): Promise<void> {
  const { state, detail, summary, log } = ui.sse
  ui.sse.url.textContent = url
  const run = ++summaryRun
  unsubscribeSummaryState?.()
  unsubscribeSummaryState = undefined
  const previous = summaryConn
  summaryConn = undefined
  if (previous) await previous.close().catch(() => undefined)
  if (run !== summaryRun) return

  summary.textContent = ''
  summary.dataset.done = 'false'
  // Which query and which run the panel shows: a test can tell a new run from the same one.
  summary.dataset.query = query
  summary.dataset.run = String(run)
  log.replaceChildren()
  summaryHealth.reset()

  let conn: Connection
  try {
    // A POST with headers and a JSON body: what the browser's EventSource cannot do.
    conn = await connect({
      url,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query }),
      // Back soon after the demo server allows streaming again (see the live feed's switch).
      reconnect: { maxDelayMs: 5000 },
      // While streaming is refused, GET the rest of the summary every 2 s, and try the stream every 5 s.
      fallback: summaryFallback(url, query),
    })
  } catch (error) {
    if (run === summaryRun) showFailure(state, detail, error)
    return
  }
  if (run !== summaryRun) {
    await conn.close().catch(() => undefined)
    return
  }
  summaryConn = conn
  unsubscribeSummaryState = conn.state.subscribe((value) => {
    showState(state, detail, value)
    summaryHealth.onState(value)
  })

  const words: string[] = []
  conn.on('message', (frame: MessageFrame) => {
    const type = frame.event ?? 'message'
    const transport = frame.transport === 'poll' ? 'poll' : 'sse'
    const item = append(log, `event ${type} via-${transport}`, [
      ['type', type],
      ['id', frame.lastEventId ? `#${frame.lastEventId}` : ''],
      ['data', frame.data],
    ])
    item.dataset.id = frame.lastEventId ?? ''
    item.dataset.transport = transport
    summaryHealth.onMessage(frame)
    if (type === 'summary') {
      words.push(frame.data)
      summary.textContent = words.join(' ')
    } else if (type === 'done') {
      summary.dataset.done = 'true'
    }
  })
  conn.on('error', (frame) => {
    append(log, 'note error', [['data', frame.message]])
  })
}

// ------------------------------------------------------------------------------------------------------------
// Live feed (SSE, polling when the server will not stream)
// ------------------------------------------------------------------------------------------------------------

async function startFeed(urls: DemoUrls): Promise<void> {
  const { state, detail, log, counts } = ui.feed
  ui.feed.url.textContent = urls.feedStream
  ui.feed.pollUrl.textContent = urls.feed
  let conn: Connection
  try {
    conn = await connect({
      url: urls.feedStream,
      // When the stream is refused, GET the feed document every 2 s (the default interval); only events newer
      // than the last id are relayed. Every 5 s (30 s by default) try the stream again.
      fallback: { pollUrl: urls.feed, probeIntervalMs: 5000 },
    })
  } catch (error) {
    showFailure(state, detail, error)
    return
  }
  conn.state.subscribe((value) => showState(state, detail, value))

  const via = { sse: 0, poll: 0 }
  conn.on('message', (frame: MessageFrame) => {
    const transport = frame.transport === 'poll' ? 'poll' : 'sse'
    via[transport] += 1
    const type = frame.event ?? 'message'
    const item = append(log, `event ${type} via-${transport}`, [
      ['type', type],
      ['id', frame.lastEventId ? `#${frame.lastEventId}` : ''],
      ['data', frame.data],
      ['via', transport === 'poll' ? 'polled' : 'streamed'],
    ])
    item.dataset.id = frame.lastEventId ?? ''
    item.dataset.transport = transport
    counts.textContent = `${via.sse} streamed · ${via.poll} polled`
  })
  conn.on('error', (frame) => {
    append(log, 'note error', [['data', frame.message]])
  })
}

// ------------------------------------------------------------------------------------------------------------
// The demo server's side: its counters, and the switch that makes it refuse streaming
// ------------------------------------------------------------------------------------------------------------

let streaming: boolean | undefined

function showStatus(status: DemoStatus): void {
  streaming = status.streaming
  const pill = ui.serverStreaming
  pill.dataset.streaming = String(status.streaming && status.listening !== false)
  pill.textContent = status.listening === false ? 'stopped' : status.streaming ? 'streaming' : 'refusing streams'
  showControlStatus(status)
  showTopicsStatus(status)

  const figure = ui.ws.connections
  figure.dataset.open = String(status.chatOpen)
  figure.dataset.accepted = String(status.chatAccepted)
  const plural = status.chatOpen === 1 ? '' : 's'
  figure.textContent = `${status.chatOpen} chat connection${plural} at the server (${status.chatAccepted} accepted)`

  const toggle = ui.feed.toggle
  toggle.dataset.streaming = String(status.streaming)
  toggle.textContent = status.streaming ? 'Refuse streaming' : 'Allow streaming'
  toggle.disabled = false
}

function showStatusError(error: unknown): void {
  ui.serverStreaming.dataset.streaming = 'unknown'
  ui.serverStreaming.textContent = 'status unavailable'
  ui.ws.connections.dataset.open = ''
  ui.ws.connections.textContent = `server status unavailable: ${error instanceof Error ? error.message : String(error)}`
}

/** Asks for the server's status every second, one request at a time. */
async function watchStatus(): Promise<void> {
  try {
    showStatus(await invoke<DemoStatus>('demo_status'))
  } catch (error) {
    showStatusError(error)
  }
  setTimeout(() => void watchStatus(), STATUS_EVERY_MS)
}

async function toggleStreaming(): Promise<void> {
  if (streaming !== undefined) await setStreaming(!streaming)
}

/** Sets the demo server's switch to what the caller asked for, not to the opposite of the last status seen:
 * a status answer that started before a switch can arrive after it. */
async function setStreaming(enabled: boolean): Promise<void> {
  const toggle = ui.feed.toggle
  toggle.disabled = true
  try {
    showStatus(await invoke<DemoStatus>('demo_set_streaming', { enabled }))
  } catch (error) {
    append(ui.feed.log, 'note error', [['data', `switch failed: ${error instanceof Error ? error.message : String(error)}`]])
  } finally {
    toggle.disabled = false
  }
}

// ------------------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  ui.ws.send.disabled = true
  let urls: DemoUrls
  try {
    urls = await invoke<DemoUrls>('demo_urls')
  } catch (error) {
    ui.serverAddr.textContent = 'unavailable'
    showFailure(ui.ws.state, ui.ws.detail, error)
    showFailure(ui.sse.state, ui.sse.detail, error)
    showFailure(ui.feed.state, ui.feed.detail, error)
    return
  }
  ui.serverAddr.textContent = new URL(urls.sse).host
  void watchStatus()

  ui.ws.openWindow.addEventListener('click', () => {
    invoke('open_second_window').catch((error: unknown) => {
      append(ui.ws.log, 'note error', [['text', `no second window: ${error instanceof Error ? error.message : String(error)}`]])
    })
  })
  ui.ws.closeWindow.addEventListener('click', () => void invoke('close_window'))

  if (view === 'chat') {
    document.title = 'Realtime Example: chat'
    await startChat(urls.ws)
    return
  }

  ui.sse.form.addEventListener('submit', (event) => {
    event.preventDefault()
    void startSummary(urls.sse, ui.sse.query.value.trim())
  })
  ui.feed.toggle.addEventListener('click', () => void toggleStreaming())
  startControl({ onStatus: showStatus, setStreaming })
  startSession(urls.base)
  // Components, the POST + SSE chat, the raw contract, the drop-in classes: src/panels/.
  startConnectionPanels(el('main-panels'), urls)

  await Promise.all([
    startChat(urls.ws),
    startSummary(urls.sse, ui.sse.query.value.trim()),
    startFeed(urls),
    startTopics(urls.topics),
  ])
}

void main()
