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
import { decodeEnvelope } from '../../src/state/index.ts'

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

/** The commands `agent` applies from now on, by type (configuration changes as `config`). */
function appliedTypes(agent: Agent): string[] {
  const types: string[] = []
  replicaOf(agent).onApplied(entry => {
    const decoded = entry.type === 'config' ? undefined : decodeEnvelope(entry.data)
    types.push(entry.type === 'config' ? 'config' : decoded?.ok ? decoded.envelope.command.type : 'empty')
  })
  return types
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

  it("the founder's session is one entry too: its voter target and version commit before it opens", async () => {
    const founder = await agent('founder')
    const types = appliedTypes(founder)
    await founder.join({ voters: 3 })
    // Before, the session opened ahead of the version entry: openSession, then registerAgent.
    expect(types.filter(type => type !== 'empty')).toEqual([
      'setVoterTarget',
      'setClusterVersion',
      'openSessionAndRegister',
    ])
  })

  it("a replica's join opens its session in one entry: it applies the leader's log first", async () => {
    const founder = await agent('founder')
    await founder.join({ voters: 3, standbys: 0 })
    const types = appliedTypes(founder)
    for (const name of ['r1', 'r2']) {
      const replica = await agent(name)
      await replica.join({ bootstrap: founder.multiaddrs() })
    }
    // Each replica: its configuration changes (added, promoted) and one entry for its session. Before, a
    // replica that had not applied the version entry yet opened and registered in two.
    expect(types.filter(type => type !== 'config' && type !== 'empty')).toEqual([
      'openSessionAndRegister',
      'openSessionAndRegister',
    ])
  })
})
