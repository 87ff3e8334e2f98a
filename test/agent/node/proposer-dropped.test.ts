/**
 * A proposal the leader drops for flow control (too many uncommitted bytes) or during a transfer is sent
 * again within a tick, not after the growing back-off meant for finding a leader: under a tight
 * `maxUncommittedBytes` a large command otherwise lost to every small one proposed meanwhile, up to 320 ms a
 * try (the simulator's KV workloads, seed 23: a 300-byte transaction answered 93 ticks after the faults).
 */

import { describe, expect, it } from 'vitest'
import { DROPPED_RETRY_MS, type ProposerContext, propose } from '../../../src/agent/node/proposer.ts'
import { ProposalDroppedError } from '../../../src/raft/errors.ts'
import { VirtualScheduler } from '../../../src/time/index.ts'

const settle = (): Promise<void> => new Promise(resolve => setImmediate(resolve))
const encoder = new TextEncoder()

/** An error as the RPC layer hands back one the leader threw. */
function remote(name: string): Error {
  return Object.assign(new Error('dropped at the leader'), { name: 'RpcRemoteError', remoteName: name })
}

function context(
  scheduler: VirtualScheduler,
  leader: string,
  attempt: () => Promise<unknown>,
): ProposerContext {
  return {
    selfId: 'a',
    leader: () => leader,
    proposeLocal: attempt,
    forward: () => attempt().then(result => encoder.encode(JSON.stringify(result))),
    leaderChange: ms => new Promise(resolve => scheduler.after(ms, resolve)),
    scheduler,
    closed: false,
  }
}

async function timeToCommit(leader: string, dropped: () => Error, drops: number): Promise<number> {
  const scheduler = new VirtualScheduler({ start: 1_000 })
  let tries = 0
  const attempt = async () => {
    if (++tries <= drops) throw dropped()
    return { type: 'revision', revision: 7 }
  }
  let result: unknown
  const call = propose(
    context(scheduler, leader, attempt),
    { type: 'put', key: 'k', value: 1 },
    { deadline: 11_000 },
  ).then(r => {
    result = r
  })
  while (result === undefined) {
    await settle()
    scheduler.advance(1)
  }
  await call
  expect(result).toEqual({ type: 'revision', revision: 7 })
  expect(tries).toBe(drops + 1)
  return scheduler.now() - 1_000
}

describe('propose after a dropped proposal', () => {
  it('forwarded: tries again every few ms while the leader drops it', async () => {
    const elapsed = await timeToCommit('b', () => remote('ProposalDroppedError'), 8)
    expect(elapsed).toBeLessThanOrEqual(8 * (DROPPED_RETRY_MS + 2))
  })

  it('on the leader itself: the same', async () => {
    const elapsed = await timeToCommit(
      'a',
      () => new ProposalDroppedError('Too many uncommitted bytes on the leader'),
      8,
    )
    expect(elapsed).toBeLessThanOrEqual(8 * (DROPPED_RETRY_MS + 2))
  })

  it('a leader that is not there (the connection broke) still backs off', async () => {
    const broken = () => Object.assign(new Error('reset'), { name: 'RpcConnectionError' })
    // 20 + 40 + 80 + 160 ms: the pace of finding a leader again.
    expect(await timeToCommit('b', broken, 4)).toBeGreaterThanOrEqual(300)
  })
})
