// Turns the bench app's JSON report into tables (Markdown), checks the issue's targets, and adds the machine and
// versions to the report. Run by scripts/bench:
//
//   node benches/webview/report.mjs artifacts/bench.json [--md artifacts/bench.md]
//
// Every figure is the median of the repetitions, with min and max; a ratio is the ratio of two medians, with the
// range of the per-repetition ratios (repetition i of one mechanism against repetition i of the other: they ran
// next to each other).

import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const repo = resolve(here, '../..')

const args = process.argv.slice(2)
const input = args[0] ?? join(repo, 'artifacts/bench.json')
const mdIndex = args.indexOf('--md')
const mdOut = mdIndex >= 0 ? args[mdIndex + 1] : undefined

const report = JSON.parse(readFileSync(input, 'utf8'))
const results = report.results ?? []

// ---------------------------------------------------------------------------------------------------------------
// Machine and versions
// ---------------------------------------------------------------------------------------------------------------

function sh(cmd, argv) {
  try {
    return execFileSync(cmd, argv, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
  } catch {
    return 'unknown'
  }
}

function lockVersion(name) {
  try {
    const lock = readFileSync(join(repo, 'Cargo.lock'), 'utf8')
    const m = lock.match(new RegExp(`\\[\\[package\\]\\]\\nname = "${name}"\\nversion = "([^"]+)"`))
    return m ? m[1] : 'unknown'
  } catch {
    return 'unknown'
  }
}

function npmVersion(name) {
  const p = join(here, 'node_modules', name, 'package.json')
  return existsSync(p) ? JSON.parse(readFileSync(p, 'utf8')).version : 'unknown'
}

function machine() {
  let cpu = 'unknown'
  let mem = 'unknown'
  try {
    cpu = readFileSync('/proc/cpuinfo', 'utf8').match(/^model name\s*:\s*(.+)$/m)?.[1] ?? cpu
    const kb = Number(readFileSync('/proc/meminfo', 'utf8').match(/^MemTotal:\s+(\d+)/m)?.[1])
    mem = `${(kb / 1024 / 1024).toFixed(1)} GiB`
  } catch {
    // not Linux
  }
  const dirty = sh('git', ['-C', repo, 'status', '--porcelain']) ? ' (uncommitted changes)' : ''
  return {
    date: new Date().toISOString(),
    nproc: sh('nproc', []),
    cpu,
    memory: mem,
    kernel: sh('uname', ['-r']),
    rustc: sh('rustc', ['--version']),
    node: process.version,
    webkit2gtk: sh('pkg-config', ['--modversion', 'webkit2gtk-4.1']),
    tauri: lockVersion('tauri'),
    wry: lockVersion('wry'),
    tauriPluginRealtime: lockVersion('tauri-plugin-realtime'),
    tauriPluginWebsocket: lockVersion('tauri-plugin-websocket'),
    tauriAppsPluginWebsocket: npmVersion('@tauri-apps/plugin-websocket'),
    tauriAppsApi: npmVersion('@tauri-apps/api'),
    commit: sh('git', ['-C', repo, 'rev-parse', '--short', 'HEAD']) + dirty,
  }
}

report.machine ??= machine()

// ---------------------------------------------------------------------------------------------------------------
// Statistics
// ---------------------------------------------------------------------------------------------------------------

function median(xs) {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b)
  if (!s.length) return NaN
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}
const min = (xs) => Math.min(...xs.filter(Number.isFinite))
const max = (xs) => Math.max(...xs.filter(Number.isFinite))

function fmt(x, digits) {
  if (!Number.isFinite(x)) return 'n/a'
  if (digits === undefined) digits = Math.abs(x) >= 100 ? 0 : Math.abs(x) >= 10 ? 1 : Math.abs(x) >= 1 ? 2 : 3
  return x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
}

/** "median (min–max)" */
function mmm(xs, digits) {
  if (!xs.length) return 'n/a'
  if (xs.length === 1) return fmt(xs[0], digits)
  return `${fmt(median(xs), digits)} (${fmt(min(xs), digits)}–${fmt(max(xs), digits)})`
}

const ok = (r) => !r.error
const pick = (where) => results.filter((r) => ok(r) && Object.entries(where).every(([k, v]) => r[k] === v))
const failures = results.filter((r) => r.error)

const MECH_LABEL = {
  'realtime-ws': 'tauri-plugin-realtime, WebSocket',
  'realtime-sse': 'tauri-plugin-realtime, SSE',
  'official-ws': 'tauri-plugin-websocket (official)',
  'native-ws': "webview's own WebSocket",
  'js-poll': 'JS setInterval + fetch, every 2 s',
  'realtime-poll': "tauri-plugin-realtime, transport: 'poll' (2 s)",
}
const STREAM_MECHS = ['realtime-ws', 'realtime-sse', 'official-ws', 'native-ws']

/** Per-repetition ratios of field f, a over b, matched by repetition. */
function pairedRatios(as, bs, f) {
  const out = []
  for (const a of as) {
    const b = bs.find((x) => x.rep === a.rep)
    if (b && Number.isFinite(f(a)) && Number.isFinite(f(b)) && f(b) !== 0) out.push(f(a) / f(b))
  }
  return out
}

function ratio(as, bs, f) {
  const r = median(as.map(f)) / median(bs.map(f))
  const paired = pairedRatios(as, bs, f)
  return { ratio: r, paired }
}

function fmtRatio({ ratio: r, paired }) {
  if (!Number.isFinite(r)) return 'n/a'
  const range = paired.length > 1 ? ` (${fmt(min(paired), 2)}–${fmt(max(paired), 2)})` : ''
  return `${fmt(r, 2)}x${range}`
}

// ---------------------------------------------------------------------------------------------------------------
// Tables
// ---------------------------------------------------------------------------------------------------------------

const out = []
const p = (line = '') => out.push(line)

function table(head, rows) {
  p(`| ${head.join(' | ')} |`)
  p(`|${head.map((h, i) => (i === 0 ? '---' : '---:')).join('|')}|`)
  for (const r of rows) p(`| ${r.join(' | ')} |`)
  p()
}

const m = report.machine
p(`Run of ${m.date}: ${m.nproc} cores (${m.cpu}), ${m.memory}, Linux ${m.kernel}; ${m.rustc}; WebKitGTK ${m.webkit2gtk}; ` +
  `tauri ${m.tauri} (wry ${m.wry}); tauri-plugin-websocket ${m.tauriPluginWebsocket} with @tauri-apps/plugin-websocket ` +
  `${m.tauriAppsPluginWebsocket}; commit ${m.commit}.`)
const c = report.config ?? {}
const clock = report.page?.clock ?? {}
p(`Status: ${report.status}; ${c.reps} repetition(s)${c.quick ? ' (quick)' : ''}; ${fmt(report.elapsedS, 0)} s in the app; ` +
  `page origin ${report.page?.origin ?? '?'}, page timer step ${fmt(report.page?.timerResolutionMs ?? NaN, 3)} ms; ` +
  `server clock minus page clock ${fmt(clock.serverMinusPageMs ?? NaN, 3)} ms over IPC round trips of ${fmt(clock.rttMs ?? NaN, 3)} ms.`)
p()

function throughputTable(workload, title) {
  const rows = []
  const native = pick({ workload, mech: 'native-ws' })
  const official = pick({ workload, mech: 'official-ws' })
  for (const mech of STREAM_MECHS) {
    const rs = pick({ workload, mech })
    if (!rs.length) continue
    const cpuPerMsg = rs.map((r) => ((r.cpu.appMs + r.cpu.webMs + r.cpu.networkMs) * 1000) / Math.max(r.received, 1))
    rows.push([
      MECH_LABEL[mech],
      mmm(rs.map((r) => r.msgsPerS), 0),
      mmm(rs.map((r) => r.mbPerS), 1),
      mech === 'native-ws' ? '1x' : fmtRatio(ratio(rs, native, (r) => r.msgsPerS)),
      mech === 'official-ws' ? '1x' : fmtRatio(ratio(rs, official, (r) => r.msgsPerS)),
      `${rs.reduce((a, r) => a + r.lost, 0)} / ${rs.reduce((a, r) => a + r.outOfOrder + r.badSize, 0)}`,
      fmt(median(cpuPerMsg), 1),
    ])
  }
  if (!rows.length) return
  p(`### ${title}`)
  p()
  table(['mechanism', 'messages/s', 'MB/s', 'vs native WebSocket', 'vs official plugin', 'lost / out of order', 'CPU µs per message'], rows)
}

throughputTable('tp64', `Throughput: ${fmt(c.tpSmallN ?? NaN, 0)} messages of 64 B`)
throughputTable('tp16k', `Throughput: ${fmt(c.tpLargeN ?? NaN, 0)} messages of 16 KiB`)

for (const rate of c.latencyRates ?? []) {
  const native = pick({ workload: 'latency', mech: 'native-ws', rate })
  const rows = []
  for (const mech of STREAM_MECHS) {
    const rs = pick({ workload: 'latency', mech, rate })
    if (!rs.length) continue
    rows.push([
      MECH_LABEL[mech],
      mmm(rs.map((r) => r.p50Ms), 2),
      mmm(rs.map((r) => r.p99Ms), 2),
      mmm(rs.map((r) => r.maxMs), 2),
      mech === 'native-ws' ? '1x' : fmtRatio(ratio(rs, native, (r) => r.p50Ms)),
      mech === 'native-ws' ? '1x' : fmtRatio(ratio(rs, native, (r) => r.p99Ms)),
      `${rs.reduce((a, r) => a + r.lost, 0)} / ${rs.reduce((a, r) => a + r.outOfOrder, 0)}`,
    ])
  }
  for (const mech of ['js-poll', 'realtime-poll']) {
    const rs = pick({ workload: 'poll', mech, rate })
    if (!rs.length) continue
    rows.push([
      MECH_LABEL[mech],
      mmm(rs.map((r) => r.p50Ms), 0),
      mmm(rs.map((r) => r.p99Ms), 0),
      mmm(rs.map((r) => r.maxMs), 0),
      '',
      '',
      `${rs.reduce((a, r) => a + r.lost, 0)} / ${rs.reduce((a, r) => a + r.outOfOrder, 0)}`,
    ])
  }
  if (!rows.length) continue
  p(`### Latency at ${fmt(rate, 0)} messages/s (ms, server send to page handler)`)
  p()
  table(['mechanism', 'p50', 'p99', 'max', 'p50 vs native', 'p99 vs native', 'lost / out of order'], rows)
}

const scal = pick({ workload: 'scaling' })
if (scal.length) {
  p('### Concurrent idle SSE streams (this plugin, `share: false`)')
  p()
  table(
    ['streams', 'protocol', 'opened in (ms)', 'working', 'app RSS per stream (KiB)', 'web process RSS per stream (KiB)', 'idle CPU app / web (ms per s)'],
    scal.map((r) => [
      fmt(r.streams, 0),
      r.protocol ?? 'HTTP/1.1',
      fmt(r.openMs, 0),
      `${r.working}/${r.streams}`,
      fmt(r.appKbPerStream, 1),
      fmt(r.webKbPerStream, 1),
      `${fmt(r.idleCpu.appMsPerS, 1)} / ${fmt(r.idleCpu.webMsPerS, 1)}`,
    ]),
  )
}

const bursts = pick({ workload: 'burst' })
if (bursts.length) {
  p(`### Burst: ${fmt(c.burstN ?? NaN, 0)} messages of ${c.burstSize} B sent as fast as possible, page handler busy ${c.burstSpinUs} µs per message`)
  p()
  table(
    ['mechanism', 'delivered', 'lost / out of order', 'seconds', 'messages/s', 'largest backlog (messages)', 'peak RSS growth, app (MiB)', 'web process (MiB)', 'network process (MiB)'],
    bursts.map((r) => [
      MECH_LABEL[r.mech],
      `${r.received}/${r.n}`,
      `${r.lost} / ${r.outOfOrder + r.badSize}`,
      fmt(r.seconds, 2),
      fmt(r.msgsPerS, 0),
      fmt(r.maxBacklog ?? NaN, 0),
      fmt(r.appPeakDeltaKb / 1024, 1),
      fmt(r.webPeakDeltaKb / 1024, 1),
      fmt(r.networkPeakDeltaKb / 1024, 1),
    ]),
  )
}

const micros = pick({ workload: 'micro' })
if (micros.length) {
  p('### Diagnostic: time per frame (µs) by delivery path: wall / web process CPU / app CPU')
  p()
  const cell = (x) => (x ? `${fmt(x.usPerFrame, 1)} / ${fmt(x.webCpuUsPerFrame, 1)} / ${fmt(x.appCpuUsPerFrame, 1)}` : '')
  table(
    [
      'frame size, batch',
      'event, array of frame objects (the event route)',
      'event, one JSON string of them',
      'event, compact string',
      'channel, compact in parts (experiment)',
      'the direct route, as it delivers',
      'direct route, script form',
      'direct route, argument form (GVariant)',
      'bindings dispatch alone',
      "bench page's handler alone",
    ],
    micros.map((r) => [
      `${r.size} B, ${r.batch}${r.rep ? `, run ${r.rep}` : ''}`,
      cell(r.eventArray),
      cell(r.eventString),
      cell(r.eventCompact),
      cell(r.channelCompact),
      cell(r.direct),
      cell(r.script),
      cell(r.gvariant),
      fmt(r.bindingsUsPerFrame, 2),
      fmt(r.benchHandlerUsPerFrame, 2),
    ]),
  )
}

// ---------------------------------------------------------------------------------------------------------------
// Targets
// ---------------------------------------------------------------------------------------------------------------

const targets = []
function target(name, value, limit, atLeast, shown) {
  const met = Number.isFinite(value) && (atLeast ? value >= limit : value <= limit)
  targets.push({ name, value, limit, met, shown })
}
for (const mech of ['realtime-ws', 'realtime-sse']) {
  const label = mech === 'realtime-ws' ? 'WS' : 'SSE'
  const thr = (w, other) => ratio(pick({ workload: w, mech }), pick({ workload: w, mech: other }), (r) => r.msgsPerS)
  const t1 = thr('tp64', 'native-ws')
  if (Number.isFinite(t1.ratio)) target(`64 B throughput (${label}) ≥ 3x native WebSocket`, t1.ratio, 3, true, fmtRatio(t1))
  const t2 = thr('tp64', 'official-ws')
  if (Number.isFinite(t2.ratio)) target(`64 B throughput (${label}) ≥ 30x official plugin`, t2.ratio, 30, true, fmtRatio(t2))
  const t3 = thr('tp16k', 'native-ws')
  if (Number.isFinite(t3.ratio)) target(`16 KiB throughput (${label}) ≥ 1.0x native WebSocket`, t3.ratio, 1, true, fmtRatio(t3))
  const t4 = thr('tp16k', 'official-ws')
  if (Number.isFinite(t4.ratio)) target(`16 KiB throughput (${label}) ≥ 8x official plugin`, t4.ratio, 8, true, fmtRatio(t4))
  const lat = (rate, f) => ratio(pick({ workload: 'latency', mech, rate }), pick({ workload: 'latency', mech: 'native-ws', rate }), f)
  const l1 = lat(1000, (r) => r.p50Ms)
  if (Number.isFinite(l1.ratio)) target(`latency p50 at 1 000/s (${label}) ≤ 1.5x native`, l1.ratio, 1.5, false, fmtRatio(l1))
  const l2 = lat(1000, (r) => r.p99Ms)
  if (Number.isFinite(l2.ratio)) target(`latency p99 at 1 000/s (${label}) ≤ 3x native`, l2.ratio, 3, false, fmtRatio(l2))
  const l3 = lat(100, (r) => r.p50Ms)
  if (Number.isFinite(l3.ratio)) target(`latency p50 at 100/s (${label}) ≤ 1.3x native`, l3.ratio, 1.3, false, fmtRatio(l3))
}
// Issue 17: 10 000 idle streams (the largest step run) at most 32 KiB each, over each protocol.
const protocols = [...new Set(scal.map((r) => r.protocol ?? 'HTTP/1.1'))]
for (const proto of protocols) {
  const r = scal.filter((r) => ok(r) && (r.protocol ?? 'HTTP/1.1') === proto).sort((a, b) => a.streams - b.streams).at(-1)
  if (!r || r.streams < 1000) continue
  // A protocol measured after another in the same app reuses the memory the other's streams freed.
  const after = protocols.indexOf(proto) > 0 ? `; after ${protocols[0]} in one app: run it alone (BENCH_PROTOCOLS)` : ''
  target(`idle memory per SSE stream at ${r.streams} streams ≤ 32 KiB (app process, ${proto})`, r.appKbPerStream, 32, false, `${fmt(r.appKbPerStream, 1)} KiB${after}`)
  target(`${r.streams} concurrent streams working (${proto})`, r.working, r.streams, true, `${r.working}/${r.streams}`)
}
const lossy = results.filter((r) => ok(r) && (r.lost > 0 || r.outOfOrder > 0 || r.badSize > 0) && r.workload !== 'scaling')
if (targets.length) {
  p('### Targets')
  p()
  table(['target', 'measured', 'met'], targets.map((t) => [t.name, t.shown, t.met ? 'yes' : '**no**']))
}
if (lossy.length) {
  p(`Runs with lost or out-of-order messages: ${lossy.map((r) => `${r.workload} ${r.mech ?? ''} ${r.rate ?? ''} #${r.rep} (lost ${r.lost}, out of order ${r.outOfOrder})`).join('; ')}`)
  p()
}
if (failures.length) {
  p(`Failed runs: ${failures.map((r) => `${r.workload ?? '?'} ${r.mech ?? [r.streams, r.protocol].filter(Boolean).join(' ') ?? ''} #${r.rep ?? ''}: ${r.error}`).join('; ')}`)
  p()
}

report.targets = targets
writeFileSync(input, JSON.stringify(report, null, 2))
const text = out.join('\n')
if (mdOut) writeFileSync(mdOut, text + '\n')
process.stdout.write(text + '\n')
process.exitCode = report.status === 'done' && !failures.length ? 0 : 1
