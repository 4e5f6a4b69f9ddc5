// End-to-end test of `withCredentials` in the example app's real webview (WebKitGTK, WebKitWebDriver).
//
// The demo server runs on its own (`realtime-demo-server`, the app started with REALTIME_DEMO_SERVER), so the test
// reads what it saw (`/session/log`). The page is at `tauri://localhost`, the server at `http://127.0.0.1:<port>`:
//
// 1. Before signing in, streams with and without `withCredentials` are both refused (401).
// 2. **Sign in** opens `/session/signin` in a window of its own (the app command `open_signin_window`): the
//    session cookie is first-party there and lands in the cookie store the app's webviews share; the window closes
//    and the page hears `session-signed-in`. (The page's CSP allows it no request of its own, `connect-src` being
//    the IPC only; and navigating the main window there does not come back: WebKitGTK will not follow the
//    redirect from http to `tauri://`.) Now the stream opened through the plugin with `withCredentials: true` carries
//    it and is accepted, and the one opened without is refused (401).
// 3. The accepted stream's `Set-Cookie: demo_stream=...` lands in the webview's store: the next open carries it,
// 4. and so does the webview's own next request to the server (signing in again in the sign-in window).
// Saves artifacts/e2e-cookies.png of the section.
//
//   cargo build -p realtime-example          (after `npm run build` in examples/tauri-app)
//   xvfb-run -a -s "-screen 0 1280x900x24" node --test examples/tauri-app/e2e/cookies.test.mjs
//
// Env and helpers: see webdriver.mjs. Only 127.0.0.1 is contacted.

import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, test } from 'node:test'

import { getJson } from './connections.mjs'
import {
  click,
  repo,
  run,
  saveScreenshot,
  show,
  startAppWithDemoServer,
  stopApp,
  waitFor,
  withLog,
} from './webdriver.mjs'

const SCREENSHOT = join(repo, 'artifacts/e2e-cookies.png')

let server

before(() =>
  withLog(async () => {
    server = await startAppWithDemoServer()
  }),
)
after(stopApp)

/** `GET /session/log` of the demo server: `{ hits: [{ path, cookies, status }], issued }`. */
const sessionLog = () => getJson(server.base, '/session/log')

/** The two stream lines of the section: `{ state, user, cookies, reason, text }` each. */
const lines = () =>
  run(`const of = (id) => {
      const e = document.getElementById(id)
      return e && { state: e.dataset.state, user: e.dataset.user ?? '', cookies: e.dataset.cookies ?? '',
        reason: e.dataset.reason ?? '', text: e.textContent, href: location.href }
    }
    return { with: of('session-with'), without: of('session-without'), href: location.href }`)

/** Clicks "Open the streams" and waits until both lines settled, and the server saw both requests. */
async function openStreams(hitsBefore) {
  await run(`for (const id of ['session-with', 'session-without']) document.getElementById(id).dataset.state = 'idle'`)
  await click('#session-open')
  const settled = await waitFor(
    'both session streams to be accepted or refused',
    lines,
    (l) => ['accepted', 'refused'].includes(l?.with?.state) && ['accepted', 'refused'].includes(l?.without?.state),
  )
  const log = await waitFor(
    'the server to log both stream requests',
    sessionLog,
    (l) => l.hits.filter((h) => h.path === '/session/events').length >= hitsBefore + 2,
  )
  return { settled, events: log.hits.filter((h) => h.path === '/session/events').slice(hitsBefore) }
}

const pageReady = () =>
  waitFor(
    'the page at tauri://localhost with its session section',
    () => run(`return location.protocol + '|' + (document.getElementById('session-open') ? 'ready' : 'missing')`),
    (v) => v === 'tauri:|ready',
  )

test('withCredentials: signed in by the page, a stream through the plugin carries the webview cookie', async () => {
  await withLog(async () => {
    await pageReady()

    // 1. Before signing in, the webview holds no session: both streams are refused.
    const first = await openStreams(0)
    assert.deepEqual(
      [first.settled.with.state, first.settled.without.state],
      ['refused', 'refused'],
      `expected both refused before signing in, got ${show(first)}`,
    )
    assert.deepEqual(first.events.map((h) => h.status), [401, 401], `got ${show(first.events)}`)

    // 2. Sign in in a window of the server's own origin: the page hears when it is done.
    await click('#session-signin')
    await waitFor(
      'the page to hear that the sign-in window loaded (#session-signin[data-signed])',
      () => run(`return document.getElementById('session-signin').dataset.signed ?? null`),
      (v) => v === 'true',
    )
    const issued = await sessionLog()
    assert.deepEqual(issued.issued, ['user-1'], `expected one session issued, got ${show(issued)}`)
    const eventsBefore = (await sessionLog()).hits.filter((h) => h.path === '/session/events').length
    const second = await openStreams(eventsBefore)
    assert.equal(second.settled.with.state, 'accepted', `expected the credentialed stream accepted, got ${show(second)}`)
    assert.equal(second.settled.with.user, 'user-1', `expected the navigation's session, got ${show(second)}`)
    assert.equal(second.settled.without.state, 'refused', `expected the stream without credentials refused, got ${show(second)}`)
    assert.match(second.settled.without.reason, /401/, `expected a 401, got ${show(second)}`)
    const byStatus = Object.fromEntries(second.events.map((h) => [h.status, h.cookies]))
    assert.ok(byStatus[200]?.includes('demo_session'), `expected the server to see the session cookie, got ${show(second.events)}`)
    assert.deepEqual(byStatus[401], [], `expected no cookie at all without credentials, got ${show(second.events)}`)

    // 3. The accepted stream's Set-Cookie landed in the webview's store: the next credentialed open carries it.
    const third = await openStreams(eventsBefore + 2)
    assert.equal(third.settled.with.state, 'accepted', `got ${show(third)}`)
    assert.ok(
      third.settled.with.cookies.split(',').includes('demo_stream'),
      `expected the stream's own cookie sent back, got ${show(third)}`,
    )
    assert.ok(
      third.events.find((h) => h.status === 200)?.cookies.includes('demo_stream'),
      `expected the server to see demo_stream, got ${show(third.events)}`,
    )

    // 4. And the webview's own network stack has it too: the sign-in window's request carries both cookies.
    await run(`delete document.getElementById('session-signin').dataset.signed`)
    await click('#session-signin')
    const again = await waitFor('a second sign-in', sessionLog, (l) => l.issued.length >= 2)
    const signins = again.hits.filter((h) => h.path === '/session/signin')
    assert.deepEqual(signins[0]?.cookies, [], `expected the first sign-in without cookies, got ${show(signins)}`)
    assert.deepEqual(
      [...(signins[1]?.cookies ?? [])].sort(),
      ['demo_session', 'demo_stream'],
      `expected the webview's own request to carry the cookie the plugin stored, got ${show(signins)}`,
    )
    await waitFor(
      'the page to hear the second sign-in',
      () => run(`return document.getElementById('session-signin').dataset.signed ?? null`),
      (v) => v === 'true',
    )
    await run(`document.getElementById('session-title').scrollIntoView({ block: 'start' })`)
    await saveScreenshot(SCREENSHOT)
  })
})
