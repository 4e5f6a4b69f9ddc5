// The bench page: runs the whole suite by itself in the bench app's webview, reports every result to the app
// (`bench_result`), then asks it to write the report and quit (`bench_finish`). See src-tauri/src/main.rs for the
// app and src-tauri/src/server.rs for the server and its message format.
//
// Mechanisms, always alternated within a repetition (A B C D A B C D ...):
//   realtime-ws   this plugin over WebSocket, through its JS bindings (`connect()` then `on('message')`)
//   realtime-sse  this plugin over SSE, the same way
//   official-ws   tauri-plugin-websocket, as its README wires it (`WebSocket.connect(url)`, `addListener`)
//   native-ws     the webview's own WebSocket: no IPC hop, the reference
//   js-poll       a `setInterval` + `fetch` poll every 2 s (latency only)
//   realtime-poll this plugin's polling (`transport: 'poll'`, every 2 s; latency only)

import { Channel, invoke } from '@tauri-apps/api/core'
import { listen } from '@tauri-apps/api/event'
import OfficialWebSocket from '@tauri-apps/plugin-websocket'
import { connect, type Connection, type Frame } from 'tauri-plugin-realtime-api'
// The bindings' internal handle and receiver, for the `micro` diagnostic only (not part of the package's exports).
import { ConnectionImpl } from '../../../dist-js/connection.js'
import { receiver } from '../../../dist-js/receiver.js'

interface Config {
  http: string
  https: string
  ws: string
  quick: boolean
  reps: number
  workloads: string[]
  tpSmallN: number
  tpLargeN: number
  latencyRates: number[]
  latencyS: number
  warmS: number
  pollRates: number[]
  pollS: number
  scaling: number[]
  protocols: ('HTTP/1.1' | 'HTTP/2')[]
  idleS: number
  burstN: number
  burstSize: number
  burstSpinUs: number
  burstMechs: Mech[]
  burstReps: number
  /** Only these mechanisms (all when empty): for profiling one. */
  mechs: string[]
}

interface Proc {
  pid: number
  rssKb: number
  cpuMs: number
}
interface Snapshot {
  app: Proc
  web: Proc
  network: Proc
}
interface Sample {
  t: number
  at: number
  serverSent: number | null
  appRssKb: number
  webRssKb: number
  networkRssKb: number
}

type Mech = 'realtime-ws' | 'realtime-sse' | 'official-ws' | 'native-ws'
type PollMech = 'js-poll' | 'realtime-poll'

let STREAM_MECHS: Mech[] = ['realtime-ws', 'realtime-sse', 'official-ws', 'native-ws']
let POLL_MECHS: PollMech[] = ['js-poll', 'realtime-poll']
/** The JS poll's interval, as the plugin's default. */
const POLL_INTERVAL_MS = 2000

// ---------------------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------------------

const logEl = document.getElementById('log')!
function log(line: string): void {
  logEl.textContent += `${line}\n`
  void invoke('bench_log', { line }).catch(() => {})
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

function withTimeout<T>(what: string, p: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms)
  })
  return Promise.race([p, t]).finally(() => clearTimeout(timer))
}

async function waitUntil(what: string, ok: () => boolean | Promise<boolean>, ms: number): Promise<void> {
  const deadline = performance.now() + ms
  while (!(await ok())) {
    if (performance.now() > deadline) throw new Error(`${what}: not within ${ms} ms`)
    await sleep(50)
  }
}

/**
 * The page's clock in epoch ms. WebKit rounds `Date.now()` and `performance.now()` down to whole ms (20 µs only in a
 * cross-origin-isolated page, which WebKitGTK does not give a Tauri page). `performance.timeOrigin +
 * performance.now()` rounds two terms, so it also carries an offset of up to 1 ms from the system clock that lasts
 * the page's life; `Date.now()` is the system clock rounded down, nothing else. The server dithers its paced sends
 * over 1 ms, so the rounding is uniform over [0, 1) ms: adding 0.5 ms makes each latency unbiased, within ±0.5 ms.
 */
const pageNow = () => Date.now() + 0.5

let runCounter = 0
const runId = () => `${Date.now().toString(36)}${++runCounter}`

const stats = () => invoke<Snapshot>('proc_stats')

function cpuDelta(a: Snapshot, b: Snapshot) {
  return {
    appMs: b.app.cpuMs - a.app.cpuMs,
    webMs: b.web.cpuMs - a.web.cpuMs,
    networkMs: b.network.cpuMs - a.network.cpuMs,
  }
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[i]!
}

const round = (x: number, digits = 3) => (Number.isFinite(x) ? Number(x.toFixed(digits)) : null)

let spinSink = 0
/** Burns CPU for about `iters` loop turns: the deliberately slow handler of the burst workload. */
function spin(iters: number): void {
  let x = 0
  for (let i = 0; i < iters; i++) x = (x + i * 7) | 0
  spinSink ^= x
}

/**
 * Loop turns per microsecond of `spin`, as the burst's handler calls it: many short calls, not one long loop.
 * A long loop gets the JIT's best tier (and may be folded away), short calls may not, and on some machines the two
 * differ by hundreds of times; so the estimate from one long loop is checked against calls of 10 µs and rescaled.
 */
function calibrateSpin(): number {
  const turns = 2_000_000
  let best = Infinity
  for (let k = 0; k < 5; k++) {
    const t = performance.now()
    spin(turns)
    best = Math.min(best, performance.now() - t)
  }
  let perUs = turns / Math.max(best * 1000, 1)
  for (let round = 0; round < 4; round++) {
    const calls = 2000
    const iters = Math.max(1, Math.round(perUs * 10))
    const t = performance.now()
    for (let c = 0; c < calls; c++) spin(iters)
    const usPerCall = ((performance.now() - t) * 1000) / calls
    // Aim at 10 µs a call; the timer's 1 ms step is small against 2 000 calls of 10 µs (20 ms).
    perUs = (perUs * 10) / Math.max(usPerCall, 0.1)
  }
  return perUs
}

/** Smallest step of `performance.now()` seen (the webview may coarsen it). */
function timerResolution(): number {
  let best = Infinity
  for (let k = 0; k < 20; k++) {
    const a = performance.now()
    let b = a
    while (b === a) b = performance.now()
    best = Math.min(best, b - a)
  }
  return best
}

/**
 * A check of the page clock against the one the server stamps with (the app's `SystemTime`): the mean of
 * `server - midpoint` over many invokes (about 0 when `pageNow()` is unbiased; the IPC's asymmetry adds to it),
 * and the offset of `performance.timeOrigin + performance.now()` from `Date.now()`.
 */
async function checkClock() {
  let sum = 0
  let rtt = 0
  let perf = 0
  const samples = 200
  for (let i = 0; i < samples; i++) {
    spin(Math.floor(Math.random() * 20_000))
    const t1 = pageNow()
    const server = await invoke<number>('clock_now')
    const t2 = pageNow()
    sum += server - (t1 + t2) / 2
    rtt += t2 - t1
    perf += performance.timeOrigin + performance.now() - Date.now()
  }
  return { serverMinusPageMs: sum / samples, rttMs: rtt / samples, performanceMinusDateNowMs: perf / samples }
}

async function record(result: Record<string, unknown>): Promise<void> {
  await invoke('bench_result', { result })
}

// ---------------------------------------------------------------------------------------------------------------
// Receiving and checking messages: "<index> <stamp> xxxx..."
// ---------------------------------------------------------------------------------------------------------------

class Receiver {
  expected = 0
  received = 0
  /** Messages whose index was not the previous one plus one (a loss, a duplicate or a reordering). */
  outOfOrder = 0
  badSize = 0
  firstStamp = NaN
  lastAt = NaN
  readonly lat: number[] = []
  /** [page time, messages received] every `progressEvery` messages (0: none). */
  readonly progress: [number, number][] = []
  progressEvery = 0
  readonly done: Promise<void>
  private resolve!: () => void

  /**
   * @param size expected length of every message (0: any)
   * @param latencyFrom latency is recorded for indexes from this one on (-1: none)
   * @param spinTurns loop turns burnt per message (a slow handler)
   */
  constructor(
    readonly n: number,
    readonly size: number,
    readonly latencyFrom: number,
    readonly spinTurns = 0,
  ) {
    this.done = new Promise((r) => (this.resolve = r))
  }

  readonly on = (d: string): void => {
    const at = pageNow()
    const sp = d.indexOf(' ')
    const idx = +d.slice(0, sp)
    if (idx !== this.expected) this.outOfOrder++
    this.expected = idx + 1
    if (this.size > 0 && d.length !== this.size) this.badSize++
    if (this.received === 0 || (this.latencyFrom >= 0 && idx >= this.latencyFrom)) {
      const stamp = +d.slice(sp + 1, d.indexOf(' ', sp + 1))
      if (this.received === 0) this.firstStamp = stamp
      if (this.latencyFrom >= 0 && idx >= this.latencyFrom) this.lat.push(at - stamp)
    }
    if (this.spinTurns > 0) spin(this.spinTurns)
    this.received++
    this.lastAt = at
    if (this.progressEvery > 0 && this.received % this.progressEvery === 0) this.progress.push([at, this.received])
    if (this.received === this.n) this.resolve()
  }

  /** True when every message came within `ms`. */
  async wait(ms: number): Promise<boolean> {
    let timer: ReturnType<typeof setTimeout> | undefined
    const timeout = new Promise<boolean>((r) => (timer = setTimeout(() => r(false), ms)))
    const ok = await Promise.race([this.done.then(() => true), timeout])
    clearTimeout(timer)
    return ok
  }

  /** From the server's stamp on the first message to the arrival of the last one, in seconds. */
  seconds(): number {
    return (this.lastAt - this.firstStamp) / 1000
  }

  checks() {
    return {
      received: this.received,
      lost: Math.max(0, this.n - this.received),
      outOfOrder: this.outOfOrder,
      badSize: this.badSize,
    }
  }

  latency() {
    const s = Float64Array.from(this.lat).sort()
    const a = Array.from(s)
    return {
      samples: a.length,
      p50Ms: round(percentile(a, 50)),
      p99Ms: round(percentile(a, 99)),
      maxMs: round(a.length ? a[a.length - 1]! : NaN),
      meanMs: round(a.reduce((x, y) => x + y, 0) / Math.max(a.length, 1)),
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The mechanisms
// ---------------------------------------------------------------------------------------------------------------

let cfg: Config

interface Handle {
  close(): Promise<void>
}

/** Opens a stream of `/ws` or `/sse` with `query` and hands every message's text to `onData`. */
async function open(mech: Mech, query: string, onData: (d: string) => void): Promise<Handle> {
  const q = `${query}&run=${runId()}`
  switch (mech) {
    case 'realtime-ws': {
      const c = await connect({ url: `${cfg.ws}/ws?${q}` })
      c.on('message', (f) => onData(f.data))
      await c.send('go')
      return { close: () => c.close() }
    }
    case 'realtime-sse': {
      const c = await connect({ url: `${cfg.http}/sse?${q}` })
      c.on('message', (f) => onData(f.data))
      return { close: () => c.close() }
    }
    case 'official-ws': {
      const w = await OfficialWebSocket.connect(`${cfg.ws}/ws?${q}`)
      w.addListener((m) => {
        if (m.type === 'Text') onData(m.data)
      })
      await w.send('go')
      return { close: () => w.disconnect() }
    }
    case 'native-ws': {
      const w = new WebSocket(`${cfg.ws}/ws?${q}`)
      await new Promise<void>((resolve, reject) => {
        w.onopen = () => resolve()
        w.onerror = () => reject(new Error('the webview WebSocket did not open'))
      })
      w.onmessage = (e: MessageEvent<string>) => onData(e.data)
      w.send('go')
      return {
        close: async () => {
          w.close()
        },
      }
    }
  }
}

async function openBounded(mech: Mech, query: string, onData: (d: string) => void): Promise<Handle> {
  return withTimeout(`opening ${mech}`, open(mech, query, onData), 20_000)
}

async function closeQuietly(h: Handle | undefined): Promise<void> {
  if (!h) return
  try {
    await withTimeout('close', h.close(), 10_000)
  } catch (e) {
    log(`  (close failed: ${String(e)})`)
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Workloads
// ---------------------------------------------------------------------------------------------------------------

async function throughput(workload: string, mech: Mech, n: number, size: number, rep: number, warmup = false) {
  const r = new Receiver(n, size, -1)
  const before = await stats()
  const h = await openBounded(mech, `n=${n}&size=${size}`, r.on)
  const complete = await r.wait(120_000)
  const after = await stats()
  await closeQuietly(h)
  const seconds = r.seconds()
  const result = {
    workload,
    mech,
    rep,
    n,
    size,
    complete,
    ...r.checks(),
    seconds: round(seconds, 4),
    msgsPerS: round(r.received / seconds, 0),
    mbPerS: round((r.received * size) / seconds / 1e6, 2),
    cpu: cpuDelta(before, after),
  }
  if (!warmup) await record(result)
  log(
    `${warmup ? 'warm-up ' : ''}${workload} ${mech} #${rep}: ${result.msgsPerS} msg/s, ${result.mbPerS} MB/s, ` +
      `lost ${result.lost}, out of order ${result.outOfOrder}${complete ? '' : ' (INCOMPLETE)'}`,
  )
}

async function latency(mech: Mech, rate: number, rep: number) {
  const n = Math.round(rate * cfg.latencyS)
  const r = new Receiver(n, 64, Math.round(rate * cfg.warmS))
  const before = await stats()
  const h = await openBounded(mech, `n=${n}&size=64&rate=${rate}`, r.on)
  const complete = await r.wait(cfg.latencyS * 1000 + 15_000)
  const after = await stats()
  await closeQuietly(h)
  const result = { workload: 'latency', mech, rate, rep, n, complete, ...r.checks(), ...r.latency(), cpu: cpuDelta(before, after) }
  await record(result)
  log(
    `latency ${rate}/s ${mech} #${rep}: p50 ${result.p50Ms} ms, p99 ${result.p99Ms} ms, max ${result.maxMs} ms, ` +
      `lost ${result.lost}${complete ? '' : ' (INCOMPLETE)'}`,
  )
}

function parseEventStream(text: string, onEvent: (id: string | undefined, data: string) => void): void {
  for (const block of text.split('\n\n')) {
    let id: string | undefined
    let data: string | undefined
    for (const line of block.split('\n')) {
      if (line.startsWith('id: ')) id = line.slice(4)
      else if (line.startsWith('data: ')) data = line.slice(6)
    }
    if (data !== undefined) onEvent(id, data)
  }
}

async function pollLatency(mech: PollMech, rate: number, rep: number) {
  const n = Math.round(rate * cfg.pollS)
  const r = new Receiver(n, 0, Math.round(rate * cfg.warmS))
  const url = `${cfg.http}/poll?key=${runId()}&n=${n}&rate=${rate}`
  const bound = cfg.pollS * 1000 + 3 * POLL_INTERVAL_MS + 5000
  let complete: boolean
  if (mech === 'js-poll') {
    let since = '0'
    let busy = false
    const tick = async () => {
      if (busy) return
      busy = true
      try {
        const res = await fetch(`${url}&since=${since}`, { cache: 'no-store' })
        parseEventStream(await res.text(), (id, data) => {
          r.on(data)
          if (id !== undefined) since = id
        })
      } catch (e) {
        log(`  (poll failed: ${String(e)})`)
      } finally {
        busy = false
      }
    }
    void tick()
    const timer = setInterval(tick, POLL_INTERVAL_MS)
    complete = await r.wait(bound)
    clearInterval(timer)
  } else {
    const c = await withTimeout('connect (poll)', connect({ url, transport: 'poll' }), 20_000)
    c.on('message', (f) => r.on(f.data))
    complete = await r.wait(bound)
    await closeQuietly(c)
  }
  const result = { workload: 'poll', mech, rate, rep, n, complete, ...r.checks(), ...r.latency() }
  await record(result)
  log(`poll ${rate}/s ${mech} #${rep}: p50 ${result.p50Ms} ms, p99 ${result.p99Ms} ms, lost ${result.lost}`)
}

interface ServerStats {
  wsOpen: number
  sseOpen: number
  idleOpen: number
  sent: number
}
const serverStats = async () => (await fetch(`${cfg.http}/stats`, { cache: 'no-store' })).json() as Promise<ServerStats>

/** Idle streams to the bench server over cleartext HTTP/1.1 (a connection each), or over TLS with HTTP/2 (shared). */
async function scaling(streams: number, protocol: 'HTTP/1.1' | 'HTTP/2') {
  const base = protocol === 'HTTP/2' ? cfg.https : cfg.http
  // Streams of the previous step linger a few seconds in Rust after close (the plugin's default): wait for them.
  // Bounds grow with the step: 10 000 streams take seconds to open, ping and close on 2 cores.
  const bound = (ms: number) => Math.max(ms, streams * 10)
  await waitUntil('previous idle streams closed', async () => (await serverStats()).idleOpen === 0, 120_000)
  await sleep(1000)
  const s0 = await stats()
  const run = runId()
  const conns: Connection[] = []
  const pinged = new Uint8Array(streams)
  const up = new Uint8Array(streams)
  let connected = 0
  const t0 = performance.now()
  for (let i = 0; i < streams; i += 50) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(50, streams - i) }, async (_, j) => {
        const k = i + j
        const c = await withTimeout(
          'connect',
          connect({ url: `${base}/idle?k=${k}&run=${run}`, share: false }),
          30_000,
        )
        c.on('message', () => {
          pinged[k] = 1
        })
        c.state.subscribe((v) => {
          if (v.state === 'connected' && !up[k]) {
            up[k] = 1
            connected++
          }
        })
        return c
      }),
    )
    conns.push(...batch)
  }
  await waitUntil(`${streams} streams connected`, () => connected === streams, bound(60_000))
  const openMs = performance.now() - t0
  const s1 = await stats()
  await sleep(cfg.idleS * 1000)
  const s2 = await stats()
  const serverOpen = (await (await fetch(`${cfg.http}/idle/ping`, { cache: 'no-store' })).json()) as number
  let working = 0
  try {
    await waitUntil('every stream pinged', () => pinged.every((p) => p === 1), bound(30_000))
  } catch {
    // counted below
  }
  working = pinged.reduce((a, p) => a + p, 0)
  for (let i = 0; i < conns.length; i += 100) {
    await Promise.all(conns.slice(i, i + 100).map((c) => closeQuietly(c)))
  }
  const result = {
    workload: 'scaling',
    streams,
    protocol,
    openMs: round(openMs, 1),
    serverOpen,
    working,
    appRssDeltaKb: s2.app.rssKb - s0.app.rssKb,
    webRssDeltaKb: s2.web.rssKb - s0.web.rssKb,
    appKbPerStream: round((s2.app.rssKb - s0.app.rssKb) / streams, 2),
    webKbPerStream: round((s2.web.rssKb - s0.web.rssKb) / streams, 2),
    idleCpu: {
      appMsPerS: round((s2.app.cpuMs - s1.app.cpuMs) / cfg.idleS, 1),
      webMsPerS: round((s2.web.cpuMs - s1.web.cpuMs) / cfg.idleS, 1),
    },
    before: s0,
    idle: s2,
  }
  await record(result)
  log(
    `scaling ${streams} SSE streams over ${protocol}: opened in ${result.openMs} ms, ${working}/${streams} working, ` +
      `app +${result.appKbPerStream} KiB/stream, web process +${result.webKbPerStream} KiB/stream`,
  )
}

async function burst(mech: Mech, rep: number, turnsPerUs: number) {
  const n = cfg.burstN
  const size = cfg.burstSize
  const r = new Receiver(n, size, -1, Math.max(1, Math.round(turnsPerUs * cfg.burstSpinUs)))
  r.progressEvery = 1000
  await sleep(1000)
  const sentBefore = (await serverStats()).sent
  const before = await stats()
  await invoke('sample_start', { intervalMs: 50 })
  let h: Handle | undefined
  let complete = false
  try {
    h = await openBounded(mech, `n=${n}&size=${size}`, r.on)
    complete = await r.wait(240_000)
  } finally {
    const samples = await invoke<Sample[]>('sample_stop')
    const after = await stats()
    await closeQuietly(h)
    const peak = (f: (s: Sample) => number) => samples.reduce((m, s) => Math.max(m, f(s)), 0)
    const seconds = r.seconds()
    const every = Math.max(1, Math.ceil(samples.length / 200))
    // Backlog: messages the server has handed to its socket but the page's handler has not processed yet
    // (in socket buffers, in Rust, in the IPC or queued in the webview), at each sample.
    let maxBacklog = 0
    let k = 0
    for (const s of samples) {
      if (s.serverSent === null) continue
      while (k + 1 < r.progress.length && r.progress[k + 1]![0] <= s.at) k++
      const processed = r.progress.length && r.progress[k]![0] <= s.at ? r.progress[k]![1] : 0
      maxBacklog = Math.max(maxBacklog, s.serverSent - sentBefore - processed)
    }
    const result = {
      workload: 'burst',
      mech,
      rep,
      n,
      size,
      spinUs: cfg.burstSpinUs,
      complete,
      ...r.checks(),
      seconds: round(seconds, 3),
      msgsPerS: round(r.received / seconds, 0),
      maxBacklog,
      appPeakDeltaKb: peak((s) => s.appRssKb) - before.app.rssKb,
      webPeakDeltaKb: peak((s) => s.webRssKb) - before.web.rssKb,
      networkPeakDeltaKb: peak((s) => s.networkRssKb) - before.network.rssKb,
      before,
      samples: samples.filter((_, i) => i % every === 0),
      cpu: cpuDelta(before, after),
    }
    await record(result)
    log(
      `burst ${mech} #${rep}: ${r.received}/${n} in ${result.seconds} s, out of order ${r.outOfOrder}, backlog at most ${maxBacklog} messages, ` +
        `peak RSS +${(result.appPeakDeltaKb / 1024).toFixed(1)} MiB app, +${(result.webPeakDeltaKb / 1024).toFixed(1)} MiB web process`,
    )
  }
}

/**
 * The `micro` diagnostic: where the time per frame goes, in µs per frame (64 B frames in batches of 256, then
 * 16 KiB frames in batches of 64, as the plugin's caps make them), by how the app hands a batch to the page:
 * (1) a Tauri event whose payload is the array of frame objects, exactly the plugin's event route (the webview
 * compiles it as a script literal), (2) the same array as one JSON string that the page `JSON.parse`s, (3) the
 * compact encoding (a run of alike messages as bare strings) as such a string, (4) an experiment: the compact
 * encoding through a `Channel` (strings of a few KiB, or a large batch whole as bytes), (5) the plugin's direct
 * route as it delivers, in the form it picks by the frames' size, and its two forms whatever the size: (6) one
 * script per batch calling the bindings' receiver, (7) the compact batch as the argument of a function that
 * never changes (GVariant, WebKitGTK); then the bindings' own dispatch (`ConnectionImpl.receive`) and the bench
 * handler alone, with no IPC.
 */
async function micro(size: number, frames: number, count: number, rep: number) {
  const total = count * frames
  const sink = (d: string) => {
    spinSink ^= d.length
  }
  const decoder = new TextDecoder()
  const viaEvents = async (mode: string) => {
    const event = `realtime-micro://${mode}${runId()}`
    let got = 0
    let resolve!: () => void
    const done = new Promise<void>((r) => (resolve = r))
    const onBatch = (payload: unknown) => {
      const raw = payload instanceof ArrayBuffer ? decoder.decode(payload) : payload
      const batch = (typeof raw === 'string' ? JSON.parse(raw) : raw) as (Frame | string)[]
      for (const f of batch) {
        if (typeof f === 'string') sink(f)
        else if (f.kind === 'message') sink(f.data)
      }
      if (++got === count) resolve()
    }
    const channel = new Channel<unknown>(onBatch)
    const unlisten = await listen<unknown>(event, (e) => onBatch(e.payload))
    if (mode === 'direct' || mode === 'script' || mode === 'gvariant') receiver().connections.set(event, { receiveWire: onBatch })
    const before = await stats()
    const t0 = performance.now()
    await invoke('micro_emit', { event, count, frames, size, mode, channel })
    await withTimeout('micro events', done, 60_000)
    const ms = performance.now() - t0
    const after = await stats()
    unlisten()
    receiver().connections.delete(event)
    return { usPerFrame: round((ms * 1000) / total, 2), webCpuUsPerFrame: round(((after.web.cpuMs - before.web.cpuMs) * 1000) / total, 2), appCpuUsPerFrame: round(((after.app.cpuMs - before.app.cpuMs) * 1000) / total, 2) }
  }
  // In an order rotated by repetition, so that no path always pays for the garbage the one before it left.
  const modes = ['obj', 'str', 'compact', 'channel', 'direct', 'script', 'gvariant']
  const by: Record<string, Awaited<ReturnType<typeof viaEvents>>> = {}
  for (let i = 0; i < modes.length; i++) {
    const mode = modes[(i + rep - 1) % modes.length]!
    by[mode] = await viaEvents(mode)
  }
  const { obj: eventArray, str: eventString, compact: eventCompact, channel: channelCompact, direct, script, gvariant } = by
  // The bindings alone: prebuilt frames through ConnectionImpl.receive, as the receiver calls it (at most 200
  // batches: prebuilt 16 KiB frames would otherwise take hundreds of MB of the page's memory).
  let seq = 0
  const prebuilt = Math.min(count, 200) * frames
  const batches: Frame[][] = Array.from({ length: Math.min(count, 200) }, () =>
    Array.from({ length: frames }, () => {
      seq++
      return { kind: 'message', seq, transport: 'websocket', data: `${seq} ${Date.now()} `.padEnd(size, 'x') } as Frame
    }),
  )
  const conn = new ConnectionImpl('micro')
  conn.attach({ state: 'connected', shared: false }, {
    send: async () => ({ queued: false }),
    setOnConnect: async () => ({ connected: false }),
    removeOnConnect: async () => ({ removed: false }),
    close: async () => {},
    reconnect: async () => {},
    inspect: async () => {
      throw new Error('no')
    },
    detach: async () => {},
    progress: () => {},
  })
  conn.on('message', (f: { data: string }) => sink(f.data))
  await sleep(10)
  let t0 = performance.now()
  for (const b of batches) conn.receive(b)
  const bindingsUs = ((performance.now() - t0) * 1000) / prebuilt
  t0 = performance.now()
  for (const b of batches) for (const f of b) if (f.kind === 'message') sink(f.data)
  const loopUs = ((performance.now() - t0) * 1000) / prebuilt
  const r = new Receiver(prebuilt, size, -1)
  t0 = performance.now()
  for (const b of batches) for (const f of b) if (f.kind === 'message') r.on(f.data)
  const handlerUs = ((performance.now() - t0) * 1000) / prebuilt
  const result = {
    workload: 'micro',
    rep,
    size,
    frames: total,
    batch: frames,
    eventArray,
    eventString,
    eventCompact,
    channelCompact,
    direct,
    script,
    gvariant,
    bindingsUsPerFrame: round(bindingsUs, 3),
    plainLoopUsPerFrame: round(loopUs, 3),
    benchHandlerUsPerFrame: round(handlerUs, 3),
  }
  await record(result)
  log(`micro: ${JSON.stringify(result)}`)
}

// ---------------------------------------------------------------------------------------------------------------
// The suite
// ---------------------------------------------------------------------------------------------------------------

async function guarded(what: string, f: () => Promise<void>, extra: Record<string, unknown>): Promise<void> {
  try {
    await f()
  } catch (e) {
    log(`${what}: FAILED ${String(e)}`)
    await record({ ...extra, error: String(e) })
  }
  await sleep(300)
}

async function main(): Promise<void> {
  cfg = await invoke<Config>('bench_config')
  const has = (w: string) => cfg.workloads.includes(w)
  if (cfg.mechs.length) {
    STREAM_MECHS = STREAM_MECHS.filter((m) => cfg.mechs.includes(m))
    POLL_MECHS = POLL_MECHS.filter((m) => cfg.mechs.includes(m))
    cfg.burstMechs = cfg.burstMechs.filter((m) => cfg.mechs.includes(m))
  }
  const clock = await checkClock()
  const page = {
    userAgent: navigator.userAgent,
    origin: location.origin,
    timerResolutionMs: timerResolution(),
    crossOriginIsolated: globalThis.crossOriginIsolated === true,

    clock,
    spinTurnsPerUs: 0,
  }
  log(
    `page ${page.origin}, timer step ${page.timerResolutionMs.toFixed(3)} ms, server minus page clock ${clock.serverMinusPageMs.toFixed(3)} ms ` +
      `(IPC round trip ${clock.rttMs.toFixed(3)} ms), performance.timeOrigin + now() minus Date.now() ${clock.performanceMinusDateNowMs.toFixed(3)} ms`,
  )

  // Scaling first, in a fresh process: memory freed by other workloads would hide what streams cost.
  if (has('scaling')) {
    for (const streams of cfg.scaling) {
      for (const protocol of cfg.protocols) {
        await guarded(`scaling ${streams} ${protocol}`, () => scaling(streams, protocol), { workload: 'scaling', streams, protocol })
      }
    }
  }

  if (has('tp64') || has('tp16k')) {
    for (const mech of STREAM_MECHS) await guarded(`warm-up ${mech}`, () => throughput('tp64', mech, 2000, 64, 0, true), {})
  }
  for (const [w, n, size] of [
    ['tp64', cfg.tpSmallN, 64],
    ['tp16k', cfg.tpLargeN, 16384],
  ] as const) {
    if (!has(w)) continue
    for (let rep = 1; rep <= cfg.reps; rep++) {
      for (const mech of STREAM_MECHS) {
        await guarded(`${w} ${mech}`, () => throughput(w, mech, n, size, rep), { workload: w, mech, rep })
      }
    }
  }

  if (has('latency')) {
    for (const rate of cfg.latencyRates) {
      for (let rep = 1; rep <= cfg.reps; rep++) {
        for (const mech of STREAM_MECHS) {
          await guarded(`latency ${mech}`, () => latency(mech, rate, rep), { workload: 'latency', mech, rate, rep })
        }
      }
    }
  }

  if (has('poll')) {
    for (const rate of cfg.pollRates) {
      for (let rep = 1; rep <= cfg.reps; rep++) {
        for (const mech of POLL_MECHS) {
          await guarded(`poll ${mech}`, () => pollLatency(mech, rate, rep), { workload: 'poll', mech, rate, rep })
        }
      }
    }
  }

  if (has('burst')) {
    page.spinTurnsPerUs = calibrateSpin()
    for (let rep = 1; rep <= cfg.burstReps; rep++) {
      for (const mech of cfg.burstMechs) {
        await guarded(`burst ${mech}`, () => burst(mech, rep, page.spinTurnsPerUs), { workload: 'burst', mech, rep })
      }
    }
  }

  if (has('micro')) {
    // Enough frames that CPU time, counted in 10 ms ticks, resolves a few percent of each path (about 0.25 s of
    // a path's time at 64 B and 1 s at 16 KiB); once per repetition, so that runs can be compared.
    const [small, mid, large] = cfg.quick ? [200, 40, 40] : [1000, 300, 200]
    for (let rep = 1; rep <= cfg.reps; rep++) {
      await guarded('micro 64 B', () => micro(64, 256, small, rep), { workload: 'micro', size: 64, rep })
      // Where the direct route's two forms cross (`ARGUMENT_MAX_FRAME` in src/relay/receiver.rs).
      await guarded('micro 1 KiB', () => micro(1024, 256, mid, rep), { workload: 'micro', size: 1024, rep })
      await guarded('micro 16 KiB', () => micro(16384, 64, large, rep), { workload: 'micro', size: 16384, rep })
    }
  }

  log(`done (spin sink ${spinSink & 1})`)
  await invoke('bench_finish', { page, failed: false })
}

main().catch(async (e) => {
  log(`bench page failed: ${String(e)}`)
  try {
    await invoke('bench_finish', { page: { error: String(e) }, failed: true })
  } catch {
    // the app's watchdog ends the run
  }
})
