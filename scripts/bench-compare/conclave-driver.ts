/**
 * The conclave side of the key-value workloads: either an agent in this very process (what an application
 * embedding conclave runs), or an agent in another process reached by the agent host's IPC requests.
 */
import type { Agent } from '../../src/index.ts'
import type { AgentHost } from '../lib/hosts.ts'
import type { KvDriver } from './workloads.ts'

/** Drives the agent running in this process. */
export function agentDriver(agent: Agent): KvDriver {
  return {
    async put(key, value) {
      await agent.consensus.propose(key, value)
    },
    get(key) {
      return agent.consensus.get(key, { consistency: 'linearizable' })
    },
    async lock(key, ttlMs) {
      const lock = await agent.locks.acquire(key, ttlMs)
      return () => lock.release()
    },
  }
}

/** Drives an agent in another process, one IPC round trip per call. */
export function hostDriver(host: AgentHost): KvDriver {
  return {
    async put(key, value) {
      await host.request('propose', { key, value })
    },
    get(key) {
      return host.request('get', { key, consistency: 'linearizable' })
    },
    async lock(key, ttlMs) {
      const { handle } = (await host.request('acquire', { key, ttl: ttlMs })) as { handle: number }
      return async () => {
        await host.request('release', { handle })
      }
    },
  }
}
