// End-to-end test of the search summary's polling fallback in the example app's real webview (WebKitGTK,
// WebKitWebDriver).
//
// The summary panel POSTs its query to `/summary` and streams the answer word by word, with
// `fallback: { pollUrl: /summary/poll?query=..., probeIntervalMs: 5000 }`. The test slows the streams down so a
// summary is still being written, refuses streaming with the page's switch: the panel must show `polling` and its
// health line must say so while the rest of the summary arrives by polls (what the server counts too); then it
// allows streaming: the panel must be `connected` again by itself, and the summary must hold every word once, in
// order. Saves artifacts/e2e-search-polling.png at 1024x768, of the polling state it asserts.
//
//   cargo build -p realtime-example          (after `npm run build` in examples/tauri-app)
//   xvfb-run -a -s "-screen 0 1280x900x24" node --test examples/tauri-app/e2e/search.test.mjs
//
// Env and helpers: see webdriver.mjs. Only 127.0.0.1 is contacted.

import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, test } from 'node:test'

import { dataOf, painted, press, reveal, viewport } from './connections.mjs'
import {
  attrOf,
  click,
  repo,
  run,
  saveScreenshot,
  show,
  startApp,
  stopApp,
  textOf,
  typeInto,
  waitFor,
  withLog,
} from './webdriver.mjs'

const SCREENSHOT = join(repo, 'artifacts/e2e-search-polling.png')

/** The page's `fallback.probeIntervalMs` for the summary, and the plugin's poll interval. */
const PROBE_MS = 5_000
const POLL_MS = 2_000

const QUERY = 'polling fallback'
/** What the demo server's summary says for QUERY (`summary_words` in src-tauri/src/demo/samples.rs). */
const EXPECTED = `Top results for \u201c${QUERY}\u201d agree: open streams in Rust, relay every frame to the page, and reconnect with backoff.`
const WORDS = EXPECTED.split(' ').length

before(() => withLog(() => startApp()))
after(() =>
  // Full speed again even if a test failed half-way: the app is stopped anyway, but say so to the server.
  invoke('demo_set_slow', { delayMs: 0 }).catch(() => undefined).finally(stopApp),
)

const invoke = (command, args = {}) =>
  run('return window.__TAURI_INTERNALS__.invoke(arguments[0], arguments[1])', command, args)

/** The events listed in #sse-log: `{ type, id, transport, data }`, in list order. */
const events = () =>
  run(`return Array.from(document.querySelectorAll('#sse-log li[data-id]'), (li) => ({
    type: li.querySelector('.type')?.textContent,
    id: Number(li.dataset.id),
    transport: li.dataset.transport,
    data: li.querySelector('.data')?.textContent,
  }))`)

/** Every line of #sse-log, error notes included: what to show when an assertion fails. */
const notes = () => run(`return Array.from(document.querySelectorAll('#sse-log li'), (li) => (li.dataset.transport ?? '') + ' ' + li.textContent)`)

const words = (list) => list.filter((e) => e.type === 'summary')
/** The transports of a list collapsed into runs, e.g. ['sse', 'poll', 'sse']. */
const runsOf = (list) => list.map((e) => e.transport).filter((t, i, all) => i === 0 || all[i - 1] !== t)
const health = () => run('return { text: document.querySelector("#sse-health").textContent, ...document.querySelector("#sse-health").dataset }')
const serverStatus = () => invoke('demo_status')

/** Ids must be 1, 2, 3, ...: none twice, none missing. */
function assertFromOne(list) {
  const ids = list.map((e) => e.id)
  assert.deepEqual(ids, ids.map((_, i) => i + 1), `expected ids 1, 2, 3, ... each once, got ${show(ids)}`)
}

test('the summary streams, and its health line says how', { timeout: 60_000 }, () =>
  withLog(async () => {
    await viewport(1024, 768)
    await waitFor('#sse-state to say "connected"', () => textOf('#sse-state'), (s) => s === 'connected')
    await waitFor('the first summary to finish', () => attrOf('#sse-summary', 'data-done'), (d) => d === 'true')
    const line = await waitFor('the health line to say streaming', health, (h) => h?.transport === 'sse' && Number(h.events) > 0)
    assert.match(line.text, /^streaming \(SSE\) · last id #\d+ · \d+ events · last \d+ s ago$/, `got ${show(line)}`)
    assert.equal(`#${line.lastId}`, line.text.match(/#\d+/)[0], `expected the line to name the last id, got ${show(line)}`)
    await waitFor('the demo server to report streaming', serverStatus, (s) => s?.streaming === true)
  }),
)

test('streaming refused: the summary polls, says so, and keeps arriving word by word', { timeout: 120_000 }, () =>
  withLog(async () => {
    // Slowed down (1.5 s a word), the new summary is still being written when streaming is refused.
    await invoke('demo_set_slow', { delayMs: 1500 })
    const query = await run('const q = document.querySelector("#sse-query"); q.value = ""; return true')
    assert.ok(query)
    const runBefore = Number((await dataOf('#sse-summary')).run)
    await typeInto('#sse-query', QUERY)
    await press('#sse-run')
    // The panel closes the previous stream before it clears its log: wait for this query's run, not the last one's.
    await waitFor(
      `the panel to run the query ${show(QUERY)}`,
      () => dataOf('#sse-summary'),
      (d) => d?.query === QUERY && Number(d.run) > runBefore,
    )
    const streamed = await waitFor('the new query to list 2 words', events, (l) => words(l ?? []).length >= 2, 20_000)
    assert.deepEqual(runsOf(streamed), ['sse'], `expected the first words streamed, got ${show(streamed)}; detail ${show(await textOf('#sse-detail'))}, the log: ${show(await notes())}`)

    const before = (await serverStatus()).summaryPolls
    await press('#toggle-streaming')
    await waitFor('the server to refuse streaming', serverStatus, (s) => s?.streaming === false, 10_000)
    await invoke('demo_set_slow', { delayMs: 0 })

    await waitFor('#sse-state to say "polling"', () => textOf('#sse-state'), (s) => s === 'polling', 20_000)
    const line = await health()
    assert.equal(line.transport, 'poll', `expected the health line's transport poll, got ${show(line)}`)
    assert.ok(line.text.startsWith('polling every 2 s · '), `expected the health line to say polling, got ${show(line)}`)

    // The rest of the summary comes by polls, a few words each, every 2 s.
    const list = await waitFor(
      'at least 2 more polled words',
      events,
      (l) => words(l ?? []).filter((e) => e.transport === 'poll').length >= 2,
      4 * POLL_MS + 5_000,
    )
    assert.deepEqual(runsOf(list), ['sse', 'poll'], `expected streamed events, then polled ones, got ${show(list)}; summary ${show(await dataOf('#sse-summary'))}, detail ${show(await textOf('#sse-detail'))}, log ${show(await notes())}`)
    assertFromOne(list)
    const status = await serverStatus()
    assert.ok(status.summaryPolls >= before + 1, `expected the server to have answered polls, got ${status.summaryPolls - before}`)
    assert.equal(status.summaryStreams, 0, `expected no summary stream open while refused, got ${show(status)}`)
    const polling = await health()
    assert.equal(polling.lastId, String(list.at(-1).id), `expected the health line's last id to be the newest event, got ${show(polling)}`)
    assert.equal(Number(polling.events), list.length, `expected the health line to count every event, got ${show(polling)}`)

    // What a person sees at 1024x768: the panel polling, its health line, the summary so far.
    await viewport(1024, 768)
    for (const selector of ['#sse-title', '#sse-state', '#sse-health', '#sse-summary']) {
      const box = await reveal(selector)
      assert.ok(box?.inside && box.visible, `expected ${selector} inside the 1024x768 viewport, got ${show(box)}`)
    }
    await painted()
    const shown = await run(`return {
      badge: document.querySelector('#sse-state').textContent,
      health: document.querySelector('#sse-health').textContent,
      summary: document.querySelector('#sse-summary').textContent,
      pill: document.querySelector('#server-streaming').textContent }`)
    assert.equal(shown.badge, 'polling', `got ${show(shown)}`)
    assert.ok(shown.health.startsWith('polling every 2 s'), `got ${show(shown)}`)
    assert.ok(EXPECTED.startsWith(shown.summary) && shown.summary.split(' ').length >= 4, `expected the summary's start, got ${show(shown)}`)
    assert.equal(shown.pill, 'refusing streams', `got ${show(shown)}`)
    await saveScreenshot(SCREENSHOT)
  }),
)

test('streaming allowed: connected again by itself, every word once and in order', { timeout: 120_000 }, () =>
  withLog(async () => {
    await click('#toggle-streaming')
    await waitFor('the server to stream again', serverStatus, (s) => s?.streaming === true, 10_000)
    // The next probe is at most one probe interval away (a poll in flight may delay it by its own duration).
    await waitFor('#sse-state to say "connected" by itself', () => textOf('#sse-state'), (s) => s === 'connected', PROBE_MS + POLL_MS + 5_000)
    await waitFor('the health line to say streaming', health, (h) => h?.transport === 'sse', 5_000)

    await waitFor('the summary to finish', () => attrOf('#sse-summary', 'data-done'), (d) => d === 'true', 30_000)
    // A tick after the probe: the stream is back, resumed after the last polled id.
    const list = await waitFor('a streamed tick', events, (l) => l?.at(-1)?.type === 'tick' && l.at(-1).transport === 'sse', 20_000)
    assertFromOne(list)
    assert.equal(runsOf(list)[0], 'sse', `expected the summary to start streamed, got ${show(runsOf(list))}`)
    assert.ok(runsOf(list).includes('poll'), `expected some events polled, got ${show(runsOf(list))}`)
    assert.equal(runsOf(list).at(-1), 'sse', `expected the last events streamed, got ${show(runsOf(list))}`)
    assert.deepEqual(words(list).map((e) => e.id), Array.from({ length: WORDS }, (_, i) => i + 1))
    const done = list.find((e) => e.type === 'done')
    assert.equal(done?.data, `{"words":${WORDS}}`, `expected one done after ${WORDS} words, got ${show(done)}`)
    const summary = await textOf('#sse-summary')
    assert.equal(summary, EXPECTED, 'expected every word once, in order')
    const line = await health()
    assert.equal(line.lastId, String(list.at(-1).id), `got ${show(line)}`)
  }),
)
