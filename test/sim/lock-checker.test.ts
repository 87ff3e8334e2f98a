/** The lock safety checker fires on what it must catch, and only on that. */

import { describe, expect, it } from 'vitest'
import { Violation } from '../../scripts/sim/invariants.ts'
import { LockChecker } from '../../scripts/sim/lock-clients.ts'
import { Scheduler } from '../../scripts/sim/scheduler.ts'

function violation(fn: () => void): Violation | undefined {
  try {
    fn()
  } catch (error) {
    if (error instanceof Violation) return error
    throw error
  }
  return undefined
}

describe('LockChecker', () => {
  it('accepts a holder that trusts its lease only until the next grant', () => {
    const scheduler = new Scheduler()
    const checker = new LockChecker(scheduler)
    checker.granted('a', 1n)
    scheduler.runUntil(100)
    checker.heldTrue('a', 1n)
    scheduler.runUntil(200)
    checker.granted('b', 5n)
    checker.heldTrue('b', 5n)
    expect(checker.stats).toMatchObject({ grants: 2, heldChecks: 2 })
  })

  it('catches isHeld() true after a later token was granted (two holders at one real instant)', () => {
    const scheduler = new Scheduler()
    const checker = new LockChecker(scheduler)
    checker.granted('a', 1n)
    scheduler.runUntil(100)
    checker.granted('b', 7n)
    scheduler.runUntil(101)
    expect(violation(() => checker.heldTrue('a', 1n))?.property).toBe('lock-safety')
  })

  it('catches a fencing token granted twice', () => {
    const checker = new LockChecker(new Scheduler())
    checker.granted('a', 3n)
    expect(violation(() => checker.granted('b', 3n))?.property).toBe('lock-fencing')
  })
})
