// `ConnectOptions` and its nested settings must mirror `crates/core/src/options.rs` field for field (serde camelCase),
// and every default the Rust doc comments state must appear in the TypeScript JSDoc of the same field.

import { describe, expect, it } from 'vitest'

import optionsRs from '../../crates/core/src/options.rs?raw'
import typesTs from '../types.ts?raw'
import type { ConnectOptions, FallbackOptions, HeartbeatOptions, QueueOptions, ReconnectOptions } from '../types.js'

interface Field {
  name: string
  doc: string
}

const camel = (snake: string) => snake.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase())

function rustStruct(name: string): Field[] {
  const body = new RegExp(`pub struct ${name} \\{([\\s\\S]*?)\\n\\}`).exec(optionsRs)?.[1]
  if (!body) throw new Error(`expected pub struct ${name} in crates/core/src/options.rs`)
  const fields: Field[] = []
  let doc: string[] = []
  for (const raw of body.split('\n')) {
    const line = raw.trim()
    const field = /^pub (\w+):/.exec(line)
    if (line.startsWith('///')) doc.push(line.slice(3).trim())
    else if (field) {
      fields.push({ name: camel(field[1]!), doc: doc.join(' ') })
      doc = []
    } else if (!line.startsWith('#[')) doc = []
  }
  return fields
}

function tsInterface(name: string): Field[] {
  const body = new RegExp(`export interface ${name} \\{([\\s\\S]*?)\\n\\}`).exec(typesTs)?.[1]
  if (!body) throw new Error(`expected export interface ${name} in guest-js/types.ts`)
  const fields: Field[] = []
  let doc: string[] = []
  let inDoc = false
  for (const raw of body.split('\n')) {
    const line = raw.trim()
    if (line.startsWith('/**')) inDoc = true
    if (inDoc) {
      doc.push(line.replace(/^\/\*\*|\*\/$|^\*/g, '').trim())
      if (line.endsWith('*/')) inDoc = false
      continue
    }
    const field = /^(\w+)\??:/.exec(line)
    if (field) {
      fields.push({ name: field[1]!, doc: doc.join(' ') })
      doc = []
    }
  }
  return fields
}

/** The default a doc comment states: the text after "Default:" up to a sentence end or ", see". */
function stated(doc: string): string | undefined {
  const m = /Default: (.*?)(?:, see|\.(?:\s|$)|$)/.exec(doc)
  const text = m?.[1]?.trim()
  // "Default: see [`QueueOptions`]" points at the nested struct, which is checked on its own.
  return text?.startsWith('see ') ? undefined : text
}

// Compile-time: each list must name every field of the TypeScript type and nothing else.
const TS_FIELDS = {
  ConnectOptions: {
    url: 1, transport: 1, headers: 1, protocols: 1, method: 1, body: 1, lastEventId: 1, sendUrl: 1,
    reconnect: 1, heartbeat: 1, queue: 1, fallback: 1, share: 1, maxMessageSize: 1, connectTimeoutMs: 1,
    withCredentials: 1,
  } satisfies Record<keyof ConnectOptions, 1>,
  ReconnectOptions: {
    initialDelayMs: 1, multiplier: 1, maxDelayMs: 1, jitter: 1, maxRetries: 1, stableAfterMs: 1, onNormalClose: 1,
  } satisfies Record<keyof ReconnectOptions, 1>,
  HeartbeatOptions: {
    pingIntervalMs: 1, pongTimeoutMs: 1, idleTimeoutMs: 1, message: 1, reply: 1, protocolPing: 1, deliverReplies: 1,
  } satisfies Record<keyof HeartbeatOptions, 1>,
  QueueOptions: { maxMessages: 1, maxBytes: 1 } satisfies Record<keyof QueueOptions, 1>,
  FallbackOptions: {
    pollUrl: 1, sendUrl: 1, intervalMs: 1, afterFailures: 1, probeIntervalMs: 1,
  } satisfies Record<keyof FallbackOptions, 1>,
}

describe.each(Object.entries(TS_FIELDS))('%s', (name, tsFields) => {
  it('has the same fields as the Rust struct', () => {
    const rust = rustStruct(name).map((f) => f.name)
    expect(Object.keys(tsFields).sort()).toEqual([...rust].sort())
    expect(tsInterface(name).map((f) => f.name).sort()).toEqual([...rust].sort())
  })

  it('states every default the Rust doc comment states', () => {
    const ts = new Map(tsInterface(name).map((f) => [f.name, f.doc]))
    const checked: string[] = []
    for (const field of rustStruct(name)) {
      const want = stated(field.doc)
      if (want === undefined) continue
      const doc = ts.get(field.name) ?? ''
      expect(doc, `${name}.${field.name}: expected the JSDoc to say "Default:"`).toContain('Default:')
      expect(doc.slice(doc.indexOf('Default:')), `${name}.${field.name}: expected the default ${want}`).toContain(want)
      checked.push(field.name)
    }
    expect(checked.length).toBeGreaterThan(0)
  })
})
