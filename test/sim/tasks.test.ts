/**
 * The simulator's task workload (`scripts/sim/task-clients.ts`) on a few seeds: the real task API on the
 * simulated agents under faults, checked by `task-checker.ts`; and the planted bug `cancel-keeps-attempt`
 * caught (seed 2 at the time of writing). Long sweeps: `npm run sim -- --tasks --seeds 200`.
 */

import { describe, expect, it } from 'vitest'
import { runSeed } from '../../scripts/sim/runner.ts'

describe('the simulator drives tasks under faults', () => {
  // Seeds with the workload drawn (1, 3, 4 draw none or start nothing).
  it('runs submits, diamonds, repeats, cancels and workers on seeds 2, 5, 6, 7, 8, 12 without a violation', async () => {
    let starts = 0
    for (const seed of [2, 5, 6, 7, 8, 12]) {
      const result = await runSeed({ seed, tasks: true })
      expect(result.violation, JSON.stringify(result.violation)).toBeUndefined()
      starts += result.tasks.starts
    }
    expect(starts).toBeGreaterThan(0)
  }, 60_000)

  // Attempts with a timeout. Without the local end of an attempt (its agent aborts it at the send of its claim
  // + timeout − margin, and never starts it past that), seeds 66, 119 and 124 ran an attempt on a follower
  // far behind beside the retry the leader had started after timing it out (task-live). Without the leader's
  // monotonic attempt clock (`AttemptTimeoutClock`), a leader whose wall clock ran ahead of the one that
  // started an attempt timed it out early, attempt after attempt, and seeds 5, 17 and 37 ended with tasks
  // still running (task-liveness).
  it('keeps one live attempt per task and ends every task on seeds 5, 17, 37, 66, 119, 124', async () => {
    for (const seed of [5, 17, 37, 66, 119, 124]) {
      const result = await runSeed({ seed, tasks: true })
      expect(result.violation, `seed ${seed}: ${JSON.stringify(result.violation)}`).toBeUndefined()
      expect(result.tasks.starts).toBeGreaterThan(0)
    }
  }, 60_000)

  // Checker and workload, not the cluster: a backlog of repeat occurrences on the one or two workers left was
  // still being worked off at the run's hard end (seed 29: task-liveness; the run now goes on while tasks
  // move), and a repeat window opened on a state time stamped long before by an earlier clock, so slots the
  // leader skipped by design as missed before its clock showed counted as due (seed 417: task-repeat).
  it('ends a backlog that still moves, and opens the repeat window on the leader clock, on seeds 29 and 417', async () => {
    for (const seed of [29, 417]) {
      const result = await runSeed({ seed, tasks: true })
      expect(result.violation, `seed ${seed}: ${JSON.stringify(result.violation)}`).toBeUndefined()
      expect(result.tasks.starts).toBeGreaterThan(0)
    }
  }, 60_000)

  // 5 agents, seed 362: the only worker's agent installed snapshots while the leader took its slots off (a
  // stalled assignment); the entry came inside a snapshot, so its slot offer never saw it and never offered its
  // slots again, and a task waited pending with no agent to run it (task-liveness). `SlotOffer` follows restores.
  it('offers the slots again after a snapshot took them off, on 5 agents, seed 362', async () => {
    const result = await runSeed({ seed: 362, nodes: 5, tasks: true })
    expect(result.violation, JSON.stringify(result.violation)).toBeUndefined()
    expect(result.tasks.starts).toBeGreaterThan(0)
  }, 60_000)

  // Seed 17 of 1..30 once every workload was merged (seed 6 before); from 25 since the readers and the
  // shrink-to-one scenario joined (read-clients.ts, shrink-to-one.ts: they shift the seeds that draw them) and
  // since attempts end on their agents' clocks and stalled assignments go back; seed 41 of 20..49 since the Raft
  // read point and the flow-control line changed (raft-liveness: they shift timings); seeds 4, 16, 20, 27, 29
  // of 1..30 since the simulated cluster runs at the current command-set version (its first leader raises it).
  it('catches --bug cancel-keeps-attempt (task-cancel) within 5 seeds from 16', async () => {
    let caught: { property: string } | undefined
    for (let seed = 16; seed < 21 && caught?.property !== 'task-cancel'; seed++) {
      caught = (await runSeed({ seed, bug: 'cancel-keeps-attempt', tasks: true })).violation
    }
    expect(caught?.property).toBe('task-cancel')
  }, 60_000)
})
