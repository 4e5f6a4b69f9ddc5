// A stand-in for the Rust side: `@tauri-apps/api/mocks`, a recorder of every IPC call, default answers for the
// realtime commands that a test can override, and the connection's channel driven as the Rust relay drives it
// (batches in the compact encoding, `end` when the subscription is released).

import type { Channel } from '@tauri-apps/api/core'
import { clearMocks, mockIPC } from '@tauri-apps/api/mocks'

import type { ConnectionInfo, Frame, State } from '../types.js'

export type Args = Record<string, unknown>
export type CommandHandler = (args: Args) => unknown

export interface Call {
  cmd: string
  args: Args
}

type Internals = {
  invoke: (cmd: string, args?: unknown, options?: unknown) => Promise<unknown>
  runCallback: (id: number, data: unknown) => void
  callbacks: Map<number, unknown>
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
    shared: false,
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

  /** Messages sent so far per channel id: Tauri numbers them so the webview can put them in order. */
  private readonly sent = new Map<number, number>()

  constructor() {
    mockIPC((cmd, payload) => {
      const name = cmd.replace(/^plugin:realtime\|/, '')
      const handler = this.handlers[name]
      if (!cmd.startsWith('plugin:realtime|') || !handler) throw `unexpected command ${cmd}`
      const args = (payload ?? {}) as Args
      try {
        return handler(args)
      } catch (e) {
        // Rust drops the channel of a subscription it refused.
        if (name === 'connect') this.end(String(args.id))
        throw e
      } finally {
        // Rust releases the subscription, and with it the channel, whether or not close found it.
        if (name === 'close') this.end(String(args.id))
      }
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

  /** The channel that the `connect` call for `id` passed. */
  channel(id: string): Channel<unknown> {
    const args = this.commands('connect').find((a) => a.id === id)
    if (!args?.channel) throw new Error(`expected a connect call with a channel for ${id}`)
    return args.channel as Channel<unknown>
  }

  /** Sends frames through the connection's channel as the Rust relay does (a string of the JSON array). */
  async emit(id: string, frames: Frame[] | Frame, encoded?: string): Promise<void> {
    this.post(id, { message: encoded ?? JSON.stringify(Array.isArray(frames) ? frames : [frames]) })
    await Promise.resolve()
  }

  /** Sends a raw channel message (e.g. a batch as UTF-8 bytes, as Rust sends large ones). */
  post(id: string, body: { message: unknown } | { end: true }): void {
    const channel = this.channel(id)
    const index = this.sent.get(channel.id) ?? 0
    this.sent.set(channel.id, index + 1)
    const internals = win().__TAURI_INTERNALS__!
    // Like Tauri, which evaluates the call whether or not the page still has the callback.
    if (internals.callbacks.has(channel.id)) internals.runCallback(channel.id, { ...body, index })
  }

  /** Ends the channel as Rust does when it drops it. */
  end(id: string): void {
    this.post(id, { end: true })
  }

  /** 1 while the connection's channel is registered in the page, 0 after it ended. */
  listeners(id: string): number {
    return win().__TAURI_INTERNALS__!.callbacks.has(this.channel(id).id) ? 1 : 0
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
