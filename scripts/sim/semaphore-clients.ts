/**
 * Semaphore users and the semaphore checker. Each user takes a permit of `SEM` (N permits) through one
 * agent's real lock API (`Locks.semaphore(key, N)`: `tryAcquire`, or `acquire` given up by an abort), looks
 * at `isHeld()` now and then while it holds the permit, and releases it. The checker reads those
 * observations against the simulator's real time:
 *
 * - At no real instant do more than N permits count as held, where a permit counts as held from when its
 *   grant was answered to the last instant its holder saw `isHeld()` true. (`isHeld()` true at r means the
 *   cluster has not taken the permit back by r, and the grant applied before its answer, so the permit was
 *   held all that while: N + 1 of them at one instant is N + 1 holders in the cluster at once.)
 * - Fencing tokens are unique: no token is granted twice.
 */

import type { Lock } from '../../src/api.ts'
import type { NodeId } from '../../src/raft/types.ts'
import type { SimAgent } from './agent.ts'
import { Violation } from './invariants.ts'
import type { Prng } from './prng.ts'
import type { Scheduler } from './scheduler.ts'

export const SEMAPHORE_KEY = 'SEM'

interface Grant {
  user: string
  /** Real ms the grant's answer reached the user. */
  at: number
  /** The last real ms its holder saw `isHeld()` true; undefined if it never did. */
  lastHeld?: number
}

export class SemaphoreChecker {
  readonly permits: number
  private readonly scheduler: Scheduler
  private readonly grants = new Map<bigint, Grant>()
  readonly stats = { grants: 0, heldChecks: 0, busy: 0, aborted: 0, released: 0, failed: 0, maxHeld: 0 }

  constructor(scheduler: Scheduler, permits: number) {
    this.scheduler = scheduler
    this.permits = permits
  }

  granted(user: string, token: bigint): void {
    const now = this.scheduler.now
    const known = this.grants.get(token)
    if (known !== undefined) {
      throw new Violation(
        'semaphore-fencing',
        now,
        `token ${token} granted to ${known.user} and again to ${user}`,
      )
    }
    this.stats.grants++
    this.grants.set(token, { user, at: now })
  }

  /** `user`, holding `token`, saw `isHeld()` return true now. */
  heldTrue(user: string, token: bigint): void {
    this.stats.heldChecks++
    const grant = this.grants.get(token)
    if (grant === undefined || grant.user !== user) {
      throw new Violation(
        'semaphore-fencing',
        this.scheduler.now,
        `${user} holds token ${token} never granted to it`,
      )
    }
    grant.lastHeld = this.scheduler.now
    this.check()
  }

  /**
   * The most permits held at one instant, over the intervals [answer, last isHeld() true]: a sweep in time
   * order, starts before ends at one instant (two intervals that touch overlap).
   */
  check(): void {
    const events: [number, number, bigint][] = []
    for (const [token, grant] of this.grants) {
      if (grant.lastHeld === undefined) continue
      events.push([grant.at, 1, token], [grant.lastHeld, -1, token])
    }
    events.sort((a, b) => a[0] - b[0] || b[1] - a[1])
    const open = new Set<bigint>()
    for (const [time, delta, token] of events) {
      if (delta > 0) open.add(token)
      else open.delete(token)
      this.stats.maxHeld = Math.max(this.stats.maxHeld, open.size)
      if (open.size > this.permits) {
        const holders = [...open].map(t => `${this.grants.get(t)!.user} (token ${t})`)
        throw new Violation(
          'semaphore-safety',
          this.scheduler.now,
          `${open.size} permits of ${SEMAPHORE_KEY} (of ${this.permits}) held at t=${time}ms: ${holders.join(', ')}`,
        )
      }
    }
  }
}

export interface SemaphoreUserEnv {
  readonly scheduler: Scheduler
  readonly prng: Prng
  readonly checker: SemaphoreChecker
  node(id: NodeId): SimAgent
  readonly nodeIds: readonly NodeId[]
  issuing(): boolean
  /** A violation found in a promise callback, for the run to report. */
  fail(error: Error): void
  trace(line: string): void
}

export class SemaphoreUser {
  readonly name: string
  private readonly env: SemaphoreUserEnv
  private target: NodeId
  /** Bumped by every attempt and by `abandon`: a late answer of an older one is ignored. */
  private round = 0

  constructor(name: string, env: SemaphoreUserEnv) {
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
    const ttl = env.prng.between(100, 800)
    const target = this.target
    const wait = env.prng.chance(0.4)
    const controller = new AbortController()
    let answer: Promise<Lock | undefined>
    try {
      const semaphore = env.node(target).locks().semaphore(SEMAPHORE_KEY, env.checker.permits)
      if (wait) {
        // Queue for a permit, and give up after a while (the abort leaves the queue).
        env.scheduler.after(env.prng.between(50, 400), () => controller.abort())
        answer = semaphore.acquire(ttl, { signal: controller.signal })
      } else answer = semaphore.tryAcquire(ttl).then(result => result.lock)
    } catch (error) {
      answer = Promise.reject(error)
    }
    // A call into a process that dies never answers: try again later regardless.
    let settled = false
    env.scheduler.after(3000, () => {
      if (!settled && round === this.round) this.next()
    })
    const watchdog = (): void => {
      settled = true
    }
    answer.then(
      lock => {
        if (round !== this.round) return
        watchdog()
        if (lock === undefined) {
          env.checker.stats.busy++
          this.next()
          return
        }
        try {
          env.checker.granted(this.name, lock.fencingToken)
        } catch (error) {
          env.fail(error as Error)
          return
        }
        env.trace(
          `semaphore user ${this.name} holds a permit of ${SEMAPHORE_KEY} through ${target}, token ${lock.fencingToken}, ttl ${ttl}`,
        )
        this.hold(round, lock, ttl, target)
      },
      error => {
        if (round !== this.round) return
        watchdog()
        if (controller.signal.aborted) env.checker.stats.aborted++
        else env.checker.stats.failed++
        env.trace(`semaphore user ${this.name}: acquire at ${target} failed: ${(error as Error)?.name}`)
        this.target = env.prng.pick(env.nodeIds)
        this.next()
      },
    )
  }

  /** Looks at `isHeld()` a few times over up to 1.3 ttl, then releases. */
  private hold(round: number, lock: Lock, ttl: number, target: NodeId): void {
    const env = this.env
    // The user runs in the agent's process: it looks when the agent runs, never after a crash of it.
    const agent = env.node(target)
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
      // Released or not (the process may be gone), the user moves on.
      let settled = false
      env.scheduler.after(3000, () => {
        if (!settled && round === this.round) this.next()
      })
      const moveOn = (): void => {
        settled = true
      }
      lock.release().then(
        () => {
          env.checker.stats.released++
          moveOn()
          if (round === this.round) this.next()
        },
        () => {
          moveOn()
          if (round === this.round) this.next()
        },
      )
    })
  }

  private next(): void {
    this.round++
    const round = this.round
    this.env.scheduler.after(this.env.prng.between(5, 100), () => {
      if (round === this.round) this.attempt()
    })
  }
}
