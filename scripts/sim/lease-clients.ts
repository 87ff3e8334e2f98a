/**
 * Lease users: the lock API at the edge of its leases. Where the lock users (`lock-clients.ts`) hold a long
 * lease and look now and then, these take short leases on their own key (`M`), look at `isHeld()` every few
 * ms for as long as they keep the lock, sometimes let it run out rather than release it, and try again every
 * 10..50 ms while another holds it. So a grant that comes early, while a holder's local lease still runs (an
 * entry stamped by a leader whose wall clock is ahead ending the lease inline: `lease-inline-expiry`), finds
 * a holder that looks inside the window. Checked by the same rules as the lock users (`LockChecker`):
 * `isHeld()` is never true once a later grant was answered; tokens are never granted twice.
 */

import type { Lock } from '../../src/api.ts'
import type { NodeId } from '../../src/raft/types.ts'
import type { SimAgent } from './agent.ts'
import { LockChecker } from './lock-clients.ts'
import type { Prng } from './prng.ts'
import type { Scheduler } from './scheduler.ts'

export const LEASE_KEY = 'M'

export interface LeaseUserEnv {
  readonly scheduler: Scheduler
  readonly prng: Prng
  readonly checker: LockChecker
  node(id: NodeId): SimAgent
  readonly nodeIds: readonly NodeId[]
  issuing(): boolean
  trace(line: string): void
}

export class LeaseUser {
  readonly name: string
  private readonly env: LeaseUserEnv
  private target: NodeId
  /** Bumped by `abandon` and by each attempt: a late answer is then ignored. */
  private round = 0
  /** The incarnation of the agent the current call went through (a crash drops the call: start over). */
  private epoch = -1

  constructor(name: string, env: LeaseUserEnv) {
    this.name = name
    this.env = env
    this.target = env.prng.pick(env.nodeIds)
  }

  start(delayMs: number): void {
    this.env.scheduler.after(delayMs, () => {
      this.attempt()
      this.watchdog(this.round)
    })
  }

  abandon(): void {
    this.round++
  }

  /** The agent died under a pending call (which then never returns): try again elsewhere. */
  private watchdog(round: number): void {
    this.env.scheduler.after(100, () => {
      if (!this.env.issuing()) return
      if (this.round === round && this.env.node(this.target).clock.epoch !== this.epoch) {
        this.env.trace(`lease user ${this.name}: ${this.target} died under its call; tries elsewhere`)
        this.target = this.env.prng.pick(this.env.nodeIds)
        this.attempt()
      }
      this.watchdog(this.round)
    })
  }

  private attempt(): void {
    const env = this.env
    if (!env.issuing()) return
    const round = ++this.round
    if (env.prng.chance(0.2)) this.target = env.prng.pick(env.nodeIds)
    // Short leases for many grants; long ones that outlive a leader change (an election takes 100..200 ms).
    const ttl = env.prng.chance(0.4) ? env.prng.between(100, 500) : env.prng.between(800, 2500)
    const target = this.target
    const agent = env.node(target)
    this.epoch = agent.clock.epoch
    let answer: Promise<{ lock: Lock | undefined; acquired: boolean }>
    try {
      answer = agent.locks().tryAcquire(LEASE_KEY, ttl)
    } catch (error) {
      answer = Promise.reject(error)
    }
    answer.then(
      ({ lock }) => {
        if (round !== this.round) return
        if (lock === undefined) {
          env.checker.stats.busy++
          this.next()
          return
        }
        env.checker.granted(this.name, lock.fencingToken)
        env.trace(
          `lease user ${this.name} holds ${LEASE_KEY} through ${target}, token ${lock.fencingToken}, ttl ${ttl}`,
        )
        this.hold(round, agent, lock, ttl)
      },
      () => {
        if (round !== this.round) return
        env.checker.stats.failed++
        this.target = env.prng.pick(env.nodeIds)
        this.next()
      },
    )
  }

  /** Looks at `isHeld()` every few ms up to 1.2 ttl (as long as it says true), then releases or lets it run out. */
  private hold(round: number, agent: SimAgent, lock: Lock, ttl: number): void {
    const env = this.env
    const epoch = agent.clock.epoch
    const holdFor = Math.round(ttl * (env.prng.chance(0.5) ? 1.2 : 0.3 + env.prng.next() * 0.7))
    const release = env.prng.chance(0.5)
    const look = (elapsed: number): void => {
      if (round !== this.round) return
      if (elapsed >= holdFor || !lock.isHeld()) {
        env.trace(`lease user ${this.name} lets go of token ${lock.fencingToken} after ${elapsed} ms`)
        this.letGo(round, lock, release)
        return
      }
      env.checker.heldTrue(this.name, lock.fencingToken)
      const gap = env.prng.between(1, 8)
      // The user runs in the agent's process: it looks when the agent runs (not during a pause).
      env.scheduler.after(gap, () => agent.clock.run(epoch, () => look(elapsed + gap)))
    }
    agent.clock.run(epoch, () => look(0))
  }

  private letGo(round: number, lock: Lock, release: boolean): void {
    if (!release) {
      this.next()
      return
    }
    lock.release().then(
      () => {
        this.env.checker.stats.released++
        if (round === this.round) this.next()
      },
      () => {
        if (round === this.round) this.next()
      },
    )
  }

  private next(): void {
    // Not much faster: every try is an entry, and a backlog of them under the slowest flow control (one small
    // message in flight) outlasts the liveness bound once the faults stop.
    this.env.scheduler.after(this.env.prng.between(10, 50), () => this.attempt())
  }
}

/** Two or three lease users on most seeds, sharing one checker. */
export function leaseUsers(env: Omit<LeaseUserEnv, 'checker'>): { checker: LockChecker; users: LeaseUser[] } {
  const checker = new LockChecker(env.scheduler)
  const count = env.prng.chance(0.8) ? env.prng.between(2, 3) : 0
  const users = Array.from(
    { length: count },
    (_, i) => new LeaseUser(`m${i + 1}`, { ...env, prng: env.prng.stream(`m${i + 1}`), checker }),
  )
  return { checker, users }
}
