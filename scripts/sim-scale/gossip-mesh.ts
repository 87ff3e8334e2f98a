/**
 * Gossipsub dissemination, modelled as its mesh flood: every agent keeps `degree` mesh links on average
 * (random, symmetric, drawn once from the seed: gossipsub's D = 6 by default), and a publish travels hop by
 * hop along them: the publisher sends it to every mesh peer, and every agent that receives it for the first
 * time delivers it to its SWIM core and forwards it to every mesh peer but the one it came from (the seen
 * cache drops later copies). Each hop has the network's delay and loss and respects the cuts, so an agent
 * misses a publish only when every path to it lost it, and a partition stops it. Every copy sent is counted
 * at both ends (duplicates included): that is what gossipsub costs an agent per publish, about `degree`
 * copies in and out.
 *
 * Not modelled: gossipsub's control traffic (heartbeats every second, IHAVE/IWANT gossip to non-mesh peers,
 * GRAFT/PRUNE mesh repair, scores). The mesh does not repair itself around crashed agents either; with
 * degree 6 and a few crashes it stays connected.
 *
 * A flood is computed at publish time (earliest arrival by Dijkstra over the mesh with a drawn delay and
 * loss per link) and each agent's copy is delivered at its arrival time: the cuts are those of the publish
 * moment, a crash before arrival loses the copy.
 */

import type { Prng } from '../sim/prng.ts'

export interface MeshLinks {
  /** Per-link one-way delay, ms. */
  delay(prng: Prng): number
  lost(prng: Prng): boolean
  cut(from: number, to: number): boolean
  up(agent: number): boolean
}

export interface FloodResult {
  /** Recipients (not the publisher) with their arrival times. */
  arrivals: { agent: number; at: number }[]
  /** Copies each agent sent, and received (both by agent index). */
  sentBy: Map<number, number>
  receivedBy: Map<number, number>
}

export class GossipMesh {
  readonly neighbours: number[][]

  constructor(agents: number, degree: number, prng: Prng) {
    this.neighbours = Array.from({ length: agents }, () => [])
    const sets = Array.from({ length: agents }, () => new Set<number>())
    // Each agent grafts degree/2 links, which others graft back: the average degree is `degree`.
    const grafts = Math.min(agents - 1, Math.ceil(degree / 2))
    for (let a = 0; a < agents; a++) {
      let tries = 0
      while (sets[a].size < grafts && tries++ < 100) {
        const b = prng.int(agents)
        if (b === a || sets[a].has(b)) continue
        sets[a].add(b)
        sets[b].add(a)
      }
    }
    for (let a = 0; a < agents; a++) this.neighbours[a] = [...sets[a]].sort((x, y) => x - y)
  }

  /** The flood of one publish by `from` at `now`. */
  flood(from: number, now: number, links: MeshLinks, prng: Prng): FloodResult {
    const arrival = new Map<number, number>([[from, now]])
    const parent = new Map<number, number>()
    const done = new Set<number>()
    const sentBy = new Map<number, number>()
    const receivedBy = new Map<number, number>()
    const heap = new MinHeap()
    heap.push(now, from)
    while (heap.size > 0) {
      const [time, agent] = heap.pop()
      if (done.has(agent)) continue
      done.add(agent)
      if (agent !== from && !links.up(agent)) continue
      for (const next of this.neighbours[agent]) {
        if (next === parent.get(agent)) continue
        sentBy.set(agent, (sentBy.get(agent) ?? 0) + 1)
        if (links.lost(prng) || links.cut(agent, next)) continue
        const at = time + links.delay(prng)
        if (links.up(next)) receivedBy.set(next, (receivedBy.get(next) ?? 0) + 1)
        if (done.has(next)) continue
        const known = arrival.get(next)
        if (known === undefined || at < known) {
          arrival.set(next, at)
          parent.set(next, agent)
          heap.push(at, next)
        }
      }
    }
    const arrivals: { agent: number; at: number }[] = []
    for (const [agent, at] of arrival) if (agent !== from && links.up(agent)) arrivals.push({ agent, at })
    return { arrivals, sentBy, receivedBy }
  }
}

/** A binary heap of (time, agent), earliest first. */
class MinHeap {
  private readonly times: number[] = []
  private readonly agents: number[] = []

  get size(): number {
    return this.times.length
  }

  push(time: number, agent: number): void {
    const { times, agents } = this
    let i = times.length
    times.push(time)
    agents.push(agent)
    while (i > 0) {
      const p = (i - 1) >> 1
      if (times[p] <= time) break
      times[i] = times[p]
      agents[i] = agents[p]
      i = p
    }
    times[i] = time
    agents[i] = agent
  }

  pop(): [number, number] {
    const { times, agents } = this
    const top: [number, number] = [times[0], agents[0]]
    const lastTime = times.pop()!
    const lastAgent = agents.pop()!
    if (times.length > 0) {
      let i = 0
      for (;;) {
        const l = 2 * i + 1
        if (l >= times.length) break
        const r = l + 1
        const c = r < times.length && times[r] < times[l] ? r : l
        if (times[c] >= lastTime) break
        times[i] = times[c]
        agents[i] = agents[c]
        i = c
      }
      times[i] = lastTime
      agents[i] = lastAgent
    }
    return top
  }
}
