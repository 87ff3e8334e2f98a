import { afterEach, describe, expect, it } from 'vitest'
import type { Agent } from '../../src/index.ts'
import { createAgent, InvalidArgumentError } from '../../src/index.ts'

const agents: Agent[] = []

afterEach(async () => {
  await Promise.all(agents.splice(0).map(agent => agent.stop()))
})

async function agent(name: string): Promise<Agent> {
  const created = await createAgent({ name, transport: 'tcp' })
  agents.push(created)
  return created
}

describe('a join refused for a taken name', () => {
  it('leaves no member behind: the others list the agent nowhere, at once', async () => {
    const first = await agent('worker')
    await first.join({})
    const other = await agent('other')
    await other.join({ bootstrap: first.multiaddrs() })
    const twin = await agent('worker')
    await expect(twin.join({ bootstrap: first.multiaddrs() })).rejects.toThrow(InvalidArgumentError)
    await expect(twin.join({ bootstrap: first.multiaddrs() })).rejects.toThrow(/name worker is held by/)
    // Checked as soon as join rejects (the leader would replace a silent member only after ~13 s).
    for (const member of [first, other]) {
      const listed = (await member.members()).map(info => `${info.name}/${info.status}`)
      expect(listed.sort()).toEqual(['other/alive', 'worker/alive'])
      expect((await member.members()).map(info => info.id)).not.toContain(twin.id)
    }
    expect(twin.isLeader()).toBe(false)
    // The first agent of that name is untouched and the cluster goes on.
    await other.consensus.propose('after', 1)
    expect(await first.consensus.get('after')).toBe(1)
  })
})
