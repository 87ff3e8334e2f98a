/**
 * The checkers of the transaction, ephemeral-key and semaphore workloads fire on what they must catch (a
 * fault planted in their input), and only on that.
 */

import { describe, expect, it } from 'vitest'
import type { Cluster } from '../../scripts/sim/cluster.ts'
import { EphemeralChecker } from '../../scripts/sim/ephemeral-clients.ts'
import { Violation } from '../../scripts/sim/invariants.ts'
import { Scheduler } from '../../scripts/sim/scheduler.ts'
import { SemaphoreChecker } from '../../scripts/sim/semaphore-clients.ts'
import { TxnChecker } from '../../scripts/sim/txn-clients.ts'

function violation(fn: () => void): Violation | undefined {
  try {
    fn()
  } catch (error) {
    if (error instanceof Violation) return error
    throw error
  }
  return undefined
}

describe('TxnChecker', () => {
  const entry = (value: number | string, version = 1) => ({ value, version })

  it('accepts no accounts (not opened yet) or all of them at the total', () => {
    const checker = new TxnChecker(new Scheduler(), 3)
    checker.observeSnapshot({}, 'test')
    checker.observeSnapshot({ 'acct/memo': entry('m') }, 'test')
    checker.observeSnapshot({ 'acct/0': entry(80), 'acct/1': entry(150), 'acct/2': entry(70) }, 'test')
  })

  it('catches a read whose balances do not sum to the total, or that lacks an account', () => {
    const checker = new TxnChecker(new Scheduler(), 2)
    expect(
      violation(() => checker.observeSnapshot({ 'acct/0': entry(90), 'acct/1': entry(100) }, 't'))?.property,
    ).toBe('txn-sum')
    expect(violation(() => checker.observeSnapshot({ 'acct/0': entry(200) }, 't'))?.property).toBe('txn-sum')
  })

  it('catches a transaction history that is not linearizable', () => {
    const checker = new TxnChecker(new Scheduler(), 2)
    const [a, b] = checker.accounts
    checker.record({
      clientId: 1,
      input: {
        op: 'txn',
        compare: [{ key: a, target: 'exists', op: '==', value: false }],
        success: [
          { type: 'put', key: a, value: 100 },
          { type: 'put', key: b, value: 100 },
        ],
        failure: [],
      },
      call: 1,
      output: { succeeded: true },
      return: 2,
    })
    // A read after it that still sees nothing.
    checker.record({
      clientId: 2,
      input: { op: 'read', keys: [a, b] },
      call: 3,
      output: { entries: {} },
      return: 4,
    })
    expect(violation(() => checker.check(1000))?.property).toBe('txn-linearizability')
  })
})

describe('SemaphoreChecker', () => {
  it('accepts N permits held at once, and a permit that changes hands', () => {
    const scheduler = new Scheduler()
    const checker = new SemaphoreChecker(scheduler, 2)
    checker.granted('a', 1n)
    checker.granted('b', 2n)
    scheduler.runUntil(10)
    checker.heldTrue('a', 1n)
    checker.heldTrue('b', 2n)
    scheduler.runUntil(20)
    checker.granted('c', 5n)
    checker.heldTrue('c', 5n)
    checker.heldTrue('b', 2n)
    expect(checker.stats).toMatchObject({ grants: 3, maxHeld: 2 })
  })

  it('catches N + 1 holders at one instant, also when the overlap is found later', () => {
    const scheduler = new Scheduler()
    const checker = new SemaphoreChecker(scheduler, 2)
    checker.granted('a', 1n)
    checker.granted('b', 2n)
    scheduler.runUntil(10)
    checker.heldTrue('b', 2n)
    checker.granted('c', 3n)
    scheduler.runUntil(15)
    checker.heldTrue('c', 3n)
    scheduler.runUntil(20)
    // a's permit was held from its grant (t=0) to now (t=20): with b and c, three at t=10..15.
    expect(violation(() => checker.heldTrue('a', 1n))?.property).toBe('semaphore-safety')
  })

  it('catches a fencing token granted twice', () => {
    const checker = new SemaphoreChecker(new Scheduler(), 3)
    checker.granted('a', 4n)
    expect(violation(() => checker.granted('b', 4n))?.property).toBe('semaphore-fencing')
  })
})

/** One agent as the ephemeral checker samples it: its session's trust and its state's sessions and keys. */
class FakeAgent {
  readonly id = 'n1'
  up = true
  decommissioned = false
  incarnation = 0
  sessionId = 's1'
  validUntil = 1_000
  readonly liveSessions = new Set(['s1'])
  readonly keys = new Set<string>()
  readonly clock: { epoch: number; now(): number; run(epoch: number, fn: () => void): void }

  constructor(scheduler: Scheduler) {
    this.clock = { epoch: 0, now: () => scheduler.now, run: (_epoch, fn) => fn() }
  }

  kvApi() {
    return {
      session: { id: this.sessionId, validUntil: () => this.validUntil },
      state: {
        session: (id: string) => (this.liveSessions.has(id) ? {} : undefined),
        getEntry: (key: string) => (this.keys.has(key) ? {} : undefined),
      },
    }
  }
}

function ephemeralWorld() {
  const scheduler = new Scheduler()
  const agent = new FakeAgent(scheduler)
  const cluster = { nodes: [agent], leader: () => agent } as unknown as Cluster
  const checker = new EphemeralChecker(scheduler, cluster, 1000)
  checker.putCalled('eph/n1/1', 's1', 'n1')
  agent.keys.add('eph/n1/1')
  scheduler.runUntil(5)
  checker.putAnswered('eph/n1/1')
  checker.sample()
  return { scheduler, agent, checker }
}

const detail = (calledAt: number, endedAt: number) => ({
  opId: 'e1.1',
  calledAt,
  endedAt,
  completed: true,
  attempts: 1,
  lastTarget: 'n1',
})

describe('EphemeralChecker', () => {
  it('accepts a key seen while its session lives and gone once it ended', () => {
    const { scheduler, agent, checker } = ephemeralWorld()
    checker.read({ keys: ['eph/n1/1'] }, detail(10, 12))
    scheduler.runUntil(1_500)
    agent.validUntil = 0
    agent.liveSessions.delete('s1')
    agent.keys.delete('eph/n1/1')
    checker.sample()
    checker.read({ keys: [] }, detail(1_600, 1_602))
    checker.checkReads()
    checker.checkEnds()
    expect(checker.stats).toMatchObject({ sessionsEnded: 1, absentSeen: 1 })
  })

  it('catches a key gone while its agent still trusted the session', () => {
    const { scheduler, checker } = ephemeralWorld()
    checker.read({ keys: [] }, detail(10, 12))
    scheduler.runUntil(20)
    checker.sample()
    expect(violation(() => checker.checkReads())?.property).toBe('ephemeral-early-delete')
  })

  it('catches a key read after a replica ended its session', () => {
    const { scheduler, agent, checker } = ephemeralWorld()
    scheduler.runUntil(1_500)
    agent.liveSessions.delete('s1')
    agent.keys.delete('eph/n1/1')
    checker.sample()
    checker.read({ keys: ['eph/n1/1'] }, detail(1_600, 1_602))
    expect(violation(() => checker.checkReads())?.property).toBe('ephemeral-late-delete')
  })

  it('catches a replica state that keeps a key of a session it ended', () => {
    const { scheduler, agent, checker } = ephemeralWorld()
    scheduler.runUntil(1_500)
    agent.liveSessions.delete('s1')
    expect(violation(() => checker.sample())?.property).toBe('ephemeral-state')
  })

  it('catches the session of a crashed agent still live past ttl and slack', () => {
    const { scheduler, agent, checker } = ephemeralWorld()
    agent.up = false
    checker.sample()
    expect(checker.drainUntil()).toBe(5 + 1000 + 500)
    scheduler.runUntil(1_400)
    checker.checkEnds()
    scheduler.runUntil(1_505)
    agent.up = true
    agent.incarnation = 1
    agent.sessionId = 's2'
    expect(violation(() => checker.checkEnds())?.property).toBe('ephemeral-liveness')
  })
})
