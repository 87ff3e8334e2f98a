import type { Logger } from '@libp2p/interface'
import { describe, expect, it } from 'vitest'
import { IdentityError } from '../../src/security/errors.ts'
import { OPEN_GATE, SpiffeGate } from '../../src/security/gate.ts'
import type { PeerIdentity } from '../../src/security/identity-protocol.ts'
import { AuthorizationPolicy } from '../../src/security/policy.ts'
import { systemScheduler } from '../../src/time/system-scheduler.ts'

function fakeIdentity(known: Record<string, string>, failures: Record<string, IdentityError> = {}) {
  let exchanges = 0
  const identity = (peer: string): PeerIdentity | undefined =>
    known[peer] === undefined
      ? undefined
      : {
          peerId: peer,
          spiffeId: known[peer],
          trustDomain: 'example.org',
          expiresAt: Infinity,
          verifiedAt: 0,
        }
  return {
    spiffeId: 'spiffe://example.org/self',
    identity,
    failure: (peer: string) => failures[peer],
    authenticate: async (peer: string) => {
      exchanges++
      const found = identity(peer)
      if (found === undefined) throw new IdentityError('unreachable', `no ${peer}`)
      return found
    },
    get exchanges() {
      return exchanges
    },
  }
}

function recordingLog(): { log: Logger; lines: string[] } {
  const lines: string[] = []
  const log = Object.assign(() => {}, {
    enabled: true,
    error: (format: string, ...args: unknown[]) => lines.push([format, ...args].join(' ')),
    trace: () => {},
    newScope: () => log,
  }) as unknown as Logger
  return { log, lines }
}

const policy = new AuthorizationPolicy([
  { ids: ['spiffe://example.org/self'], allow: ['join'] },
  { ids: ['spiffe://example.org/worker'], allow: ['join', 'runTask'] },
])

describe('gate', () => {
  it('answers from the cache without an exchange, and runs one for an unknown peer', async () => {
    const identity = fakeIdentity({ w: 'spiffe://example.org/worker' })
    const { log } = recordingLog()
    const gate = new SpiffeGate({ identity, policy, log, scheduler: systemScheduler })
    expect(gate.peek('w', 'runTask')).toEqual({ ok: true, spiffeId: 'spiffe://example.org/worker' })
    expect(gate.admit('w', 'runTask')).toBe(true)
    expect(identity.exchanges).toBe(0)
    expect(gate.peek('stranger', 'join')).toBeUndefined()
    expect((await gate.check('stranger', 'join')).ok).toBe(false)
    expect(identity.exchanges).toBe(1)
    expect(gate.spiffeIdOf('w')).toBe('spiffe://example.org/worker')
    expect(gate.allowsSelf('join')).toBe(true)
    expect(gate.allowsSelf('vote')).toBe(false)
  })

  it('logs each refusal with its reason, once per interval, and reports every one', async () => {
    const identity = fakeIdentity(
      { w: 'spiffe://example.org/worker' },
      { bad: new IdentityError('proof', 'bad did not prove its key') },
    )
    const { log, lines } = recordingLog()
    const refusals: string[] = []
    const gate = new SpiffeGate({
      identity,
      policy,
      log,
      onRefusal: (peer, action, reason) => refusals.push(`${peer} ${action}: ${reason}`),
      scheduler: systemScheduler,
    })
    for (let i = 0; i < 3; i++) expect(await gate.admit('w', 'submitTask')).toBe(false)
    expect(await gate.admit('bad', 'join')).toBe(false)
    expect(refusals).toEqual([
      'w submitTask: spiffe://example.org/worker may not submitTask',
      'w submitTask: spiffe://example.org/worker may not submitTask',
      'w submitTask: spiffe://example.org/worker may not submitTask',
      'bad join: identity not established: bad did not prove its key',
    ])
    expect(lines).toEqual([
      'refused %s from %s: %s submitTask w spiffe://example.org/worker may not submitTask',
      'refused %s from %s: %s join bad identity not established: bad did not prove its key',
    ])
    await expect(gate.require('w', 'vote')).rejects.toMatchObject({ name: 'UnauthorizedError' })
  })

  it('checks a forwarded command: its action, and that it acts for its sender only', async () => {
    const identity = fakeIdentity({ w: 'spiffe://example.org/worker' })
    const { log } = recordingLog()
    const gate = new SpiffeGate({ identity, policy, log, scheduler: systemScheduler })
    const claim = (agentId: string) => ({ type: 'claimTask' as const, taskId: 't', agentId, sessionId: 's' })
    expect(await gate.checkCommand('w', claim('w'))).toEqual({
      ok: true,
      spiffeId: 'spiffe://example.org/worker',
    })
    expect(await gate.checkCommand('w', claim('x'))).toMatchObject({ ok: false, reason: /for agent x/ })
    expect(await gate.checkCommand('w', claim('w'), () => 'x')).toMatchObject({
      ok: false,
      reason: /session of agent x/,
    })
    expect(await gate.checkCommand('w', { type: 'put', key: 'k', value: 1 })).toMatchObject({
      ok: false,
      reason: /may not write/,
    })
  })

  it('is open when security is off', async () => {
    expect(await OPEN_GATE.check('anyone', 'vote')).toEqual({ ok: true, spiffeId: undefined })
    expect(OPEN_GATE.admit('anyone', 'write')).toBe(true)
    expect(OPEN_GATE.allowsSelf('vote')).toBe(true)
  })
})
