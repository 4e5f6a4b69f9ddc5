// The page's receiver, which Rust's direct route calls: one per page whatever copies of the bindings it loads,
// out of reach of page scripts, and deaf to ids the page does not hold.

import { describe, expect, it, vi } from 'vitest'

import { RECEIVER, receiver } from '../receiver.js'

describe('the page receiver', () => {
  it('is made once, frozen and unlisted, and cannot be replaced', () => {
    const r = receiver()
    expect(receiver()).toBe(r)
    expect((globalThis as Record<string, unknown>)[RECEIVER]).toBe(r)
    expect(Object.isFrozen(r)).toBe(true)
    expect(Object.keys(globalThis)).not.toContain(RECEIVER)
    // Modules are strict code: the assignment throws rather than failing silently.
    expect(() => {
      ;(globalThis as Record<string, unknown>)[RECEIVER] = { deliver: () => {} }
    }).toThrow(TypeError)
    expect(receiver()).toBe(r)
  })

  it('is shared by another copy of the bindings in the same page', async () => {
    // A second instance of the module (a query makes one in vite), as a page that bundles the bindings twice has.
    // @ts-expect-error: tsc does not resolve a module path with a query.
    const copy = (await import('../receiver.js?copy')) as typeof import('../receiver.js')
    expect(copy.receiver).not.toBe(receiver)
    expect(copy.receiver()).toBe(receiver())
  })

  it('hands a batch to the connection with that id, and drops one for an id it does not hold', () => {
    const sink = { receiveWire: vi.fn() }
    receiver().connections.set('held', sink)
    try {
      const batch = [{ kind: 'close', seq: 1, code: 1000, reason: '' }]
      receiver().deliver('held', batch)
      receiver().deliver('gone', batch)
      expect(sink.receiveWire).toHaveBeenCalledTimes(1)
      expect(sink.receiveWire).toHaveBeenCalledWith(batch)
    } finally {
      receiver().connections.delete('held')
    }
  })
})
