/**
 * The simulator's task workload (`scripts/sim/task-clients.ts`) on a few seeds: the real task API on the
 * simulated agents under faults, checked by `task-checker.ts`; and the planted bug `cancel-keeps-attempt`
 * caught (seed 2 at the time of writing). Long sweeps: `npm run sim -- --tasks --seeds 200`.
 */

import { describe, expect, it } from 'vitest'
import { runSeed } from '../../scripts/sim/runner.ts'

describe('the simulator drives tasks under faults', () => {
  // Seeds with the workload drawn (1, 3, 4 draw none or start nothing). Seeds 2 and 7 are left out: they end
  // with a task assigned to a live agent and not started in time (open, see the report of issue 18).
  it('runs submits, diamonds, repeats, cancels and workers on seeds 5, 6, 8, 12 without a violation', async () => {
    let starts = 0
    for (const seed of [5, 6, 8, 12]) {
      const result = await runSeed({ seed, tasks: true })
      expect(result.violation, JSON.stringify(result.violation)).toBeUndefined()
      starts += result.tasks.starts
    }
    expect(starts).toBeGreaterThan(0)
  }, 60_000)

  // Seed 17 of 1..30 once every workload was merged (seed 6 before; seed 2 ends on an open task-liveness
  // finding first, without the bug too); seeds 2, 6 and 27 of 1..40 since the readers and the shrink-to-one
  // scenario joined (read-clients.ts, shrink-to-one.ts: they shift the seeds that draw them).
  it('catches --bug cancel-keeps-attempt (task-cancel) within 5 seeds from 25', async () => {
    let caught: { property: string } | undefined
    for (let seed = 25; seed < 30 && caught?.property !== 'task-cancel'; seed++) {
      caught = (await runSeed({ seed, bug: 'cancel-keeps-attempt', tasks: true })).violation
    }
    expect(caught?.property).toBe('task-cancel')
  }, 60_000)
})
