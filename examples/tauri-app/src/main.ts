// The example page: a WebSocket chat and an SSE search summary, both opened in Rust by tauri-plugin-realtime and
// relayed here as Tauri events. The servers are the app's embedded demo server on 127.0.0.1 (see src-tauri/src/demo.rs).

import { invoke } from '@tauri-apps/api/core'
import { connect, decodeBinary, type Connection, type MessageFrame, type StateValue } from 'tauri-plugin-realtime-api'
import './style.css'

/** What the `demo_urls` command gives. */
interface DemoUrls {
  ws: string
  sse: string
}

/** Lists keep at most this many items: the summary stream ticks forever. */
const MAX_ITEMS = 200

function el<T extends HTMLElement = HTMLElement>(id: string): T {
  const found = document.getElementById(id)
  if (!found) throw new Error(`missing #${id}`)
  return found as T
}

const ui = {
  serverAddr: el('server-addr'),
  ws: {
    url: el('ws-url'),
    state: el('ws-state'),
    detail: el('ws-detail'),
    log: el<HTMLUListElement>('ws-log'),
    form: el<HTMLFormElement>('ws-form'),
    input: el<HTMLInputElement>('ws-input'),
    send: el<HTMLButtonElement>('ws-send'),
  },
  sse: {
    url: el('sse-url'),
    state: el('sse-state'),
    detail: el('sse-detail'),
    form: el<HTMLFormElement>('sse-form'),
    query: el<HTMLInputElement>('sse-query'),
    summary: el('sse-summary'),
    log: el<HTMLUListElement>('sse-log'),
  },
}

/** Shows a connection state: the badge says the state name, the line below says why and how. */
function showState(badge: HTMLElement, detail: HTMLElement, value: StateValue): void {
  badge.textContent = value.state
  badge.dataset.state = value.state
  const parts: string[] = []
  if (value.transport) parts.push(`via ${value.transport}`)
  if (value.attempt) parts.push(`attempt ${value.attempt}`)
  if (value.delayMs !== undefined) parts.push(`next try in ${(value.delayMs / 1000).toFixed(1)} s`)
  if (value.reason) parts.push(value.reason)
  detail.textContent = parts.join(' · ') || '\u00a0'
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
  const { state, detail, log, form, input, send } = ui.ws
  ui.ws.url.textContent = url
  let conn: Connection
  try {
    conn = await connect({ url })
  } catch (error) {
    showFailure(state, detail, error)
    return
  }
  conn.state.subscribe((value) => showState(state, detail, value))

  conn.on('message', (frame: MessageFrame) => {
    const text = frame.binary ? `[${decodeBinary(frame).length} bytes]` : frame.data
    append(log, 'in', [
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
    conn.send(text).then(
      (result) => {
        // Sent while the socket was down: the plugin holds it and sends it after the reconnect.
        if (result.queued) item.classList.add('queued')
      },
      (error: unknown) => {
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
  log.replaceChildren()

  let conn: Connection
  try {
    // A POST with headers and a JSON body: what the browser's EventSource cannot do.
    conn = await connect({
      url,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query }),
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
  unsubscribeSummaryState = conn.state.subscribe((value) => showState(state, detail, value))

  const words: string[] = []
  conn.on('message', (frame: MessageFrame) => {
    const type = frame.event ?? 'message'
    append(log, `event ${type}`, [
      ['type', type],
      ['id', frame.lastEventId ? `#${frame.lastEventId}` : ''],
      ['data', frame.data],
    ])
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

async function main(): Promise<void> {
  ui.ws.send.disabled = true
  let urls: DemoUrls
  try {
    urls = await invoke<DemoUrls>('demo_urls')
  } catch (error) {
    ui.serverAddr.textContent = 'unavailable'
    showFailure(ui.ws.state, ui.ws.detail, error)
    showFailure(ui.sse.state, ui.sse.detail, error)
    return
  }
  ui.serverAddr.textContent = new URL(urls.sse).host

  ui.sse.form.addEventListener('submit', (event) => {
    event.preventDefault()
    void startSummary(urls.sse, ui.sse.query.value.trim())
  })

  await Promise.all([startChat(urls.ws), startSummary(urls.sse, ui.sse.query.value.trim())])
}

void main()
