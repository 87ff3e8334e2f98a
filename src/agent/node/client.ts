import { AbortError, ClosedError, NoLeaderError } from '../../errors.ts'
import type { Command, CommandResult } from '../../state/index.ts'
import { settlesWithin } from './abort.ts'
import { type ProposalAttempts, type ProposeOptions, type ProposerContext, propose } from './proposer.ts'
import type { RaftRunner } from './raft-runner.ts'
import { localError } from './remote-errors.ts'
import type { SessionKeeper } from './session.ts'

export interface ClientContext extends ProposerContext {
  /** Where linearizable reads get their read point: the runner, or for a member a replica (`Mirror`). */
  readonly runner: Pick<RaftRunner, 'readIndex'>
  readonly session: SessionKeeper
  readonly operationTimeoutMs: number
  /** Throws `UnauthorizedError` for a command this agent's own identity may not send. */
  authorize?(command: Command): void
}

/**
 * How every API call reaches the replicated state: commands go through the log (exactly once when they
 * carry the session's numbering), linearizable reads wait on a ReadIndex barrier. Each call is bounded by
 * the caller's signal and the agent's operation timeout.
 */
/**
 * One command this agent got into the log (or failed to), timed from its proposal to its result: `refused`
 * when it committed but the state machine refused it, `failed` when no result came (a timeout, say).
 */
export interface ProposalRecord {
  command: string
  seconds: number
  outcome: 'ok' | 'refused' | 'failed'
}

export class Client {
  private readonly proposalListeners = new Set<(record: ProposalRecord) => void>()
  private readonly context: ClientContext

  constructor(context: ClientContext) {
    this.context = context
  }

  /** This agent's session: what ephemeral keys, locks and candidacies are bound to. */
  get session(): SessionKeeper {
    return this.context.session
  }

  deadline(): number {
    return this.context.scheduler.now() + this.context.operationTimeoutMs
  }

  /** Commit `command` numbered by this agent's session, so that retries apply it at most once. */
  /**
   * With `handlesSessionExpiry`, a `SessionExpired` answer is returned for the caller to act on (locks,
   * elections and tasks re-establish what they need under a new session); otherwise it rejects with
   * `NoLeaderError`, as the command's outcome is then unknown.
   */
  async submit(
    command: Command,
    signal?: AbortSignal,
    options: { handlesSessionExpiry?: boolean } = {},
  ): Promise<CommandResult> {
    this.check(signal)
    this.context.authorize?.(command)
    const deadline = this.deadline()
    const { session } = this.context
    // Not joined: fail now rather than wait for a leader (the runner getter throws NoLeaderError).
    void this.context.runner
    for (;;) {
      // Between sessions (reopening after an expiry, or resuming after a restart): wait for the new one.
      if (session.id === '') await session.open(deadline)
      const ticket = session.ticket()
      const attempts: ProposalAttempts = { uncertain: 0 }
      let result: CommandResult
      try {
        result = await this.propose(command, { signal, deadline, session: ticket, attempts })
      } finally {
        session.done(ticket)
      }
      if (
        result.type !== 'error' ||
        result.code !== 'SessionExpired' ||
        options.handlesSessionExpiry === true
      ) {
        return result
      }
      session.ended(ticket.id)
      // The session lapsed before the command applied. When the answered try is the only one that reached a
      // log, the command never applied, and it goes again under the next session: an agent cut off for longer
      // than its session's ttl would otherwise fail what it sends just after it is back, before it learns of
      // the lapse (simulator, 5 agents, seed 1462: a write 17 ticks after the faults). Otherwise a resend of it
      // may have applied before the lapse: the outcome is unknown, the documented meaning of NoLeaderError.
      if (attempts.uncertain <= 1 && this.context.scheduler.now() < deadline) continue
      throw new NoLeaderError(
        'The session expired while the operation was in flight; it may or may not have taken effect',
      )
    }
  }

  /** Commit a command that needs no numbering (idempotent by construction). */
  async submitRaw(command: Command, deadline: number, signal?: AbortSignal): Promise<CommandResult> {
    this.check(signal)
    this.context.authorize?.(command)
    return this.propose(command, { signal, deadline })
  }

  /** Calls `listener` for every command this agent proposes or forwards (metrics); returns unsubscribe. */
  onProposal(listener: (record: ProposalRecord) => void): () => void {
    this.proposalListeners.add(listener)
    return () => this.proposalListeners.delete(listener)
  }

  /** `propose`, with the leader's definite refusals (this agent's identity, say) as the typed errors they are. */
  private async propose(command: Command, options: ProposeOptions): Promise<CommandResult> {
    const started = this.context.scheduler.now()
    try {
      const result = await propose(this.context, command, options)
      this.report(command, started, result.type === 'error' ? 'refused' : 'ok')
      return result
    } catch (err) {
      this.report(command, started, 'failed')
      throw localError(err)
    }
  }

  private report(command: Command, started: number, outcome: ProposalRecord['outcome']): void {
    if (this.proposalListeners.size === 0) return
    const record = {
      command: command.type,
      seconds: (this.context.scheduler.now() - started) / 1000,
      outcome,
    }
    for (const listener of this.proposalListeners) listener(record)
  }

  /**
   * Resolves once this agent's state reflects every write acknowledged before the call: the leader
   * confirmed it still leads (a heartbeat round) and this agent applied up to the leader's commit index.
   */
  async barrier(signal?: AbortSignal): Promise<void> {
    this.check(signal)
    const deadline = this.deadline()
    const { runner } = this.context
    for (;;) {
      const remaining = deadline - this.context.scheduler.now()
      if (remaining <= 0) throw new NoLeaderError('No leader confirmed a read point in time')
      // A request that meets no leader is dropped by the core; ask again after an election timeout's worth.
      const attempt = new AbortController()
      const settled = await settlesWithin(
        runner.readIndex(attempt.signal),
        Math.min(remaining, 500),
        { signal },
        this.context.scheduler,
      )
      if (settled) return
      attempt.abort()
      if (this.context.closed) throw new ClosedError()
    }
  }

  private check(signal?: AbortSignal): void {
    if (this.context.closed) throw new ClosedError()
    if (signal?.aborted) throw new AbortError()
  }
}
