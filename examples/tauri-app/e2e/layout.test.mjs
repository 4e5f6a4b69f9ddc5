// End-to-end test of the example page's layout in its real webview (WebKitGTK, WebKitWebDriver), at the two
// sizes the issue names, 1024x768 and 1280x900: nothing reaches past the window's right edge (no horizontal
// scroll, no cut text), and every panel's heading can be scrolled into view, where it is the element a person
// sees at that spot (nothing overlaps it). Panels of one row have one height, and every row fills the three
// columns. Saves artifacts/e2e-layout-<size>.png of the top of the page at each size, after asserting what it
// shows.
//
//   cargo build -p realtime-example          (after `npm run build` in examples/tauri-app)
//   xvfb-run -a -s "-screen 0 1280x900x24" node --test examples/tauri-app/e2e/layout.test.mjs
//
// Env and helpers: see webdriver.mjs. Only 127.0.0.1 is contacted.

import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, test } from 'node:test'

import { painted, reveal, viewport } from './connections.mjs'
import { repo, run, saveScreenshot, show, startApp, stopApp, textOf, waitFor, withLog } from './webdriver.mjs'

/** Every panel of the main window, in page order, by `data-panel`. */
const PANELS = ['chat', 'summary', 'feed', 'topics', 'control', 'components', 'room', 'raw', 'dropin']

before(() => withLog(() => startApp()))
after(stopApp)

/** Elements whose box reaches past the window's left or right edge (hidden ones and their children aside). */
const overflowing = () =>
  run(`const out = []
    for (const e of document.body.querySelectorAll('*')) {
      const r = e.getBoundingClientRect()
      if (r.width === 0 || r.height === 0 || getComputedStyle(e).visibility !== 'visible') continue
      if (r.left < -0.5 || r.right > innerWidth + 0.5) {
        out.push({ tag: e.tagName, id: e.id, cls: String(e.className), left: r.left, right: r.right, text: e.textContent.slice(0, 40) })
      }
    }
    return { scrollWidth: document.documentElement.scrollWidth, bodyScrollWidth: document.body.scrollWidth, out }`)

/** Scrolls the heading of panel `name` into view: its box, and whether it is what a person sees at its centre. */
const heading = (name) =>
  run(
    `const h = document.querySelector('[data-panel="' + arguments[0] + '"] h2')
    if (!h) return null
    h.scrollIntoView({ block: 'nearest' })
    const r = h.getBoundingClientRect()
    const top = document.elementFromPoint(r.left + Math.min(r.width / 2, 20), r.top + r.height / 2)
    return { text: h.textContent, width: r.width, height: r.height, onTop: top === h || h.contains(top),
      seen: top ? top.tagName + '.' + top.className : null, clipped: h.scrollWidth > h.clientWidth + 1 }`,
    name,
  )

/** Each panel's box, relative to the top of the page's scrolled grid. */
const boxes = () =>
  run(`const m = document.querySelector('main')
    const gap = parseFloat(getComputedStyle(m).columnGap) || 0
    const panels = Array.from(document.querySelectorAll('main > [data-panel]'))
    const narrowest = Math.min(...panels.map((p) => p.getBoundingClientRect().width))
    return panels.map((p) => {
      const r = p.getBoundingClientRect()
      return { name: p.dataset.panel, top: Math.round(r.top + m.scrollTop), height: Math.round(r.height),
        columns: Math.round((r.width + gap) / (narrowest + gap)) }
    })`)

for (const [width, height] of [
  [1024, 768],
  [1280, 900],
]) {
  test(`at ${width}x${height}: nothing overflows the window, every panel heading shows`, { timeout: 90_000 }, () =>
    withLog(async () => {
      await viewport(width, height)
      // Wait until the panels have content: an empty page cannot overflow.
      for (const badge of ['#ws-state', '#sse-state', '#feed-state', '#topics-state']) {
        await waitFor(`${badge} to say "connected"`, () => textOf(badge), (s) => s === 'connected')
      }
      await waitFor('the first summary to finish', () => run('return document.querySelector("#sse-summary").dataset.done'), (d) => d === 'true')

      const found = await boxes()
      assert.deepEqual(found.map((b) => b.name), PANELS, `expected the nine panels, got ${show(found)}`)
      const rows = new Map()
      for (const b of found) rows.set(b.top, [...(rows.get(b.top) ?? []), b])
      for (const [top, row] of rows) {
        const heights = new Set(row.map((b) => b.height))
        assert.equal(heights.size, 1, `expected one height in the row at ${top}, got ${show(row)}`)
        // No hole: the row's panels span the grid's columns.
        const columns = row.reduce((sum, b) => sum + b.columns, 0)
        assert.equal(columns, 3, `expected the row at ${top} to fill three columns, got ${show(row)}`)
      }

      for (const name of PANELS) {
        const h = await heading(name)
        assert.ok(h && h.width > 0 && h.height > 0, `expected the heading of ${name} to be visible, got ${show(h)}`)
        assert.ok(h.onTop, `expected the heading of ${name} on top at its place, got ${show(h)}`)
        assert.ok(!h.clipped, `expected the heading of ${name} not cut, got ${show(h)}`)
        const box = await reveal(`[data-panel="${name}"] h2`)
        assert.ok(box?.inside && box.visible, `expected the heading of ${name} inside the window, got ${show(box)}`)
      }
      const wide = await overflowing()
      assert.ok(wide.scrollWidth <= width && wide.bodyScrollWidth <= width, `expected no horizontal scroll, got ${show(wide)}`)
      assert.deepEqual(wide.out, [], `expected no element past the window's edges at ${width}x${height}`)

      // The screenshot: the top of the page, with the first row's headings, badges and their subtitles whole.
      await run('document.querySelector("main").scrollTop = 0')
      for (const selector of ['#chat-title', '#sse-title', '#feed-title', '#ws-state', '#sse-state', '#feed-state', '#sse-health']) {
        const box = await reveal(selector)
        assert.ok(box?.inside && box.visible, `expected ${selector} in the ${width}x${height} window, got ${show(box)}`)
      }
      const urls = await run(`return Array.from(document.querySelectorAll('#ws-url, #sse-url, #feed-url, #feed-poll-url'),
        (c) => ({ id: c.id, text: c.textContent, lines: Math.round(c.getBoundingClientRect().height / parseFloat(getComputedStyle(c).lineHeight)) }))`)
      for (const url of urls) assert.equal(url.lines, 1, `expected ${url.id} on one line at ${width}x${height}, got ${show(url)}`)
      const shown = await run(`return Array.from(document.querySelectorAll('main > [data-panel] h2'), (h) => h.textContent)`)
      assert.deepEqual(shown.length, PANELS.length, `got ${show(shown)}`)
      await painted()
      await saveScreenshot(join(repo, `artifacts/e2e-layout-${width}x${height}.png`))
    }),
  )
}
