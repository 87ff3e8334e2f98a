/**
 * Clocks that disagree from the start: on some seeds every agent's wall clock is set off from real time by
 * up to `MAX_WALL_OFFSET_MS` either way (a host whose NTP never synced, a VM restored from an old image) and
 * its clocks run at a rate within the drift bound. Entries carry the proposing leader's wall clock, so a
 * leader far ahead stamps entries seconds past the leases an earlier leader granted: only the leader's
 * guarded expiry on its monotonic clock may end a lease, never an entry's timestamp
 * (`lease-inline-expiry`). The fault schedule adds steps and rate changes on top (`faults.ts`).
 */

import type { SimAgent } from './agent.ts'
import type { ClockSkew } from './agent-clock.ts'
import { MAX_DRIFT } from './faults.ts'
import type { Prng } from './prng.ts'
import type { Scheduler } from './scheduler.ts'

/** Largest initial wall-clock offset, above the longest lock ttl the lock users ask for (1.5 s). */
export const MAX_WALL_OFFSET_MS = 4000

/** Each of `count` agents' skew at start (by index), or none (every clock exact) on the other seeds. */
export function drawSkews(prng: Prng, count: number): ClockSkew[] | undefined {
  if (!prng.chance(0.5)) return undefined
  return Array.from({ length: count }, () => ({
    wallOffsetMs: prng.between(-MAX_WALL_OFFSET_MS, MAX_WALL_OFFSET_MS),
    rate: 1 + (prng.next() * 2 - 1) * MAX_DRIFT,
  }))
}

/**
 * On the seeds with skewed clocks, one to three wall-clock steps forward on whichever agent leads at that
 * moment (an NTP correction on the leader), within the fault window: the leader's entries are then stamped
 * past the leases granted before, while their holders' local leases still run.
 */
export function scheduleLeaderSteps(setup: {
  scheduler: Scheduler
  prng: Prng
  skewed: boolean
  leader: () => SimAgent | undefined
  startMs: number
  endMs: number
  trace: (line: string) => void
}): void {
  const { scheduler, prng } = setup
  if (!setup.skewed) return
  const steps = prng.between(1, 3)
  for (let i = 0; i < steps; i++) {
    const at = prng.between(setup.startMs, setup.endMs)
    const step = prng.between(500, 8000)
    scheduler.at(at, () => {
      const leader = setup.leader()
      if (leader === undefined) return
      leader.clock.stepWall(step)
      setup.trace(`leader ${leader.id} wall clock +${step} ms`)
    })
  }
}
