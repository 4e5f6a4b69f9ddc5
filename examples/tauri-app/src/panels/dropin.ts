// Drop-in classes: code written against the browser's `EventSource` and `WebSocket`, with only the constructor
// changed to `RealtimeEventSource` / `RealtimeWebSocket` (readyState, onopen, onmessage, addEventListener for
// named events, onclose with its code, send, close).

import { RealtimeEventSource, RealtimeWebSocket } from 'tauri-plugin-realtime-api'

import { append, h, panel, type PanelUrls } from './connections-dom'

const ES_STATES = ['CONNECTING', 'OPEN', 'CLOSED']
const WS_STATES = ['CONNECTING', 'OPEN', 'CLOSING', 'CLOSED']

export function startDropIn(parent: HTMLElement, urls: PanelUrls): void {
  const section = panel('dropin', 'Drop-in classes', [
    h('code', {}, 'new RealtimeEventSource(url)'),
    h('br'),
    h('code', {}, 'new RealtimeWebSocket(url)'),
  ])

  // EventSource: the feed's named `notice` events.
  const esState = h('span', { id: 'es-state', class: 'chip', 'data-ready': '' }, 'not open')
  const esOpen = h('button', { id: 'es-open', type: 'button', class: 'secondary' }, 'Open')
  const esClose = h('button', { id: 'es-close', type: 'button', class: 'secondary', disabled: '' }, 'Close')
  const esLog = h('ul', { id: 'es-log', class: 'log event-log dropin-log' })

  // WebSocket: the echo chat.
  const wsState = h('span', { id: 'dws-state', class: 'chip', 'data-ready': '' }, 'not open')
  const wsOpen = h('button', { id: 'dws-open', type: 'button', class: 'secondary' }, 'Open')
  const wsClose = h('button', { id: 'dws-close', type: 'button', class: 'secondary', disabled: '' }, 'Close')
  const wsLog = h('ul', { id: 'dws-log', class: 'log event-log dropin-log' })
  const wsInput = h('input', { id: 'dws-input', type: 'text', placeholder: 'ws.send(…)', 'aria-label': 'Message' })
  const wsSend = h('button', { id: 'dws-send', type: 'submit', disabled: '' }, 'Send')
  const wsForm = h('form', { id: 'dws-form', class: 'composer', autocomplete: 'off' }, wsInput, wsSend)

  section.append(
    h('h3', { class: 'log-title' }, 'EventSource'),
    h('div', { class: 'toolbar' }, esOpen, esClose, esState),
    esLog,
    h('h3', { class: 'log-title' }, 'WebSocket'),
    h('div', { class: 'toolbar' }, wsOpen, wsClose, wsState),
    wsLog,
    wsForm,
  )
  parent.append(section)

  const ready = (chip: HTMLElement, names: string[], value: number): void => {
    chip.dataset.ready = names[value] ?? String(value)
    chip.textContent = `readyState ${value} (${names[value] ?? '?'})`
  }

  let es: RealtimeEventSource | undefined
  esOpen.addEventListener('click', () => {
    esLog.replaceChildren()
    // What was `new EventSource(url)`.
    const source = new RealtimeEventSource(`${urls.feedStream}?via=eventsource`)
    es = source
    ready(esState, ES_STATES, source.readyState)
    source.onopen = () => ready(esState, ES_STATES, source.readyState)
    source.onerror = () => ready(esState, ES_STATES, source.readyState)
    source.addEventListener('notice', (event) => {
      const e = event as MessageEvent<string>
      append(esLog, 'event notice', [
        ['type', e.type],
        ['id', `#${e.lastEventId}`],
        ['data', e.data],
      ]).dataset.id = e.lastEventId
    })
    esOpen.disabled = true
    esClose.disabled = false
  })
  esClose.addEventListener('click', () => {
    es?.close()
    if (es) ready(esState, ES_STATES, es.readyState)
    es = undefined
    esOpen.disabled = false
    esClose.disabled = true
  })

  let ws: RealtimeWebSocket | undefined
  wsOpen.addEventListener('click', () => {
    wsLog.replaceChildren()
    // What was `new WebSocket(url)`.
    const socket = new RealtimeWebSocket(urls.ws)
    ws = socket
    ready(wsState, WS_STATES, socket.readyState)
    socket.onopen = () => {
      ready(wsState, WS_STATES, socket.readyState)
      wsSend.disabled = false
    }
    socket.onmessage = (event) => {
      append(wsLog, 'event message', [
        ['type', 'message'],
        ['data', String(event.data)],
      ])
    }
    socket.onclose = (event) => {
      ready(wsState, WS_STATES, socket.readyState)
      append(wsLog, 'event close', [
        ['type', 'close'],
        ['data', `code ${event.code}`],
      ])
      wsSend.disabled = true
    }
    wsOpen.disabled = true
    wsClose.disabled = false
  })
  wsClose.addEventListener('click', () => {
    ws?.close(1000, 'done')
    if (ws) ready(wsState, WS_STATES, ws.readyState)
    ws = undefined
    wsOpen.disabled = false
    wsClose.disabled = true
  })
  wsForm.addEventListener('submit', (event) => {
    event.preventDefault()
    const text = wsInput.value.trim()
    if (!text || !ws) return
    wsInput.value = ''
    ws.send(text)
  })
}
