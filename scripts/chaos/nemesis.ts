/**
 * The nemesis: one fault at a time, drawn from a seed, held for a while and then undone, with a quiet
 * spell between two faults. The kinds come in shuffled rounds (each kind once per round). Half the faults
 * that hit one agent hit the leader: they are the ones that exercise failover.
 */
import type { Prng } from '../sim/prng.ts'
import type { Cluster, Cut } from './cluster.ts'
import type { History } from './history.ts'

export const FAULT_KINDS = ['kill', 'pause', 'isolate-leader', 'split', 'one-way'] as const
export type FaultKind = (typeof FAULT_KINDS)[number]

export interface NemesisOptions {
  kinds: readonly FaultKind[]
  /** How long a fault stays, ms: uniform in [min, max]. */
  faultMs: [number, number]
  /** Quiet time between two faults, ms. */
  quietMs: [number, number]
}

export const DEFAULT_NEMESIS: NemesisOptions = {
  kinds: FAULT_KINDS,
  faultMs: [1500, 5000],
  quietMs: [1500, 4000],
}

export class Nemesis {
  private readonly cluster: Cluster
  private readonly history: History
  private readonly rng: Prng
  private readonly options: NemesisOptions
  private readonly onFault?: (text: string) => void
  private stopping = false
  private round: FaultKind[] = []
  private wake?: () => void
  private loop?: Promise<void>
  /** Faults made, by kind. */
  readonly counts: Record<string, number> = {}

  constructor(
    cluster: Cluster,
    history: History,
    rng: Prng,
    options: Partial<NemesisOptions> = {},
    onFault?: (text: string) => void,
  ) {
    this.cluster = cluster
    this.history = history
    this.rng = rng
    this.options = { ...DEFAULT_NEMESIS, ...options }
    this.onFault = onFault
  }

  start(): void {
    this.loop = this.run()
  }

  /** Ends the fault in force at once and makes no more. */
  async stop(): Promise<void> {
    this.stopping = true
    this.wake?.()
    await this.loop
  }

  private async pauseFor([min, max]: [number, number]): Promise<void> {
    if (this.stopping) return
    await new Promise<void>(resolve => {
      const timer = setTimeout(resolve, this.rng.between(min, max))
      this.wake = () => {
        clearTimeout(timer)
        resolve()
      }
    })
    this.wake = undefined
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      await this.pauseFor(this.options.quietMs)
      if (this.stopping || this.options.kinds.length === 0) return
      const kind = this.nextKind()
      const leader = await this.cluster.leader().catch(() => undefined)
      const onLeader = leader !== undefined && this.rng.chance(0.5)
      const target = onLeader ? leader : this.rng.int(this.cluster.size)
      try {
        await this.fault(kind, target, leader)
      } catch (err) {
        this.onFault?.(`nemesis: ${kind} failed: ${(err as Error).message}`)
      }
    }
  }

  private async fault(kind: FaultKind, target: number, leader: number | undefined): Promise<void> {
    const { cluster } = this
    const name = (index: number): string => cluster.slots[index].name
    const record = {
      kind,
      description: '',
      start: this.history.clock.now(),
      end: undefined as number | undefined,
    }
    const begin = (description: string): void => {
      record.description = description
      this.history.faults.push(record)
      this.counts[kind] = (this.counts[kind] ?? 0) + 1
      this.onFault?.(description)
    }
    const end = (description: string): void => {
      record.end = this.history.clock.now()
      this.onFault?.(description)
    }
    switch (kind) {
      case 'kill': {
        if (cluster.slots[target].state !== 'up') return
        begin(`kill -9 ${name(target)}${target === leader ? ' (the leader)' : ''}`)
        await cluster.kill(target)
        await this.pauseFor(this.options.faultMs)
        await cluster.restart(target)
        end(`restarted ${name(target)}`)
        return
      }
      case 'pause': {
        if (cluster.slots[target].state !== 'up') return
        begin(`SIGSTOP ${name(target)}${target === leader ? ' (the leader)' : ''}`)
        cluster.pause(target)
        await this.pauseFor(this.options.faultMs)
        cluster.resume(target)
        end(`SIGCONT ${name(target)}`)
        return
      }
      case 'isolate-leader': {
        if (leader === undefined) return
        const others = this.others(leader)
        begin(`isolate the leader ${name(leader)}`)
        await cluster.setPartition(twoWay([leader], others))
        await this.pauseFor(this.options.faultMs)
        await cluster.heal()
        end('heal')
        return
      }
      case 'split': {
        const shuffled = this.rng.shuffled(cluster.slots.map(slot => slot.index))
        const minority = shuffled.slice(0, Math.floor(cluster.size / 2))
        const majority = shuffled.slice(minority.length)
        begin(`split ${minority.map(name).join(',')} | ${majority.map(name).join(',')}`)
        await cluster.setPartition(twoWay(minority, majority))
        await this.pauseFor(this.options.faultMs)
        await cluster.heal()
        end('heal')
        return
      }
      case 'one-way': {
        const others = this.rng.shuffled(this.others(target))
        const peers = others.slice(0, this.rng.between(1, others.length))
        // Either the target cannot send to the peers (a leader whose heartbeats are lost, say), or cannot
        // hear from them (a leader whose acknowledgements are lost, a follower that no longer hears it).
        const outbound = this.rng.chance(0.5)
        const cuts: Cut[] = peers.map(peer => (outbound ? [target, peer] : [peer, target]))
        const arrow = outbound
          ? `${name(target)} -/-> ${peers.map(name).join(',')}`
          : `${peers.map(name).join(',')} -/-> ${name(target)}`
        begin(`one-way ${arrow}${target === leader ? ' (the leader)' : ''}`)
        await cluster.setPartition(cuts)
        await this.pauseFor(this.options.faultMs)
        await cluster.heal()
        end('heal')
        return
      }
    }
  }

  /** Kinds come in shuffled rounds, so that a short run still sees every kind. */
  private nextKind(): FaultKind {
    if (this.round.length === 0) this.round = this.rng.shuffled(this.options.kinds)
    return this.round.pop() as FaultKind
  }

  private others(index: number): number[] {
    return this.cluster.slots.map(slot => slot.index).filter(other => other !== index)
  }
}

/** Both directions between every member of `a` and every member of `b`. */
export function twoWay(a: number[], b: number[]): Cut[] {
  return a.flatMap(x => b.flatMap(y => [[x, y] as const, [y, x] as const]))
}
