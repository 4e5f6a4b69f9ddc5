// End-to-end test of the polling fallback in the example app's real webview (WebKitGTK, WebKitWebDriver).
//
// The live feed panel connects `{ url: /feed/stream, fallback: { pollUrl: /feed, probeIntervalMs: 5000 } }`. The
// test makes the demo server refuse streaming with the page's own switch (#toggle-streaming): the badge must show
// `polling` and feed items must keep arriving (polled every 2 s); then it allows streaming again: the badge must
// return to `connected` by itself (the next probe) and items must keep arriving, with no id twice or missing
// across both switches.
//
//   cargo build -p realtime-example          (after `npm run build` in examples/tauri-app)
//   xvfb-run -a -s "-screen 0 1280x900x24" node --test examples/tauri-app/e2e/
//
// Env and helpers: see webdriver.mjs. Only 127.0.0.1 is contacted.

import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, test } from 'node:test'

import {
  attrOf,
  click,
  repo,
  run,
  saveScreenshot,
  show,
  sleep,
  startApp,
  stopApp,
  textOf,
  waitFor,
  withLog,
} from './webdriver.mjs'

const SCREENSHOT = join(repo, 'artifacts/e2e-polling.png')

/** The page's `fallback.probeIntervalMs` for the feed. */
const PROBE_MS = 5_000
/** The plugin's default poll interval. */
const POLL_MS = 2_000

before(() => withLog(() => startApp()))
after(stopApp)

/** The feed items listed in #feed-log: `{ id, transport }`, in list order. */
const feedItems = () =>
  run(`return Array.from(document.querySelectorAll('#feed-log li[data-id]'), (li) => ({
    id: Number(li.dataset.id),
    transport: li.dataset.transport,
  }))`)

/** Ids must rise by exactly one from item to item: none twice, none missing. */
function assertConsecutive(items) {
  const ids = items.map((item) => item.id)
  const seen = new Set()
  const twice = ids.filter((id) => seen.has(id) || !seen.add(id))
  assert.deepEqual(twice, [], `expected no feed id twice, got ${show(twice)} twice in ${show(ids)}`)
  const missing = []
  for (let i = 1; i < ids.length; i += 1) {
    for (let id = ids[i - 1] + 1; id < ids[i]; id += 1) missing.push(id)
  }
  assert.deepEqual(missing, [], `expected no feed id missing, got ${show(missing)} missing in ${show(ids)}`)
  const expected = ids.map((_, i) => ids[0] + i)
  assert.deepEqual(ids, expected, `expected consecutive ids ${show(expected)}, got ${show(ids)}`)
}

/** The transports of the list collapsed into runs, e.g. ['sse', 'poll', 'sse']. */
const runsOf = (items) => items.map((i) => i.transport).filter((t, i, all) => i === 0 || all[i - 1] !== t)

const badgeColour = (selector) =>
  run('return getComputedStyle(document.querySelector(arguments[0])).backgroundColor', selector)

let connectedColour
let streamedBefore = 0

test('the feed streams: badge connected, items arrive over SSE with rising ids', { timeout: 60_000 }, () =>
  withLog(async () => {
    await waitFor('#feed-state to say "connected"', () => textOf('#feed-state'), (s) => s === 'connected')
    connectedColour = await badgeColour('#feed-state')
    const items = await waitFor('at least 3 items in #feed-log', feedItems, (list) => list?.length >= 3)
    assert.deepEqual(runsOf(items), ['sse'], `expected every item so far streamed (sse), got ${show(items)}`)
    assertConsecutive(items)
    // The switch knows the server's state once the first status arrived.
    await waitFor(
      '#toggle-streaming to be ready, with data-streaming="true"',
      () => run('const b = document.querySelector("#toggle-streaming"); return { disabled: b.disabled, streaming: b.dataset.streaming }'),
      (b) => b?.disabled === false && b.streaming === 'true',
    )
    await waitFor('#ws-state to say "connected"', () => textOf('#ws-state'), (s) => s === 'connected')
    streamedBefore = items.length
  }),
)

test('streaming refused: the badge shows polling, items keep arriving by polls, none twice', { timeout: 90_000 }, () =>
  withLog(async () => {
    await click('#toggle-streaming')
    await waitFor(
      'the server to refuse streaming (#server-streaming data-streaming="false")',
      () => attrOf('#server-streaming', 'data-streaming'),
      (s) => s === 'false',
      10_000,
    )
    // The open stream ends at once; the next attempt gets application/json: the plugin polls without more tries.
    const switched = Date.now()
    await waitFor('#feed-state to say "polling"', () => textOf('#feed-state'), (s) => s === 'polling', 15_000)
    const tookMs = Date.now() - switched
    assert.ok(tookMs < 10_000, `expected polling within 10 s of the switch, got ${tookMs} ms`)
    const colour = await badgeColour('#feed-state')
    assert.notEqual(colour, connectedColour, `expected the polling badge coloured unlike connected, got ${show(colour)}`)
    const detail = await textOf('#feed-detail')
    assert.ok(detail.includes('via poll'), `expected the detail to say "via poll", got ${show(detail)}`)

    // Two polls' worth of new events (one event a second, a poll every 2 s).
    const items = await waitFor(
      'at least 2 more items in #feed-log that came by polling',
      feedItems,
      (list) => list?.filter((i) => i.transport === 'poll').length >= 2,
      4 * POLL_MS + 5_000,
    )
    const polled = items.filter((i) => i.transport === 'poll')
    assert.ok(items.length >= streamedBefore + 2, `expected at least 2 more items, got ${items.length - streamedBefore}`)
    assert.deepEqual(runsOf(items), ['sse', 'poll'], `expected streamed items, then polled ones, got ${show(runsOf(items))}`)
    assertConsecutive(items)

    // Still polling after a few more intervals, and still delivering.
    const more = await waitFor(
      `more polled items after ${polled.length}`,
      feedItems,
      (list) => list?.filter((i) => i.transport === 'poll').length >= polled.length + 2,
      4 * POLL_MS + 5_000,
    )
    const state = await textOf('#feed-state')
    assert.equal(state, 'polling', `expected #feed-state to stay polling while refused, got ${show(state)}`)
    assertConsecutive(more)

    // About every 2 s: count the polls the server answers over a few intervals.
    const polls = () => run('return window.__TAURI_INTERNALS__.invoke("demo_status").then((s) => s.feedPolls)')
    const firstCount = await polls()
    const firstAt = Date.now()
    await sleep(4 * POLL_MS)
    const lastCount = await polls()
    const everyMs = (Date.now() - firstAt) / Math.max(1, lastCount - firstCount)
    assert.ok(
      everyMs >= 0.75 * POLL_MS && everyMs <= 1.75 * POLL_MS,
      `expected a poll about every ${POLL_MS} ms, got one every ${Math.round(everyMs)} ms (${lastCount - firstCount} polls)`,
    )

    // The chat has no fallback: it waits to reconnect.
    const chat = await textOf('#ws-state')
    assert.ok(['reconnecting', 'connecting'].includes(chat), `expected the chat to be reconnecting, got ${show(chat)}`)

    await saveScreenshot(SCREENSHOT)
  }),
)

test('streaming allowed again: connected by itself within the probe interval, no id twice or missing', { timeout: 90_000 }, () =>
  withLog(async () => {
    const before = await feedItems()
    await click('#toggle-streaming')
    await waitFor(
      'the server to stream again (#server-streaming data-streaming="true")',
      () => attrOf('#server-streaming', 'data-streaming'),
      (s) => s === 'true',
      10_000,
    )
    const allowed = Date.now()
    // The next probe is at most one probe interval away (a poll in flight may delay it by its own duration).
    const limit = PROBE_MS + POLL_MS + 3_000
    await waitFor(
      `#feed-state to say "connected" by itself`,
      () => textOf('#feed-state'),
      (s) => s === 'connected',
      limit,
    )
    const tookMs = Date.now() - allowed
    assert.ok(tookMs <= limit, `expected connected within ${limit} ms, got ${tookMs} ms`)

    const items = await waitFor(
      'at least 2 more items streamed after the switch back',
      feedItems,
      (list) => list?.length >= before.length + 2 && list.at(-1)?.transport === 'sse' && list.at(-2)?.transport === 'sse',
      15_000,
    )
    assert.deepEqual(
      runsOf(items),
      ['sse', 'poll', 'sse'],
      `expected streamed, then polled, then streamed items, got ${show(runsOf(items))}`,
    )
    assertConsecutive(items)
    const detail = await textOf('#feed-detail')
    assert.ok(detail.includes('via sse'), `expected the detail to say "via sse", got ${show(detail)}`)

    // The chat and the summary (no fallback) come back too.
    await waitFor('#ws-state to say "connected" again', () => textOf('#ws-state'), (s) => s === 'connected', 20_000)
    await waitFor('#sse-state to say "connected" again', () => textOf('#sse-state'), (s) => s === 'connected', 20_000)
  }),
)
