/**
 * The "nothing written" check for retries outside the session window: now and then one agent sends a burst
 * of puts on its session at once (more than the 1,024 results a session keeps), under the faults, so that a
 * command whose answer was lost is retried after more than 1,024 newer results. Whatever it then answers,
 * a definite refusal (a `StaleRequest` error result: "nothing was written" as the API surfaces it) must only
 * come for a put that did not take effect; one that did must report an unknown outcome (`NoLeaderError`).
 */

import { InvalidArgumentError } from '../../src/errors.ts'
import type { Entry } from '../../src/raft/types.ts'
import { decodeEnvelope } from '../../src/state/index.ts'
import type { SimAgent } from './agent.ts'
import { Violation } from './invariants.ts'
import type { Scheduler } from './scheduler.ts'

export const BURST_KEY = 'burst'
/** More than a session keeps results for (`maxResults`, 1,024). */
export const BURST_SIZE = 1100

export class BurstChecker {
  private readonly scheduler: Scheduler
  /** Values of burst puts that took effect on some replica. */
  private readonly applied = new Set<string>()
  readonly stats = { bursts: 0, puts: 0, ok: 0, refused: 0, unknown: 0 }
  /** The first violation found (reported by the run). */
  violation: Violation | undefined

  constructor(scheduler: Scheduler) {
    this.scheduler = scheduler
  }

  /** An entry applied somewhere: note the burst puts among them. */
  onApplied(entry: Entry): void {
    const decoded = decodeEnvelope(entry.data)
    if (!decoded.ok) return
    const command = decoded.envelope.command
    if (command.type === 'put' && command.key === BURST_KEY && typeof command.value === 'string') {
      this.applied.add(command.value)
    }
  }

  /** Sends the burst through `agent`; each answer is checked when it comes. */
  fire(agent: SimAgent, name: string): void {
    this.stats.bursts++
    for (let i = 0; i < BURST_SIZE; i++) {
      const value = `${name}.${i}`
      this.stats.puts++
      let answer: Promise<{ type: string; code?: string }>
      try {
        answer = agent.submitPut(BURST_KEY, value)
      } catch (error) {
        answer = Promise.reject(error)
      }
      answer.then(
        result => {
          if (result.type !== 'error') {
            this.stats.ok++
            return
          }
          this.stats.refused++
          if (this.applied.has(value)) {
            this.violation ??= new Violation(
              'nothing-written',
              this.scheduler.now,
              `put ${value} through ${agent.id} took effect but was answered ${result.code}, a refusal ("nothing was written")`,
            )
          }
        },
        error => {
          // The API's "nothing was written" for a rejected call: the put must not have taken effect.
          if (error instanceof InvalidArgumentError) {
            this.stats.refused++
            if (this.applied.has(value)) {
              this.violation ??= new Violation(
                'nothing-written',
                this.scheduler.now,
                `put ${value} through ${agent.id} took effect but was rejected with InvalidArgumentError ("nothing was written")`,
              )
            }
            return
          }
          this.stats.unknown++
        },
      )
    }
  }
}
