// The TypeScript envelope must mirror `crates/core/src/frame.rs`. The fixture holds the JSON that the Rust test
// `envelope_matches_the_documented_json` asserts; this file checks (1) that the fixture still equals the
// `json!` literals in that Rust file, (2) that every sample has exactly the fields its TypeScript variant
// declares, and (3) that each sample goes through a Connection to the right handler unchanged.

import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import frameRs from '../../crates/core/src/frame.rs?raw'
import { connect, decodeBinary, RealtimeEventSource, RealtimeWebSocket } from '../index.js'
import type { CloseFrame, ErrorFrame, Frame, FrameKind, MessageFrame, State, StateFrame, Transport } from '../types.js'
import fixture from './fixtures/frames.json'
import { FakeRust, resetTauri, settle } from './helpers.js'

const samples = fixture.frames as Frame[]

// `Required<Record<keyof X, boolean>>`: the compiler insists that each list names every field of its variant and
// nothing else; the boolean says whether the field is required.
const FIELDS: { [K in FrameKind]: Record<keyof Extract<Frame, { kind: K }>, boolean> } = {
  state: { kind: true, seq: true, state: true, transport: false, attempt: false, delayMs: false, reason: false, protocol: false, snapshot: false },
  message: { kind: true, seq: true, transport: true, event: false, data: true, lastEventId: false, binary: false },
  error: { kind: true, seq: true, message: true, fatal: true },
  close: { kind: true, seq: true, code: true, reason: true },
}
const STATES: Record<State, true> = {
  connecting: true,
  connected: true,
  reconnecting: true,
  polling: true,
  failed: true,
  disconnected: true,
}
const TRANSPORTS: Record<Transport, true> = { websocket: true, sse: true, poll: true }

describe('envelope fixture', () => {
  it('equals the json! samples of the Rust test envelope_matches_the_documented_json', () => {
    const start = frameRs.indexOf('fn envelope_matches_the_documented_json')
    expect(start, 'expected the Rust test in crates/core/src/frame.rs').toBeGreaterThan(0)
    const body = frameRs.slice(start)
    const literals = [...body.matchAll(/json!\((\{.*?\})\)/gs)].map((m) => JSON.parse(m[1]!) as unknown)
    expect(literals.length).toBeGreaterThanOrEqual(6)
    expect(samples).toEqual(literals)
  })

  it('has a sample of every kind', () => {
    expect(new Set(samples.map((f) => f.kind))).toEqual(new Set(Object.keys(FIELDS)))
  })

  it.each(samples.map((f) => [`${f.kind} #${f.seq}`, f] as const))(
    '%s has exactly the fields of its TypeScript variant',
    (_name, frame) => {
      const fields = FIELDS[frame.kind] as Record<string, boolean>
      const unknown = Object.keys(frame).filter((k) => !(k in fields))
      const missing = Object.entries(fields)
        .filter(([k, required]) => required && !(k in frame))
        .map(([k]) => k)
      expect(unknown, 'fields the TypeScript type does not declare').toEqual([])
      expect(missing, 'required fields absent').toEqual([])
      expect(Number.isInteger(frame.seq) && frame.seq >= 1).toBe(true)
      if (frame.kind === 'state') expect(STATES).toHaveProperty(frame.state)
      if ('transport' in frame && frame.transport !== undefined) expect(TRANSPORTS).toHaveProperty(frame.transport)
    },
  )

  it('survives JSON both ways without a field changing', () => {
    for (const frame of samples) expect(JSON.parse(JSON.stringify(frame))).toStrictEqual(frame)
  })
})

describe('envelope through the bindings', () => {
  let rust: FakeRust
  beforeEach(() => {
    rust = new FakeRust()
  })
  afterEach(() => resetTauri())

  it('hands each sample to the handler of its kind, unchanged', async () => {
    const conn = await connect({ url: 'https://example.test/stream' })
    const got: Record<string, Frame[]> = { state: [], message: [], error: [], close: [], summary: [] }
    conn.on('state', (f: StateFrame) => got.state!.push(f))
    conn.on('message', (f: MessageFrame) => got.message!.push(f))
    conn.on('error', (f: ErrorFrame) => got.error!.push(f))
    conn.on('close', (f: CloseFrame) => got.close!.push(f))
    conn.on('summary', (f: MessageFrame) => got.summary!.push(f))
    await rust.emit(conn.id, structuredClone(samples))
    await settle()

    const byKind = (k: FrameKind) => samples.filter((f) => f.kind === k)
    expect(got.state).toStrictEqual(byKind('state'))
    expect(got.message).toStrictEqual(byKind('message'))
    expect(got.error).toStrictEqual(byKind('error'))
    expect(got.close).toStrictEqual(byKind('close'))
    expect(got.summary).toStrictEqual(samples.filter((f) => f.kind === 'message' && f.event === 'summary'))
  })

  it('decodes the binary sample to its bytes', () => {
    const binary = samples.find((f): f is MessageFrame => f.kind === 'message' && f.binary === true)!
    expect([...decodeBinary(binary)]).toEqual([0, 1, 2])
  })

  it('turns the SSE sample into a named MessageEvent with its lastEventId', async () => {
    const source = new RealtimeEventSource('https://example.test/stream')
    const events: MessageEvent[] = []
    source.addEventListener('summary', (e) => events.push(e as MessageEvent))
    await settle()
    const sample = samples.find((f) => f.kind === 'message' && f.transport === 'sse')!
    await rust.emit(rust.id(), [sample])
    await settle()
    expect(events.map((e) => [e.type, e.data, e.lastEventId])).toEqual([['summary', 'hi', '42']])
  })

  it('turns the WebSocket binary sample into an ArrayBuffer MessageEvent', async () => {
    const ws = new RealtimeWebSocket('wss://example.test/feed')
    ws.binaryType = 'arraybuffer'
    const data: unknown[] = []
    ws.onmessage = (e) => data.push(e.data)
    await settle()
    const sample = samples.find((f) => f.kind === 'message' && f.transport === 'websocket')!
    await rust.emit(rust.id(), [{ kind: 'state', seq: 3, state: 'connected', transport: 'websocket' }, sample])
    await settle()
    expect(data).toHaveLength(1)
    expect(data[0]).toBeInstanceOf(ArrayBuffer)
    expect([...new Uint8Array(data[0] as ArrayBuffer)]).toEqual([0, 1, 2])
  })
})
