/**
 * A scripted membership fault on some seeds: the cluster shrinks to a single voter and grows back. One voter
 * at a time is removed through the leader of the moment; the last removal is the leader's own, so it hands
 * over to the one voter left (which may not know the latest commit index yet). The sole voter then crashes
 * and restarts (a commit index written lazily may be lost: it is elected again over a log whose commit it
 * has to find anew). The removed agents are not added back: a voter added late in the fault window was shut
 * down with the removed agents, leaving a voter set that could elect no one (2,000-seed sweep: seeds 511, 571,
 * 635 and more; the cause was `Cluster.decommissionRemoved` deciding while the sole voter was still booting,
 * since fixed). The run goes on with one voter, as on the fault schedule's seeds that shrink to one (the
 * fault schedule may still add voters back: `Nemesis.changeMembership`).
 *
 * This is where the single-voter read path must wait for a commit of its own term: the readers
 * (`read-clients.ts`) read at a sole voter the moment it is elected. The random membership changes of the
 * fault schedule (`faults.ts`) reach one voter only on a few seeds and rarely with a handover. The scenario
 * draws from its own stream, so the fault schedule's draws stay as they were.
 */

import type { NodeId } from '../../src/raft/types.ts'
import type { Cluster } from './cluster.ts'
import type { Prng } from './prng.ts'
import { MS_PER_TICK } from './scheduler.ts'

export interface ShrinkSetup {
  cluster: Cluster
  prng: Prng
  /** The fault window, virtual ms: the scenario begins and ends inside it. */
  startMs: number
  endMs: number
  trace: (line: string) => void
}

export interface ShrinkStats {
  /** Voters removed, times the cluster was down to one voter, restarts of the sole voter. */
  removed: number
  alone: number
  soleRestarts: number
}

const ticks = (n: number) => n * MS_PER_TICK

/** How often (ms) the scenario looks at the cluster and tries its next membership change. */
const STEP_MS = ticks(3)

export class ShrinkToOne {
  readonly stats: ShrinkStats = { removed: 0, alone: 0, soleRestarts: 0 }
  private readonly setup: ShrinkSetup
  private phase: 'shrink' | 'alone' = 'shrink'

  constructor(setup: ShrinkSetup) {
    this.setup = setup
  }

  /** Schedules the scenario, if the fault window is long enough for it. */
  start(): void {
    const { prng, startMs, endMs, cluster } = this.setup
    if (endMs - startMs < ticks(140)) return
    const at = prng.between(startMs + ticks(5), endMs - ticks(130))
    cluster.scheduler.at(at, () => this.step())
  }

  private step(): void {
    const { cluster, endMs, trace } = this.setup
    // No change is begun in the last ticks of the fault window.
    if (this.phase !== 'shrink' || cluster.scheduler.now >= endMs - ticks(40)) return
    const leader = cluster.leader()
    const voters = leader?.config()?.voters
    if (leader && voters?.includes(leader.id)) {
      if (voters.length === 1) {
        this.alone(leader.id)
        return
      }
      // The leader's own removal last: it then hands over to the one voter left.
      const others = voters.filter(id => id !== leader.id)
      const node = voters.length === 2 ? leader.id : this.setup.prng.pick(others)
      if (leader.changeConfig({ type: 'removeVoter', node })) {
        this.stats.removed++
        trace(`shrink-to-one: ${node} removed via ${leader.id} (${voters.length - 1} voters left)`)
      }
    }
    cluster.scheduler.after(STEP_MS, () => this.step())
  }

  /** Down to one voter: crash and restart it (while a commit index it wrote is unsynced, if that comes). */
  private alone(id: NodeId): void {
    const { cluster, prng, trace } = this.setup
    this.phase = 'alone'
    this.stats.alone++
    trace(`shrink-to-one: ${id} is the only voter`)
    const node = cluster.node(id)
    // The crash comes while a commit index it wrote is not synced yet, if that happens within a few ticks
    // (the sole voter answered writes the restarted one must not read behind): polled each ms.
    const crashBy = cluster.scheduler.now + prng.between(ticks(5), ticks(20))
    const crash = () => {
      if (!node.up || this.phase !== 'alone') return
      const unsynced = node.disk.commit > node.disk.durable.hardState.commit
      if (!unsynced && cluster.scheduler.now < crashBy) {
        cluster.scheduler.after(1, crash)
        return
      }
      cluster.crash(node)
      this.stats.soleRestarts++
      cluster.scheduler.after(prng.between(ticks(1), ticks(8)), () => cluster.restart(node))
    }
    cluster.scheduler.after(ticks(3), crash)
  }
}
