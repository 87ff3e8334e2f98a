/**
 * What the dashboard reads of an agent: the public API (`members()`, `election`) plus a small read-only
 * status surface (`AgentInternals`) for what the API does not show: Raft commit and applied indexes, the
 * locks, elections and tasks of the replicated state, and the membership and state events for the feed.
 */
import type { Agent, AgentInfo } from '../api.ts'
import type { RaftStatus } from '../raft/types.ts'
import type { StateEvent } from '../state/index.ts'
import type { MemberEvent } from '../swim/types.ts'

export type TaskStateName = 'pending' | 'assigned' | 'running' | 'completed' | 'failed' | 'dead' | 'expired'

export const TASK_STATES: readonly TaskStateName[] = [
  'pending',
  'assigned',
  'running',
  'completed',
  'failed',
  'dead',
  'expired',
]

/** Raft replication as the served agent knows it. */
export interface ReplicationView {
  commit: number
  applied: number
  lastIndex: number
  voters: string[]
  nonVoters: string[]
  /** The index each replica is known to hold (Raft match index); only while the served agent leads. */
  match?: Record<string, number>
}

export interface LockView {
  key: string
  /** The holder's agent id ('' if its session is unknown here). */
  holder: string
  fencingToken: number
  /** State time (leader ms) at which the lease lapses unless extended. */
  expiresAt: number
  waiters: number
}

export interface ElectionView {
  name: string
  term: number
  /** The leading agent's id; undefined while nobody campaigns. */
  leader?: string
  candidates: number
}

/** The replicated coordination state, as this agent's replica holds it. */
export interface CoordinationView {
  /** State time (the leader's ms of the last applied entry). */
  time: number
  locks: LockView[]
  elections: ElectionView[]
  /** Tasks the state keeps, by state (finished ones are kept up to a bound). */
  tasks: Record<TaskStateName, number>
}

/** A happening for the event feed and the throughput chart; `at` is wall-clock ms. */
export type SourceEvent =
  | { kind: 'leader'; leader: string; term: number; at: number }
  | { kind: 'member'; change: MemberEvent['type']; id: string; name: string; at: number }
  | { kind: 'steal'; taskId: string; from: string; to: string; at: number }
  | { kind: 'failover'; taskId: string; from: string; at: number }
  | { kind: 'task'; outcome: 'completed' | 'failed' | 'dead' | 'expired'; at: number }
  | { kind: 'election'; name: string; leader?: string; term: number; at: number }

/**
 * The read-only surface the dashboard is built on. `agentSource(agent)` implements it for an agent of this
 * package; an embedder may implement it for anything else (a proxy to another process, a recording).
 */
export interface DashboardSource {
  readonly id: string
  readonly name: string
  /** Whether the agent runs with SPIFFE identities (`security`): the dashboard then keeps to loopback. */
  readonly secured: boolean
  members(): Promise<AgentInfo[]>
  /** Leader id ('' if none known) and Raft term. */
  leadership(): { leader: string; term: number }
  /** undefined when the agent does not expose it (or is not a member). */
  replication(): ReplicationView | undefined
  /** undefined when the agent does not expose it. Costs a pass over the state: call it at most every second. */
  coordination(): CoordinationView | undefined
  /** Calls `listener` for every event from now on; returns the unsubscribe function. */
  subscribe(listener: (event: SourceEvent) => void): () => void
}

/** What the dashboard reads of the replicated state. */
export interface StateReader {
  readonly time: number
  /** The complete state as the snapshot JSON (`StateMachine.snapshot()`). */
  snapshot(): Uint8Array
  session(sessionId: string): { agentId: string } | undefined
}

/**
 * The status surface the dashboard needs beyond the public API. `ConclaveService` can provide it as a
 * method `dashboardInternals(): AgentInternals`; until it does, `internalsOf` reads the same from the
 * service's fields, and whatever it cannot find is left out of the page.
 */
export interface AgentInternals {
  raftStatus(): RaftStatus | undefined
  state(): StateReader | undefined
  onStateEvent(listener: (event: StateEvent) => void): () => void
  onMemberEvent(listener: (event: MemberEvent) => void): () => void
  readonly securityEnabled: boolean
  /** Why the agent stopped applying its log (an entry above its version), if it did. */
  halted?(): Error | undefined
}

type Unsubscribe = () => void

/** The fields of today's `ConclaveService` that `internalsOf` reads, each checked before use. */
interface ServiceFields {
  dashboardInternals?: () => AgentInternals
  runner?: { status?: () => RaftStatus }
  replica?: { state?: StateReader; onEvent?: (listener: (event: StateEvent) => void) => Unsubscribe }
  membership?: { onEvent?: (listener: (event: MemberEvent) => void) => Unsubscribe }
  security?: { enabled?: boolean }
}

const noop: Unsubscribe = () => {}

/** The conclave service behind an agent made by `createAgent` (or any libp2p node with `services.conclave`). */
export function internalsOf(agent: Agent): AgentInternals | undefined {
  const services = (agent.libp2p as unknown as { services?: Record<string, unknown> } | undefined)?.services
  const service = services?.conclave as ServiceFields | undefined
  if (service === undefined || service === null) return undefined
  if (typeof service.dashboardInternals === 'function') return service.dashboardInternals()
  return {
    raftStatus: () => (typeof service.runner?.status === 'function' ? service.runner.status() : undefined),
    state: () => {
      const state = service.replica?.state
      return typeof state?.snapshot === 'function' && typeof state.session === 'function' ? state : undefined
    },
    onStateEvent: listener =>
      typeof service.replica?.onEvent === 'function' ? service.replica.onEvent(listener) : noop,
    onMemberEvent: listener =>
      typeof service.membership?.onEvent === 'function' ? service.membership.onEvent(listener) : noop,
    get securityEnabled() {
      return service.security?.enabled === true
    },
  }
}

const decoder = new TextDecoder()

interface SnapshotShape {
  locks?: {
    key: string
    holder?: { sessionId: string; fencingToken: number; expiresAt: number }
    waiters?: unknown[]
  }[]
  elections?: { name: string; term: number; candidates?: { sessionId: string }[] }[]
  tasks?: { tasks?: { state: string }[] }
}

/** The locks, elections and task counts of a state, from its snapshot JSON. */
export function coordinationOf(state: StateReader): CoordinationView {
  const parsed = JSON.parse(decoder.decode(state.snapshot())) as SnapshotShape
  const agentOf = (sessionId: string): string => state.session(sessionId)?.agentId ?? ''
  const tasks = Object.fromEntries(TASK_STATES.map(name => [name, 0])) as Record<TaskStateName, number>
  for (const task of parsed.tasks?.tasks ?? []) {
    if (task.state in tasks) tasks[task.state as TaskStateName]++
  }
  return {
    time: state.time,
    locks: (parsed.locks ?? [])
      .filter(lock => lock.holder !== undefined)
      .map(lock => ({
        key: lock.key,
        holder: agentOf(lock.holder!.sessionId),
        fencingToken: lock.holder!.fencingToken,
        expiresAt: lock.holder!.expiresAt,
        waiters: lock.waiters?.length ?? 0,
      })),
    elections: (parsed.elections ?? []).map(election => {
      const head = election.candidates?.[0]
      return {
        name: election.name,
        term: election.term,
        ...(head === undefined ? {} : { leader: agentOf(head.sessionId) }),
        candidates: election.candidates?.length ?? 0,
      }
    }),
    tasks,
  }
}

/** The dashboard's view of an agent of this package: its public API plus `internalsOf(agent)`. */
export function agentSource(agent: Agent): DashboardSource {
  const internals = internalsOf(agent)
  const leadership = { leader: '', term: 0 }
  return {
    id: agent.id,
    name: agent.name,
    get secured() {
      return internals?.securityEnabled ?? false
    },
    members: () => agent.members(),
    leadership: () => {
      const status = internals?.raftStatus()
      if (status !== undefined) return { leader: status.leader, term: status.term }
      return { leader: leadership.leader, term: agent.election.term() }
    },
    replication: () => {
      const status = internals?.raftStatus()
      if (status === undefined) return undefined
      const match =
        status.progress === undefined
          ? undefined
          : Object.fromEntries(Object.entries(status.progress).map(([id, progress]) => [id, progress.match]))
      if (match !== undefined) match[status.id] = status.lastIndex
      return {
        commit: status.commit,
        applied: status.applied,
        lastIndex: status.lastIndex,
        voters: [...status.config.voters],
        nonVoters: [...status.config.nonVoters],
        ...(match === undefined ? {} : { match }),
      }
    },
    coordination: () => {
      const state = internals?.state()
      return state === undefined ? undefined : coordinationOf(state)
    },
    subscribe: listener => {
      const stop = new AbortController()
      const follow = async (): Promise<void> => {
        for await (const event of agent.election.watch({ signal: stop.signal })) {
          const leader = event.type === 'resigned' ? '' : event.leaderId
          leadership.leader = leader
          listener({ kind: 'leader', leader, term: event.term, at: event.timestamp.getTime() })
        }
      }
      follow().catch(() => {})
      const offMembers =
        internals?.onMemberEvent(event => {
          if (event.type === 'updated') return
          listener({
            kind: 'member',
            change: event.type,
            id: event.member.id,
            name: event.member.name,
            at: Date.now(),
          })
        }) ?? noop
      const agentOf = (sessionId: string): string => internals?.state()?.session(sessionId)?.agentId ?? ''
      const offState = internals?.onStateEvent(event => stateEvent(event, agentOf, listener)) ?? noop
      return () => {
        stop.abort()
        offMembers()
        offState()
      }
    },
  }
}

function stateEvent(
  event: StateEvent,
  agentOf: (sessionId: string) => string,
  listener: (event: SourceEvent) => void,
): void {
  const at = Date.now()
  switch (event.type) {
    case 'taskStolen':
      listener({ kind: 'steal', taskId: event.taskId, from: event.from, to: event.to, at })
      return
    case 'taskUnassigned':
      if (event.reason === 'agentDown')
        listener({ kind: 'failover', taskId: event.taskId, from: event.agentId, at })
      return
    case 'taskAttemptEnded':
      if (event.reason === 'session')
        listener({ kind: 'failover', taskId: event.taskId, from: event.agentId, at })
      return
    case 'taskCompleted':
      listener({ kind: 'task', outcome: 'completed', at })
      return
    case 'taskFailed':
      listener({ kind: 'task', outcome: 'failed', at })
      return
    case 'taskDead':
      listener({ kind: 'task', outcome: 'dead', at })
      return
    case 'taskExpired':
      listener({ kind: 'task', outcome: 'expired', at })
      return
    case 'electionChanged':
      listener({
        kind: 'election',
        name: event.name,
        ...(event.leader === undefined ? {} : { leader: agentOf(event.leader.sessionId) }),
        term: event.term,
        at,
      })
      return
  }
}
