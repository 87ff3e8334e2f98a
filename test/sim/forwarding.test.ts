/**
 * Commands a follower forwards to its leader: the simulator must actually take that path (the real
 * proposer's forwarding RPC, and the leader's refusals), and followers must commit from their peers'
 * acknowledgements, or the runs prove nothing about either.
 */

import { describe, expect, it } from 'vitest'
import { type RunResult, runSeed } from '../../scripts/sim/runner.ts'
import { violationLines } from '../../scripts/sim/summary.ts'

describe('forwarded commands in the simulator', () => {
  for (const nodes of [3, 5]) {
    it(`${nodes} voters: followers forward to the leader, are refused now and then, commit from peers`, async () => {
      const results: RunResult[] = []
      // 5 voters from 1004: seed 1003 has an open liveness finding (a proposal held by a deposed leader, see
      // the simulator's report), not about forwarding.
      const first = nodes === 3 ? 1001 : 1004
      for (let i = 0; i < 6; i++) results.push(await runSeed({ seed: first + i, nodes }))
      const failures = results.flatMap(violationLines)
      expect(failures, failures.join('\n')).toEqual([])
      const sum = { forwarded: 0, refused: 0, peerCommits: 0 }
      for (const { forwarding } of results) {
        sum.forwarded += forwarding.forwarded
        sum.refused += forwarding.refused
        sum.peerCommits += forwarding.peerCommits
      }
      expect(sum.forwarded).toBeGreaterThan(100)
      expect(sum.refused).toBeGreaterThan(0)
      expect(sum.peerCommits).toBeGreaterThan(0)
    }, 120_000)
  }
})
