// The demo server's control panel: each button is an app command (src-tauri/src/lib.rs) that breaks the demo
// server on purpose, so that a person can watch the other panels react: drop every connection, stop the server
// and start it again on the same port, refuse streaming, slow every stream down, stop answering application pings.

import { invoke } from '@tauri-apps/api/core'

/** The parts of the demo server's status this panel shows. */
export interface ControlStatus {
  streaming: boolean
  listening?: boolean
  serverStarts?: number
  drops?: number
  slowMs?: number
  answerPings?: boolean
}

/** How long "Slow every stream" makes every item wait. */
export const SLOW_MS = 1500

function el<T extends HTMLElement = HTMLElement>(id: string): T {
  const found = document.getElementById(id)
  if (!found) throw new Error(`missing #${id}`)
  return found as T
}

const ui = {
  listening: el('control-listening'),
  drop: el<HTMLButtonElement>('ctl-drop'),
  server: el<HTMLButtonElement>('ctl-server'),
  streaming: el<HTMLButtonElement>('ctl-streaming'),
  slow: el<HTMLButtonElement>('ctl-slow'),
  pings: el<HTMLButtonElement>('ctl-pings'),
  status: el('ctl-status'),
  log: el<HTMLUListElement>('ctl-log'),
}

let last: ControlStatus | undefined
/** While a command runs, its button stays disabled whatever the status says. */
const busy = new Set<HTMLButtonElement>()

function note(text: string, error = false): void {
  const item = document.createElement('li')
  item.className = error ? 'event error' : 'event'
  const time = document.createElement('span')
  time.className = 'type'
  time.textContent = new Date().toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' })
  const data = document.createElement('span')
  data.className = 'data'
  data.textContent = text
  item.append(time, data)
  ui.log.append(item)
  while (ui.log.children.length > 30) ui.log.firstElementChild?.remove()
  ui.log.scrollTop = ui.log.scrollHeight
}

export function showControlStatus(status: ControlStatus): void {
  last = status
  const listening = status.listening !== false
  ui.listening.dataset.state = listening ? 'connected' : 'failed'
  ui.listening.textContent = listening ? 'listening' : 'stopped'
  ui.server.dataset.listening = String(listening)
  ui.server.textContent = listening ? 'Stop the server' : 'Start the server'
  ui.streaming.dataset.streaming = String(status.streaming)
  ui.streaming.textContent = status.streaming ? 'Refuse streaming' : 'Allow streaming'
  ui.slow.dataset.slowMs = String(status.slowMs ?? 0)
  ui.slow.textContent = status.slowMs ? 'Full speed again' : 'Slow every stream'
  ui.pings.dataset.answer = String(status.answerPings !== false)
  ui.pings.textContent = status.answerPings === false ? 'Answer pings again' : 'Stop answering pings'
  for (const button of [ui.drop, ui.server, ui.streaming, ui.slow, ui.pings]) {
    // Nothing but Start reaches a stopped server.
    button.disabled = busy.has(button) || (!listening && button !== ui.server)
  }
  const parts = [
    `${status.serverStarts ?? 1} start${status.serverStarts === 1 ? '' : 's'}`,
    `${status.drops ?? 0} drop${status.drops === 1 ? '' : 's'}`,
    status.slowMs ? `every item ${status.slowMs / 1000} s late` : 'full speed',
    status.answerPings === false ? 'ignoring pings' : 'answering pings',
  ]
  ui.status.textContent = parts.join(' · ')
}

export function startControl(hooks: {
  onStatus: (status: never) => void
  /** Refuses (`false`) or allows (`true`) streaming: the button says which, so a late status cannot flip it. */
  setStreaming: (enabled: boolean) => Promise<void>
}): void {
  const run = async (button: HTMLButtonElement, what: string, command: () => Promise<unknown>) => {
    busy.add(button)
    button.disabled = true
    try {
      const status = await command()
      note(what)
      if (status) hooks.onStatus(status as never)
    } catch (error) {
      note(`${what} failed: ${error instanceof Error ? error.message : String(error)}`, true)
    } finally {
      busy.delete(button)
      if (last) showControlStatus(last)
    }
  }
  ui.drop.addEventListener('click', () =>
    void run(ui.drop, 'dropped every connection', () => invoke('demo_drop_connections')),
  )
  ui.server.addEventListener('click', () => {
    const stop = last?.listening !== false
    void run(ui.server, stop ? 'stopped the server' : 'started the server on the same port', () =>
      invoke(stop ? 'demo_server_stop' : 'demo_server_start'),
    )
  })
  ui.streaming.addEventListener('click', () => {
    const refuse = last?.streaming !== false
    void run(ui.streaming, refuse ? 'refusing streams' : 'streaming again', () => hooks.setStreaming(!refuse))
  })
  ui.slow.addEventListener('click', () => {
    const delayMs = last?.slowMs ? 0 : SLOW_MS
    void run(ui.slow, delayMs ? `every streamed item waits ${delayMs / 1000} s` : 'full speed again', () =>
      invoke('demo_set_slow', { delayMs }),
    )
  })
  ui.pings.addEventListener('click', () => {
    const answer = last?.answerPings === false
    void run(ui.pings, answer ? 'answering application pings again' : 'ignoring application pings', () =>
      invoke('demo_set_pings', { answer }),
    )
  })
}
