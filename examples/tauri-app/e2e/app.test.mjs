// End-to-end test of the example app in its real webview (WebKitGTK), driven by WebKitWebDriver over the
// WebDriver HTTP API with plain fetch.
//
//   cargo build -p realtime-example          (after `npm run build` in examples/tauri-app)
//   xvfb-run -a node --test examples/tauri-app/e2e/
//
// Env and helpers: see webdriver.mjs. Only 127.0.0.1 is contacted: the driver listens there and the app's demo
// server too.

import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, test } from 'node:test'

import {
  element,
  repo,
  run,
  saveScreenshot,
  session,
  show,
  startApp,
  stopApp,
  textOf,
  textsOf,
  waitFor,
  wd,
  withLog,
} from './webdriver.mjs'

const SCREENSHOT = join(repo, 'artifacts/e2e-main.png')

// Set-up and tear-down: always delete the session and stop the driver and the app, also after a failure.
before(() => withLog(() => startApp()))
after(stopApp)

// ---------------------------------------------------------------------------------------------------------------
// Tests (in order, on one app instance)
// ---------------------------------------------------------------------------------------------------------------

test('every state badge reaches connected', { timeout: 60_000 }, () =>
  withLog(async () => {
    await waitFor('#ws-state to say "connected"', () => textOf('#ws-state'), (s) => s === 'connected')
    await waitFor('#sse-state to say "connected"', () => textOf('#sse-state'), (s) => s === 'connected')
    await waitFor('#feed-state to say "connected"', () => textOf('#feed-state'), (s) => s === 'connected')
    const colour = await run('return getComputedStyle(document.querySelector("#ws-state")).backgroundColor')
    assert.notEqual(colour, 'rgba(0, 0, 0, 0)', `expected the badge to be coloured, got ${show(colour)}`)
  }),
)

test('the direct route: the page receiver that Rust calls holds every connection, frozen and unlisted', { timeout: 60_000 }, () =>
  withLog(async () => {
    const r = await run(`
      const r = window.__TAURI_PLUGIN_REALTIME__
      return r && { held: r.connections.size, frozen: Object.isFrozen(r),
        listed: Object.keys(window).includes('__TAURI_PLUGIN_REALTIME__') }`)
    // The chat, the summary, the feed and the topics panel.
    assert.deepEqual(r, { held: 4, frozen: true, listed: false }, `receiver: ${show(r)}`)
  }),
)

test('chat through the bindings (the direct route): the welcome comes first, then a typed message is echoed', { timeout: 60_000 }, () =>
  withLog(async () => {
    // The server greets as soon as the socket opens: seeing it proves no frame was lost before the listener.
    const first = await waitFor(
      'a first message in #ws-log',
      () => textsOf('#ws-log li.in .text'),
      (texts) => Array.isArray(texts) && texts.length > 0,
    )
    assert.ok(first[0].startsWith('welcome'), `expected the welcome message first, got ${show(first[0])}`)

    const message = `hello from e2e ${Date.now()}`
    const input = await element('#ws-input')
    await wd('POST', session(`/element/${input}/value`), { text: message })
    const button = await element('#ws-send')
    await wd('POST', session(`/element/${button}/click`), {})

    const sent = await waitFor(
      `our message in #ws-log as sent (li.out)`,
      () => textsOf('#ws-log li.out .text'),
      (texts) => Array.isArray(texts) && texts.includes(message),
    )
    assert.ok(sent.includes(message))
    await waitFor(
      `the echo ${show(message)} in #ws-log (li.in)`,
      () => textsOf('#ws-log li.in .text'),
      (texts) => Array.isArray(texts) && texts.includes(message),
    )
    const inputValue = await run('return document.querySelector("#ws-input").value')
    assert.equal(inputValue, '', `expected the input to be cleared after sending, got ${show(inputValue)}`)
  }),
)

const sseEvents = () =>
  run(`return Array.from(document.querySelectorAll('#sse-log li'), (li) => ({
    type: li.querySelector('.type')?.textContent,
    id: li.querySelector('.id')?.textContent,
    data: li.querySelector('.data')?.textContent,
  }))`)

/** The ids listed in #sse-log must be 1, 2, 3, ...: nothing lost at the start, no gap, no repeat. */
async function assertIdsFromOne() {
  const ids = (await textsOf('#sse-log li .id')).map((id) => Number(id.slice(1)))
  const expected = ids.map((_, i) => i + 1)
  assert.deepEqual(ids, expected, `expected ids ${show(expected)} with no gap or repeat, got ${show(ids)}`)
}

test('summary: the first stream lists SSE events from id 1 and completes', { timeout: 60_000 }, () =>
  withLog(async () => {
    const events = await waitFor('at least 3 items in #sse-log', sseEvents, (items) => items?.length >= 3)
    assert.deepEqual(
      events.slice(0, 3).map((e) => `${e.type} ${e.id}`),
      ['summary #1', 'summary #2', 'summary #3'],
      `expected summary events #1, #2, #3 first, got ${show(events.slice(0, 3))}`,
    )
    await waitFor('the first summary to finish (data-done="true")', () =>
      run('return document.querySelector("#sse-summary").dataset.done'), (d) => d === 'true')
    const summary = await textOf('#sse-summary')
    assert.ok(summary.includes('tauri realtime'), `expected the summary to name the query, got ${show(summary)}`)
    await assertIdsFromOne()
  }),
)

test('summary: a new query (POST body) streams again and the text grows to done', { timeout: 60_000 }, () =>
  withLog(async () => {
    const query = await element('#sse-query')
    await wd('POST', session(`/element/${query}/clear`), {})
    await wd('POST', session(`/element/${query}/value`), { text: 'webdriver e2e' })
    const button = await element('#sse-run')
    await wd('POST', session(`/element/${button}/click`), {})

    // The page clears the panel (data-done back to "false") and opens a new stream, whose first word is listed
    // as summary #1 again.
    await waitFor('the panel to reset (data-done="false")', () =>
      run('return document.querySelector("#sse-summary").dataset.done'), (d) => d === 'false')
    const events = await waitFor(
      'the new stream to list at least 3 events from summary #1',
      sseEvents,
      (items) => items?.length >= 3 && items[0].type === 'summary' && items[0].id === '#1',
    )
    assert.equal(events[0].data, 'Top', `expected the first word "Top", got ${show(events[0])}`)

    const start = await textOf('#sse-summary')
    await waitFor(
      `the summary text to grow beyond ${show(start)}`,
      () => textOf('#sse-summary'),
      (t) => typeof t === 'string' && t.length > start.length && t.startsWith(start),
    )
    await waitFor('the summary to finish (data-done="true")', () =>
      run('return document.querySelector("#sse-summary").dataset.done'), (d) => d === 'true')
    const summary = await textOf('#sse-summary')
    assert.ok(summary.includes('webdriver e2e'), `expected the summary to name the new query, got ${show(summary)}`)
    const types = await textsOf('#sse-log li .type')
    assert.equal(types.at(-1), 'done', `expected the last event to be done, got ${show(types)}`)
    await assertIdsFromOne()
    const state = await textOf('#sse-state')
    assert.equal(state, 'connected', `expected #sse-state connected, got ${show(state)}`)
  }),
)

// ---------------------------------------------------------------------------------------------------------------
// The routes, used without the bindings: what an app that calls the commands itself gets
// ---------------------------------------------------------------------------------------------------------------

/**
 * In the page: collects the frames of subscription `id` on `route` (`undefined` for the default) into
 * `window.__e2eRoutes[id]`, registered before `connect` as the README says, then connects to the demo chat.
 * The event route is listened to as `listen()` does it (`plugin:event|listen` with target `Any`); the direct
 * route's compact batches are expanded as the bindings do (a string is the next message like the one before).
 */
const OPEN_RAW = `return (async () => {
  const [id, route] = arguments
  const I = window.__TAURI_INTERNALS__
  const got = ((window.__e2eRoutes ??= {})[id] = { frames: [], batches: 0 })
  const take = (items) => {
    got.batches++
    for (const item of items) {
      const prev = got.frames.at(-1)
      got.frames.push(typeof item === 'string' ? { ...prev, seq: prev.seq + 1, data: item } : item)
    }
  }
  if (route === 'direct') window.__TAURI_PLUGIN_REALTIME__.connections.set(id, { receiveWire: take })
  else {
    const handler = I.transformCallback((event) => take(event.payload))
    got.eventId = await I.invoke('plugin:event|listen', { event: 'realtime://' + id, target: { kind: 'Any' }, handler })
  }
  const urls = await I.invoke('demo_urls')
  const args = { id, options: { url: urls.ws, share: false } }
  if (route !== undefined) args.route = route
  return I.invoke('plugin:realtime|connect', args)
})()`

const rawFrames = (id) => run('return window.__e2eRoutes?.[arguments[0]] ?? null', id)

const rawInvoke = (cmd, args) => run('return window.__TAURI_INTERNALS__.invoke(arguments[0], arguments[1])', cmd, args)

/** Sends `data` in order on subscription `id`, each send awaited, in one WebDriver call. */
const SEND_ALL = `return (async () => {
  const [id, all] = arguments
  for (const data of all) await window.__TAURI_INTERNALS__.invoke('plugin:realtime|send', { id, data })
})()`

/**
 * Opens a raw subscription on `route`, has the chat echo a short and a 600 kB message, then a run of small
 * messages with one of 3 kB every third and one of 600 kB every fifteenth, and checks every frame. On WebKitGTK
 * the direct route hands a batch to the page as a function argument unless its frames average over 256 KiB, and
 * then as a script (src/relay/receiver.rs): the echoes cross from one form to the other and back, in batches of
 * one or several.
 */
async function rawRoute(id, route) {
  const opened = await run(OPEN_RAW, id, route)
  assert.deepEqual(opened, { id, state: 'connecting', shared: false }, `expected ${id} to connect, got ${show(opened)}`)
  const messages = (got) => got?.frames.filter((f) => f.kind === 'message').map((f) => f.data) ?? []
  await waitFor(`${id}'s welcome`, () => rawFrames(id), (got) => messages(got).length >= 1)
  const short = `hello over ${route ?? 'the default route'}`
  const long = `${id} `.padEnd(600_000, 'x')
  const mixed = Array.from({ length: 60 }, (_, i) =>
    i % 15 === 14 ? `${id} ${i} `.padEnd(600_000, 'z') : i % 3 === 2 ? `${id} ${i} `.padEnd(3000, 'y') : `${id} ${i} "small" \u2028`,
  )
  await run(SEND_ALL, id, [short, long, ...mixed])
  const got = await waitFor(`${id}'s ${2 + mixed.length} echoes`, () => rawFrames(id), (g) => messages(g).length >= 3 + mixed.length)

  const seqs = got.frames.map((f) => f.seq)
  assert.deepEqual(seqs, seqs.map((_, i) => i + 1), `expected ${id}'s frames numbered from 1 with no gap, got ${show(seqs)}`)
  const states = got.frames.filter((f) => f.kind === 'state').map((f) => f.state)
  assert.deepEqual(states.slice(0, 2), ['connecting', 'connected'], `expected ${id} to start connecting, got ${show(states)}`)
  const [welcome, ...echoes] = messages(got)
  assert.ok(welcome.startsWith('welcome'), `expected the welcome first, got ${show(welcome)}`)
  assert.deepEqual(echoes.slice(0, 2).map((d) => d.length), [short.length, long.length], `expected both echoes whole`)
  assert.deepEqual(echoes, [short, long, ...mixed], `expected every echo whole and in order, got ${show(echoes.slice(2).map((d) => d.slice(0, 24)))}`)

  await rawInvoke('plugin:realtime|close', { id })
  if (got.eventId !== undefined) {
    await rawInvoke('plugin:event|unlisten', { event: `realtime://${id}`, eventId: got.eventId })
  }
  await run('window.__TAURI_PLUGIN_REALTIME__.connections.delete(arguments[0])', id)
  return got
}

test('the event route: invoke connect with no route, listen to realtime://<id>, get every frame in seq order', { timeout: 60_000 }, () =>
  withLog(async () => {
    const got = await rawRoute('e2e-event')
    assert.ok(got.eventId !== undefined, 'expected a listener id from plugin:event|listen')
  }),
)

test('the direct route without the bindings: route "direct" delivers compact batches to the page receiver', { timeout: 60_000 }, () =>
  withLog(async () => {
    const got = await rawRoute('e2e-direct', 'direct')
    assert.equal(got.eventId, undefined)
  }),
)

test('screenshot of the window is saved to artifacts/e2e-main.png', { timeout: 60_000 }, () =>
  withLog(async () => {
    await saveScreenshot(SCREENSHOT)
  }),
)
