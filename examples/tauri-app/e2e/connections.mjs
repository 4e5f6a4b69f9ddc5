// Helpers of the panels' end-to-end tests (components, the POST + SSE chat, the raw contract): the demo server's
// base URL as the page knows it, plain JSON from it, a window of the screenshot size, and what a person
// sees of an element. Not a test file itself.

import assert from 'node:assert/strict'

import { click, run, session, show, wd } from './webdriver.mjs'

/** The demo server's base URL, `http://127.0.0.1:PORT`, from the app's `demo_urls` command. */
export async function demoBase() {
  const urls = await run('return window.__TAURI_INTERNALS__.invoke("demo_urls")')
  return new URL(urls.status).origin
}

/** `GET <base><path>` as JSON. */
export async function getJson(base, path) {
  const response = await fetch(`${base}${path}`, { signal: AbortSignal.timeout(5_000) })
  assert.equal(response.status, 200, `expected HTTP 200 from ${path}, got ${response.status}`)
  return response.json()
}

/** Resizes the window so that the page's viewport is `width` x `height` (the screenshot's size). */
export async function viewport(width, height) {
  for (let i = 0; i < 3; i++) {
    const inner = await run('return [innerWidth, innerHeight]')
    if (inner[0] === width && inner[1] === height) return
    const rect = await wd('GET', session('/window/rect'))
    await wd('POST', session('/window/rect'), {
      width: rect.width + width - inner[0],
      height: rect.height + height - inner[1],
    })
  }
  const inner = await run('return [innerWidth, innerHeight]')
  assert.deepEqual(inner, [width, height], `expected a ${width}x${height} viewport, got ${show(inner)}`)
}

/** Scrolls `selector` into view; returns its box and whether it lies wholly inside the viewport (and the grid). */
export function reveal(selector) {
  return run(
    `const e = document.querySelector(arguments[0])
    if (!e) return null
    e.scrollIntoView({ block: 'nearest' })
    const r = e.getBoundingClientRect()
    // The page's grid scrolls: what it clips is not seen either.
    const m = e.closest('main')?.getBoundingClientRect() ?? { top: 0, left: 0, bottom: innerHeight, right: innerWidth }
    return { top: r.top, left: r.left, width: r.width, height: r.height,
      inside: r.top >= Math.max(0, m.top) && r.left >= Math.max(0, m.left) &&
        r.bottom <= Math.min(innerHeight, m.bottom) && r.right <= Math.min(innerWidth, m.right),
      visible: getComputedStyle(e).visibility === 'visible' && r.width > 0 && r.height > 0 }`,
    selector,
  )
}

/** The `data-*` of an element, as an object. */
export const dataOf = (selector) => run('return { ...(document.querySelector(arguments[0])?.dataset ?? {}) }', selector)

/** Clicks `selector` as a person would, after scrolling it into view (the page's grid scrolls). */
export async function press(selector) {
  const box = await reveal(selector)
  assert.ok(box?.visible, `expected ${selector} to be visible, got ${show(box)}`)
  await click(selector)
}

/** Resolves once the page has painted twice since: a screenshot right after a scroll can show the frame before. */
export const painted = () =>
  run('return new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(() => setTimeout(() => done(true), 100))))')
