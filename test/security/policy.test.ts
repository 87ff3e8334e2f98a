import { describe, expect, it } from 'vitest'
import { InvalidArgumentError } from '../../src/errors.ts'
import { commandAction, raftMessageAction, refuseCommand } from '../../src/security/actions.ts'
import { ACTIONS, AuthorizationPolicy } from '../../src/security/policy.ts'
import type { Command } from '../../src/state/commands.ts'

const policy = new AuthorizationPolicy([
  { ids: ['spiffe://example.org/voter/*'], allow: '*' },
  { ids: ['spiffe://example.org/worker/*'], allow: ['join', 'runTask', 'lock'] },
  { ids: ['spiffe://example.org/submitter'], allow: ['join', 'submitTask'] },
  { ids: ['spiffe://example.org/submitter', 'spiffe://partner.org/*'], allow: ['write'] },
])

describe('authorization policy', () => {
  it('allows by exact ID and by prefix, at any depth below the prefix', () => {
    expect(policy.allowed('spiffe://example.org/voter/a')).toEqual([...ACTIONS])
    expect(policy.allowed('spiffe://example.org/voter/eu/a')).toEqual([...ACTIONS])
    expect(policy.allowed('spiffe://example.org/worker/w1')).toEqual(['join', 'runTask', 'lock'])
    // Rules naming the same ID add up.
    expect(policy.allowed('spiffe://example.org/submitter')).toEqual(['join', 'submitTask', 'write'])
    expect(policy.allowed('spiffe://partner.org/any/thing')).toEqual(['write'])
  })

  it('denies what no rule allows, and does not match across path boundaries', () => {
    expect(policy.authorize('spiffe://example.org/worker/w1', 'submitTask')).toBe(false)
    expect(policy.authorize('spiffe://example.org/worker/w1', 'vote')).toBe(false)
    expect(policy.allowed('spiffe://example.org/voter')).toEqual([])
    expect(policy.allowed('spiffe://example.org/voterx/a')).toEqual([])
    expect(policy.allowed('spiffe://example.org/submitter/child')).toEqual([])
    expect(policy.allowed('spiffe://other.org/voter/a')).toEqual([])
    expect(new AuthorizationPolicy([]).allowed('spiffe://example.org/voter/a')).toEqual([])
  })

  it('allows everything with allowAll (security on, no policy given)', () => {
    expect(AuthorizationPolicy.allowAll().allowed('spiffe://any.org/x')).toEqual([...ACTIONS])
  })

  it('refuses bad patterns and unknown actions', () => {
    const bad: unknown[] = [
      [{ ids: ['example.org/*'], allow: '*' }],
      [{ ids: ['spiffe://example.org/a*'], allow: '*' }],
      [{ ids: ['spiffe://example.org/a/'], allow: '*' }],
      [{ ids: ['*'], allow: '*' }],
      [{ ids: ['spiffe://example.org/a'], allow: ['fly'] }],
      [{ ids: ['spiffe://example.org/a'], allow: 'join' }],
      [{ ids: 'spiffe://example.org/a', allow: '*' }],
      {},
    ]
    for (const rules of bad) {
      expect(() => new AuthorizationPolicy(rules as never), JSON.stringify(rules)).toThrow(
        InvalidArgumentError,
      )
    }
  })
})

describe('actions of requests', () => {
  it('maps commands and Raft messages to actions', () => {
    expect(commandAction({ type: 'submitTask' })).toBe('submitTask')
    expect(commandAction({ type: 'claimTask' })).toBe('runTask')
    expect(commandAction({ type: 'put' })).toBe('write')
    expect(commandAction({ type: 'lockAcquire' })).toBe('lock')
    expect(commandAction({ type: 'openSession' })).toBe('join')
    expect(commandAction({ type: 'expireSession' })).toBe('vote')
    expect(commandAction({ type: 'fromTheFuture' } as never)).toBe('vote')
    expect(raftMessageAction('appendResponse')).toBe('join')
    expect(raftMessageAction('vote')).toBe('vote')
    expect(raftMessageAction('append')).toBe('vote')
  })

  it('refuses a command its sender may not send, or sent in another agent name', () => {
    const authorize = policy.authorize.bind(policy)
    const worker = { peerId: 'peerW', spiffeId: 'spiffe://example.org/worker/w1' }
    const submit: Command = {
      type: 'submitTask',
      task: { id: 't1', type: 'x' } as never,
    }
    expect(refuseCommand(submit, worker, authorize)).toMatch(/may not submitTask/)
    expect(
      refuseCommand(submit, { peerId: 'p', spiffeId: 'spiffe://example.org/submitter' }, authorize),
    ).toBe(undefined)
    const claimOwn: Command = { type: 'claimTask', taskId: 't1', agentId: 'peerW', sessionId: 's' }
    expect(refuseCommand(claimOwn, worker, authorize)).toBe(undefined)
    const claimOther: Command = { ...claimOwn, agentId: 'peerX' }
    expect(refuseCommand(claimOther, worker, authorize)).toMatch(/for agent peerX/)
    // Sessions belong to agents: a lock in another agent's session is refused.
    const owners: Record<string, string> = { mine: 'peerW', theirs: 'peerX' }
    const sessionOwner = (id: string) => owners[id]
    const lock = (sessionId: string): Command => ({
      type: 'lockAcquire',
      key: 'k',
      sessionId,
      requestId: 'r',
      ttlMs: 1000,
      wait: false,
    })
    expect(refuseCommand(lock('mine'), worker, authorize, sessionOwner)).toBe(undefined)
    expect(refuseCommand(lock('theirs'), worker, authorize, sessionOwner)).toMatch(/session of agent peerX/)
    // A registration may carry only the sender's own SPIFFE ID.
    const register = {
      type: 'registerAgent',
      agentId: 'peerW',
      name: 'w',
      sessionId: 'mine',
      addrs: [],
      capabilities: [],
      labels: {},
      concurrency: 1,
    } as Command
    expect(
      refuseCommand({ ...register, spiffeId: worker.spiffeId } as unknown as Command, worker, authorize),
    ).toBe(undefined)
    expect(
      refuseCommand(
        { ...register, spiffeId: 'spiffe://example.org/voter/v' } as unknown as Command,
        worker,
        authorize,
      ),
    ).toMatch(/may not register as spiffe:\/\/example.org\/voter\/v/)
    // A voter administers the cluster: it may act for others.
    expect(
      refuseCommand(claimOther, { peerId: 'v', spiffeId: 'spiffe://example.org/voter/v' }, authorize),
    ).toBe(undefined)
  })
})
