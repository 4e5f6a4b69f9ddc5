// The one store the bindings' `state`, `error` and `messages` are made of: the Svelte store contract (`subscribe`
// calls `run` at once and returns the unsubscribe function) plus a synchronous `get()`, which React's
// `useSyncExternalStore` and plain code need.

import type { Readable } from './types.js'

/** A store and the function that sets it; only the bindings set it. */
export interface Writable<T> {
  readonly readable: Readable<T>
  set(value: T): void
}

export function writable<T>(initial: T, report: (error: unknown) => void): Writable<T> {
  let value = initial
  // One entry per subscribe call, so the same function subscribed twice is two subscriptions (Svelte contract).
  const subscribers = new Set<{ run: (v: T) => void }>()
  return {
    readable: {
      subscribe(run) {
        const sub = { run }
        subscribers.add(sub)
        run(value)
        return () => {
          subscribers.delete(sub)
        }
      },
      get: () => value,
    },
    set(next) {
      value = next
      for (const sub of [...subscribers]) {
        // One that an earlier subscriber removed does not run; one that throws does not stop the others.
        if (!subscribers.has(sub)) continue
        try {
          sub.run(next)
        } catch (e) {
          report(e)
        }
      }
    },
  }
}
