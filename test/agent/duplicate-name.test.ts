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
  it('leaves no member behind: the leader lists it nowhere at once, a follower a heartbeat later', async () => {
    const first = await agent('worker')
    await first.join({})
    const other = await agent('other')
    await other.join({ bootstrap: first.multiaddrs() })
    const twin = await agent('worker')
    await expect(twin.join({ bootstrap: first.multiaddrs() })).rejects.toThrow(InvalidArgumentError)
    await expect(twin.join({ bootstrap: first.multiaddrs() })).rejects.toThrow(/name worker is held by/)
    // The leader, which carried out the removal, lists it nowhere as soon as join rejects; a follower once
    // the removal reaches it (a heartbeat later). Without the withdrawal it stayed ~13 s, until replaced.
    const listed = async (member: Agent) =>
      (await member.members()).map(info => `${info.name}/${info.status}`).sort()
    expect(first.isLeader()).toBe(true)
    expect(await listed(first)).toEqual(['other/alive', 'worker/alive'])
    const end = Date.now() + 1_000
    while ((await listed(other)).length !== 2 && Date.now() < end) await new Promise(r => setTimeout(r, 20))
    expect(await listed(other)).toEqual(['other/alive', 'worker/alive'])
    for (const member of [first, other]) {
      expect((await member.members()).map(info => info.id)).not.toContain(twin.id)
    }
    expect(twin.isLeader()).toBe(false)
    // The first agent of that name is untouched and the cluster goes on.
    await other.consensus.propose('after', 1)
    expect(await first.consensus.get('after')).toBe(1)
  })
})
