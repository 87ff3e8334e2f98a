import type { Logger } from '@libp2p/interface'
import { ClosedError, NoLeaderError } from '../../errors.ts'
import type { RaftCoreOptions } from '../../raft/core-options.ts'
import type { Config, Message, NodeId, Random } from '../../raft/types.ts'
import type { ShellBugs } from '../../shell-bugs.ts'
import type { ApplyOutput, CommandResult } from '../../state/index.ts'
import type { RaftStorage, StorageFailedError } from '../../storage/index.ts'
import type { Scheduler } from '../../time/index.ts'
import type { ResolvedTiming } from '../options.ts'
import type { LeaderTracker } from './leader-tracker.ts'
import type { RunnerPort } from './port.ts'
import { RaftRunner, type ReadObserver } from './raft-runner.ts'
import type { Replica } from './replica.ts'

export interface RaftHostInit {
  selfId: NodeId
  replica: Replica
  tracker: LeaderTracker
  timing: ResolvedTiming
  raftOptions: Partial<RaftCoreOptions>
  random: Random
  log: Logger
  /** Hands a message to the transport (after the sender-side policy check); must not block. */
  send(message: Message): void
  /**
   * The configuration may have changed (applied, or a new leader's); `applied`: the configuration entry
   * this agent just applied, and its index (for observers such as the simulator's checkers).
   */
  onConfigChange(applied?: { config: Config; index: number }): void
  /**
   * Whether `from` may send `message` (the policy gate): at once for a known peer, after its identity
   * exchange for a new one.
   */
  admit(message: Message, from: string): true | Promise<boolean>
  /** Whether `from` is in the configuration (the member gate). */
  isMember(from: string): boolean
  /** The agent stopped: every call then fails with `ClosedError`. */
  closed: AbortSignal
  /** The runner stopped applying the log for good (see `halted`). */
  onHalt?(error: Error): void
  scheduler: Scheduler
  /** The storage failed and the runner stopped for good: the agent must stop (see `RaftRunnerInit`). */
  onFailStop?(error: StorageFailedError): void
  /** Test-only switches (`src/shell-bugs.ts`) for the runner. */
  bugs?: ShellBugs
  /** Observers of the runner's linearizable reads (see `RaftRunnerInit.observeReads`). */
  observeReads?: ReadObserver
}

/**
 * What makes an agent a replica: the Raft runner over its storage and replica, from join (or a restart as
 * a member) until leave or stop, and what the rest of the agent reads of it: who leads and since when, when
 * this agent last heard from a leader, and local proposals.
 */
export class RaftHost implements RunnerPort {
  private readonly init: RaftHostInit
  private runner?: RaftRunner
  /** When this agent last heard from a leader (or led), monotonic ms: see `Rejoiner`. */
  leaderContact = 0
  /** Since when this agent leads, on its monotonic clock and in state time; undefined when it does not. */
  leaderSince?: { local: number; stateTime: number }
  /** Why the runner stopped applying the log (see `RaftRunnerInit.onHalt`): every call then fails with it. */
  halted?: Error

  /** The role and term last logged (`onSoftState` also fires for changes of neither). */
  private role = ''
  private term = 0

  constructor(init: RaftHostInit) {
    this.init = init
  }

  current(): RaftRunner | undefined {
    return this.runner
  }

  require(): RaftRunner {
    if (this.init.closed.aborted) throw new ClosedError()
    if (this.halted !== undefined) throw this.halted
    if (this.runner === undefined) throw new NoLeaderError('The agent has not joined a cluster')
    return this.runner
  }

  isLeader(): boolean {
    return this.init.tracker.leader === this.init.selfId
  }

  start(storage: RaftStorage): RaftRunner {
    const { selfId, replica, tracker, timing } = this.init
    this.runner = new RaftRunner({
      id: selfId,
      scheduler: this.init.scheduler,
      storage,
      application: replica,
      send: this.init.send,
      random: this.init.random,
      tickMs: timing.tickMs,
      snapshotEntries: timing.snapshotEntries,
      raftOptions: this.init.raftOptions,
      log: this.init.log,
      onConfigApplied: (config, index) => this.init.onConfigChange({ config, index }),
      onFailStop: error => this.init.onFailStop?.(error),
      bugs: this.init.bugs,
      observeReads: this.init.observeReads,
      onHalt: error => {
        this.halted = error
        this.leaderSince = undefined
        tracker.update('', 0)
        this.init.onHalt?.(error)
      },
      onSoftState: (state, term) => {
        if (state.role !== this.role || term !== this.term) {
          // Counted by the benchmarks (elections and leader changes under load): one line per change.
          this.init.log('raft: %s in term %d, leader %s', state.role, term, state.leader || 'none')
          this.role = state.role
          this.term = term
        }
        this.init.onConfigChange()
        if (state.leader !== '') this.leaderContact = this.init.scheduler.now()
        if (state.role === 'leader' && state.leader === selfId) {
          this.leaderSince = { local: this.init.scheduler.now(), stateTime: replica.state.time }
        } else {
          this.leaderSince = undefined
        }
        tracker.update(state.leader, term)
      },
    })
    this.leaderContact = this.init.scheduler.now()
    this.runner.start()
    return this.runner
  }

  /** Stops the runner (leave, stop); the agent is then in no cluster. */
  stop(): void {
    this.runner?.stop()
    this.runner = undefined
  }

  /**
   * Every inbound Raft message passes the policy gate (the sender may send this type: `vote` for what
   * candidates and leaders send, `join` for what followers answer) and the member gate (the sender is in
   * the configuration). A new peer's first message waits for its identity exchange, and the transport stops
   * reading that stream meanwhile.
   */
  receive(message: Message, from: string): void | Promise<void> {
    const admitted = this.init.admit(message, from)
    if (admitted === true) return this.step(message, from)
    return admitted.then(ok => {
      if (ok) this.step(message, from)
    })
  }

  /** A Raft message that passed the policy gate: to the runner if its sender is a member, noting a leader's contact. */
  private step(message: Message, from: string): void {
    const runner = this.runner
    if (runner === undefined || !this.init.isMember(from)) return
    if (message.type === 'append' || message.type === 'heartbeat' || message.type === 'snapshot') {
      this.leaderContact = this.init.scheduler.now()
    }
    runner.step(message)
  }

  /**
   * Propose on this agent as leader; the result is the state machine's answer to the command. `origin`:
   * the agent that forwarded it. `waiter`: the command's identity across retries (`proposalKey`).
   */
  async proposeLocal(data: Uint8Array, origin?: string, waiter?: string): Promise<CommandResult> {
    const output = (await this.require().propose(data, origin, waiter)) as ApplyOutput
    return output.result
  }
}
