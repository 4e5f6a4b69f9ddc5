/**
 * Web components on the bindings: `<realtime-connection>` opens one connection for the elements inside it.
 *
 * ```html
 * <realtime-connection url="wss://chat.example.com/room/1">
 *   <chat-panel></chat-panel>
 * </realtime-connection>
 * ```
 *
 * - Call {@link defineRealtimeElements} once: importing this module defines nothing (the package has
 *   `sideEffects: false`, so a bundler may drop an import that is kept for its side effect).
 * - The element connects when it enters the document and closes its connection when it leaves it. Leaving is
 *   confirmed in a later task, so moving the element (remove, then insert elsewhere in the same task or the
 *   next microtasks) keeps its connection.
 * - Its `state` attribute reflects the connection's state, and every change is a bubbling, composed
 *   `realtime-state` event ({@link RealtimeStateEvent}) that a parent can show as a banner.
 * - Children get the connection with {@link consumeConnection} (a `realtime-connection-request` event that the
 *   nearest provider answers, across shadow roots), or read `closest('realtime-connection').connection`.
 *
 * @module
 */

import { connect } from './connect.js'
import type { Connection, ConnectOptions, StateValue, Transport, Unsubscribe } from './types.js'

/** The provider's tag name. */
export const CONNECTION_ELEMENT = 'realtime-connection'

/** The event a provider dispatches on each state change of its connection. */
export const STATE_EVENT = 'realtime-state'

/** The event a consumer dispatches to find its provider (see {@link ConnectionRequest}). */
export const REQUEST_EVENT = 'realtime-connection-request'

/**
 * The `detail` of a `realtime-state` event: the connection's latest state frame (as `Connection.state` holds
 * it), `failed` with the error's message when `connect()` itself was refused, `disconnected` once the element
 * has left the document.
 */
export type RealtimeStateDetail = StateValue

/** The `realtime-state` event. `target` is the `<realtime-connection>` whose connection changed state. */
export type RealtimeStateEvent = CustomEvent<RealtimeStateDetail>

/**
 * The `detail` of a `realtime-connection-request` event: the consumer's side of the exchange. The nearest
 * provider stops the event, sets `unsubscribe`, and calls `provide` with its open connection (at once if it
 * has one), with `null` when that connection goes away (the provider left the document, or its options
 * changed), and with each connection it opens later, until `unsubscribe` is called.
 */
export interface ConnectionRequest {
  provide(connection: Connection | null): void
  /** Set by the provider that answered. */
  unsubscribe?: Unsubscribe
}

/** What a consumer does with a connection; what it returns is called when that connection goes away. */
export type ConnectionCallback = (connection: Connection) => void | (() => void)

/** The attributes that become options; the `options` property gives the others. */
const ATTRIBUTES = ['url', 'transport', 'protocols', 'share'] as const

function report(error: unknown): void {
  // A throwing consumer must not stop the others; surface it like an uncaught error.
  const g = globalThis as { reportError?: (e: unknown) => void }
  if (typeof g.reportError === 'function') g.reportError(error)
  else console.error(error)
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}

// A module that is only imported (during server-side rendering, in Node) must not touch `HTMLElement`.
const ElementBase = (typeof HTMLElement === 'function' ? HTMLElement : class {}) as typeof HTMLElement

/** One `connect()` of the element, from its call to its close. */
interface Session {
  /** The options it was opened with, as JSON: the same options do not reopen. */
  readonly key: string
  connection: Connection | null
  unsubscribeState: Unsubscribe | null
  ended: boolean
}

/**
 * `<realtime-connection url="..." transport? protocols? share?>`: one connection for the elements inside it.
 *
 * Attributes (each change reopens the connection, once per task however many change):
 * - `url`: required; without it the element is `failed` and says so.
 * - `transport`: `websocket`, `sse` or `poll` (default: from the URL's scheme).
 * - `protocols`: WebSocket subprotocols, separated by spaces or commas.
 * - `share`: `false` for a private upstream, `true` (or empty), or an explicit share key (default: `true`).
 *
 * Every other option (headers, heartbeat, reconnect, fallback, ...) goes in the `options` property; an
 * attribute wins over the same field there.
 */
export class RealtimeConnectionElement extends ElementBase {
  static readonly observedAttributes: readonly string[] = ATTRIBUTES

  private extra: Partial<ConnectOptions> = {}
  private session: Session | null = null
  private readonly requests = new Set<ConnectionRequest>()
  private syncQueued = false
  private releaseTimer: ReturnType<typeof setTimeout> | undefined
  private current: RealtimeStateDetail | null = null

  /** Listens for requests from the first moment, so that children created with the element find it. */
  constructor() {
    super()
    this.addEventListener(REQUEST_EVENT, (event) => {
      const request = (event as CustomEvent<ConnectionRequest | undefined>).detail
      if (!request || typeof request.provide !== 'function') return
      // The nearest provider answers; an outer one never sees the request.
      event.stopPropagation()
      this.handleRequest(request)
    })
  }

  /** The open connection, or `null` while connecting, after a refused `connect()` and once released. */
  get connection(): Connection | null {
    return this.session?.connection ?? null
  }

  /** The latest state, as the `state` attribute and the last `realtime-state` event gave it. */
  get stateValue(): RealtimeStateDetail | null {
    return this.current
  }

  /** Options besides the attributes' (headers, heartbeat, reconnect, ...). Setting it reopens the connection. */
  get options(): Partial<ConnectOptions> {
    return this.extra
  }

  set options(value: Partial<ConnectOptions>) {
    this.extra = { ...value }
    this.queueSync()
  }

  /** The options `connect()` is called with: the `options` property under the attributes. */
  connectOptions(): ConnectOptions {
    const options: Partial<ConnectOptions> = { ...this.extra }
    const url = this.getAttribute('url')
    if (url !== null) options.url = url
    const transport = this.getAttribute('transport')
    if (transport !== null) options.transport = transport as Transport
    const protocols = this.getAttribute('protocols')
    if (protocols !== null) options.protocols = protocols.split(/[\s,]+/).filter((p) => p !== '')
    const share = this.getAttribute('share')
    if (share !== null) options.share = share === '' || share === 'true' ? true : share === 'false' ? false : share
    return options as ConnectOptions
  }

  /** A manual retry: `reconnect()` on the connection, or a new `connect()` after a refused one. */
  async reconnect(): Promise<void> {
    const connection = this.connection
    if (connection) return connection.reconnect()
    if (!this.isConnected) return
    this.close()
    this.sync()
  }

  connectedCallback(): void {
    // Back in the document before the release ran: this was a move, and the connection stays.
    clearTimeout(this.releaseTimer)
    this.releaseTimer = undefined
    this.queueSync()
  }

  disconnectedCallback(): void {
    clearTimeout(this.releaseTimer)
    // A task later, not a microtask: a framework may remove an element and insert it again a few awaits later.
    this.releaseTimer = setTimeout(() => {
      this.releaseTimer = undefined
      if (!this.isConnected) this.release()
    }, 0)
  }

  /** A browser that moves elements with `moveBefore()` calls this instead of the two callbacks above. */
  connectedMoveCallback(): void {}

  attributeChangedCallback(_name: string, old: string | null, value: string | null): void {
    if (old !== value) this.queueSync()
  }

  /** Answers a consumer's request (see {@link ConnectionRequest}); also how {@link consumeConnection} reaches it. */
  handleRequest(request: ConnectionRequest): void {
    this.requests.add(request)
    request.unsubscribe = () => {
      if (this.requests.delete(request)) request.provide(null)
    }
    const connection = this.connection
    if (connection) request.provide(connection)
  }

  private queueSync(): void {
    if (this.syncQueued || !this.isConnected) return
    this.syncQueued = true
    // One reopen for all the attributes and options set in the same task.
    queueMicrotask(() => {
      this.syncQueued = false
      this.sync()
    })
  }

  /** Opens the connection if the element is in the document without one, or reopens it with new options. */
  private sync(): void {
    if (!this.isConnected) return
    const options = this.connectOptions()
    const key = JSON.stringify(options)
    if (this.session && this.session.key === key) return
    this.close()
    const session: Session = { key, connection: null, unsubscribeState: null, ended: false }
    this.session = session
    if (typeof options.url !== 'string' || options.url === '') {
      this.setState({ state: 'failed', reason: `<${CONNECTION_ELEMENT}> needs a url attribute: the URL to connect to` })
      return
    }
    this.setState({ state: 'connecting' })
    connect(options).then(
      (connection) => {
        if (session.ended) {
          // Released (or reopened) while connecting.
          connection.close().catch(report)
          return
        }
        session.connection = connection
        session.unsubscribeState = connection.state.subscribe((value) => {
          if (!session.ended) this.setState(value)
        })
        for (const request of [...this.requests]) {
          if (session.ended || session.connection !== connection) break
          if (this.requests.has(request)) this.provide(request, connection)
        }
      },
      (error: unknown) => {
        if (!session.ended) this.setState({ state: 'failed', reason: messageOf(error) })
      },
    )
  }

  /** Ends the current session: consumers are told, then its connection closes (once). */
  private close(): void {
    const session = this.session
    if (!session) return
    this.session = null
    session.ended = true
    session.unsubscribeState?.()
    const connection = session.connection
    session.connection = null
    if (!connection) return
    for (const request of [...this.requests]) this.provide(request, null)
    connection.close().catch(report)
  }

  /** The element left the document for good. */
  private release(): void {
    const had = this.session !== null
    this.close()
    if (had) this.setState({ state: 'disconnected' })
  }

  private provide(request: ConnectionRequest, connection: Connection | null): void {
    try {
      request.provide(connection)
    } catch (e) {
      report(e)
    }
  }

  private setState(value: RealtimeStateDetail): void {
    // The store repeats its current value to a new subscriber: one event per change, not per report.
    if (this.current && JSON.stringify(this.current) === JSON.stringify(value)) return
    this.current = value
    if (this.getAttribute('state') !== value.state) this.setAttribute('state', value.state)
    this.dispatchEvent(new CustomEvent<RealtimeStateDetail>(STATE_EVENT, { detail: value, bubbles: true, composed: true }))
  }
}

/**
 * Gives `element` the connection of its nearest `<realtime-connection>` (found through the DOM, across shadow
 * roots): `use` runs with each connection the provider opens, and what it returns (e.g. a function that
 * removes the `on()` handlers it added) runs when that connection goes away or on unsubscribe. Call it from
 * `connectedCallback` and the returned function from `disconnectedCallback`.
 *
 * Frames that arrived before the first consumer's `on()` are handed to the handlers added synchronously in
 * `use`; a consumer that subscribes later sees frames from then on.
 *
 * Throws when no provider answers: `element` is not inside a `<realtime-connection>`, or it is and
 * {@link defineRealtimeElements} has not been called (an element that is not defined yet is waited for).
 */
export function consumeConnection(element: Element, use: ConnectionCallback): Unsubscribe {
  let cleanup: (() => void) | undefined
  let active = true
  const end = () => {
    const run = cleanup
    cleanup = undefined
    if (run) {
      try {
        run()
      } catch (e) {
        report(e)
      }
    }
  }
  const request: ConnectionRequest = {
    provide(connection) {
      if (!active) return
      end()
      if (connection) {
        const result = use(connection)
        if (typeof result === 'function') cleanup = result
      }
    },
  }
  const ask = (): boolean => {
    element.dispatchEvent(new CustomEvent(REQUEST_EVENT, { detail: request, bubbles: true, composed: true }))
    return request.unsubscribe !== undefined
  }
  if (!ask()) {
    const registry = typeof customElements === 'object' ? customElements : undefined
    const pending = element.closest(CONNECTION_ELEMENT)
    if (!pending || !registry || registry.get(CONNECTION_ELEMENT)) {
      throw new Error(
        `consumeConnection: no <${CONNECTION_ELEMENT}> answered for <${element.localName}>: put it inside one ` +
          `(in the document, before calling this from connectedCallback), and call defineRealtimeElements() first`,
      )
    }
    // The provider is in the document but not defined yet: ask again once it is.
    registry.whenDefined(CONNECTION_ELEMENT).then(() => {
      if (active && element.isConnected && !ask()) {
        report(new Error(`consumeConnection: the <${CONNECTION_ELEMENT}> around <${element.localName}> did not answer`))
      }
    }, report)
  }
  return () => {
    if (!active) return
    active = false
    request.unsubscribe?.()
    end()
  }
}

/**
 * Defines `<realtime-connection>` in `registry` (default: the page's `customElements`). Calling it again is
 * harmless; a name already defined by another class (another copy of these bindings) is left as it is, and
 * still answers {@link consumeConnection}, which speaks only through the request event.
 */
export function defineRealtimeElements(registry: CustomElementRegistry = customElements): void {
  if (!registry.get(CONNECTION_ELEMENT)) registry.define(CONNECTION_ELEMENT, RealtimeConnectionElement)
}

declare global {
  interface HTMLElementTagNameMap {
    'realtime-connection': RealtimeConnectionElement
  }
  // Where elements, documents and windows look up their event types, so that a parent's listener is typed too.
  interface GlobalEventHandlersEventMap {
    'realtime-state': RealtimeStateEvent
  }
}
