/**
 * A campaign resolves only when its own candidacy leads. Found by the simulator (3 agents, seed 33 of the
 * election users, scripts/sim/election-clients.ts): an agent that lagged applied the log's older stretch
 * where the candidacy of its earlier, aborted campaign reached the head of the queue; the newer campaign took
 * that for its win (the event names the session), and the aborted campaign's resign, next in the log, then
 * handed the election to another agent: two agents believed they led. And a resign right after a campaign won
 * on the leader's answer resigns, rather than find nothing to resign in a replica that has not applied the win
 * yet (the candidacy would lead on, and no one else could). A real replica and state machine fed
 * entries as a committed log would; the client is a stand-in that appends the command and answers with its
 * result.
 */
import { describe, expect, it } from 'vitest'
import { NamedElection, type NamedElectionContext } from '../../src/agent/api/elections.ts'
import type { Client } from '../../src/agent/node/client.ts'
import { Replica } from '../../src/agent/node/replica.ts'
import type { SessionKeeper } from '../../src/agent/node/session.ts'
import type { Entry } from '../../src/raft/types.ts'
import { encodeEnvelope } from '../../src/state/codec.ts'
import type { Command, CommandResult } from '../../src/state/index.ts'
import { VirtualScheduler } from '../../src/time/virtual-scheduler.ts'

describe('a named campaign', () => {
  it('does not take the lead of an earlier, aborted candidacy of its session for its own win', async () => {
    const replica = new Replica()
    let index = 0
    const commit = (command: Command): CommandResult => {
      index++
      const entry: Entry = {
        index,
        term: 1,
        type: 'normal',
        data: encodeEnvelope({ ts: 1_000 + index, command }),
      }
      return replica.apply(entry).result
    }
    for (const [sessionId, agentId] of [
      ['s-a', 'a'],
      ['s-b', 'b'],
      ['s-c', 'c'],
    ]) {
      commit({ type: 'openSession', sessionId, agentId, ttlMs: 10_000 })
    }
    // b leads; a's earlier campaign (since aborted, its resign on the way) waits behind it, then c's.
    commit({ type: 'campaign', name: 'E', sessionId: 's-b', agentId: 'b', requestId: 'rb' })
    commit({ type: 'campaign', name: 'E', sessionId: 's-a', agentId: 'a', requestId: 'aborted' })
    commit({ type: 'campaign', name: 'E', sessionId: 's-c', agentId: 'c', requestId: 'rc' })

    // a campaigns again; its command reaches the log after b's resign and the aborted campaign's resign.
    let campaign: Command | undefined
    let answer: (result: CommandResult) => void = () => {}
    const client = {
      deadline: () => Number.MAX_SAFE_INTEGER,
      submit: (command: Command) => {
        campaign = command
        return new Promise<CommandResult>(resolve => {
          answer = resolve
        })
      },
      submitRaw: async () => ({ type: 'ok' }) as CommandResult,
    } as unknown as Client
    const session = {
      id: 's-a',
      open: async () => {},
      ended: () => {},
      onLost: () => () => {},
    } as unknown as SessionKeeper
    const context: NamedElectionContext = {
      selfId: 'a',
      client,
      replica,
      session,
      closed: new AbortController().signal,
      scheduler: new VirtualScheduler(),
    }
    let resolved = false
    const standing = new NamedElection('E', context).campaign().then(() => {
      resolved = true
    })
    await Promise.resolve()
    expect(campaign?.type).toBe('campaign')

    commit({ type: 'resign', name: 'E', sessionId: 's-b', requestId: 'rb' })
    // The aborted candidacy of a's session leads for one entry, then its resign hands the lead to c.
    expect(replica.state.election('E')?.leader?.requestId).toBe('aborted')
    commit({ type: 'resign', name: 'E', sessionId: 's-a', requestId: 'aborted' })
    expect(replica.state.election('E')?.leader?.sessionId).toBe('s-c')
    answer(commit(campaign!))
    await new Promise(resolve => setTimeout(resolve, 0))
    expect(replica.state.election('E')?.leader?.sessionId).toBe('s-c')
    expect(resolved, 'campaign() resolved while c leads').toBe(false)

    // c resigns: now a's campaign leads, and campaign() resolves.
    commit({ type: 'resign', name: 'E', sessionId: 's-c', requestId: 'rc' })
    await standing
    expect(replica.state.election('E')?.leader?.sessionId).toBe('s-a')
  })
})

describe('a named resign', () => {
  it("resigns a lead won on the leader's answer that this replica has not applied yet", async () => {
    const replica = new Replica()
    let index = 0
    const entry = (command: Command): Entry => {
      index++
      return { index, term: 1, type: 'normal', data: encodeEnvelope({ ts: 1_000 + index, command }) }
    }
    replica.apply(entry({ type: 'openSession', sessionId: 's-a', agentId: 'a', ttlMs: 10_000 }))
    // The leader applied a's campaign and answered 'elected'; this replica has not applied it yet.
    let pending: Entry | undefined
    const submitted: Command[] = []
    const client = {
      deadline: () => Number.MAX_SAFE_INTEGER,
      submit: async (command: Command) => {
        submitted.push(command)
        if (command.type === 'campaign') {
          pending = entry(command)
          return { type: 'elected', term: 1 } as CommandResult
        }
        return replica.apply(entry(command)).result
      },
      submitRaw: async () => ({ type: 'ok' }) as CommandResult,
      // The read barrier: this replica catches up with what the leader committed.
      barrier: async () => {
        if (pending !== undefined) replica.apply(pending)
        pending = undefined
      },
    } as unknown as Client
    const session = {
      id: 's-a',
      open: async () => {},
      ended: () => {},
      onLost: () => () => {},
    } as unknown as SessionKeeper
    const election = new NamedElection('E', {
      selfId: 'a',
      client,
      replica,
      session,
      closed: new AbortController().signal,
      scheduler: new VirtualScheduler(),
    })
    await election.campaign()
    expect(replica.state.election('E')?.leader).toBeUndefined()
    await election.resign()
    expect(submitted.map(command => command.type)).toEqual(['campaign', 'resign'])
    expect(replica.state.election('E')?.leader).toBeUndefined()
    expect(replica.state.election('E')?.candidates).toEqual([])
  })
})
