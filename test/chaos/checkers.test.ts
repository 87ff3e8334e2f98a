import { describe, expect, it } from 'vitest'
import {
  checkKvLinearizable,
  checkLockSafety,
  checkRegister,
  checkTasks,
} from '../../scripts/chaos/checkers.ts'
import { faultRules } from '../../scripts/chaos/cluster.ts'
import { outcomeOf } from '../../scripts/chaos/errors.ts'
import type { LockGrant, TaskSubmission } from '../../scripts/chaos/history.ts'
import type { TaskRecord } from '../../scripts/chaos/host-ops.ts'
import { REGISTER_KEY } from '../../scripts/chaos/workload.ts'
import type { KvOperation } from '../../src/check/index.ts'

// The chaos suite's checks must be able to fail: each is fed a history with the violation it looks for.

function grant(
  token: number,
  call: number,
  granted: number,
  heldChecks: [number, number, boolean][] = [],
): LockGrant {
  return {
    client: token,
    agent: `a${token}`,
    key: 'lock',
    call,
    granted,
    token: BigInt(token),
    outcome: 'ok',
    heldChecks,
  }
}

describe('lock safety', () => {
  it('accepts grants whose tokens follow real time and holders that stop claiming the lock', () => {
    const report = checkLockSafety([grant(10, 0, 1, [[2, 3, true]]), grant(20, 1.5, 5, [[6, 7, true]])])
    expect(report.violations).toEqual([])
    expect(report.ok).toBe(true)
  })

  it('reports a token that goes back in real-time grant order', () => {
    const report = checkLockSafety([grant(20, 0, 1), grant(10, 2, 3)])
    expect(report.ok).toBe(false)
    expect(report.violations[0]).toMatch(/token order/)
  })

  it('reports one token granted twice', () => {
    expect(checkLockSafety([grant(10, 0, 1), grant(10, 2, 3)]).violations[0]).toMatch(/granted twice/)
  })

  it('reports an earlier holder that says isHeld() after a later grant completed', () => {
    const report = checkLockSafety([grant(10, 0, 1, [[6, 7, true]]), grant(20, 2, 5)])
    expect(report.violations[0]).toMatch(/two holders/)
    // The same answer before the later grant completed is no violation: the grant may not have happened yet.
    expect(checkLockSafety([grant(10, 0, 1, [[4, 7, true]]), grant(20, 2, 5)]).ok).toBe(true)
  })
})

function registerWrite(
  value: string,
  expected: string | undefined,
  ok: boolean | undefined,
  at: number,
): KvOperation {
  return {
    clientId: 0,
    input: { op: 'cas', key: REGISTER_KEY, expected, value },
    call: at,
    output: ok === undefined ? undefined : { ok },
    return: ok === undefined ? Number.POSITIVE_INFINITY : at + 0.5,
  }
}

describe('the lock-protected counter', () => {
  it('accepts a final count between the acknowledged increments and those plus the unknown ones', () => {
    const history = [
      registerWrite('1@10', undefined, true, 1),
      registerWrite('2@20', '1@10', true, 2),
      registerWrite('3@30', '2@20', undefined, 3),
    ]
    expect(checkRegister(history, '2@20').ok).toBe(true)
    expect(checkRegister(history, '3@30').ok).toBe(true)
  })

  it('reports a lost increment', () => {
    const history = [registerWrite('1@10', undefined, true, 1), registerWrite('2@20', '1@10', true, 2)]
    expect(checkRegister(history, '1@10').violations[0]).toMatch(/final count 1/)
  })

  it('reports a count written by two holders, and a write behind the fence', () => {
    const twice = [registerWrite('1@10', undefined, true, 1), registerWrite('1@20', undefined, true, 2)]
    expect(checkRegister(twice, '1@20').violations.join()).toMatch(/written twice/)
    const behind = [registerWrite('1@20', undefined, true, 1), registerWrite('2@10', '1@20', true, 2)]
    expect(checkRegister(behind, '2@10').violations.join()).toMatch(/fence/)
  })
})

describe('kv linearizability', () => {
  it('reports a read of a value overwritten before the read began', () => {
    const history: KvOperation[] = [
      { clientId: 0, input: { op: 'put', key: 'k', value: 'a' }, call: 0, output: {}, return: 1 },
      { clientId: 0, input: { op: 'put', key: 'k', value: 'b' }, call: 2, output: {}, return: 3 },
      { clientId: 1, input: { op: 'get', key: 'k' }, call: 4, output: { value: 'a' }, return: 5 },
    ]
    expect(checkKvLinearizable(history).ok).toBe(false)
    expect(checkKvLinearizable(history.slice(0, 2)).ok).toBe(true)
  })
})

function submission(id: string, outcome: TaskSubmission['outcome']): TaskSubmission {
  return { id, call: 0, return: 1, outcome, requiredCapabilities: [] }
}

function record(id: string, state: string, attempt: number, resultAttempt = attempt): TaskRecord {
  return { id, state, attempt, result: { attempt: resultAttempt } }
}

describe('tasks exactly once', () => {
  it('accepts every acknowledged task completed once, and an unknown submission that never happened', () => {
    const report = checkTasks(
      [submission('t1', 'ok'), submission('t2', 'unknown')],
      new Map([
        ['t1', record('t1', 'completed', 2)],
        ['t2', undefined],
      ]),
      new Map([['t1', [2]]]),
    )
    expect(report.violations).toEqual([])
  })

  it('reports a task completed twice, a lost task, an unfinished one, and a stale result', () => {
    const report = checkTasks(
      [submission('t1', 'ok'), submission('t2', 'ok'), submission('t3', 'ok'), submission('t4', 'ok')],
      new Map<string, TaskRecord | undefined>([
        ['t1', record('t1', 'completed', 2)],
        ['t2', undefined],
        ['t3', record('t3', 'running', 1)],
        ['t4', record('t4', 'completed', 3, 2)],
      ]),
      new Map([['t1', [1, 2]]]),
    )
    const text = report.violations.join('\n')
    expect(text).toMatch(/t1: completion accepted 2 times/)
    expect(text).toMatch(/t2: acknowledged but unknown/)
    expect(text).toMatch(/t3: running/)
    expect(text).toMatch(/t4: result of attempt 2, but attempt 3/)
  })

  it('reports a refused submission that created the task', () => {
    const report = checkTasks(
      [submission('t1', 'fail')],
      new Map([['t1', record('t1', 'completed', 1)]]),
      new Map(),
    )
    expect(report.violations[0]).toMatch(/refused, yet the task exists/)
  })
})

describe('the harness', () => {
  it('turns cuts into deny lists (both ways) and outbound drops (one way)', () => {
    const ids = ['A', 'B', 'C']
    const cuts = [
      [0, 1],
      [1, 0],
      [0, 2],
    ] as const
    expect(faultRules(cuts, 0, i => ids[i])).toEqual({ deny: ['B'], dropOutbound: ['C'] })
    expect(faultRules(cuts, 1, i => ids[i])).toEqual({ deny: ['A'], dropOutbound: [] })
    expect(faultRules(cuts, 2, i => ids[i])).toEqual({ deny: [], dropOutbound: [] })
  })

  it('counts a write refused because the session expired as of unknown outcome, a revision mismatch as refused', () => {
    const named = (name: string, message = ''): Error => Object.assign(new Error(message), { name })
    expect(outcomeOf(named('RevisionMismatchError'))).toBe('fail')
    expect(outcomeOf(named('InvalidArgumentError', 'SessionExpired: session s does not exist'))).toBe(
      'unknown',
    )
    expect(outcomeOf(named('NoLeaderError'))).toBe('unknown')
    expect(outcomeOf(named('ClosedError'))).toBe('unknown')
  })
})
