/**
 * Watches on a replica whose state a snapshot replaces (a lagging follower catching up): the changes inside
 * the snapshot were never emitted as events, so a KV watch reads them from the snapshot's retained history
 * (or ends with `CompactedError` if it does not reach back), and a leader watch learns the leader the
 * snapshot holds. A real replica and state machine, fed entries as a committed log would; `watch` uses
 * neither the facades' client nor their session.
 */
import { describe, expect, it } from 'vitest'
import { Consensus } from '../../src/agent/api/consensus.ts'
import { NamedElection, type NamedElectionContext } from '../../src/agent/api/elections.ts'
import { watchTasks } from '../../src/agent/api/tasks/views.ts'
import type { Client } from '../../src/agent/node/client.ts'
import { Replica } from '../../src/agent/node/replica.ts'
import { CompactedError } from '../../src/errors.ts'
import type { ConsensusEvent, LeaderEvent, TaskEvent } from '../../src/index.ts'
import type { Entry } from '../../src/raft/types.ts'
import { encodeEnvelope } from '../../src/state/codec.ts'
import type { Command } from '../../src/state/commands.ts'
import { StateMachine } from '../../src/state/state-machine.ts'
import { VirtualScheduler } from '../../src/time/virtual-scheduler.ts'
import { taskSpec } from '../state/helpers.ts'

/** A leader's state and a replica applying the same entries until `cut`, then given a snapshot. */
function cluster() {
  const leader = new StateMachine()
  const replica = new Replica()
  let index = 0
  let connected = true
  return {
    replica,
    commit(command: Command): void {
      index++
      const entry: Entry = {
        index,
        term: 1,
        type: 'normal',
        data: encodeEnvelope({ ts: 1_000 + index, command }),
      }
      leader.apply(entry)
      if (connected) replica.apply(entry)
    },
    cut(): void {
      connected = false
    },
    install(): void {
      replica.restore({
        meta: { index, term: 1, config: { voters: [], nonVoters: [] } },
        data: leader.snapshot(),
      })
      connected = true
    },
    get revision(): number {
      return leader.revision
    },
  }
}

function put(key: string, value: number): Command {
  return { type: 'put', key, value }
}

/** The next `count` items; fails after 5 s rather than waiting for ones that never come. */
async function take<T>(iterator: AsyncIterator<T>, count: number): Promise<T[]> {
  const got: T[] = []
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`only ${got.length} of ${count} items came`)), 5_000)
  })
  try {
    for (let i = 0; i < count; i++) {
      const next = await Promise.race([iterator.next(), late])
      if (next.done === true) break
      got.push(next.value)
    }
  } finally {
    clearTimeout(timer)
  }
  return got
}

const closed = new AbortController().signal

describe('watches across a snapshot install', () => {
  it('a KV watch gets what it buffered, then the snapshot’s changes from its history, then live ones', async () => {
    const log = cluster()
    for (let i = 1; i <= 5; i++) log.commit(put(`k/${i}`, i))
    const consensus = new Consensus(undefined as unknown as Client, log.replica, closed)
    const watch = consensus.watch('k/', { buffer: 3 })[Symbol.asyncIterator]()
    log.commit(put('k/6', 6))
    log.commit(put('other', 0))
    log.commit(put('k/7', 7))
    log.cut()
    for (let i = 8; i <= 25; i++) log.commit(put(`k/${i}`, i))
    log.install()
    log.commit(put('k/26', 26))
    const keys = (await take<ConsensusEvent>(watch, 21)).map(event => event.key)
    expect(keys).toEqual(Array.from({ length: 21 }, (_, i) => `k/${i + 6}`))
    await watch.return?.()
  })

  it('a KV watch that the snapshot left behind its history ends with CompactedError; resumed, it gets the rest', async () => {
    const log = cluster()
    log.commit(put('k/0', 0))
    const consensus = new Consensus(undefined as unknown as Client, log.replica, closed)
    const watch = consensus.watch('k/', { buffer: 3 })[Symbol.asyncIterator]()
    log.commit(put('k/1', 1))
    log.cut()
    // More than the 10,000 changes a state keeps.
    for (let i = 2; i <= 10_050; i++) log.commit(put(`k/${i % 64}`, i))
    log.install()
    const first = await watch.next()
    expect(first.value?.revision).toBe(2)
    const error = await watch.next().catch((err: unknown) => err)
    expect(error).toBeInstanceOf(CompactedError)
    const resume = (error as CompactedError).resumeRevision as number
    expect(resume).toBe(log.revision - 10_000 + 1)
    const rest = consensus.watch('k/', { fromRevision: resume })[Symbol.asyncIterator]()
    const revisions = (await take<ConsensusEvent>(rest, 10_000)).map(event => event.revision)
    expect(revisions).toEqual(Array.from({ length: 10_000 }, (_, i) => resume + i))
    await rest.return?.()
  })

  it('a leader watch learns the leader the snapshot holds', async () => {
    const log = cluster()
    log.commit({ type: 'openSession', sessionId: 'a', agentId: 'agent-a', ttlMs: 60_000 })
    log.commit({ type: 'openSession', sessionId: 'b', agentId: 'agent-b', ttlMs: 60_000 })
    log.commit({ type: 'campaign', name: 'E', sessionId: 'a', agentId: 'agent-a', requestId: 'ra' })
    log.commit({
      type: 'campaign',
      name: 'E',
      sessionId: 'b',
      agentId: 'agent-b',
      requestId: 'rb',
      value: 'b!',
    })
    const context = { replica: log.replica, closed, scheduler: new VirtualScheduler() }
    const election = new NamedElection('E', context as unknown as NamedElectionContext)
    const watch = election.watch()[Symbol.asyncIterator]()
    log.cut()
    log.commit({ type: 'resign', name: 'E', sessionId: 'a' })
    log.install()
    const events = await take<LeaderEvent>(watch, 2)
    expect(events.map(event => [event.type, event.leaderId, event.value])).toEqual([
      ['elected', 'agent-a', undefined],
      ['changed', 'agent-b', 'b!'],
    ])
    await watch.return?.()
  })
})

describe('a task watch on a replica keeping few changes', () => {
  it('buffers its limit, catches up while the changes are kept, then ends with CompactedError; resumed, it gets the rest', async () => {
    const replica = new Replica()
    replica.state = new StateMachine({ taskHistorySize: 20 })
    let index = 0
    const submit = (id: string): void => {
      index++
      const command: Command = { type: 'submitTask', task: taskSpec(id, { type: 't' }) }
      replica.apply({ index, term: 1, type: 'normal', data: encodeEnvelope({ ts: 1_000 + index, command }) })
    }
    const slow = watchTasks(replica, closed, { type: 't' }, { buffer: 3 })[Symbol.asyncIterator]()
    for (let i = 0; i < 15; i++) submit(`a${i}`)
    // Fifteen submissions are within the 20 changes kept: every change comes, in order, once.
    const total = replica.state.taskRevision
    expect(total).toBeLessThanOrEqual(20)
    const caughtUp = await take<TaskEvent>(slow, total)
    expect(caughtUp.map(e => e.revision)).toEqual(Array.from({ length: total }, (_, i) => i + 1))
    expect(caughtUp.filter(e => e.type === 'submitted').map(e => e.taskId)).toEqual(
      Array.from({ length: 15 }, (_, i) => `a${i}`),
    )
    await slow.return?.()

    const stalled = watchTasks(replica, closed, { type: 't' }, { buffer: 3 })[Symbol.asyncIterator]()
    for (let i = 0; i < 40; i++) submit(`b${i}`)
    const before = await take<TaskEvent>(stalled, 3)
    const error = await stalled.next().catch((err: unknown) => err)
    expect(error).toBeInstanceOf(CompactedError)
    const resume = (error as CompactedError).resumeRevision as number
    expect(resume).toBe(replica.state.taskRevision - 20 + 1)
    expect(before.at(-1)!.revision).toBeLessThan(resume)
    const rest = watchTasks(replica, closed, { type: 't' }, { fromRevision: resume })[Symbol.asyncIterator]()
    const revisions = (await take<TaskEvent>(rest, 20)).map(e => e.revision)
    expect(revisions).toEqual(Array.from({ length: 20 }, (_, i) => resume + i))
    await rest.return?.()
  })
})
