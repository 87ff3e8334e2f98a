import { describe, expect, it } from 'vitest'
import type { CampaignCommand } from '../../src/state/commands.ts'
import type { ElectionChangedEvent } from '../../src/state/events.ts'
import type { JsonValue } from '../../src/state/json.ts'
import { StateMachine } from '../../src/state/state-machine.ts'
import { LogDriver } from './helpers.ts'

function campaign(sessionId: string, value?: JsonValue): CampaignCommand {
  const command: CampaignCommand = {
    type: 'campaign',
    name: 'E',
    sessionId,
    agentId: `agent-${sessionId}`,
    requestId: `req-${sessionId}`,
  }
  if (value !== undefined) command.value = value
  return command
}

function changes(events: readonly { type: string }[]): ElectionChangedEvent[] {
  return events.filter((event): event is ElectionChangedEvent => event.type === 'electionChanged')
}

describe('election values', () => {
  it("the leader's campaign value is in its event and the election's state", () => {
    const log = new LogDriver()
    log.open('a')
    log.open('b')
    const first = log.apply(campaign('a', { addr: 'a:1' }))
    expect(changes(first.events)).toEqual([
      {
        type: 'electionChanged',
        name: 'E',
        leader: { agentId: 'agent-a', sessionId: 'a', requestId: 'req-a' },
        value: { addr: 'a:1' },
        term: 1,
        timestamp: 1_000,
      },
    ])
    expect(log.apply(campaign('b', 'b-value')).events).toEqual([])
    expect(log.machine.election('E')?.leader?.value).toEqual({ addr: 'a:1' })
    // The next leader's own value comes with its election.
    const handover = log.apply({ type: 'resign', name: 'E', sessionId: 'a' })
    expect(changes(handover.events)).toMatchObject([
      { leader: { sessionId: 'b' }, value: 'b-value', term: 2 },
    ])
  })

  it('proclaim sets the leader value as an event of the same term; a non-leader gets NotLeader', () => {
    const log = new LogDriver()
    log.open('a')
    log.open('b')
    log.apply(campaign('a'))
    log.apply(campaign('b'))
    const proclaimed = log.apply({ type: 'proclaim', name: 'E', sessionId: 'a', value: 42 })
    expect(proclaimed.result).toEqual({ type: 'ok' })
    expect(changes(proclaimed.events)).toMatchObject([{ leader: { sessionId: 'a' }, value: 42, term: 1 }])
    expect(log.machine.election('E')?.leader?.value).toBe(42)
    // The same value again changes nothing.
    expect(log.apply({ type: 'proclaim', name: 'E', sessionId: 'a', value: 42 }).events).toEqual([])
    for (const [sessionId, name] of [
      ['b', 'E'],
      ['nobody', 'E'],
      ['a', 'other'],
    ]) {
      const refused = log.apply({ type: 'proclaim', name, sessionId, value: 'x' })
      expect(refused.result).toMatchObject({ type: 'error', code: 'NotLeader' })
      expect(refused.events).toEqual([])
    }
    expect(log.machine.election('E')?.leader?.value).toBe(42)
    // A leader campaigning again with a new value proclaims it.
    expect(changes(log.apply(campaign('a', 'again')).events)).toMatchObject([{ value: 'again', term: 1 }])
  })

  it('values survive a snapshot', () => {
    const log = new LogDriver()
    log.open('a')
    log.open('b')
    log.apply(campaign('a', [1, 2]))
    log.apply(campaign('b', { q: true }))
    const restored = StateMachine.restore(log.machine.snapshot())
    expect(restored.election('E')).toEqual(log.machine.election('E'))
    expect(restored.election('E')?.candidates.map(candidate => candidate.value)).toEqual([
      [1, 2],
      { q: true },
    ])
  })
})
