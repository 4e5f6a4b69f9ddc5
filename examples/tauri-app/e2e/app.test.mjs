// End-to-end test of the example app in its real webview (WebKitGTK), driven by WebKitWebDriver over the
// WebDriver HTTP API with plain fetch.
//
//   cargo build -p realtime-example          (after `npm run build` in examples/tauri-app)
//   xvfb-run -a node --test examples/tauri-app/e2e/
//
// Env: REALTIME_EXAMPLE_BIN (default <repo>/target/debug/realtime-example), WEBKIT_WEBDRIVER (default
// WebKitWebDriver on PATH). Needs a display (DISPLAY, e.g. from xvfb-run). Only 127.0.0.1 is contacted: the driver
// listens there and the app's demo server too.

import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { dirname, join, resolve } from 'node:path'
import { after, before, test } from 'node:test'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const repo = resolve(here, '../../..')
const APP_BIN = process.env.REALTIME_EXAMPLE_BIN || join(repo, 'target/debug/realtime-example')
const DRIVER_BIN = process.env.WEBKIT_WEBDRIVER || 'WebKitWebDriver'
const SCREENSHOT = join(repo, 'artifacts/e2e-main.png')

/** Bound of every wait in this file. */
const WAIT_MS = 30_000
/** Bound of one WebDriver request (twice this for creating the session, which starts the app). */
const REQUEST_MS = 30_000

let driver // the WebKitWebDriver child process
let driverLog = ''
let base // http://127.0.0.1:<port>
let sessionId

// ---------------------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------------------

const show = (value) => JSON.stringify(value) ?? String(value)

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/** Polls `probe` until `accept(value)` holds; fails with "expected <what>, got <last value>" after `ms`. */
async function waitFor(what, probe, accept = Boolean, ms = WAIT_MS) {
  const deadline = Date.now() + ms
  let last
  let lastError
  while (Date.now() < deadline) {
    try {
      last = await probe()
      lastError = undefined
      if (accept(last)) return last
    } catch (error) {
      lastError = error
    }
    await sleep(150)
  }
  const got = lastError ? `error ${lastError.message}` : show(last)
  throw new assert.AssertionError({ message: `expected ${what} within ${ms} ms, got ${got}` })
}

function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolvePort(port))
    })
  })
}

/** One WebDriver command. Returns `value`; throws with the driver's error otherwise. */
async function wd(method, path, body, ms = REQUEST_MS) {
  let response
  let text
  try {
    response = await fetch(`${base}${path}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(ms),
    })
    text = await response.text()
  } catch (error) {
    throw new Error(`expected an answer to ${method} ${path} within ${ms} ms, got ${error.name}: ${error.message}`)
  }
  let json
  try {
    json = JSON.parse(text)
  } catch {
    throw new Error(`expected JSON from ${method} ${path}, got HTTP ${response.status} ${text.slice(0, 200)}`)
  }
  if (!response.ok) {
    const error = json?.value ?? {}
    throw new Error(`expected ${method} ${path} to succeed, got HTTP ${response.status} ${error.error}: ${error.message}`)
  }
  return json.value
}

const session = (path) => `/session/${sessionId}${path}`

/** Runs a function body in the page and returns its result. */
function run(script, ...args) {
  return wd('POST', session('/execute/sync'), { script, args })
}

const textOf = (selector) => run('return document.querySelector(arguments[0])?.textContent ?? null', selector)
const textsOf = (selector) =>
  run('return Array.from(document.querySelectorAll(arguments[0]), (e) => e.textContent)', selector)

async function element(selector) {
  const value = await wd('POST', session('/element'), { using: 'css selector', value: selector })
  return Object.values(value)[0]
}

/** Pids below `pid`, read from /proc (Linux), deepest last. */
function descendants(pid) {
  const found = []
  const walk = (p) => {
    let tasks = []
    try {
      tasks = readdirSync(`/proc/${p}/task`)
    } catch {
      return
    }
    for (const tid of tasks) {
      let children = ''
      try {
        children = readFileSync(`/proc/${p}/task/${tid}/children`, 'utf8')
      } catch {
        continue
      }
      for (const child of children.split(/\s+/).filter(Boolean).map(Number)) {
        found.push(child)
        walk(child)
      }
    }
  }
  walk(pid)
  return found
}

function alive(pid) {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

function signal(pid, sig) {
  try {
    process.kill(pid, sig)
  } catch {
    // already gone
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Set-up and tear-down: always delete the session and stop the driver and the app, also after a failure.
// ---------------------------------------------------------------------------------------------------------------

before(() => withLog(startAppSession))

async function startAppSession() {
  assert.ok(process.env.DISPLAY, `expected DISPLAY to be set (run under xvfb-run -a), got ${show(process.env.DISPLAY)}`)
  assert.ok(
    existsSync(APP_BIN),
    `expected the example app at ${APP_BIN} (cargo build -p realtime-example, or set REALTIME_EXAMPLE_BIN), got no file`,
  )

  const port = await freePort()
  base = `http://127.0.0.1:${port}`
  // As tauri-driver does: the app inherits the driver's environment, and TAURI_WEBVIEW_AUTOMATION turns on
  // WebKit's automation in the Tauri webview. Its own process group, so tear-down reaches the app too.
  driver = spawn(DRIVER_BIN, [`--port=${port}`, '--host=127.0.0.1'], {
    env: { ...process.env, TAURI_WEBVIEW_AUTOMATION: 'true' },
    stdio: ['ignore', 'ignore', 'pipe'],
    detached: true,
  })
  driver.stderr.on('data', (chunk) => {
    driverLog = (driverLog + chunk).slice(-8000)
  })
  const spawned = await new Promise((ok) => {
    driver.once('spawn', () => ok(null))
    driver.once('error', (error) => ok(error))
  })
  assert.equal(spawned, null, `expected ${DRIVER_BIN} to start (apt-get install webkit2gtk-driver), got ${spawned}`)

  await waitFor(
    'WebKitWebDriver to be ready',
    () => wd('GET', '/status', undefined, 2_000),
    (status) => status?.ready === true,
  )

  // tauri-driver maps `tauri:options { application, args }` to exactly this on Linux.
  const created = await wd(
    'POST',
    '/session',
    { capabilities: { alwaysMatch: { 'webkitgtk:browserOptions': { binary: APP_BIN, args: [] } } } },
    // Creating the session starts the app: allow a slow first start.
    2 * REQUEST_MS,
  )
  sessionId = created.sessionId
  assert.ok(sessionId, `expected a session id, got ${show(created)}`)
}

after(async () => {
  const pids = driver?.pid ? descendants(driver.pid) : []
  if (sessionId) {
    try {
      await wd('DELETE', `/session/${sessionId}`, undefined, 10_000)
    } catch {
      // the app may already be gone; the kills below still run
    }
  }
  if (driver?.pid) {
    signal(-driver.pid, 'SIGTERM')
    const deadline = Date.now() + 5_000
    while (Date.now() < deadline && (alive(driver.pid) || pids.some(alive))) await sleep(100)
    signal(-driver.pid, 'SIGKILL')
    for (const pid of pids) if (alive(pid)) signal(pid, 'SIGKILL')
  }
})

/** Adds the driver's log to a failure, where the cause often is (the app did not start, ...). */
async function withLog(fn) {
  try {
    await fn()
  } catch (error) {
    if (!driverLog.trim()) throw error
    throw new Error(`${error.message}\n--- WebKitWebDriver stderr (tail) ---\n${driverLog}`, { cause: error })
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Tests (in order, on one app instance)
// ---------------------------------------------------------------------------------------------------------------

test('both state badges reach connected', { timeout: 60_000 }, () =>
  withLog(async () => {
    await waitFor('#ws-state to say "connected"', () => textOf('#ws-state'), (s) => s === 'connected')
    await waitFor('#sse-state to say "connected"', () => textOf('#sse-state'), (s) => s === 'connected')
    const colour = await run('return getComputedStyle(document.querySelector("#ws-state")).backgroundColor')
    assert.notEqual(colour, 'rgba(0, 0, 0, 0)', `expected the badge to be coloured, got ${show(colour)}`)
  }),
)

test('chat: the welcome comes first, then a typed message is echoed', { timeout: 60_000 }, () =>
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

test('screenshot of the window is saved to artifacts/e2e-main.png', { timeout: 60_000 }, () =>
  withLog(async () => {
    const png = Buffer.from(await wd('GET', session('/screenshot')), 'base64')
    const signature = png.subarray(0, 8).toString('hex')
    assert.equal(signature, '89504e470d0a1a0a', `expected a PNG signature, got ${signature}`)
    mkdirSync(dirname(SCREENSHOT), { recursive: true })
    writeFileSync(SCREENSHOT, png)
  }),
)
