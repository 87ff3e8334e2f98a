import { describe, expect, it } from 'vitest'
import { StoredLog } from '../../scripts/sim/disk.ts'
import { checkLogsMatch, SafetyMonitor, Violation } from '../../scripts/sim/invariants.ts'
import type { Entry } from '../../src/raft/types.ts'

const entry = (index: number, term: number, text = `${index}/${term}`): Entry => ({
  index,
  term,
  type: 'normal',
  data: new TextEncoder().encode(text),
})

/** A log holding `terms[i]` at index i + 1. */
function logOf(terms: number[]): StoredLog {
  const log = new StoredLog({
    hardState: { term: 0, vote: '', commit: 0 },
    snapshot: {
      meta: { index: 0, term: 0, config: { voters: ['a'], nonVoters: [] } },
      data: new Uint8Array(),
    },
    entries: [],
  })
  if (terms.length > 0) log.apply({ entries: terms.map((term, i) => entry(i + 1, term)) })
  return log
}

function violation(run: () => void): Violation {
  try {
    run()
  } catch (error) {
    if (error instanceof Violation) return error
    throw error
  }
  throw new Error('no violation')
}

describe('SafetyMonitor', () => {
  it('election safety: a second leader in a term fires, even across crashes', () => {
    const monitor = new SafetyMonitor(() => 120)
    monitor.observeLeader('a', 3, logOf([1, 3]))
    monitor.observeLeader('a', 3, logOf([1, 3]))
    monitor.observeCrash('a')
    monitor.observeLeader('b', 4, logOf([1, 3]))
    const broken = violation(() => monitor.observeLeader('c', 3, logOf([1, 3])))
    expect(broken.property).toBe('election-safety')
    expect(broken.message).toContain('a and c are both leader in term 3')
    expect(broken.message).toContain('tick 12.0')
  })

  it('election safety: a node voting for two candidates in one term fires', () => {
    const monitor = new SafetyMonitor(() => 0)
    monitor.observeVote('a', 2, 'b')
    monitor.observeVote('a', 2, 'b')
    monitor.observeVote('a', 3, 'c')
    expect(violation(() => monitor.observeVote('a', 2, 'c')).message).toContain(
      'a voted for b and for c in term 2',
    )
  })

  it('log matching: one (index, term) with two payloads or two predecessors fires', () => {
    const monitor = new SafetyMonitor(() => 0)
    monitor.observeWrite('a', 0, [entry(1, 1), entry(2, 1)])
    monitor.observeWrite('b', 0, [entry(1, 1), entry(2, 1)])
    expect(violation(() => monitor.observeWrite('c', 1, [entry(2, 1, 'other')])).property).toBe(
      'log-matching',
    )
    const other = new SafetyMonitor(() => 0)
    other.observeWrite('a', 1, [entry(2, 2)])
    expect(violation(() => other.observeWrite('b', 3, [entry(2, 2)])).message).toContain('follows term 3')
  })

  it('log matching at the end: two logs agreeing on a later entry but not an earlier one fire', () => {
    const logs = new Map([
      ['a', logOf([1, 1, 2])],
      ['b', logOf([1, 1, 2, 2])],
    ])
    expect(() => checkLogsMatch(logs, 0)).not.toThrow()
    const bad = logOf([1, 1, 2])
    bad.entries[1] = entry(2, 1, 'different')
    logs.set('c', bad)
    expect(violation(() => checkLogsMatch(logs, 0)).property).toBe('log-matching')
  })

  it('state machine safety: two entries applied at one index fire, restarts included', () => {
    const monitor = new SafetyMonitor(() => 0)
    monitor.observeApply('a', entry(1, 1))
    monitor.observeApply('b', entry(1, 1))
    monitor.observeCrash('b')
    monitor.observeRestart('b', 0, 1)
    monitor.observeApply('b', entry(1, 1))
    const broken = violation(() => monitor.observeApply('c', entry(1, 2)))
    expect(broken.property).toBe('state-machine-safety')
    // A snapshot must carry the term the entry at its index had.
    expect(violation(() => monitor.observeRestore('d', 1, 5)).property).toBe('state-machine-safety')
  })

  it('leader completeness: a later leader missing a committed entry fires, an earlier one does not', () => {
    const monitor = new SafetyMonitor(() => 0)
    // Leader of term 2 commits index 2 (written in term 1: committed in term 2).
    monitor.observeLeader('a', 2, logOf([1, 1, 2]))
    monitor.observeCommit(2, 2, logOf([1, 1, 2]))
    // A stale leader of term 1 need not have it.
    monitor.observeLeader('b', 1, logOf([1]))
    // A leader of term 3 holding it is fine; one holding another entry there is not.
    monitor.observeLeader('c', 3, logOf([1, 1, 3]))
    const broken = violation(() => monitor.observeLeader('d', 4, logOf([1, 4])))
    expect(broken.property).toBe('leader-completeness')
    expect(broken.message).toContain('d leads term 4 but holds term 4 at 2')
  })

  it('leader completeness: an entry whose commit becomes known later is checked against the sitting leaders', () => {
    const monitor = new SafetyMonitor(() => 0)
    const leaderLog = logOf([1])
    monitor.observeLeader('x', 5, leaderLog)
    // Index 1 is committed in term 3, its term known only once someone applies it.
    monitor.observeCommit(3, 1, logOf([]))
    expect(violation(() => monitor.observeApply('y', entry(1, 2))).property).toBe('leader-completeness')
  })

  it('applied index: a skipped or repeated index, or a snapshot that goes back, fires', () => {
    const monitor = new SafetyMonitor(() => 0)
    monitor.observeApply('a', entry(1, 1))
    expect(violation(() => monitor.observeApply('a', entry(3, 1))).message).toContain(
      'applied index 3 right after 1',
    )
    const again = new SafetyMonitor(() => 0)
    again.observeApply('a', entry(1, 1))
    again.observeApply('a', entry(2, 1))
    expect(violation(() => again.observeApply('a', entry(2, 1))).property).toBe('applied-index')
    const restore = new SafetyMonitor(() => 0)
    restore.observeApply('a', entry(1, 1))
    restore.observeApply('a', entry(2, 1))
    expect(violation(() => restore.observeRestore('a', 2, 1)).property).toBe('applied-index')
  })

  it('applied index across a restart: the durable recovery point must cover everything applied before', () => {
    const monitor = new SafetyMonitor(() => 0)
    for (let i = 1; i <= 5; i++) monitor.observeApply('a', entry(i, 1))
    monitor.observeCrash('a')
    // Snapshot at 2, durable commit 4: it would come back to 4 after having shown 5.
    const broken = violation(() => monitor.observeRestart('a', 2, 4))
    expect(broken.property).toBe('applied-index')
    expect(broken.message).toContain('had applied up to 5')

    const ok = new SafetyMonitor(() => 0)
    for (let i = 1; i <= 5; i++) ok.observeApply('a', entry(i, 1))
    ok.observeCrash('a')
    ok.observeRestart('a', 2, 5)
    // Re-applying from the snapshot is how a restart rebuilds the state: not a step back.
    for (let i = 3; i <= 5; i++) ok.observeApply('a', entry(i, 1))
    ok.observeReadyDone('a')
  })

  it('applied index across a restart: the first Ready must re-apply up to the recovery point', () => {
    const monitor = new SafetyMonitor(() => 0)
    for (let i = 1; i <= 4; i++) monitor.observeApply('a', entry(i, 1))
    monitor.observeCrash('a')
    monitor.observeRestart('a', 0, 4)
    monitor.observeApply('a', entry(1, 1))
    expect(violation(() => monitor.observeReadyDone('a')).message).toContain('only brought it to 1')
  })
})

describe('commit durability', () => {
  it('fires when a leader commits what a majority does not hold on stable storage', () => {
    const monitor = new SafetyMonitor(() => 0)
    const disks: Record<string, StoredLog> = { a: logOf([1, 1]), b: logOf([1, 1]), c: logOf([1]) }
    monitor.observeLeaderCommit('a', 2, 1, ['a', 'b', 'c'], id => disks[id])
    disks.b = logOf([1])
    const broken = violation(() => monitor.observeLeaderCommit('a', 2, 1, ['a', 'b', 'c'], id => disks[id]))
    expect(broken.property).toBe('commit-durability')
    // An entry of another term at that index does not count either.
    disks.b = logOf([1, 2])
    expect(
      violation(() => monitor.observeLeaderCommit('a', 2, 1, ['a', 'b', 'c'], id => disks[id])).property,
    ).toBe('commit-durability')
  })
})
