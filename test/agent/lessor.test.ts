import { describe, expect, it } from 'vitest'
import { parseAdmin } from '../../src/agent/cluster/admin-protocol.ts'
import { forwardHandler } from '../../src/agent/cluster/forwarding.ts'
import { KeepAliveClient, KeepAliveServer } from '../../src/agent/cluster/keep-alive.ts'
import { type KeepAliveAnswer, parseKeepAliveAnswer } from '../../src/agent/cluster/keep-alive-answer.ts'
import { type LeasedSession, Lessor } from '../../src/agent/cluster/lessor.ts'
import { type KeepAliveOutcome, SessionKeeper, trustedUntil } from '../../src/agent/node/session.ts'
import { resolveTiming } from '../../src/agent/options.ts'
import { InvalidArgumentError, NoLeaderError, UnauthorizedError } from '../../src/errors.ts'
import { encodeEnvelope } from '../../src/state/codec.ts'
import type { CommandResult } from '../../src/state/index.ts'
import { VirtualScheduler } from '../../src/time/index.ts'

const TTL = 1_000
const HOUSEKEEPING_MS = 50

/** Lets promise chains settle between virtual-time steps. */
const settle = (): Promise<void> => new Promise(resolve => setImmediate(resolve))

/**
 * A leader's lessor driven as the housekeeping round drives it, every 50 ms of virtual time: records the
 * virtual time at which each session's expiry is first proposed.
 */
class LeaderClock {
  readonly scheduler = new VirtualScheduler({ start: 10_000 })
  readonly lessor = new Lessor()
  sessions: LeasedSession[] = [{ sessionId: 's', agentId: 'a', ttlMs: TTL }]
  down = new Set<string>()
  readonly proposed = new Map<string, { at: number; reason: string }>()
  takeover?: { local: number }

  constructor() {
    this.scheduler.every(HOUSEKEEPING_MS, () => {
      this.lessor.follow(this.takeover)
      for (const { sessionId, reason } of this.lessor.due(
        this.sessions,
        this.scheduler.now(),
        this.down,
        'L',
      )) {
        if (!this.proposed.has(sessionId)) this.proposed.set(sessionId, { at: this.scheduler.now(), reason })
      }
    })
  }

  promote(): object {
    this.takeover = { local: this.scheduler.now() }
    this.proposed.clear()
    return this.takeover
  }

  /** A keep-alive arriving now, in the current leadership. */
  keepAlive(sessionId = 's'): string {
    this.lessor.follow(this.takeover)
    return this.lessor.renew(sessionId, this.scheduler.now(), this.lessor.current)
  }
}

describe('Lessor (the leader keeps session keep-alives in memory)', () => {
  it('keep-alives extend the lease; without them the expiry is proposed once the ttl has passed', () => {
    const leader = new LeaderClock()
    const start = leader.scheduler.now()
    leader.promote()
    // Keep-alives every ttl/4 for ten ttls: no expiry.
    for (let i = 0; i < 40; i++) {
      leader.scheduler.advance(TTL / 4)
      expect(leader.keepAlive()).toBe('renewed')
    }
    expect(leader.proposed.size).toBe(0)
    const lastKeepAlive = leader.scheduler.now()
    expect(lastKeepAlive).toBe(start + 10 * TTL)
    leader.scheduler.advance(3 * TTL)
    const expiry = leader.proposed.get('s')
    expect(expiry?.reason).toBe('ttl')
    // Never before the ttl from the last keep-alive; within one housekeeping round of it.
    expect(expiry!.at).toBeGreaterThanOrEqual(lastKeepAlive + TTL)
    expect(expiry!.at).toBeLessThanOrEqual(lastKeepAlive + TTL + HOUSEKEEPING_MS)
  })

  it('a new leader gives every session a full ttl from its takeover before expiring any', () => {
    const leader = new LeaderClock()
    leader.promote()
    leader.scheduler.advance(5 * TTL)
    // The session was silent under the old leader for 5 ttls; it was proposed for expiry there.
    expect(leader.proposed.get('s')).toBeDefined()
    // A new leadership (another agent's clock or this one's next term): nothing carries over.
    leader.scheduler.advance(7)
    const takeover = leader.scheduler.now()
    leader.promote()
    leader.scheduler.advance(TTL - 1)
    expect(leader.proposed.size).toBe(0)
    leader.scheduler.advance(HOUSEKEEPING_MS + 1)
    const expiry = leader.proposed.get('s')
    expect(expiry).toMatchObject({ reason: 'ttl' })
    expect(expiry!.at).toBeGreaterThanOrEqual(takeover + TTL)
    expect(expiry!.at).toBeLessThanOrEqual(takeover + TTL + HOUSEKEEPING_MS)
  })

  it("a new leader expires a dead agent's session no sooner than half a ttl from its takeover", () => {
    const leader = new LeaderClock()
    leader.down = new Set(['a'])
    leader.scheduler.advance(3 * TTL)
    const takeover = leader.scheduler.now()
    leader.promote()
    leader.scheduler.advance(TTL / 2 - 1)
    expect(leader.proposed.size).toBe(0)
    leader.scheduler.advance(HOUSEKEEPING_MS + 1)
    const expiry = leader.proposed.get('s')
    expect(expiry).toMatchObject({ reason: 'dead' })
    expect(expiry!.at).toBeGreaterThanOrEqual(takeover + TTL / 2)
    expect(expiry!.at).toBeLessThanOrEqual(takeover + TTL / 2 + HOUSEKEEPING_MS)
  })

  it("expires a dead agent's session after half its ttl of silence, never a live renewer's", () => {
    const leader = new LeaderClock()
    leader.promote()
    leader.sessions.push({ sessionId: 'own', agentId: 'L', ttlMs: TTL })
    // Past the takeover floor, renewing.
    for (let i = 0; i < 8; i++) {
      leader.scheduler.advance(TTL / 4)
      leader.keepAlive()
      leader.keepAlive('own')
    }
    const lastKeepAlive = leader.scheduler.now()
    // The view declares `a` (and the leader itself: never acted on) dead; `a` is still renewing.
    leader.down = new Set(['a', 'L'])
    leader.scheduler.advance(TTL / 4)
    leader.keepAlive()
    leader.keepAlive('own')
    const renewedAt = leader.scheduler.now()
    expect(renewedAt).toBe(lastKeepAlive + TTL / 4)
    leader.scheduler.advance(TTL / 2 - 1)
    expect(leader.proposed.size).toBe(0)
    leader.scheduler.advance(HOUSEKEEPING_MS + 1)
    expect(leader.proposed.get('s')).toMatchObject({ reason: 'dead' })
    expect(leader.proposed.get('s')!.at).toBeGreaterThanOrEqual(renewedAt + TTL / 2)
    // The leader's own session waits out the full ttl.
    expect(leader.proposed.has('own')).toBe(false)
    leader.scheduler.advance(TTL / 2)
    expect(leader.proposed.get('own')).toMatchObject({ reason: 'ttl' })
  })

  it('a session opened during the leadership gets its full ttl from when the leader first sees it', () => {
    const leader = new LeaderClock()
    leader.promote()
    leader.sessions = []
    leader.scheduler.advance(3 * TTL)
    const opened = leader.scheduler.now()
    leader.sessions = [{ sessionId: 'late', agentId: 'b', ttlMs: TTL }]
    leader.scheduler.advance(TTL - 1)
    expect(leader.proposed.size).toBe(0)
    leader.scheduler.advance(HOUSEKEEPING_MS + 1)
    expect(leader.proposed.get('late')!.at).toBeGreaterThanOrEqual(opened + TTL)
  })

  it("refuses a keep-alive for a session it is expiring, and one from a leadership that's over", () => {
    const leader = new LeaderClock()
    const first = leader.promote()
    leader.scheduler.advance(2 * TTL)
    expect(leader.proposed.has('s')).toBe(true)
    expect(leader.keepAlive()).toBe('expiring')
    // A keep-alive that arrived under the first leadership and is answered after the next began.
    leader.promote()
    leader.lessor.follow(leader.takeover)
    expect(leader.lessor.renew('s', leader.scheduler.now(), first)).toBe('stale')
    expect(leader.lessor.renew('s', leader.scheduler.now(), undefined)).toBe('stale')
    // Not leading: no leases at all.
    leader.lessor.follow(undefined)
    expect(leader.lessor.current).toBeUndefined()
    expect(leader.lessor.due(leader.sessions, leader.scheduler.now() + 10 * TTL, new Set(), 'L')).toEqual([])
  })
})

/** A leader's keep-alive server with a runner whose ReadIndex rounds the test confirms by hand. */
function leaderServer() {
  const scheduler = new VirtualScheduler({ start: 5_000 })
  const lessor = new Lessor()
  const reads: (() => void)[] = []
  const host = {
    leaderSince: { local: 5_000 } as { local: number } | undefined,
    current: () => ({
      readIndex: () =>
        new Promise<void>(resolve => {
          reads.push(resolve)
        }),
    }),
  }
  const tracker = { leader: 'L' }
  const sessions = new Map<string, LeasedSession>([['s', { sessionId: 's', agentId: 'a', ttlMs: TTL }]])
  const server = new KeepAliveServer({
    selfId: 'L',
    lessor,
    leader: tracker,
    host,
    session: id => sessions.get(id),
    scheduler,
    timeoutMs: TTL / 4,
    batchMs: 10,
    closed: new AbortController().signal,
  })
  /** The batching window passes, the round begins, and a quorum answers it. */
  const confirm = async (): Promise<void> => {
    scheduler.advance(10)
    await settle()
    for (const resolve of reads.splice(0)) resolve()
  }
  return { scheduler, lessor, host, tracker, sessions, server, confirm, reads }
}

describe('KeepAliveServer (the leader answers keep-alives)', () => {
  it('renews from the arrival, once it has confirmed its leadership after it', async () => {
    const { scheduler, lessor, server, confirm, sessions } = leaderServer()
    const arrived = scheduler.now()
    const answer = server.serve('s', 'a')
    scheduler.advance(90)
    await confirm()
    expect(await answer).toEqual({ status: 'renewed', ttlMs: TTL })
    // Renewed at the arrival (5_000), not at the answer (5_100): the expiry is due a ttl after the arrival.
    expect(lessor.due(sessions.values(), arrived + TTL - 1, new Set(), 'L')).toEqual([])
    expect(lessor.due(sessions.values(), arrived + TTL, new Set(), 'L')).toEqual([
      { sessionId: 's', reason: 'ttl' },
    ])
  })

  it('answers notLeader when the leadership ends before it is confirmed, or it does not lead', async () => {
    const { scheduler, host, tracker, server, confirm } = leaderServer()
    const answer = server.serve('s', 'a')
    await settle()
    host.leaderSince = { local: scheduler.now() }
    await confirm()
    expect(await answer).toEqual({ status: 'notLeader', leader: '' })
    tracker.leader = 'M'
    expect(await server.serve('s', 'a')).toEqual({ status: 'notLeader', leader: 'M' })
    // No confirmation at all within the bound: the keeper is told to look again.
    tracker.leader = 'L'
    const unconfirmed = server.serve('s', 'a')
    scheduler.advance(10 + TTL / 4)
    expect(await unconfirmed).toEqual({ status: 'notLeader', leader: '' })
  })

  it('an unknown session is expired; another agent may not keep a session alive', async () => {
    const { server, confirm } = leaderServer()
    const unknown = server.serve('nope', 'a')
    await confirm()
    expect(await unknown).toEqual({ status: 'expired' })
    const foreign = server.serve('s', 'intruder')
    await confirm()
    await expect(foreign).rejects.toBeInstanceOf(UnauthorizedError)
  })
})

describe('KeepAliveServer batching', () => {
  it('keep-alives arriving within the window share one round; a later one waits for a round begun after it', async () => {
    const { scheduler, server, sessions, reads } = leaderServer()
    sessions.set('t', { sessionId: 't', agentId: 'b', ttlMs: TTL })
    const first = server.serve('s', 'a')
    scheduler.advance(5)
    const second = server.serve('t', 'b')
    scheduler.advance(5)
    await settle()
    expect(reads).toHaveLength(1)
    // Arrives after that round began: it must not be answered by it.
    const third = server.serve('s', 'a')
    for (const resolve of reads.splice(0)) resolve()
    expect(await first).toMatchObject({ status: 'renewed' })
    expect(await second).toMatchObject({ status: 'renewed' })
    let thirdAnswered = false
    void third.then(() => {
      thirdAnswered = true
    })
    await settle()
    expect(thirdAnswered).toBe(false)
    scheduler.advance(10)
    await settle()
    expect(reads).toHaveLength(1)
    for (const resolve of reads.splice(0)) resolve()
    expect(await third).toMatchObject({ status: 'renewed' })
  })
})

describe('KeepAliveClient (the keeper reaches the leader)', () => {
  it('follows a redirect to the leader, and fails with NoLeaderError at its deadline', async () => {
    const scheduler = new VirtualScheduler()
    const asked: string[] = []
    let leaderAnswers: KeepAliveAnswer = { status: 'renewed', ttlMs: TTL }
    const client = new KeepAliveClient({
      selfId: 'a',
      leader: {
        leader: 'F',
        waitChange: async () => {},
      },
      call: async peer => {
        asked.push(peer)
        return peer === 'L' ? leaderAnswers : { status: 'notLeader', leader: 'L' }
      },
      local: { serve: async () => ({ status: 'expired' }) },
      legacy: async () => {
        throw new Error('not an old leader')
      },
      scheduler,
      closed: new AbortController().signal,
    })
    expect(await client.keepAlive('s', scheduler.now() + 250)).toEqual({ status: 'renewed', ttlMs: TTL })
    expect(asked).toEqual(['F', 'L'])
    // The old leader (F as the agent sees it) keeps pointing at L, and L no longer leads either.
    leaderAnswers = { status: 'notLeader', leader: 'F' }
    const pending = client.keepAlive('s', scheduler.now() + 250)
    const failed = expect(pending).rejects.toBeInstanceOf(NoLeaderError)
    for (let i = 0; i < 20; i++) {
      await settle()
      scheduler.advance(50)
    }
    await failed
  })
})

describe('KeepAliveClient with a leader older than the lessor', () => {
  it('falls back to the keepAlive entry when the leader refuses the request', async () => {
    const scheduler = new VirtualScheduler()
    const legacy: string[] = []
    const client = new KeepAliveClient({
      selfId: 'a',
      leader: { leader: 'OLD', waitChange: async () => {} },
      call: async () => {
        throw new InvalidArgumentError('unknown or malformed admin request')
      },
      local: { serve: async () => ({ status: 'expired' }) },
      legacy: async sessionId => {
        legacy.push(sessionId)
        return { status: 'renewed', ttlMs: TTL }
      },
      scheduler,
      closed: new AbortController().signal,
    })
    expect(await client.keepAlive('s', scheduler.now() + 250)).toEqual({ status: 'renewed', ttlMs: TTL })
    expect(legacy).toEqual(['s'])
  })
})

describe('SessionKeeper (the member side)', () => {
  const timing = resolveTiming({ sessionTtlMs: TTL })

  function keeper(answer: () => Promise<KeepAliveOutcome>) {
    const scheduler = new VirtualScheduler({ start: 1_000 })
    const committed: string[] = []
    const keepAlives: number[] = []
    const log = Object.assign(() => {}, {
      error: () => {},
      trace: () => {},
      enabled: false,
      newScope: () => log,
    })
    const session = new SessionKeeper(
      'a',
      timing,
      {
        submitRaw: async (command): Promise<CommandResult> => {
          committed.push(command.type)
          return { type: 'session', sessionId: command.sessionId, expiresAt: 0 }
        },
        keepAlive: () => {
          keepAlives.push(scheduler.now())
          return answer()
        },
      },
      log as never,
      scheduler,
    )
    return { scheduler, session, committed, keepAlives }
  }

  it('commits only the open; trusts the session until half the ttl less the margin after each acknowledged send', async () => {
    let delayMs = 0
    const { scheduler, session, committed, keepAlives } = keeper(async () => {
      const sentAt = scheduler.now()
      await new Promise<void>(resolve => scheduler.after(delayMs, resolve))
      expect(scheduler.now()).toBe(sentAt + delayMs)
      return { status: 'renewed' }
    })
    const openedAt = scheduler.now()
    await session.open(openedAt + 1_000)
    expect(session.validUntil()).toBe(trustedUntil(timing, openedAt))
    expect(trustedUntil(timing, openedAt)).toBe(openedAt + TTL / 2 - 50)
    delayMs = 200
    for (let i = 0; i < 40; i++) {
      scheduler.advance(50)
      await settle()
    }
    // Keep-alives went every ttl/4 (+ their answer's delay); none was a log entry.
    expect(keepAlives.length).toBeGreaterThanOrEqual(4)
    expect(committed).toEqual(['openSession'])
    // Trust counts from the send of the last acknowledged keep-alive, not from its answer.
    const lastAcked = keepAlives.filter(sent => sent + delayMs <= scheduler.now()).at(-1)!
    expect(session.validUntil()).toBe(trustedUntil(timing, lastAcked))
  })

  it('without an acknowledged keep-alive, trust runs out', async () => {
    const { scheduler, session } = keeper(async () => {
      throw new NoLeaderError('no leader renewed the session in time')
    })
    await session.open(scheduler.now() + 1_000)
    const trusted = session.validUntil()
    for (let i = 0; i < 20; i++) {
      scheduler.advance(50)
      await settle()
    }
    expect(session.validUntil()).toBe(trusted)
    expect(scheduler.now()).toBeGreaterThan(trusted)
  })

  it('a keep-alive answered expired: the session is lost and a new one opened', async () => {
    const { scheduler, session, committed } = keeper(async () => ({ status: 'expired' }))
    await session.open(scheduler.now() + 1_000)
    const first = session.id
    const lost: string[] = []
    session.onLost(id => lost.push(id))
    scheduler.advance(TTL / 4)
    await settle()
    await settle()
    expect(lost).toEqual([first])
    expect(session.id).not.toBe(first)
    expect(session.id).not.toBe('')
    expect(committed).toEqual(['openSession', 'openSession'])
  })
})

describe('rolling upgrade: keep-alive entries of agents older than the lessor', () => {
  it('a committed keepAlive forwarded to the leader renews the session in its lessor', async () => {
    const scheduler = new VirtualScheduler({ start: 20_000 })
    const lessor = new Lessor()
    const since = { local: 20_000 }
    const proposed: Uint8Array[] = []
    const handler = forwardHandler({
      selfId: 'L',
      leader: { leader: 'L', waitChange: async () => {} },
      host: {
        proposeLocal: async data => {
          proposed.push(data)
          return { type: 'session', sessionId: 's', expiresAt: 0 }
        },
      },
      authorization: { requireParticipant: () => {}, authorizeForwarded: async () => {} },
      security: { enabled: false },
      scheduler,
      rightRates: { take: async () => {} },
      lessor,
      leaderSince: () => since,
      admitCommand: () => {},
    })
    const sessions = [{ sessionId: 's', agentId: 'old', ttlMs: TTL }]
    lessor.follow(since)
    lessor.due(sessions, scheduler.now(), new Set(), 'L')
    scheduler.advance((3 * TTL) / 4)
    const renewedAt = scheduler.now()
    await handler(encodeEnvelope({ ts: 0, command: { type: 'keepAlive', sessionId: 's' } }), 'old')
    expect(proposed).toHaveLength(1)
    // Without the renewal the session would be due a ttl after the takeover (first seen then).
    expect(lessor.due(sessions, 20_000 + TTL, new Set(), 'L')).toEqual([])
    expect(lessor.due(sessions, renewedAt + TTL, new Set(), 'L')).toEqual([{ sessionId: 's', reason: 'ttl' }])
  })
})

describe('the keep-alive request on the admin protocol', () => {
  const encode = (value: unknown) => new TextEncoder().encode(JSON.stringify(value))

  it('parses a keep-alive; anything malformed is an InvalidArgumentError', () => {
    expect(parseAdmin(encode({ op: 'keepAlive', sessionId: 'a/1' }))).toEqual({
      op: 'keepAlive',
      sessionId: 'a/1',
    })
    for (const bad of [
      { op: 'keepAlive' },
      { op: 'keepAlive', sessionId: '' },
      { op: 'keepAlive', sessionId: 7 },
      { op: 'keepAlive', sessionId: 'x'.repeat(257) },
    ]) {
      expect(() => parseAdmin(encode(bad)), JSON.stringify(bad).slice(0, 40)).toThrow(InvalidArgumentError)
    }
  })

  it('reads only well-formed answers', () => {
    expect(parseKeepAliveAnswer({ status: 'renewed', ttlMs: 5 })).toEqual({ status: 'renewed', ttlMs: 5 })
    expect(parseKeepAliveAnswer({ status: 'notLeader', leader: 'L' })).toEqual({
      status: 'notLeader',
      leader: 'L',
    })
    expect(parseKeepAliveAnswer({ status: 'expired', extra: 1 })).toEqual({ status: 'expired' })
    for (const bad of [
      undefined,
      null,
      'renewed',
      { status: 'renewed' },
      { status: 'renewed', ttlMs: -1 },
      { status: 'x' },
    ]) {
      expect(parseKeepAliveAnswer(bad)).toBeUndefined()
    }
  })
})
