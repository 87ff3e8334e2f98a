/**
 * Readers: linearizable KV reads through the agents' real client path (`SimAgent.kv`, a ReadIndex barrier),
 * aimed where a read shortcut would go wrong, recorded in the run's KV history for the linearizability
 * checker. The other clients read from wherever they last got an answer; the holes these aim at open for a
 * few ms at one agent, which a client picked at random almost never hits:
 *
 * - a sole voter between its election and the commit of its first entry (`single-voter-read`): its commit
 *   index may lag a write the previous configuration committed and acknowledged. A reader calls the new
 *   leader the moment the simulator sees it lead a configuration of one voter, before its first Ready
 *   (`onLeader`, which the cluster calls after the event that elected it);
 * - a follower still following a deposed leader that it is cut off with while the majority elects another
 *   and writes (`read-ack-any-quorum`, the fault schedule's `isolateLeader` with a companion): the readers
 *   prefer such a stranded follower, else any follower, else any agent.
 *
 * Readers run only while the faults do (`issuing`); a read that gets no answer in time, or an error, is left
 * out of the history (a read has no effect). Their operations do not count for liveness.
 */

import type { KvOperation, KvOutput } from '../../src/check/index.ts'
import type { Config, NodeId } from '../../src/raft/types.ts'
import type { Cluster, SimNode } from './cluster.ts'
import type { Prng } from './prng.ts'
import type { Scheduler } from './scheduler.ts'

export interface ReadersEnv {
  readonly scheduler: Scheduler
  readonly cluster: Cluster
  readonly prng: Prng
  readonly keys: readonly string[]
  /** A strictly increasing timestamp (virtual µs) for history events. */
  stamp(): number
  /** A process id never used before in this run. */
  newProcessId(): number
  /** Records a read that got an answer in the run's KV history. */
  record(op: KvOperation): void
  /** Whether readers may start new reads now. */
  issuing(): boolean
  trace(line: string): void
}

/**
 * A read not answered within this many ms is left out and the reader moves on (the agent's call goes on and
 * ends unseen): one that lost its leader may hold a read for 500 ms before it asks again.
 */
const READ_TIMEOUT_MS = 40

/** A write not answered within this many ms has an unknown outcome. */
const WRITE_TIMEOUT_MS = 300

export interface ReaderStats {
  /** Writes at a sole voter (answered or not: all in the history). */
  writes: number
  /** Reads answered (in the history), of them at a sole voter just elected, and left out. */
  answered: number
  atNewSoleVoter: number
  atStrandedFollower: number
  leftOut: number
}

export class Readers {
  readonly stats: ReaderStats = {
    writes: 0,
    answered: 0,
    atNewSoleVoter: 0,
    atStrandedFollower: 0,
    leftOut: 0,
  }
  private readonly env: ReadersEnv
  private readonly count: number
  private readonly thinkMaxMs: number
  private stopped = false
  private writes = 0

  constructor(env: ReadersEnv) {
    this.env = env
    this.count = env.prng.between(1, 3)
    this.thinkMaxMs = env.prng.pick([1, 3, 8])
  }

  /** Starts the readers; chains onto the cluster's `onLeader` hook as it is now (the fault schedule's). */
  start(delayMs: number): void {
    const previous = this.env.cluster.hooks.onLeader
    this.env.cluster.hooks.onLeader = (node, term) => {
      previous?.(node, term)
      this.onLeader(node)
    }
    for (let i = 0; i < this.count; i++) this.env.scheduler.after(delayMs + i, () => this.loop())
  }

  abandon(): void {
    this.stopped = true
  }

  /** A new leader: if it is its configuration's only voter, read there at once, before its first Ready. */
  private onLeader(node: SimNode): void {
    if (this.stopped || !this.env.issuing()) return
    const voters = node.config()?.voters
    if (voters?.length !== 1 || voters[0] !== node.id) return
    this.stats.atNewSoleVoter++
    this.env.trace(`readers read every key at ${node.id}, sole voter just elected`)
    for (const key of this.env.keys) this.read(node.id, this.env.newProcessId(), key)
  }

  /**
   * One reader: a read at the aimed agent, a short pause, again. While one agent is the only voter, half its
   * operations are writes there, so that the sole voter has answered writes a read after its next election
   * must see.
   */
  private loop(processId = this.env.newProcessId()): void {
    if (this.stopped || !this.env.issuing()) return
    const next = (id: number) =>
      this.env.scheduler.after(this.env.prng.between(0, this.thinkMaxMs), () => this.loop(id))
    const sole = this.soleVoterLeader()
    if (sole !== undefined && this.env.prng.chance(0.5)) {
      this.write(sole, processId).then(known => next(known ? processId : this.env.newProcessId()))
      return
    }
    const target = this.aim()
    if (target === undefined) {
      next(processId)
      return
    }
    this.read(target, processId).then(() => next(processId))
  }

  /** A leader, up, that is its configuration's only voter. */
  private soleVoterLeader(): NodeId | undefined {
    const leader = this.env.cluster.leader()
    const voters = leader?.config()?.voters
    return leader && voters?.length === 1 && voters[0] === leader.id ? leader.id : undefined
  }

  /**
   * Puts a new value at `target`; resolves with whether the outcome is known (an answer). Without one (an
   * error, no answer in time) it is recorded as unknown and the reader goes on as a new process, as the
   * other clients do.
   */
  private write(target: NodeId, processId: number): Promise<boolean> {
    const env = this.env
    const key = env.prng.pick(env.keys)
    const input = { op: 'put', key, value: `r${++this.writes}` } as const
    const call = env.stamp()
    const node = env.cluster.node(target)
    return new Promise(resolve => {
      let done = false
      const finish = (output: KvOutput | undefined) => {
        if (done) return
        done = true
        this.stats.writes++
        env.record({
          clientId: processId,
          input,
          call,
          output,
          return: output === undefined ? Number.POSITIVE_INFINITY : env.stamp(),
        })
        resolve(output !== undefined)
      }
      env.scheduler.after(WRITE_TIMEOUT_MS, () => finish(undefined))
      let answer: Promise<KvOutput>
      try {
        answer = node.kv(input)
      } catch (error) {
        answer = Promise.reject(error)
      }
      answer.then(finish, () => finish(undefined))
    })
  }

  /** A follower still following a leader of an older term than the newest leader's; else a follower. */
  private aim(): NodeId | undefined {
    const up = this.env.cluster.nodes.filter(
      node => node.up && !node.decommissioned && isMember(node.config(), node.id),
    )
    if (up.length === 0) return undefined
    const newest = Math.max(...up.filter(node => node.role === 'leader').map(node => node.term), 0)
    const stranded = up.filter(node => node.role === 'follower' && node.leader !== '' && node.term < newest)
    if (stranded.length > 0) {
      this.stats.atStrandedFollower++
      return this.env.prng.pick(stranded).id
    }
    const followers = up.filter(node => node.role === 'follower')
    return this.env.prng.pick(followers.length > 0 ? followers : up).id
  }

  /** Reads a key at `target` now; resolves once answered, failed or given up. */
  private read(target: NodeId, processId: number, key = this.env.prng.pick(this.env.keys)): Promise<void> {
    const env = this.env
    const call = env.stamp()
    let node: SimNode
    try {
      node = env.cluster.node(target)
    } catch {
      return Promise.resolve()
    }
    return new Promise(resolve => {
      let done = false
      const finish = (op: KvOperation | undefined) => {
        if (done) return
        done = true
        if (op !== undefined) {
          this.stats.answered++
          env.record(op)
        } else {
          this.stats.leftOut++
        }
        resolve()
      }
      env.scheduler.after(READ_TIMEOUT_MS, () => finish(undefined))
      let answer: Promise<KvOutput>
      try {
        answer = node.kv({ op: 'get', key })
      } catch (error) {
        answer = Promise.reject(error)
      }
      answer.then(
        output =>
          finish({
            clientId: processId,
            input: { op: 'get', key },
            call,
            output,
            return: env.stamp(),
          }),
        () => finish(undefined),
      )
    })
  }
}

function isMember(config: Config | undefined, id: NodeId): boolean {
  return config !== undefined && (config.voters.includes(id) || config.nonVoters.includes(id))
}
