// DOM event classes for the drop-in classes: the environment's own where it has them (WebKit has all three),
// small stand-ins where it does not (Node 20 has Event, EventTarget and MessageEvent, but no CloseEvent).

interface MessageEventInitLike<T> extends EventInit {
  data?: T
  origin?: string
  lastEventId?: string
}

class MessageEventShim<T = unknown> extends Event {
  readonly data: T
  readonly origin: string
  readonly lastEventId: string
  readonly source = null
  readonly ports: readonly MessagePort[] = []
  constructor(type: string, init: MessageEventInitLike<T> = {}) {
    super(type, init)
    this.data = init.data as T
    this.origin = init.origin ?? ''
    this.lastEventId = init.lastEventId ?? ''
  }
}

class CloseEventShim extends Event {
  readonly code: number
  readonly reason: string
  readonly wasClean: boolean
  constructor(type: string, init: CloseEventInit = {}) {
    super(type, init)
    this.code = init.code ?? 0
    this.reason = init.reason ?? ''
    this.wasClean = init.wasClean ?? false
  }
}

const g = globalThis as { MessageEvent?: typeof MessageEvent; CloseEvent?: typeof CloseEvent }

/** The environment's `MessageEvent`, or a stand-in with `data`, `origin` and `lastEventId`. */
export const MessageEventImpl: typeof MessageEvent = g.MessageEvent ?? (MessageEventShim as unknown as typeof MessageEvent)

/** The environment's `CloseEvent`, or a stand-in with `code`, `reason` and `wasClean`. */
export const CloseEventImpl: typeof CloseEvent = g.CloseEvent ?? (CloseEventShim as unknown as typeof CloseEvent)

/**
 * The `error` event of the drop-in classes. The browser's is a plain `Event`; this one also says what happened.
 */
export class RealtimeErrorEvent extends Event {
  /** The Rust side's error or state reason, e.g. `"HTTP 401 Unauthorized"`; `""` when none was given. */
  readonly message: string
  constructor(message = '') {
    super('error')
    this.message = message
  }
}

/** A `DOMException` with a name, as the browser's WebSocket and EventSource constructors throw. */
export function domError(message: string, name: string): Error {
  return typeof DOMException === 'function' ? new DOMException(message, name) : Object.assign(new Error(message), { name })
}

/** Registers `on<type>` attribute handlers as the first listener of each type, as browsers do for sockets. */
export function handlerAttributes<T extends EventTarget>(
  target: T,
  types: readonly string[],
  get: (type: string) => ((this: T, ev: Event) => unknown) | null,
): void {
  for (const type of types) {
    EventTarget.prototype.addEventListener.call(target, type, (ev: Event) => {
      const handler = get(type)
      if (typeof handler === 'function') handler.call(target, ev)
    })
  }
}
