import { describe, expect, it } from 'vitest'
import { DeadAssignees } from '../../src/agent/cluster/dead-assignees.ts'
import { Housekeeping } from '../../src/agent/cluster/housekeeping.ts'
import { type Duty, type LeaderDuties, planLeaderDuties } from '../../src/agent/cluster/leader-duties.ts'
import { Lessor } from '../../src/agent/cluster/lessor.ts'
import type { RaftHost } from '../../src/agent/node/raft-host.ts'
import type { Replica } from '../../src/agent/node/replica.ts'
import { VirtualScheduler } from '../../src/time/index.ts'
import { claim, LogDriver, registerAgent, submit } from '../state/helpers.ts'

describe('DeadAssignees: the assignments of an agent the membership view holds dead go back at once', () => {
  it('names it once per stay in the dead set; the planner takes its slots; its running attempt is left alone', () => {
    const log = new LogDriver().at(1_000)
    // A long session ttl: its expiry would send the assignments back only half a minute after the last
    // keep-alive.
    registerAgent(log, 'a', { concurrency: 2, ttlMs: 60_000 })
    submit(log, 'r', { constraints: { preferredAgents: ['a'] } })
    submit(log, 't', { constraints: { preferredAgents: ['a'] } })
    const { fencingToken: token } = claim(log, 'r', 'a')
    expect(log.machine.task('t')).toMatchObject({ state: 'assigned', assignee: 'a' })
    registerAgent(log, 'b', { concurrency: 2 })

    const dead = new DeadAssignees()
    const leadership = {}
    // Alive in the view, or the leader itself: nothing.
    expect(dead.due(log.machine, leadership, new Set(), 'leader')).toEqual([])
    expect(dead.due(log.machine, leadership, new Set(['a']), 'a')).toEqual([])
    expect(dead.due(log.machine, leadership, new Set(['a', 'b']), 'leader')).toEqual(['a'])
    // Once per stay in the dead set: a live agent wrongly held dead that offers its slots again is not
    // taken off again and again.
    expect(dead.due(log.machine, leadership, new Set(['a']), 'leader')).toEqual([])

    const duties = planLeaderDuties({
      state: log.machine,
      selfId: 'leader',
      now: 0,
      elapsed: 0,
      takeoverStateTime: 0,
      sessionExpiries: [],
      stalledAgents: ['a'],
      deadAssignees: ['a'],
    })
    // One duty for both reasons.
    expect(duties.filter(duty => duty.id === 'w:a')).toEqual([
      { id: 'w:a', command: { type: 'updateAgent', agentId: 'a', runsTasks: false } },
    ])
    log.apply({ type: 'updateAgent', agentId: 'a', runsTasks: false })
    // The assignment moved to the live agent; the running attempt runs on, under its fencing token.
    expect(log.machine.task('t')).toMatchObject({ state: 'assigned', assignee: 'b' })
    expect(log.machine.task('r')).toMatchObject({ state: 'running', assignee: 'a', fencingToken: token })

    // Back alive in the view, it offers its slots again and takes work; held dead again, it is named again.
    expect(dead.due(log.machine, leadership, new Set(), 'leader')).toEqual([])
    log.apply({ type: 'updateAgent', agentId: 'a', runsTasks: true })
    submit(log, 'u', { constraints: { preferredAgents: ['a'] } })
    expect(log.machine.task('u')).toMatchObject({ state: 'assigned', assignee: 'a' })
    expect(dead.due(log.machine, leadership, new Set(['a']), 'leader')).toEqual(['a'])
    // A new leadership starts afresh.
    expect(dead.due(log.machine, {}, new Set(['a']), 'leader')).toEqual(['a'])
  })

  it('leaves an agent alone that holds no assignment, offers no slots, or whose session already ended', () => {
    const log = new LogDriver().at(1_000)
    registerAgent(log, 'a', { concurrency: 1 })
    registerAgent(log, 'c', { concurrency: 1, runsTasks: false })
    const dead = new DeadAssignees()
    expect(dead.due(log.machine, {}, new Set(['a', 'c']), 'leader')).toEqual([])
    submit(log, 't', { constraints: { preferredAgents: ['a'] } })
    log.apply({ type: 'expireSession', sessionId: 'session-a', reason: 'dead' })
    // The session's end sent the assignment back already.
    expect(log.machine.task('t')?.state).toBe('pending')
    expect(dead.due(log.machine, {}, new Set(['a', 'c']), 'leader')).toEqual([])
  })
})

describe('the leader housekeeping round', () => {
  it('takes the slots of an agent its view holds dead at once, long before that agent session would expire', () => {
    const log = new LogDriver().at(1_000)
    registerAgent(log, 'leader', { concurrency: 1, runsTasks: false })
    registerAgent(log, 'b', { concurrency: 2, ttlMs: 60_000 })
    submit(log, 't', { constraints: { preferredAgents: ['b'] } })
    expect(log.machine.task('t')).toMatchObject({ state: 'assigned', assignee: 'b' })
    const scheduler = new VirtualScheduler()
    const down = new Set<string>()
    const proposed: Duty[] = []
    // The parts the round reads, as a leader of one term holds them; its duties are recorded, not proposed.
    const host = { current: () => ({}), isLeader: () => true, leaderSince: { local: 0, stateTime: 1_000 } }
    const housekeeping = new Housekeeping({
      selfId: 'leader',
      host: host as unknown as RaftHost,
      replica: { state: log.machine } as unknown as Replica,
      liveness: { down: () => [...down] },
      duties: { run: (duties: Duty[]) => proposed.push(...duties) } as unknown as LeaderDuties,
      lessor: new Lessor(),
      voters: { keep: () => {} },
      clusterVersion: { keep: () => {} },
      joining: { rejoinIfRemoved: () => {} },
      scheduler,
      intervalMs: 100,
    })
    const takeOff = { id: 'w:b', command: { type: 'updateAgent', agentId: 'b', runsTasks: false } }
    scheduler.advance(1_000)
    housekeeping.round()
    expect(proposed).not.toContainEqual(takeOff)
    // Held dead: the very next round takes its slots (its session, with a minute's ttl, lives on).
    down.add('b')
    scheduler.advance(100)
    housekeeping.round()
    expect(proposed).toContainEqual(takeOff)
    expect(proposed.some(duty => duty.command.type === 'expireSession')).toBe(false)
  })
})
