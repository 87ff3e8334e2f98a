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
  // a read on that follower after the majority wrote), so the seed that shows it is replayed here. Without
  // forwarded writes: the seed was found before followers forwarded any, and the bug has nothing to do with it.
  it('--bug read-ack-any-quorum: seed 738 with 5 voters serves a stale read; the same seed is clean without it', () => {
    const broken = runSeed({ seed: 738, nodes: 5, bug: 'read-ack-any-quorum', forwardRate: 0 })
    expect(broken.violation?.property).toBe('linearizability')
    expect(runSeed({ seed: 738, nodes: 5, forwardRate: 0 }).violation).toBeUndefined()
  })
})

describe('commits learned from peers count only the log matched with the leader', () => {
  // n3, cut off through term 2, keeps entries 4-5 of term 1 that n1 overwrote and committed in term 2. When
  // n2 leads term 5, n3 forwards a write at once; n2's acknowledgement of it (index 10) reaches n3 before
  // n2's appends repair its log, and with the bug n3 counts its whole log (5) and commits its stale 4/1.
  it('--bug peer-commit-any-term: seed 15 applies a stale entry; the same seed is clean without it', () => {
    const broken = runSeed({ seed: 15, bug: 'peer-commit-any-term' })
    expect(broken.violation?.property).toBe('state-machine-safety')
    expect(runSeed({ seed: 15 }).violation).toBeUndefined()
  })

  it('--bug peer-commit-any-term: seed 149 with 5 voters; the same seed is clean without it', () => {
    const broken = runSeed({ seed: 149, nodes: 5, bug: 'peer-commit-any-term' })
    expect(broken.violation?.property).toBe('state-machine-safety')
    expect(runSeed({ seed: 149, nodes: 5 }).violation).toBeUndefined()
  })
})
