/** An error from the realtime plugin: a rejected command (with the Rust side's message) or a misuse. */
export class RealtimeError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'RealtimeError'
  }
}

/** Tauri rejects commands with the error serialised as a string; keep that string as the message. */
export function toRealtimeError(e: unknown): RealtimeError {
  if (e instanceof RealtimeError) return e
  if (typeof e === 'string') return new RealtimeError(e)
  if (e instanceof Error) return new RealtimeError(e.message, { cause: e })
  if (e && typeof e === 'object' && typeof (e as { message?: unknown }).message === 'string') {
    return new RealtimeError((e as { message: string }).message, { cause: e })
  }
  let text: string
  try {
    text = JSON.stringify(e) ?? String(e)
  } catch {
    text = String(e)
  }
  return new RealtimeError(text, { cause: e })
}
