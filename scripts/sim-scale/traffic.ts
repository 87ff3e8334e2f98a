/**
 * Who sent and received what, by kind, in the measured windows of a scale run. Every message of the run is
 * booked here once at its sender (`out`) and once at its receiver when it arrives (`in`), with the bytes its
 * real encoding takes (the Raft codec, the SWIM codec, the JSON of the admin and client protocols).
 */

/** The kinds of traffic the report splits. */
export const TRAFFIC_KINDS = ['raft', 'keepAlive', 'feed', 'forward', 'swim'] as const
export type TrafficKind = (typeof TRAFFIC_KINDS)[number]

export interface Tally {
  messages: number
  bytes: number
}

/** One agent's messages in and out, by kind. */
export type AgentTraffic = Record<TrafficKind, { in: Tally; out: Tally }>

function emptyAgent(): AgentTraffic {
  const agent = {} as AgentTraffic
  for (const kind of TRAFFIC_KINDS)
    agent[kind] = { in: { messages: 0, bytes: 0 }, out: { messages: 0, bytes: 0 } }
  return agent
}

/** A window of virtual time [from, to) over which traffic is counted. */
export interface Window {
  name: string
  from: number
  to: number
}

export class Traffic {
  private readonly windows: Window[]
  private readonly now: () => number
  /** By window name, then by agent id. */
  private readonly counts = new Map<string, Map<string, AgentTraffic>>()

  constructor(windows: Window[], now: () => number) {
    this.windows = windows
    this.now = now
    for (const window of windows) this.counts.set(window.name, new Map())
  }

  /** `count` messages of `bytes` each, leaving `agent` (`out`) or arriving at it (`in`). */
  book(agent: string, kind: TrafficKind, direction: 'in' | 'out', bytes: number, count = 1): void {
    const now = this.now()
    for (const window of this.windows) {
      if (now < window.from || now >= window.to) continue
      const byAgent = this.counts.get(window.name)!
      let traffic = byAgent.get(agent)
      if (traffic === undefined) {
        traffic = emptyAgent()
        byAgent.set(agent, traffic)
      }
      const tally = traffic[kind][direction]
      tally.messages += count
      tally.bytes += bytes * count
    }
  }

  /** `agent`'s traffic in the window named (zeros if it had none). */
  of(window: string, agent: string): AgentTraffic {
    return this.counts.get(window)?.get(agent) ?? emptyAgent()
  }

  window(name: string): Window {
    const window = this.windows.find(w => w.name === name)
    if (window === undefined) throw new Error(`no window ${name}`)
    return window
  }
}

/** Messages in plus out of one kind (or of all kinds). */
export function total(traffic: AgentTraffic, kind?: TrafficKind, field: keyof Tally = 'messages'): number {
  const kinds = kind === undefined ? TRAFFIC_KINDS : [kind]
  let sum = 0
  for (const k of kinds) sum += traffic[k].in[field] + traffic[k].out[field]
  return sum
}
