// Outside Tauri: the engine's reconnect and polling policy (`crates/core/src/{backoff,policy}.rs`,
// `transport/poll.rs`: change them together), pure so that tests assert exact delays and transitions.

import { MAX_SERVER_DELAY_MS, type Policy } from './browser-options.js'

/**
 * Delay before attempt `attempt` (1-based): min(base x multiplier^(attempt-1), max(maxDelayMs, base)), then
 * shortened by `jitter x sample` where `sample` is in [0, 1). `base` is `initialDelayMs`, or the SSE `retry:`.
 */
export function backoffDelay(policy: Policy, baseMs: number, attempt: number, sample: number): number {
  const exp = Math.min(Math.max(attempt - 1, 0), 64)
  const raw = baseMs * policy.multiplier ** exp
  const capped = Math.min(raw, Math.max(policy.maxDelayMs, baseMs))
  const s = Math.min(Math.max(sample, 0), 1)
  return Math.max(Math.floor(capped * (1 - policy.jitter * s)), 0)
}

/** What an open stream achieved before it ended. */
export interface Progress {
  uptimeMs: number
  delivered: boolean
}

/** How an attempt, or an open stream, ended (`Ended` and `AttemptError` in the engine). */
export type Ended =
  | { kind: 'retry'; reason: string; retryAfterMs?: number }
  | { kind: 'fatal'; reason: string }
  | { kind: 'stop'; reason: string }
  /** The server cannot stream (an SSE answer of another content type): poll, with a poll URL, else fail. */
  | { kind: 'noStream'; reason: string }
  | { kind: 'dropped'; reason: string; progress: Progress }
  | { kind: 'finished'; progress: Progress }
  | { kind: 'serverClosed'; code: number; reason: string; progress: Progress }

/** The next step (`Step` in the engine). */
export type Step =
  | { kind: 'retry'; attempt: number; delayMs: number; reason: string }
  | { kind: 'fail'; reason: string }
  | { kind: 'disconnect'; reason: string }
  | { kind: 'fallback'; reason: string }

/**
 * The engine's `decide`: `attempt` is the number of the attempt that just ended (0 for the first), `sample` in
 * [0, 1) drives the jitter, `fallbackAfter` is `fallback.afterFailures` when a poll URL is set (else null). A
 * stream that delivered a message or stayed up `stableAfterMs` starts the count afresh.
 */
export function decide(
  policy: Policy | null,
  baseMs: number,
  attempt: number,
  ended: Ended,
  sample: number,
  fallbackAfter: number | null = null,
): Step {
  const afterOpen = (p: Progress): number =>
    p.delivered || (policy !== null && p.uptimeMs >= policy.stableAfterMs) ? 1 : attempt + 1
  let reason: string
  let next: number
  let retryAfterMs: number | undefined
  switch (ended.kind) {
    case 'fatal':
      return { kind: 'fail', reason: ended.reason }
    case 'stop':
      return { kind: 'disconnect', reason: ended.reason }
    case 'noStream':
      return { kind: fallbackAfter !== null ? 'fallback' : 'fail', reason: ended.reason }
    case 'retry':
      ;[reason, next, retryAfterMs] = [ended.reason, attempt + 1, ended.retryAfterMs]
      break
    case 'serverClosed':
      if (ended.code === 1000 && !policy?.onNormalClose) {
        return {
          kind: 'disconnect',
          reason: `server closed the connection (1000${ended.reason ? ` ${ended.reason}` : ''})`,
        }
      }
      reason = `server closed the connection (${ended.code}${ended.reason ? ` ${ended.reason}` : ''})`
      next = afterOpen(ended.progress)
      break
    case 'dropped':
      ;[reason, next] = [ended.reason, afterOpen(ended.progress)]
      break
    case 'finished':
      ;[reason, next] = ['stream ended', afterOpen(ended.progress)]
      break
  }
  if (!policy) {
    return ended.kind === 'finished'
      ? { kind: 'disconnect', reason: 'stream ended and reconnect is off' }
      : { kind: 'fail', reason: `${reason} (reconnect is off)` }
  }
  if (fallbackAfter !== null && next >= fallbackAfter) {
    return { kind: 'fallback', reason: `${next} failed attempts: ${reason}` }
  }
  if (policy.maxRetries !== null && next > policy.maxRetries) {
    return { kind: 'fail', reason: `gave up after ${next - 1} retries: ${reason}` }
  }
  let delayMs = backoffDelay(policy, baseMs, next, sample)
  if (retryAfterMs !== undefined) delayMs = Math.max(delayMs, Math.min(retryAfterMs, MAX_SERVER_DELAY_MS))
  return { kind: 'retry', attempt: next, delayMs, reason }
}

/** `Retry-After` in its delay-seconds form, capped; the HTTP-date form is rare for streams and is ignored. */
export function parseRetryAfter(value: string | null): number | undefined {
  const v = value?.trim()
  if (!v || !/^\d+$/.test(v)) return undefined
  return Math.min(Number(v) * 1000, MAX_SERVER_DELAY_MS)
}

/** Longest wait between failed polls, unless the server asks for more with `Retry-After`. */
const MAX_POLL_BACKOFF_MS = 30_000

/**
 * The wait after `failures` failed polls in a row (`poll_backoff`): the interval doubled per failure up to 30 s
 * (or the interval, if longer), or what the server asked for with `Retry-After` when that is longer still.
 */
export function pollBackoff(intervalMs: number, failures: number, retryAfterMs?: number): number {
  const backoff = Math.min(intervalMs * 2 ** Math.min(failures, 4), Math.max(MAX_POLL_BACKOFF_MS, intervalMs))
  return retryAfterMs === undefined ? backoff : Math.max(backoff, Math.min(retryAfterMs, MAX_SERVER_DELAY_MS))
}

/** Events after the one carrying `lastId`; all of them when none does (`after_last_id`). */
export function afterLastId<T extends { lastEventId: string }>(events: T[], lastId: string): T[] {
  if (!lastId) return events
  for (let i = events.length - 1; i >= 0; i--) if (events[i]!.lastEventId === lastId) return events.slice(i + 1)
  return events
}
