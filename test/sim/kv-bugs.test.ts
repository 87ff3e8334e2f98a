/**
 * The KV workloads' checkers catch each planted state-machine bug end to end, through the real agents:
 * `ephemeral-outlives-session` (a session's end leaves its ephemeral keys: seed 12, the first with ephemeral
 * keys and a short session ttl), `txn-first-compare-only` (a transfer on a stale balance breaks the sum:
 * seed 1) and `semaphore-extra-permit` (N + 1 permits held at once: seed 12, and 17, 25, 30 of 1..30, once
 * the election, lease and task workloads were merged beside them).
 */

import { describe, expect, it } from 'vitest'
import { type BugName, runSeed } from '../../scripts/sim/runner.ts'

const cases: { bug: BugName; seed: number; breaks: string[] }[] = [
  { bug: 'ephemeral-outlives-session', seed: 12, breaks: ['ephemeral-state', 'ephemeral-late-delete'] },
  { bug: 'txn-first-compare-only', seed: 1, breaks: ['txn-sum', 'txn-linearizability'] },
  { bug: 'semaphore-extra-permit', seed: 12, breaks: ['semaphore-safety'] },
]

describe('the KV workloads catch each planted bug', () => {
  for (const { bug, seed, breaks } of cases) {
    it(`--bug ${bug} at seed ${seed}`, async () => {
      const result = await runSeed({ seed, bug })
      expect(result.violation, 'no violation').toBeDefined()
      expect(breaks, result.violation!.message).toContain(result.violation!.property)
      // The same seed without the bug holds.
      expect((await runSeed({ seed })).violation).toBeUndefined()
    }, 60_000)
  }
})
