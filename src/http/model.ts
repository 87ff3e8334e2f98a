/**
 * The dashboard's picture of the cluster: what the page shows, rebuilt from a `DashboardSource` about once
 * a second while someone watches, plus what must be recorded all along (leader and term over time, task
 * throughput, the event feed). Everything here is JSON: it goes to the page as server-sent events.
 */
import type { AgentInfo } from '../api.ts'
import type { DashboardSource, SourceEvent, TaskStateName } from './source.ts'

export interface MemberRow {
  id: string
  name: string
  role: AgentInfo['role']
  /** In the Raft configuration (holds a copy of the log); undefined when unknown. */
  replica?: boolean
  status: AgentInfo['status']
  load: number
  spiffeId?: string
  /** Wall-clock ms. */
  lastSeen: number
  leader: boolean
  /** The agent serving this page. */
  self: boolean
  /** Raft match index as the leader knows it (only when the served agent leads). */
  match?: number
}

export interface LeaderSpan {
  /** Wall-clock ms the span began. */
  at: number
  /** '' while no leader is known. */
  leader: string
  name: string
  term: number
}

export interface ThroughputBucket {
  /** Wall-clock second (ms, floored). */
  at: number
  completed: number
  failed: number
}

export interface FeedEntry {
  seq: number
  at: number
  kind: 'leader' | 'failover' | 'suspect' | 'dead' | 'alive' | 'joined' | 'left' | 'steal' | 'election'
  text: string
}

export interface DashboardState {
  agent: { id: string; name: string }
  /** Wall-clock ms of this picture. */
  at: number
  leader?: { id: string; name: string }
  term: number
  /** A leader is known and a majority of voters is alive. */
  healthy: boolean
  members: MemberRow[]
  replication?: { commit: number; applied: number; lastIndex: number; fromLeader: boolean }
  leaders: LeaderSpan[]
  tasks?: Record<TaskStateName, number>
  throughput: ThroughputBucket[]
  locks?: {
    key: string
    holder: string
    holderName: string
    fencingToken: number
    expiresInMs: number
    waiters: number
  }[]
  elections?: { name: string; term: number; leader: string; leaderName: string; candidates: number }[]
  secured: boolean
  /** Why a panel is empty, when the agent does not expose what it needs. */
  notes: string[]
}

export interface ModelOptions {
  /** How many leader changes the history keeps. */
  leaderHistory?: number
  /** Seconds of throughput kept. */
  throughputSeconds?: number
  /** Feed entries kept (and sent to a page that connects). */
  feedSize?: number
  now?: () => number
  /** Least time between two reads of the coordination view (locks, elections, tasks), ms. Default 900. */
  coordinationIntervalMs?: number
}

type Listener = { state(state: DashboardState): void; feed(entry: FeedEntry): void }

/** Builds `DashboardState`s from a source and records the history the page draws. */
export class DashboardModel {
  private readonly source: DashboardSource
  private readonly now: () => number
  private readonly leaderHistory: number
  private readonly throughputSeconds: number
  private readonly feedSize: number
  private readonly leaders: LeaderSpan[] = []
  private readonly buckets: ThroughputBucket[] = []
  private readonly feedEntries: FeedEntry[] = []
  private readonly listeners = new Set<Listener>()
  private readonly names = new Map<string, string>()
  private readonly statuses = new Map<string, string>()
  private unsubscribe?: () => void
  private seq = 0
  private last?: DashboardState
  private readonly coordinationIntervalMs: number
  private coordinationCache?: {
    at: number
    view: ReturnType<DashboardSource['coordination']>
    costMs: number
  }

  constructor(source: DashboardSource, options: ModelOptions = {}) {
    this.source = source
    this.now = options.now ?? Date.now
    this.leaderHistory = options.leaderHistory ?? 200
    this.throughputSeconds = options.throughputSeconds ?? 120
    this.feedSize = options.feedSize ?? 200
    this.coordinationIntervalMs = options.coordinationIntervalMs ?? 900
    this.names.set(source.id, source.name)
  }

  /** Starts recording (leader changes, events, throughput). */
  start(): void {
    if (this.unsubscribe !== undefined) return
    const { leader, term } = this.source.leadership()
    this.noteLeader(leader, term, this.now())
    this.unsubscribe = this.source.subscribe(event => this.onEvent(event))
  }

  stop(): void {
    this.unsubscribe?.()
    this.listeners.clear()
  }

  /** The feed entries kept, oldest first. */
  feed(): FeedEntry[] {
    return [...this.feedEntries]
  }

  /** The last picture built, if any. */
  get latest(): DashboardState | undefined {
    return this.last
  }

  /** Calls `listener.feed` for each new entry and `listener.state` for each picture `refresh` builds. */
  listen(listener: Listener): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  /** Builds a new picture and hands it to the listeners. */
  async refresh(): Promise<DashboardState> {
    const at = this.now()
    const notes: string[] = []
    const { leader, term } = this.source.leadership()
    this.noteLeader(leader, term, at)
    let members: AgentInfo[] = []
    try {
      members = await this.source.members()
    } catch (err) {
      notes.push(`members: ${(err as Error).message}`)
    }
    const replication = this.source.replication()
    let coordination: ReturnType<DashboardSource['coordination']>
    try {
      coordination = this.coordination(at)
    } catch (err) {
      notes.push(`state: ${(err as Error).message}`)
    }
    if (replication === undefined) notes.push('Raft indexes: not exposed by this agent')
    if (coordination === undefined) notes.push('locks, elections, tasks: not exposed by this agent')
    for (const member of members) {
      this.names.set(member.id, member.name)
      this.noteStatus(member.id, member.status, at)
    }
    const configured =
      replication === undefined ? undefined : new Set([...replication.voters, ...replication.nonVoters])
    const rows: MemberRow[] = members
      .map(member => ({
        id: member.id,
        name: member.name,
        role: member.role,
        ...(configured === undefined ? {} : { replica: configured.has(member.id) }),
        status: member.status,
        load: member.load,
        ...(member.spiffeId === undefined ? {} : { spiffeId: member.spiffeId }),
        lastSeen: member.lastSeen.getTime(),
        leader: member.id === leader,
        self: member.id === this.source.id,
        ...(replication?.match?.[member.id] === undefined ? {} : { match: replication.match[member.id] }),
      }))
      .sort((a, b) => rank(a) - rank(b) || a.name.localeCompare(b.name))
    const alive = new Set(members.filter(member => member.status === 'alive').map(member => member.id))
    const voters = replication?.voters ?? members.filter(member => member.role === 'voter').map(m => m.id)
    this.trimBuckets(at)
    const state: DashboardState = {
      agent: { id: this.source.id, name: this.source.name },
      at,
      ...(leader === '' ? {} : { leader: { id: leader, name: this.nameOf(leader) } }),
      term,
      healthy: leader !== '' && voters.filter(id => alive.has(id)).length > voters.length / 2,
      members: rows,
      ...(replication === undefined
        ? {}
        : {
            replication: {
              commit: replication.commit,
              applied: replication.applied,
              lastIndex: replication.lastIndex,
              fromLeader: replication.match !== undefined,
            },
          }),
      leaders: this.leaders.map(span => ({ ...span, name: this.nameOf(span.leader) })),
      throughput: [...this.buckets],
      ...(coordination === undefined
        ? {}
        : {
            tasks: coordination.tasks,
            locks: coordination.locks.map(lock => ({
              key: lock.key,
              holder: lock.holder,
              holderName: this.nameOf(lock.holder),
              fencingToken: lock.fencingToken,
              // Lease ends are the leader's wall-clock ms; this clock is the best estimate of the leader's.
              expiresInMs: lock.expiresAt - at,
              waiters: lock.waiters,
            })),
            elections: coordination.elections.map(election => ({
              name: election.name,
              term: election.term,
              leader: election.leader ?? '',
              leaderName: election.leader === undefined ? '' : this.nameOf(election.leader),
              candidates: election.candidates,
            })),
          }),
      secured: this.source.secured,
      notes,
    }
    this.last = state
    for (const listener of this.listeners) listener.state(state)
    return state
  }

  /**
   * The coordination view, read again only once the last read is older than 20 times what that read cost
   * (and at least `intervalMs`): a large state costs a pass over its snapshot, and the dashboard must not
   * become the agent's main load.
   */
  private coordination(at: number): ReturnType<DashboardSource['coordination']> {
    const cached = this.coordinationCache
    if (cached !== undefined && at - cached.at < Math.max(this.coordinationIntervalMs, 20 * cached.costMs)) {
      return cached.view
    }
    const started = performance.now()
    const view = this.source.coordination()
    this.coordinationCache = { at, view, costMs: performance.now() - started }
    return view
  }

  private nameOf(id: string): string {
    if (id === '') return ''
    return this.names.get(id) ?? id.slice(-8)
  }

  private onEvent(event: SourceEvent): void {
    switch (event.kind) {
      case 'leader':
        this.noteLeader(event.leader, event.term, event.at)
        return
      case 'member':
        this.names.set(event.id, event.name)
        if (event.change === 'updated') return
        this.noteStatus(event.id, event.change === 'joined' ? 'alive' : event.change, event.at, true)
        return
      case 'steal':
        this.push(
          'steal',
          event.at,
          `${this.nameOf(event.to)} took task ${event.taskId} from ${this.nameOf(event.from)}`,
        )
        return
      case 'failover':
        this.push('failover', event.at, `task ${event.taskId} taken back from ${this.nameOf(event.from)}`)
        return
      case 'election':
        this.push(
          'election',
          event.at,
          event.leader === undefined
            ? `election ${event.name}: no leader (term ${event.term})`
            : `election ${event.name}: ${this.nameOf(event.leader)} leads (term ${event.term})`,
        )
        return
      case 'task': {
        const second = Math.floor(event.at / 1000) * 1000
        let bucket = this.buckets.at(-1)
        if (bucket === undefined || bucket.at < second) {
          bucket = { at: second, completed: 0, failed: 0 }
          this.buckets.push(bucket)
          this.trimBuckets(event.at)
        }
        if (event.outcome === 'completed') bucket.completed++
        else bucket.failed++
        return
      }
    }
  }

  /** Records a leader change (and says so in the feed); a repeat of the current leader and term is none. */
  private noteLeader(leader: string, term: number, at: number): void {
    const current = this.leaders.at(-1)
    if (current !== undefined && current.leader === leader && current.term === term) return
    // A term can only grow; an older report arriving late (a poll racing a watch event) is not news.
    if (current !== undefined && term < current.term) return
    if (current !== undefined && current.term === term && leader === '') return
    this.leaders.push({ at, leader, name: this.nameOf(leader), term })
    if (this.leaders.length > this.leaderHistory) this.leaders.shift()
    if (current === undefined) return
    if (leader === '') {
      this.push('leader', at, `no leader (term ${term})`)
      return
    }
    const previous = current.leader
    const previousDown =
      previous !== '' && ['dead', 'suspect', 'left'].includes(this.statuses.get(previous) ?? '')
    this.push(
      previousDown ? 'failover' : 'leader',
      at,
      previousDown
        ? `${this.nameOf(leader)} took over from ${this.nameOf(previous)} (${this.statuses.get(previous)}), term ${term}`
        : `${this.nameOf(leader)} leads, term ${term}`,
    )
  }

  /** A member's status change goes to the feed once, whether seen in an event or in the member list. */
  private noteStatus(id: string, status: string, at: number, fromEvent = false): void {
    const before = this.statuses.get(id)
    this.statuses.set(id, status)
    if (before === status || (before === undefined && !fromEvent)) return
    const kind = (
      status === 'alive' ? (before === 'suspect' ? 'alive' : 'joined') : status
    ) as FeedEntry['kind']
    const text =
      status === 'alive'
        ? before === 'suspect'
          ? `${this.nameOf(id)} refuted the suspicion: alive`
          : `${this.nameOf(id)} joined`
        : status === 'suspect'
          ? `${this.nameOf(id)} is suspected`
          : status === 'dead'
            ? `${this.nameOf(id)} is dead`
            : `${this.nameOf(id)} left`
    this.push(kind, at, text)
  }

  private push(kind: FeedEntry['kind'], at: number, text: string): void {
    const entry: FeedEntry = { seq: ++this.seq, at, kind, text }
    this.feedEntries.push(entry)
    if (this.feedEntries.length > this.feedSize) this.feedEntries.shift()
    for (const listener of this.listeners) listener.feed(entry)
  }

  private trimBuckets(now: number): void {
    const oldest = now - this.throughputSeconds * 1000
    while (this.buckets.length > 0 && this.buckets[0].at < oldest) this.buckets.shift()
  }
}

/** Leader first, then voters, then the rest; down members last. */
function rank(row: MemberRow): number {
  const down = row.status === 'dead' || row.status === 'left' ? 10 : 0
  return down + (row.leader ? 0 : row.role === 'voter' ? 1 : 2)
}
