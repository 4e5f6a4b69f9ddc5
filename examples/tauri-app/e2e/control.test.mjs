// End-to-end test of the demo-server control panel in the real webview (issue 15, item 7): each button breaks the
// server on purpose and the other panels react: drop every connection (chat and topics reconnect), slow every
// stream down, refuse streaming (the feed polls), stop answering application pings (the topics heartbeat
// misses). Stopping the server and starting it again is tested with the chat (chat.test.mjs): only the app can
// start an embedded server again. This file runs `realtime-demo-server` on its own (`REALTIME_DEMO_SERVER`), so
// it reads the server's `/status` over HTTP also after the app quit: app exit closes every upstream with 1001.
//
//   REALTIME_EXAMPLE_BIN=target/debug/realtime-example xvfb-run -a node --test examples/tauri-app/e2e/control.test.mjs
//
// Saves artifacts/e2e-control.png at 1024x768.

import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, test } from 'node:test'

import {
  alive,
  appPids,
  click,
  demoStatus,
  repo,
  run,
  saveScreenshot,
  session,
  show,
  startAppWithDemoServer,
  stopApp,
  textOf,
  waitFor,
  wd,
  withLog,
} from './webdriver.mjs'

const SCREENSHOT = join(repo, 'artifacts/e2e-control.png')

let server
let app = []

before(() =>
  withLog(async () => {
    server = await startAppWithDemoServer()
    app = appPids()
  }),
)
after(stopApp)

const status = () => demoStatus(server.base)
const waitStatus = (what, accept, ms) => waitFor(`the server to show ${what}`, status, accept, ms)

async function clickWhenEnabled(selector, label) {
  await waitFor(`${selector} to say ${show(label)} and be enabled`, () =>
    run('const b = document.querySelector(arguments[0]); return !b.disabled && b.textContent', selector), (t) => t === label)
  await click(selector)
}

const outgoing = () =>
  run(`return Array.from(document.querySelectorAll('#ws-log li.out'), (li) => ({
    text: li.querySelector('.text')?.textContent, delivery: li.dataset.delivery }))`)

async function say(text) {
  const input = await wd('POST', session('/element'), { using: 'css selector', value: '#ws-input' })
  await wd('POST', session(`/element/${Object.values(input)[0]}/value`), { text })
  await click('#ws-send')
}

const stamp = Date.now()

test('every panel connects; the control panel shows the server listening at full speed', { timeout: 60_000 }, () =>
  withLog(async () => {
    await wd('POST', session('/window/rect'), { width: 1024, height: 768 })
    await waitFor('the page to be 1024x768', () => run('return [innerWidth, innerHeight].join("x")'), (s) => s === '1024x768')
    for (const badge of ['#ws-state', '#feed-state', '#topics-state']) {
      await waitFor(`${badge} to say "connected"`, () => textOf(badge), (s) => s === 'connected')
    }
    await waitFor('#control-listening to say "listening"', () => textOf('#control-listening'), (s) => s === 'listening')
    const line = await waitFor('the control status line', () => textOf('#ctl-status'), (t) => t?.includes('full speed'))
    assert.equal(line, '1 start · 0 drops · full speed · answering pings', `got ${show(line)}`)
  }),
)

test('Drop every connection: the server cuts them all and the chat and topics come back by themselves', { timeout: 60_000 }, () =>
  withLog(async () => {
    const before = await waitStatus('one chat and one topics socket', (s) => s.chatOpen === 1 && s.topicSockets.length === 1)
    await clickWhenEnabled('#ctl-drop', 'Drop every connection')
    const after = await waitStatus('both sockets open again, on new connections',
      (s) => s.drops === 1 && s.chatOpen === 1 && s.chatAccepted === before.chatAccepted + 1 &&
        s.topicsAccepted === before.topicsAccepted + 1 && s.topicSockets.length === 1)
    // The feed reconnects on its own schedule (the server's `retry: 1000`), not with the sockets.
    const fed = await waitStatus('the feed streaming again', (s) => s.feedStreams === 1 && s.drops === after.drops)
    assert.equal(fed.feedStreams, 1, `expected the feed streaming again, got ${show(fed)}`)
    await waitFor('#ws-state to say "connected" again', () => textOf('#ws-state'), (s) => s === 'connected')
    await waitFor('#topics-state to say "connected" again', () => textOf('#topics-state'), (s) => s === 'connected')
    const line = await waitFor('the status line to count the drop', () => textOf('#ctl-status'), (t) => t?.includes('1 drop '))
    assert.match(line, /1 drop · full speed/, `got ${show(line)}`)
  }),
)

test('Slow every stream: the server waits before each item, the chat still delivers; Full speed again', { timeout: 60_000 }, () =>
  withLog(async () => {
    await clickWhenEnabled('#ctl-slow', 'Slow every stream')
    await waitStatus('every item 1.5 s late', (s) => s.slowMs === 1500)
    await waitFor('#ctl-slow to offer full speed', () => textOf('#ctl-slow'), (t) => t === 'Full speed again')
    await waitFor('the status line to say so', () => textOf('#ctl-status'), (t) => t?.includes('every item 1.5 s late'))
    const text = `slowly ${stamp}`
    await say(text)
    await waitFor(`${show(text)} delivered, late`, outgoing, (items) => items?.find((i) => i.text === text)?.delivery === 'delivered')
    await clickWhenEnabled('#ctl-slow', 'Full speed again')
    await waitStatus('full speed', (s) => s.slowMs === 0)
    const s = await status()
    assert.equal(s.chatReceived.filter((t) => t === text).length, 1, `expected ${show(text)} once, got ${show(s)}`)
  }),
)

test('Refuse streaming: the feed polls, the chat waits; Allow streaming brings both back', { timeout: 90_000 }, () =>
  withLog(async () => {
    await clickWhenEnabled('#ctl-streaming', 'Refuse streaming')
    await waitStatus('streaming refused', (s) => s.streaming === false)
    await waitFor('#feed-state to say "polling"', () => textOf('#feed-state'), (s) => s === 'polling', 15_000)
    await waitFor('#ws-state to leave "connected"', () => textOf('#ws-state'), (s) => s !== 'connected')
    // /topics is a stream too: refused meanwhile.
    await waitFor('#topics-state to say "reconnecting"', () => textOf('#topics-state'), (s) => s === 'reconnecting', 15_000)
    await waitFor('the header pill to say "refusing streams"', () => textOf('#server-streaming'), (s) => s === 'refusing streams')
    // The feed panel's own switch follows.
    await waitFor('#toggle-streaming to say "Allow streaming"', () => textOf('#toggle-streaming'), (s) => s === 'Allow streaming')

    await run(`document.querySelector('[data-panel="control"]').scrollIntoView({ block: 'start' })`)
    const box = await run(`const r = document.querySelector('[data-panel="control"]').getBoundingClientRect()
      return { top: r.top, bottom: r.bottom, vh: innerHeight }`)
    assert.ok(box.top >= 0 && box.bottom <= box.vh, `expected the control panel in view, got ${show(box)}`)
    const shown = await run(`return Array.from(document.querySelectorAll('[data-panel="control"] .control-grid button'), (b) => b.textContent)`)
    assert.deepEqual(shown, ['Drop every connection', 'Stop the server', 'Allow streaming', 'Slow every stream', 'Stop answering pings'],
      `expected the control buttons, got ${show(shown)}`)
    await saveScreenshot(SCREENSHOT)

    await clickWhenEnabled('#ctl-streaming', 'Allow streaming')
    await waitStatus('streaming allowed', (s) => s.streaming === true)
    await waitFor('#feed-state to say "connected" again', () => textOf('#feed-state'), (s) => s === 'connected', 20_000)
    await waitFor('#ws-state to say "connected" again', () => textOf('#ws-state'), (s) => s === 'connected', 20_000)
    await waitFor('#topics-state to say "connected" again', () => textOf('#topics-state'), (s) => s === 'connected', 20_000)
  }),
)

test('Stop answering pings: the topics heartbeat misses and the panel reconnects; answering again heals it', { timeout: 60_000 }, () =>
  withLog(async () => {
    await clickWhenEnabled('#ctl-pings', 'Stop answering pings')
    await waitStatus('pings ignored', (s) => s.answerPings === false && s.pingsIgnored >= 1)
    await waitFor('#topics-heartbeat to say the heartbeat missed', () =>
      run('return document.querySelector("#topics-heartbeat").dataset.health'), (h) => h === 'missed', 20_000)
    await clickWhenEnabled('#ctl-pings', 'Answer pings again')
    await waitFor('#topics-heartbeat healthy again', () =>
      run('return document.querySelector("#topics-heartbeat").dataset.health'), (h) => h === 'ok', 20_000)
    assert.equal(await textOf('#topics-state'), 'connected')
  }),
)

test('app exit closes every upstream with code 1001, as the server sees it', { timeout: 60_000 }, () =>
  withLog(async () => {
    const before = await waitStatus('the chat and topics sockets open', (s) => s.chatOpen === 1 && s.topicSockets.length === 1)
    // The window's own command, from a timer, since the page goes away with the window: the last window closes
    // and the app exits.
    await run('setTimeout(() => window.__TAURI_INTERNALS__.invoke("close_window"), 50); return true')
    await waitFor('the app to quit', () => app.filter(alive), (left) => left.length === 0, 15_000)
    const s = await waitStatus('no socket open', (s) => s.chatOpen === 0 && s.topicSockets.length === 0, 10_000)
    const codes = s.closeCodes.slice(before.closeCodes.length)
    assert.deepEqual(codes, [1001, 1001], `expected the chat and topics sockets closed with 1001, got ${show(s.closeCodes)}`)
  }),
)
