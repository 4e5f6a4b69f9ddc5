// End-to-end test of the raw contract and the drop-in classes (src/panels/raw.ts, src/panels/dropin.ts) in the
// real webview: a panel that uses invoke('plugin:realtime|connect') and listen('realtime://<id>') as an app
// without the bindings would, and one that uses RealtimeEventSource / RealtimeWebSocket where code was written
// against the browser's classes; what the page shows, and what the demo server counts.

import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'

import { dataOf, demoBase, getJson, press } from './connections.mjs'
import { run, show, startApp, stopApp, textOf, typeInto, waitFor, withLog } from './webdriver.mjs'

/** The plugin's default linger (3 s) and a margin for a loaded machine. */
const LINGER_AND_MARGIN_MS = 15_000

let base

before(() =>
  withLog(async () => {
    await startApp()
    base = await demoBase()
    // The page's own chat is open first, so the counts below start from it.
    await waitFor('#ws-state to say "connected"', () => textOf('#ws-state'), (s) => s === 'connected')
  }),
)
after(stopApp)

const rawFrames = () =>
  run(`return Array.from(document.querySelectorAll('#raw-log li[data-seq]'), (li) => ({
    seq: Number(li.dataset.seq), kind: li.dataset.kind, data: li.querySelector('.data')?.textContent }))`)

test('raw contract: listen, then invoke connect; every frame in seq order; send and close by command', { timeout: 60_000 }, () =>
  withLog(async () => {
    const open = (await getJson(base, '/status')).chatOpen
    await press('#raw-connect')
    await waitFor('#raw-state to say "connected"', () => textOf('#raw-state'), (s) => s === 'connected')
    const id = await textOf('#raw-id')
    assert.match(id, /^realtime:\/\/[0-9a-f-]{36}$/, `expected the event name with a random id, got ${show(id)}`)
    await waitFor('the welcome message frame', rawFrames, (f) => f.some((x) => x.kind === 'message' && x.data.startsWith('welcome')))
    // A subscription of its own (share: false): the server counts one more chat connection.
    await waitFor(`the server to count ${open + 1} chat connections`, () => getJson(base, '/status'), (s) => s.chatOpen === open + 1)

    const text = `raw hello ${Date.now()}`
    await typeInto('#raw-input', text)
    await press('#raw-send')
    await waitFor('the echo', rawFrames, (f) => f.some((x) => x.kind === 'message' && x.data === text))

    await press('#raw-close')
    // close ends the subscription at once: the page says so and stops listening; no frame follows.
    await waitFor('#raw-state to say "disconnected"', () => textOf('#raw-state'), (s) => s === 'disconnected')
    const note = await textOf('#raw-log li.note')
    assert.equal(note, 'closed by plugin:realtime|close; listener removed')
    const frames = await rawFrames()
    const seqs = frames.map((f) => f.seq)
    assert.deepEqual(seqs, seqs.map((_, i) => i + 1), `expected frames numbered from 1 with no gap or repeat, got ${show(seqs)}`)
    assert.deepEqual(
      frames.filter((f) => f.kind === 'state').map((f) => f.data.split(' · ')[0]),
      ['connecting', 'connected'],
      `expected the states in order, got ${show(frames)}`,
    )
    const messages = frames.filter((f) => f.kind === 'message').map((f) => f.data)
    assert.equal(messages.length, 2, `expected the welcome and one echo, got ${show(messages)}`)
    assert.equal(messages[1], text)
    // share: false, so the upstream closes with its only subscription, without a linger.
    await waitFor(`the server to count ${open} chat connections again`, () => getJson(base, '/status'), (s) => s.chatOpen === open)
  }),
)

const esIds = () => run(`return Array.from(document.querySelectorAll('#es-log li'), (li) => Number(li.dataset.id))`)

test('RealtimeEventSource: readyState, named events with lastEventId, close', { timeout: 60_000 }, () =>
  withLog(async () => {
    await press('#es-open')
    await waitFor('#es-state OPEN', () => dataOf('#es-state'), (d) => d.ready === 'OPEN')
    assert.equal(await textOf('#es-state'), 'readyState 1 (OPEN)')
    const ids = await waitFor('at least 7 notice events', esIds, (list) => list.length >= 7)
    assert.deepEqual(ids, ids.map((_, i) => ids[0] + i), `expected consecutive ids, got ${show(ids)}`)
    assert.equal((await getJson(base, '/feeds')).eventsource, 1, 'expected the server to count one eventsource stream')
    const type = await textOf('#es-log li .type')
    assert.equal(type, 'notice', `expected MessageEvent.type "notice", got ${show(type)}`)

    await press('#es-close')
    assert.equal(await textOf('#es-state'), 'readyState 2 (CLOSED)')
    await waitFor('the server to count no eventsource stream', () => getJson(base, '/feeds'), (s) => s.eventsource === 0, LINGER_AND_MARGIN_MS)
  }),
)

const wsItems = () =>
  run(`return Array.from(document.querySelectorAll('#dws-log li'), (li) => ({
    type: li.querySelector('.type')?.textContent, data: li.querySelector('.data')?.textContent }))`)

test('RealtimeWebSocket: onopen, onmessage, send, close with onclose and its code', { timeout: 60_000 }, () =>
  withLog(async () => {
    await press('#dws-open')
    await waitFor('#dws-state OPEN', () => dataOf('#dws-state'), (d) => d.ready === 'OPEN')
    await waitFor('the welcome', wsItems, (items) => items[0]?.data.startsWith('welcome'))
    const text = `drop-in hello ${Date.now()}`
    await typeInto('#dws-input', text)
    await press('#dws-send')
    await waitFor('the echo', wsItems, (items) => items.some((i) => i.data === text))
    await press('#dws-close')
    const items = await waitFor('the close event', wsItems, (list) => list.some((i) => i.type === 'close'))
    assert.deepEqual(items.map((i) => i.type), ['message', 'message', 'close'], `got ${show(items)}`)
    assert.equal(items[2].data, 'code 1000')
    await waitFor('#dws-state CLOSED', () => dataOf('#dws-state'), (d) => d.ready === 'CLOSED')
  }),
)
