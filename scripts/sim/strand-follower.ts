/**
 * A scripted partition on some seeds of five voters or more: the leader and one follower that follows it are
 * cut off together from the rest, for long enough that the majority elects another leader and commits, then
 * the links heal. The follower keeps following the old leader in the old term (until check-quorum, if on,
 * deposes it): the case a read shortcut must not mistake for a quorum (`read-ack-any-quorum`), and where the
 * readers (`read-clients.ts`) aim. The fault schedule's `isolateLeader` does the same now and then; this
 * does it once on every seed that draws it, from its own stream, so the fault schedule's draws stay as they
 * were.
 */

import type { Cluster } from './cluster.ts'
import type { Prng } from './prng.ts'
import { MS_PER_TICK } from './scheduler.ts'

export interface StrandSetup {
  cluster: Cluster
  prng: Prng
  /** The fault window, virtual ms: the partition begins and heals inside it. */
  startMs: number
  endMs: number
  trace: (line: string) => void
}

const ticks = (n: number) => n * MS_PER_TICK

export class StrandFollower {
  /** Partitions made (0 or 1). */
  stranded = 0
  private readonly setup: StrandSetup

  constructor(setup: StrandSetup) {
    this.setup = setup
  }

  /** Schedules the partition: tried every few ticks from a random time until a leader with a follower is found. */
  start(): void {
    const { prng, startMs, endMs, cluster } = this.setup
    if (endMs - startMs < ticks(100)) return
    const at = prng.between(startMs + ticks(5), endMs - ticks(90))
    cluster.scheduler.at(at, () => this.attempt())
  }

  private attempt(): void {
    const { cluster, prng, endMs, trace } = this.setup
    if (cluster.scheduler.now >= endMs - ticks(80)) return
    const leader = cluster.leader()
    const voters = leader?.config()?.voters ?? []
    const followers =
      leader === undefined
        ? []
        : voters.filter(id => {
            const node = cluster.node(id)
            return id !== leader.id && node.up && node.leader === leader.id && node.term === leader.term
          })
    if (leader === undefined || voters.length < 5 || followers.length === 0) {
      cluster.scheduler.after(ticks(3), () => this.attempt())
      return
    }
    const companion = prng.pick(followers)
    const side = [leader.id, companion]
    const others = cluster.ids.filter(id => !side.includes(id))
    cluster.network.partition(side, others)
    this.stranded++
    trace(`strand-follower: ${leader.id} (leader of term ${leader.term}) cut off with ${companion}`)
    const healAt = cluster.scheduler.now + prng.between(ticks(40), ticks(70))
    // The fault schedule heals every link now and then: the cut is made again until its time is up.
    const hold = () => {
      if (cluster.scheduler.now >= healAt) {
        cluster.network.heal()
        trace('strand-follower: links healed')
        return
      }
      if (!cluster.network.isCut(leader.id, others[0])) cluster.network.partition(side, others)
      cluster.scheduler.after(ticks(1), hold)
    }
    cluster.scheduler.after(ticks(1), hold)
  }
}
