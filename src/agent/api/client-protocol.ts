/**
 * The client protocol `/conclave/client/1.0.0`: how programs that are not members (the `conclave` CLI)
 * use a cluster. A client is not a member because joining would churn the Raft configuration per command;
 * instead it asks any agent, which runs the request with its own API and answers.
 *
 * A request is the JSON `{ op, args }` of one of `ClientOps`, the answer the JSON of its result. A failure
 * reaches the caller as an RPC error carrying the error's name (`NoLeaderError`, `InvalidArgumentError`,
 * ...). Waiting operations are long polls bounded by `waitMs`, so that no call outlives the RPC timeout
 * and a client that goes away leaves nothing waiting for long: see `ClientLeases`.
 */

import type {
  ConclaveApi,
  ConsensusEvent,
  DistributedTask,
  KvEntry,
  TaskEvent,
  TaskInput,
  TaskStatus,
  TxnRequest,
} from '../../api.ts'
import { type SnapshotChunk, SnapshotTransfers } from '../../backup/snapshot-transfers.ts'
import { type SavedSnapshot, saveSnapshot, snapshotSourceOf } from '../../backup/take-snapshot.ts'
import { ClosedError, InvalidArgumentError, LimitExceededError, NotVoterError } from '../../errors.ts'
import type { RpcHandler } from '../../net/rpc.ts'
import type { Action } from '../../security/policy.ts'
import type { Scheduler } from '../../time/scheduler.ts'
import type { FeedAnswer, FeedSnapshotChunk, ReplicaFeed } from '../node/replica-feed.ts'
import {
  checkKey,
  checkOptions,
  checkPrefix,
  checkRevision,
  checkTtl,
  MAX_VALUE_BYTES,
  MAX_WATCHERS,
  Quota,
} from '../validate.ts'
import { type CampaignPoll, ClientLeases, type LockPoll } from './client-leases.ts'
import { longPoll } from './long-poll.ts'
import { type TaskFilterWire, taskEvents, taskFilter, taskListOptions } from './tasks/client-ops.ts'
import {
  type AttemptPoll,
  type ClientAttempt,
  ClientTaskWorkers,
  settleOutcome,
} from './tasks/client-workers.ts'

export const CLIENT_PROTOCOL = '/conclave/client/1.0.0'

/** Largest request: a value of the largest size plus room for the key and the envelope. */
export const MAX_CLIENT_REQUEST_BYTES = MAX_VALUE_BYTES + 64 * 1024
/** Longest long poll. */
export const MAX_WAIT_MS = 60_000
/** How long a pending lock acquisition or candidacy waits for its client's next poll. */
export const POLL_GRACE_MS = 5_000
/** Most events one `kv.events` answer carries. */
export const MAX_EVENTS_PER_POLL = 1_000
/**
 * Long polls (`kv.events`, `lock.acquire`, `elect.campaign`) one client peer may have waiting at once on
 * this agent: without it, 42 peer ids filled the agent's 10,000 watches and its own `watch()` failed.
 */
export const MAX_POLLS_PER_CLIENT = 64
/** Long polls of all clients together: half of `MAX_WATCHERS`, so the agent's own watches always have room. */
export const MAX_CLIENT_POLLS = MAX_WATCHERS / 2
/** An answer stops taking events past this many bytes of JSON (a single event may exceed it). */
const EVENT_BYTES_PER_POLL = 1024 * 1024

/** What a value of type `T` becomes as JSON: dates as ISO strings, bigints as decimal strings. */
export type Wire<T> = T extends Date
  ? string
  : T extends bigint
    ? string
    : T extends (infer U)[]
      ? Wire<U>[]
      : T extends object
        ? { [K in keyof T]: Wire<T[K]> }
        : T

export interface MemberStatus {
  id: string
  name: string
  addrs: string[]
  capabilities: string[]
  labels: Record<string, string>
  role: 'voter' | 'nonvoter'
  status: 'alive' | 'suspect' | 'dead' | 'left'
  load: number
  lastSeen: string
  /** With SPIFFE identities on. */
  spiffeId?: string
}

/** The answer to `status`: the cluster as the serving agent sees it. */
export interface ClusterStatus {
  agent: { id: string; name: string; addrs: string[]; isLeader: boolean }
  /** Leader id, '' if none is known. */
  leader: string
  /** The serving agent's Raft term. */
  term: number
  healthy: boolean
  memberCount: number
  healthyCount: number
  members: MemberStatus[]
  /** The command-set version the cluster runs; absent from an agent older than it. */
  clusterVersion?: number
  /** The newest command-set version the serving agent supports; absent from an agent older than it. */
  supportedVersion?: number
}

export type { CampaignPoll, LockPoll }

type Empty = Record<string, never>

/** Every operation: its arguments and its answer. */
export interface ClientOps {
  status: { args: Empty; result: ClusterStatus }
  'kv.put': {
    args: { key: string; value: unknown; expectedRevision?: number }
    result: { revision: number }
  }
  'kv.get': {
    args: { key: string; consistency?: 'linearizable' | 'local' }
    result: { found: boolean; value?: unknown }
  }
  'kv.delete': { args: { key: string; expectedRevision?: number }; result: { revision: number } }
  /** `ConsensusProtocol.getEntry`: the value with its revisions. */
  'kv.getEntry': {
    args: { key: string; consistency?: 'linearizable' | 'local' }
    result: { found: boolean; entry?: KvEntry }
  }
  /** `ConsensusProtocol.list`: one page of keys under `prefix`, in byte order, at one revision. */
  'kv.list': {
    args: { prefix: string; limit?: number; after?: string; consistency?: 'linearizable' | 'local' }
    result: { entries: KvEntry[]; revision: number; more: boolean }
  }
  /**
   * `ConsensusProtocol.transaction`. No ephemeral puts: they would live as long as the serving agent's
   * session, not the client's.
   */
  'kv.txn': { args: { request: TxnRequest }; result: { succeeded: boolean; revision: number } }
  /**
   * Events under `prefix` from `fromRevision` (default: the serving agent's next revision), waiting up to
   * `waitMs` for at least one. Poll again from `nextRevision`: no revision is skipped or repeated.
   */
  'kv.events': {
    args: { prefix?: string; fromRevision?: number; waitMs?: number; maxEvents?: number }
    result: { events: Wire<ConsensusEvent>[]; nextRevision: number }
  }
  /**
   * Starts an acquisition (`key`, `ttl`; `permits` > 1: a permit of that semaphore) or polls one (`handle`),
   * waiting up to `waitMs`.
   */
  'lock.acquire': {
    args:
      | { key: string; ttl: number; waitMs?: number; permits?: number }
      | { handle: string; waitMs?: number }
    result: LockPoll
  }
  'lock.extend': { args: { handle: string; ttl?: number }; result: Empty }
  'lock.release': { args: { handle: string }; result: Empty }
  'task.submit': { args: { task: Wire<TaskInput> }; result: Wire<DistributedTask> }
  'task.status': { args: { id: string }; result: Wire<TaskStatus> }
  /** A page of tasks in submission order (`TaskDistributor.list`); `after` = the last id seen. */
  'task.list': {
    args: { filter?: TaskFilterWire; limit?: number; after?: string }
    result: { tasks: Wire<TaskStatus>[]; more: boolean }
  }
  'task.cancel': { args: { id: string; reason?: string }; result: Empty }
  /**
   * Task changes the filter accepts from `fromRevision` (default: the serving agent's next task revision),
   * waiting up to `waitMs` for at least one. Poll again from `nextRevision`: no change skipped or repeated.
   */
  'task.events': {
    args: { filter?: TaskFilterWire; fromRevision?: number; waitMs?: number; maxEvents?: number }
    result: { events: Wire<TaskEvent>[]; nextRevision: number }
  }
  /** Claims the next task (of `type` if given) for this client, waiting up to `waitMs`; `{}` if none. */
  'task.next': { args: { type?: string; waitMs?: number }; result: { task?: ClientAttempt } }
  /** Waits up to `waitMs` for the attempt to end (cancelled, timed out...); polling keeps it this client's. */
  'task.attempt': { args: { handle: string; waitMs?: number }; result: AttemptPoll }
  'task.progress': { args: { handle: string; progress: unknown }; result: Empty }
  /** Ends the attempt: exactly one of `result` and `error`. */
  'task.settle': { args: { handle: string; result?: unknown; error?: string }; result: Empty }
  /** Starts a candidacy (`name`, `ttl`: how long leadership lasts without `elect.extend`) or polls one. */
  'elect.campaign': {
    args:
      | { name: string; ttl: number; waitMs?: number; value?: unknown }
      | { handle: string; waitMs?: number }
    result: CampaignPoll
  }
  'elect.extend': { args: { handle: string }; result: { term: number } }
  'elect.resign': { args: { handle: string }; result: Empty }
  /**
   * A consistent snapshot file of the cluster (see `saveSnapshot`), in chunks: without `handle` the agent
   * takes it and answers the first chunk; then pass `handle` and the next `offset` until `totalBytes`.
   */
  'snapshot.save': { args: { handle?: string; offset?: number }; result: SnapshotChunk }
  /**
   * For members (agents that hold no log), served by replicas (`ReplicaFeed`): the applied entries from
   * `fromIndex`, waiting up to `waitMs` for the first; a snapshot of the state in chunks when the index is
   * older than what the replica keeps; a read point for a linearizable read.
   */
  'replica.entries': { args: { fromIndex: number; waitMs?: number }; result: FeedAnswer }
  'replica.snapshot': { args: { index?: number; offset?: number }; result: FeedSnapshotChunk }
  'replica.readIndex': { args: Empty; result: { index: number } }
}

export type ClientOp = keyof ClientOps

/** The policy action each operation needs of a client (SPIFFE identities on); reads need `read`. */
const CLIENT_OP_ACTIONS: Record<ClientOp, Action | undefined> = {
  status: undefined,
  'kv.get': 'read',
  'kv.events': 'read',
  'kv.getEntry': 'read',
  'kv.list': 'read',
  'kv.txn': 'write',
  'task.status': 'read',
  'kv.put': 'write',
  'kv.delete': 'write',
  'lock.acquire': 'lock',
  'lock.extend': 'lock',
  'lock.release': 'lock',
  'elect.campaign': 'lock',
  'elect.extend': 'lock',
  'elect.resign': 'lock',
  'task.submit': 'submitTask',
  'task.list': 'read',
  'task.events': 'read',
  'task.cancel': 'submitTask',
  'task.next': 'runTask',
  'task.attempt': 'runTask',
  'task.progress': 'runTask',
  'task.settle': 'runTask',
  // A snapshot holds what reads return: the whole state.
  'snapshot.save': 'read',
  // What a member reads to run the API itself: only for identities that may join.
  'replica.entries': 'join',
  'replica.snapshot': 'join',
  'replica.readIndex': 'join',
}

/** The action a client operation needs; undefined for `status` (and for an unknown operation, refused later). */
export function clientOpAction(op: string): Action | undefined {
  return Object.hasOwn(CLIENT_OP_ACTIONS, op) ? CLIENT_OP_ACTIONS[op as ClientOp] : undefined
}

export interface ClientProtocolHost {
  api: ConclaveApi
  /** The last revision this agent's replica applied: where a watch without `fromRevision` starts. */
  currentRevision(): number
  /** Aborts when the agent stops. */
  closed: AbortSignal
  /** Default `POLL_GRACE_MS`. */
  graceMs?: number
  log?: (message: string, err: unknown) => void
  /** Refuses (rejects with `UnauthorizedError`) a request `from` may not make, before it runs. */
  authorize?: (from: string, op: string) => Promise<void>
  /** Takes a consistent snapshot for `snapshot.save`; default `saveSnapshot` on `api` (the service). */
  snapshot?: () => Promise<SavedSnapshot>
  /** The timers of polls and of the leases held for clients. */
  scheduler: Scheduler
  /** The last task revision this agent's replica applied: where a task watch without `fromRevision` starts. */
  currentTaskRevision?(): number
  /** What this agent serves members when it holds the log (`replica.*`); without it those are refused. */
  feed?: ReplicaFeed
  /** The newest command-set version this agent supports, told in `status`. */
  supportedVersion?: number
}

const encoder = new TextEncoder()
const decoder = new TextDecoder('utf-8', { fatal: true })

/** The RPC handler an agent registers for `CLIENT_PROTOCOL`. */
export function clientProtocolHandler(host: ClientProtocolHost): RpcHandler {
  const server = new ClientProtocolServer(host)
  return (request, from, closed) => server.handle(request, from, closed)
}

/** Long polls open, per client peer, and of all clients. */
class PollSlots {
  private readonly all = new Quota('client long polls', MAX_CLIENT_POLLS)
  private readonly byPeer = new Map<string, number>()

  /** Counts one more poll of `peer`; throws `LimitExceededError` over either limit. */
  take(peer: string): () => void {
    const held = this.byPeer.get(peer) ?? 0
    if (held >= MAX_POLLS_PER_CLIENT) {
      throw new LimitExceededError(`at most ${MAX_POLLS_PER_CLIENT} waiting calls per client on this agent`)
    }
    const release = this.all.take()
    this.byPeer.set(peer, held + 1)
    let released = false
    return () => {
      if (released) return
      released = true
      release()
      const left = (this.byPeer.get(peer) ?? 1) - 1
      if (left === 0) this.byPeer.delete(peer)
      else this.byPeer.set(peer, left)
    }
  }
}

const POLLS: ReadonlySet<string> = new Set([
  'kv.events',
  'lock.acquire',
  'elect.campaign',
  'task.events',
  'task.next',
  'task.attempt',
  'replica.entries',
])

/** Runs client requests against the serving agent's API. */
export class ClientProtocolServer {
  readonly leases: ClientLeases
  private readonly host: ClientProtocolHost
  private readonly snapshots = new SnapshotTransfers()
  private readonly polls = new PollSlots()
  private readonly taskWorkers: ClientTaskWorkers

  constructor(host: ClientProtocolHost) {
    this.host = host
    this.taskWorkers = new ClientTaskWorkers({
      tasks: host.api.tasks,
      graceMs: host.graceMs ?? POLL_GRACE_MS,
      scheduler: host.scheduler,
      closed: host.closed,
      ...(host.log === undefined ? {} : { log: host.log }),
    })
    this.leases = new ClientLeases(host.api, {
      graceMs: host.graceMs ?? POLL_GRACE_MS,
      closed: host.closed,
      log: host.log,
      scheduler: host.scheduler,
    })
    host.closed.addEventListener('abort', () => this.snapshots.clear(), { once: true })
  }

  /**
   * `from` is the client's peer id, for `authorize` and its share of long polls; `closed` aborts when the
   * client's stream closes, which ends its long poll at once.
   */
  async handle(request: Uint8Array, from = '', closed?: AbortSignal): Promise<Uint8Array> {
    if (this.host.closed.aborted) throw new ClosedError()
    if (request.byteLength > MAX_CLIENT_REQUEST_BYTES) {
      throw new InvalidArgumentError(
        `request of ${request.byteLength} bytes is over the limit of ${MAX_CLIENT_REQUEST_BYTES}`,
      )
    }
    let parsed: unknown
    try {
      parsed = JSON.parse(decoder.decode(request))
    } catch {
      throw new InvalidArgumentError('request is not JSON text')
    }
    if (!isRecord(parsed) || typeof parsed.op !== 'string') {
      throw new InvalidArgumentError('request must be an object { op, args }')
    }
    checkOptions(parsed, ['op', 'args'])
    const args = parsed.args ?? {}
    if (!isRecord(args)) throw new InvalidArgumentError('args must be an object')
    await this.host.authorize?.(from, parsed.op)
    const release = POLLS.has(parsed.op) ? this.polls.take(from) : undefined
    let result: unknown
    try {
      result = await this.run(parsed.op, args, from, closed)
    } finally {
      release?.()
    }
    return encoder.encode(
      JSON.stringify(result, (_key, value) => (typeof value === 'bigint' ? `${value}` : value)),
    )
  }

  private async run(
    op: string,
    args: Record<string, unknown>,
    from: string,
    closed: AbortSignal | undefined,
  ): Promise<unknown> {
    const { api } = this.host
    switch (op as ClientOp) {
      case 'status':
        checkOptions(args, [])
        return this.status()
      case 'kv.put': {
        checkOptions(args, ['key', 'value', 'expectedRevision'])
        if (!('value' in args)) throw new InvalidArgumentError('value is required')
        return api.consensus.propose(checkKey(args.key), args.value, revisionOption(args))
      }
      case 'kv.get': {
        checkOptions(args, ['key', 'consistency'])
        const key = checkKey(args.key)
        const consistency = args.consistency as 'linearizable' | 'local' | undefined
        const value = await api.consensus.get(key, consistency === undefined ? {} : { consistency })
        return value === undefined ? { found: false } : { found: true, value }
      }
      case 'kv.delete':
        checkOptions(args, ['key', 'expectedRevision'])
        return api.consensus.delete(checkKey(args.key), revisionOption(args))
      case 'kv.events':
        checkOptions(args, ['prefix', 'fromRevision', 'waitMs', 'maxEvents'])
        return this.events(args, closed)
      case 'kv.getEntry': {
        checkOptions(args, ['key', 'consistency'])
        const consistency = args.consistency as 'linearizable' | 'local' | undefined
        const entry = await api.consensus.getEntry(
          checkKey(args.key),
          consistency === undefined ? {} : { consistency },
        )
        return entry === undefined ? { found: false } : { found: true, entry }
      }
      case 'kv.list': {
        checkOptions(args, ['prefix', 'limit', 'after', 'consistency'])
        const options: { limit?: number; after?: string; consistency?: 'linearizable' | 'local' } = {}
        if (args.limit !== undefined) options.limit = args.limit as number
        if (args.after !== undefined) options.after = args.after as string
        if (args.consistency !== undefined) options.consistency = args.consistency as 'local'
        return api.consensus.list(checkPrefix(args.prefix), options)
      }
      case 'kv.txn':
        checkOptions(args, ['request'])
        return api.consensus.transaction(clientTxn(args.request))
      case 'lock.acquire':
        if ('handle' in args) {
          checkOptions(args, ['handle', 'waitMs'])
          return this.leases.pollLock(checkHandle(args.handle), checkWait(args.waitMs), closed)
        }
        checkOptions(args, ['key', 'ttl', 'waitMs', 'permits'])
        return this.leases.acquireLock(
          checkKey(args.key),
          checkTtl(args.ttl),
          checkWait(args.waitMs),
          from,
          closed,
          args.permits === undefined ? {} : { permits: checkPermits(args.permits) },
        )
      case 'lock.extend':
        checkOptions(args, ['handle', 'ttl'])
        await this.leases.extendLock(
          checkHandle(args.handle),
          args.ttl === undefined ? undefined : checkTtl(args.ttl),
        )
        return {}
      case 'lock.release':
        checkOptions(args, ['handle'])
        await this.leases.releaseLock(checkHandle(args.handle))
        return {}
      case 'task.submit':
        checkOptions(args, ['task'])
        return api.tasks.submit(taskInput(args.task))
      case 'task.status':
        checkOptions(args, ['id'])
        return api.tasks.status(checkKey(args.id, 'task id'))
      case 'task.list': {
        checkOptions(args, ['filter', 'limit', 'after'])
        return api.tasks.list(taskFilter(args.filter), taskListOptions(args))
      }
      case 'task.cancel': {
        checkOptions(args, ['id', 'reason'])
        const reason = args.reason as string | undefined
        await api.tasks.cancel(checkKey(args.id, 'task id'), reason === undefined ? {} : { reason })
        return {}
      }
      case 'task.events':
        checkOptions(args, ['filter', 'fromRevision', 'waitMs', 'maxEvents'])
        return taskEvents(api.tasks, {
          filter: taskFilter(args.filter),
          fromRevision: checkRevision(args.fromRevision, 'fromRevision'),
          waitMs: checkWait(args.waitMs),
          maxEvents: args.maxEvents,
          currentRevision: () => this.host.currentTaskRevision?.() ?? 0,
          scheduler: this.host.scheduler,
          closed,
        })
      case 'task.next': {
        checkOptions(args, ['type', 'waitMs'])
        const type = args.type === undefined ? undefined : checkKey(args.type, 'task type')
        return this.taskWorkers.next(from, type, checkWait(args.waitMs), closed)
      }
      case 'task.attempt':
        checkOptions(args, ['handle', 'waitMs'])
        return this.taskWorkers.attempt(from, checkHandle(args.handle), checkWait(args.waitMs), closed)
      case 'task.progress':
        checkOptions(args, ['handle', 'progress'])
        await this.taskWorkers.progress(from, checkHandle(args.handle), args.progress)
        return {}
      case 'task.settle':
        checkOptions(args, ['handle', 'result', 'error'])
        await this.taskWorkers.settle(from, checkHandle(args.handle), settleOutcome(args))
        return {}
      case 'elect.campaign':
        if ('handle' in args) {
          checkOptions(args, ['handle', 'waitMs'])
          return this.leases.pollCampaign(checkHandle(args.handle), checkWait(args.waitMs), closed)
        }
        checkOptions(args, ['name', 'ttl', 'waitMs', 'value'])
        return this.leases.campaign(
          checkKey(args.name, 'election name'),
          checkTtl(args.ttl),
          checkWait(args.waitMs),
          from,
          closed,
          args.value === undefined ? {} : { value: args.value },
        )
      case 'elect.extend':
        checkOptions(args, ['handle'])
        return this.leases.extendLeadership(checkHandle(args.handle))
      case 'elect.resign':
        checkOptions(args, ['handle'])
        await this.leases.resign(checkHandle(args.handle))
        return {}
      case 'snapshot.save':
        if ('handle' in args) {
          checkOptions(args, ['handle', 'offset'])
          return this.snapshots.chunk(checkHandle(args.handle), args.offset as number)
        }
        checkOptions(args, [])
        return this.snapshots.start(
          this.host.snapshot ?? (() => saveSnapshot(snapshotSourceOf(api), { signal: this.host.closed })),
        )
      case 'replica.entries':
        checkOptions(args, ['fromIndex', 'waitMs'])
        return this.requireFeed().entries(args.fromIndex, args.waitMs, closed)
      case 'replica.snapshot':
        checkOptions(args, ['index', 'offset'])
        return this.requireFeed().snapshot(args.index, args.offset)
      case 'replica.readIndex':
        checkOptions(args, [])
        return this.requireFeed().readIndex(closed)
      default:
        throw new InvalidArgumentError(`unknown operation ${JSON.stringify(op).slice(0, 80)}`)
    }
  }

  private requireFeed(): ReplicaFeed {
    if (this.host.feed === undefined) throw new NotVoterError('This agent holds no Raft log')
    return this.host.feed
  }

  private async status(): Promise<ClusterStatus> {
    const { api } = this.host
    const [health, members] = await Promise.all([api.health(), api.members()])
    return {
      agent: { id: api.id, name: api.name, addrs: api.multiaddrs(), isLeader: api.isLeader() },
      leader: health.leader,
      term: api.election.term(),
      healthy: health.healthy,
      memberCount: health.memberCount,
      healthyCount: health.healthyCount,
      members: members.map(member => ({ ...member, lastSeen: member.lastSeen.toISOString() })),
      clusterVersion: health.clusterVersion,
      supportedVersion: this.host.supportedVersion,
    }
  }

  /**
   * One long poll of a watch. Whatever the watch has queued when the poll ends is everything applied up to
   * the revision read at that same instant (the replica delivers events synchronously as it applies), so
   * the next poll may start after that revision even when no event matched the prefix.
   */
  private async events(
    args: Record<string, unknown>,
    closed: AbortSignal | undefined,
  ): Promise<ClientOps['kv.events']['result']> {
    const prefix = checkPrefix(args.prefix ?? '')
    const waitMs = checkWait(args.waitMs)
    const maxEvents = args.maxEvents ?? MAX_EVENTS_PER_POLL
    if (
      !Number.isSafeInteger(maxEvents) ||
      (maxEvents as number) < 1 ||
      (maxEvents as number) > MAX_EVENTS_PER_POLL
    ) {
      throw new InvalidArgumentError(`maxEvents must be an integer from 1 to ${MAX_EVENTS_PER_POLL}`)
    }
    const fromRevision = checkRevision(args.fromRevision, 'fromRevision') ?? this.host.currentRevision() + 1
    return longPoll({
      // A buffer of one answer: the watch holds no more than the poll can carry, however far behind the
      // client is (the rest stays in the history for its next poll).
      open: (from, signal) =>
        this.host.api.consensus.watch(prefix, {
          fromRevision: Math.max(from, 1),
          signal,
          buffer: maxEvents as number,
        }),
      fromRevision,
      currentRevision: () => this.host.currentRevision(),
      waitMs,
      maxEvents: maxEvents as number,
      maxBytes: EVENT_BYTES_PER_POLL,
      scheduler: this.host.scheduler,
      closed,
    })
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function revisionOption(args: Record<string, unknown>): { expectedRevision?: number } {
  const expectedRevision = checkRevision(args.expectedRevision)
  return expectedRevision === undefined ? {} : { expectedRevision }
}

function checkWait(value: unknown): number {
  if (value === undefined) return 0
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > MAX_WAIT_MS) {
    throw new InvalidArgumentError(`waitMs must be a number of ms from 0 to ${MAX_WAIT_MS}`)
  }
  return Math.ceil(value)
}

function checkPermits(value: unknown): number {
  if (!Number.isSafeInteger(value) || (value as number) < 1) {
    throw new InvalidArgumentError('permits must be an integer >= 1')
  }
  return value as number
}

/** A transaction request from a client: as the API takes it, without ephemeral puts (see `kv.txn`). */
function clientTxn(value: unknown): TxnRequest {
  if (!isRecord(value)) throw new InvalidArgumentError('request must be a transaction object')
  for (const branch of ['success', 'failure']) {
    const ops = value[branch]
    if (Array.isArray(ops) && ops.some(op => isRecord(op) && op.ephemeral !== undefined)) {
      throw new InvalidArgumentError(
        "ephemeral puts are not taken from clients: they would be bound to the serving agent's session",
      )
    }
  }
  return value as unknown as TxnRequest
}

function checkHandle(value: unknown): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > 64) {
    throw new InvalidArgumentError('handle must be the string a previous answer gave')
  }
  return value
}

/** A task as JSON into the `TaskInput` of the API: the deadline and runAt back into Dates. */
function taskInput(value: unknown): TaskInput {
  if (!isRecord(value)) throw new InvalidArgumentError('task must be an object')
  const { deadline, runAt, ...rest } = value
  const input: Record<string, unknown> = rest
  if (deadline !== undefined) input.deadline = wireDate(deadline, 'deadline')
  if (runAt !== undefined) input.runAt = wireDate(runAt, 'runAt')
  return input as unknown as TaskInput
}

function wireDate(value: unknown, name: string): Date {
  const date = typeof value === 'string' || typeof value === 'number' ? new Date(value) : undefined
  if (date === undefined || Number.isNaN(date.getTime())) {
    throw new InvalidArgumentError(`task ${name} must be an ISO date or a time in ms since the epoch`)
  }
  return date
}
