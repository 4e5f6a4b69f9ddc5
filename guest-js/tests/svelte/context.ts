// The context of the provider pattern (README, "Svelte"): `<Provider>` opens one connection and its children
// read it with `getRealtime()`.

import { createContext } from 'svelte'

import type { Connection } from '../../types.js'

// A getter, because the context must be set while the provider initialises and the connection comes later:
// the provider renders its children only once `connect()` has resolved, so the getter always has one.
const [getter, setter] = createContext<() => Connection>()

export const setRealtime = setter

/** The connection of the nearest `<Provider>`; throws outside one. */
export function getRealtime(): Connection {
  return getter()()
}
