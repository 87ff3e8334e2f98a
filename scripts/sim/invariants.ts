/**
 * Raft's safety properties, checked as the run goes (Raft paper, figure 3, plus what a shell must keep):
 *
 * - Election safety: at most one leader per term, over the whole run and across crashes; and its cause, one
 *   vote per term: no node grants its vote (not a pre-vote) to two candidates in one term.
 * - Log matching: two logs holding an entry with the same index and term are identical up to it. Checked
 *   incrementally: every (index, term) ever written anywhere must always carry the same entry and follow the
 *   same previous term; by induction on the index, that is log matching for every pair of logs at all times.
 * - Leader completeness: an entry committed in term T is in the log of every leader of a later term. The
 *   commit term of index i is the term of the first leader seen with commit >= i.
 * - State machine safety: no two nodes apply different entries at one index, restarts included; a snapshot
 *   installed at index i carries the term the entry applied at i had.
 * - Commit durability: when a leader advances its commit index to c, a majority of the voters of its
 *   configuration hold the entry at c (with the term the leader has there) on stable storage, or a durable
 *   snapshot covering c. Stronger than what clients can see, it catches a commit counted before a write was
 *   durable, which only a further crash would turn into lost data.
 * - Applied index: while a node is up, it applies index applied+1 and nothing else, and a snapshot it
 *   restores lies beyond its applied index. A restart rebuilds the state from the durable snapshot and
 *   re-applies the log, so the applied index legitimately restarts at the snapshot index; what must hold is
 *   that nothing is lost: the node's durable recovery point R = max(snapshot index, durable commit) must be
 *   at least its high-water mark H (the highest index it ever applied), and the first Ready after the restart
 *   must bring it back to R from its own log. Then a restarted node never exposes a state older than one it
 *   exposed before the crash.
 *
 * A breach throws `Violation` with the virtual time.
 */

import type { Entry, NodeId } from '../../src/raft/types.ts'
import { MS_PER_TICK } from './scheduler.ts'

export class Violation extends Error {
  /** Which property broke, e.g. `election-safety`. */
  readonly property: string
  /** Virtual time in ms. */
  readonly time: number

  constructor(property: string, time: number, detail: string) {
    super(`${property} violated at tick ${(time / MS_PER_TICK).toFixed(1)} (t=${time}ms): ${detail}`)
    this.name = 'Violation'
    this.property = property
    this.time = time
  }
}

/** A node's log as it has written it (durable plus pending): what the invariants read. */
export interface LogView {
  readonly snapshotIndex: number
  readonly lastIndex: number
  termAt(index: number): number | undefined
}

interface EntryRecord {
  term: number
  type: Entry['type']
  data: Uint8Array
  node: NodeId
}

interface WrittenRecord {
  prevTerm: number
  type: Entry['type']
  data: Uint8Array
  node: NodeId
}

interface CommitRecord {
  /** Term of the entry at the index; undefined until some node has shown it. */
  term: number | undefined
  /** Term of the first leader seen with its commit at or past the index. */
  commitTerm: number
}

interface AppliedTrack {
  up: boolean
  applied: number
  highWater: number
  /** After a restart, the recovery point the first Ready must reach; undefined once checked. */
  recoveryPoint: number | undefined
}

export class SafetyMonitor {
  private readonly clock: () => number
  private readonly leaderOfTerm = new Map<number, NodeId>()
  /** `voter@term` -> the candidate it voted for. */
  private readonly votes = new Map<string, NodeId>()
  private readonly written = new Map<string, WrittenRecord>()
  private readonly applied = new Map<number, EntryRecord>()
  private readonly committed: CommitRecord[] = []
  /** Highest index registered in `committed` (indexes 1..this). */
  private committedThrough = 0
  private readonly leaders = new Map<NodeId, { term: number; view: LogView }>()
  private readonly appliedTracks = new Map<NodeId, AppliedTrack>()
  /** How many checks ran, per property, so a test can see the checkers were exercised. */
  readonly checks = {
    electionSafety: 0,
    logMatching: 0,
    leaderCompleteness: 0,
    stateMachineSafety: 0,
    commitDurability: 0,
    appliedIndex: 0,
  }

  constructor(clock: () => number) {
    this.clock = clock
  }

  private fail(property: string, detail: string): never {
    throw new Violation(property, this.clock(), detail)
  }

  /** Node `node` is leader in `term`, with its log as `view`. Call whenever a leader is seen. */
  observeLeader(node: NodeId, term: number, view: LogView): void {
    this.checks.electionSafety++
    const known = this.leaderOfTerm.get(term)
    if (known === undefined) this.leaderOfTerm.set(term, node)
    else if (known !== node)
      this.fail('election-safety', `${known} and ${node} are both leader in term ${term}`)
    const current = this.leaders.get(node)
    if (current?.term === term) return
    this.leaders.set(node, { term, view })
    // A new leader must hold every entry committed in an earlier term.
    for (let index = 1; index <= this.committedThrough; index++)
      this.checkLeaderHolds(node, term, view, index)
  }

  /** `voter` sent a granted vote (not a pre-vote) to `candidate` for `term`. */
  observeVote(voter: NodeId, term: number, candidate: NodeId): void {
    this.checks.electionSafety++
    const key = `${voter}@${term}`
    const known = this.votes.get(key)
    if (known === undefined) this.votes.set(key, candidate)
    else if (known !== candidate)
      this.fail('election-safety', `${voter} voted for ${known} and for ${candidate} in term ${term}`)
  }

  /** Node `node` is no longer leader (stepped down or crashed). */
  observeNotLeader(node: NodeId): void {
    this.leaders.delete(node)
  }

  /**
   * A node in `term` knows entries up to `commit` are committed. From a leader, `term` is the commit term;
   * from a follower, it is an upper bound of it, which only makes the completeness check look at fewer leaders.
   */
  observeCommit(term: number, commit: number, view: LogView): void {
    while (this.committedThrough < commit) {
      const index = ++this.committedThrough
      const entryTerm = view.termAt(index) ?? this.applied.get(index)?.term
      this.committed[index] = { term: entryTerm, commitTerm: term }
      if (entryTerm !== undefined) this.checkLeadersHold(index)
    }
  }

  /** `node` wrote `entries` right after an entry (or snapshot) of term `prevTerm`. */
  observeWrite(node: NodeId, prevTerm: number, entries: readonly Entry[]): void {
    let previous = prevTerm
    for (const entry of entries) {
      this.checks.logMatching++
      const key = `${entry.index}/${entry.term}`
      const known = this.written.get(key)
      if (known === undefined) {
        this.written.set(key, { prevTerm: previous, type: entry.type, data: entry.data, node })
      } else if (known.prevTerm !== previous) {
        this.fail(
          'log-matching',
          `entry ${key} follows term ${previous} on ${node} but term ${known.prevTerm} on ${known.node}`,
        )
      } else if (known.type !== entry.type || !sameBytes(known.data, entry.data)) {
        this.fail('log-matching', `entry ${key} on ${node} differs from the one ${known.node} wrote`)
      }
      previous = entry.term
    }
  }

  /**
   * Leader `node` advanced its commit index to `commit`, where its log has `term`; `durable` gives each
   * voter's stable storage (undefined for a node that is down: what it has on disk still counts).
   */
  observeLeaderCommit(
    node: NodeId,
    commit: number,
    term: number,
    voters: readonly NodeId[],
    durable: (id: NodeId) => LogView,
  ): void {
    this.checks.commitDurability++
    const holders = voters.filter(id => {
      const log = durable(id)
      return commit <= log.snapshotIndex || log.termAt(commit) === term
    })
    if (holders.length <= voters.length / 2) {
      this.fail(
        'commit-durability',
        `${node} committed ${commit}/${term} but only [${holders.join(' ')}] of voters [${voters.join(' ')}] hold it durably`,
      )
    }
  }

  /** `node` applied `entry` to its state machine. */
  observeApply(node: NodeId, entry: Entry): void {
    const track = this.track(node)
    this.checks.appliedIndex++
    if (entry.index !== track.applied + 1) {
      this.fail('applied-index', `${node} applied index ${entry.index} right after ${track.applied}`)
    }
    track.applied = entry.index
    if (entry.index > track.highWater) track.highWater = entry.index

    this.checks.stateMachineSafety++
    const known = this.applied.get(entry.index)
    if (known === undefined) {
      this.applied.set(entry.index, { term: entry.term, type: entry.type, data: entry.data, node })
      const commit = this.committed[entry.index]
      if (commit !== undefined && commit.term === undefined) {
        commit.term = entry.term
        this.checkLeadersHold(entry.index)
      }
    } else if (known.term !== entry.term || known.type !== entry.type || !sameBytes(known.data, entry.data)) {
      this.fail(
        'state-machine-safety',
        `${node} applied ${entry.index}/${entry.term} but ${known.node} applied ${entry.index}/${known.term} there`,
      )
    }
    const commit = this.committed[entry.index]
    if (commit?.term !== undefined && commit.term !== entry.term) {
      this.fail(
        'state-machine-safety',
        `${node} applied ${entry.index}/${entry.term}, committed as term ${commit.term}`,
      )
    }
  }

  /** `node` replaced its state machine with a snapshot at `index` (term `term`). */
  observeRestore(node: NodeId, index: number, term: number): void {
    const track = this.track(node)
    this.checks.appliedIndex++
    if (index <= track.applied) {
      this.fail(
        'applied-index',
        `${node} restored a snapshot at ${index}, not beyond its applied index ${track.applied}`,
      )
    }
    track.applied = index
    if (index > track.highWater) track.highWater = index
    this.checks.stateMachineSafety++
    const known = this.applied.get(index)
    if (known !== undefined && known.term !== term) {
      this.fail(
        'state-machine-safety',
        `${node} restored a snapshot at ${index}/${term} but ${known.node} applied term ${known.term} there`,
      )
    }
  }

  observeCrash(node: NodeId): void {
    this.track(node).up = false
    this.leaders.delete(node)
  }

  /** `node` restarted from its durable state: snapshot at `snapshotIndex`, durable commit `durableCommit`. */
  observeRestart(node: NodeId, snapshotIndex: number, durableCommit: number): void {
    const track = this.track(node)
    this.checks.appliedIndex++
    const recoveryPoint = Math.max(snapshotIndex, durableCommit)
    if (recoveryPoint < track.highWater) {
      this.fail(
        'applied-index',
        `${node} had applied up to ${track.highWater} but restarts with a durable recovery point of ${recoveryPoint} (snapshot ${snapshotIndex}, commit ${durableCommit})`,
      )
    }
    track.up = true
    track.applied = snapshotIndex
    track.recoveryPoint = recoveryPoint
  }

  /** `node` finished a Ready; the first one after a restart must have re-applied to the recovery point. */
  observeReadyDone(node: NodeId): void {
    const track = this.track(node)
    if (track.recoveryPoint === undefined) return
    const recoveryPoint = track.recoveryPoint
    track.recoveryPoint = undefined
    if (track.applied < recoveryPoint) {
      this.fail(
        'applied-index',
        `${node} restarted with a durable recovery point of ${recoveryPoint} but its first Ready only brought it to ${track.applied}`,
      )
    }
  }

  /** Highest index known committed. */
  get commitIndex(): number {
    return this.committedThrough
  }

  /** The leaders seen, by term (for reports). */
  get terms(): number {
    return this.leaderOfTerm.size
  }

  private track(node: NodeId): AppliedTrack {
    let track = this.appliedTracks.get(node)
    if (track === undefined) {
      track = { up: true, applied: 0, highWater: 0, recoveryPoint: undefined }
      this.appliedTracks.set(node, track)
    }
    return track
  }

  /** Sets where a node's applied index starts (a node founded from a snapshot, or a fresh one at 0). */
  startNode(node: NodeId, appliedIndex: number): void {
    this.appliedTracks.set(node, {
      up: true,
      applied: appliedIndex,
      highWater: appliedIndex,
      recoveryPoint: undefined,
    })
  }

  private checkLeadersHold(index: number): void {
    for (const [node, { term, view }] of this.leaders) this.checkLeaderHolds(node, term, view, index)
  }

  private checkLeaderHolds(node: NodeId, term: number, view: LogView, index: number): void {
    const commit = this.committed[index]
    if (commit === undefined || commit.term === undefined || commit.commitTerm >= term) return
    this.checks.leaderCompleteness++
    if (index <= view.snapshotIndex) return
    const held = view.termAt(index)
    if (held !== commit.term) {
      this.fail(
        'leader-completeness',
        `${node} leads term ${term} but holds ${held === undefined ? 'nothing' : `term ${held}`} at ${index}, committed in term ${commit.commitTerm} as ${index}/${commit.term}`,
      )
    }
  }
}

/** End-of-run cross-check of log matching over every pair of logs, written directly from the definition. */
export function checkLogsMatch(
  logs: ReadonlyMap<NodeId, LogView & { entryAt(index: number): Entry | undefined }>,
  time: number,
): void {
  const nodes = [...logs.keys()]
  for (let x = 0; x < nodes.length; x++) {
    for (let y = x + 1; y < nodes.length; y++) {
      const a = logs.get(nodes[x])!
      const b = logs.get(nodes[y])!
      const low = Math.max(a.snapshotIndex, b.snapshotIndex) + 1
      const high = Math.min(a.lastIndex, b.lastIndex)
      let matched = false
      for (let index = high; index >= low; index--) {
        const ea = a.entryAt(index)!
        const eb = b.entryAt(index)!
        if (!matched && ea.term === eb.term) matched = true
        if (matched && (ea.term !== eb.term || ea.type !== eb.type || !sameBytes(ea.data, eb.data))) {
          throw new Violation(
            'log-matching',
            time,
            `${nodes[x]} and ${nodes[y]} share a later entry but differ at ${index}`,
          )
        }
      }
    }
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}
