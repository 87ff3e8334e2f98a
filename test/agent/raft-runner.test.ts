import { defaultLogger } from '@libp2p/logger'
import { describe, expect, it } from 'vitest'
import { RaftRunner } from '../../src/agent/raft-runner.ts'
import { Replica } from '../../src/agent/replica.ts'
import { MemoryRaftStorage } from '../../src/storage/index.ts'

function singleVoter(): RaftRunner {
  const storage = new MemoryRaftStorage()
  storage.write({
    hardState: { term: 0, vote: '', commit: 0 },
    entries: [],
    snapshot: {
      meta: { index: 0, term: 0, config: { voters: ['a'], nonVoters: [] } },
      data: new Uint8Array(),
    },
  })
  return new RaftRunner({
    id: 'a',
    storage,
    application: new Replica(),
    send: () => {},
    random: () => 0.5,
    tickMs: 5,
    snapshotEntries: 1000,
    log: defaultLogger().forComponent('test'),
  })
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
})
