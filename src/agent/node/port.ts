/**
 * The narrow interfaces between the parts of an agent. Each part takes the ports it needs in its
 * constructor and never another part's `this`, so the composition root (`service.ts`) decides what
 * implements them: an agent that holds the Raft log (a replica) passes its runner host; one that holds none
 * (a member, to come) passes a port that forwards to a replica instead.
 */

import type { Command, CommandResult } from '../../state/index.ts'
import type { MemberStatus } from '../../swim/types.ts'
import type { RaftRunner } from './raft-runner.ts'

/** The Raft runner of an agent that holds the log; none before it joins a cluster or after it leaves. */
export interface RunnerPort {
  /** The runner, while there is one. */
  current(): RaftRunner | undefined
  /** The runner: `ClosedError` once the agent stopped, `NoLeaderError` before it joined. */
  require(): RaftRunner
}

/** Who leads as this agent knows it ('' when no one), and a wait for that to change. */
export interface LeaderPort {
  readonly leader: string
  /** Resolves at the next leader change or after `ms`, whichever is first; `AbortError` on abort. */
  waitChange(ms: number, signal?: AbortSignal): Promise<void>
}

/** Gets a command without session numbering into the log (idempotent commands: housekeeping, meta). */
export interface CommitPort {
  submitRaw(command: Command, deadline: number, signal?: AbortSignal): Promise<CommandResult>
  /** The deadline of an operation started now (monotonic ms). */
  deadline(): number
}

/** This agent's liveness view of the others (SWIM membership). */
export interface LivenessPort {
  status(id: string): MemberStatus | undefined
  /** How long `id` has been down (ms), if it is. */
  downFor(id: string): number | undefined
  /** The members the view holds dead or left. */
  down(): string[]
}
