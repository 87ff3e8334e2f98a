/**
 * Fail-stop on a storage error (issue 15): a node whose write failed must never again send, acknowledge or
 * apply anything, because its core already counts the failed Ready's entries as written. The test drives a
 * follower's real runner with a disk that fails one write, as an I/O error or a full disk would, and then
 * the leader's retransmission, which needs no write: the acknowledgement of that one would be for entries
 * that never reached the disk. Run both ways: with the `no-fail-stop` bug switch the checker must fire.
 */
import { defaultLogger } from '@libp2p/logger'
import { describe, expect, it } from 'vitest'
import { withStorageWrapper } from '../../src/agent/internal-options.ts'
import { RaftRunner } from '../../src/agent/node/raft-runner.ts'
import { Replica } from '../../src/agent/node/replica.ts'
import { ClosedError, createAgent } from '../../src/index.ts'
import type { Entry, Message } from '../../src/raft/types.ts'
import { shellBugs } from '../../src/shell-bugs.ts'
import { MemoryRaftStorage, StorageFailedError } from '../../src/storage/index.ts'
import type { RaftStorage, StorageUpdate } from '../../src/storage/raft-storage.ts'
import { VirtualScheduler } from '../../src/time/virtual-scheduler.ts'

/** Memory storage whose writes fail while `failing` is set (and that remembers what did reach it). */
class FailingStorage extends MemoryRaftStorage {
  failing = false
  override write(update: StorageUpdate): void {
    if (this.failing) throw new Error('EIO: i/o error')
    super.write(update)
  }
}

function follower(bug: boolean) {
  const storage = new FailingStorage()
  storage.write({
    hardState: { term: 0, vote: '', commit: 0 },
    entries: [],
    snapshot: {
      meta: { index: 0, term: 0, config: { voters: ['a', 'b'], nonVoters: [] } },
      data: new Uint8Array(),
    },
  })
  const scheduler = new VirtualScheduler()
  const sent: Message[] = []
  const stops: StorageFailedError[] = []
  const runner = new RaftRunner({
    id: 'a',
    storage,
    application: new Replica(),
    send: message => sent.push(message),
    random: () => 0.5,
    scheduler,
    tickMs: 10,
    snapshotEntries: 1000,
    log: defaultLogger().forComponent('test:fail-stop'),
    onFailStop: error => stops.push(error),
    bugs: bug ? shellBugs(['no-fail-stop']) : undefined,
  })
  /** Runs what is due now; an error thrown out of a timer callback is caught, as an `uncaughtException` handler would. */
  const run = (): unknown[] => {
    const escaped: unknown[] = []
    for (;;) {
      const due = scheduler.nextDue()
      if (due === undefined || due > scheduler.now()) return escaped
      try {
        scheduler.runNext()
      } catch (err) {
        escaped.push(err)
      }
    }
  }
  return { storage, runner, sent, stops, run }
}

const entry: Entry = { index: 1, term: 1, type: 'normal', data: new Uint8Array() }
const append = (leaderCommit: number): Message => ({
  type: 'append',
  from: 'b',
  to: 'a',
  term: 1,
  prevLogIndex: 0,
  prevLogTerm: 0,
  entries: [entry],
  leaderCommit,
})

/** Whether `a` told the leader it holds entry 1. */
const acked = (sent: Message[]): boolean =>
  sent.some(message => message.type === 'appendResponse' && message.success && message.index >= 1)

describe('fail-stop on a storage error', () => {
  for (const bug of [false, true]) {
    const label = bug ? ' (bug switch no-fail-stop: the check fires)' : ''
    it(`a failing disk stops the node: nothing is acknowledged after the failed write${label}`, async () => {
      const { storage, runner, sent, stops, run } = follower(bug)
      storage.failing = true
      runner.step(append(0))
      const escaped = run()
      // The entry is not on disk.
      expect(storage.load().entries).toEqual([])
      // The leader retransmits (its append got no answer); this needs no write.
      storage.failing = false
      runner.step(append(0))
      run()
      expect(acked(sent)).toBe(bug)
      if (bug) {
        expect(escaped).toHaveLength(1) // thrown out of the timer callback, and the node ran on
        return
      }
      expect(escaped).toEqual([])
      expect(sent).toEqual([])
      expect(stops).toHaveLength(1)
      expect(stops[0]).toBeInstanceOf(StorageFailedError)
      expect(runner.failed).toBe(stops[0])
      // Every later call is refused with the storage error, never served.
      await expect(runner.propose(new Uint8Array())).rejects.toBeInstanceOf(StorageFailedError)
      await expect(runner.readIndex()).rejects.toBeInstanceOf(StorageFailedError)
      runner.step({ ...append(1), term: 2 })
      run()
      expect(sent).toEqual([])
      expect(runner.appliedIndex).toBe(0)
    })
  }

  it('rejects pending proposals with StorageFailedError when the leader cannot write', async () => {
    const { storage, runner, stops, run } = follower(false)
    // a becomes the leader of a one-voter view of itself by winning b's vote.
    runner.campaign()
    run()
    runner.step({ type: 'preVoteResponse', from: 'b', to: 'a', term: 1, granted: true })
    run()
    runner.step({ type: 'voteResponse', from: 'b', to: 'a', term: 1, granted: true })
    run()
    expect(runner.leader).toBe('a')
    storage.failing = true
    const pending = runner.propose(new Uint8Array([1]))
    run()
    await expect(pending).rejects.toBeInstanceOf(StorageFailedError)
    expect(stops).toHaveLength(1)
  })

  it('an agent whose disk fails stops: the write in flight fails, every later call is ClosedError', async () => {
    let failing = false
    // The real storage, with writes that fail once `failing` is set (an I/O error, a full disk).
    const wrap = (storage: RaftStorage): RaftStorage =>
      new Proxy(storage, {
        get(target, property) {
          if (property === 'write' && failing) {
            return () => {
              throw new Error('ENOSPC: no space left on device')
            }
          }
          const value = Reflect.get(target, property)
          return typeof value === 'function' ? value.bind(target) : value
        },
      })
    const agent = await createAgent(withStorageWrapper({ transport: 'memory' as const }, wrap))
    try {
      await agent.join({})
      await agent.consensus.propose('before', 1)
      failing = true
      const outcome = await agent.consensus.propose('after', 2).then(
        () => 'acknowledged',
        (err: Error) => err.name,
      )
      expect(outcome).toBe('StorageFailedError')
      // Stopped: typed errors from here on, nothing served.
      await expect(agent.consensus.get('before')).rejects.toBeInstanceOf(ClosedError)
      await expect(agent.consensus.propose('later', 3)).rejects.toBeInstanceOf(ClosedError)
      await expect(agent.locks.tryAcquire('L', 5_000)).rejects.toBeInstanceOf(ClosedError)
    } finally {
      failing = false
      await agent.stop()
    }
  })
})
