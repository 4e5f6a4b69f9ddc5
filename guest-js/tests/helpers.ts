// A stand-in for the Rust side: `@tauri-apps/api/mocks`, a recorder of every IPC call, default answers for the
// realtime commands that a test can override, and delivery driven as the Rust relay drives it (a script that
// calls the page's receiver with the batch in the compact encoding as an array literal).

import { clearMocks, mockIPC } from '@tauri-apps/api/mocks'

import { RECEIVER, receiver } from '../receiver.js'
import type { ConnectionInfo, Frame, State } from '../types.js'

export type Args = Record<string, unknown>
export type CommandHandler = (args: Args) => unknown

export interface Call {
  cmd: string
  args: Args
}

type Internals = {
  invoke: (cmd: string, args?: unknown, options?: unknown) => Promise<unknown>
}

const win = () => globalThis as unknown as { __TAURI_INTERNALS__?: Internals }

export function info(id: string, extra: Partial<ConnectionInfo> = {}): ConnectionInfo {
  return {
    id,
    url: 'wss://example.test/feed',
    transport: 'websocket',
    state: 'connected',
    attempt: 0,
    framesIn: 3,
    framesOut: 1,
    bytesIn: 30,
    bytesOut: 10,
    queued: 0,
    queuedBytes: 0,
    lastError: null,
    lastEventId: null,
    protocol: null,
    subscribers: 1,
    owners: { main: 1 },
    joinable: false,
    tasks: 2,
    ...extra,
  }
}

export class FakeRust {
  readonly calls: Call[] = []
  readonly handlers: Record<string, CommandHandler> = {
    connect: (a) => ({ id: a.id, state: 'connecting', shared: false }),
    send: () => ({ queued: false }),
    close: () => null,
    reconnect: () => null,
    inspect: (a) => [info(String(a.id))],
  }

  constructor() {
    mockIPC((cmd, payload) => {
      const name = cmd.replace(/^plugin:realtime\|/, '')
      const handler = this.handlers[name]
      if (!cmd.startsWith('plugin:realtime|') || !handler) throw `unexpected command ${cmd}`
      const args = (payload ?? {}) as Args
      return handler(args)
    })
    const internals = win().__TAURI_INTERNALS__!
    const original = internals.invoke
    internals.invoke = (cmd, args, options) => {
      this.calls.push({ cmd, args: (args ?? {}) as Args })
      return original(cmd, args, options)
    }
  }

  /** The calls of one command, e.g. `commands('connect')` or `commands('plugin:event|listen')`. */
  commands(name: string): Args[] {
    const cmd = name.includes('|') ? name : `plugin:realtime|${name}`
    return this.calls.filter((c) => c.cmd === cmd).map((c) => c.args)
  }

  /** The command names in call order. */
  order(): string[] {
    return this.calls.map((c) => c.cmd)
  }

  /** The id of the n-th `connect` call. */
  id(n = 0): string {
    const args = this.commands('connect')[n]
    if (!args) throw new Error(`expected a connect call #${n}, got ${this.commands('connect').length}`)
    return String(args.id)
  }

  /** Delivers frames as the Rust relay does: a script calling the receiver with the batch's JSON as a literal. */
  async emit(id: string, frames: Frame[] | Frame, encoded?: string): Promise<void> {
    this.evaluate(id, encoded ?? JSON.stringify(Array.isArray(frames) ? frames : [frames]))
    await Promise.resolve()
  }

  /** Evaluates the script Rust sends for `batch` (a JavaScript expression: the compact encoding's JSON). */
  evaluate(id: string, batch: string): void {
    if (!this.commands('connect').some((a) => a.id === id && a.route === 'direct')) {
      throw new Error(`expected a connect call for ${id} that asks for the direct route`)
    }
    // As `src/relay/receiver.rs` writes it; an indirect eval runs in the global scope, as the webview evaluates it.
    ;(0, eval)(`window.${RECEIVER}&&window.${RECEIVER}.deliver(${JSON.stringify(id)},${batch})`)
  }

  /** 1 while the page's receiver holds the connection, 0 once it let go. */
  listeners(id: string): number {
    return receiver().connections.has(id) ? 1 : 0
  }
}

export function resetTauri(): void {
  clearMocks()
  delete (globalThis as { __TAURI_INTERNALS__?: unknown }).__TAURI_INTERNALS__
  delete (globalThis as { __TAURI_EVENT_PLUGIN_INTERNALS__?: unknown }).__TAURI_EVENT_PLUGIN_INTERNALS__
}

/** Lets pending promises and zero-delay timers (the held-frame flush) run. */
export async function settle(rounds = 3): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((r) => setTimeout(r, 0))
}

let nextSeq = 1
/** Frame builders with consecutive `seq` numbers (reset with `seqFrom`). */
export const seqFrom = (n: number): void => {
  nextSeq = n
}
export const st = (state: State, extra: object = {}): Frame =>
  ({ kind: 'state', seq: nextSeq++, state, ...extra }) as Frame
export const msg = (data: string, extra: object = {}): Frame =>
  ({ kind: 'message', seq: nextSeq++, transport: 'websocket', data, ...extra }) as Frame
export const sse = (event: string, data: string, lastEventId = ''): Frame =>
  ({ kind: 'message', seq: nextSeq++, transport: 'sse', event, data, lastEventId }) as Frame
export const err = (message: string, fatal: boolean): Frame => ({ kind: 'error', seq: nextSeq++, message, fatal })
export const closeF = (code: number, reason: string): Frame => ({ kind: 'close', seq: nextSeq++, code, reason })
