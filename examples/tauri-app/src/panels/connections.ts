// Four panels of the example, started here: components and connections, the POST + SSE chat, the raw
// contract and the drop-in classes. Each builds its own section in the page's grid; none opens a connection
// before a person (or a test) asks, so the page's first three panels keep the app's connections to themselves.

import { startComponents } from './components'
import { startDropIn } from './dropin'
import type { PanelUrls } from './connections-dom'
import { startRaw } from './raw'
import { startRoom } from './room'
import './connections.css'

export function startConnectionPanels(parent: HTMLElement, urls: PanelUrls): void {
  startComponents(parent, urls)
  startRoom(parent, urls)
  startRaw(parent, urls)
  startDropIn(parent, urls)
}
