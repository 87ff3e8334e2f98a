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
    async txn([a, b], value) {
      const { succeeded } = await agent.consensus.transaction({
        compare: [
          { key: a, target: 'version', op: '>', value: 0 },
          { key: b, target: 'version', op: '>', value: 0 },
        ],
        success: [
          { type: 'put', key: a, value },
          { type: 'put', key: b, value },
        ],
      })
      return succeeded
    },
    async list(prefix) {
      // The bench lists 1,000 keys: one page (`list` returns up to 1,000 by default).
      const page = await agent.consensus.list(prefix, { limit: 1_000, consistency: 'linearizable' })
      if (page.more) throw new Error('more than one page under the prefix')
      return page.entries.length
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
    txn() {
      return Promise.reject(new Error('transactions run embedded only (--conclave-client embedded)'))
    },
    list() {
      return Promise.reject(new Error('lists run embedded only (--conclave-client embedded)'))
    },
  }
}
