/**
 * Lock users and the lock safety checker. Each user takes the lock `L` through one agent's real lock API
 * (`Locks.tryAcquire`: the proposer, the session, the local lease), looks at `isHeld()` now and then while it
 * holds it, and releases it. The checker reads those observations against the simulator's real time:
 *
 * - `isHeld()` is never a false true: when a holder sees `isHeld()` true at real instant r, no later grant
 *   (a larger fencing token) had been answered by r. Two holders at one real instant is the special case.
 * - Fencing tokens are unique: no token is granted twice.
 *
 * A grant counts from when its answer reached the user (after the entry applied): an earlier instant would
 * only find more, so a violation reported is a real one.
 */

import type { Lock } from '../../src/api.ts'
import type { NodeId } from '../../src/raft/types.ts'
import type { SimAgent } from './agent.ts'
import { Violation } from './invariants.ts'
import type { Prng } from './prng.ts'
import type { Scheduler } from './scheduler.ts'

export const LOCK_KEY = 'L'

export class LockChecker {
  private readonly scheduler: Scheduler
  /** Every grant answered: token -> (user, real time of the answer). */
  private readonly grants = new Map<bigint, { user: string; at: number }>()
  private highestGranted: { token: bigint; at: number } | undefined
  readonly stats = { grants: 0, heldChecks: 0, busy: 0, released: 0, failed: 0 }

  constructor(scheduler: Scheduler) {
    this.scheduler = scheduler
  }

  granted(user: string, token: bigint): void {
    const now = this.scheduler.now
    const known = this.grants.get(token)
    if (known !== undefined) {
      throw new Violation('lock-fencing', now, `token ${token} granted to ${known.user} and again to ${user}`)
    }
    this.stats.grants++
    this.grants.set(token, { user, at: now })
    if (this.highestGranted === undefined || token > this.highestGranted.token) {
      this.highestGranted = { token, at: now }
    }
  }

  /** `user`, holding `token`, saw `isHeld()` return true now. */
  heldTrue(user: string, token: bigint): void {
    this.stats.heldChecks++
    const now = this.scheduler.now
    for (const [other, grant] of this.grants) {
      if (other > token && grant.at <= now) {
        throw new Violation(
          'lock-safety',
          now,
          `${user} sees isHeld() true on token ${token} at t=${now}ms, but ${grant.user} was granted token ${other} at t=${grant.at}ms`,
        )
      }
    }
  }
}

export interface LockUserEnv {
  readonly scheduler: Scheduler
  readonly prng: Prng
  readonly checker: LockChecker
  node(id: NodeId): SimAgent
  readonly nodeIds: readonly NodeId[]
  issuing(): boolean
  trace(line: string): void
}

export class LockUser {
  readonly name: string
  private readonly env: LockUserEnv
  private target: NodeId
  /** Bumped by `abandon`: a late answer is then ignored. */
  private round = 0

  constructor(name: string, env: LockUserEnv) {
    this.name = name
    this.env = env
    this.target = env.prng.pick(env.nodeIds)
  }

  start(delayMs: number): void {
    this.env.scheduler.after(delayMs, () => this.attempt())
  }

  abandon(): void {
    this.round++
  }

  private attempt(): void {
    const env = this.env
    if (!env.issuing()) return
    const round = ++this.round
    if (env.prng.chance(0.3)) this.target = env.prng.pick(env.nodeIds)
    const ttl = env.prng.between(200, 1500)
    const target = this.target
    let answer: Promise<{ lock: Lock | undefined; acquired: boolean }>
    try {
      answer = env.node(target).locks().tryAcquire(LOCK_KEY, ttl)
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
          `lock user ${this.name} holds ${LOCK_KEY} through ${target}, token ${lock.fencingToken}, ttl ${ttl}`,
        )
        this.hold(round, lock, ttl)
      },
      error => {
        if (round !== this.round) return
        env.checker.stats.failed++
        env.trace(`lock user ${this.name}: tryAcquire at ${target} failed: ${(error as Error)?.name}`)
        this.target = env.prng.pick(env.nodeIds)
        this.next()
      },
    )
  }

  /** Looks at `isHeld()` a few times over up to 1.3 ttl, then releases. */
  private hold(round: number, lock: Lock, ttl: number): void {
    const env = this.env
    // The user runs in the agent's process: it looks when the agent runs (not during a pause, never after
    // a crash of that incarnation).
    const agent = env.node(this.target)
    const epoch = agent.clock.epoch
    const looks = env.prng.between(1, 4)
    let at = 0
    for (let i = 0; i < looks; i++) {
      at += env.prng.between(0, Math.round((ttl * 1.3) / looks))
      env.scheduler.after(at, () =>
        agent.clock.run(epoch, () => {
          if (round === this.round && lock.isHeld()) env.checker.heldTrue(this.name, lock.fencingToken)
        }),
      )
    }
    env.scheduler.after(at + 1, () => {
      if (round !== this.round) return
      lock.release().then(
        () => {
          env.checker.stats.released++
          if (round === this.round) this.next()
        },
        () => {
          if (round === this.round) this.next()
        },
      )
    })
  }

  private next(): void {
    this.env.scheduler.after(this.env.prng.between(5, 100), () => this.attempt())
  }
}
