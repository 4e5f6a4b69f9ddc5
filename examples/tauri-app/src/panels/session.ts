// The session cookie section of the demo server panel: `withCredentials` in the real webview.
//
// **Sign in** opens the demo server's `/session/signin` in a window of its own (the app command
// `open_signin_window`), which sets an HttpOnly session cookie: a first-party cookie in the webview's cookie store,
// shared by the app's windows, as a web sign-in page leaves it. The window closes once the page has loaded and the
// app tells this page (`session-signed-in`). (This page's CSP allows it no request of its own, and WebKitGTK does
// not follow a redirect from http back to `tauri://`.) **Open the streams** opens `/session/events`
// through the plugin twice: with `withCredentials: true` (the server accepts it and names the cookies it got, and
// the `demo_stream` cookie it sets lands in the webview's store, so the next open carries it) and without (the
// server answers 401).

import { invoke } from '@tauri-apps/api/core'
import { listen } from '@tauri-apps/api/event'
import { connect, type Connection } from 'tauri-plugin-realtime-api'

function el<T extends HTMLElement = HTMLElement>(id: string): T {
  const found = document.getElementById(id)
  if (!found) throw new Error(`missing #${id}`)
  return found as T
}

/** What `/session/events` sends: the user, and the names of the cookies the request carried. */
interface SessionEvent {
  user: string
  cookies: string[]
}

const opened: Connection[] = []

/** Opens `/session/events` with or without credentials, and shows how it went in `line`. */
async function openStream(url: string, withCredentials: boolean, line: HTMLElement): Promise<void> {
  const label = withCredentials ? 'with credentials' : 'without'
  line.dataset.state = 'connecting'
  for (const key of ['user', 'cookies', 'reason']) delete line.dataset[key]
  line.textContent = `${label}: connecting`
  const conn = await connect({ url, withCredentials, reconnect: false, share: false })
  opened.push(conn)
  conn.on('session', (frame) => {
    const event = JSON.parse(frame.data) as SessionEvent
    line.dataset.state = 'accepted'
    line.dataset.user = event.user
    line.dataset.cookies = event.cookies.join(',')
    line.textContent = `${label}: accepted as ${event.user} (${event.cookies.join(', ')})`
  })
  conn.on('state', (frame) => {
    if (frame.state === 'failed') {
      line.dataset.state = 'refused'
      line.dataset.reason = frame.reason ?? ''
      line.textContent = `${label}: refused (${frame.reason ?? 'no reason'})`
    }
  })
}

export function startSession(base: string): void {
  const withLine = el('session-with')
  const withoutLine = el('session-without')
  const signin = el<HTMLButtonElement>('session-signin')
  void listen('session-signed-in', () => {
    signin.dataset.signed = 'true'
    signin.textContent = 'Sign in again'
  })
  signin.addEventListener('click', () => {
    invoke('open_signin_window').catch((error: unknown) => {
      signin.textContent = `Sign in failed: ${error instanceof Error ? error.message : String(error)}`
    })
  })
  el('session-open').addEventListener('click', () => {
    for (const conn of opened.splice(0)) void conn.close().catch(() => undefined)
    const url = `${base}/session/events`
    const fail = (line: HTMLElement) => (error: unknown) => {
      line.dataset.state = 'error'
      line.textContent = `connect failed: ${error instanceof Error ? error.message : String(error)}`
    }
    openStream(url, true, withLine).catch(fail(withLine))
    openStream(url, false, withoutLine).catch(fail(withoutLine))
  })
}
