/**
 * `join({ maxFinishedTasks })`: the founder's cap on kept finished tasks is committed to the replicated state,
 * so every replica keeps the same finished tasks whatever a joiner said; a bad value is refused before
 * anything happens. In-process agents on loopback TCP.
 */

import type { Libp2p } from '@libp2p/interface'
import { afterEach, describe, expect, it } from 'vitest'
import type { ConclaveService } from '../../src/agent/service.ts'
import { InvalidArgumentError } from '../../src/errors.ts'
import type { Agent } from '../../src/index.ts'
import { createAgent } from '../../src/index.ts'
import type { StateMachine } from '../../src/state/index.ts'

const agents: Agent[] = []

afterEach(async () => {
  await Promise.all(agents.splice(0).map(agent => agent.stop()))
})

async function agent(name: string): Promise<Agent> {
  const created = await createAgent({ name })
  agents.push(created)
  return created
}

/** `agent`'s copy of the replicated state. */
function stateOf(agent: Agent): StateMachine {
  const service = (agent.libp2p as Libp2p<{ conclave: ConclaveService }>).services.conclave
  return (service as unknown as { replica: { state: StateMachine } }).replica.state
}

async function until(check: () => boolean, ms = 15_000): Promise<void> {
  const end = Date.now() + ms
  while (!check()) {
    if (Date.now() > end) throw new Error('condition not met in time')
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}

describe('maxFinishedTasks, set by the founder', () => {
  it('refuses a bad value with InvalidArgumentError and founds nothing', async () => {
    const founder = await agent('m0')
    for (const bad of [-1, 2.5, 1_000_001, '3']) {
      await expect(founder.join({ maxFinishedTasks: bad as number })).rejects.toThrow(InvalidArgumentError)
    }
    expect(founder.isLeader()).toBe(false)
    expect(await founder.members()).toEqual([])
  })

  it("is the founder's on every replica, and both keep the same finished tasks", async () => {
    const founder = await agent('m1')
    await founder.join({ maxFinishedTasks: 2 })
    const joiner = await agent('m2')
    // A joiner's value is not used: the cap is the cluster's.
    await joiner.join({ bootstrap: founder.multiaddrs(), maxFinishedTasks: 50 })
    expect(stateOf(founder).maxFinishedTasks).toBe(2)
    const ids = ['f1', 'f2', 'f3', 'f4']
    for (const id of ids) {
      await founder.tasks.submit({ id, type: 'never-run' })
      await founder.tasks.cancel(id)
    }
    const kept = (state: StateMachine) => ids.filter(id => state.task(id) !== undefined)
    await until(() => stateOf(joiner).appliedIndex >= stateOf(founder).appliedIndex)
    expect(stateOf(joiner).maxFinishedTasks).toBe(2)
    expect(kept(stateOf(founder))).toEqual(['f3', 'f4'])
    expect(kept(stateOf(joiner))).toEqual(['f3', 'f4'])

    // Set later from any agent: lowered, both forget the oldest in the same entry.
    await joiner.tasks.setMaxFinishedTasks(1)
    // Answered once committed: each replica applies it in its own time.
    await until(() => stateOf(founder).maxFinishedTasks === 1 && stateOf(joiner).maxFinishedTasks === 1)
    for (const state of [stateOf(founder), stateOf(joiner)]) {
      expect(state.maxFinishedTasks).toBe(1)
      expect(kept(state)).toEqual(['f4'])
    }
    // Refused with nothing changed.
    for (const bad of [-1, 0.5, Number.NaN, 2_000_000]) {
      await expect(joiner.tasks.setMaxFinishedTasks(bad)).rejects.toThrow(InvalidArgumentError)
    }
    expect(stateOf(joiner).maxFinishedTasks).toBe(1)
  })
})
