/** A `MetricsInternals` whose Raft status, state and counters a test sets, and whose events it emits. */
import type { StateReader } from '../../src/http/source.ts'
import type {
  MembershipCounters,
  MetricsInternals,
  ProposalRecord,
  RaftTransportCounters,
  RpcCounters,
} from '../../src/metrics/internals.ts'
import type { RaftStatus } from '../../src/raft/types.ts'
import type { StateEvent } from '../../src/state/index.ts'
import type { StorageObserver } from '../../src/storage/timed-storage.ts'
import type { MemberEvent } from '../../src/swim/types.ts'

const encoder = new TextEncoder()

/** The snapshot JSON fields the metrics read. */
export interface ScriptedState {
  sessions?: unknown[]
  kv?: { entries: unknown[] }
  locks?: { key: string; holder: unknown; waiters: unknown[] }[]
  tasks?: { tasks: { state: string }[] }
}

export class ScriptedInternals implements MetricsInternals {
  readonly securityEnabled = false
  status?: RaftStatus = {
    id: 'self',
    role: 'leader',
    term: 3,
    vote: 'self',
    leader: 'self',
    commit: 10,
    applied: 8,
    lastIndex: 11,
    config: { voters: ['self', 'b', 'c'], nonVoters: [] },
  }
  stateJson: ScriptedState | undefined = {}
  snapshotReads = 0
  rpc: RpcCounters = {
    callsStarted: 0,
    callsSucceeded: 0,
    callsFailed: 0,
    requestsServed: 0,
    resets: 0,
    rateLimited: 0,
  }
  raft: RaftTransportCounters = { sent: 0, received: 0, dropped: 0, resets: 0, throttled: 0, dialFailures: 0 }
  membership: MembershipCounters = {
    sent: 0,
    sendFailures: 0,
    published: 0,
    publishFallbacks: 0,
    received: 0,
    dropped: 0,
  }
  health = 0
  private readonly listeners = {
    state: new Set<(event: StateEvent) => void>(),
    member: new Set<(event: MemberEvent) => void>(),
    leader: new Set<(leader: string, term: number) => void>(),
    proposal: new Set<(record: ProposalRecord) => void>(),
    storage: new Set<StorageObserver>(),
  }

  raftStatus(): RaftStatus | undefined {
    return this.status
  }
  state(): StateReader | undefined {
    const json = this.stateJson
    if (json === undefined) return undefined
    return {
      time: 0,
      snapshot: () => {
        this.snapshotReads++
        return encoder.encode(JSON.stringify(json))
      },
      session: () => undefined,
    }
  }
  onStateEvent(listener: (event: StateEvent) => void): () => void {
    return this.add(this.listeners.state, listener)
  }
  onMemberEvent(listener: (event: MemberEvent) => void): () => void {
    return this.add(this.listeners.member, listener)
  }
  onLeaderChange(listener: (leader: string, term: number) => void): () => void {
    return this.add(this.listeners.leader, listener)
  }
  onProposal(listener: (record: ProposalRecord) => void): () => void {
    return this.add(this.listeners.proposal, listener)
  }
  onStorage(observer: StorageObserver): () => void {
    return this.add(this.listeners.storage, observer)
  }
  rpcStats(): RpcCounters {
    return { ...this.rpc }
  }
  raftTransportStats(): RaftTransportCounters {
    return { ...this.raft }
  }
  membershipStats(): MembershipCounters {
    return { ...this.membership }
  }
  localHealth(): number {
    return this.health
  }

  /** How many listeners are subscribed, over every kind. */
  subscribed(): number {
    return Object.values(this.listeners).reduce((sum, set) => sum + set.size, 0)
  }

  stateEvent(event: StateEvent): void {
    for (const listener of this.listeners.state) listener(event)
  }
  memberEvent(type: MemberEvent['type'], id = 'b'): void {
    const member = { id, name: id } as MemberEvent['member']
    for (const listener of this.listeners.member) listener({ type, member, at: 0 })
  }
  leaderChange(leader: string, term: number): void {
    for (const listener of this.listeners.leader) listener(leader, term)
  }
  proposal(record: ProposalRecord): void {
    for (const listener of this.listeners.proposal) listener(record)
  }
  storage(...args: Parameters<StorageObserver>): void {
    for (const observer of this.listeners.storage) observer(...args)
  }

  private add<T>(set: Set<T>, listener: T): () => void {
    set.add(listener)
    return () => {
      set.delete(listener)
    }
  }
}
