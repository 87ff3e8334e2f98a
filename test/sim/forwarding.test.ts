/**
 * Writes a follower forwards to its leader: the simulator must actually take that path (and its refusals),
 * and followers must commit from their peers' acknowledgements, or the runs prove nothing about either.
 */

import { describe, expect, it } from 'vitest'
import { type RunResult, runSeed } from '../../scripts/sim/runner.ts'
import { violationLines } from '../../scripts/sim/summary.ts'

function totals(results: RunResult[]): RunResult['forwarding'] {
  const sum = {
    forwarded: 0,
    refused: 0,
    appliedByFollower: 0,
    answeredByLeader: 0,
    failed: 0,
    peerCommits: 0,
  }
  for (const { forwarding } of results) {
    for (const key of Object.keys(sum) as (keyof typeof sum)[]) sum[key] += forwarding[key]
  }
  return sum
}

describe('forwarded writes in the simulator', () => {
  for (const nodes of [3, 5]) {
    it(`${nodes} voters: followers forward, answer from their own apply and commit from peers`, () => {
      const results = Array.from({ length: 20 }, (_, i) => runSeed({ seed: 1001 + i, nodes }))
      const failures = results.flatMap(violationLines)
      expect(failures, failures.join('\n')).toEqual([])
      const sum = totals(results)
      // Roughly half of the writes a follower gets go to the leader; most are answered on the follower's apply.
      expect(sum.forwarded).toBeGreaterThan(100)
      expect(sum.appliedByFollower).toBeGreaterThan(sum.forwarded / 2)
      // The other outcomes happen too: the leader's answer first, and a leader that no longer leads.
      expect(sum.answeredByLeader).toBeGreaterThan(0)
      expect(sum.refused).toBeGreaterThan(0)
      expect(sum.peerCommits).toBeGreaterThan(0)
    })
  }

  it('a follower counts its own copy toward a commit only once it is durable (seed 12539)', () => {
    // It committed an index from the new leader's acknowledgement while its disk still held a stale entry
    // of an earlier term there: a commit index ahead of what a majority held on disk.
    const result = runSeed({ seed: 12539, nodes: 3 })
    expect(violationLines(result)).toEqual([])
    expect(result.forwarding.peerCommits).toBeGreaterThan(0)
  })
})
