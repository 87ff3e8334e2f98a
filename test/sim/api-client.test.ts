/**
 * The simulator's API client (`scripts/sim/api-client.ts`): how it records a write that ended without a
 * definite answer, which the runner's liveness check reads.
 */

import { describe, expect, it } from 'vitest'
import type { SimAgent } from '../../scripts/sim/agent.ts'
import { type ApiCall, ApiClient } from '../../scripts/sim/api-client.ts'
import type { OpDetail } from '../../scripts/sim/clients.ts'
import { Prng } from '../../scripts/sim/prng.ts'
import { Scheduler } from '../../scripts/sim/scheduler.ts'
import { unexpected } from '../../src/agent/api/consensus.ts'
import { NoLeaderError } from '../../src/errors.ts'

/** Runs one write that fails with `error` through an `ApiClient`; returns what the client recorded. */
async function recordedAfter(error: Error): Promise<OpDetail> {
  const scheduler = new Scheduler()
  const details: OpDetail[] = []
  let calls = 0
  const client = new ApiClient<string, string>(
    'x1',
    {
      scheduler,
      prng: new Prng(1),
      timing: {
        opTimeoutMs: 1000,
        readAttemptMs: 150,
        thinkMaxMs: 10,
        wanderRate: 0,
        linkMinMs: 1,
        linkMaxMs: 2,
      },
      node: () => ({}) as SimAgent,
      nodeIds: ['n1', 'n2'],
      stamp: () => scheduler.now,
      issuing: () => calls === 0,
      record: (_op, detail) => details.push(detail),
      newProcessId: () => 1,
      fail: failure => {
        throw failure
      },
      trace: () => {},
    },
    {
      next: (): ApiCall<string, string> => {
        calls++
        return { input: 'put', read: false, run: () => Promise.reject(error) }
      },
    },
  )
  client.start(1)
  while (scheduler.step(100)) await new Promise(resolve => setImmediate(resolve))
  expect(details).toHaveLength(1)
  return details[0]
}

describe('ApiClient', () => {
  // 3 agents, seed 1246: a transaction that waited for a leader while the window user's puts on the same
  // agent session applied past its small result window ended with this answer after the faults, and the
  // liveness check took it for a call that never completed.
  it('marks a write retried past its session window (StaleRequest, an unknown outcome) as outside the window', async () => {
    const stale = unexpected({
      type: 'error',
      code: 'StaleRequest',
      message: 'seq 10 of session n2/2e7a2bf9 was already acknowledged',
    })
    const detail = await recordedAfter(stale)
    expect(detail.completed).toBe(false)
    expect(detail.outsideWindow).toBe(true)
  })

  it('leaves any other unknown outcome to the liveness check', async () => {
    const detail = await recordedAfter(new NoLeaderError('No leader committed the operation in time'))
    expect(detail.completed).toBe(false)
    expect(detail.outsideWindow).toBeUndefined()
  })
})
