// The elements module imported where there is no DOM (server-side rendering, in Node): it must load, and
// defines nothing until asked.

import { expect, it } from 'vitest'

it('loads without a DOM', async () => {
  expect(typeof (globalThis as { HTMLElement?: unknown }).HTMLElement).toBe('undefined')
  const elements = await import('../elements.js')
  expect(typeof elements.defineRealtimeElements).toBe('function')
  expect(typeof elements.consumeConnection).toBe('function')
  expect(elements.CONNECTION_ELEMENT).toBe('realtime-connection')
})
