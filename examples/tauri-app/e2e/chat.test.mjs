// End-to-end test of the chat's reconnect story in the real webview (issue 15, item 1): the state badge, the
// reconnecting banner with its countdown, messages typed while the server is down shown as queued and then
// delivered once each and in order, and after `maxRetries` the failed state with its Reconnect button. The
// server is the app's embedded demo server, stopped and started again on the same port through the page's
// control panel; what the server saw is read from its `/status` over HTTP.
//
//   REALTIME_EXAMPLE_BIN=target/debug/realtime-example xvfb-run -a node --test examples/tauri-app/e2e/chat.test.mjs
//
// Saves artifacts/e2e-chat-{connected,reconnecting,queued,delivered,failed}.png at 1024x768.

import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, test } from 'node:test'

import {
  click,
  repo,
  run,
  saveScreenshot,
  session,
  show,
  startApp,
  stopApp,
  textOf,
  waitFor,
  wd,
  withLog,
} from './webdriver.mjs'

const shot = (name) => join(repo, `artifacts/e2e-chat-${name}.png`)

before(() => withLog(() => startApp()))
after(stopApp)

/** Sizes the window to 1024x768 and checks that the page got about that much room. */
async function size1024x768() {
  await wd('POST', session('/window/rect'), { width: 1024, height: 768 })
  const inner = await waitFor(
    'the page to be about 1024x768',
    () => run('return [innerWidth, innerHeight]'),
    ([w, h]) => Math.abs(w - 1024) <= 16 && Math.abs(h - 768) <= 48,
  )
  return inner
}

/** The demo server's `/status`, read over HTTP like any client would (the address the page shows). */
async function serverStatus() {
  const host = await textOf('#server-addr')
  const response = await fetch(`http://${host}/status`, { signal: AbortSignal.timeout(5_000) })
  assert.equal(response.status, 200, `expected /status to answer 200, got ${response.status}`)
  return response.json()
}

const displayed = (selector) =>
  run(
    `const e = document.querySelector(arguments[0]); if (!e) return null
     const r = e.getBoundingClientRect(); const s = getComputedStyle(e)
     return !e.hidden && s.display !== 'none' && s.visibility !== 'hidden' && r.width > 0 && r.height > 0`,
    selector,
  )

/** The outgoing chat items: text, delivery mark and number. */
const outgoing = () =>
  run(`return Array.from(document.querySelectorAll('#ws-log li.out'), (li) => ({
    text: li.querySelector('.text')?.textContent, delivery: li.dataset.delivery,
    label: li.querySelector('.delivery')?.textContent }))`)

/** Types `text` into the chat and submits it, as a person does. */
async function say(text) {
  const input = await wd('POST', session('/element'), { using: 'css selector', value: '#ws-input' })
  await wd('POST', session(`/element/${Object.values(input)[0]}/value`), { text })
  await click('#ws-send')
  await waitFor(`${show(text)} listed as sent by you`, outgoing, (items) => items?.some((i) => i.text === text))
}

/** Clicks the control panel's server button, which must say `label` first; waits for the server's new state. */
async function serverButton(label, listening) {
  await waitFor(`#ctl-server to say ${show(label)} and be enabled`, () =>
    run('const b = document.querySelector("#ctl-server"); return !b.disabled && b.textContent'), (t) => t === label)
  await click('#ctl-server')
  await waitFor(`#control-listening to say ${listening ? 'listening' : 'stopped'}`, () => textOf('#control-listening'),
    (t) => t === (listening ? 'listening' : 'stopped'))
}

const stamp = Date.now()

/**
 * Screenshot of the chat as a person sees it: the panel scrolled to the top of the page (typing may have
 * scrolled it), all inside the 1024x768 window, and the server's count of open chat connections (polled every
 * second) caught up with `open`. With `first`, the chat log shows that message at its top.
 */
async function chatScreenshot(name, { open, first } = {}) {
  if (open !== undefined) {
    await waitFor(`#server-connections to count ${open} open`, () => run('return document.querySelector("#server-connections").dataset.open'),
      (o) => o === String(open))
  }
  const box = await run(`document.querySelector('main').scrollTop = 0
    const log = document.querySelector('#ws-log')
    const first = arguments[0] && Array.from(log.querySelectorAll('li.out')).find((li) => li.querySelector('.text').textContent === arguments[0])
    if (first) log.scrollTop = first.offsetTop - log.offsetTop - 8
    const r = document.querySelector('[data-panel="chat"]').getBoundingClientRect()
    const f = first && first.getBoundingClientRect(), l = log.getBoundingClientRect()
    return { top: r.top, bottom: r.bottom, vw: innerWidth, vh: innerHeight,
      firstShown: !first || (f.top >= l.top && f.bottom <= l.bottom) }`, first ?? null)
  assert.ok(box.top >= 0 && box.bottom <= box.vh && box.vw === 1024 && box.vh === 768 && box.firstShown,
    `expected the chat panel (and ${show(first)} in its log) all in view in a 1024x768 window, got ${show(box)}`)
  await saveScreenshot(shot(name))
}

test('connected: the badge says so, no banner, the welcome came first', { timeout: 60_000 }, () =>
  withLog(async () => {
    await size1024x768()
    await waitFor('#ws-state to say "connected"', () => textOf('#ws-state'), (s) => s === 'connected')
    await waitFor('the welcome in #ws-log', () => textOf('#ws-log li.in .text'), (t) => t?.startsWith('welcome'))
    const before = `before the stop ${stamp}`
    await say(before)
    await waitFor(`${show(before)} marked delivered (its echo came back)`, outgoing,
      (items) => items?.find((i) => i.text === before)?.delivery === 'delivered')
    assert.equal(await displayed('#ws-banner'), false, 'expected no reconnect banner while connected')
    assert.equal(await displayed('#ws-state'), true, 'expected the badge visible')
    const colour = await run('return getComputedStyle(document.querySelector("#ws-state")).color')
    assert.equal(colour, 'rgb(30, 127, 79)', `expected the green of connected, got ${show(colour)}`)
    await chatScreenshot('connected', { open: 1 })
  }),
)

test('server stopped: reconnecting with a countdown; messages typed meanwhile are queued, then delivered once each, in order, when it is back', { timeout: 120_000 }, () =>
  withLog(async () => {
    const acceptedBefore = (await serverStatus()).chatAccepted
    await serverButton('Stop the server', false)

    await waitFor('#ws-state to say "reconnecting"', () => textOf('#ws-state'), (s) => s === 'reconnecting')
    const banner = await waitFor(
      'the banner to count down to the next attempt',
      () => run(`const c = document.querySelector('#ws-countdown')
        return { text: document.querySelector('#ws-banner-text').textContent, countdown: c.textContent,
          left: c.dataset.remainingMs }`),
      (b) => /^in \d+\.\d s$/.test(b?.countdown ?? '') && Number(b.left) > 0,
    )
    assert.ok(Number(banner.left) <= 5000, `expected at most the 5 s maximum delay left, got ${show(banner)}`)
    assert.match(banner.text, /Reconnecting, attempt \d+ of 8/, `expected the attempt named, got ${show(banner)}`)
    assert.equal(await displayed('#ws-banner'), true, 'expected the banner visible')
    assert.equal(await displayed('#ws-reconnect'), false, 'expected no Reconnect button while reconnecting')
    // The countdown moves: a later reading of the same attempt shows less time left, or a new attempt.
    await waitFor('the countdown to move', () => run(`return document.querySelector('#ws-countdown').dataset.remainingMs`),
      (left) => left !== banner.left)
    await chatScreenshot('reconnecting')

    const typed = [1, 2, 3].map((n) => `queued ${n} ${stamp}`)
    for (const text of typed) await say(text)
    const queued = await waitFor('the three messages marked queued', outgoing,
      (items) => typed.every((t) => items?.find((i) => i.text === t)?.delivery === 'queued'))
    for (const t of typed) {
      const item = queued.find((i) => i.text === t)
      assert.equal(item.label, 'queued: waiting for the connection', `expected the queued label, got ${show(item)}`)
    }
    assert.notEqual(await textOf('#ws-state'), 'connected', 'expected the chat still down')
    await chatScreenshot('queued', { first: typed[0] })

    await serverButton('Start the server', true)
    await waitFor('#ws-state to say "connected" again', () => textOf('#ws-state'), (s) => s === 'connected')
    const delivered = await waitFor('the three messages marked delivered', outgoing,
      (items) => typed.every((t) => items?.find((i) => i.text === t)?.delivery === 'delivered'))
    // The page's order is the order typed.
    const order = delivered.map((i) => i.text).filter((t) => typed.includes(t))
    assert.deepEqual(order, typed, `expected the page to list them in the order typed, got ${show(order)}`)
    assert.equal(await displayed('#ws-banner'), false, 'expected the banner gone once connected')
    // Each echo came back once.
    const echoes = await run(`return Array.from(document.querySelectorAll('#ws-log li.in .text'), (e) => e.textContent)`)
    for (const t of typed) {
      assert.equal(echoes.filter((e) => e === t).length, 1, `expected one echo of ${show(t)}, got ${show(echoes)}`)
    }

    // The server saw each one once, in the order typed, after what came before the stop.
    const status = await serverStatus()
    const ours = status.chatReceived.filter((t) => t.endsWith(String(stamp)))
    assert.deepEqual(ours, [`before the stop ${stamp}`, ...typed],
      `expected the server to receive each message once, in order, got ${show(status.chatReceived)}`)
    assert.equal(status.serverStarts, 2, `expected the server started twice, got ${show(status)}`)
    assert.equal(status.chatAccepted, acceptedBefore + 1, `expected one new chat connection, got ${show(status)}`)
    assert.equal(status.chatOpen, 1, `expected one open chat connection, got ${show(status)}`)
    await chatScreenshot('delivered', { open: 1, first: typed[0] })
    const marks = await run(`return Array.from(document.querySelectorAll('#ws-log li.out .delivery'), (e) => e.textContent)`)
    assert.deepEqual(marks.slice(-3), ['delivered', 'delivered', 'delivered'], `expected the delivered marks shown, got ${show(marks)}`)
  }),
)

test('after maxRetries the chat fails, shows Reconnect, and Reconnect brings it back', { timeout: 150_000 }, () =>
  withLog(async () => {
    const acceptedBefore = (await serverStatus()).chatAccepted
    await serverButton('Stop the server', false)
    // 8 retries 1, 2, 4, 5, 5, 5, 5, 5 s apart (less up to 20 % jitter): about 26 to 32 s.
    await waitFor('#ws-state to say "failed"', () => textOf('#ws-state'), (s) => s === 'failed', 90_000)
    const text = await textOf('#ws-banner-text')
    assert.match(text, /^Gave up: gave up after 8 retries/, `expected the reason in the banner, got ${show(text)}`)
    assert.equal(await displayed('#ws-reconnect'), true, 'expected the Reconnect button visible')
    assert.equal(await textOf('#ws-reconnect'), 'Reconnect')
    const colour = await run('return getComputedStyle(document.querySelector("#ws-banner")).color')
    assert.equal(colour, 'rgb(197, 48, 48)', `expected the red of failed, got ${show(colour)}`)
    await chatScreenshot('failed')

    // Failed is terminal: the server coming back does not bring the chat back by itself...
    await serverButton('Start the server', true)
    assert.equal(await textOf('#ws-state'), 'failed', 'expected the chat to stay failed until Reconnect')
    // ...Reconnect does.
    await click('#ws-reconnect')
    await waitFor('#ws-state to say "connected" after Reconnect', () => textOf('#ws-state'), (s) => s === 'connected')
    assert.equal(await displayed('#ws-banner'), false, 'expected the banner gone')
    const after = `after reconnect ${stamp}`
    await say(after)
    await waitFor(`${show(after)} delivered`, outgoing, (items) => items?.find((i) => i.text === after)?.delivery === 'delivered')
    const status = await serverStatus()
    assert.equal(status.chatAccepted, acceptedBefore + 1, `expected one new chat connection, got ${show(status)}`)
    assert.equal(status.chatReceived.filter((t) => t === after).length, 1, `expected ${show(after)} once, got ${show(status)}`)
  }),
)
