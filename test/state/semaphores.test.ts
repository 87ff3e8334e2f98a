import { describe, expect, it } from 'vitest'
import type { SemaphoreAcquireCommand } from '../../src/state/commands.ts'
import type { LockGrantedEvent, LockReleasedEvent } from '../../src/state/events.ts'
import { StateMachine } from '../../src/state/state-machine.ts'
import { LogDriver } from './helpers.ts'

function acquire(
  sessionId: string,
  requestId = `r-${sessionId}`,
  options: { permits?: number; wait?: boolean; ttlMs?: number } = {},
): SemaphoreAcquireCommand {
  return {
    type: 'semaphoreAcquire',
    key: 'S',
    sessionId,
    requestId,
    ttlMs: options.ttlMs ?? 5_000,
    wait: options.wait ?? true,
    permits: options.permits ?? 2,
  }
}

function granted(events: readonly { type: string }[]): LockGrantedEvent[] {
  return events.filter((event): event is LockGrantedEvent => event.type === 'lockGranted')
}

function released(events: readonly { type: string }[]): LockReleasedEvent[] {
  return events.filter((event): event is LockReleasedEvent => event.type === 'lockReleased')
}

describe('semaphores', () => {
  it('grants at most `permits` holders, each with its own token, and queues the rest FIFO', () => {
    const log = new LogDriver()
    for (const session of ['a', 'b', 'c', 'd']) log.open(session)
    const a = log.apply(acquire('a'))
    expect(a.result).toEqual({ type: 'lockGranted', fencingToken: log.index, expiresAt: 6_000 })
    const b = log.apply(acquire('b'))
    expect(b.result).toEqual({ type: 'lockGranted', fencingToken: log.index, expiresAt: 6_000 })
    expect(log.result(acquire('c'))).toEqual({ type: 'lockQueued', position: 1 })
    expect(log.result(acquire('d', 'r-d', { wait: false }))).toMatchObject({ type: 'error', code: 'Busy' })
    expect(log.result(acquire('d'))).toEqual({ type: 'lockQueued', position: 2 })
    const info = log.machine.semaphore('S')!
    expect(info.permits).toBe(2)
    expect(info.holders.map(holder => holder.sessionId)).toEqual(['a', 'b'])
    expect(info.waiters.map(waiter => waiter.sessionId)).toEqual(['c', 'd'])
    // Releasing b's permit (not a's) hands it to c.
    const bToken = info.holders[1].fencingToken
    const release = log.apply({ type: 'lockRelease', key: 'S', sessionId: 'b', fencingToken: bToken })
    expect(release.result).toEqual({ type: 'ok' })
    expect(released(release.events).map(event => event.fencingToken)).toEqual([bToken])
    expect(granted(release.events)).toMatchObject([{ sessionId: 'c', fencingToken: log.index }])
    expect(log.machine.semaphore('S')!.holders.map(holder => holder.sessionId)).toEqual(['a', 'c'])
    // A retried acquire of a holder answers its grant again.
    expect(log.result(acquire('a'))).toMatchObject({
      type: 'lockGranted',
      fencingToken: info.holders[0].fencingToken,
    })
  })

  it('a session holding several permits ends: its permits go to the next waiters with distinct, increasing tokens', () => {
    const log = new LogDriver()
    for (const session of ['a', 'b', 'c', 'd']) log.open(session)
    log.apply(acquire('a', 'a1', { permits: 3 }))
    log.apply(acquire('a', 'a2', { permits: 3 }))
    log.apply(acquire('b', 'b1', { permits: 3 }))
    log.apply(acquire('c', 'c1', { permits: 3 }))
    log.apply(acquire('a', 'a3', { permits: 3 })) // queued behind c, dropped with the session
    log.apply(acquire('d', 'd1', { permits: 3 }))
    const before = Math.max(...log.machine.semaphore('S')!.holders.map(holder => holder.fencingToken))
    const end = log.apply({ type: 'expireSession', sessionId: 'a', reason: 'dead' })
    expect(released(end.events).map(event => [event.requestId, event.reason])).toEqual([
      ['a1', 'session'],
      ['a2', 'session'],
    ])
    const tokens = granted(end.events).map(event => [event.requestId, event.fencingToken])
    expect(tokens).toEqual([
      ['c1', log.index],
      ['d1', log.index + 1],
    ])
    expect(log.index).toBeGreaterThan(before)
    // The next grant of the key still gets a higher token, even though the index moved by one only.
    const c = log.machine.semaphore('S')!.holders.find(holder => holder.sessionId === 'c')!
    const next = log.apply({ type: 'lockRelease', key: 'S', sessionId: 'c', fencingToken: c.fencingToken })
    expect(granted(next.events)).toEqual([])
    log.open('e')
    const e = log.apply(acquire('e', 'e1', { permits: 3 }))
    expect(e.result).toMatchObject({ type: 'lockGranted' })
    expect((e.result as { fencingToken: number }).fencingToken).toBeGreaterThan(log.index - 2)
    expect((e.result as { fencingToken: number }).fencingToken).toBeGreaterThan(tokens[1][1] as number)
  })

  it('keeps strictly increasing tokens when the key goes idle in the entry that granted two', () => {
    const log = new LogDriver()
    for (const session of ['a', 'b', 'c']) log.open(session)
    log.apply(acquire('a', 'a1'))
    log.apply(acquire('a', 'a2'))
    log.apply(acquire('b', 'b1'))
    log.apply(acquire('c', 'c1'))
    // a ends: b and c get tokens index and index + 1. Then both leave, at the next index.
    const end = log.apply({ type: 'closeSession', sessionId: 'a' })
    const last = Math.max(...granted(end.events).map(event => event.fencingToken))
    expect(last).toBe(log.index + 1)
    log.apply({ type: 'closeSession', sessionId: 'b' })
    log.apply({ type: 'closeSession', sessionId: 'c' })
    expect(log.machine.semaphore('S')).toBeUndefined()
    log.open('d')
    const again = log.result(acquire('d'))
    expect(again).toMatchObject({ type: 'lockGranted' })
    expect((again as { fencingToken: number }).fencingToken).toBeGreaterThan(last)
  })

  it('refuses a key used with another permit count (a lock is one permit), changing nothing', () => {
    const log = new LogDriver()
    log.open('a')
    log.open('b')
    log.apply(acquire('a'))
    const other = log.apply(acquire('b', 'r-b', { permits: 3 }))
    expect(other.result).toMatchObject({ type: 'error', code: 'PermitsMismatch' })
    expect(other.events).toEqual([])
    const lock = log.apply({
      type: 'lockAcquire',
      key: 'S',
      sessionId: 'b',
      requestId: 'x',
      ttlMs: 1_000,
      wait: true,
    })
    expect(lock.result).toMatchObject({ type: 'error', code: 'PermitsMismatch' })
    expect(log.machine.semaphore('S')).toMatchObject({ permits: 2, waiters: [] })
    expect(log.machine.semaphore('S')!.holders).toHaveLength(1)
    // Once idle, the key may be used with another count.
    const token = log.machine.semaphore('S')!.holders[0].fencingToken
    log.apply({ type: 'lockRelease', key: 'S', sessionId: 'a', fencingToken: token })
    expect(log.result(acquire('b', 'r-b', { permits: 3 }))).toMatchObject({ type: 'lockGranted' })
  })

  it('extends, cancels and expires permits by their own token; expiry only by the leader entry', () => {
    const log = new LogDriver()
    log.open('a', 60_000)
    log.open('b', 60_000)
    log.open('c', 60_000)
    log.apply(acquire('a', 'a1', { ttlMs: 1_000 }))
    log.apply(acquire('b', 'b1', { ttlMs: 1_000 }))
    log.apply(acquire('c', 'c1', { ttlMs: 1_000 }))
    const [a, b] = log.machine.semaphore('S')!.holders
    expect(
      log
        .at(1_500)
        .result({ type: 'lockExtend', key: 'S', sessionId: 'a', fencingToken: a.fencingToken, ttlMs: 2_000 }),
    ).toEqual({ type: 'lockExtended', fencingToken: a.fencingToken, expiresAt: 3_500 })
    expect(log.machine.dueExpiries(1_999).locks).toEqual([])
    // b's lease is out at 2_000 but nothing takes it until the leader proposes the expiry...
    log.at(2_500)
    expect(log.result(acquire('c', 'c1'))).toEqual({ type: 'lockQueued', position: 1 })
    expect(log.machine.dueExpiries(2_500).locks).toEqual([{ key: 'S', fencingToken: b.fencingToken }])
    // ...and the leader's expiry names the lease it timed out; an older one does nothing.
    expect(
      log.result({
        type: 'lockExpire',
        key: 'S',
        fencingToken: b.fencingToken,
        leaseIndex: b.leaseIndex - 1,
      }),
    ).toEqual({ type: 'unchanged' })
    expect(log.machine.semaphore('S')!.holders).toHaveLength(2)
    const expired = log.apply({
      type: 'lockExpire',
      key: 'S',
      fencingToken: b.fencingToken,
      leaseIndex: b.leaseIndex,
    })
    expect(released(expired.events)).toMatchObject([{ requestId: 'b1', reason: 'expired' }])
    expect(granted(expired.events)).toMatchObject([{ requestId: 'c1', fencingToken: log.index }])
    // Cancelling a granted request releases its permit.
    expect(log.result({ type: 'lockCancel', key: 'S', sessionId: 'c', requestId: 'c1' })).toEqual({
      type: 'ok',
    })
    expect(log.machine.semaphore('S')!.holders.map(holder => holder.requestId)).toEqual(['a1'])
  })

  it('survives a snapshot with holders, waiters and the last token', () => {
    const log = new LogDriver()
    for (const session of ['a', 'b', 'c']) log.open(session)
    log.apply(acquire('a', 'a1'))
    log.apply(acquire('a', 'a2'))
    log.apply(acquire('b', 'b1'))
    log.apply(acquire('c', 'c1'))
    log.apply({ type: 'lockAcquire', key: 'L', sessionId: 'c', requestId: 'l', ttlMs: 1_000, wait: true })
    log.apply({ type: 'closeSession', sessionId: 'a' })
    const restored = StateMachine.restore(log.machine.snapshot())
    expect(restored.semaphore('S')).toEqual(log.machine.semaphore('S'))
    expect(restored.lock('L')).toEqual(log.machine.lock('L'))
    expect(restored.snapshot()).toEqual(log.machine.snapshot())
  })
})
