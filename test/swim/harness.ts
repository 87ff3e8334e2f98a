/**
 * A small deterministic cluster for unit tests of the SWIM core: millisecond steps, a fixed latency, every
 * member ticked when its deadline comes, gossip delivered to every other running member, and a `drop`
 * predicate to cut chosen messages. Logs every send, publish and event for assertions.
 */

import { Swim } from '../../src/swim/swim.ts'
import type { MemberEvent, SwimConfig, SwimMessage, SwimSend, Update } from '../../src/swim/types.ts'

/** mulberry32: a tiny seeded PRNG for the cores under test. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) | 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

export function localRecord(id: string) {
  return {
    id,
    name: id,
    addrs: [`/memory/${id}`],
    capabilities: ['run'],
    labels: {},
    role: 'nonvoter' as const,
    load: 0,
  }
}

export interface SentMessage {
  at: number
  from: string
  to: string
  message: SwimSend['message']
}

export interface Published {
  at: number
  from: string
  updates: Update[]
}

export interface ObservedEvent {
  observer: string
  event: MemberEvent
}

interface InFlight {
  at: number
  to: string
  from: string
  message: SwimMessage
}

export class TestCluster {
  readonly cores = new Map<string, Swim>()
  readonly sent: SentMessage[] = []
  readonly published: Published[] = []
  readonly events: ObservedEvent[] = []
  /** Members that no longer run: they neither tick nor receive. */
  readonly stopped = new Set<string>()
  latency = 1
  /** Return true to lose a message (direct, or one gossip delivery). */
  drop: (from: string, to: string, message: SwimMessage) => boolean = () => false
  /**
   * What the receiver takes of a message (as the agent's claim gate vets it before its core sees it); the
   * whole message by default. Undefined drops it.
   */
  vet: (from: string, to: string, message: SwimMessage) => SwimMessage | undefined = (_f, _t, message) =>
    message
  private clock = 0
  private inFlight: InFlight[] = []
  private readonly config: Partial<SwimConfig>
  private seed = 1

  constructor(config: Partial<SwimConfig> = {}) {
    this.config = config
  }

  get now(): number {
    return this.clock
  }

  /** Starts a member; it joins through `seeds` (none: it founds the cluster). */
  add(id: string, seeds: string[] = [], incarnation = 1, config: Partial<SwimConfig> = {}): Swim {
    const core = new Swim({
      self: localRecord(id),
      incarnation,
      now: this.clock,
      random: seededRandom(this.seed++),
      config: { ...this.config, ...config },
    })
    this.cores.set(id, core)
    this.stopped.delete(id)
    if (seeds.length > 0) core.join(seeds, this.clock)
    this.collect(id)
    return core
  }

  core(id: string): Swim {
    const core = this.cores.get(id)
    if (core === undefined) throw new Error(`no member ${id}`)
    return core
  }

  /** Calls `action` on a member's core, then routes what it produced. */
  act(id: string, action: (core: Swim, now: number) => void): void {
    action(this.core(id), this.clock)
    this.collect(id)
  }

  /** Runs `ms` milliseconds of virtual time. */
  run(ms: number): void {
    const end = this.clock + ms
    while (this.clock < end) {
      this.clock++
      const due = this.inFlight.filter(message => message.at <= this.clock)
      if (due.length > 0) this.inFlight = this.inFlight.filter(message => message.at > this.clock)
      for (const message of due) {
        if (this.stopped.has(message.to)) continue
        const core = this.cores.get(message.to)
        if (core === undefined) continue
        const taken = this.vet(message.from, message.to, message.message)
        if (taken !== undefined) core.receive(message.from, taken, this.clock)
        this.collect(message.to)
      }
      for (const [id, core] of this.cores) {
        if (this.stopped.has(id) || core.nextTickAt() > this.clock) continue
        core.tick(this.clock)
        this.collect(id)
      }
    }
  }

  /** Direct messages of `type` sent by `from` (optionally to `to`). */
  sends(type: SwimSend['message']['type'], from?: string, to?: string): SentMessage[] {
    return this.sent.filter(
      sent =>
        sent.message.type === type &&
        (from === undefined || sent.from === from) &&
        (to === undefined || sent.to === to),
    )
  }

  /** Events of `type` about `subject`, as seen by anyone but the subject. */
  eventsAbout(subject: string, type: MemberEvent['type']): ObservedEvent[] {
    return this.events.filter(
      observed =>
        observed.event.type === type && observed.event.member.id === subject && observed.observer !== subject,
    )
  }

  /** How `observer` sees `subject`. */
  statusOf(observer: string, subject: string): string | undefined {
    return this.core(observer).member(subject)?.status
  }

  private collect(id: string): void {
    const core = this.core(id)
    if (!core.hasReady()) return
    const ready = core.drain()
    for (const send of ready.sends) {
      this.sent.push({ at: this.clock, from: id, to: send.to, message: send.message })
      if (this.drop(id, send.to, send.message)) continue
      this.inFlight.push({ at: this.clock + this.latency, to: send.to, from: id, message: send.message })
    }
    if (ready.broadcasts.length > 0) {
      this.published.push({ at: this.clock, from: id, updates: ready.broadcasts })
      const message: SwimMessage = { type: 'gossip', updates: ready.broadcasts }
      for (const other of this.cores.keys()) {
        if (other === id || this.drop(id, other, message)) continue
        this.inFlight.push({ at: this.clock + this.latency, to: other, from: id, message })
      }
    }
    for (const event of ready.events) this.events.push({ observer: id, event })
  }
}
