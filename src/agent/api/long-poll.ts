/**
 * One long poll of a watch, shared by `kv.events` and `task.events` on the client protocol. A watch delivers
 * its changes synchronously as the replica applies them, so what it has queued when the poll ends is
 * everything applied up to the revision read at that same instant: the next poll may start after that
 * revision even when no change matched the filter.
 */

import type { Scheduler } from '../../time/scheduler.ts'

/** An event as JSON: its timestamp an ISO string. */
export type WireEvent<E extends { timestamp: Date }> = Omit<E, 'timestamp'> & { timestamp: string }

export interface LongPollInit<E extends { timestamp: Date; revision: number }> {
  /** Opens the watch from `fromRevision`; it ends when `signal` aborts. */
  open(fromRevision: number, signal: AbortSignal): AsyncIterable<E>
  fromRevision: number
  /** The last revision the serving replica applied. */
  currentRevision(): number
  waitMs: number
  maxEvents: number
  /** An answer stops taking events past this many bytes of JSON. */
  maxBytes: number
  scheduler: Scheduler
  /** Aborts when the client goes away: nobody reads the answer. */
  closed: AbortSignal | undefined
}

/** The events of one poll and the revision the next poll starts from. */
export async function longPoll<E extends { timestamp: Date; revision: number }>(
  init: LongPollInit<E>,
): Promise<{ events: WireEvent<E>[]; nextRevision: number }> {
  const { fromRevision, closed } = init
  const controller = new AbortController()
  let endRevision: number | undefined
  const stop = (): void => {
    if (endRevision !== undefined) return
    endRevision = init.currentRevision()
    controller.abort()
  }
  const cancelTimer = init.scheduler.after(init.waitMs, stop, { keepAlive: true })
  closed?.addEventListener('abort', stop, { once: true })
  const iterator = init.open(fromRevision, controller.signal)[Symbol.asyncIterator]()
  const events: WireEvent<E>[] = []
  let bytes = 0
  let full = false
  try {
    for (;;) {
      const next = await iterator.next()
      if (next.done === true) break
      const event = { ...next.value, timestamp: next.value.timestamp.toISOString() }
      events.push(event)
      bytes += JSON.stringify(event).length
      if (events.length >= init.maxEvents || bytes >= init.maxBytes) {
        full = true
        break
      }
      // One event is enough to answer: take what is already queued, wait for no more.
      stop()
    }
  } finally {
    cancelTimer()
    closed?.removeEventListener('abort', stop)
    stop()
    await iterator.return?.()
  }
  const last = events.length > 0 ? events[events.length - 1].revision + 1 : fromRevision
  // A watch that fell behind (a snapshot replaced the state mid-poll) did not queue all it had to: the next
  // poll picks up right after what this answer carries.
  const behind = (iterator as { behind?: boolean }).behind === true
  if (full || behind || endRevision === undefined) return { events, nextRevision: last }
  return { events, nextRevision: Math.max(last, fromRevision, endRevision + 1) }
}
