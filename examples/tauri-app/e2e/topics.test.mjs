// End-to-end test of the topics panel in the real webview (issue 15, item 5): topics subscribed with
// `setOnConnect` and dropped with `removeOnConnect`, re-sent after a reconnect, messages dispatched by `type`
// with `handle()`, and the application heartbeat (`{"type":"ping"}` / `{"type":"pong"}`) against the demo
// server's `/topics`. What the server holds is read from its `/status` over HTTP.
//
//   REALTIME_EXAMPLE_BIN=target/debug/realtime-example xvfb-run -a node --test examples/tauri-app/e2e/topics.test.mjs
//
// Saves artifacts/e2e-topics.png at 1024x768.

import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, test } from 'node:test'

import { click, repo, run, saveScreenshot, session, show, startApp, stopApp, textOf, waitFor, wd, withLog } from './webdriver.mjs'

const SCREENSHOT = join(repo, 'artifacts/e2e-topics.png')

before(() => withLog(() => startApp()))
after(stopApp)

async function serverStatus() {
  const host = await textOf('#server-addr')
  const response = await fetch(`http://${host}/status`, { signal: AbortSignal.timeout(5_000) })
  assert.equal(response.status, 200, `expected /status to answer 200, got ${response.status}`)
  return response.json()
}

/** The page's view: wanted and confirmed topics, counts by type, heartbeat. */
const page = () =>
  run(`const s = document.querySelector('#topics-subscribed'), h = document.querySelector('#topics-heartbeat')
    return { state: document.querySelector('#topics-state').textContent, wanted: s.dataset.topics,
      confirmed: s.dataset.confirmed, health: h.dataset.health, pongs: Number(h.dataset.pongs ?? 0),
      heartbeat: h.textContent,
      counts: Object.fromEntries(Array.from(document.querySelectorAll('#topics-counts li'),
        (li) => [li.dataset.type, Number(li.dataset.count)])) }`)

/** The one open `/topics` socket the server has, once it is the only one. */
async function oneSocket(what, accept) {
  const status = await waitFor(what, serverStatus, (s) => s.topicSockets?.length === 1 && accept(s.topicSockets[0], s))
  return { socket: status.topicSockets[0], status }
}

/** Scrolls the panel into view (unless `scroll` is false) and checks it is all inside the 1024x768 window. */
async function inView(selector, scroll = true) {
  if (scroll) await run(`document.querySelector(arguments[0]).scrollIntoView({ block: 'start' })`, selector)
  const box = await run(`const r = document.querySelector(arguments[0]).getBoundingClientRect()
    return { top: r.top, bottom: r.bottom, width: r.width, vw: innerWidth, vh: innerHeight }`, selector)
  assert.ok(box.top >= 0 && box.bottom <= box.vh && box.width > 250 && box.vw === 1024 && box.vh === 768,
    `expected ${selector} all in view in a 1024x768 window, got ${show(box)}`)
}

async function clickWhenEnabled(selector) {
  await waitFor(`${selector} to be enabled`, () => run('return !document.querySelector(arguments[0]).disabled', selector), Boolean)
  await click(selector)
}

test('subscribing two topics: the server holds both, typed messages are dispatched by type, pongs come back', { timeout: 60_000 }, () =>
  withLog(async () => {
    await wd('POST', session('/window/rect'), { width: 1024, height: 768 })
    await waitFor('the page to be 1024x768', () => run('return [innerWidth, innerHeight].join("x")'), (s) => s === '1024x768')
    await waitFor('#topics-state to say "connected"', () => textOf('#topics-state'), (s) => s === 'connected')
    await clickWhenEnabled('.topic-toggle[data-topic="news"]')
    await clickWhenEnabled('.topic-toggle[data-topic="prices"]')
    await waitFor('news and prices confirmed by the server', page, (p) => p.wanted === 'news,prices' && p.confirmed === 'news,prices')
    const { socket } = await oneSocket('the server to hold news and prices on one socket',
      (s) => s.topics.join() === 'news,prices')
    assert.equal(socket.subscribes, 2, `expected two subscribe messages, got ${show(socket)}`)

    const seen = await waitFor('at least 2 headlines and 2 prices, and a pong', page,
      (p) => p.counts.headline >= 2 && p.counts.price >= 2 && p.pongs >= 1)
    assert.equal(seen.health, 'ok', `expected a healthy heartbeat, got ${show(seen)}`)
    assert.equal(seen.counts.reading, undefined, `expected no weather readings (not subscribed), got ${show(seen.counts)}`)
    assert.equal(seen.counts.subscribed, 2, `expected two confirmations, got ${show(seen.counts)}`)
    // Each type went to its own handler, which labels it with its topic.
    const rows = await run(`return Array.from(document.querySelectorAll('#topics-log li'), (li) =>
      li.dataset.type + ' ' + li.querySelector('.id').textContent)`)
    for (const row of rows.filter((r) => /^(headline|price|reading) /.test(r))) {
      assert.ok(['headline news', 'price prices'].includes(row), `expected each type on its topic, got ${show(row)}`)
    }
    const status = await serverStatus()
    assert.ok(status.pingsAnswered >= 1, `expected the server to answer application pings, got ${show(status)}`)
    assert.equal(status.protocolPings, 0, `expected no protocol ping beside the application heartbeat, got ${show(status)}`)
  }),
)

test('unsubscribing: the server drops the topic and its messages stop', { timeout: 60_000 }, () =>
  withLog(async () => {
    await clickWhenEnabled('.topic-toggle[data-topic="news"]')
    await oneSocket('the server to hold prices only', (s) => s.topics.join() === 'prices' && s.unsubscribes === 1)
    // Every headline sent before the unsubscribe comes before its answer on the socket.
    const at = await waitFor('the unsubscribe answered', page, (p) => p.counts.unsubscribed === 1)
    const later = await waitFor('two more prices', page, (p) => p.counts.price >= at.counts.price + 2)
    assert.equal(later.counts.headline, at.counts.headline, `expected no headline after unsubscribing, got ${show(later.counts)}`)
    assert.equal(later.wanted, 'prices')
  }),
)

test('after a dropped connection the subscription is sent again, once, on the new socket', { timeout: 60_000 }, () =>
  withLog(async () => {
    const before = await serverStatus()
    const oldId = before.topicSockets[0].id
    await clickWhenEnabled('#ctl-drop')
    const { socket, status } = await oneSocket('a new socket holding prices again',
      (s) => s.id > oldId && s.topics.join() === 'prices')
    assert.equal(socket.subscribes, 1, `expected the subscription re-sent once, got ${show(socket)}`)
    assert.equal(socket.unsubscribes, 0, `expected no unsubscribe on the new socket, got ${show(socket)}`)
    assert.equal(status.topicsAccepted, before.topicsAccepted + 1, `expected one new socket, got ${show(status)}`)
    await waitFor('the page to show prices confirmed again, connected', page,
      (p) => p.state === 'connected' && p.confirmed === 'prices')

    // The panel as a person sees it: scrolled into view, inside the 1024x768 window.
    await inView('[data-panel="topics"]')
    // The page polls the server's status every second: wait for it to show the new socket.
    await waitFor('#topics-server to show the new socket holding prices', () => textOf('#topics-server'),
      (t) => t?.includes(`socket #${socket.id}: prices`))
    const shown = await run(`return { chips: document.querySelector('#topics-subscribed').textContent,
      server: document.querySelector('#topics-server').textContent,
      heartbeat: document.querySelector('#topics-heartbeat').textContent }`)
    assert.equal(shown.chips, 'prices', `expected the subscribed chip, got ${show(shown)}`)
    assert.match(shown.server, /socket #\d+: prices/, `expected the server's view, got ${show(shown)}`)
    assert.match(shown.heartbeat, /^heartbeat: \d+ pongs?, the last/, `expected the heartbeat health, got ${show(shown)}`)
    await saveScreenshot(SCREENSHOT)
    await inView('[data-panel="topics"]', false)
  }),
)

test('a server that stops answering application pings: the heartbeat misses, the panel reconnects, and recovers', { timeout: 60_000 }, () =>
  withLog(async () => {
    await clickWhenEnabled('#ctl-pings')
    const missed = await waitFor('the heartbeat to miss and the panel to reconnect', page,
      (p) => p.health === 'missed' && p.state === 'reconnecting', 20_000)
    assert.match(missed.heartbeat, /^heartbeat: no pong within 2 s, reconnecting/, `got ${show(missed)}`)
    const status = await serverStatus()
    assert.equal(status.answerPings, false, `expected pings off, got ${show(status)}`)
    assert.ok(status.pingsIgnored >= 1, `expected ignored pings, got ${show(status)}`)

    await clickWhenEnabled('#ctl-pings')
    const pongs = (await page()).pongs
    await waitFor('pongs again and a healthy heartbeat', page, (p) => p.pongs > pongs && p.health === 'ok' && p.state === 'connected', 20_000)
    await oneSocket('the server to hold prices again', (s) => s.topics.join() === 'prices')
  }),
)
