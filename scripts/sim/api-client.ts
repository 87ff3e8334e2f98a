/**
 * A client of one agent API call at a time (the KV workloads' transactions, lists, ephemeral puts), with
 * the retry rules of `clients.ts`: an agent that is down or not a member did nothing, so the call goes to
 * another; a read with no answer is tried elsewhere (reads have no effect); a write that fails otherwise or
 * gets no answer before the deadline has an unknown outcome, recorded with no output and an infinite
 * return, and the client goes on under a new process id. What the call does and how its answer is recorded
 * is the workload's (`ApiWorkload`).
 */

import type { Operation } from '../../src/check/index.ts'
import { InvalidArgumentError } from '../../src/errors.ts'
import type { NodeId } from '../../src/raft/types.ts'
import { AgentUnavailableError, type SimAgent } from './agent.ts'
import { type ClientTiming, isOutsideWindow, type OpDetail } from './clients.ts'
import { Violation } from './invariants.ts'
import type { Prng } from './prng.ts'
import type { Scheduler } from './scheduler.ts'

/** One call of a workload: its input for the history, whether it is a read, and the call itself. */
export interface ApiCall<I, O> {
  input: I
  read: boolean
  /** Left out of the history (a local read, which may be stale): checked by the workload alone. */
  unrecorded?: boolean
  run(agent: SimAgent): Promise<O>
}

/** What decides the calls of one client, and learns their answers. */
export interface ApiWorkload<I, O> {
  /** The next call, or undefined to think and ask again later. */
  next(opId: string, target: NodeId): ApiCall<I, O> | undefined
  /** A definite answer (before it is recorded). */
  answered?(call: ApiCall<I, O>, output: O, target: NodeId): void
}

export interface ApiClientEnv<I, O> {
  readonly scheduler: Scheduler
  readonly prng: Prng
  readonly timing: ClientTiming
  node(id: NodeId): SimAgent
  readonly nodeIds: readonly NodeId[]
  stamp(): number
  issuing(): boolean
  /** A finished operation; `undefined` for a read given up (left out of the history). */
  record(op: Operation<I, O> | undefined, detail: OpDetail): void
  newProcessId(): number
  /** The agent answered what it never may (a violation the run reports). */
  fail(error: Error): void
  trace(line: string): void
}

interface Current<I, O> {
  opId: string
  call: ApiCall<I, O>
  stamp: number
  calledAt: number
  attempt: number
}

/**
 * Errors an agent API gives only when the cluster misbehaves: a result the call cannot have
 * (`consensus.ts`'s `unexpected`), an input it refused although the workload only sends valid ones.
 */
export function isImpossibleAnswer(error: unknown): boolean {
  return (
    error instanceof InvalidArgumentError ||
    (error instanceof Error && error.constructor === Error && /^Unexpected result/.test(error.message))
  )
}

/**
 * The agent's KV API for a client call, as `SimAgent.kv` admits one: up, and a member in its own
 * configuration (a removed agent's idea of the leader may be long stale).
 */
export function memberKvApi(agent: SimAgent): ReturnType<SimAgent['kvApi']> {
  const api = agent.kvApi()
  const config = agent.config()
  if (config === undefined || !(config.voters.includes(agent.id) || config.nonVoters.includes(agent.id))) {
    throw new AgentUnavailableError(`${agent.id} is not a member`)
  }
  return api
}

export class ApiClient<I, O> {
  readonly name: string
  processId: number
  target: NodeId
  readonly gaveUp = { writes: 0, reads: 0 }
  private readonly env: ApiClientEnv<I, O>
  private readonly workload: ApiWorkload<I, O>
  private current: Current<I, O> | undefined
  private opCount = 0
  private rotation: number

  constructor(name: string, env: ApiClientEnv<I, O>, workload: ApiWorkload<I, O>) {
    this.name = name
    this.env = env
    this.workload = workload
    this.processId = env.newProcessId()
    this.target = env.prng.pick(env.nodeIds)
    this.rotation = env.prng.int(env.nodeIds.length)
  }

  get busy(): boolean {
    return this.current !== undefined
  }

  start(delayMs: number): void {
    this.env.scheduler.after(delayMs, () => this.issue())
  }

  /** Ends the run for this client: a write still open has an unknown outcome. */
  abandon(): void {
    if (this.current) this.giveUp()
  }

  private issue(): void {
    const env = this.env
    if (!env.issuing()) return
    if (env.prng.chance(env.timing.wanderRate)) this.target = env.prng.pick(env.nodeIds)
    const opId = `${this.name}.${this.opCount + 1}`
    const call = this.workload.next(opId, this.target)
    if (call === undefined) {
      this.next()
      return
    }
    this.opCount++
    const current: Current<I, O> = { opId, call, stamp: env.stamp(), calledAt: env.scheduler.now, attempt: 0 }
    this.current = current
    this.send()
    env.scheduler.after(env.timing.opTimeoutMs, () => {
      if (this.current === current) this.giveUp()
    })
  }

  private send(): void {
    const env = this.env
    const current = this.current!
    const attempt = ++current.attempt
    const target = this.target
    env.trace(
      `client ${this.name} sends ${current.opId} ${JSON.stringify(current.call.input).slice(0, 120)} to ${target} (attempt ${attempt})`,
    )
    const live = () => this.current === current && current.attempt === attempt
    env.scheduler.after(this.linkDelay(), () => {
      if (!live()) return
      let answer: Promise<O>
      try {
        answer = current.call.run(env.node(target))
      } catch (error) {
        answer = Promise.reject(error)
      }
      answer.then(
        output => env.scheduler.after(this.linkDelay(), () => live() && this.finish(output)),
        error => env.scheduler.after(this.linkDelay(), () => live() && this.onError(current, target, error)),
      )
    })
    if (current.call.read) {
      env.scheduler.after(env.timing.readAttemptMs, () => {
        if (!live()) return
        this.target = this.otherNode(target)
        this.send()
      })
    }
  }

  private onError(current: Current<I, O>, from: NodeId, error: unknown): boolean {
    const env = this.env
    if (error instanceof Violation) {
      env.fail(error)
      return true
    }
    if (isImpossibleAnswer(error)) {
      env.fail(new Error(`${current.opId} at ${from}: ${(error as Error).name}: ${(error as Error).message}`))
      return true
    }
    if (error instanceof AgentUnavailableError || current.call.read) {
      this.target = this.otherNode(from)
      env.scheduler.after(env.prng.between(1, 20), () => {
        if (this.current === current) this.send()
      })
      return true
    }
    env.trace(`client ${this.name}: ${current.opId} failed at ${from}: ${(error as Error)?.name}`)
    // A retry the session no longer remembers (pushed out by the window user's puts on the same agent
    // session): the API's unknown outcome, which the liveness check leaves out as for the KV clients
    // (3 agents, seed 1246: a transaction waiting for a leader while the window's worth of newer puts applied).
    this.giveUp(isOutsideWindow(error))
    return true
  }

  private finish(output: O): boolean {
    const env = this.env
    const current = this.current!
    env.trace(`client ${this.name}: ${current.opId} answered ${JSON.stringify(output).slice(0, 120)}`)
    this.current = undefined
    this.workload.answered?.(current.call, output, this.target)
    const op = {
      clientId: this.processId,
      input: current.call.input,
      call: current.stamp,
      output,
      return: env.stamp(),
    }
    env.record(current.call.unrecorded ? undefined : op, {
      opId: current.opId,
      calledAt: current.calledAt,
      endedAt: env.scheduler.now,
      completed: true,
      attempts: current.attempt,
      lastTarget: this.target,
    })
    this.next()
    return true
  }

  private giveUp(outsideWindow = false): void {
    const env = this.env
    const current = this.current!
    this.current = undefined
    const detail: OpDetail = {
      opId: current.opId,
      calledAt: current.calledAt,
      endedAt: env.scheduler.now,
      completed: false,
      attempts: current.attempt,
      lastTarget: this.target,
    }
    if (outsideWindow) detail.outsideWindow = true
    this.target = this.otherNode(this.target)
    if (current.call.read) {
      this.gaveUp.reads++
      env.record(undefined, detail)
    } else {
      this.gaveUp.writes++
      env.record(
        {
          clientId: this.processId,
          input: current.call.input,
          call: current.stamp,
          output: undefined,
          return: Infinity,
        },
        detail,
      )
      env.trace(
        `client ${this.name} (process ${this.processId}) gives up on ${current.opId}: outcome unknown`,
      )
      this.processId = env.newProcessId()
    }
    this.next()
  }

  private next(): void {
    this.env.scheduler.after(this.env.prng.between(0, this.env.timing.thinkMaxMs), () => this.issue())
  }

  private linkDelay(): number {
    return this.env.prng.between(this.env.timing.linkMinMs, this.env.timing.linkMaxMs)
  }

  private otherNode(than: NodeId): NodeId {
    const ids = this.env.nodeIds
    if (ids.length < 2) return than
    this.rotation = (this.rotation + 1) % ids.length
    if (ids[this.rotation] === than) this.rotation = (this.rotation + 1) % ids.length
    return ids[this.rotation]
  }
}
