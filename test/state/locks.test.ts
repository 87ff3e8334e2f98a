import { describe, expect, it } from 'vitest'
import { shellBugs } from '../../src/shell-bugs.ts'
import type { LockAcquireCommand, LockExpireCommand } from '../../src/state/commands.ts'
import type { LockGrantedEvent } from '../../src/state/events.ts'
import { LogDriver } from './helpers.ts'

function acquire(
  sessionId: string,
  requestId = `r-${sessionId}`,
  ttlMs = 5_000,
  wait = true,
): LockAcquireCommand {
  return { type: 'lockAcquire', key: 'L', sessionId, requestId, ttlMs, wait }
}

function granted(events: readonly { type: string }[]): LockGrantedEvent[] {
  return events.filter((event): event is LockGrantedEvent => event.type === 'lockGranted')
}

describe('locks', () => {
  it('grants FIFO across three sessions with tokens equal to the granting index, strictly increasing', () => {
    const log = new LogDriver()
    log.open('a')
    log.open('b')
    log.open('c')
    const first = log.apply(acquire('a'))
    expect(first.result).toEqual({ type: 'lockGranted', fencingToken: log.index, expiresAt: 6_000 })
    expect(granted(first.events)).toEqual([
      {
        type: 'lockGranted',
        key: 'L',
        sessionId: 'a',
        requestId: 'r-a',
        fencingToken: log.index,
        expiresAt: 6_000,
      },
    ])
    expect(log.result(acquire('b'))).toEqual({ type: 'lockQueued', position: 1 })
    expect(log.result(acquire('c'))).toEqual({ type: 'lockQueued', position: 2 })
    expect(log.machine.lock('L')?.waiters.map(waiter => waiter.sessionId)).toEqual(['b', 'c'])

    const tokens = [log.machine.lock('L')!.holder.fencingToken]
    log.apply({ type: 'put', key: 'noise', value: 1 })
    const toB = log
      .at(2_000)
      .apply({ type: 'lockRelease', key: 'L', sessionId: 'a', fencingToken: tokens[0] })
    expect(toB.result).toEqual({ type: 'ok' })
    expect(toB.events).toEqual([
      {
        type: 'lockReleased',
        key: 'L',
        sessionId: 'a',
        requestId: 'r-a',
        fencingToken: tokens[0],
        reason: 'released',
      },
      {
        type: 'lockGranted',
        key: 'L',
        sessionId: 'b',
        requestId: 'r-b',
        fencingToken: log.index,
        expiresAt: 7_000,
      },
    ])
    tokens.push(log.index)
    const toC = log.apply({ type: 'lockRelease', key: 'L', sessionId: 'b', fencingToken: tokens[1] })
    expect(granted(toC.events).map(event => [event.sessionId, event.fencingToken])).toEqual([
      ['c', log.index],
    ])
    tokens.push(log.index)
    const freed = log.apply({ type: 'lockRelease', key: 'L', sessionId: 'c', fencingToken: tokens[2] })
    expect(granted(freed.events)).toEqual([])
    expect(log.machine.lock('L')).toBeUndefined()
    const again = log.apply(acquire('a'))
    tokens.push(log.index)
    expect(again.result).toMatchObject({ type: 'lockGranted', fencingToken: log.index })
    for (let i = 1; i < tokens.length; i++) expect(tokens[i]).toBeGreaterThan(tokens[i - 1])
  })

  it('answers Busy without wait, and is idempotent for a repeated request', () => {
    const log = new LogDriver()
    log.open('a')
    log.open('b')
    const grant = log.result(acquire('a'))
    expect(log.apply(acquire('b', 'rb', 1_000, false))).toEqual({
      result: { type: 'error', code: 'Busy', message: 'lock L is held' },
      events: [],
    })
    expect(log.machine.lock('L')?.waiters).toEqual([])
    // The same request again (a retry without seq) gets the same grant, not a second one.
    expect(log.result(acquire('a'))).toEqual(grant)
    log.apply(acquire('b'))
    expect(log.result(acquire('b'))).toEqual({ type: 'lockQueued', position: 1 })
    expect(log.machine.lock('L')?.waiters).toHaveLength(1)
  })

  it('queues two requests of one session behind each other: a lock is not re-entrant', () => {
    const log = new LogDriver()
    log.open('a')
    log.apply(acquire('a', 'first'))
    expect(log.result(acquire('a', 'second'))).toEqual({ type: 'lockQueued', position: 1 })
  })

  it('rejects release and extend by a non-holder, changing nothing', () => {
    const log = new LogDriver()
    log.open('a')
    log.open('b')
    log.apply(acquire('a'))
    const token = log.machine.lock('L')!.holder.fencingToken
    expect(log.apply({ type: 'lockRelease', key: 'L', sessionId: 'b', fencingToken: token })).toMatchObject({
      result: { type: 'error', code: 'NotHolder' },
      events: [],
    })
    expect(
      log.result({ type: 'lockRelease', key: 'L', sessionId: 'a', fencingToken: token + 1 }),
    ).toMatchObject({
      code: 'NotHolder',
    })
    expect(
      log.result({ type: 'lockExtend', key: 'L', sessionId: 'b', fencingToken: token, ttlMs: 1 }),
    ).toMatchObject({
      code: 'LockLost',
    })
    expect(
      log.result({ type: 'lockRelease', key: 'nope', sessionId: 'a', fencingToken: token }),
    ).toMatchObject({
      code: 'NotHolder',
    })
    expect(log.machine.lock('L')?.holder).toMatchObject({ sessionId: 'a', fencingToken: token })
  })

  it("an older leader's lockExpire (no leaseIndex) after an extend does nothing; after the extended lease it hands the lock on", () => {
    const log = new LogDriver().at(1_000)
    log.open('a', 60_000)
    log.open('b', 60_000)
    log.apply(acquire('a', 'ra', 1_000))
    log.apply(acquire('b', 'rb', 1_000))
    const token = log.machine.lock('L')!.holder.fencingToken
    // The leader, at 2_000, finds the lock due and proposes its expiry...
    expect(log.machine.dueExpiries(2_000).locks).toEqual([{ key: 'L', fencingToken: token }])
    // ...but the holder's extend commits first.
    expect(
      log
        .at(1_900)
        .result({ type: 'lockExtend', key: 'L', sessionId: 'a', fencingToken: token, ttlMs: 1_000 }),
    ).toEqual({ type: 'lockExtended', fencingToken: token, expiresAt: 2_900 })
    expect(log.at(2_000).apply({ type: 'lockExpire', key: 'L', fencingToken: token })).toEqual({
      result: { type: 'unchanged' },
      events: [],
    })
    expect(log.machine.lock('L')?.holder).toMatchObject({ sessionId: 'a', expiresAt: 2_900 })
    const expired = log.at(2_900).apply({ type: 'lockExpire', key: 'L', fencingToken: token })
    expect(expired.result).toEqual({ type: 'ok' })
    expect(expired.events).toEqual([
      {
        type: 'lockReleased',
        key: 'L',
        sessionId: 'a',
        requestId: 'ra',
        fencingToken: token,
        reason: 'expired',
      },
      {
        type: 'lockGranted',
        key: 'L',
        sessionId: 'b',
        requestId: 'rb',
        fencingToken: log.index,
        expiresAt: 3_900,
      },
    ])
    // The old holder's token is dead for good.
    expect(
      log.result({ type: 'lockExtend', key: 'L', sessionId: 'a', fencingToken: token, ttlMs: 1 }),
    ).toMatchObject({
      code: 'LockLost',
    })
    expect(log.result({ type: 'lockExpire', key: 'L', fencingToken: token })).toEqual({ type: 'unchanged' })
  })

  it("names the lease in the leader's lockExpire: an expiry planned before an extend leaves the extended lease", () => {
    const log = new LogDriver().at(1_000)
    log.open('a', 60_000)
    log.open('b', 60_000)
    log.apply(acquire('a', 'ra', 1_000))
    log.apply(acquire('b', 'rb', 1_000))
    const first = log.machine.lock('L')!.holder
    expect(first.leaseIndex).toBe(first.fencingToken)
    // Entry timestamps play no part: the extend sits at the same state time, it still sets a new lease.
    log.result({
      type: 'lockExtend',
      key: 'L',
      sessionId: 'a',
      fencingToken: first.fencingToken,
      ttlMs: 1_000,
    })
    const extended = log.machine.lock('L')!.holder
    expect(extended.leaseIndex).toBe(log.index)
    const stale = {
      type: 'lockExpire',
      key: 'L',
      fencingToken: first.fencingToken,
      leaseIndex: first.leaseIndex,
    }
    expect(log.at(50_000).result(stale as LockExpireCommand)).toEqual({ type: 'unchanged' })
    expect(log.machine.lock('L')!.holder.sessionId).toBe('a')
    // The current lease's expiry ends it at any timestamp, even one before its expiresAt.
    const expired = log.at(1_000).apply({
      type: 'lockExpire',
      key: 'L',
      fencingToken: first.fencingToken,
      leaseIndex: extended.leaseIndex,
    })
    expect(expired.result).toEqual({ type: 'ok' })
    expect(expired.events.map(event => event.type)).toEqual(['lockReleased', 'lockGranted'])
    expect(log.machine.lock('L')!.holder.sessionId).toBe('b')
  })

  // The lease-inline-expiry hole: an entry's timestamp is the proposing leader's wall clock, which may run
  // ahead of the holder's lease; only the leader's guarded expiry (on its monotonic clock) may end a lease.
  for (const bug of [false, true]) {
    const label = bug ? ' (bug switch lease-inline-expiry: the check fires)' : ''
    const bugs = bug ? shellBugs(['lease-inline-expiry']) : undefined

    it(`an acquire at a later entry timestamp does not take an overdue lock; only the expiry entry does${label}`, () => {
      const log = new LogDriver(undefined, bugs).at(1_000)
      log.open('a', 60_000)
      log.open('b', 60_000)
      log.open('c', 60_000)
      log.apply(acquire('a', 'ra', 1_000))
      const holder = log.machine.lock('L')!.holder
      // Past a's expiresAt by the entries' clock (a leader whose wall clock is ahead).
      const tried = log.at(2_000).apply(acquire('b', 'rb', 1_000, false))
      const queued = log.apply(acquire('c', 'rc', 1_000))
      const stolen = log.machine.lock('L')!.holder.sessionId !== 'a'
      expect(stolen).toBe(bug)
      if (bug) return
      expect(tried.result).toMatchObject({ type: 'error', code: 'Busy' })
      expect(tried.events).toEqual([])
      expect(queued.result).toEqual({ type: 'lockQueued', position: 1 })
      const expired = log.apply({
        type: 'lockExpire',
        key: 'L',
        fencingToken: holder.fencingToken,
        leaseIndex: holder.leaseIndex,
      })
      expect(expired.events.map(event => event.type)).toEqual(['lockReleased', 'lockGranted'])
      expect(log.machine.lock('L')!.holder).toMatchObject({ sessionId: 'c', fencingToken: log.index })
    })

    it(`an extend at a later entry timestamp keeps a lease the leader has not expired${label}`, () => {
      const log = new LogDriver(undefined, bugs).at(1_000)
      log.open('a', 60_000)
      log.open('b', 60_000)
      log.apply(acquire('a', 'ra', 1_000))
      log.apply(acquire('b', 'rb', 1_000))
      const token = log.machine.lock('L')!.holder.fencingToken
      const late = log
        .at(2_000)
        .apply({ type: 'lockExtend', key: 'L', sessionId: 'a', fencingToken: token, ttlMs: 1_000 })
      const handedOn = log.machine.lock('L')!.holder.sessionId !== 'a'
      expect(handedOn).toBe(bug)
      if (bug) return
      expect(late.result).toEqual({ type: 'lockExtended', fencingToken: token, expiresAt: 3_000 })
      expect(late.events).toEqual([])
    })
  }

  it('lockCancel removes a queued request, or releases one that was granted meanwhile', () => {
    const log = new LogDriver()
    log.open('a')
    log.open('b')
    log.open('c')
    log.apply(acquire('a'))
    log.apply(acquire('b'))
    log.apply(acquire('c'))
    expect(log.apply({ type: 'lockCancel', key: 'L', sessionId: 'b', requestId: 'r-b' })).toEqual({
      result: { type: 'ok' },
      events: [],
    })
    expect(log.machine.lock('L')?.waiters.map(waiter => waiter.sessionId)).toEqual(['c'])
    const cancelHolder = log.apply({ type: 'lockCancel', key: 'L', sessionId: 'a', requestId: 'r-a' })
    expect(cancelHolder.events.map(event => event.type)).toEqual(['lockReleased', 'lockGranted'])
    expect(log.machine.lock('L')?.holder.sessionId).toBe('c')
    expect(log.result({ type: 'lockCancel', key: 'L', sessionId: 'a', requestId: 'r-a' })).toEqual({
      type: 'unchanged',
    })
  })

  it('requires a live session', () => {
    const log = new LogDriver()
    expect(log.result(acquire('ghost'))).toMatchObject({ code: 'SessionExpired' })
    expect(log.machine.lock('L')).toBeUndefined()
  })

  it('session expiry releases its locks to the next waiters and withdraws its candidacies in one entry', () => {
    const log = new LogDriver().at(1_000)
    log.open('a', 1_000)
    log.open('b', 60_000)
    log.open('c', 60_000)
    log.apply({ type: 'lockAcquire', key: 'L1', sessionId: 'a', requestId: 'a1', ttlMs: 60_000, wait: true })
    log.apply({ type: 'lockAcquire', key: 'L2', sessionId: 'a', requestId: 'a2', ttlMs: 60_000, wait: true })
    log.apply({ type: 'lockAcquire', key: 'L1', sessionId: 'b', requestId: 'b1', ttlMs: 60_000, wait: true })
    // a also waits behind c on L3: its wait must vanish.
    log.apply({ type: 'lockAcquire', key: 'L3', sessionId: 'c', requestId: 'c3', ttlMs: 60_000, wait: true })
    log.apply({ type: 'lockAcquire', key: 'L3', sessionId: 'a', requestId: 'a3', ttlMs: 60_000, wait: true })
    log.apply({ type: 'campaign', name: 'E', sessionId: 'a', agentId: 'agent-a', requestId: 'ea' })
    log.apply({ type: 'campaign', name: 'E', sessionId: 'c', agentId: 'agent-c', requestId: 'ec' })
    log.apply({ type: 'campaign', name: 'F', sessionId: 'b', agentId: 'agent-b', requestId: 'fb' })
    log.apply({ type: 'campaign', name: 'F', sessionId: 'a', agentId: 'agent-a', requestId: 'fa' })

    const output = log.at(2_000).apply({ type: 'expireSession', sessionId: 'a', reason: 'ttl' })
    const index = log.index
    expect(output.result).toEqual({ type: 'ok' })
    expect(output.events).toEqual([
      { type: 'sessionExpired', sessionId: 'a', agentId: 'agent-a', reason: 'ttl' },
      {
        type: 'lockReleased',
        key: 'L1',
        sessionId: 'a',
        requestId: 'a1',
        fencingToken: 4,
        reason: 'session',
      },
      {
        type: 'lockGranted',
        key: 'L1',
        sessionId: 'b',
        requestId: 'b1',
        fencingToken: index,
        expiresAt: 62_000,
      },
      {
        type: 'lockReleased',
        key: 'L2',
        sessionId: 'a',
        requestId: 'a2',
        fencingToken: 5,
        reason: 'session',
      },
      {
        type: 'electionChanged',
        name: 'E',
        leader: { agentId: 'agent-c', sessionId: 'c', requestId: 'ec' },
        term: 2,
        timestamp: 2_000,
      },
    ])
    expect(log.machine.lock('L1')?.holder).toMatchObject({ sessionId: 'b', fencingToken: index })
    expect(log.machine.lock('L2')).toBeUndefined()
    expect(log.machine.lock('L3')).toMatchObject({ holder: { sessionId: 'c' }, waiters: [] })
    expect(log.machine.election('F')?.candidates.map(candidate => candidate.sessionId)).toEqual(['b'])
    expect(log.machine.election('F')?.term).toBe(1)
  })

  it('session end does not hand a lock to another request of the same session', () => {
    const log = new LogDriver()
    log.open('a')
    log.open('b')
    log.apply(acquire('a', 'a1'))
    log.apply(acquire('a', 'a2'))
    log.apply(acquire('b', 'b1'))
    const output = log.apply({ type: 'closeSession', sessionId: 'a' })
    expect(granted(output.events).map(event => event.requestId)).toEqual(['b1'])
    expect(log.machine.lock('L')).toMatchObject({ holder: { sessionId: 'b' }, waiters: [] })
  })
})
