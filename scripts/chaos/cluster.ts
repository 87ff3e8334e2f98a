/**
 * A cluster of agents as real processes on loopback TCP with durable state, and the faults a test can put
 * on it: kill -9 and restart on the same port and data directory, SIGSTOP/SIGCONT, and partitions set in
 * each agent's fault layer (`fault-layer.ts`). The parent of the chaos suite and of the simulation.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { AgentOptions } from '../../src/index.ts'
import type { HostOptions, HostRequest, HostStatus } from '../agent-host.ts'
import { AgentHost, HostError } from '../lib/hosts.ts'
import type { FaultRules } from './fault-layer.ts'
import type { AgentView, ChaosRequest } from './host-ops.ts'

export interface ClusterOptions {
  agents: number
  /** Target size of the Raft voter set (odd). */
  voters: number
  /** Options every agent gets (timing). */
  agentOptions?: Partial<AgentOptions>
  /** Per-agent capabilities. */
  capabilities?: (index: number) => string[]
  /** Per-agent options on top of `agentOptions` (task slots, say; the host's `clock`). */
  perAgent?: (index: number) => Partial<HostOptions>
  /** Name prefix of the agents. Default `agent`. */
  prefix?: string
  /** Where the data directories go; default a new temporary directory, removed by `destroy()`. */
  dataRoot?: string
  /** The agents' stderr: `ignore` keeps a live view clean. */
  stderr?: 'inherit' | 'ignore'
}

type Op = HostRequest['op']
type ArgsOf<O extends Op> = Extract<HostRequest, { op: O }>['args']

/** Where one agent stands as far as the harness made it so. */
export type SlotState = 'up' | 'paused' | 'killed'

export class AgentSlot {
  readonly index: number
  readonly name: string
  readonly options: HostOptions
  id = ''
  port = 0
  host?: AgentHost
  state: SlotState = 'up'
  /** Bumped at every start: event cursors and workers belong to one incarnation of the process. */
  generation = 0
  restarts = 0

  constructor(index: number, name: string, options: HostOptions) {
    this.index = index
    this.name = name
    this.options = options
  }

  /** Up and not paused: a request can be answered. */
  get responsive(): boolean {
    return this.state === 'up' && this.host?.alive === true
  }
}

/** A directed cut: agent `from` cannot send to agent `to`. Two-way partitions list both directions. */
export type Cut = readonly [from: number, to: number]

/** Every process any cluster of this process started: killed on exit, Ctrl-C or a crash. */
const everyHost = new Set<AgentHost>()
/** Temporary data directories of clusters not destroyed yet: removed on the way out too. */
const everyDataRoot = new Set<string>()

/**
 * Kills every agent process this process started when it exits, is interrupted or terminated, and removes
 * their temporary data. Scripts call it once; SIGKILL also ends a stopped (SIGSTOP) child, which a polite
 * stop could not.
 */
export function killChildrenOnExit(onSignal?: () => void): void {
  const killAll = (): void => {
    for (const host of everyHost) {
      const pid = host.pid
      if (pid === undefined || !host.alive) continue
      try {
        process.kill(pid, 'SIGKILL')
      } catch {}
    }
    for (const dataRoot of everyDataRoot) rmSync(dataRoot, { recursive: true, force: true })
  }
  process.on('exit', killAll)
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      killAll()
      onSignal?.()
      process.exit(signal === 'SIGINT' ? 130 : 143)
    })
  }
}

export class Cluster {
  readonly slots: AgentSlot[]
  readonly dataRoot: string
  private readonly ownsDataRoot: boolean
  private readonly stderr: 'inherit' | 'ignore'
  private readonly voters: number
  private cuts: Cut[] = []

  private constructor(options: ClusterOptions) {
    this.ownsDataRoot = options.dataRoot === undefined
    this.dataRoot = options.dataRoot ?? mkdtempSync(join(tmpdir(), 'conclave-chaos-'))
    if (this.ownsDataRoot) everyDataRoot.add(this.dataRoot)
    this.stderr = options.stderr ?? 'inherit'
    this.voters = options.voters
    const prefix = options.prefix ?? 'agent'
    this.slots = Array.from({ length: options.agents }, (_, index) => {
      const name = `${prefix}${index}`
      return new AgentSlot(index, name, {
        ...options.agentOptions,
        ...options.perAgent?.(index),
        name,
        dataDir: join(this.dataRoot, name),
        capabilities: options.capabilities?.(index) ?? [],
      })
    })
  }

  /**
   * Starts the agents and forms the cluster: the first founds it (and leads at once), then the others start
   * and join through it. `onFounded` runs as soon as the first agent leads.
   */
  static async start(options: ClusterOptions, onFounded?: () => void): Promise<Cluster> {
    const cluster = new Cluster(options)
    try {
      const [first, ...rest] = cluster.slots
      // The first alone: on a busy machine, starting all at once would delay the first leader.
      await cluster.spawn(first, 0)
      // The founder's `voters` is the one that counts: the leader keeps the voter set at its own target.
      await first.host?.request('join', { voters: options.voters })
      onFounded?.()
      await Promise.all(rest.map(slot => cluster.spawn(slot, 0)))
      for (const slot of rest) {
        await slot.host?.request('join', { bootstrap: first.host?.addrs ?? [], voters: options.voters })
      }
      return cluster
    } catch (err) {
      await cluster.destroy()
      throw err
    }
  }

  get size(): number {
    return this.slots.length
  }

  /** A request with a deadline on this side too: a paused agent answers only once it runs again. */
  async request<O extends Op>(index: number, op: O, args: ArgsOf<O>, timeoutMs: number): Promise<unknown> {
    const host = this.slots[index].host
    if (host === undefined || !host.alive) throw new HostError('HostExited', 'agent process is not running')
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new HostError('Timeout', `no answer in ${timeoutMs} ms`)), timeoutMs)
    })
    try {
      // The same type as AgentHost's own (TypeScript does not relate the two generic aliases).
      return await Promise.race([host.request(op, args as never), timeout])
    } finally {
      clearTimeout(timer)
    }
  }

  /** A chaos request (`host-ops.ts`), waited for at most `timeoutMs` here. */
  chaos(index: number, request: ChaosRequest, timeoutMs = 5000): Promise<unknown> {
    return this.request(index, 'chaos', request, timeoutMs)
  }

  async status(index: number, timeoutMs = 2000): Promise<HostStatus> {
    return (await this.request(index, 'status', {}, timeoutMs)) as HostStatus
  }

  async view(index: number, timeoutMs = 2000): Promise<AgentView> {
    return (await this.chaos(index, { op: 'view' }, timeoutMs)) as AgentView
  }

  /** kill -9: no chance to flush or say goodbye. */
  async kill(index: number): Promise<void> {
    const slot = this.slots[index]
    const host = slot.host
    if (host === undefined || !host.alive) return
    host.signal('SIGKILL')
    slot.state = 'killed'
    await host.exit
  }

  /** Starts a killed agent again on the same port and data directory, under the current partition. */
  async restart(index: number): Promise<void> {
    const slot = this.slots[index]
    if (slot.host?.alive) return
    await this.spawn(slot, slot.port)
    slot.restarts++
    await this.chaos(index, { op: 'faults', ...this.rulesOf(index) })
    await this.afterRestart?.(index)
  }

  /** What a restarted agent needs again (its worker, its watch): the process forgot all of it. */
  afterRestart?: (index: number) => Promise<void>

  pause(index: number): void {
    const slot = this.slots[index]
    if (slot.state !== 'up' || slot.host === undefined) return
    slot.host.signal('SIGSTOP')
    slot.state = 'paused'
  }

  resume(index: number): void {
    const slot = this.slots[index]
    if (slot.state !== 'paused' || slot.host === undefined) return
    slot.host.signal('SIGCONT')
    slot.state = 'up'
  }

  /** The cuts in force. */
  get partition(): readonly Cut[] {
    return this.cuts
  }

  /**
   * Puts `cuts` in force (replacing the previous ones) on every running agent. A paused agent takes its
   * rules when it runs again; its peers cut it off meanwhile, so the partition holds from both sides.
   */
  async setPartition(cuts: Cut[]): Promise<void> {
    this.cuts = cuts
    await Promise.all(
      this.slots.map(async slot => {
        if (slot.host?.alive !== true) return
        await this.chaos(slot.index, { op: 'faults', ...this.rulesOf(slot.index) }, 30_000).catch(() => {})
      }),
    )
  }

  heal(): Promise<void> {
    return this.setPartition([])
  }

  /** Agent `index`'s fault rules under the current cuts. */
  rulesOf(index: number): FaultRules {
    return faultRules(this.cuts, index, peer => this.slots[peer].id)
  }

  /** The agent that leads, by its own word, among the responsive ones; undefined if none does now. */
  async leader(timeoutMs = 2000): Promise<number | undefined> {
    const answers = await Promise.all(
      this.slots.map(slot =>
        slot.responsive ? this.status(slot.index, timeoutMs).catch(() => undefined) : undefined,
      ),
    )
    // Two agents may both believe they lead for a moment (an old leader not yet told): the higher term wins.
    let best: { index: number; term: number } | undefined
    answers.forEach((status, index) => {
      if (status?.isLeader && (best === undefined || status.term > best.term))
        best = { index, term: status.term }
    })
    return best?.index
  }

  /** Waits until some agent leads (and, if given, `accept` likes it). */
  async waitForLeader(timeoutMs: number, accept?: (index: number) => boolean): Promise<number> {
    const end = performance.now() + timeoutMs
    for (;;) {
      const leader = await this.leader()
      if (leader !== undefined && (accept === undefined || accept(leader))) return leader
      if (performance.now() > end) throw new Error(`no leader within ${timeoutMs} ms`)
      await sleep(100)
    }
  }

  /** Waits until the voter set has its target size, as the leader sees it. */
  async waitForVoters(timeoutMs: number): Promise<void> {
    const end = performance.now() + timeoutMs
    for (;;) {
      const leader = await this.leader()
      if (leader !== undefined) {
        const status = await this.status(leader).catch(() => undefined)
        if (status !== undefined && status.voters >= Math.min(this.voters, this.size)) return
      }
      if (performance.now() > end) throw new Error(`the voter set did not fill within ${timeoutMs} ms`)
      await sleep(100)
    }
  }

  /** Undoes every fault: resumes the paused, heals the partition, restarts the killed. */
  async recoverAll(): Promise<void> {
    for (const slot of this.slots) if (slot.state === 'paused') this.resume(slot.index)
    await this.heal()
    for (const slot of this.slots) if (slot.state === 'killed') await this.restart(slot.index)
  }

  /** Stops every agent (SIGKILL for those that do not stop in time) and removes the data it created. */
  async destroy(): Promise<void> {
    for (const slot of this.slots) {
      if (slot.state === 'paused') slot.host?.signal('SIGCONT')
    }
    await Promise.all(
      this.slots.map(async slot => {
        const host = slot.host
        if (host === undefined) return
        await host.stop().catch(() => host.signal('SIGKILL'))
        everyHost.delete(host)
      }),
    )
    if (this.ownsDataRoot) {
      rmSync(this.dataRoot, { recursive: true, force: true })
      everyDataRoot.delete(this.dataRoot)
    }
  }

  private async spawn(slot: AgentSlot, port: number): Promise<void> {
    const host = await AgentHost.spawn(
      { ...slot.options, listen: [`/ip4/127.0.0.1/tcp/${port}`] },
      this.stderr,
    )
    everyHost.add(host)
    host.exit.then(() => everyHost.delete(host))
    slot.host = host
    slot.id = host.id
    slot.port = Number(host.addrs[0]?.split('/')[4] ?? 0)
    slot.state = 'up'
    slot.generation++
  }
}

/**
 * The fault rules agent `index` needs for `cuts`: a peer cut both ways is denied (no connection at all), a
 * peer only this agent may not send to is dropped outbound. A cut only the peer makes needs nothing here:
 * the peer drops its own side.
 */
export function faultRules(cuts: readonly Cut[], index: number, idOf: (peer: number) => string): FaultRules {
  const outbound = new Set(cuts.filter(([from]) => from === index).map(([, to]) => to))
  const inbound = new Set(cuts.filter(([, to]) => to === index).map(([from]) => from))
  const deny: string[] = []
  const dropOutbound: string[] = []
  for (const peer of outbound) {
    if (inbound.has(peer)) deny.push(idOf(peer))
    else dropOutbound.push(idOf(peer))
  }
  return { deny, dropOutbound }
}

export function sleep(ms: number): Promise<void> {
  return new Promise(resolve => setTimeout(resolve, ms))
}
