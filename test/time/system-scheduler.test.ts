import { describe, expect, it } from 'vitest'
import { systemScheduler } from '../../src/time/system-scheduler.ts'

describe('the system scheduler', () => {
  it('never runs a call before now() says its delay passed', async () => {
    // Node's timers count on libuv's whole-millisecond loop clock and fire up to a millisecond early by
    // performance.now(): an attempt's local end, timed as claim send + timeout - margin, came 0.25 ms early.
    const early: number[] = []
    await Promise.all(
      Array.from({ length: 300 }, (_, i) => {
        const delay = 1 + (i % 7) + (i % 3) / 3
        const start = systemScheduler.now()
        return new Promise<void>(resolve => {
          systemScheduler.after(
            delay,
            () => {
              const waited = systemScheduler.now() - start
              if (waited < delay) early.push(delay - waited)
              resolve()
            },
            { keepAlive: true },
          )
        })
      }),
    )
    expect(early).toEqual([])
  })
})
