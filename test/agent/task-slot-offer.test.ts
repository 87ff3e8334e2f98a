import { describe, expect, it } from 'vitest'
import { SlotOffer } from '../../src/agent/api/tasks/slot-offer.ts'
import type { CommitPort } from '../../src/agent/node/port.ts'
import type { Replica } from '../../src/agent/node/replica.ts'
import type { Command } from '../../src/state/commands.ts'
import { type StateEvent, StateMachine } from '../../src/state/index.ts'
import { VirtualScheduler } from '../../src/time/index.ts'
import { LogDriver, registerAgent } from '../state/helpers.ts'

describe('SlotOffer: the slots of an agent whose worker runs stay offered', () => {
  it('offers them again when a snapshot shows the leader took them off (the entry itself never seen here)', async () => {
    // The leader's log: the agent registered, its slots offered, then taken off (a stalled assignment).
    const leader = new LogDriver().at(1_000)
    registerAgent(leader, 'a', { concurrency: 2 })
    // This agent's replica, before the entry that takes the slots off.
    const replica = {
      state: StateMachine.restore(leader.machine.snapshot()),
      events: new Set<(event: StateEvent) => void>(),
      restores: new Set<() => void>(),
      onEvent(listener: (event: StateEvent) => void) {
        this.events.add(listener)
        return () => this.events.delete(listener)
      },
      onRestore(listener: () => void) {
        this.restores.add(listener)
        return () => this.restores.delete(listener)
      },
    }
    const sent: Command[] = []
    const commit = {
      submitRaw: async (command: Command) => {
        sent.push(command)
        return leader.apply(command).result
      },
      deadline: () => 1_000,
    }
    const offer = new SlotOffer({
      selfId: 'a',
      commit: commit as unknown as CommitPort,
      replica: replica as unknown as Replica,
      scheduler: new VirtualScheduler(),
      closed: new AbortController().signal,
      log: Object.assign(() => {}, { enabled: false, error: () => {}, trace: () => {} }) as never,
    })
    offer.hold('worker')
    offer.registered(true)
    expect(sent).toEqual([])

    leader.apply({ type: 'updateAgent', agentId: 'a', runsTasks: false })
    // The replica was far behind: it installs the leader's snapshot, and sees none of the events in between.
    replica.state = StateMachine.restore(leader.machine.snapshot())
    for (const listener of replica.restores) listener()
    await Promise.resolve()
    expect(sent).toEqual([{ type: 'updateAgent', agentId: 'a', runsTasks: true }])
    expect(leader.machine.agent('a')?.runsTasks).toBe(true)
  })
})
