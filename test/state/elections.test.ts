import { describe, expect, it } from 'vitest'
import { shellBugs } from '../../src/shell-bugs.ts'
import { encodeEnvelope } from '../../src/state/codec.ts'
import type { CampaignCommand } from '../../src/state/commands.ts'
import { StateMachine } from '../../src/state/state-machine.ts'
import { LogDriver } from './helpers.ts'

function campaign(sessionId: string, name = 'E'): CampaignCommand {
  return { type: 'campaign', name, sessionId, agentId: `agent-${sessionId}`, requestId: `req-${sessionId}` }
}

describe('named elections', () => {
  it('leads FIFO, increments the term with every new leader', () => {
    const log = new LogDriver()
    log.open('a')
    log.open('b')
    log.open('c')
    const first = log.apply(campaign('a'))
    expect(first.result).toEqual({ type: 'elected', term: 1 })
    expect(first.events).toEqual([
      {
        type: 'electionChanged',
        name: 'E',
        leader: { agentId: 'agent-a', sessionId: 'a', requestId: 'req-a' },
        term: 1,
        timestamp: 1_000,
      },
    ])
    expect(log.apply(campaign('b'))).toEqual({ result: { type: 'candidate', position: 1 }, events: [] })
    expect(log.result(campaign('c'))).toEqual({ type: 'candidate', position: 2 })
    // Campaigning again is idempotent: one candidacy per session.
    expect(log.result(campaign('b'))).toEqual({ type: 'candidate', position: 1 })
    expect(log.result(campaign('a'))).toEqual({ type: 'elected', term: 1 })

    const resigned = log.apply({ type: 'resign', name: 'E', sessionId: 'a' })
    expect(resigned.result).toEqual({ type: 'ok' })
    expect(resigned.events).toMatchObject([{ type: 'electionChanged', leader: { sessionId: 'b' }, term: 2 }])
    // A queued candidate withdrawing changes no leader.
    expect(log.apply({ type: 'resign', name: 'E', sessionId: 'c' }).events).toEqual([])
    expect(log.machine.election('E')).toMatchObject({ term: 2, leader: { sessionId: 'b' } })

    const empty = log.apply({ type: 'resign', name: 'E', sessionId: 'b' })
    expect(empty.events).toEqual([{ type: 'electionChanged', name: 'E', term: 2, timestamp: 1_000 }])
    expect(log.machine.election('E')).toEqual({ name: 'E', term: 2, leader: undefined, candidates: [] })
    // The term survives a leaderless spell: the next leader's term is higher than any before.
    expect(log.result(campaign('c'))).toEqual({ type: 'elected', term: 3 })
    expect(log.result({ type: 'resign', name: 'E', sessionId: 'a' })).toEqual({ type: 'unchanged' })
    expect(log.result({ type: 'resign', name: 'nope', sessionId: 'a' })).toEqual({ type: 'unchanged' })
  })

  it('withdraws the candidacies of an expired session', () => {
    const log = new LogDriver()
    log.open('a')
    log.open('b')
    log.apply(campaign('a'))
    log.apply(campaign('b'))
    log.apply(campaign('b', 'other'))
    const output = log.apply({ type: 'expireSession', sessionId: 'b', reason: 'dead' })
    expect(output.events.map(event => event.type)).toEqual(['sessionExpired', 'electionChanged'])
    expect(log.machine.election('E')?.candidates.map(candidate => candidate.sessionId)).toEqual(['a'])
    expect(log.machine.election('other')).toMatchObject({ term: 1, leader: undefined, candidates: [] })
  })

  it('requires a live session', () => {
    const log = new LogDriver()
    expect(log.result(campaign('ghost'))).toMatchObject({ code: 'SessionExpired' })
    expect(log.machine.election('E')).toBeUndefined()
  })

  // The resign-any-candidacy hole: an aborted campaign sends a resign the proposer may retry late, after the
  // same session campaigned again; keyed by session alone it would withdraw the newer candidacy.
  for (const bug of [false, true]) {
    const label = bug ? ' (bug switch resign-any-candidacy: the check fires)' : ''
    it(`a late resign of an aborted campaign leaves a newer candidacy of the same session standing${label}`, () => {
      const log = new LogDriver(undefined, bug ? shellBugs(['resign-any-candidacy']) : undefined)
      log.open('a')
      log.open('b')
      log.apply(campaign('b'))
      // a's first campaign queues behind b, is aborted, and its resign is delayed...
      const first: CampaignCommand = { ...campaign('a'), requestId: 'first' }
      expect(log.result(first)).toEqual({ type: 'candidate', position: 1 })
      // ...a campaigns again (the same session) before that resign applies, and is told it stands.
      const second: CampaignCommand = { ...campaign('a'), requestId: 'second' }
      expect(log.result(second)).toEqual({ type: 'candidate', position: 1 })
      // The late resign of the first campaign arrives.
      log.apply({ type: 'resign', name: 'E', sessionId: 'a', requestId: 'first' })
      const standing = log.machine.election('E')!.candidates.some(candidate => candidate.sessionId === 'a')
      expect(standing).toBe(!bug)
      if (bug) return
      expect(log.machine.election('E')!.candidates[1]).toMatchObject({ sessionId: 'a', requestId: 'second' })
      // b resigns: the second campaign leads, and its own resign ends it.
      log.apply({ type: 'resign', name: 'E', sessionId: 'b', requestId: 'req-b' })
      expect(log.machine.election('E')!.leader).toMatchObject({ sessionId: 'a', requestId: 'second' })
      const resigned = log.apply({ type: 'resign', name: 'E', sessionId: 'a', requestId: 'second' })
      expect(resigned.result).toEqual({ type: 'ok' })
      expect(log.machine.election('E')!.leader).toBeUndefined()
    })
  }
  // Simulator seed 1789: the proposer retried an aborted campaign late, after the same session campaigned
  // again and led; applied after it, the old campaign took the candidacy back, and its own resign (due next)
  // then ended the leadership the newer campaign had been told it holds. From command-set version 3 the
  // campaigns of a session are ordered by their request sequence, not by the order their entries apply.
  for (const version of [3, 1]) {
    it(`a late retry of an aborted campaign does not take the candidacy from a newer one (cluster version ${version})`, () => {
      const log = new LogDriver()
      log.apply({ type: 'setClusterVersion', version })
      log.open('a')
      log.open('b')
      const newer: CampaignCommand = { ...campaign('a'), requestId: 'newer' }
      expect(log.result(newer, { session: 'a', seq: 306 })).toMatchObject({ type: 'elected' })
      const older: CampaignCommand = { ...campaign('a'), requestId: 'older' }
      log.apply(older, { session: 'a', seq: 302 })
      log.apply({ type: 'resign', name: 'E', sessionId: 'a', requestId: 'older' })
      log.apply(campaign('b'))
      const leader = log.machine.election('E')!.leader
      if (version >= 3) {
        expect(leader).toMatchObject({ sessionId: 'a', requestId: 'newer' })
        // Queries show the candidacy as before: the sequence stays internal.
        expect(Object.keys(leader!).sort()).toEqual(['agentId', 'requestId', 'sessionId'])
        // It survives a snapshot: a replica restored from one orders the next late retry the same way.
        const restored = StateMachine.restore(log.machine.snapshot())
        const late = { ts: log.now, session: 'a', seq: 304, command: { ...campaign('a'), requestId: 'late' } }
        restored.apply({ index: log.index + 1, term: 1, data: encodeEnvelope(late) })
        expect(restored.election('E')!.leader).toMatchObject({ sessionId: 'a', requestId: 'newer' })
      } else {
        // Below version 3 every replica keeps the older rule (a mixed-version cluster must not diverge).
        expect(leader).toMatchObject({ sessionId: 'b' })
      }
    })
  }
})
