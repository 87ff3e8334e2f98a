import { describe, expect, it } from 'vitest'
import { decodeEnvelope, encodeEnvelope } from '../../src/state/codec.ts'
import type { RegisterAgentCommand } from '../../src/state/commands.ts'
import { StateMachine } from '../../src/state/state-machine.ts'
import { LogDriver, registerAgent } from './helpers.ts'

function registration(agentId: string, fields: Partial<RegisterAgentCommand> = {}): RegisterAgentCommand {
  return {
    type: 'registerAgent',
    agentId,
    name: agentId,
    sessionId: `session-${agentId}`,
    addrs: ['/ip4/10.0.0.1/tcp/1'],
    capabilities: ['gpu'],
    labels: { zone: 'a' },
    concurrency: 4,
    ...fields,
  }
}

describe('agent registry', () => {
  it('registers an agent bound to its session and answers queries by id and name', () => {
    const log = new LogDriver()
    log.open('session-a', 5_000, 'a')
    const output = log.apply(registration('a', { name: 'alpha' }))
    expect(output).toEqual({
      result: { type: 'ok' },
      events: [{ type: 'agentChanged', agentId: 'a', change: 'registered' }],
    })
    const expected = {
      agentId: 'a',
      name: 'alpha',
      sessionId: 'session-a',
      addrs: ['/ip4/10.0.0.1/tcp/1'],
      capabilities: ['gpu'],
      labels: { zone: 'a' },
      concurrency: 4,
      runsTasks: true,
      alive: true,
      registeredAt: 1_000,
      updatedAt: 1_000,
    }
    expect(log.machine.agent('a')).toEqual(expected)
    expect(log.machine.agentByName('alpha')).toEqual(expected)
    expect(log.machine.agentByName('a')).toBeUndefined()
    expect(log.machine.agents()).toEqual([expected])
    // Queries hand out copies.
    log.machine.agent('a')!.capabilities.push('tpu')
    expect(log.machine.agent('a')!.capabilities).toEqual(['gpu'])
  })

  it('re-registering updates every field and keeps registeredAt', () => {
    const log = new LogDriver()
    log.open('session-a', 5_000, 'a')
    log.apply(registration('a'))
    const output = log
      .at(2_000)
      .apply(registration('a', { name: 'renamed', capabilities: [], concurrency: 1 }))
    expect(output.events).toEqual([{ type: 'agentChanged', agentId: 'a', change: 'updated' }])
    expect(log.machine.agent('a')).toMatchObject({
      name: 'renamed',
      capabilities: [],
      concurrency: 1,
      registeredAt: 1_000,
      updatedAt: 2_000,
    })
    expect(log.machine.agentByName('a')).toBeUndefined()
    expect(log.machine.agentByName('renamed')?.agentId).toBe('a')
  })

  it("requires the agent's own live session", () => {
    const log = new LogDriver()
    expect(log.result(registration('a'))).toMatchObject({ type: 'error', code: 'SessionExpired' })
    log.open('session-a', 5_000, 'someone-else')
    expect(log.result(registration('a'))).toMatchObject({ type: 'error', code: 'SessionMismatch' })
    expect(log.machine.agents()).toEqual([])
  })

  it('names are unique among live agents; a down holder is forgotten when another takes its name', () => {
    const log = new LogDriver()
    registerAgent(log, 'a', { name: 'worker', ttlMs: 5_000 })
    log.open('session-b', 60_000, 'b')
    expect(log.result(registration('b', { name: 'worker' }))).toMatchObject({
      type: 'error',
      code: 'NameTaken',
    })
    expect(log.machine.agent('b')).toBeUndefined()

    const down = log.apply({ type: 'expireSession', sessionId: 'session-a', reason: 'dead' })
    expect(down.events).toEqual([
      { type: 'sessionExpired', sessionId: 'session-a', agentId: 'a', reason: 'dead' },
      { type: 'agentChanged', agentId: 'a', change: 'down' },
    ])
    // Down agents stay listed, not alive.
    expect(log.machine.agent('a')).toMatchObject({ alive: false, name: 'worker' })
    const taken = log.apply(registration('b', { name: 'worker' }))
    expect(taken.events).toEqual([
      { type: 'agentChanged', agentId: 'a', change: 'left' },
      { type: 'agentChanged', agentId: 'b', change: 'registered' },
    ])
    expect(log.machine.agent('a')).toBeUndefined()
    expect(log.machine.agentByName('worker')?.agentId).toBe('b')
  })

  it('a session ending marks its agents down; re-registering with a new session brings them back', () => {
    const log = new LogDriver()
    registerAgent(log, 'a', { ttlMs: 2_000 })
    log.at(3_500).apply({ type: 'expireSession', sessionId: 'session-a', reason: 'ttl' })
    expect(log.machine.agent('a')).toMatchObject({ alive: false, updatedAt: 3_500 })
    log.open('session-a2', 60_000, 'a')
    log.apply(registration('a', { sessionId: 'session-a2' }))
    expect(log.machine.agent('a')).toMatchObject({
      alive: true,
      sessionId: 'session-a2',
      registeredAt: 1_000,
    })
    // The old session's id means nothing to the agent any more.
    log.open('session-a', 60_000, 'a')
    log.apply({ type: 'closeSession', sessionId: 'session-a' })
    expect(log.machine.agent('a')?.alive).toBe(true)
  })

  it('updateAgent changes only the given fields, under the same name rule', () => {
    const log = new LogDriver()
    registerAgent(log, 'a')
    registerAgent(log, 'b')
    const output = log.at(1_500).apply({ type: 'updateAgent', agentId: 'a', addrs: ['/dns4/x/tcp/2'] })
    expect(output).toEqual({
      result: { type: 'ok' },
      events: [{ type: 'agentChanged', agentId: 'a', change: 'updated' }],
    })
    expect(log.machine.agent('a')).toMatchObject({ addrs: ['/dns4/x/tcp/2'], name: 'a', updatedAt: 1_500 })
    expect(log.result({ type: 'updateAgent', agentId: 'a', name: 'b' })).toMatchObject({
      type: 'error',
      code: 'NameTaken',
    })
    expect(log.result({ type: 'updateAgent', agentId: 'zz', concurrency: 3 })).toMatchObject({
      type: 'error',
      code: 'NotFound',
    })
    log.apply({ type: 'updateAgent', agentId: 'a', name: 'alpha', concurrency: 7, labels: { x: 'y' } })
    expect(log.machine.agentByName('alpha')).toMatchObject({
      agentId: 'a',
      concurrency: 7,
      labels: { x: 'y' },
    })
    expect(log.machine.agentByName('a')).toBeUndefined()
  })

  it('deregisterAgent removes the agent; an unknown one changes nothing', () => {
    const log = new LogDriver()
    registerAgent(log, 'a')
    expect(log.apply({ type: 'deregisterAgent', agentId: 'a' })).toEqual({
      result: { type: 'ok' },
      events: [{ type: 'agentChanged', agentId: 'a', change: 'left' }],
    })
    expect(log.machine.agents()).toEqual([])
    expect(log.result({ type: 'deregisterAgent', agentId: 'a' })).toEqual({ type: 'unchanged' })
    // Its name is free again.
    registerAgent(log, 'c', { name: 'a' })
    expect(log.machine.agentByName('a')?.agentId).toBe('c')
  })

  it('the codec refuses malformed registrations', () => {
    const bad: unknown[] = [
      { ...registration('a'), concurrency: 0 },
      { ...registration('a'), concurrency: 1.5 },
      { ...registration('a'), capabilities: [''] },
      { ...registration('a'), capabilities: 'gpu' },
      { ...registration('a'), capabilities: Array.from({ length: 257 }, (_, i) => `c${i}`) },
      { ...registration('a'), labels: { zone: 1 } },
      { ...registration('a'), labels: [] },
      { ...registration('a'), name: '' },
      { ...registration('a'), extra: true },
      { type: 'updateAgent', agentId: 'a', concurrency: -1 },
      { type: 'deregisterAgent' },
    ]
    const encoder = new TextEncoder()
    for (const command of bad) {
      const decoded = decodeEnvelope(encoder.encode(JSON.stringify({ ts: 1, command })))
      expect(decoded.ok, JSON.stringify(command)).toBe(false)
    }
  })

  it('a label named __proto__ stays a label', () => {
    const log = new LogDriver()
    log.open('session-a', 5_000, 'a')
    const labels = JSON.parse('{"__proto__":"x","zone":"b"}') as Record<string, string>
    expect(log.result(registration('a', { labels }))).toEqual({ type: 'ok' })
    const stored = log.machine.agent('a')!.labels
    expect(Object.getPrototypeOf(stored)).toBe(Object.prototype)
    expect(Object.hasOwn(stored, '__proto__')).toBe(true)
    expect(Object.entries(stored)).toEqual([
      ['__proto__', 'x'],
      ['zone', 'b'],
    ])
  })

  it('a snapshot restores the registry, down agents, names and session bindings', () => {
    const log = new LogDriver()
    registerAgent(log, 'a', { name: 'alpha', capabilities: ['gpu'] })
    registerAgent(log, 'b', { ttlMs: 2_000 })
    log.at(4_000).apply({ type: 'expireSession', sessionId: 'session-b', reason: 'ttl' })
    const restored = StateMachine.restore(log.machine.snapshot())
    expect(restored.agents()).toEqual(log.machine.agents())
    expect(restored.agentByName('alpha')?.agentId).toBe('a')
    // The binding came along: the session's end takes the agent down on the restored replica too.
    const end = {
      index: log.index + 1,
      term: 1,
      data: encodeEnvelope({ ts: 4_000, command: { type: 'closeSession', sessionId: 'session-a' } }),
    }
    const expected = log.machine.apply(end)
    expect(restored.apply(end)).toEqual(expected)
    expect(expected.events).toContainEqual({ type: 'agentChanged', agentId: 'a', change: 'down' })
  })
})
