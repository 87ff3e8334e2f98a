import { defaultLogger } from '@libp2p/logger'
import { describe, expect, it } from 'vitest'
import { MemberGate } from '../../src/security/member-gate.ts'
import { systemScheduler } from '../../src/time/system-scheduler.ts'

interface Setup {
  config: { voters: string[]; nonVoters: string[] } | undefined
  leader: boolean
  asked: string[]
  vouchFor: Set<string>
  time: number
  refusals: string[]
}

function gate(setup: Partial<Setup> = {}): { gate: MemberGate; state: Setup; settle: () => Promise<void> } {
  const state: Setup = {
    config: { voters: ['a', 'b', 'c'], nonVoters: ['d'] },
    leader: false,
    asked: [],
    vouchFor: new Set(),
    time: 0,
    refusals: [],
    ...setup,
  }
  const pending: Promise<unknown>[] = []
  const created = new MemberGate({
    config: () => state.config,
    isLeader: () => state.leader,
    vouch: async peer => {
      state.asked.push(peer)
      const answer = Promise.resolve(state.vouchFor.has(peer))
      pending.push(answer)
      return answer
    },
    log: defaultLogger().forComponent('test'),
    onRefusal: peer => state.refusals.push(peer),
    now: () => state.time,
    scheduler: systemScheduler,
  })
  created.refresh()
  const settle = async (): Promise<void> => {
    await Promise.all(pending.splice(0))
    await new Promise(resolve => setTimeout(resolve, 0))
  }
  return { gate: created, state, settle }
}

describe('member gate', () => {
  it('admits Raft messages from voters and non-voters of the configuration, and nobody else', () => {
    const { gate: members, state } = gate({ leader: true })
    for (const peer of ['a', 'b', 'c', 'd']) expect(members.admitRaft(peer)).toBe(true)
    expect(members.admitRaft('x')).toBe(false)
    expect(members.isMember('x')).toBe(false)
    expect(state.refusals).toEqual(['x'])
    // A leader's configuration is the newest: it asks nobody.
    expect(state.asked).toEqual([])
  })

  it('admits anyone while the node has no configuration yet (a joiner waiting for its leader)', () => {
    for (const config of [undefined, { voters: [], nonVoters: [] }]) {
      const { gate: members } = gate({ config })
      expect(members.admitRaft('leader-to-be')).toBe(true)
    }
  })

  it('reads the configuration again for a peer it does not know, so a peer just added is admitted', () => {
    const { gate: members, state } = gate({ leader: true })
    state.config = { voters: ['a', 'b', 'c'], nonVoters: ['d', 'e'] }
    expect(members.isMember('e')).toBe(true)
    expect(members.admitRaft('e')).toBe(true)
    // And one removed is refused once the configuration is read again.
    state.config = { voters: ['a', 'b', 'c'], nonVoters: ['e'] }
    members.refresh()
    expect(members.admitRaft('d')).toBe(false)
  })

  it('on a follower, asks a member about an unknown peer once per window, and admits it when vouched for', async () => {
    const { gate: members, state, settle } = gate()
    state.vouchFor.add('new-voter')
    expect(members.admitRaft('new-voter')).toBe(false)
    expect(members.admitRaft('new-voter')).toBe(false)
    expect(members.admitRaft('stranger')).toBe(false)
    await settle()
    expect(state.asked).toEqual(['new-voter', 'stranger'])
    expect(members.admitRaft('new-voter')).toBe(true)
    // The stranger stays refused, without asking again, until the window passes.
    expect(members.admitRaft('stranger')).toBe(false)
    await settle()
    expect(state.asked).toEqual(['new-voter', 'stranger'])
    state.time += 1_000
    expect(members.admitRaft('stranger')).toBe(false)
    await settle()
    expect(state.asked).toEqual(['new-voter', 'stranger', 'stranger'])
    // A vouched-for peer is asked about again after a while.
    state.time += 30_000
    state.vouchFor.clear()
    expect(members.admitRaft('new-voter')).toBe(false)
    await settle()
    expect(members.admitRaft('new-voter')).toBe(false)
  })

  it('forgets what it learned when stopped', async () => {
    const { gate: members, state, settle } = gate()
    state.vouchFor.add('p')
    members.admitRaft('p')
    await settle()
    expect(members.admitRaft('p')).toBe(true)
    members.stop()
    expect(members.admitRaft('p')).toBe(false)
  })
})
