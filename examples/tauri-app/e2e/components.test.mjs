// End-to-end test of the components panel (src/panels/components.ts) in the real webview: the three
// web-component patterns hold the same feed, and the counts the page shows (elements, upstreams and
// subscribers from inspect(), streams at the demo server) match what the demo server counts itself, down to
// zero after the plugin's linger once every element is gone. Saves artifacts/e2e-components.png at 1024x768.

import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, test } from 'node:test'

import { dataOf, demoBase, getJson, painted, press, reveal, viewport } from './connections.mjs'
import { repo, run, saveScreenshot, show, startApp, stopApp, textOf, waitFor, withLog } from './webdriver.mjs'

const SCREENSHOT = join(repo, 'artifacts/e2e-components.png')
const PATTERNS = ['own', 'service', 'provider']
/** The plugin's default linger (3 s) and a margin for a loaded machine. */
const LINGER_AND_MARGIN_MS = 15_000

let base

before(() =>
  withLog(async () => {
    await startApp()
    base = await demoBase()
  }),
)
after(stopApp)

/** The same fields with the same values, whatever their order. */
const same = (a, b) => show(Object.entries(a).sort()) === show(Object.entries(b).sort())

const counts = (pattern) => dataOf(`#cmp-${pattern}-counts`)
const items = (pattern) =>
  run(
    `return Array.from(document.querySelectorAll('#cmp-' + arguments[0] + '-elements .feed-item'),
      (e) => ({ tag: e.localName, count: Number(e.dataset.count), lastId: Number(e.dataset.lastId || 0),
        inProvider: e.parentElement.localName === 'realtime-connection' }))`,
    pattern,
  )

test('the panel starts empty: no element, no upstream, no stream at the server', { timeout: 60_000 }, () =>
  withLog(async () => {
    const total = await waitFor('#cmp-total to show the counts', () => dataOf('#cmp-total'), (d) => d.server !== undefined)
    assert.deepEqual(total, { upstreams: '0', subscribers: '0', server: '0' }, `expected all zero, got ${show(total)}`)
    const server = await getJson(base, '/feeds')
    for (const p of PATTERNS) assert.equal(server[p] ?? 0, 0, `expected no ${p} stream at the server, got ${show(server)}`)
  }),
)

test('three elements of each pattern: one upstream each, shared by 3, 1 and 1 subscriptions', { timeout: 90_000 }, () =>
  withLog(async () => {
    for (const p of PATTERNS) for (let i = 0; i < 3; i++) await press(`#cmp-${p}-add`)

    const expected = {
      own: { elements: '3', subscriptions: '3', upstreams: '1', subscribers: '3', server: '1' },
      service: { elements: '3', subscriptions: '1', upstreams: '1', subscribers: '1', server: '1' },
      provider: { elements: '3', subscriptions: '1', upstreams: '1', subscribers: '1', server: '1' },
    }
    for (const p of PATTERNS) {
      await waitFor(`#cmp-${p}-counts to be ${show(expected[p])}`, () => counts(p), (d) => same(d, expected[p]))
    }
    const total = await waitFor(
      '#cmp-total: 3 upstreams, 5 subscribers, 3 streams at the server',
      () => dataOf('#cmp-total'),
      (d) => d.upstreams === '3' && d.subscribers === '5' && d.server === '3',
    )
    assert.ok(total)
    const text = await textOf('#cmp-total')
    assert.match(text, /3 upstreams, 5 subscribers · demo server: 3 feed streams open/, `got ${show(text)}`)
    assert.equal(await textOf('#cmp-own-counts'), '3 elements · 1 upstream, 3 subscribers · server: 1 stream')

    // What the server counts by itself: one stream per pattern.
    const server = await getJson(base, '/feeds')
    assert.deepEqual(
      PATTERNS.map((p) => server[p]),
      [1, 1, 1],
      `expected one /feed/stream per pattern at the server, got ${show(server)}`,
    )

    // Every element shows the feed, and keeps receiving it.
    for (const p of PATTERNS) {
      const first = await waitFor(`every ${p} element to show 2 events`, () => items(p), (list) =>
        list.length === 3 && list.every((e) => e.count >= 2 && e.lastId > 0))
      assert.equal(first.every((e) => e.inProvider), p === 'provider', `children of <realtime-connection>: ${show(first)}`)
      await waitFor(`the ${p} elements' newest id to rise`, () => items(p), (list) =>
        list.every((e, i) => e.lastId > first[i].lastId))
    }
  }),
)

test('screenshot at 1024x768: the components panel with its counts', { timeout: 60_000 }, () =>
  withLog(async () => {
    await viewport(1024, 768)
    const box = await reveal('[data-panel="components"]')
    assert.ok(box?.visible, `expected the components panel visible, got ${show(box)}`)
    for (const selector of ['#cmp-total', ...PATTERNS.map((p) => `#cmp-${p}-counts`), '#cmp-provider-elements .feed-item:last-child']) {
      const shown = await reveal(selector)
      assert.ok(shown?.inside && shown.visible, `expected ${selector} inside the 1024x768 viewport, got ${show(shown)}`)
    }
    const whole = await reveal('[data-panel="components"]')
    assert.ok(whole?.inside, `expected the whole components panel in the 1024x768 viewport, got ${show(whole)}`)
    assert.equal(await textOf('#cmp-service-counts'), '3 elements · 1 upstream, 1 subscriber · server: 1 stream')
    assert.equal(await textOf('#cmp-provider-counts'), '3 elements · 1 upstream, 1 subscriber · server: 1 stream')
    await painted()
    await saveScreenshot(SCREENSHOT)
  }),
)

test('removing elements: the shared upstream stays while one is left, then closes after the linger', { timeout: 90_000 }, () =>
  withLog(async () => {
    await press('#cmp-own-remove')
    await waitFor('#cmp-own-counts: 2 subscribers, still 1 stream', () => counts('own'), (d) =>
      d.elements === '2' && d.subscribers === '2' && d.server === '1')

    for (const p of PATTERNS) {
      for (let left = Number((await counts(p)).elements); left > 0; left--) await press(`#cmp-${p}-remove`)
    }
    // The page's own view empties at once: no subscription is left to inspect.
    await waitFor('#cmp-total: 0 upstreams, 0 subscribers', () => dataOf('#cmp-total'), (d) =>
      d.upstreams === '0' && d.subscribers === '0')
    const left = await run('return document.querySelectorAll("[data-panel=components] .feed-item, [data-panel=components] realtime-connection").length')
    assert.equal(left, 0, `expected no element left, got ${left}`)
    // The upstreams linger, then close: the server's count falls to zero.
    await waitFor(
      'the demo server to count no feed stream of the panel',
      () => getJson(base, '/feeds'),
      (s) => PATTERNS.every((p) => (s[p] ?? 0) === 0),
      LINGER_AND_MARGIN_MS,
    )
    await waitFor('#cmp-total to show 0 streams at the server', () => dataOf('#cmp-total'), (d) => d.server === '0')
    assert.match(await textOf('#cmp-total'), /0 upstreams, 0 subscribers · demo server: 0 feed streams open/)
  }),
)
