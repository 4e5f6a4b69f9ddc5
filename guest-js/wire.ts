// The compact batch encoding Rust sends to the page (`crates/core/src/wire.rs`): a JSON array whose elements are
// frame objects, or strings standing for a message frame like the previous element with `seq` + 1 and that
// string as `data`. Most batches are runs of alike messages, and a webview parses a string far faster than an
// object with four keys. Rust writes the array as a literal into the script that calls the page's receiver.

import type { Frame, MessageFrame } from './types.js'

/** Expands one batch, the array the receiver is called with, into frames, in place. Throws on malformed input. */
export function decodeBatch(batch: unknown): Frame[] {
  if (!Array.isArray(batch)) throw new TypeError('malformed batch: expected an array')
  const frames = batch as (Frame | string)[]
  let prev: Frame | undefined
  for (let i = 0; i < frames.length; i++) {
    const item = frames[i]!
    if (typeof item === 'string') {
      if (prev?.kind !== 'message') {
        throw new TypeError(`malformed batch: element ${i} is a string but does not follow a message frame`)
      }
      // Keys in the order Rust writes them, so the frames of a run share one object shape with the first.
      const f: MessageFrame =
        prev.event === undefined
          ? { kind: 'message', seq: prev.seq + 1, transport: prev.transport, data: item }
          : { kind: 'message', seq: prev.seq + 1, transport: prev.transport, event: prev.event, data: item }
      if (prev.lastEventId !== undefined) f.lastEventId = prev.lastEventId
      if (prev.binary) f.binary = true
      frames[i] = f
      prev = f
    } else {
      prev = item
    }
  }
  return frames as Frame[]
}
