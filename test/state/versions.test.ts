import { describe, expect, it } from 'vitest'
import { UnsupportedVersionError } from '../../src/errors.ts'
import { encodeEnvelope } from '../../src/state/codec.ts'
import type { Command } from '../../src/state/commands.ts'
import { StateMachine } from '../../src/state/state-machine.ts'
import { BASE_COMMAND_SET_VERSION, COMMAND_SET_VERSION, commandVersion } from '../../src/state/versions.ts'

const encoder = new TextEncoder()

function entry(index: number, command: Command | Record<string, unknown>) {
  return { index, term: 1, data: encodeEnvelope({ ts: index, command: command as Command }) }
}

describe('command-set versions', () => {
  it('the current set is above the base one, and newer commands say so', () => {
    expect(COMMAND_SET_VERSION).toBeGreaterThan(BASE_COMMAND_SET_VERSION)
    expect(commandVersion({ type: 'put' })).toBe(BASE_COMMAND_SET_VERSION)
    expect(commandVersion({ type: 'txn' })).toBe(2)
    expect(commandVersion({ type: 'setClusterVersion' })).toBe(BASE_COMMAND_SET_VERSION)
  })

  it('a replica stops at a command above its version, changes nothing, and stays stopped', () => {
    const old = new StateMachine({ commandSetVersion: 1 })
    old.apply(entry(1, { type: 'put', key: 'a', value: 1 }))
    const before = old.snapshot()
    const ephemeral = entry(2, { type: 'putEphemeral', key: 'b', value: 2, sessionId: 's' })
    expect(() => old.apply(ephemeral)).toThrow(UnsupportedVersionError)
    expect(() => old.apply(ephemeral)).toThrow(
      /entry 2: it holds putEphemeral, which needs command-set version 2/,
    )
    expect(old.appliedIndex).toBe(1)
    expect(old.snapshot()).toEqual(before)
    // Every later entry too: nothing after the entry it cannot apply is applied.
    expect(() => old.apply(entry(3, { type: 'put', key: 'c', value: 3 }))).toThrow(UnsupportedVersionError)
    expect(old.halted).toBeInstanceOf(UnsupportedVersionError)
    expect(old.get('c')).toBeUndefined()
  })

  it('a command type no version of this code knows stops the replica; one without a type is garbage', () => {
    const machine = new StateMachine()
    expect(machine.apply(entry(1, { key: 'k' })).result).toMatchObject({ code: 'InvalidCommand' })
    expect(() => machine.apply(entry(2, { type: 'renameKey', from: 'a', to: 'b' }))).toThrow(
      /holds a command of type "renameKey", which this version does not know/,
    )
    expect(machine.appliedIndex).toBe(1)
  })

  it('setClusterVersion only raises the version; above the replica it stops it', () => {
    const machine = new StateMachine()
    expect(machine.clusterVersion).toBe(BASE_COMMAND_SET_VERSION)
    expect(machine.apply(entry(1, { type: 'setClusterVersion', version: 2 })).result).toEqual({ type: 'ok' })
    expect(machine.clusterVersion).toBe(2)
    expect(machine.apply(entry(2, { type: 'setClusterVersion', version: 1 })).result).toEqual({
      type: 'unchanged',
    })
    expect(machine.clusterVersion).toBe(2)
    const old = new StateMachine({ commandSetVersion: 1 })
    expect(() => old.apply(entry(1, { type: 'setClusterVersion', version: 2 }))).toThrow(
      UnsupportedVersionError,
    )
    expect(old.clusterVersion).toBe(1)
  })

  it('the cluster version survives a snapshot; an older replica refuses a snapshot above it', () => {
    const machine = new StateMachine()
    const base = machine.snapshot()
    machine.apply(entry(1, { type: 'setClusterVersion', version: 2 }))
    expect(StateMachine.restore(machine.snapshot()).clusterVersion).toBe(2)
    // A state at the base version keeps the bytes it had before the field existed.
    expect(new TextDecoder().decode(base)).not.toContain('clusterVersion')
    expect(() => StateMachine.restore(machine.snapshot(), { commandSetVersion: 1 })).toThrow(
      /cluster at command-set version 2; this agent supports version 1/,
    )
    expect(() => StateMachine.restore(encoder.encode('x'), { commandSetVersion: 1 })).toThrow(
      /not UTF-8 JSON/,
    )
  })

  it('refuses a supported version outside [1, current]', () => {
    expect(() => new StateMachine({ commandSetVersion: 0 })).toThrow(RangeError)
    expect(() => new StateMachine({ commandSetVersion: COMMAND_SET_VERSION + 1 })).toThrow(RangeError)
  })
})
