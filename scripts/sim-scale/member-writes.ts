/**
 * The member write workload of a scale run (`--member-writes`) and its checker. A few members write through
 * their real client (each put forwarded to the leader under the member's session), each key once, all
 * through the run's crashes (the leader's too) and its partition.
 *
 * Checks (violations `member-write`):
 * - durability: every put a member was told committed is, at the end of the run, in the state of the
 *   replica that leads then (or the most advanced one up), with the value written;
 * - read-your-write: the writing member's own copy (fed by a replica, `Mirror`) holds the put within
 *   `OWN_COPY_MS` of its answer, unless the member crashed or was cut off by the partition meanwhile.
 * A put that failed (`NoLeaderError`: outcome unknown) is counted, not checked.
 *
 * Figures: puts answered and failed, the writer's write latency p50/p99 (virtual ms), and the share of puts
 * whose own copy held them when the answer came.
 */

import type { StateMachine } from '../../src/state/index.ts'
import type { Prng } from '../sim/prng.ts'
import type { Scheduler } from '../sim/scheduler.ts'
import type { ScaleMember } from './member.ts'

/** Writers: this share of the members, at least 1 and at most `MAX_WRITERS`. */
const WRITER_SHARE = 0.1
const MAX_WRITERS = 5
/** Each writer's pause between two puts (virtual ms). */
const WRITE_EVERY_MS = 500
/** How long after its answer a put must show in the writer's own copy. */
export const OWN_COPY_MS = 1_500

export interface MemberWritesInit {
  scheduler: Scheduler
  prng: Prng
  members: readonly ScaleMember[]
  /** Whether `member` was cut off by the partition at any time from `since` on. */
  cutOff(member: string, since: number): boolean
  violate(message: string): void
  trace(line: string): void
  /** Broken variant of the test: one answered put is recorded with a value it did not write. */
  misrecord?: boolean
}

export interface MemberWritesReport {
  writers: number
  answered: number
  failed: number
  lost: number
  ownCopyLate: number
  /** Share of answered puts the writer's own copy already held when the answer came. */
  ownCopyAtAnswer: number
  latencyP50Ms: number
  latencyP99Ms: number
}

interface Answered {
  key: string
  value: number
  writer: string
}

export class MemberWrites {
  private readonly init: MemberWritesInit
  private readonly answered: Answered[] = []
  private readonly latencies: number[] = []
  private failed = 0
  private ownCopyLate = 0
  private ownCopyAtAnswer = 0
  private writers: ScaleMember[] = []
  private stopAt = 0

  constructor(init: MemberWritesInit) {
    this.init = init
  }

  /** Starts the writers at `from`; none starts a put after `to`. */
  start(from: number, to: number): void {
    const { members, prng, scheduler } = this.init
    const count = Math.max(1, Math.min(MAX_WRITERS, Math.round(members.length * WRITER_SHARE)))
    this.writers = prng.sample([...members], count)
    this.stopAt = to
    for (const [i, writer] of this.writers.entries()) {
      scheduler.at(from + i * (WRITE_EVERY_MS / count), () => this.loop(writer, 0))
    }
  }

  private loop(writer: ScaleMember, n: number): void {
    const { scheduler } = this.init
    if (scheduler.now > this.stopAt) return
    if (!writer.up) {
      scheduler.after(WRITE_EVERY_MS, () => this.loop(writer, n))
      return
    }
    const key = `w/${writer.id}/${n}`
    const sentAt = scheduler.now
    const incarnation = writer.incarnation
    writer.put(key, n).then(
      () => {
        // A crashed incarnation's answer never reaches anyone.
        if (writer.incarnation !== incarnation) return
        const at = scheduler.now
        this.latencies.push(at - sentAt)
        const misrecord = this.init.misrecord === true && this.answered.length === 3
        this.answered.push({ key, value: misrecord ? n + 1 : n, writer: writer.id })
        if (writer.localValue(key) === n) this.ownCopyAtAnswer++
        scheduler.after(OWN_COPY_MS, () => {
          if (writer.incarnation !== incarnation || !writer.up || this.init.cutOff(writer.id, at)) return
          if (writer.localValue(key) !== n) {
            this.ownCopyLate++
            this.init.violate(
              `${writer.id}'s own copy does not hold its put of ${key} ${OWN_COPY_MS} ms after its answer`,
            )
          }
        })
        scheduler.after(WRITE_EVERY_MS, () => this.loop(writer, n + 1))
      },
      (error: Error) => {
        if (writer.incarnation !== incarnation) return
        this.failed++
        this.init.trace(`${writer.id} put ${key} failed: ${error.name} ${error.message}`)
        scheduler.after(WRITE_EVERY_MS, () => this.loop(writer, n + 1))
      },
    )
  }

  /** The durability check against `state` (the leader's at the end of the run), and the figures. */
  check(state: StateMachine | undefined): MemberWritesReport {
    let lost = 0
    for (const put of this.answered) {
      const value = state?.get(put.key)?.value
      if (value !== put.value) {
        lost++
        this.init.violate(
          `${put.writer}'s put of ${put.key} = ${put.value} was answered, but the leader holds ${JSON.stringify(value)}`,
        )
      }
    }
    const sorted = [...this.latencies].sort((a, b) => a - b)
    const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0
    return {
      writers: this.writers.length,
      answered: this.answered.length,
      failed: this.failed,
      lost,
      ownCopyLate: this.ownCopyLate,
      ownCopyAtAnswer:
        this.answered.length === 0
          ? 0
          : Math.round((this.ownCopyAtAnswer / this.answered.length) * 100) / 100,
      latencyP50Ms: at(0.5),
      latencyP99Ms: at(0.99),
    }
  }
}
