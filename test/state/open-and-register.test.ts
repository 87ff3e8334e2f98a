/**
 * `openSessionAndRegister`: a member's join in one Raft entry (issue 16) instead of an `openSession` entry
 * and then a `registerAgent` entry. It must leave the state exactly as the two would, or change nothing.
 */
import { describe, expect, it } from 'vitest'
import { UnsupportedVersionError } from '../../src/errors.ts'
import { encodeEnvelope } from '../../src/state/codec.ts'
import type { OpenSessionAndRegisterCommand } from '../../src/state/commands.ts'
import { StateMachine } from '../../src/state/state-machine.ts'
import { commandVersion, JOIN_IN_ONE_ENTRY_VERSION } from '../../src/state/versions.ts'
import { LogDriver, registerAgent } from './helpers.ts'

const decoder = new TextDecoder()

function join(
  agentId: string,
  fields: Partial<OpenSessionAndRegisterCommand> = {},
): OpenSessionAndRegisterCommand {
  return {
    type: 'openSessionAndRegister',
    sessionId: `session-${agentId}`,
    agentId,
    ttlMs: 5_000,
    name: agentId,
    addrs: ['/ip4/10.0.0.1/tcp/1'],
    capabilities: ['gpu'],
    labels: { zone: 'a' },
    concurrency: 4,
    ...fields,
  }
}

/** The whole state but the applied index, to compare two machines (or one before and after an entry). */
function stateOf(machine: StateMachine): unknown {
  const { appliedIndex: _, ...rest } = JSON.parse(decoder.decode(machine.snapshot()))
  return rest
}

describe('openSessionAndRegister', () => {
  it('leaves the state exactly as an openSession and a registerAgent entry would', () => {
    const one = new LogDriver()
    one.apply({ type: 'put', key: 'k', value: 1 })
    const output = one.apply(join('a'))
    expect(output.result).toEqual({ type: 'session', sessionId: 'session-a', expiresAt: 6_000 })
    expect(output.events).toEqual([{ type: 'agentChanged', agentId: 'a', change: 'registered' }])

    const two = new LogDriver()
    two.apply({ type: 'put', key: 'k', value: 1 })
    const { type: _, ttlMs, ...registration } = join('a')
    expect(two.result({ type: 'openSession', sessionId: 'session-a', agentId: 'a', ttlMs })).toMatchObject({
      type: 'session',
    })
    expect(two.result({ type: 'registerAgent', ...registration })).toEqual({ type: 'ok' })
    expect(stateOf(one.machine)).toEqual(stateOf(two.machine))
    expect(one.machine.agent('a')).toMatchObject({ name: 'a', sessionId: 'session-a', alive: true })
  })

  it('applied again (a retry whose outcome was unknown), it changes nothing but the update time', () => {
    const log = new LogDriver()
    log.apply(join('a'))
    const output = log.at(1_500).apply(join('a'))
    expect(output.result).toEqual({ type: 'session', sessionId: 'session-a', expiresAt: 6_500 })
    expect(log.machine.sessions()).toHaveLength(1)
    expect(log.machine.agents()).toHaveLength(1)
    expect(log.machine.agent('a')).toMatchObject({ alive: true, registeredAt: 1_000, updatedAt: 1_500 })
  })

  it('takes a name a down agent held, as a registration does', () => {
    const log = new LogDriver()
    registerAgent(log, 'old', { name: 'worker' })
    log.apply({ type: 'expireSession', sessionId: 'session-old', reason: 'dead' })
    expect(log.result(join('new', { name: 'worker' }))).toMatchObject({ type: 'session' })
    expect(log.machine.agentByName('worker')?.agentId).toBe('new')
    expect(log.machine.agent('old')).toBeUndefined()
  })

  it('refuses a name another live agent holds and opens no session', () => {
    const log = new LogDriver()
    registerAgent(log, 'holder', { name: 'worker' })
    const before = stateOf(log.machine)
    expect(log.result(join('a', { name: 'worker' }))).toMatchObject({ type: 'error', code: 'NameTaken' })
    expect(stateOf(log.machine)).toEqual(before)
    expect(log.machine.session('session-a')).toBeUndefined()
    expect(log.machine.agent('a')).toBeUndefined()
  })

  it("refuses another agent's session and changes nothing", () => {
    const log = new LogDriver()
    log.open('session-b', 5_000, 'b')
    const before = stateOf(log.machine)
    expect(log.result(join('a', { sessionId: 'session-b' }))).toMatchObject({
      type: 'error',
      code: 'InvalidCommand',
    })
    expect(stateOf(log.machine)).toEqual(before)
  })

  it('refuses malformed fields and changes nothing', () => {
    const log = new LogDriver()
    const before = stateOf(log.machine)
    const bad: Record<string, unknown>[] = [
      { ...join('a'), ttlMs: 0 },
      { ...join('a'), name: '' },
      { ...join('a'), concurrency: -1 },
      { ...join('a'), addrs: 'x' },
      { ...join('a'), extra: 1 },
      (({ sessionId: _, ...rest }) => rest)(join('a')),
    ]
    for (const command of bad) {
      const result = log.result(command as unknown as OpenSessionAndRegisterCommand)
      expect(result).toMatchObject({ type: 'error', code: 'InvalidCommand' })
    }
    expect(stateOf(log.machine)).toEqual(before)
  })

  it('needs command-set version 4: an older replica stops at it, changing nothing', () => {
    expect(commandVersion({ type: 'openSessionAndRegister' })).toBe(JOIN_IN_ONE_ENTRY_VERSION)
    expect(JOIN_IN_ONE_ENTRY_VERSION).toBe(4)
    const old = new StateMachine({ commandSetVersion: 3 })
    const entry = { index: 1, term: 1, data: encodeEnvelope({ ts: 1, command: join('a') }) }
    expect(() => old.apply(entry)).toThrow(UnsupportedVersionError)
    expect(old.appliedIndex).toBe(0)
    expect(old.agents()).toEqual([])
  })
})
