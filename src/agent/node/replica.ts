import type { Entry, Snapshot } from '../../raft/types.ts'
import { NO_SHELL_BUGS, type ShellBugs } from '../../shell-bugs.ts'
import {
  type ApplyOutput,
  type CommandResult,
  type StateEvent,
  StateMachine,
  type StateMachineOptions,
} from '../../state/index.ts'
import { MAX_WAITERS, MAX_WATCHERS, Quota } from '../validate.ts'
import type { Interrupts } from './abort.ts'
import { AppliedWaiters, type Timeout } from './applied-waiters.ts'
import type { ReplicatedApplication } from './raft-runner.ts'

export type StateEventListener = (event: StateEvent, index: number) => void

/**
 * This agent's copy of the coordination state, and the fan-out of what applying it produces. API objects
 * subscribe here for the events they turn into behaviour: watch streams, lock grants, lost locks, leaders.
 */
export class Replica implements ReplicatedApplication {
  state: StateMachine
  private readonly options: StateMachineOptions
  /** Test-only switches of the state machine (`src/shell-bugs.ts`), kept across snapshot restores. */
  private readonly bugs: ShellBugs
  /** Open watch streams on this agent (`MAX_WATCHERS`). */
  readonly watchers = new Quota('open watches', MAX_WATCHERS)
  /** Lock acquisitions and campaigns waiting on this agent (`MAX_WAITERS`). */
  readonly waiters = new Quota('waiting lock acquisitions and campaigns', MAX_WAITERS)
  private readonly eventListeners = new Set<StateEventListener>()
  private readonly restoreListeners = new Set<() => void>()
  private readonly appliedListeners = new Set<(entry: Entry) => void>()
  /** Commands this agent forwarded, by session and seq: answered when their entry applies here. */
  private readonly resultWaiters = new Map<string, (result: CommandResult) => void>()
  /** Calls waiting for this replica to apply an index (`waitApplied`). */
  private readonly appliedWaiters = new AppliedWaiters()

  constructor(options: StateMachineOptions = {}, bugs: ShellBugs = NO_SHELL_BUGS) {
    this.options = options
    this.bugs = bugs
    this.state = new StateMachine(options, bugs)
  }

  apply(entry: Entry): ApplyOutput {
    const before = this.state.appliedIndex
    const output = this.state.apply(entry)
    // Only entries that applied (not those at or below the applied index) reach the members' feed.
    if (this.appliedListeners.size > 0 && this.state.appliedIndex > before) {
      for (const listener of this.appliedListeners) listener(entry)
    }
    if (output.session !== undefined && this.resultWaiters.size > 0) {
      const key = `${output.session.seq}\n${output.session.id}`
      const waiter = this.resultWaiters.get(key)
      if (waiter !== undefined) {
        this.resultWaiters.delete(key)
        waiter(output.result)
      }
    }
    if (output.events.length > 0 && this.eventListeners.size > 0) {
      for (const event of output.events) {
        for (const listener of this.eventListeners) listener(event, entry.index)
      }
    }
    if (this.appliedWaiters.size > 0) this.appliedWaiters.advance(this.state.appliedIndex)
    return output
  }

  restore(snapshot: Snapshot): void {
    this.state = StateMachine.restore(snapshot.data, this.options, this.bugs)
    this.appliedWaiters.advance(this.state.appliedIndex)
    for (const listener of this.restoreListeners) listener()
  }

  snapshot(): Uint8Array {
    return this.state.snapshot()
  }

  /**
   * The result of the command numbered (`sessionId`, `seq`) once its entry applies on this agent; `cancel`
   * forgets the wait. A forwarding agent applies the entry itself and often before the leader's answer
   * arrives (its peers tell it of the commit, see `notify` in the Raft core); the result is the same, the
   * state machine being deterministic. One waiter per (session, seq): a session numbers each command once.
   */
  waitForResult(sessionId: string, seq: number): { result: Promise<CommandResult>; cancel(): void } {
    const key = `${seq}\n${sessionId}`
    const result = new Promise<CommandResult>(resolve => this.resultWaiters.set(key, resolve))
    return { result, cancel: () => this.resultWaiters.delete(key) }
  }

  /**
   * Resolves once this replica applied the entry at `index` (see `AppliedWaiters.wait`): for a call that
   * learned of an entry from the leader's answer and must see it here before it answers its caller.
   */
  waitApplied(index: number, interrupts?: Interrupts, timeout?: Timeout): Promise<void> {
    if (this.state.appliedIndex >= index) return Promise.resolve()
    return this.appliedWaiters.wait(index, interrupts, timeout)
  }

  /** Calls `listener` for every event applied from now on; returns the unsubscribe function. */
  onEvent(listener: StateEventListener): () => void {
    this.eventListeners.add(listener)
    return () => this.eventListeners.delete(listener)
  }

  /** Calls `listener` with every entry this replica applies (what it feeds its members); returns unsubscribe. */
  onApplied(listener: (entry: Entry) => void): () => void {
    this.appliedListeners.add(listener)
    return () => this.appliedListeners.delete(listener)
  }

  /** Calls `listener` after the state was replaced by a snapshot (events in between were not seen). */
  onRestore(listener: () => void): () => void {
    this.restoreListeners.add(listener)
    return () => this.restoreListeners.delete(listener)
  }
}
