/**
 * A member's join writes one Raft entry (issue 16: `openSessionAndRegister`), in this process over the memory
 * transport: the founder, sole voter and leader, applies one entry per member that joins (no configuration
 * change: a member holds no log), and the member is registered and alive in the registry under its session.
 */
import type { Libp2p } from '@libp2p/interface'
import { afterEach, describe, expect, it } from 'vitest'
import type { Replica } from '../../src/agent/node/replica.ts'
import type { ConclaveService } from '../../src/agent/service.ts'
import type { Agent, AgentOptions } from '../../src/index.ts'
import { createAgent } from '../../src/index.ts'

const agents: Agent[] = []
afterEach(async () => {
  await Promise.all(agents.splice(0).map(agent => agent.stop().catch(() => {})))
})

const FAST: AgentOptions = { transport: 'memory', tickMs: 20, sessionTtlMs: 4_000 }

async function agent(name: string): Promise<Agent> {
  const created = await createAgent({ ...FAST, name })
  agents.push(created)
  return created
}

function replicaOf(agent: Agent): Replica {
  const service = (agent.libp2p as Libp2p<{ conclave: ConclaveService }>).services.conclave
  return (service as unknown as { replica: Replica }).replica
}

describe("a member's join", () => {
  it('is one Raft entry: the session and the registration together', async () => {
    const founder = await agent('founder')
    // One voter and no standby: every joiner is a member.
    await founder.join({ voters: 1, standbys: 0 })
    const state = replicaOf(founder).state
    for (const name of ['m1', 'm2', 'm3']) {
      const member = await agent(name)
      const before = state.appliedIndex
      await member.join({ bootstrap: founder.multiaddrs() })
      // The join returns once its entry applied on the leader it went through.
      expect(state.appliedIndex - before).toBe(1)
      const registered = state.agent(member.id)
      expect(registered).toMatchObject({ name, alive: true })
      expect(state.session(registered!.sessionId)?.agentId).toBe(member.id)
    }
  })
})
