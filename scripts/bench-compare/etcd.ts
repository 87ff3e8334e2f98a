/**
 * A 3-member etcd cluster on loopback, each member its own `etcd` process with its own data directory and
 * etcd's default durability (the WAL is fsynced before a write is acknowledged). Members can be killed
 * with SIGKILL and restarted on their data, as the failover workload does to the leader.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { closeSync, mkdirSync, openSync } from 'node:fs'
import { join } from 'node:path'
import { freePorts } from './ports.ts'
import { reapOnExit } from './reaper.ts'

/** The `etcd --version` line, or undefined if etcd is not installed. */
export function etcdVersion(): string | undefined {
  const run = spawnSync('etcd', ['--version'], { encoding: 'utf8' })
  if (run.error !== undefined || run.status !== 0) return undefined
  return /etcd Version: (\S+)/.exec(run.stdout)?.[1] ?? 'unknown'
}

interface Member {
  name: string
  clientUrl: string
  args: string[]
  dataDir: string
  logPath: string
  process?: ChildProcess
  exit?: Promise<void>
}

export class EtcdCluster {
  private readonly members: Member[]

  private constructor(members: Member[]) {
    this.members = members
  }

  /**
   * Starts 3 members under `root` and waits until the cluster has a leader and every member is healthy.
   * `timing` overrides etcd's election timeout and heartbeat interval (defaults 1000 and 100 ms).
   */
  static async start(
    root: string,
    timing: { electionMs?: number; heartbeatMs?: number } = {},
  ): Promise<EtcdCluster> {
    const size = 3
    const ports = await freePorts(size * 2)
    const timingFlags = [
      ...(timing.electionMs === undefined ? [] : ['--election-timeout', String(timing.electionMs)]),
      ...(timing.heartbeatMs === undefined ? [] : ['--heartbeat-interval', String(timing.heartbeatMs)]),
    ]
    const token = `bench-${process.pid}-${Date.now()}`
    const peerUrl = (i: number): string => `http://127.0.0.1:${ports[size + i]}`
    const initialCluster = Array.from({ length: size }, (_, i) => `m${i}=${peerUrl(i)}`).join(',')
    const members = Array.from({ length: size }, (_, i): Member => {
      const name = `m${i}`
      const clientUrl = `http://127.0.0.1:${ports[i]}`
      const dataDir = join(root, name)
      return {
        name,
        clientUrl,
        dataDir,
        logPath: join(root, `${name}.log`),
        args: [
          ['--name', name],
          ['--data-dir', dataDir],
          ['--listen-client-urls', clientUrl],
          ['--advertise-client-urls', clientUrl],
          ['--listen-peer-urls', peerUrl(i)],
          ['--initial-advertise-peer-urls', peerUrl(i)],
          ['--initial-cluster', initialCluster],
          ['--initial-cluster-token', token],
          ['--initial-cluster-state', 'new'],
          ['--logger', 'zap'],
          ['--log-outputs', 'stderr'],
          timingFlags,
        ].flat(),
      }
    })
    mkdirSync(root, { recursive: true })
    const cluster = new EtcdCluster(members)
    for (let i = 0; i < size; i++) cluster.launch(i)
    await cluster.waitHealthy()
    return cluster
  }

  get endpoints(): string[] {
    return this.members.map(member => member.clientUrl)
  }

  /** The index of the member that leads, asked of the members themselves. */
  async leaderIndex(timeoutMs = 20_000): Promise<number> {
    const end = Date.now() + timeoutMs
    for (;;) {
      for (let i = 0; i < this.members.length; i++) {
        if (this.members[i].process === undefined) continue
        try {
          const status = (await post(this.members[i].clientUrl, '/v3/maintenance/status')) as {
            header?: { member_id?: string }
            leader?: string
          }
          if (status.leader !== undefined && status.leader === status.header?.member_id) return i
        } catch {}
      }
      if (Date.now() > end) throw new Error('etcd: no leader found')
      await sleep(50)
    }
  }

  /** SIGKILL: the member's process dies at once, as in a crash. */
  async kill(index: number): Promise<void> {
    const member = this.members[index]
    member.process?.kill('SIGKILL')
    await member.exit
  }

  /** Starts a killed member again on its data directory, and waits until the cluster is healthy. */
  async restart(index: number): Promise<void> {
    this.launch(index)
    await this.waitHealthy()
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.members.map(async member => {
        if (member.process === undefined) return
        const timer = setTimeout(() => member.process?.kill('SIGKILL'), 5000)
        member.process.kill('SIGTERM')
        await member.exit
        clearTimeout(timer)
      }),
    )
  }

  private launch(index: number): void {
    const member = this.members[index]
    const log = openSync(member.logPath, 'a')
    const child = spawn('etcd', member.args, { stdio: ['ignore', log, log] })
    closeSync(log)
    reapOnExit(child)
    member.process = child
    member.exit = new Promise(resolve => {
      child.once('exit', () => {
        if (member.process === child) member.process = undefined
        resolve()
      })
    })
  }

  /** Every running member answers /health with true (which needs a leader), within `timeoutMs`. */
  private async waitHealthy(timeoutMs = 30_000): Promise<void> {
    const end = Date.now() + timeoutMs
    for (;;) {
      const healthy = await Promise.all(
        this.members.map(async member => {
          try {
            const response = await fetch(`${member.clientUrl}/health`)
            return ((await response.json()) as { health?: string }).health === 'true'
          } catch {
            return false
          }
        }),
      )
      if (healthy.every(Boolean)) return
      if (Date.now() > end)
        throw new Error(`etcd: members not healthy in time (see ${this.members[0].logPath})`)
      await sleep(100)
    }
  }
}

async function post(baseUrl: string, path: string): Promise<unknown> {
  const response = await fetch(`${baseUrl}${path}`, { method: 'POST', body: '{}' })
  return response.json()
}

function sleep(ms: number): Promise<void> {
  return new Promise(resolve => setTimeout(resolve, ms))
}
