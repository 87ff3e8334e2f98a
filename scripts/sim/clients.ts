/**
 * Concurrent clients of the replicated KV store, recording a history for the linearizability checker.
 *
 * Each client has at most one operation outstanding and makes it through one agent's real client path
 * (`SimAgent.kv`: the proposer with its retries, forwarding and session deduplication; reads at a ReadIndex
 * barrier). It stays with an agent that answered (which is how a client ends up reading from a deposed
 * leader) and moves on when the agent is down or not a member (nothing was done: the same operation is tried
 * elsewhere). A write that fails otherwise (NoLeaderError: "may or may not have taken effect") or gets no
 * answer before the deadline has an unknown outcome: it is recorded with no output and an infinite return, as
 * porcupine expects, and the client goes on under a new process id (as Jepsen does), so no process ever has
 * two operations open. A read with no answer is retried elsewhere; past the deadline it is left out.
 */

import type { KvInput, KvOperation, KvOutput } from '../../src/check/index.ts'
import type { NodeId } from '../../src/raft/types.ts'
import { AgentUnavailableError, type SimAgent, UnexpectedResultError } from './agent.ts'
import type { Prng } from './prng.ts'
import type { Scheduler } from './scheduler.ts'

export interface ClientTiming {
  /** An operation not answered within this many ms is given up (write: unknown outcome). */
  opTimeoutMs: number
  /** A read attempt not answered within this many ms is retried on another node. */
  readAttemptMs: number
  /** Pause between operations, ms. */
  thinkMaxMs: number
  /** Chance that an operation starts at a random node rather than the last one that answered. */
  wanderRate: number
  /** One-way client <-> node latency range, ms. */
  linkMinMs: number
  linkMaxMs: number
}

export interface ClientEnv {
  readonly scheduler: Scheduler
  readonly prng: Prng
  readonly timing: ClientTiming
  readonly keys: readonly string[]
  node(id: NodeId): SimAgent
  /** Where an operation should start, if something (the fault schedule) steers clients now. */
  route(input: KvInput): NodeId | undefined
  readonly nodeIds: readonly NodeId[]
  /** A strictly increasing timestamp (virtual µs) for history events. */
  stamp(): number
  /** Whether clients may start new operations now. */
  issuing(): boolean
  /** Records a finished operation; `undefined` for a read given up (left out of the history). */
  record(op: KvOperation | undefined, detail: OpDetail): void
  /** A process id never used before in this run. */
  newProcessId(): number
  /** The agent answered what it never may (a violation the run reports). */
  fail(error: Error): void
  trace(line: string): void
}

/** Extra facts about a finished operation, for liveness and reports. */
export interface OpDetail {
  opId: string
  /** Virtual ms of the call and of the end (answer or give-up). */
  calledAt: number
  endedAt: number
  /** Whether the operation got a definite answer. */
  completed: boolean
  attempts: number
  /** The node its last attempt went to. */
  lastTarget: NodeId
  /**
   * It ended with the unknown outcome of a retry past its session's result window (`StaleRequest`, which the
   * API reports as `NoLeaderError`): what the API promises when newer commands of the agent's session (the
   * window user of window-clients.ts outruns a small window on purpose) pushed its answer out.
   */
  outsideWindow?: boolean
}

interface Current {
  opId: string
  input: KvInput
  call: number
  calledAt: number
  /** Attempts so far (the current one's number). */
  attempt: number
}

export class SimClient {
  readonly name: string
  processId: number
  target: NodeId
  /** Operations that ended without an answer, by kind. */
  readonly gaveUp = { writes: 0, reads: 0 }
  private readonly env: ClientEnv
  private current: Current | undefined
  private opCount = 0
  /** Position in the round of nodes tried when no leader is known. */
  private rotation: number
  private readonly seen = new Map<string, string | undefined>()

  constructor(name: string, env: ClientEnv) {
    this.name = name
    this.env = env
    this.processId = env.newProcessId()
    this.target = env.prng.pick(env.nodeIds)
    this.rotation = env.prng.int(env.nodeIds.length)
  }

  get busy(): boolean {
    return this.current !== undefined
  }

  /** Starts the client's loop. */
  start(delayMs: number): void {
    this.env.scheduler.after(delayMs, () => this.issue())
  }

  private issue(): void {
    if (!this.env.issuing()) return
    const env = this.env
    const opId = `${this.name}.${++this.opCount}`
    const input = this.nextInput(opId)
    // Mostly stay with the node that answered last; now and then start anywhere, as a client with a list of
    // addresses does. Clients spread this way write through one leader while others still read from another.
    const calledAt = env.scheduler.now
    if (env.prng.chance(env.timing.wanderRate)) this.target = env.prng.pick(env.nodeIds)
    this.target = env.route(input) ?? this.target
    this.current = { opId, input, call: env.stamp(), calledAt, attempt: 0 }
    this.send()
    const current = this.current
    env.scheduler.after(env.timing.opTimeoutMs, () => {
      if (this.current === current) this.giveUp()
    })
  }

  private nextInput(opId: string): KvInput {
    const prng = this.env.prng
    const key = prng.pick(this.env.keys)
    const value = `${opId}`
    switch (prng.weighted({ get: 40, put: 30, cas: 22, delete: 8 })) {
      case 'get':
        return { op: 'get', key }
      case 'put':
        return { op: 'put', key, value }
      case 'delete':
        return { op: 'delete', key }
      default: {
        // Mostly the value last seen, so that a fair share of swaps succeed.
        const expected = prng.chance(0.75) ? this.seen.get(key) : undefined
        return { op: 'cas', key, expected, value }
      }
    }
  }

  /** Sends the current operation to the target agent, as a new attempt. */
  private send(): void {
    const env = this.env
    const current = this.current!
    const attempt = ++current.attempt
    const target = this.target
    const input = current.input
    env.trace(
      `client ${this.name} sends ${current.opId} ${input.op}(${input.key}) to ${target} (attempt ${attempt})`,
    )
    const live = () => this.current === current && current.attempt === attempt
    env.scheduler.after(this.linkDelay(), () => {
      if (!live()) return
      let answer: Promise<KvOutput>
      try {
        answer = env.node(target).kv(input)
      } catch (error) {
        answer = Promise.reject(error)
      }
      answer.then(
        output => env.scheduler.after(this.linkDelay(), () => live() && this.finish(output)),
        error => env.scheduler.after(this.linkDelay(), () => live() && this.onError(current, target, error)),
      )
    })
    if (input.op === 'get') {
      env.scheduler.after(env.timing.readAttemptMs, () => {
        if (!live()) return
        // No answer: try elsewhere (a read has no effect, so retrying is always safe).
        this.target = this.otherNode(target)
        this.send()
      })
    }
  }

  private onError(current: Current, from: NodeId, error: unknown): void {
    const env = this.env
    if (error instanceof UnexpectedResultError) {
      env.fail(error)
      return
    }
    if (error instanceof AgentUnavailableError || current.input.op === 'get') {
      // Nothing was done (or it was a read): the same operation, elsewhere, after a moment.
      env.trace(`client ${this.name}: ${from} did not take ${current.opId} (${(error as Error).message})`)
      this.target = this.otherNode(from)
      env.scheduler.after(env.prng.between(1, 20), () => {
        if (this.current === current) this.send()
      })
      return
    }
    env.trace(`client ${this.name}: ${current.opId} failed at ${from}: ${describeError(error)}`)
    this.giveUp(isOutsideWindow(error))
  }

  private finish(output: KvOutput): boolean {
    const env = this.env
    const current = this.current!
    this.current = undefined
    const input = current.input
    if (input.op === 'get') this.seen.set(input.key, output.value)
    else if (input.op === 'put' || (input.op === 'cas' && output.ok)) this.seen.set(input.key, input.value)
    else if (input.op === 'delete') this.seen.set(input.key, undefined)
    env.record(
      { clientId: this.processId, input, call: current.call, output, return: env.stamp() },
      {
        opId: current.opId,
        calledAt: current.calledAt,
        endedAt: env.scheduler.now,
        completed: true,
        attempts: current.attempt,
        lastTarget: this.target,
      },
    )
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
    // The next attempt goes elsewhere: this node may be down or cut off.
    this.target = this.otherNode(this.target)
    if (current.input.op === 'get') {
      this.gaveUp.reads++
      env.record(undefined, detail)
      env.trace(`client ${this.name} gives up on ${current.opId}: left out of the history`)
    } else {
      this.gaveUp.writes++
      env.record(
        {
          clientId: this.processId,
          input: current.input,
          call: current.call,
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

  /** Ends the run for this client: a write still open has an unknown outcome. */
  abandon(): void {
    const current = this.current
    if (!current) return
    this.giveUp()
  }

  private next(): void {
    this.env.scheduler.after(this.env.prng.between(0, this.env.timing.thinkMaxMs), () => this.issue())
  }

  private linkDelay(): number {
    return this.env.prng.between(this.env.timing.linkMinMs, this.env.timing.linkMaxMs)
  }

  /**
   * The next node to try after `than` failed to answer or did not know the leader: the nodes in turn (from a
   * random starting point per client), so that every node is tried within one round.
   */
  private otherNode(than: NodeId): NodeId {
    const ids = this.env.nodeIds
    if (ids.length < 2) return than
    this.rotation = (this.rotation + 1) % ids.length
    if (ids[this.rotation] === than) this.rotation = (this.rotation + 1) % ids.length
    return ids[this.rotation]
  }
}

/** An error with its chain of causes, for the trace. */
function describeError(error: unknown): string {
  const parts: string[] = []
  for (
    let e = error as Error | undefined, depth = 0;
    e !== undefined && depth < 4;
    e = e.cause as Error | undefined, depth++
  ) {
    const remote = (e as Error & { remoteName?: string }).remoteName
    parts.push(`${e.name}${remote ? `(${remote})` : ''}: ${e.message}`)
  }
  return parts.join(' <- ')
}

/** The API's unknown outcome for a retry its session no longer remembers (`unexpected` in api/consensus.ts). */
export function isOutsideWindow(error: unknown): boolean {
  return (
    error instanceof Error &&
    error.name === 'NoLeaderError' &&
    /was already acknowledged\)$/.test(error.message)
  )
}
