import type { Rpc } from '../../net/rpc.ts'
import type { ShellBugs } from '../../shell-bugs.ts'
import type { Command } from '../../state/index.ts'
import type { Scheduler } from '../../time/index.ts'
import type { ClientContext } from './client.ts'
import type { LeaderTracker } from './leader-tracker.ts'
import { FORWARD_PROTOCOL } from './proposer.ts'
import type { RaftHost } from './raft-host.ts'
import type { Replica } from './replica.ts'
import type { SessionKeeper } from './session.ts'

/** The node parts a replica's client reaches the log through. */
export interface ReplicaClientPorts {
  selfId: string
  tracker: LeaderTracker
  host: RaftHost
  replica: Replica
  session: SessionKeeper
  rpc: Pick<Rpc, 'callRpc'>
  /** Throws `UnauthorizedError` for a command this agent's own identity may not send. */
  authorization: { authorizeOwn(command: Command): void }
  /** On the leader: throws `UnsupportedVersionError` for a command above the cluster version. */
  admitCommand(command: Command): void
  operationTimeoutMs: number
  scheduler: Scheduler
  closed: AbortSignal
  /** Test-only switches (`src/shell-bugs.ts`) for the proposer. */
  bugs?: ShellBugs
  /** While this agent is a member (no runner): reads through a replica (`Mirror`). */
  member?: {
    readonly active: boolean
    readIndex(signal?: AbortSignal): Promise<void>
    /** A forwarded command was answered before this copy applied it: the copy should catch up soon. */
    expect?(): void
  }
}

/**
 * How the client of an agent that holds the log gets a command committed: proposed through its own runner
 * when it leads, forwarded to the leader otherwise, and answered by its own replica when that applies the
 * entry first. A member (no log) forwards every command and reads through a replica (`member`).
 */
export function replicaClientContext(ports: ReplicaClientPorts): ClientContext {
  const { selfId, tracker, host, replica, session, rpc, authorization, scheduler, closed } = ports
  return {
    selfId,
    leader: () => tracker.leader,
    proposeLocal: (data, waiter) => host.proposeLocal(data, undefined, waiter),
    forward: (leader, request, timeoutMs, signal) =>
      rpc.callRpc(leader, FORWARD_PROTOCOL, request, { timeoutMs, signal }),
    appliedHere: (sessionId, seq) => {
      const waiting = replica.waitForResult(sessionId, seq)
      const member = ports.member
      if (member?.active !== true || member.expect === undefined) return waiting
      // Given up before it applied here (the leader answered first): tell the member's feed it is owed it.
      let applied = false
      void waiting.result.then(() => {
        applied = true
      })
      return {
        result: waiting.result,
        cancel: () => {
          waiting.cancel()
          if (!applied) member.expect?.()
        },
      }
    },
    leaderChange: (ms, signal) => tracker.waitChange(ms, signal),
    admitCommand: ports.admitCommand,
    halted: () => host.halted,
    scheduler,
    bugs: ports.bugs,
    get closed() {
      return closed.aborted
    },
    get runner() {
      const { member } = ports
      if (member?.active === true && host.current() === undefined && !closed.aborted) return member
      return host.require()
    },
    session,
    operationTimeoutMs: ports.operationTimeoutMs,
    authorize: command => authorization.authorizeOwn(command),
  }
}
