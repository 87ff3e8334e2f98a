/**
 * Election users and the election safety checker. Each user runs inside one agent (a named election is
 * bound to the agent's session, so one user per agent) and stands in the election `E` through the agent's
 * real API (`agent.elections('E')`: the proposer, the session, the state machine's FIFO of candidacies). It
 * campaigns, leads for a while, resigns; now and then it gives up waiting (aborts its campaign) and at once
 * campaigns again, so that the aborted campaign's resign races the new candidacy (`resign-any-candidacy`).
 *
 * A user believes it leads, as an `isLeader()` an application would write, from the moment its `campaign()`
 * resolved until it calls `resign()`, its process dies, or its session's local trust runs out
 * (`SessionKeeper.validUntil`, the window `isHeld()` also trusts: it ends before the cluster may expire the
 * session). Leadership ends only by the leader's resign or the end of its session, so:
 *
 * - at no real instant do two users believe they lead `E` (checked whenever a user's campaign resolves and
 *   whenever a leader looks, against every other user's belief at that instant, from the simulator's real
 *   time). A late resign of an aborted campaign that ends the session's newer candidacy shows up here: its
 *   user still believes, and the next candidate is told it leads.
 */

import { AbortError } from '../../src/errors.ts'
import type { NodeId } from '../../src/raft/types.ts'
import type { SimAgent } from './agent.ts'
import { Violation } from './invariants.ts'
import type { Prng } from './prng.ts'
import type { Scheduler } from './scheduler.ts'

export const ELECTION_NAME = 'E'

/** What the checker needs of a user: whether it believes it leads right now. */
interface Believer {
  readonly name: string
  /** Real time its current leadership's campaign resolved, if it believes it leads. */
  leadingSince(): number | undefined
}

export class ElectionChecker {
  private readonly scheduler: Scheduler
  private readonly users: Believer[] = []
  readonly stats = { campaigns: 0, wins: 0, aborted: 0, resigned: 0, looks: 0, failed: 0 }
  /** The first violation found (the run reports it). */
  violation: Violation | undefined

  constructor(scheduler: Scheduler) {
    this.scheduler = scheduler
  }

  add(user: Believer): void {
    this.users.push(user)
  }

  /** `user` believes it leads now (its campaign just resolved, or it looked): nobody else may. */
  check(user: Believer): void {
    const now = this.scheduler.now
    const since = user.leadingSince()
    if (since === undefined) return
    for (const other of this.users) {
      if (other === user) continue
      const otherSince = other.leadingSince()
      if (otherSince === undefined) continue
      this.violation ??= new Violation(
        'election-safety-api',
        now,
        `${user.name} (leading since t=${since}ms) and ${other.name} (leading since t=${otherSince}ms) both believe they lead election ${ELECTION_NAME} at t=${now}ms`,
      )
    }
  }
}

export interface ElectionUserEnv {
  readonly scheduler: Scheduler
  readonly prng: Prng
  readonly checker: ElectionChecker
  node(id: NodeId): SimAgent
  issuing(): boolean
  trace(line: string): void
}

type Phase =
  | { kind: 'idle' }
  | { kind: 'campaigning' }
  | { kind: 'leading'; since: number; epoch: number; sessionId: string }

export class ElectionUser implements Believer {
  readonly name: string
  private readonly env: ElectionUserEnv
  private readonly agentId: NodeId
  private phase: Phase = { kind: 'idle' }
  /** Bumped at each new attempt and by `abandon`: a late answer of an earlier one is ignored. */
  private round = 0
  /** The agent incarnation the current attempt runs in. */
  private epoch = -1

  constructor(name: string, agentId: NodeId, env: ElectionUserEnv) {
    this.name = name
    this.agentId = agentId
    this.env = env
  }

  start(delayMs: number): void {
    this.env.scheduler.after(delayMs, () => this.attempt())
    this.watchdog()
  }

  abandon(): void {
    this.round++
    this.phase = { kind: 'idle' }
  }

  leadingSince(): number | undefined {
    const phase = this.phase
    if (phase.kind !== 'leading') return undefined
    const agent = this.env.node(this.agentId)
    // The process died: whatever it believed died with it.
    if (!agent.up || agent.clock.epoch !== phase.epoch) return undefined
    const session = agent.sessionView()
    if (session === undefined || session.id !== phase.sessionId) return undefined
    return agent.clock.now() < session.validUntil ? phase.since : undefined
  }

  /** The agent died under a pending call (which then never returns): start over in its next incarnation. */
  private watchdog(): void {
    this.env.scheduler.after(50, () => {
      const agent = this.env.node(this.agentId)
      if (this.phase.kind !== 'idle' && agent.clock.epoch !== this.epoch) {
        this.round++
        this.phase = { kind: 'idle' }
        this.next()
      }
      if (this.env.issuing() || this.phase.kind !== 'idle') this.watchdog()
    })
  }

  private attempt(): void {
    const env = this.env
    if (!env.issuing() || this.phase.kind !== 'idle') return
    const agent = env.node(this.agentId)
    if (!agent.up) {
      this.next()
      return
    }
    const round = ++this.round
    const epoch = agent.clock.epoch
    this.epoch = epoch
    this.phase = { kind: 'campaigning' }
    env.checker.stats.campaigns++
    env.trace(`election user ${this.name} campaigns through ${this.agentId}`)
    const controller = new AbortController()
    let answer: Promise<void>
    try {
      answer = agent.elections(ELECTION_NAME).campaign({ signal: controller.signal })
    } catch (error) {
      answer = Promise.reject(error)
    }
    // Now and then the user stops waiting (as a caller with a deadline does).
    if (env.prng.chance(0.6)) {
      env.scheduler.after(env.prng.between(2, 120), () =>
        agent.clock.run(epoch, () => {
          if (round === this.round && this.phase.kind === 'campaigning') controller.abort()
        }),
      )
    }
    answer.then(
      () => {
        if (round !== this.round) return
        const session = agent.sessionView()
        this.phase = {
          kind: 'leading',
          since: env.scheduler.now,
          epoch,
          sessionId: session?.id ?? '',
        }
        env.checker.stats.wins++
        env.trace(`election user ${this.name} leads ${ELECTION_NAME} through ${this.agentId}`)
        env.checker.check(this)
        this.lead(round, epoch)
      },
      error => {
        if (round !== this.round) return
        this.phase = { kind: 'idle' }
        if (error instanceof AbortError) {
          env.checker.stats.aborted++
          env.trace(`election user ${this.name} aborts its campaign at ${this.agentId}`)
          // Stand again at once: the aborted campaign's resign is still on its way.
          if (env.prng.chance(0.9)) {
            this.attempt()
            return
          }
        } else {
          env.checker.stats.failed++
          env.trace(
            `election user ${this.name}: campaign at ${this.agentId} failed: ${(error as Error)?.name} ${(error as Error)?.constructor?.name} ${(error as Error)?.message}`,
          )
        }
        this.next()
      },
    )
  }

  /** Looks a few times while it leads (each look checks nobody else believes it leads), then resigns. */
  private lead(round: number, epoch: number): void {
    const env = this.env
    const agent = env.node(this.agentId)
    const looks = env.prng.between(1, 6)
    let at = 0
    for (let i = 0; i < looks; i++) {
      at += env.prng.between(1, 60)
      env.scheduler.after(at, () =>
        agent.clock.run(epoch, () => {
          if (round !== this.round) return
          env.checker.stats.looks++
          env.checker.check(this)
        }),
      )
    }
    env.scheduler.after(at + 1, () =>
      agent.clock.run(epoch, () => {
        if (round !== this.round || this.phase.kind !== 'leading') return
        // From the call on, it no longer acts as the leader.
        this.phase = { kind: 'campaigning' }
        env.trace(`election user ${this.name} resigns through ${this.agentId}`)
        let resigned: Promise<void>
        try {
          resigned = agent.elections(ELECTION_NAME).resign()
        } catch (error) {
          resigned = Promise.reject(error)
        }
        resigned.then(
          () => {
            if (round !== this.round) return
            env.checker.stats.resigned++
            this.phase = { kind: 'idle' }
            this.next()
          },
          () => {
            if (round !== this.round) return
            env.checker.stats.failed++
            this.phase = { kind: 'idle' }
            this.next()
          },
        )
      }),
    )
  }

  private next(): void {
    this.env.scheduler.after(this.env.prng.between(1, 80), () => this.attempt())
  }
}

/** Election users on some seeds, one per founding agent chosen (at least two, so that they contend). */
export function electionUsers(
  env: Omit<ElectionUserEnv, 'prng' | 'checker'> & { prng: Prng; agents: readonly NodeId[] },
): { checker: ElectionChecker; users: ElectionUser[] } {
  const checker = new ElectionChecker(env.scheduler)
  const users: ElectionUser[] = []
  if (env.agents.length < 2 || !env.prng.chance(0.8)) return { checker, users }
  const count = env.prng.between(2, Math.min(4, env.agents.length))
  const agents = [...env.agents]
  for (let i = 0; i < count; i++) {
    const agentId = agents.splice(env.prng.between(0, agents.length - 1), 1)[0]
    const user = new ElectionUser(`e${i + 1}`, agentId, {
      ...env,
      prng: env.prng.stream(`e${i + 1}`),
      checker,
    })
    checker.add(user)
    users.push(user)
  }
  return { checker, users }
}
