/**
 * A 3-agent conclave cluster for the comparison: 3 agent processes on loopback TCP, each with durable
 * storage in its own directory, default timing. Agents can be killed with SIGKILL and restarted on their
 * data (same port, same identity), as the failover workload does to the leader.
 */
import { join } from 'node:path'
import type { AgentOptions } from '../../src/index.ts'
import type { HostStatus } from '../agent-host.ts'
import { AgentHost } from '../lib/hosts.ts'
import type { BenchRequest, BenchTarget } from './protocol.ts'

export class ConclaveCluster {
  readonly hosts: AgentHost[]
  private readonly stderr: 'inherit' | 'ignore'

  private constructor(hosts: AgentHost[], stderr: 'inherit' | 'ignore') {
    this.hosts = hosts
    this.stderr = stderr
  }

  /** `taskSlots`: each agent's task slots (its `concurrency` option), as many as its worker runs at once. */
  static async start(
    root: string,
    taskSlots: number,
    stderr: 'inherit' | 'ignore',
  ): Promise<ConclaveCluster> {
    const hosts: AgentHost[] = []
    for (let i = 0; i < 3; i++) {
      const options: AgentOptions = {
        name: `cmp${i}`,
        dataDir: join(root, `cmp${i}`),
        concurrency: taskSlots,
      }
      hosts.push(await AgentHost.spawn(options, stderr))
    }
    const cluster = new ConclaveCluster(hosts, stderr)
    await hosts[0].request('join', {})
    for (const host of hosts.slice(1)) await host.request('join', { bootstrap: hosts[0].addrs, voters: 3 })
    await until(async () => ((await hosts[0].request('status', {})) as HostStatus).voters === 3)
    await cluster.leaderIndex()
    return cluster
  }

  /** The agent process as a bench target: requests run on its agent (the agent host's `bench` op). */
  target(index: number): BenchTarget {
    const host = this.hosts[index]
    return { bench: (request: BenchRequest) => host.request('bench', request) }
  }

  async leaderIndex(): Promise<number> {
    let found = -1
    await until(async () => {
      for (let i = 0; i < this.hosts.length; i++) {
        if (this.hosts[i].alive && ((await this.hosts[i].request('status', {})) as HostStatus).isLeader) {
          found = i
          return true
        }
      }
      return false
    })
    return found
  }

  async kill(index: number): Promise<void> {
    this.hosts[index].signal('SIGKILL')
    await this.hosts[index].exit
  }

  /** Starts a killed agent again on its data and port; waits until it knows a leader and can read through it. */
  async restart(index: number): Promise<void> {
    const before = this.hosts[index]
    const port = Number(before.addrs[0].split('/')[4])
    const host = await AgentHost.spawn(
      { ...before.options, listen: [`/ip4/127.0.0.1/tcp/${port}`] },
      this.stderr,
    )
    this.hosts[index] = host
    await until(async () => {
      const status = (await host.request('status', {})) as HostStatus
      if (status.leader === '') return false
      await host.request('get', { key: 'restart/probe', consistency: 'linearizable' })
      return true
    })
  }

  async stop(): Promise<void> {
    await Promise.all(this.hosts.map(host => host.stop()))
  }
}

async function until(check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs
  for (;;) {
    try {
      if (await check()) return
    } catch {}
    if (Date.now() > end) throw new Error('conclave: cluster not ready in time')
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}
