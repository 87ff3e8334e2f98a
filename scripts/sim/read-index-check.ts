/**
 * Read-index safety, checked at the Raft layer: the read point a leader confirms for a linearizable read
 * (a `ReadState`'s index) is at least every index known committed anywhere when the read asked for it. A
 * read served from a state older than that could miss a write already acknowledged before the read began.
 *
 * The KV linearizability checker sees the same hole only where the agent serves the read from a state that
 * stops at the read point; the agent serves reads from its current state, often past it (a sole voter
 * applies its new term's first entries in the same turn of its event loop as it answers the read), which
 * hides a read point too low. Here the read point itself is checked, so `single-voter-read` and
 * `read-ack-any-quorum` show whenever a read meets them.
 *
 * "Known committed" is the simulator's omniscient highest commit index (`SafetyMonitor.commitIndex`, from
 * every agent's commit index as observed after each event): a correct leader's read point is never below
 * it (it holds every committed entry, and its read point covers an entry of its own term after them).
 */

import type { Cluster, SimNode } from './cluster.ts'
import { Violation } from './invariants.ts'

export class ReadIndexCheck {
  readonly stats = { asked: 0, answered: 0 }
  violation: Violation | undefined
  private readonly cluster: Cluster
  /** Reads waiting for their read point, by agent incarnation and context: the floor when they asked. */
  private readonly asked = new Map<string, { floor: number; at: number }>()

  constructor(cluster: Cluster) {
    this.cluster = cluster
    cluster.hooks.onReadAsked = (node, context) => this.onAsked(node, context)
    cluster.hooks.onReadAnswered = (node, context, index) => this.onAnswered(node, context, index)
  }

  private onAsked(node: SimNode, context: string): void {
    this.stats.asked++
    this.asked.set(key(node, context), {
      floor: this.cluster.monitor.commitIndex,
      at: this.cluster.scheduler.now,
    })
  }

  private onAnswered(node: SimNode, context: string, index: number): void {
    const read = this.asked.get(key(node, context))
    if (read === undefined) return
    this.asked.delete(key(node, context))
    this.stats.answered++
    if (index >= read.floor || this.violation !== undefined) return
    this.violation = new Violation(
      'read-index',
      this.cluster.scheduler.now,
      `${node.id} got read point ${index} for a read it asked for at t=${read.at}ms, when index ${read.floor} was already committed`,
    )
  }
}

function key(node: SimNode, context: string): string {
  return `${node.incarnation}/${context}`
}
