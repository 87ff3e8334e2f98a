/**
 * The transaction, ephemeral-key and semaphore workloads run through the real agents under the fault
 * schedule, do real work, and their checkers hold. Two seeds: 1 runs all three at the default session ttl;
 * 12 runs ephemeral keys and the semaphore at a 1 s ttl, where owners' sessions end within the run and
 * readers see their keys go.
 */

import { describe, expect, it } from 'vitest'
import { runSeed } from '../../scripts/sim/runner.ts'

describe('the KV workloads in the simulator', () => {
  it('seed 1: transactions keep the sum and are linearizable; ephemeral keys and permits stay safe', async () => {
    const result = await runSeed({ seed: 1 })
    expect(result.violation).toBeUndefined()
    const { txn, ephemeral, semaphore } = result.kv
    expect(txn?.linearizability).toBe('ok')
    expect(txn?.transfersSucceeded).toBeGreaterThan(0)
    expect(txn?.reads).toBeGreaterThan(0)
    expect(ephemeral?.putsAnswered).toBeGreaterThan(0)
    expect(ephemeral?.reads).toBeGreaterThan(0)
    expect(semaphore?.grants).toBeGreaterThan(0)
    expect(semaphore?.heldChecks).toBeGreaterThan(0)
  }, 30_000)

  it('seed 12: sessions end under faults and their keys are gone, never before', async () => {
    const result = await runSeed({ seed: 12 })
    expect(result.violation).toBeUndefined()
    expect(result.kv.sessionTtlMs).toBe(1000)
    const ephemeral = result.kv.ephemeral
    expect(ephemeral?.sessionsEnded).toBeGreaterThan(0)
    expect(ephemeral?.absentSeen).toBeGreaterThan(0)
    expect(result.kv.semaphore?.grants).toBeGreaterThan(0)
  }, 30_000)
})
