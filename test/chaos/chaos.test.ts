import { describe, expect, it } from 'vitest'
import { runChaos } from '../../scripts/chaos/run.ts'

// The short version of `npm run chaos`: 5 agents as processes, half a minute of faults of every kind.
describe('chaos: 5 agent processes under kill -9, SIGSTOP, and partitions', () => {
  it('keeps the KV linearizable, locks safe, the counter exact and every task completed once', async () => {
    const lines: string[] = []
    const result = await runChaos({
      durationMs: 30_000,
      seed: 11,
      // Shorter faults and pauses than the long run's, so that half a minute holds every kind of fault.
      nemesis: { faultMs: [1500, 3500], quietMs: [1000, 2500] },
      // A session ttl below the fastest SWIM death (about 2.3 s after a cut): with a longer one, a holder
      // cut off by a partition can still say isHeld() = true after the leader expired its session as dead
      // at half the ttl and gave the lock away (found by `npm run chaos -- --duration 90 --seed 21
      // --session-ttl 5000 --faults isolate-leader,split,one-way`; see docs/simulate.md). Raise it to the
      // default 5000 once that is fixed.
      agentOptions: { sessionTtlMs: 2000 },
      log: line => lines.push(line),
    })
    const failed = result.checks.filter(check => !check.ok)
    expect(failed.map(check => `${check.name}: ${check.violations.join('; ')}`)).toEqual([])
    expect(result.ok).toBe(true)
    // Work got done under the faults: a check over an empty history proves nothing.
    const faults = Object.values(result.faults).reduce((sum, count) => sum + count, 0)
    expect(faults).toBeGreaterThanOrEqual(5)
    expect(Object.keys(result.faults).sort()).toEqual(['isolate-leader', 'kill', 'one-way', 'pause', 'split'])
    expect(result.counts.cas?.ok ?? 0).toBeGreaterThan(50)
    expect(result.counts.acquire?.ok ?? 0).toBeGreaterThan(10)
    expect(result.counts.submit?.ok ?? 0).toBeGreaterThan(50)
    console.log(
      `chaos: ${result.operations} operations, faults ${JSON.stringify(result.faults)}, ${result.leaderChanges} leader changes, ${Math.round(result.elapsedMs / 1000)} s; ${result.checks.map(check => check.summary).join(' | ')}`,
    )
  }, 240_000)
})
