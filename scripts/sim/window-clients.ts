/**
 * Retries outside the session's result window, cheaply: on some seeds every replica keeps only a few results
 * per session (`maxResultsPerSession` 16..40 instead of 1,024: the same code path, a smaller number), and one
 * user inside one agent keeps more puts in flight on the agent's session than that, through the fault
 * window. A put whose answer was lost (a forward cut, a leader deposed) is retried by the proposer after
 * newer commands of the session applied; past the window the session answers `StaleRequest`.
 *
 * The check is the API's "nothing written": a call refused with `InvalidArgumentError` (or a result the API
 * turns into one, `unexpected` in api/consensus.ts) must not have taken effect. A retry outside the window may
 * have: it must report an unknown outcome (`NoLeaderError`), never a refusal (`session-window`).
 */

import { unexpected } from '../../src/agent/api/consensus.ts'
import { InvalidArgumentError } from '../../src/errors.ts'
import type { Entry, NodeId } from '../../src/raft/types.ts'
import { type CommandResult, decodeEnvelope } from '../../src/state/index.ts'
import type { SimAgent } from './agent.ts'
import { Violation } from './invariants.ts'
import type { Prng } from './prng.ts'
import type { Scheduler } from './scheduler.ts'

export const WINDOW_KEY = 'w'
/** Puts per seed at most: enough for many retries past the window, few enough to keep a seed fast. */
export const MAX_PUTS = 300

/** A seed's small window and how many puts the user keeps in flight (always more than the window). */
export interface WindowPlan {
  maxResultsPerSession: number
  depth: number
}

/** Whether this seed runs the window user, and its numbers. */
export function planWindow(prng: Prng): WindowPlan | undefined {
  if (!prng.chance(0.4)) return undefined
  // Above what the other users of one agent have in flight at once: a window that small would turn their
  // retries in a healthy cluster into unknown outcomes (a command in flight while more than the window of
  // newer ones of its session applied), which is this check's business, not the liveness check's.
  const window = prng.between(16, 40)
  // Not far above it: each put in flight is an entry an isolated leader may hold uncommitted, and a backlog
  // of them under the slowest flow control (one small message in flight) outlasts the liveness bound.
  return { maxResultsPerSession: window, depth: window + prng.between(4, 12) }
}

export class WindowChecker {
  private readonly scheduler: Scheduler
  /** Values of window puts that took effect on some replica. */
  private readonly applied = new Set<string>()
  readonly stats = { puts: 0, ok: 0, refused: 0, unknown: 0 }
  /** The first violation found (the run reports it). */
  violation: Violation | undefined

  constructor(scheduler: Scheduler) {
    this.scheduler = scheduler
  }

  /** An entry applied somewhere: note the window puts among them. */
  onApplied(entry: Entry): void {
    const decoded = decodeEnvelope(entry.data)
    if (!decoded.ok) return
    const command = decoded.envelope.command
    if (command.type === 'put' && command.key === WINDOW_KEY && typeof command.value === 'string') {
      this.applied.add(command.value)
    }
  }

  /** The put of `value` through `agent` ended: a refusal must come only for a put that did not take effect. */
  answered(agent: NodeId, value: string, outcome: { result: CommandResult } | { error: unknown }): void {
    let error: unknown
    if ('result' in outcome) {
      if (outcome.result.type !== 'error') {
        this.stats.ok++
        return
      }
      // What the API makes of an error result (a put's only error results come from the session).
      error = unexpected(outcome.result)
    } else error = outcome.error
    if (!(error instanceof InvalidArgumentError)) {
      this.stats.unknown++
      return
    }
    this.stats.refused++
    if (this.applied.has(value)) {
      this.violation ??= new Violation(
        'nothing-written',
        this.scheduler.now,
        `put ${value} through ${agent} took effect but was refused with InvalidArgumentError ("nothing was written"): ${(error as Error).message}`,
      )
    }
  }
}

export interface WindowUserEnv {
  readonly scheduler: Scheduler
  readonly checker: WindowChecker
  node(id: NodeId): SimAgent
  issuing(): boolean
  trace(line: string): void
}

/** Keeps `depth` puts in flight on one agent's session while `issuing`. */
export class WindowUser {
  private readonly env: WindowUserEnv
  private readonly agentId: NodeId
  private readonly depth: number
  private inFlight = 0
  private sent = 0
  /** The agent incarnation the puts in flight belong to; bumped by `abandon` too. */
  private epoch = -1
  private abandoned = false

  constructor(agentId: NodeId, depth: number, env: WindowUserEnv) {
    this.agentId = agentId
    this.depth = depth
    this.env = env
  }

  start(atMs: number): void {
    this.env.scheduler.at(atMs, () => {
      this.env.trace(`window user keeps ${this.depth} puts in flight through ${this.agentId}`)
      this.watch()
    })
  }

  /** Looks now and then: a crash leaves nothing to answer, a restart is a fresh start. */
  private watch(): void {
    if (this.abandoned || !this.env.issuing()) return
    this.pump()
    this.env.scheduler.after(50, () => this.watch())
  }

  abandon(): void {
    this.abandoned = true
  }

  private pump(): void {
    const env = this.env
    if (this.abandoned || !env.issuing()) return
    const agent = env.node(this.agentId)
    // The agent died: its calls never return, the puts in flight died with it.
    if (agent.clock.epoch !== this.epoch) {
      this.epoch = agent.clock.epoch
      this.inFlight = 0
    }
    if (!agent.up) return
    while (this.inFlight < this.depth && this.sent < MAX_PUTS) {
      const value = `w.${++this.sent}`
      const epoch = this.epoch
      this.inFlight++
      env.checker.stats.puts++
      let answer: Promise<CommandResult>
      try {
        answer = agent.submitPut(WINDOW_KEY, value)
      } catch (error) {
        answer = Promise.reject(error)
      }
      const done = (outcome: { result: CommandResult } | { error: unknown }): void => {
        env.checker.answered(this.agentId, value, outcome)
        if (epoch !== this.epoch) return
        this.inFlight--
        this.pump()
      }
      answer.then(
        result => done({ result }),
        error => done({ error }),
      )
    }
  }
}
