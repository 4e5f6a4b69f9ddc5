// The search summary's polling fallback and its health line. The summary is a POST + SSE stream (src/main.ts);
// when the demo server refuses streaming, the plugin polls `/summary/poll?query=...` (the next few words after
// `Last-Event-ID`) every 2 s and probes the stream every 5 s, so the summary keeps arriving and comes back to the
// stream by itself. The health line says how it is arriving: transport, last event id, events so far, time
// since the last one.

import type { MessageFrame, StateValue } from 'tauri-plugin-realtime-api'
import './search.css'

/** How often the plugin tries the stream again while it polls (30 s by default; a person is watching here). */
export const SUMMARY_PROBE_MS = 5000

/** The plugin's default poll interval, shown on the health line. */
const POLL_EVERY_S = 2

/** The summary connection's `fallback`: the same query, as a document for pollers. */
export function summaryFallback(url: string, query: string) {
  const pollUrl = new URL(`${url}/poll`)
  if (query) pollUrl.searchParams.set('query', query)
  return { pollUrl: pollUrl.href, probeIntervalMs: SUMMARY_PROBE_MS }
}

/** The health line of one summary connection at a time: `reset()` when a new query starts. */
export class SummaryHealth {
  private state = 'connecting'
  private transport = ''
  private lastId = ''
  private events = 0
  private lastAt: number | undefined

  constructor(private readonly line: HTMLElement) {
    // "Time since the last one" moves on its own.
    setInterval(() => this.render(), 1000)
    this.render()
  }

  reset(): void {
    this.state = 'connecting'
    this.transport = ''
    this.lastId = ''
    this.events = 0
    this.lastAt = undefined
    this.render()
  }

  onState(value: StateValue): void {
    this.state = value.state
    this.transport = value.state === 'connected' || value.state === 'polling' ? (value.transport ?? '') : ''
    this.render()
  }

  onMessage(frame: MessageFrame): void {
    this.events += 1
    if (frame.lastEventId) this.lastId = frame.lastEventId
    this.lastAt = Date.now()
    this.render()
  }

  private render(): void {
    const { line } = this
    line.dataset.state = this.state
    line.dataset.transport = this.transport
    line.dataset.lastId = this.lastId
    line.dataset.events = String(this.events)
    const how =
      this.transport === 'poll'
        ? `polling every ${POLL_EVERY_S} s`
        : this.transport === 'sse'
          ? 'streaming (SSE)'
          : `no transport (${this.state})`
    const since =
      this.lastAt === undefined ? 'none yet' : `${Math.floor((Date.now() - this.lastAt) / 1000)} s ago`
    line.textContent = `${how} · last id ${this.lastId ? `#${this.lastId}` : '–'} · ${this.events} event${
      this.events === 1 ? '' : 's'
    } · last ${since}`
  }
}
