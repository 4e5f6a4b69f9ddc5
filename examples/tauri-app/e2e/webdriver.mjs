// Shared by the end-to-end tests: start the example app under WebKitWebDriver, speak the WebDriver HTTP API with
// plain fetch, bounded waits, and a tear-down that always stops the session, the driver, the app (and the
// stand-alone demo server, when a test started one). Not a test file itself (`node --test` runs *.test.mjs).
//
// Env: REALTIME_EXAMPLE_BIN (default <repo>/target/debug/realtime-example), REALTIME_DEMO_SERVER_BIN (default
// <repo>/target/debug/realtime-demo-server), WEBKIT_WEBDRIVER (default WebKitWebDriver on PATH). Needs a display
// (DISPLAY, e.g. from xvfb-run). Only 127.0.0.1 is contacted: the driver listens there, and the demo server too.

import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
export const repo = resolve(here, '../../..')
export const APP_BIN = process.env.REALTIME_EXAMPLE_BIN || join(repo, 'target/debug/realtime-example')
export const DEMO_SERVER_BIN =
  process.env.REALTIME_DEMO_SERVER_BIN || join(repo, 'target/debug/realtime-demo-server')
const DRIVER_BIN = process.env.WEBKIT_WEBDRIVER || 'WebKitWebDriver'

/** Bound of every wait unless a test says otherwise. */
export const WAIT_MS = 30_000
/** Bound of one WebDriver request (twice this for creating the session, which starts the app). */
const REQUEST_MS = 30_000

let driver // the WebKitWebDriver child process
let driverLog = ''
let base // http://127.0.0.1:<port>
let sessionId
let demoServer // the stand-alone demo server child process, if started
let demoServerLog = ''

// ---------------------------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------------------------

export const show = (value) => JSON.stringify(value) ?? String(value)

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/** Polls `probe` until `accept(value)` holds; fails with "expected <what>, got <last value>" after `ms`. */
export async function waitFor(what, probe, accept = Boolean, ms = WAIT_MS) {
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

export function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolvePort(port))
    })
  })
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

export function alive(pid) {
  try {
    process.kill(pid, 0)
    // A zombie (exited, not yet reaped by its parent) is gone for our purposes.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return !/^\d+ \(.*\) Z/.test(stat)
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

/** The pids of the app (the driver's children whose command line is the app binary). */
export function appPids() {
  if (!driver?.pid) return []
  return descendants(driver.pid).filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0] === APP_BIN
    } catch {
      return false
    }
  })
}

// ---------------------------------------------------------------------------------------------------------------
// WebDriver
// ---------------------------------------------------------------------------------------------------------------

/** One WebDriver command. Returns `value`; throws with the driver's error otherwise. */
export async function wd(method, path, body, ms = REQUEST_MS) {
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

export const session = (path) => `/session/${sessionId}${path}`

/** Runs a function body in the current window's page and returns its result. */
export function run(script, ...args) {
  return wd('POST', session('/execute/sync'), { script, args })
}

export const textOf = (selector) => run('return document.querySelector(arguments[0])?.textContent ?? null', selector)
export const textsOf = (selector) =>
  run('return Array.from(document.querySelectorAll(arguments[0]), (e) => e.textContent)', selector)
export const attrOf = (selector, name) =>
  run('return document.querySelector(arguments[0])?.getAttribute(arguments[1]) ?? null', selector, name)

export async function element(selector) {
  const value = await wd('POST', session('/element'), { using: 'css selector', value: selector })
  return Object.values(value)[0]
}

export async function click(selector) {
  const id = await element(selector)
  await wd('POST', session(`/element/${id}/click`), {})
}

export async function typeInto(selector, text) {
  const id = await element(selector)
  await wd('POST', session(`/element/${id}/value`), { text })
}

/** The window handles the driver knows, and switching between them. */
export const windowHandles = () => wd('GET', session('/window/handles'))
export const currentWindow = () => wd('GET', session('/window'))
export const switchToWindow = (handle) => wd('POST', session('/window'), { handle })

/**
 * Saves a screenshot of the current window's page, after checking it is a PNG. Waits two animation frames first:
 * WebKitGTK's screenshot is the last frame painted, which can be seconds older than the page the test just read.
 */
export async function saveScreenshot(file) {
  await run('return new Promise((ok) => requestAnimationFrame(() => requestAnimationFrame(() => ok(true))))')
  const png = Buffer.from(await wd('GET', session('/screenshot')), 'base64')
  const signature = png.subarray(0, 8).toString('hex')
  assert.equal(signature, '89504e470d0a1a0a', `expected a PNG signature, got ${signature}`)
  mkdirSync(dirname(file), { recursive: true })
  writeFileSync(file, png)
  return png.length
}

// ---------------------------------------------------------------------------------------------------------------
// Set-up and tear-down
// ---------------------------------------------------------------------------------------------------------------

/**
 * Starts WebKitWebDriver and a session, which starts the app. `env` is added to the app's environment (the app
 * inherits the driver's, as with tauri-driver).
 */
export async function startApp({ env = {} } = {}) {
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
    env: { ...process.env, ...env, TAURI_WEBVIEW_AUTOMATION: 'true' },
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

/** Deletes the session and stops the driver and the app, and the demo server if one was started. Never throws. */
export async function stopApp() {
  const pids = driver?.pid ? descendants(driver.pid) : []
  if (sessionId) {
    try {
      await wd('DELETE', `/session/${sessionId}`, undefined, 10_000)
    } catch {
      // the app may already be gone; the kills below still run
    }
    sessionId = undefined
  }
  if (driver?.pid) {
    signal(-driver.pid, 'SIGTERM')
    const deadline = Date.now() + 5_000
    while (Date.now() < deadline && (alive(driver.pid) || pids.some(alive))) await sleep(100)
    signal(-driver.pid, 'SIGKILL')
    for (const pid of pids) if (alive(pid)) signal(pid, 'SIGKILL')
  }
  await stopDemoServer()
}

/** Adds the driver's (and demo server's) log to a failure, where the cause often is (the app did not start, ...). */
export async function withLog(fn) {
  try {
    return await fn()
  } catch (error) {
    const logs = [
      driverLog.trim() && `--- WebKitWebDriver stderr (tail) ---\n${driverLog}`,
      demoServerLog.trim() && `--- realtime-demo-server output (tail) ---\n${demoServerLog}`,
    ].filter(Boolean)
    if (logs.length === 0) throw error
    throw new Error(`${error.message}\n${logs.join('\n')}`, { cause: error })
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The stand-alone demo server: it outlives the app, so a test can read its counters after the app quit
// ---------------------------------------------------------------------------------------------------------------

/**
 * Starts `realtime-demo-server` on a free loopback port and waits for its first line (its base URL). Returns
 * `{ base, addr }`; give the app `REALTIME_DEMO_SERVER: addr` to use it.
 */
export async function startDemoServer() {
  assert.ok(
    existsSync(DEMO_SERVER_BIN),
    `expected the demo server at ${DEMO_SERVER_BIN} (cargo build -p realtime-example), got no file`,
  )
  demoServer = spawn(DEMO_SERVER_BIN, ['--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  const first = new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`expected the demo server's URL within 10 s, got ${show(out)}`)), 10_000)
    demoServer.stdout.on('data', (chunk) => {
      out += chunk
      demoServerLog = (demoServerLog + chunk).slice(-4000)
      const line = out.split('\n')[0]
      if (out.includes('\n')) {
        clearTimeout(timer)
        ok(line.trim())
      }
    })
    demoServer.once('error', (error) => {
      clearTimeout(timer)
      fail(error)
    })
    demoServer.once('exit', (code) => {
      clearTimeout(timer)
      fail(new Error(`expected the demo server to run, got exit code ${code}: ${demoServerLog}`))
    })
  })
  demoServer.stderr.on('data', (chunk) => {
    demoServerLog = (demoServerLog + chunk).slice(-4000)
  })
  const url = await first
  assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/, `expected http://127.0.0.1:<port>, got ${show(url)}`)
  return { base: url, addr: url.slice('http://'.length) }
}

/** Starts the stand-alone demo server, then the app using it. Returns the server (`{ base, addr }`). */
export async function startAppWithDemoServer() {
  const server = await startDemoServer()
  await startApp({ env: { REALTIME_DEMO_SERVER: server.addr } })
  return server
}

async function stopDemoServer() {
  if (!demoServer?.pid) return
  const pid = demoServer.pid
  signal(pid, 'SIGTERM')
  const deadline = Date.now() + 5_000
  while (Date.now() < deadline && alive(pid)) await sleep(50)
  signal(pid, 'SIGKILL')
  demoServer = undefined
}

/** `GET <base>/status` of a demo server, as JSON. */
export async function demoStatus(serverBase) {
  const response = await fetch(`${serverBase}/status`, { signal: AbortSignal.timeout(5_000) })
  assert.equal(response.status, 200, `expected HTTP 200 from ${serverBase}/status, got ${response.status}`)
  return response.json()
}
