/**
 * Members at scale (issue 16), in this process over the memory transport: what keeps every view converged
 * when agents are many and some stall.
 */
import type { Libp2p } from '@libp2p/interface'
import { afterEach, describe, expect, it } from 'vitest'
import type { Membership } from '../../src/agent/cluster/membership.ts'
import type { ConclaveService } from '../../src/agent/service.ts'
import type { Agent, AgentOptions } from '../../src/index.ts'
import { createAgent } from '../../src/index.ts'

const agents: Agent[] = []

afterEach(async () => {
  await Promise.all(agents.splice(0).map(agent => agent.stop().catch(() => {})))
})

const FAST: AgentOptions = { transport: 'memory', tickMs: 20, sessionTtlMs: 5_000 }

async function agent(name: string, options: AgentOptions = {}): Promise<Agent> {
  const created = await createAgent({ ...FAST, name, ...options })
  agents.push(created)
  return created
}

function membershipOf(agent: Agent): Membership {
  return (agent.libp2p as Libp2p<{ conclave: ConclaveService }>).services.conclave.membership
}

async function until(check: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`${what} not met in ${ms} ms`)
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}

/** Every agent's view holds every one of `group` alive. */
async function converged(group: Agent[]): Promise<boolean> {
  for (const member of group) {
    const view = await member.members()
    if (!group.every(other => view.find(info => info.id === other.id)?.status === 'alive')) return false
  }
  return true
}

/**
 * The SWIM side of a stall (a process the OS did not run, a long GC pause): `agent`'s membership neither
 * ticks nor hears anything until the returned function resumes it; what is sent to it meanwhile is lost,
 * as when the stall outlasts its connections.
 */
function stallMembership(agent: Agent): () => void {
  const shell = membershipOf(agent) as unknown as {
    tick(): void
    receive(...args: unknown[]): void
    refresh(): void
  }
  const { tick, receive, refresh } = shell
  shell.tick = () => {}
  shell.receive = () => {}
  shell.refresh = () => {}
  return () => {
    shell.tick = tick
    shell.receive = receive
    shell.refresh = refresh
    shell.tick()
  }
}

describe('members at scale: views converge', () => {
  it('a member declared dead while it stalled is alive again in every view soon after it resumes', async () => {
    // Push-pull every 10 minutes: the repair must not wait for a random full sync to pick the member.
    const options: AgentOptions = { membership: { pushPullInterval: 600_000 } }
    const founder = await agent('v0', options)
    await founder.join({ voters: 3 })
    const group = [founder]
    for (let i = 1; i < 8; i++) {
      const joiner = await agent(`v${i}`, options)
      await joiner.join({ bootstrap: founder.multiaddrs() })
      group.push(joiner)
    }
    await until(() => converged(group), 30_000, 'eight views converged')
    const stalled = group.at(-1)!
    const others = group.slice(0, -1)
    const resume = stallMembership(stalled)
    await until(
      async () => {
        for (const other of others) {
          const entry = (await other.members()).find(info => info.id === stalled.id)
          if (entry?.status !== 'dead') return false
        }
        return true
      },
      30_000,
      'the stalled member dead in every other view',
    )
    resume()
    // Well within the push-pull interval: the first view that hears from it tells it.
    await until(() => converged(group), 10_000, 'views converged again')
    expect(await converged(group)).toBe(true)
  }, 120_000)
})
