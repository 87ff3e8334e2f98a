/**
 * A checker that cannot fail proves nothing: each test-only Raft bug must be caught by the simulator within
 * the stated number of seeds (at the time of writing, seeds 1..100 catch them 43, 10, 14 and 17 times).
 */

import { describe, expect, it } from 'vitest'
import { type BugName, runSeed } from '../../scripts/sim/runner.ts'

/** Properties a bug may legitimately break; never an exception or a liveness failure. */
const SAFETY = [
  'election-safety',
  'log-matching',
  'leader-completeness',
  'state-machine-safety',
  'linearizability',
]

const cases: { bug: BugName; within: number; breaks: string[] }[] = [
  {
    bug: 'vote-ignores-log',
    within: 20,
    breaks: ['leader-completeness', 'state-machine-safety', 'log-matching'],
  },
  { bug: 'commit-previous-term', within: 100, breaks: ['leader-completeness', 'state-machine-safety'] },
  { bug: 'stale-read', within: 100, breaks: ['linearizability'] },
  { bug: 'forget-vote', within: 100, breaks: ['election-safety', 'log-matching'] },
]

describe('the simulator catches each planted bug', () => {
  for (const { bug, within, breaks } of cases) {
    it(`--bug ${bug} within ${within} seeds`, () => {
      let caught: { seed: number; property: string; message: string } | undefined
      for (let seed = 1; seed <= within && !caught; seed++) {
        const result = runSeed({ seed, bug })
        if (result.violation) caught = { seed, ...result.violation }
      }
      expect(caught, `no violation in seeds 1..${within}`).toBeDefined()
      expect(SAFETY).toContain(caught!.property)
      expect(breaks).toContain(caught!.property)
    })
  }
})

describe('the read shortcut needs a 3-voter quorum', () => {
  // Rare by search (1 seed in 1,000 with 5 voters: an old leader cut off with one follower, check-quorum off,
  // a read on that follower after the majority wrote), so the seed that shows it is replayed here.
  it('--bug read-ack-any-quorum: seed 738 with 5 voters serves a stale read; the same seed is clean without it', () => {
    const broken = runSeed({ seed: 738, nodes: 5, bug: 'read-ack-any-quorum' })
    expect(broken.violation?.property).toBe('linearizability')
    expect(runSeed({ seed: 738, nodes: 5 }).violation).toBeUndefined()
  })
})
