import { NO_SHELL_BUGS, type ShellBugs } from '../../src/shell-bugs.ts'
import { encodeEnvelope } from '../../src/state/codec.ts'
import type { Command, Envelope } from '../../src/state/commands.ts'
import type { CommandResult } from '../../src/state/results.ts'
import { type ApplyOutput, StateMachine, type StateMachineOptions } from '../../src/state/state-machine.ts'
import type { TaskConstraintsSpec, TaskSpec } from '../../src/state/task-spec.ts'

export type EnvelopeExtras = Partial<Omit<Envelope, 'command'>>

/**
 * Drives a state machine as a committed log would: consecutive indexes, a leader clock that the test sets
 * (`at`), one envelope per entry.
 */
export class LogDriver {
  readonly machine: StateMachine
  index = 0
  now = 1_000

  /** `bugs`: test-only switches (`src/shell-bugs.ts`). */
  constructor(options?: StateMachineOptions, bugs?: ShellBugs) {
    this.machine = new StateMachine(options, bugs ?? NO_SHELL_BUGS)
  }

  /** Applies `command` as the next entry at the current leader time; returns the output. */
  apply(command: Command, extras: EnvelopeExtras = {}): ApplyOutput {
    return this.applyEnvelope({ ts: this.now, ...extras, command })
  }

  applyEnvelope(envelope: Envelope): ApplyOutput {
    this.index++
    return this.machine.apply({ index: this.index, term: 1, data: encodeEnvelope(envelope) })
  }

  /** Applies the leader's no-op (empty entry). */
  noop(): ApplyOutput {
    this.index++
    return this.machine.apply({ index: this.index, term: 1, data: new Uint8Array() })
  }

  result(command: Command, extras?: EnvelopeExtras): CommandResult {
    return this.apply(command, extras).result
  }

  at(now: number): this {
    this.now = now
    return this
  }

  open(sessionId: string, ttlMs = 10_000, agentId = `agent-${sessionId}`): void {
    const { result } = this.apply({ type: 'openSession', sessionId, agentId, ttlMs })
    if (result.type !== 'session') throw new Error(`openSession failed: ${JSON.stringify(result)}`)
  }
}

export const textDecoder = new TextDecoder()

/** Options of `registerAgent` in tests; the session is `session-<agentId>` unless given. */
export interface TestAgent {
  sessionId?: string
  name?: string
  capabilities?: string[]
  concurrency?: number
  ttlMs?: number
  /** Whether a worker of it runs (absent: the field is left out of the command, which means true). */
  runsTasks?: boolean
}

/** Opens the agent's own session (if not open) and registers it; throws unless both succeed. */
export function registerAgent(log: LogDriver, agentId: string, agent: TestAgent = {}): ApplyOutput {
  const sessionId = agent.sessionId ?? `session-${agentId}`
  if (log.machine.session(sessionId) === undefined) log.open(sessionId, agent.ttlMs ?? 60_000, agentId)
  const output = log.apply({
    type: 'registerAgent',
    agentId,
    name: agent.name ?? agentId,
    sessionId,
    addrs: [`/ip4/127.0.0.1/tcp/4001/p2p/${agentId}`],
    capabilities: agent.capabilities ?? [],
    labels: {},
    concurrency: agent.concurrency ?? 1,
    ...(agent.runsTasks === undefined ? {} : { runsTasks: agent.runsTasks }),
  })
  if (output.result.type !== 'ok') throw new Error(`registerAgent failed: ${JSON.stringify(output.result)}`)
  return output
}

/** A full task for `submitTask`, with the defaults the shell applies (maxRetries 3, timeout 0). */
export function taskSpec(
  id: string,
  options: Partial<Omit<TaskSpec, 'constraints'>> & { constraints?: Partial<TaskConstraintsSpec> } = {},
): TaskSpec {
  const { constraints, ...rest } = options
  return {
    id,
    type: 'test',
    priority: 0,
    payload: {},
    ...rest,
    constraints: { requiredCapabilities: [], maxRetries: 3, timeout: 0, ...constraints },
  }
}

/** Submits a task; throws unless accepted. */
export function submit(
  log: LogDriver,
  id: string,
  options: Parameters<typeof taskSpec>[1] = {},
): ApplyOutput {
  const output = log.apply({ type: 'submitTask', task: taskSpec(id, options) })
  if (output.result.type !== 'taskSubmitted')
    throw new Error(`submitTask failed: ${JSON.stringify(output.result)}`)
  return output
}

/** Claims the task for the agent (with its registered session); returns attempt and token, or throws. */
export function claim(
  log: LogDriver,
  taskId: string,
  agentId: string,
): { attempt: number; fencingToken: number } {
  const sessionId = log.machine.agent(agentId)?.sessionId ?? `session-${agentId}`
  const { result } = log.apply({ type: 'claimTask', taskId, agentId, sessionId })
  if (result.type !== 'taskClaimed') throw new Error(`claimTask failed: ${JSON.stringify(result)}`)
  return { attempt: result.attempt, fencingToken: result.fencingToken }
}

/** Task id to assignee for every task in `ids` that is assigned or running. */
export function placements(machine: StateMachine, ids: string[]): Record<string, string | undefined> {
  const placed: Record<string, string | undefined> = {}
  for (const id of ids) placed[id] = machine.task(id)?.assignee
  return placed
}
