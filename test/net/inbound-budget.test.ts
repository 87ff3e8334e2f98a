/**
 * The idle deadline of `InboundBudget` on a virtual clock: a stream is closed `idleTimeoutMs` after it last
 * went idle, never earlier, never while busy, and frames going by cost no timer each.
 */

import type { Stream } from '@libp2p/interface'
import { describe, expect, it } from 'vitest'
import { InboundBudget } from '../../src/net/inbound-budget.ts'
import { VirtualScheduler } from '../../src/time/index.ts'

const IDLE_MS = 1000
const FRAME_MS = 500

function watched() {
  const scheduler = new VirtualScheduler()
  let timers = 0
  const counting = Object.assign(Object.create(scheduler) as VirtualScheduler, {
    after: (delayMs: number, fn: () => void) => {
      timers++
      return scheduler.after(delayMs, fn)
    },
  })
  const budget = new InboundBudget({
    frameTimeoutMs: FRAME_MS,
    idleTimeoutMs: IDLE_MS,
    maxBufferedPerPeer: 1024,
    scheduler: counting,
  })
  const closedAt: number[] = []
  const aborted: Error[] = []
  const stream = { abort: (err: Error) => aborted.push(err) } as unknown as Stream
  const stream_ = budget.watch(
    'peer',
    stream,
    () => {},
    () => closedAt.push(scheduler.now()),
  )
  return { scheduler, stream: stream_, closedAt, aborted, timers: () => timers }
}

describe('InboundBudget idle deadline', () => {
  it('closes a stream idleTimeoutMs after it last went idle, however many frames came before', () => {
    const { scheduler, stream, closedAt } = watched()
    for (let at = 100; at <= 2_500; at += 100) {
      scheduler.runUntil(at)
      stream.busy()
      stream.idle()
    }
    scheduler.runUntil(2_500 + IDLE_MS - 1)
    expect(closedAt).toEqual([])
    scheduler.runUntil(2_500 + IDLE_MS)
    expect(closedAt).toEqual([2_500 + IDLE_MS])
  })

  it('arms no timer per frame', () => {
    const { scheduler, stream, timers } = watched()
    for (let at = 1; at <= 900; at++) {
      scheduler.runUntil(at)
      stream.busy()
      stream.idle()
    }
    // The one armed when the stream opened.
    expect(timers()).toBe(1)
  })

  it('never closes a busy stream, and counts the deadline from when it goes idle again', () => {
    const { scheduler, stream, closedAt, aborted } = watched()
    scheduler.runUntil(200)
    stream.busy() // a handler runs for long
    scheduler.runUntil(5_000)
    expect(closedAt).toEqual([])
    stream.idle()
    scheduler.runUntil(5_000 + IDLE_MS - 1)
    expect(closedAt).toEqual([])
    scheduler.runUntil(5_000 + IDLE_MS)
    expect(closedAt).toEqual([5_000 + IDLE_MS])
    // The sender never closes its end: reset one frame timeout later.
    scheduler.runUntil(5_000 + IDLE_MS + FRAME_MS)
    expect(aborted).toHaveLength(1)
  })

  it('stops the deadline when the stream closes', () => {
    const { scheduler, stream, closedAt } = watched()
    stream.close()
    scheduler.runUntil(10 * IDLE_MS)
    expect(closedAt).toEqual([])
  })
})
