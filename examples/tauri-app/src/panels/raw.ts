// The raw contract (the README's "Events" section): what a Tauri app without the bindings does. It listens to
// `realtime://<id>` first, then invokes `plugin:realtime|connect` with that id (no `route`: the event route), and
// sends and closes with `plugin:realtime|send` and `plugin:realtime|close`. Every frame is listed as it came.

import { invoke } from '@tauri-apps/api/core'
import { listen, type UnlistenFn } from '@tauri-apps/api/event'
import type { Frame } from 'tauri-plugin-realtime-api'

import { append, h, message, panel, showState, type PanelUrls } from './connections-dom'

function describe(frame: Frame): string {
  switch (frame.kind) {
    case 'state':
      return [frame.state, frame.transport, frame.reason].filter(Boolean).join(' · ')
    case 'message':
      return frame.data
    case 'close':
      return `code ${frame.code}${frame.reason ? `: ${frame.reason}` : ''}`
    case 'error':
      return frame.message
  }
}

export function startRaw(parent: HTMLElement, urls: PanelUrls): void {
  const detail = h('p', { id: 'raw-detail', class: 'detail' }, '\u00a0')
  const open = h('button', { id: 'raw-connect', type: 'button', class: 'secondary' }, 'Connect')
  const close = h('button', { id: 'raw-close', type: 'button', class: 'secondary', disabled: '' }, 'Close')
  const idLine = h('code', { id: 'raw-id', class: 'raw-id' }, 'no subscription')
  const log = h('ul', { id: 'raw-log', class: 'log event-log' })
  const input = h('input', { id: 'raw-input', type: 'text', placeholder: 'Text for plugin:realtime|send', 'aria-label': 'Message' })
  const send = h('button', { id: 'raw-send', type: 'submit', disabled: '' }, 'Send')
  const form = h('form', { id: 'raw-form', class: 'composer', autocomplete: 'off' }, input, send)
  const section = panel(
    'raw',
    'Raw contract',
    [h('code', {}, "listen('realtime://<id>')"), h('br'), h('code', {}, "invoke('plugin:realtime|connect')")],
    'raw-state',
  )
  // Wide, so that a frame fits on a line.
  section.classList.add('panel-wide')
  section.append(detail, h('div', { class: 'toolbar' }, open, close, idLine), log, form)
  parent.append(section)
  const badge = section.querySelector<HTMLElement>('#raw-state') as HTMLElement

  let id: string | undefined
  let unlisten: UnlistenFn | undefined

  const stopListening = (): void => {
    unlisten?.()
    unlisten = undefined
  }

  open.addEventListener('click', async () => {
    open.disabled = true
    log.replaceChildren()
    // Random, so no other page can guess it; listened to before connect, so no early frame is missed.
    const current = crypto.randomUUID()
    id = current
    idLine.textContent = `realtime://${current}`
    try {
      unlisten = await listen<Frame[]>(`realtime://${current}`, (event) => {
        for (const frame of event.payload) {
          const item = append(log, `event raw-${frame.kind}`, [
            ['id', `${frame.seq}`],
            ['type', frame.kind],
            ['data', describe(frame)],
          ])
          item.dataset.seq = String(frame.seq)
          item.dataset.kind = frame.kind
          if (frame.kind === 'state') showState(badge, detail, frame)
        }
      })
      await invoke('plugin:realtime|connect', { id: current, options: { url: urls.ws, share: false } })
      close.disabled = false
      send.disabled = false
    } catch (error) {
      stopListening()
      showState(badge, detail, { state: 'failed', reason: message(error) })
      open.disabled = false
    }
  })

  close.addEventListener('click', async () => {
    if (!id) return
    close.disabled = true
    send.disabled = true
    try {
      // The subscription ends at once: no frame of it follows, so the listener goes too.
      await invoke('plugin:realtime|close', { id })
      append(log, 'event note', [['data', 'closed by plugin:realtime|close; listener removed']])
      showState(badge, detail, { state: 'disconnected', reason: 'closed' })
    } catch (error) {
      append(log, 'event error', [['data', `close failed: ${message(error)}`]])
    }
    stopListening()
    id = undefined
    open.disabled = false
  })

  form.addEventListener('submit', (event) => {
    event.preventDefault()
    const text = input.value.trim()
    if (!text || !id) return
    input.value = ''
    invoke('plugin:realtime|send', { id, data: text }).catch((error: unknown) =>
      append(log, 'event error', [['data', `send failed: ${message(error)}`]]),
    )
  })
}
