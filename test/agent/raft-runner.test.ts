import { defaultLogger } from '@libp2p/logger'
import { describe, expect, it } from 'vitest'
import { type ProposerContext, propose } from '../../src/agent/node/proposer.ts'
import { ProposalSkippedError, RaftRunner } from '../../src/agent/node/raft-runner.ts'
import { Replica } from '../../src/agent/node/replica.ts'
import { NoLeaderError } from '../../src/index.ts'
import type { Message } from '../../src/raft/types.ts'
import { MemoryRaftStorage } from '../../src/storage/index.ts'
import { systemScheduler } from '../../src/time/system-scheduler.ts'

function singleVoter(voters = ['a'], send: (message: Message) => void = () => {}): RaftRunner {
  const storage = new MemoryRaftStorage()
  storage.write({
    hardState: { term: 0, vote: '', commit: 0 },
    entries: [],
    snapshot: {
      meta: { index: 0, term: 0, config: { voters, nonVoters: [] } },
      data: new Uint8Array(),
    },
  })
  return new RaftRunner({
    id: 'a',
    storage,
    application: new Replica(),
    send,
    random: () => 0.5,
    scheduler: systemScheduler,
    tickMs: 5,
    snapshotEntries: 1000,
    log: defaultLogger().forComponent('test'),
  })
}

/** `a` leading voters a and b, where b grants every vote and acknowledges nothing: a's proposals stay pending. */
async function leaderWithSilentPeer(): Promise<RaftRunner> {
  let runner: RaftRunner | undefined
  runner = singleVoter(['a', 'b'], message => {
    if (message.type !== 'vote' && message.type !== 'preVote') return
    const type = message.type === 'vote' ? 'voteResponse' : 'preVoteResponse'
    queueMicrotask(() => runner?.step({ type, from: 'b', to: 'a', term: message.term, granted: true }))
  })
  runner.start()
  runner.campaign()
  while (runner.leader !== 'a') await new Promise(resolve => setTimeout(resolve, 5))
  return runner
}

describe('RaftRunner', () => {
  it('rejects, never throws, when the core refuses a proposal (timers call it unguarded)', async () => {
    const runner = singleVoter()
    let refused: Promise<unknown> | undefined
    expect(() => {
      refused = runner.propose(new Uint8Array())
    }).not.toThrow()
    await expect(refused).rejects.toMatchObject({ name: 'NotLeaderError' })
    runner.start()
    runner.campaign()
    while (runner.leader !== 'a') await new Promise(resolve => setTimeout(resolve, 5))
    const first = runner.proposeConfigChange({ type: 'addNonVoter', node: 'b' })
    let second: Promise<unknown> | undefined
    expect(() => {
      second = runner.proposeConfigChange({ type: 'addNonVoter', node: 'c' })
    }).not.toThrow()
    await expect(second).rejects.toMatchObject({ name: 'ConfigChangeError' })
    await first
    runner.stop()
    await expect(runner.propose(new Uint8Array())).rejects.toMatchObject({ name: 'ClosedError' })
  })

  it("rejects a proposal a snapshot was installed over at once, rather than at the caller's deadline", async () => {
    // a leads voters a and b; b acknowledges nothing, so a's proposal stays pending.
    const runner = await leaderWithSilentPeer()
    const pending = runner.propose(new Uint8Array())
    const { term, lastIndex } = runner.status()
    // b, leading a later term, catches a up with a snapshot past that proposal.
    runner.step({
      type: 'snapshot',
      from: 'b',
      to: 'a',
      term: term + 1,
      meta: { index: lastIndex + 3, term: term + 1, config: { voters: ['a', 'b'], nonVoters: [] } },
      offset: 0,
      data: new Replica().snapshot(),
      done: true,
    })
    const late = new Promise(resolve => setTimeout(() => resolve('still pending'), 2_000))
    await expect(Promise.race([pending, late])).rejects.toBeInstanceOf(ProposalSkippedError)
    expect(runner.appliedIndex).toBe(lastIndex + 3)
    runner.stop()
  })

  it("rejects a proposal another leader's entries replaced at once, rather than at the caller's deadline", async () => {
    // As above: a leads a and b, and b acknowledges nothing.
    const runner = await leaderWithSilentPeer()
    const first = runner.propose(new Uint8Array([1]))
    const second = runner.propose(new Uint8Array([2]))
    const { term, lastIndex } = runner.status()
    // b, leading a later term, replaces a's suffix from the first proposal's index with one entry of its own.
    runner.step({
      type: 'append',
      from: 'b',
      to: 'a',
      term: term + 1,
      prevLogIndex: lastIndex - 2,
      prevLogTerm: term,
      entries: [{ index: lastIndex - 1, term: term + 1, type: 'normal', data: new Uint8Array() }],
      leaderCommit: 0,
    })
    const late = new Promise(resolve => setTimeout(() => resolve('still pending'), 2_000))
    // The first's slot holds another term's entry, the second's is past the log's end; neither commits here.
    await expect(Promise.race([first, late])).rejects.toBeInstanceOf(ProposalSkippedError)
    await expect(Promise.race([second, late])).rejects.toBeInstanceOf(ProposalSkippedError)
    expect(runner.status()).toMatchObject({ lastIndex: lastIndex - 1, commit: 0 })
    runner.stop()
  })

  it('retries a skipped proposal only with a session, whose dedup answers it; without one, its outcome is unknown', async () => {
    const context = (calls: { count: number }): ProposerContext => ({
      selfId: 'a',
      leader: () => 'a',
      proposeLocal: async () => {
        if (++calls.count === 1) throw new ProposalSkippedError(7)
        return { type: 'revision', revision: 7 }
      },
      forward: async () => new Uint8Array(),
      leaderChange: ms => new Promise(resolve => setTimeout(resolve, Math.min(ms, 5))),
      scheduler: systemScheduler,
      closed: false,
    })
    const command = { type: 'put', key: 'k', value: 1 } as const
    const withSession = { count: 0 }
    const result = await propose(context(withSession), command, {
      deadline: performance.now() + 5_000,
      session: { id: 's', seq: 1, ackedBelow: 0 },
    })
    expect(result).toEqual({ type: 'revision', revision: 7 })
    expect(withSession.count).toBe(2)
    const without = { count: 0 }
    await expect(
      propose(context(without), command, { deadline: performance.now() + 5_000 }),
    ).rejects.toBeInstanceOf(NoLeaderError)
    expect(without.count).toBe(1)
  })
})
