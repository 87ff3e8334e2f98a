import { NO_SHELL_BUGS, type ShellBugs } from '../shell-bugs.ts'
import type { CampaignCommand, ProclaimCommand, ResignCommand } from './commands.ts'
import type { ApplyContext } from './context.ts'
import type { ElectionChangedEvent, ElectionLeader } from './events.ts'
import { isJsonValue, type JsonValue, jsonEqual } from './json.ts'
import { type CommandResult, errorResult, OK, UNCHANGED } from './results.ts'
import { type SessionEndListener, type SessionTable, sessionExpired } from './sessions.ts'
import { checkSnapshot, isCount, isId, isRecord, snapshotArray } from './validate.ts'

/** A candidacy: who stands, and the value it leads with (etcd's campaign value), if any. */
export type Candidate = ElectionLeader & { value?: JsonValue }

/** A named election as queries show it: the head of `candidates` leads. */
export interface ElectionInfo {
  name: string
  /** Increases with every new leader; 0 before the first. */
  term: number
  leader: Candidate | undefined
  candidates: Candidate[]
}

/**
 * A candidacy as stored: `seq`, the proposer's sequence number of the campaign that owns it (command-set
 * version 3 on), orders the campaigns of one session. Not part of what queries show.
 */
type StoredCandidate = Candidate & { seq?: number }

interface ElectionRecord {
  term: number
  candidates: StoredCandidate[]
}

/** Election section of a snapshot, in table order. */
export interface ElectionSnapshot {
  name: string
  term: number
  candidates: StoredCandidate[]
}

/**
 * Named elections: a FIFO queue of candidacies, one per session, whose head leads. An election keeps its
 * record (and term) after its last candidate leaves, so terms keep increasing across leaderless spells.
 */
export class ElectionTable implements SessionEndListener {
  private readonly records = new Map<string, ElectionRecord>()
  /** Elections each session stands in. Derived; not in snapshots. */
  private readonly namesBySession = new Map<string, Set<string>>()
  private readonly sessions: SessionTable
  /** @internal The `resign-any-candidacy` bug switch: a resign ends the session's candidacy whatever its request. */
  private readonly resignAny: boolean

  constructor(sessions: SessionTable)
  /** @internal With test-only switches (`src/shell-bugs.ts`). Stripped from the published declarations. */
  constructor(sessions: SessionTable, bugs: ShellBugs)
  constructor(sessions: SessionTable, bugs: ShellBugs = NO_SHELL_BUGS) {
    this.sessions = sessions
    this.resignAny = bugs.has('resign-any-candidacy')
  }

  info(name: string): ElectionInfo | undefined {
    const record = this.records.get(name)
    if (record === undefined) return undefined
    const candidates = record.candidates.map(({ seq: _seq, ...candidate }) => candidate)
    return { name, term: record.term, leader: candidates[0], candidates }
  }

  campaign(command: CampaignCommand, context: ApplyContext): CommandResult {
    const { name, sessionId } = command
    if (!this.sessions.isLive(sessionId, context)) return sessionExpired(sessionId)
    let record = this.records.get(name)
    if (record === undefined) {
      record = { term: 0, candidates: [] }
      this.records.set(name, record)
    }
    const position = record.candidates.findIndex(candidate => candidate.sessionId === sessionId)
    const seq = context.request?.session === sessionId ? context.request.seq : undefined
    if (position >= 0) {
      // Standing again: a new value replaces the old one, as a proclaim would. The newest campaign owns the
      // candidacy: a late resign of the earlier (aborted) campaign names the old request and leaves it be.
      // Newest by the session's request order, not by the order entries apply: the proposer may retry an
      // aborted campaign late, after a newer one of the session took the candidacy, and that retry must not
      // take it back (its resign, due next, would then end the newer campaign's leadership: simulator seed
      // 1789, two election users both leading).
      const current = record.candidates[position]
      if (current.seq !== undefined && seq !== undefined && seq < current.seq) {
        return position === 0 ? { type: 'elected', term: record.term } : { type: 'candidate', position }
      }
      if (!this.resignAny) current.requestId = command.requestId
      if (seq !== undefined) current.seq = seq
      if (command.value !== undefined) this.setValue(name, record, position, command.value, context)
      return position === 0 ? { type: 'elected', term: record.term } : { type: 'candidate', position }
    }
    const candidate: StoredCandidate = { agentId: command.agentId, sessionId, requestId: command.requestId }
    if (command.value !== undefined) candidate.value = command.value
    if (seq !== undefined) candidate.seq = seq
    record.candidates.push(candidate)
    this.index(sessionId, name)
    if (record.candidates.length > 1) return { type: 'candidate', position: record.candidates.length - 1 }
    this.leaderChanged(name, record, context)
    return { type: 'elected', term: record.term }
  }

  /** The leader's new value, seen by every watcher as an `electionChanged` event with the same term. */
  proclaim(command: ProclaimCommand, context: ApplyContext): CommandResult {
    const record = this.records.get(command.name)
    if (record === undefined || record.candidates[0]?.sessionId !== command.sessionId) {
      return errorResult('NotLeader', `session ${command.sessionId} does not lead election ${command.name}`)
    }
    this.setValue(command.name, record, 0, command.value, context)
    return OK
  }

  /**
   * Withdraws the session's candidacy; with `requestId`, only the candidacy of that campaign (a resign sent
   * for an aborted campaign must not end a newer one of the same session that it reached after).
   */
  resign(command: ResignCommand, context: ApplyContext): CommandResult {
    const record = this.records.get(command.name)
    if (record === undefined) return UNCHANGED
    const requestId = this.resignAny ? undefined : command.requestId
    const position = record.candidates.findIndex(
      candidate =>
        candidate.sessionId === command.sessionId &&
        (requestId === undefined || candidate.requestId === requestId),
    )
    if (position < 0) return UNCHANGED
    record.candidates.splice(position, 1)
    this.unindex(command.sessionId, command.name)
    if (position === 0) this.leaderChanged(command.name, record, context)
    return OK
  }

  onSessionEnd(sessionId: string, context: ApplyContext): void {
    const names = this.namesBySession.get(sessionId)
    if (names === undefined) return
    this.namesBySession.delete(sessionId)
    for (const name of [...names].sort()) {
      const record = this.records.get(name)
      if (record === undefined) continue
      const position = record.candidates.findIndex(candidate => candidate.sessionId === sessionId)
      if (position < 0) continue
      record.candidates.splice(position, 1)
      if (position === 0) this.leaderChanged(name, record, context)
    }
  }

  toSnapshot(): ElectionSnapshot[] {
    const elections: ElectionSnapshot[] = []
    for (const [name, record] of this.records) {
      elections.push({ name, term: record.term, candidates: record.candidates })
    }
    return elections
  }

  restore(data: unknown): void {
    for (const election of snapshotArray(data, 'elections')) {
      checkSnapshot(isRecord(election) && isId(election.name) && isCount(election.term), 'elections')
      const candidates: StoredCandidate[] = []
      for (const candidate of snapshotArray(election.candidates, 'elections.candidates')) {
        checkSnapshot(
          isRecord(candidate) &&
            isId(candidate.agentId) &&
            isId(candidate.sessionId) &&
            isId(candidate.requestId),
          'elections.candidates',
        )
        checkSnapshot(candidate.value === undefined || isJsonValue(candidate.value), 'elections.candidates')
        checkSnapshot(candidate.seq === undefined || isCount(candidate.seq), 'elections.candidates')
        const restored: StoredCandidate = {
          agentId: candidate.agentId,
          sessionId: candidate.sessionId,
          requestId: candidate.requestId,
        }
        if (candidate.value !== undefined) restored.value = candidate.value
        if (candidate.seq !== undefined) restored.seq = candidate.seq
        candidates.push(restored)
        this.index(candidate.sessionId, election.name)
      }
      this.records.set(election.name, { term: election.term, candidates })
    }
  }

  /** The head of the queue changed: a new leader gets a new term; an empty queue keeps the old one. */
  private leaderChanged(name: string, record: ElectionRecord, context: ApplyContext): void {
    const leader = record.candidates[0]
    if (leader === undefined) {
      context.events.push({ type: 'electionChanged', name, term: record.term, timestamp: context.time })
      return
    }
    record.term++
    this.announce(name, record, leader, context)
  }

  /** Sets a candidate's value; the leader's change is an event (the same leader, the same term). */
  private setValue(
    name: string,
    record: ElectionRecord,
    position: number,
    value: JsonValue,
    context: ApplyContext,
  ): void {
    const candidate = record.candidates[position]
    if (candidate.value !== undefined && jsonEqual(candidate.value, value)) return
    candidate.value = value
    if (position === 0) this.announce(name, record, candidate, context)
  }

  private announce(name: string, record: ElectionRecord, leader: Candidate, context: ApplyContext): void {
    const event: ElectionChangedEvent = {
      type: 'electionChanged',
      name,
      leader: { agentId: leader.agentId, sessionId: leader.sessionId, requestId: leader.requestId },
      term: record.term,
      timestamp: context.time,
    }
    if (leader.value !== undefined) event.value = leader.value
    context.events.push(event)
  }

  private index(sessionId: string, name: string): void {
    let names = this.namesBySession.get(sessionId)
    if (names === undefined) {
      names = new Set()
      this.namesBySession.set(sessionId, names)
    }
    names.add(name)
  }

  private unindex(sessionId: string, name: string): void {
    const names = this.namesBySession.get(sessionId)
    if (names === undefined) return
    names.delete(name)
    if (names.size === 0) this.namesBySession.delete(sessionId)
  }
}
