/**
 * The simulated network between Raft nodes: every message gets a random delay from the PRNG, and may be
 * dropped, duplicated or held back long enough to overtake later ones. Links can be cut one way or both
 * ways; a message is checked against the cuts when it arrives, so a partition also loses what was in flight.
 * Messages are copied on send: nothing the sender keeps aliases what the receiver gets.
 */

import type { Entry, Message, NodeId } from '../../src/raft/types.ts'
import type { Prng } from './prng.ts'
import type { Scheduler } from './scheduler.ts'

/** Probabilities and delays (virtual ms) applied to every message. */
export interface LinkFaults {
  dropRate: number
  duplicateRate: number
  minDelayMs: number
  maxDelayMs: number
  /** Chance that a message is held for up to `slowMaxDelayMs`, so later messages overtake it. */
  slowRate: number
  slowMaxDelayMs: number
  /** Chance that a message turns up very late (up to a second: long after its term may have ended). */
  lateRate?: number
}

/** Longest delay of a very late message, ms. */
export const LATE_MAX_DELAY_MS = 1000

/** A healthy network: a few ms of latency, a little reordering, nothing lost. */
export const CALM_LINKS: LinkFaults = {
  dropRate: 0,
  duplicateRate: 0,
  minDelayMs: 1,
  maxDelayMs: 6,
  slowRate: 0.01,
  slowMaxDelayMs: 20,
}

export interface NetworkStats {
  sent: number
  delivered: number
  dropped: number
  duplicated: number
  /** Lost to a cut link. */
  cut: number
}

export class Network {
  faults: LinkFaults = { ...CALM_LINKS }
  readonly stats: NetworkStats = { sent: 0, delivered: 0, dropped: 0, duplicated: 0, cut: 0 }
  /** Extra one-way latency for everything to or from a node (a slow or distant member). */
  readonly slowNodes = new Map<NodeId, number>()
  private readonly cuts = new Set<string>()
  private readonly scheduler: Scheduler
  private readonly prng: Prng
  private readonly deliver: (message: Message) => void

  constructor(scheduler: Scheduler, prng: Prng, deliver: (message: Message) => void) {
    this.scheduler = scheduler
    this.prng = prng
    this.deliver = deliver
  }

  send(message: Message): void {
    this.stats.sent++
    const faults = this.faults
    if (this.prng.chance(faults.dropRate)) {
      this.stats.dropped++
      return
    }
    this.schedule(copyMessage(message))
    if (this.prng.chance(faults.duplicateRate)) {
      this.stats.duplicated++
      this.schedule(copyMessage(message))
    }
  }

  isCut(from: NodeId, to: NodeId): boolean {
    return this.cuts.has(linkKey(from, to))
  }

  /** Cuts the link `from` -> `to` (one way). */
  cut(from: NodeId, to: NodeId): void {
    if (from !== to) this.cuts.add(linkKey(from, to))
  }

  /** Cuts every link between two groups, both ways. */
  partition(side: readonly NodeId[], otherSide: readonly NodeId[]): void {
    for (const a of side) {
      for (const b of otherSide) {
        this.cut(a, b)
        this.cut(b, a)
      }
    }
  }

  get hasCuts(): boolean {
    return this.cuts.size > 0
  }

  heal(): void {
    this.cuts.clear()
  }

  /**
   * Runs `arrive` after one trip over the link `from` -> `to` under the faults of the moment (drop, delay,
   * slow and late trips, slow nodes, the cuts as they are on arrival), drawing from `prng`. Never duplicated:
   * for traffic on request/response streams (the simulator's forwarded writes), kept out of the counters.
   */
  carry(from: NodeId, to: NodeId, prng: Prng, arrive: () => void, lost?: () => void): void {
    const delay = this.tripDelay(from, to, prng)
    if (prng.chance(this.faults.dropRate)) {
      if (lost) this.scheduler.after(delay, lost)
      return
    }
    this.scheduler.after(delay, () => {
      if (!this.isCut(from, to)) arrive()
      else lost?.()
    })
  }

  private tripDelay(from: NodeId, to: NodeId, prng: Prng): number {
    const faults = this.faults
    let delay = prng.between(faults.minDelayMs, faults.maxDelayMs)
    if (prng.chance(faults.slowRate)) delay += prng.between(0, faults.slowMaxDelayMs)
    if (faults.lateRate && prng.chance(faults.lateRate)) delay += prng.between(0, LATE_MAX_DELAY_MS)
    return delay + (this.slowNodes.get(from) ?? 0) + (this.slowNodes.get(to) ?? 0)
  }

  private schedule(message: Message): void {
    this.scheduler.after(this.tripDelay(message.from, message.to, this.prng), () => {
      if (this.isCut(message.from, message.to)) {
        this.stats.cut++
        return
      }
      this.stats.delivered++
      this.deliver(message)
    })
  }
}

function linkKey(from: NodeId, to: NodeId): string {
  return `${from}>${to}`
}

export function copyEntry(entry: Entry): Entry {
  return { term: entry.term, index: entry.index, type: entry.type, data: entry.data.slice() }
}

/** A deep copy, as if the message had been encoded and decoded. */
export function copyMessage(message: Message): Message {
  switch (message.type) {
    case 'append':
      return { ...message, entries: message.entries.map(copyEntry) }
    case 'snapshot':
      return {
        ...message,
        meta: {
          ...message.meta,
          config: { voters: [...message.meta.config.voters], nonVoters: [...message.meta.config.nonVoters] },
        },
        data: message.data.slice(),
      }
    default:
      return { ...message }
  }
}
