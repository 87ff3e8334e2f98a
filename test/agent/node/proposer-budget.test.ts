/**
 * A proposal the leader drops because its uncommitted budget (`maxUncommittedBytes`) is full tries again
 * within a round trip, not after an election's worth of back-off: the budget frees as the entries in flight
 * commit, and a retry that waited ever longer lost it to newer proposals on every try (the simulator, seed
 * 1005: a forwarded command dropped on each try, 20 to 320 ms apart, for its whole 1.5 s in a healthy cluster).
 */
import { describe, expect, it } from 'vitest'
import { type ProposerContext, propose } from '../../../src/agent/node/proposer.ts'
import { RpcRemoteError } from '../../../src/net/rpc.ts'
import { ProposalDroppedError, UNCOMMITTED_BYTES_FULL } from '../../../src/raft/errors.ts'
import { VirtualScheduler } from '../../../src/time/index.ts'

function context(scheduler: VirtualScheduler, fullUntil: number, leader: string): ProposerContext {
  const answer = new TextEncoder().encode(JSON.stringify({ type: 'ok' }))
  return {
    selfId: 'a',
    leader: () => leader,
    proposeLocal: async () => {
      if (scheduler.now() < fullUntil) throw new ProposalDroppedError(UNCOMMITTED_BYTES_FULL)
      return { type: 'ok' }
    },
    forward: async () => {
      if (scheduler.now() < fullUntil) {
        throw new RpcRemoteError(UNCOMMITTED_BYTES_FULL, 'ProposalDroppedError')
      }
      return answer
    },
    leaderChange: ms => new Promise(resolve => scheduler.after(ms, resolve)),
    scheduler,
    closed: false,
  }
}

async function settleTime(scheduler: VirtualScheduler, done: Promise<unknown>): Promise<number> {
  let finished = false
  done.then(() => {
    finished = true
  })
  while (!finished) {
    await new Promise(resolve => setImmediate(resolve))
    if (finished) break
    if (!scheduler.runNext()) throw new Error('nothing left to run, and the proposal is not done')
  }
  return scheduler.now()
}

describe('a proposal dropped for a full uncommitted budget', () => {
  for (const leader of ['a', 'b']) {
    it(`tries again within a round trip (${leader === 'a' ? 'on the leader' : 'forwarded'})`, async () => {
      const scheduler = new VirtualScheduler()
      // The budget stays full for 150 ms, then frees.
      const ctx = context(scheduler, 150, leader)
      const done = propose(ctx, { type: 'put', key: 'k', value: 1 }, { deadline: 1_500 })
      const at = await settleTime(scheduler, done)
      expect(await done).toEqual({ type: 'ok' })
      // Exponential back-off (20, 40, 80, 160 ms...) would come back only at 300 ms.
      expect(at).toBeLessThan(170)
    })
  }
})
