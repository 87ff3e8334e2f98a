import { UnsupportedVersionError } from '../errors.ts'
import type { EntryType } from '../raft/types.ts'
import { NO_SHELL_BUGS, type ShellBugs } from '../shell-bugs.ts'
import { decodeEnvelope, isKnownCommandType, isVoterTarget } from './codec.ts'
import type { Command } from './commands.ts'
import type { ApplyContext } from './context.ts'
import { type ElectionInfo, ElectionTable } from './elections.ts'
import type { StateEvent, TaskChange } from './events.ts'
import type { HistoryResult } from './history.ts'
import { type KeyValue, type KvEntryInfo, type KvListPage, KvStore } from './kv.ts'
import { type LockHolder, type LockInfo, LockTable, type SemaphoreInfo } from './locks.ts'
import { MemberTable, type RegisteredAgent } from './members.ts'
import { type CommandResult, errorResult, OK, UNCHANGED } from './results.ts'
import { type SessionInfo, SessionTable } from './sessions.ts'
import type { TaskHistoryResult } from './task-history.ts'
import { isMaxFinishedTasks } from './task-retention.ts'
import {
  type AgentLoad,
  type DueTaskActions,
  type RepeatInfo,
  type TaskInfo,
  type TaskPage,
  type TaskPlanView,
  type TaskQuery,
  TaskTable,
} from './tasks.ts'
import { checkSnapshot, isBoundedCount, isCount, isRecord } from './validate.ts'
import {
  BASE_COMMAND_SET_VERSION,
  COMMAND_SET_VERSION,
  commandVersion,
  isCommandSetVersion,
  REQUEST_ORDER_VERSION,
} from './versions.ts'

export interface StateMachineOptions {
  /** KV events retained for watches that start in the past (default 10,000). */
  historySize?: number
  /** Answers a session remembers for retries when its client never acknowledges them (default 1,024). */
  maxResultsPerSession?: number
  /**
   * Back-off before retrying a task whose attempt n failed: `retryBackoffBaseMs * 2^(n-1)` (default 1,000),
   * at most `retryBackoffMaxMs` (default 300,000). 0 retries at once.
   */
  retryBackoffBaseMs?: number
  retryBackoffMaxMs?: number
  /**
   * Finished tasks (completed, dead, expired) kept for status queries, the oldest finished dropped first
   * (default 10,000). A dropped task's id may be submitted again. Only the cap of a state where no
   * `setMaxFinishedTasks` was ever committed (the cluster-wide setting, `task-retention.ts`): every replica
   * must use the same value.
   */
  maxFinishedTasks?: number
  /** Affinity keys remembered, least recently used dropped first (default 10,000). */
  maxAffinityKeys?: number
  /**
   * Ms a finished task is kept when it sets no `retention` (default 24 h); the leader proposes forgetting
   * it once that is over on its clock. `maxFinishedTasks` bounds the count whatever the ages.
   */
  defaultRetentionMs?: number
  /** Task changes retained for watches that resume from a revision (default 10,000). */
  taskHistorySize?: number
  /**
   * The highest command-set version this replica applies (default `COMMAND_SET_VERSION`). Lower only to
   * stand for an older agent in tests of rolling upgrades.
   */
  commandSetVersion?: number
}

/** A committed Raft entry, as `Entry` from `raft/types.ts` or just its index, term and data. */
export interface ApplyInput {
  index: number
  term: number
  data: Uint8Array
  /** `config` entries only advance `appliedIndex`. Default `normal`. */
  type?: EntryType
}

export interface ApplyOutput {
  result: CommandResult
  /** Do not mutate: KV events are shared with the watch history. */
  events: readonly StateEvent[]
  /**
   * The session numbering the entry carried, if any: a replica that forwarded the command to the leader
   * answers its caller from here when it applies the entry first.
   */
  session?: { id: string; seq: number }
}

/**
 * What a leader at some wall time should propose: `expireSession {reason: 'ttl'}`, `lockExpire`,
 * `timeoutTask`, `retryDue` and `expireTask` for these.
 */
export interface DueExpiries extends DueTaskActions {
  sessions: string[]
  locks: { key: string; fencingToken: number }[]
}

/** Snapshot format identifiers; `restore` refuses anything else. */
export const SNAPSHOT_FORMAT = 'conclave/state'
export const SNAPSHOT_VERSION = 2
/** Version 1 (no agents, no tasks) still restores, as a state with neither. */
const SUPPORTED_SNAPSHOT_VERSIONS: ReadonlySet<unknown> = new Set([1, 2])

const DEFAULT_HISTORY_SIZE = 10_000
const DEFAULT_MAX_RESULTS_PER_SESSION = 1_024
const DEFAULT_RETRY_BACKOFF_BASE_MS = 1_000
const DEFAULT_RETRY_BACKOFF_MAX_MS = 300_000
const DEFAULT_MAX_FINISHED_TASKS = 10_000
const DEFAULT_MAX_AFFINITY_KEYS = 10_000
const DEFAULT_RETENTION_MS = 24 * 60 * 60 * 1000
const DEFAULT_TASK_HISTORY_SIZE = 10_000
/** The voter target of a state where no `setVoterTarget` was ever applied. */
export const DEFAULT_VOTER_TARGET = 3

const NO_EVENTS: readonly StateEvent[] = Object.freeze([])
const OK_OUTPUT: ApplyOutput = Object.freeze({ result: OK, events: NO_EVENTS })

const encoder = new TextEncoder()
const decoder = new TextDecoder('utf-8', { fatal: true })

/**
 * The replicated coordination state: a pure, deterministic function of the committed log. Replicas that
 * apply the same entries reach the same state, answer the same results and emit the same events. Time comes
 * only from the timestamps the leader writes into envelopes. One module per concern (KV, sessions, locks,
 * elections, agent registry, tasks), composed here; a module holding state for sessions registers as a
 * session-end listener. Every replica must use the same options.
 */
export class StateMachine {
  private appliedIndexValue = 0
  private timeValue = 0
  /** Set by `setVoterTarget`; undefined until then (snapshots without it included). */
  private voterTargetValue: number | undefined
  private readonly options: Required<StateMachineOptions>
  private readonly kv: KvStore
  private readonly sessionTable: SessionTable
  private readonly locks: LockTable
  private readonly elections: ElectionTable
  private readonly members: MemberTable
  private readonly tasks: TaskTable
  private readonly context: ApplyContext = { index: 0, time: 0, events: [] }
  /** Raised by `setClusterVersion` only; `BASE_COMMAND_SET_VERSION` before. */
  private clusterVersionValue = BASE_COMMAND_SET_VERSION
  /** Set when an entry needed a newer version than this replica's: every later `apply` throws it again. */
  private haltedBy?: UnsupportedVersionError

  constructor(options?: StateMachineOptions)
  /**
   * @internal `bugs`: test-only switches (`src/shell-bugs.ts`); every replica must use the same. Stripped
   * from the published declarations.
   */
  constructor(options: StateMachineOptions | undefined, bugs: ShellBugs)
  constructor(options: StateMachineOptions = {}, bugs: ShellBugs = NO_SHELL_BUGS) {
    this.options = {
      historySize: options.historySize ?? DEFAULT_HISTORY_SIZE,
      maxResultsPerSession: options.maxResultsPerSession ?? DEFAULT_MAX_RESULTS_PER_SESSION,
      retryBackoffBaseMs: options.retryBackoffBaseMs ?? DEFAULT_RETRY_BACKOFF_BASE_MS,
      retryBackoffMaxMs: options.retryBackoffMaxMs ?? DEFAULT_RETRY_BACKOFF_MAX_MS,
      maxFinishedTasks: options.maxFinishedTasks ?? DEFAULT_MAX_FINISHED_TASKS,
      maxAffinityKeys: options.maxAffinityKeys ?? DEFAULT_MAX_AFFINITY_KEYS,
      defaultRetentionMs: options.defaultRetentionMs ?? DEFAULT_RETENTION_MS,
      taskHistorySize: options.taskHistorySize ?? DEFAULT_TASK_HISTORY_SIZE,
      commandSetVersion: options.commandSetVersion ?? COMMAND_SET_VERSION,
    }
    if (
      !isCommandSetVersion(this.options.commandSetVersion) ||
      this.options.commandSetVersion > COMMAND_SET_VERSION
    ) {
      throw new RangeError(`commandSetVersion must be an integer in [1, ${COMMAND_SET_VERSION}]`)
    }
    if (!isCount(this.options.historySize)) throw new RangeError('historySize must be an integer >= 0')
    if (!isCount(this.options.maxResultsPerSession) || this.options.maxResultsPerSession < 1) {
      throw new RangeError('maxResultsPerSession must be an integer >= 1')
    }
    // Bounded like entry timestamps, so retryAt = time + back-off stays a safe integer.
    if (!isBoundedCount(this.options.retryBackoffBaseMs) || !isBoundedCount(this.options.retryBackoffMaxMs)) {
      throw new RangeError('retryBackoffBaseMs and retryBackoffMaxMs must be integers in [0, 2^50]')
    }
    if (!isCount(this.options.maxFinishedTasks))
      throw new RangeError('maxFinishedTasks must be an integer >= 0')
    if (!isCount(this.options.maxAffinityKeys))
      throw new RangeError('maxAffinityKeys must be an integer >= 0')
    if (!isBoundedCount(this.options.defaultRetentionMs))
      throw new RangeError('defaultRetentionMs must be an integer in [0, 2^50]')
    if (!isCount(this.options.taskHistorySize))
      throw new RangeError('taskHistorySize must be an integer >= 0')
    this.sessionTable = new SessionTable(this.options.maxResultsPerSession)
    this.kv = new KvStore(this.options.historySize, this.sessionTable, bugs)
    this.locks = new LockTable(this.sessionTable, bugs)
    this.elections = new ElectionTable(this.sessionTable, bugs)
    this.members = new MemberTable(this.sessionTable)
    this.tasks = new TaskTable(this.members, this.sessionTable, this.options, bugs)
    this.members.addListener(this.tasks)
    // Cleanup order when a session ends: locks, candidacies, then its agents (whose tasks the task table
    // takes back, as the registry's listener).
    this.sessionTable.addEndListener(this.locks)
    this.sessionTable.addEndListener(this.elections)
    this.sessionTable.addEndListener(this.members)
    // Last, so the events of the older listeners keep their order: then the session's ephemeral keys go.
    this.sessionTable.addEndListener(this.kv)
  }

  /** Index of the last applied entry. */
  get appliedIndex(): number {
    return this.appliedIndexValue
  }

  /** State time in ms: the highest envelope timestamp applied so far. */
  get time(): number {
    return this.timeValue
  }

  /**
   * The size the leader keeps the Raft voter set at: the last `setVoterTarget` applied, else
   * `DEFAULT_VOTER_TARGET`.
   */
  get voterTarget(): number {
    return this.voterTargetValue ?? DEFAULT_VOTER_TARGET
  }

  /**
   * How many finished tasks the state keeps (oldest dropped first): the last `setMaxFinishedTasks` applied,
   * else the `maxFinishedTasks` option.
   */
  get maxFinishedTasks(): number {
    return this.tasks.maxFinishedTasks
  }

  /** The cluster's command-set version: the last `setClusterVersion` applied, else the base version. */
  get clusterVersion(): number {
    return this.clusterVersionValue
  }

  /** The highest command-set version this replica applies. */
  get commandSetVersion(): number {
    return this.options.commandSetVersion
  }

  /** Why this replica stopped applying (an entry above its version), if it did. */
  get halted(): UnsupportedVersionError | undefined {
    return this.haltedBy
  }

  /** Revision of the last KV mutation. */
  get revision(): number {
    return this.kv.revision
  }

  /**
   * Applies one committed entry. Never throws for bad data: a malformed entry answers `InvalidCommand` and
   * changes nothing but `appliedIndex`, the same on every replica. Entries at or below `appliedIndex`
   * (a replay) answer `AlreadyApplied` and change nothing.
   *
   * Throws `UnsupportedVersionError`, changing nothing (not even `appliedIndex`), for an entry this replica
   * is too old to apply: a command type it does not know, one above its command-set version, or a
   * `setClusterVersion` above it. Skipping such an entry would silently diverge this replica from the
   * others; the caller must stop applying (and every later call throws the same error).
   */
  apply(entry: ApplyInput): ApplyOutput {
    if (this.haltedBy !== undefined) throw this.haltedBy
    if (entry.index <= this.appliedIndexValue) {
      return {
        result: errorResult(
          'AlreadyApplied',
          `entry ${entry.index} is at or below ${this.appliedIndexValue}`,
        ),
        events: NO_EVENTS,
      }
    }
    // The new leader's no-op, and configuration changes, carry no command.
    if (entry.type === 'config' || entry.data.length === 0) {
      this.appliedIndexValue = entry.index
      return OK_OUTPUT
    }
    const decoded = decodeEnvelope(entry.data)
    if (!decoded.ok) {
      const unknownType = newerCommandType(entry.data)
      if (unknownType !== undefined) {
        this.halt(entry.index, `a command of type ${unknownType}, which this version does not know`)
      }
      this.appliedIndexValue = entry.index
      return { result: errorResult('InvalidCommand', decoded.error), events: NO_EVENTS }
    }
    const envelope = decoded.envelope
    const needed = Math.max(
      commandVersion(envelope.command),
      envelope.command.type === 'setClusterVersion' ? envelope.command.version : 0,
    )
    if (needed > this.options.commandSetVersion) {
      this.halt(entry.index, `${envelope.command.type}, which needs command-set version ${needed}`)
    }
    this.appliedIndexValue = entry.index
    // Never backwards, whatever the clocks of successive leaders say.
    if (envelope.ts > this.timeValue) this.timeValue = envelope.ts
    const context = this.context
    context.index = entry.index
    context.time = this.timeValue
    const events: StateEvent[] = []
    context.events = events
    context.request =
      envelope.session !== undefined &&
      envelope.seq !== undefined &&
      this.clusterVersionValue >= REQUEST_ORDER_VERSION
        ? { session: envelope.session, seq: envelope.seq }
        : undefined
    let result: CommandResult
    if (envelope.session !== undefined && envelope.seq !== undefined) {
      const command = envelope.command
      result = this.sessionTable.deduplicate(
        envelope.session,
        envelope.seq,
        envelope.ackedBelow,
        context,
        () => this.execute(command, context),
      )
    } else {
      result = this.execute(envelope.command, context)
    }
    // Any entry may have freed capacity or made tasks pending (even a deduplicated one, by ending an
    // overdue session): place what can be placed before the next entry.
    this.tasks.schedule(context)
    const output: ApplyOutput = { result, events: events.length === 0 ? NO_EVENTS : events }
    if (envelope.session !== undefined && envelope.seq !== undefined) {
      output.session = { id: envelope.session, seq: envelope.seq }
    }
    return output
  }

  /** Stops this replica for good at entry `index` (see `apply`). */
  private halt(index: number, what: string): never {
    this.haltedBy = new UnsupportedVersionError(
      `This agent stopped applying the log at entry ${index}: it holds ${what}; this agent supports ` +
        `command-set version ${this.options.commandSetVersion}. Upgrade it to the version the other agents ` +
        'run; it resumes from that entry.',
    )
    throw this.haltedBy
  }

  get(key: string): KeyValue | undefined {
    return this.kv.get(key)
  }

  /** Keys starting with `prefix` and their records, in byte order. */
  range(prefix: string): [string, KeyValue][] {
    return this.kv.range(prefix)
  }

  /** The key with its revisions, version and owner. */
  getEntry(key: string): KvEntryInfo | undefined {
    return this.kv.entry(key)
  }

  /**
   * At most `limit` keys starting with `prefix` (all keys for ''), after the key `after` if given, in byte
   * order, with the revision they were read at and whether more follow.
   */
  list(prefix: string, options: { limit?: number; after?: string } = {}): KvListPage {
    return this.kv.list(prefix, options.limit, options.after)
  }

  /**
   * KV events with revision >= `fromRevision` on keys starting with `prefix`, in revision order (at most
   * `limit`), or `compacted` if part of that range is no longer retained.
   */
  eventsSince(fromRevision: number, prefix = '', limit?: number): HistoryResult {
    return this.kv.eventsSince(fromRevision, prefix, limit)
  }

  session(sessionId: string): SessionInfo | undefined {
    return this.sessionTable.info(sessionId)
  }

  sessions(): SessionInfo[] {
    return this.sessionTable.list()
  }

  lock(key: string): LockInfo | undefined {
    return this.locks.info(key)
  }

  /** Every holder of every lock and semaphore permit: what the leader times leases from. Do not mutate. */
  lockHolders(): IterableIterator<{ key: string; holder: Readonly<LockHolder> }> {
    return this.locks.holders()
  }

  /** A semaphore's (or lock's) permits, holders and waiters, if held. */
  semaphore(key: string): SemaphoreInfo | undefined {
    return this.locks.semaphoreInfo(key)
  }

  election(name: string): ElectionInfo | undefined {
    return this.elections.info(name)
  }

  agent(agentId: string): RegisteredAgent | undefined {
    return this.members.agent(agentId)
  }

  agentByName(name: string): RegisteredAgent | undefined {
    return this.members.agentByName(name)
  }

  /** Every registered agent, alive or down, in order of first registration. */
  agents(): RegisteredAgent[] {
    return this.members.agents()
  }

  task(taskId: string): TaskInfo | undefined {
    return this.tasks.task(taskId)
  }

  /**
   * Tasks matching `query`, in submission order, after the task `after` (the last id of the previous page),
   * at most `limit`; undefined if `after` is no longer kept.
   */
  listTasks(query: TaskQuery, limit: number, after?: string): TaskPage | undefined {
    return this.tasks.list(query, limit, after)
  }

  /** A repeating task (its template, slots served, occurrences created). */
  repeatingTask(id: string): RepeatInfo | undefined {
    return this.tasks.repeat(id)
  }

  /** Revision of the latest task change (0 before any). */
  get taskRevision(): number {
    return this.tasks.revision
  }

  /** Task changes with revision >= `fromRevision` accepted by `filter` (at most `limit`), or `compacted`. */
  taskChangesSince(
    fromRevision: number,
    filter?: (change: TaskChange) => boolean,
    limit?: number,
  ): TaskHistoryResult {
    return this.tasks.changesSince(fromRevision, filter, limit)
  }

  /** True if no new attempt of tasks of `type` may start. */
  isTaskTypePaused(type: string): boolean {
    return this.tasks.isPaused(type)
  }

  /** What the leader's task planner (`task-planner.ts`) reads. */
  taskPlanView(): TaskPlanView {
    return this.tasks.planView()
  }

  /** Tasks assigned to or running on the agent, in schedule order (priority desc, then submission). */
  tasksAssignedTo(agentId: string): TaskInfo[] {
    return this.tasks.tasksAssignedTo(agentId)
  }

  /** The tasks running on the agent, in no particular order, as stored: read at once, never kept. */
  tasksRunningOn(agentId: string): Iterable<Readonly<TaskInfo>> {
    return this.tasks.runningOn(agentId)
  }

  /** Running and assigned tasks and slots of a registered agent. */
  agentLoad(agentId: string): AgentLoad | undefined {
    return this.tasks.agentLoad(agentId)
  }

  /** What the agent's `next()` should claim: its best assigned task, else a pending one it may take. */
  bestTaskFor(agentId: string): TaskInfo | undefined {
    return this.tasks.bestTaskFor(agentId)
  }

  /** Tasks waiting for an eligible agent with a free slot. */
  get pendingCount(): number {
    return this.tasks.pendingCount
  }

  /**
   * For the leader's housekeeping at wall time `now` (the leader's clock, which the next entry's timestamp
   * will carry): sessions and locks whose lease has run out, attempts past their timeout, failed tasks due
   * for retry, tasks past their deadline. Proposing `expireSession {reason: 'ttl'}`, `lockExpire`,
   * `timeoutTask`, `retryDue` and `expireTask` for them is always safe: each re-checks against state time
   * when applied.
   */
  dueExpiries(now: number): DueExpiries {
    return {
      sessions: this.sessionTable.due(now),
      locks: this.locks.due(now),
      ...this.tasks.due(now),
    }
  }

  /**
   * The complete state (KV, history, sessions with dedup tables, locks, elections, agents, tasks, voter
   * target, time, appliedIndex).
   */
  snapshot(): Uint8Array {
    const snapshot: Record<string, unknown> = {
      format: SNAPSHOT_FORMAT,
      version: SNAPSHOT_VERSION,
      appliedIndex: this.appliedIndexValue,
      time: this.timeValue,
      kv: this.kv.toSnapshot(),
      sessions: this.sessionTable.toSnapshot(),
      locks: this.locks.toSnapshot(),
      elections: this.elections.toSnapshot(),
      agents: this.members.toSnapshot(),
      tasks: this.tasks.toSnapshot(),
    }
    // Only once set: a state that never had one keeps the bytes it had before the field existed.
    if (this.voterTargetValue !== undefined) snapshot.voterTarget = this.voterTargetValue
    if (this.clusterVersionValue !== BASE_COMMAND_SET_VERSION)
      snapshot.clusterVersion = this.clusterVersionValue
    // Only once committed, like the voter target: older snapshots keep the option's cap.
    const maxFinished = this.tasks.maxFinishedSetting
    if (maxFinished !== undefined) snapshot.maxFinishedTasks = maxFinished
    return encoder.encode(JSON.stringify(snapshot))
  }

  /**
   * A state machine in the state `snapshot()` captured. Throws on bytes that are not a snapshot of this
   * format and version: restoring from a corrupt snapshot must stop the node, not diverge it.
   * An empty `bytes` (a new cluster's initial snapshot) gives an empty state machine.
   */
  static restore(bytes: Uint8Array, options?: StateMachineOptions): StateMachine
  /** @internal With test-only switches (`src/shell-bugs.ts`). Stripped from the published declarations. */
  static restore(bytes: Uint8Array, options: StateMachineOptions | undefined, bugs: ShellBugs): StateMachine
  static restore(
    bytes: Uint8Array,
    options: StateMachineOptions = {},
    bugs: ShellBugs = NO_SHELL_BUGS,
  ): StateMachine {
    const machine = new StateMachine(options, bugs)
    if (bytes.length === 0) return machine
    let parsed: unknown
    try {
      parsed = JSON.parse(decoder.decode(bytes))
    } catch (cause) {
      throw new Error('Invalid state snapshot: not UTF-8 JSON', { cause })
    }
    checkSnapshot(isRecord(parsed) && parsed.format === SNAPSHOT_FORMAT, 'unknown format')
    checkSnapshot(
      SUPPORTED_SNAPSHOT_VERSIONS.has(parsed.version),
      `unsupported version ${String(parsed.version)}`,
    )
    checkSnapshot(isCount(parsed.appliedIndex) && isCount(parsed.time), 'appliedIndex or time')
    machine.appliedIndexValue = parsed.appliedIndex
    machine.timeValue = parsed.time
    // Optional within version 2: absent in snapshots of states that never set it (the default applies).
    checkSnapshot(parsed.voterTarget === undefined || isVoterTarget(parsed.voterTarget), 'voterTarget')
    machine.voterTargetValue = parsed.voterTarget as number | undefined
    // Optional too: absent while the cluster runs the base command set.
    const clusterVersion = parsed.clusterVersion ?? BASE_COMMAND_SET_VERSION
    checkSnapshot(isCommandSetVersion(clusterVersion), 'clusterVersion')
    if (clusterVersion > machine.options.commandSetVersion) {
      throw new UnsupportedVersionError(
        `The state snapshot is of a cluster at command-set version ${clusterVersion}; this agent supports ` +
          `version ${machine.options.commandSetVersion}. Upgrade it to the version the other agents run.`,
      )
    }
    machine.clusterVersionValue = clusterVersion
    checkSnapshot(
      parsed.maxFinishedTasks === undefined || isMaxFinishedTasks(parsed.maxFinishedTasks),
      'maxFinishedTasks',
    )
    machine.tasks.restoreMaxFinished(parsed.maxFinishedTasks as number | undefined)
    machine.kv.restore(parsed.kv)
    machine.sessionTable.restore(parsed.sessions)
    machine.locks.restore(parsed.locks)
    machine.elections.restore(parsed.elections)
    if (parsed.version !== 1) {
      machine.members.restore(parsed.agents)
      machine.tasks.restore(parsed.tasks)
    }
    return machine
  }

  private execute(command: Command, context: ApplyContext): CommandResult {
    switch (command.type) {
      case 'put':
        return this.kv.put(command, context)
      case 'delete':
        return this.kv.delete(command, context)
      case 'openSession':
        return this.sessionTable.open(command, context)
      case 'keepAlive':
        return this.sessionTable.keepAlive(command, context)
      case 'closeSession':
        return this.sessionTable.close(command, context)
      case 'expireSession':
        return this.sessionTable.expire(command, context)
      case 'lockAcquire':
        return this.locks.acquire(command, context)
      case 'lockRelease':
        return this.locks.release(command, context)
      case 'lockExtend':
        return this.locks.extend(command, context)
      case 'lockCancel':
        return this.locks.cancel(command, context)
      case 'lockExpire':
        return this.locks.expire(command, context)
      case 'campaign':
        return this.elections.campaign(command, context)
      case 'resign':
        return this.elections.resign(command, context)
      case 'registerAgent':
        return this.members.register(command, context)
      case 'openSessionAndRegister':
        return this.members.openSessionAndRegister(command, context)
      case 'updateAgent':
        return this.members.update(command, context)
      case 'deregisterAgent':
        return this.members.deregister(command, context)
      case 'submitTask':
        return this.tasks.submit(command, context)
      case 'claimTask':
        return this.tasks.claim(command, context)
      case 'completeTask':
        return this.tasks.complete(command, context)
      case 'failTask':
        return this.tasks.fail(command, context)
      case 'stealTask':
        return this.tasks.steal(command, context)
      case 'timeoutTask':
        return this.tasks.timeout(command, context)
      case 'retryDue':
        return this.tasks.retryDue(command, context)
      case 'expireTask':
        return this.tasks.expire(command, context)
      case 'cancelTask':
        return this.tasks.cancel(command, context)
      case 'submitTasks':
        return this.tasks.submitMany(command, context)
      case 'runTasks':
        return this.tasks.run(command, context)
      case 'setMaxFinishedTasks':
        return this.tasks.setMaxFinished(command)
      case 'setVoterTarget':
        if (command.voters === this.voterTargetValue) return UNCHANGED
        this.voterTargetValue = command.voters
        return OK
      case 'putEphemeral':
        return this.kv.putEphemeral(command, context)
      case 'txn':
        return this.kv.txn(command, context)
      case 'semaphoreAcquire':
        return this.locks.acquireSemaphore(command, context)
      case 'proclaim':
        return this.elections.proclaim(command, context)
      case 'pauseTasks':
        return this.tasks.pause(command, context)
      case 'resumeTasks':
        return this.tasks.resume(command)
      case 'taskProgress':
        return this.tasks.progress(command, context)
      case 'releaseTask':
        return this.tasks.releaseDelayed(command, context)
      case 'createOccurrence':
        return this.tasks.createOccurrence(command, context)
      case 'forgetTasks':
        return this.tasks.forget(command)
      case 'setClusterVersion':
        if (command.version <= this.clusterVersionValue) return UNCHANGED
        this.clusterVersionValue = command.version
        return OK
    }
  }
}

/**
 * The command type of entry data that failed to decode, if it names a type this code does not know: a
 * command from a newer version (or garbage that looks like one; either way this replica cannot apply it).
 * Data without a string command type is plain garbage, answered `InvalidCommand` on every replica.
 */
function newerCommandType(data: Uint8Array): string | undefined {
  let parsed: unknown
  try {
    parsed = JSON.parse(decoder.decode(data))
  } catch {
    return undefined
  }
  if (!isRecord(parsed) || !isRecord(parsed.command)) return undefined
  const type = parsed.command.type
  if (typeof type !== 'string' || isKnownCommandType(type)) return undefined
  // Bounded, as it goes into a log line and an error message.
  return JSON.stringify(type.slice(0, 64))
}
