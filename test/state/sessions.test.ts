import { describe, expect, it } from 'vitest'
import { LogDriver } from './helpers.ts'

describe('sessions', () => {
  it('opens with its first lease end from state time, closes; a session ends only by an entry', () => {
    const log = new LogDriver().at(1_000)
    expect(log.result({ type: 'openSession', sessionId: 's', agentId: 'a', ttlMs: 500 })).toEqual({
      type: 'session',
      sessionId: 's',
      expiresAt: 1_500,
    })
    // Long past its first lease end by state time: still open, keep-alives live in the leader's lessor.
    log.at(60_000).apply({ type: 'put', key: 'k', value: 1 }, { session: 's', seq: 1 })
    expect(log.machine.session('s')).toEqual({ sessionId: 's', agentId: 'a', ttlMs: 500, expiresAt: 1_500 })
    expect(log.machine.get('k')?.value).toBe(1)
    expect(log.machine.dueExpiries(60_000).sessions).toEqual([])
    const closed = log.apply({ type: 'closeSession', sessionId: 's' })
    expect(closed).toEqual({
      result: { type: 'ok' },
      events: [{ type: 'sessionClosed', sessionId: 's', agentId: 'a' }],
    })
    expect(log.machine.session('s')).toBeUndefined()
    expect(log.result({ type: 'keepAlive', sessionId: 's' })).toMatchObject({ code: 'SessionExpired' })
  })

  it('a keepAlive entry of an older agent found in the log answers and changes nothing', () => {
    const log = new LogDriver().at(1_000)
    log.open('s', 500, 'a')
    const before = log.machine.snapshot()
    const output = log.at(1_400).apply({ type: 'keepAlive', sessionId: 's' })
    expect(output).toMatchObject({
      result: { type: 'session', sessionId: 's', expiresAt: 1_500 },
      events: [],
    })
    // Late by state time, as an old agent's keep-alive could be: nothing ends either.
    expect(log.at(9_000).apply({ type: 'keepAlive', sessionId: 's' }).events).toEqual([])
    expect(log.machine.session('s')).toEqual({ sessionId: 's', agentId: 'a', ttlMs: 500, expiresAt: 1_500 })
    // Only the applied index and state time moved.
    const strip = (bytes: Uint8Array) => {
      const { appliedIndex: _a, time: _t, ...rest } = JSON.parse(new TextDecoder().decode(bytes))
      return rest
    }
    expect(strip(log.machine.snapshot())).toEqual(strip(before))
  })

  it('state time never goes back when leader clocks differ', () => {
    const log = new LogDriver().at(5_000)
    log.noop()
    log.apply({ type: 'put', key: 'k', value: 1 })
    expect(log.machine.time).toBe(5_000)
    log.at(3_000)
    const output = log.apply({ type: 'put', key: 'k', value: 2 })
    expect(log.machine.time).toBe(5_000)
    expect(output.events[0]).toMatchObject({ timestamp: 5_000 })
    log.at(6_000).apply({ type: 'put', key: 'k', value: 3 })
    expect(log.machine.time).toBe(6_000)
  })

  it("expireSession 'ttl' ends the session whatever the state time: the leader decided on its clock", () => {
    const log = new LogDriver().at(1_000)
    log.open('s', 1_000)
    log.at(1_001)
    const expired = log.apply({ type: 'expireSession', sessionId: 's', reason: 'ttl' })
    expect(expired.result).toEqual({ type: 'ok' })
    expect(expired.events).toEqual([
      { type: 'sessionExpired', sessionId: 's', agentId: 'agent-s', reason: 'ttl' },
    ])
    expect(log.machine.session('s')).toBeUndefined()
    // Again (a retried proposal): nothing left to do.
    expect(log.apply({ type: 'expireSession', sessionId: 's', reason: 'ttl' })).toEqual({
      result: { type: 'unchanged' },
      events: [],
    })
  })

  it("expireSession 'dead' applies at once", () => {
    const log = new LogDriver()
    log.open('s', 60_000)
    const output = log.apply({ type: 'expireSession', sessionId: 's', reason: 'dead' })
    expect(output.events).toEqual([
      { type: 'sessionExpired', sessionId: 's', agentId: 'agent-s', reason: 'dead' },
    ])
    expect(log.machine.sessions()).toEqual([])
  })

  it('a retried openSession refreshes the same session; another agent cannot take the id', () => {
    const log = new LogDriver().at(1_000)
    log.open('s', 1_000, 'a')
    expect(log.at(1_500).result({ type: 'openSession', sessionId: 's', agentId: 'a', ttlMs: 1_000 })).toEqual(
      {
        type: 'session',
        sessionId: 's',
        expiresAt: 2_500,
      },
    )
    expect(log.result({ type: 'openSession', sessionId: 's', agentId: 'b', ttlMs: 1_000 })).toMatchObject({
      code: 'InvalidCommand',
    })
    expect(log.machine.sessions()).toHaveLength(1)
  })
})

describe('exactly-once requests', () => {
  it('the same (session, seq) applied twice changes state once and answers the same result', () => {
    const log = new LogDriver()
    log.open('s')
    const first = log.apply({ type: 'put', key: 'counter', value: 1 }, { session: 's', seq: 1 })
    expect(first.result).toEqual({ type: 'revision', revision: 1 })
    expect(first.events).toHaveLength(1)
    log.apply({ type: 'put', key: 'other', value: 0 })
    // The retry of seq 1 (say, the leader died before answering) is committed again.
    const retry = log.apply({ type: 'put', key: 'counter', value: 1 }, { session: 's', seq: 1 })
    expect(retry).toEqual({
      result: { type: 'revision', revision: 1 },
      events: [],
      session: { id: 's', seq: 1 },
    })
    expect(log.machine.revision).toBe(2)
    expect(log.machine.get('counter')?.modRevision).toBe(1)
    // Errors are remembered too: a retried conditional put does not succeed the second time around.
    const conflict = log.result(
      { type: 'put', key: 'counter', value: 2, expectedRevision: 0 },
      { session: 's', seq: 2 },
    )
    expect(conflict).toMatchObject({ code: 'RevisionMismatch' })
    log.apply({ type: 'delete', key: 'counter' })
    expect(
      log.result({ type: 'put', key: 'counter', value: 2, expectedRevision: 0 }, { session: 's', seq: 2 }),
    ).toEqual(conflict)
    expect(log.machine.get('counter')).toBeUndefined()
  })

  it('rejects a seq from an unknown session with SessionExpired and applies nothing', () => {
    const log = new LogDriver()
    const output = log.apply({ type: 'put', key: 'k', value: 1 }, { session: 'ghost', seq: 1 })
    expect(output.result).toMatchObject({ type: 'error', code: 'SessionExpired' })
    expect(log.machine.get('k')).toBeUndefined()
    expect(log.machine.revision).toBe(0)
  })

  it('forgets acknowledged results and answers a retry of one as stale', () => {
    const log = new LogDriver()
    log.open('s')
    log.apply({ type: 'put', key: 'k', value: 1 }, { session: 's', seq: 1 })
    log.apply({ type: 'put', key: 'k', value: 2 }, { session: 's', seq: 2, ackedBelow: 2 })
    expect(log.result({ type: 'put', key: 'k', value: 1 }, { session: 's', seq: 1 })).toMatchObject({
      code: 'StaleRequest',
    })
    expect(log.machine.get('k')?.value).toBe(2)
    expect(log.result({ type: 'put', key: 'k', value: 2 }, { session: 's', seq: 2 })).toEqual({
      type: 'revision',
      revision: 2,
    })
  })

  it('bounds the results a session keeps when its client never acknowledges', () => {
    const log = new LogDriver({ maxResultsPerSession: 3 })
    log.open('s')
    for (let seq = 1; seq <= 5; seq++) log.apply({ type: 'put', key: 'k', value: seq }, { session: 's', seq })
    expect(log.result({ type: 'put', key: 'k', value: 1 }, { session: 's', seq: 1 })).toMatchObject({
      code: 'StaleRequest',
    })
    expect(log.result({ type: 'put', key: 'k', value: 5 }, { session: 's', seq: 5 })).toEqual({
      type: 'revision',
      revision: 5,
    })
    expect(log.machine.revision).toBe(5)
  })

  it('a request on an expired session is not applied', () => {
    const log = new LogDriver().at(1_000)
    log.open('s', 100)
    log.apply({ type: 'expireSession', sessionId: 's', reason: 'dead' })
    const output = log.at(1_050).apply({ type: 'put', key: 'k', value: 1 }, { session: 's', seq: 1 })
    expect(output.result).toMatchObject({ code: 'SessionExpired' })
    expect(output.events).toEqual([])
    expect(log.machine.get('k')).toBeUndefined()
  })
})
