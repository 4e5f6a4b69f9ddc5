// The page's receiver: the global that Rust's direct route calls once per batch (`src/relay/receiver.rs` makes
// the call). One per page, shared by every copy of the bindings the page loads; it holds the connections of
// this page by id and nothing else.

/**
 * The global through which Rust delivers batches: `window.__TAURI_PLUGIN_REALTIME__.deliver(id, batch)` with the
 * batch in the compact encoding (see `wire.ts`), once per batch: a script with the batch as an array literal, or
 * on WebKitGTK, for small frames, a function that never changes called with the batch as JSON text it parses.
 */
export const RECEIVER = '__TAURI_PLUGIN_REALTIME__'

/** What the receiver hands a batch to: a connection of this page. */
export interface BatchSink {
  receiveWire(batch: unknown): void
}

export interface Receiver {
  readonly connections: Map<string, BatchSink>
  deliver(id: string, batch: unknown): void
}

/** The page's receiver, made on first use (or the one another copy of the bindings made). */
export function receiver(): Receiver {
  const g = globalThis as unknown as Record<string, Receiver | undefined>
  let r = g[RECEIVER]
  if (!r) {
    const connections: Receiver['connections'] = new Map()
    r = Object.freeze({
      connections,
      // A batch for a connection this page does not hold (closed, or opened by the page before a reload) is dropped.
      deliver: (id: string, batch: unknown) => connections.get(id)?.receiveWire(batch),
    })
    // Frozen and not enumerable: a page script can neither replace it nor find it by walking `window`.
    Object.defineProperty(g, RECEIVER, { value: r, enumerable: false })
  }
  return r
}
