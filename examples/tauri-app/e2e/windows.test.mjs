// End-to-end test of two windows sharing one chat connection, in the example app's real webview (WebKitGTK,
// WebKitWebDriver, which lists the window the app opens among its window handles and switches between them).
//
// The demo server runs on its own here (`realtime-demo-server`, the app started with REALTIME_DEMO_SERVER), so
// the test reads the server's own counters over HTTP (`GET /status` on 127.0.0.1) also after the app has quit.
//
//   cargo build -p realtime-example          (after `npm run build` in examples/tauri-app)
//   xvfb-run -a -s "-screen 0 1280x900x24" node --test examples/tauri-app/e2e/
//
// Env and helpers: see webdriver.mjs. Only 127.0.0.1 is contacted.

import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, test } from 'node:test'

import {
  alive,
  appPids,
  attrOf,
  click,
  currentWindow,
  demoStatus,
  repo,
  run,
  saveScreenshot,
  session,
  show,
  sleep,
  startAppWithDemoServer,
  stopApp,
  switchToWindow,
  textOf,
  textsOf,
  typeInto,
  waitFor,
  wd,
  windowHandles,
  withLog,
} from './webdriver.mjs'

const SCREENSHOT = join(repo, 'artifacts/e2e-windows.png')
const SCREENSHOT_SECOND = join(repo, 'artifacts/e2e-windows-second.png')

/** The plugin's default linger after the last subscriber of an upstream leaves. */
const LINGER_MS = 3_000

let server // { base, addr } of the stand-alone demo server
let app = [] // the app's pids
let mainHandle
let secondHandle

before(() =>
  withLog(async () => {
    server = await startAppWithDemoServer()
    app = appPids()
  }),
)
after(stopApp)

const status = () => demoStatus(server.base)

/** Waits until the server's status satisfies `accept`. */
const waitStatus = (what, accept, ms) => waitFor(`the demo server to count ${what}`, status, accept, ms)

/** The plugin's `inspect` of this window's chat subscription. */
const chatInfo = () =>
  run(`return window.__TAURI_INTERNALS__.invoke('plugin:realtime|inspect', {})
    .then((all) => all.find((c) => c.transport === 'websocket') ?? null)`)

const received = () => textsOf('#ws-log li.in .text')
const sentHere = () => textsOf('#ws-log li.out .text')

/** Types `text` into this window's chat and sends it. */
async function say(text) {
  await typeInto('#ws-input', text)
  await click('#ws-send')
}

const waitReceived = (where, text) =>
  waitFor(`${show(text)} received in the ${where} window's #ws-log`, received, (texts) => texts?.includes(text), 15_000)

test('the main window connects its chat: the server counts one connection', { timeout: 60_000 }, () =>
  withLog(async () => {
    assert.ok(app.length > 0, `expected the app's process under the driver, got ${show(app)}`)
    await waitFor('#ws-state to say "connected"', () => textOf('#ws-state'), (s) => s === 'connected')
    mainHandle = await currentWindow()
    await waitStatus('1 open chat connection, 1 accepted', (s) => s.chatOpen === 1 && s.chatAccepted === 1)
    await waitFor(
      '#server-connections to show 1 open connection',
      () => attrOf('#server-connections', 'data-open'),
      (n) => n === '1',
      10_000,
    )
    const shared = await attrOf('#ws-shared', 'data-shared')
    assert.equal(shared, 'false', `expected the first chat to open the connection (shared false), got ${show(shared)}`)
  }),
)

test('reloading the only window re-attaches within the linger: no new connection', { timeout: 60_000 }, () =>
  withLog(async () => {
    await wd('POST', session('/refresh'), {})
    await waitFor('#ws-state to say "connected" after the reload', () => textOf('#ws-state'), (s) => s === 'connected')
    const shared = await attrOf('#ws-shared', 'data-shared')
    assert.equal(shared, 'true', `expected the reloaded page to join the lingering upstream (shared true), got ${show(shared)}`)
    // Past the linger: the upstream did not close, and the server never saw a second connection.
    await sleep(LINGER_MS + 1_000)
    const s = await status()
    assert.deepEqual(
      { open: s.chatOpen, accepted: s.chatAccepted },
      { open: 1, accepted: 1 },
      `expected still 1 open and 1 accepted after the reload, got ${show(s)}`,
    )
  }),
)

test('a second window opens and shares the chat connection', { timeout: 60_000 }, () =>
  withLog(async () => {
    await click('#open-window')
    const handles = await waitFor('2 window handles', windowHandles, (h) => h?.length === 2, 15_000)
    assert.ok(handles.includes(mainHandle), `expected the main window ${mainHandle} among ${show(handles)}`)
    secondHandle = handles.find((h) => h !== mainHandle)
    await switchToWindow(secondHandle)
    const href = await run('return location.href')
    assert.ok(href.includes('view=chat'), `expected the chat-only view (?view=chat), got ${show(href)}`)
    const panels = await run(
      'return Array.from(document.querySelectorAll("[data-panel]")).filter((p) => p.offsetParent !== null).map((p) => p.dataset.panel)',
    )
    assert.deepEqual(panels, ['chat'], `expected only the chat panel visible, got ${show(panels)}`)

    await waitFor('#ws-state to say "connected" in the second window', () => textOf('#ws-state'), (s) => s === 'connected')
    const shared = await attrOf('#ws-shared', 'data-shared')
    assert.equal(shared, 'true', `expected the second window to join the main window's upstream, got ${show(shared)}`)
    const info = await chatInfo()
    assert.deepEqual(
      { subscribers: info?.subscribers, owners: info?.owners },
      { subscribers: 2, owners: { main: 1, second: 1 } },
      `expected one upstream with a subscription per window, got ${show(info)}`,
    )
    const s = await status()
    assert.deepEqual(
      { open: s.chatOpen, accepted: s.chatAccepted },
      { open: 1, accepted: 1 },
      `expected the server to count ONE chat connection for two windows, got ${show(s)}`,
    )
    await waitFor(
      '#server-connections to show 1 in the second window',
      () => attrOf('#server-connections', 'data-open'),
      (n) => n === '1',
      10_000,
    )
  }),
)

test('a message sent in either window is echoed to both', { timeout: 60_000 }, () =>
  withLog(async () => {
    const fromSecond = `from the second window ${Date.now()}`
    await switchToWindow(secondHandle)
    await say(fromSecond)
    await waitReceived('second', fromSecond)
    await switchToWindow(mainHandle)
    await waitReceived('main', fromSecond)
    const mainSent = await sentHere()
    assert.ok(!mainSent.includes(fromSecond), `expected the main window not to list it as its own, got ${show(mainSent)}`)

    const fromMain = `from the main window ${Date.now()}`
    await say(fromMain)
    await waitReceived('main', fromMain)
    await switchToWindow(secondHandle)
    await waitReceived('second', fromMain)

    const s = await status()
    assert.equal(s.chatOpen, 1, `expected still 1 open chat connection, got ${show(s)}`)
  }),
)

test("reloading the second window keeps the main window's stream flowing, still one connection", { timeout: 60_000 }, () =>
  withLog(async () => {
    await switchToWindow(secondHandle)
    // Reload soon, without waiting for it, and talk from the main window meanwhile.
    await run('setTimeout(() => location.reload(), 50); return true')
    await switchToWindow(mainHandle)
    const during = `while the second window reloads ${Date.now()}`
    await say(during)
    await waitReceived('main', during)
    const state = await textOf('#ws-state')
    assert.equal(state, 'connected', `expected the main window's chat to stay connected, got ${show(state)}`)

    await switchToWindow(secondHandle)
    await waitFor('#ws-state to say "connected" in the reloaded window', () => textOf('#ws-state'), (s) => s === 'connected')
    const shared = await attrOf('#ws-shared', 'data-shared')
    assert.equal(shared, 'true', `expected the reloaded second window to re-attach (shared true), got ${show(shared)}`)

    await switchToWindow(mainHandle)
    const after = `after the reload ${Date.now()}`
    await say(after)
    await waitReceived('main', after)
    await switchToWindow(secondHandle)
    await waitReceived('second', after)

    const info = await chatInfo()
    assert.equal(info?.subscribers, 2, `expected 2 subscriptions again (the reload released one), got ${show(info)}`)
    const s = await status()
    assert.deepEqual(
      { open: s.chatOpen, accepted: s.chatAccepted },
      { open: 1, accepted: 1 },
      `expected still 1 open and 1 accepted after reloading the second window, got ${show(s)}`,
    )

    await saveScreenshot(SCREENSHOT_SECOND)
    await switchToWindow(mainHandle)
    await waitFor('#server-connections to show 1', () => attrOf('#server-connections', 'data-open'), (n) => n === '1', 10_000)
    await saveScreenshot(SCREENSHOT)
  }),
)

test('closing the main window releases its subscriptions; the second window keeps the chat', { timeout: 60_000 }, () =>
  withLog(async () => {
    const before = await status()
    assert.ok(
      before.feedStreams === 1 && before.summaryStreams === 1,
      `expected the main window's feed and summary streams open, got ${show(before)}`,
    )
    await switchToWindow(mainHandle)
    // The app's own command closes the window that calls it, as the second window's "Close window" button does.
    // (WebDriver's DELETE /window only destroys the WebKit view: Tauri and the plugin never learn of it.)
    await run('setTimeout(() => window.__TAURI_INTERNALS__.invoke("close_window"), 50); return true')
    await waitFor('1 window handle', windowHandles, (h) => h?.length === 1 && h[0] === secondHandle, 15_000)
    await switchToWindow(secondHandle)

    // The feed and the summary had no other subscriber: they close after the linger. The chat stays.
    const s = await waitStatus(
      'no feed or summary stream, and still 1 chat connection',
      (s) => s.feedStreams === 0 && s.summaryStreams === 0 && s.chatOpen === 1,
      LINGER_MS + 15_000,
    )
    assert.equal(s.chatAccepted, 1, `expected no new chat connection, got ${show(s)}`)
    const info = await chatInfo()
    assert.deepEqual(
      { subscribers: info?.subscribers, owners: info?.owners },
      { subscribers: 1, owners: { second: 1 } },
      `expected only the second window's subscription left, got ${show(info)}`,
    )
    const last = `only the second window now ${Date.now()}`
    await say(last)
    await waitReceived('second', last)
  }),
)

test('closing the last window quits the app and closes the upstream: the server counts none', { timeout: 60_000 }, () =>
  withLog(async () => {
    await switchToWindow(secondHandle)
    // The chat-only view's own button; clicked from a timer, since the page goes away with the window.
    await run('setTimeout(() => document.querySelector("#close-window").click(), 50); return true')
    await waitFor('the app to quit', () => app.filter(alive), (left) => left.length === 0, 15_000)
    const s = await waitStatus('no open chat connection', (s) => s.chatOpen === 0, 10_000)
    assert.deepEqual(
      { open: s.chatOpen, accepted: s.chatAccepted, feed: s.feedStreams, summary: s.summaryStreams },
      { open: 0, accepted: 1, feed: 0, summary: 0 },
      `expected nothing open, and one chat connection served both windows all along, got ${show(s)}`,
    )
  }),
)
