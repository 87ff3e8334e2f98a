import { describe, expect, it } from 'vitest'
import { decodeEnvelope, encodeEnvelope } from '../../src/state/codec.ts'
import type { Command } from '../../src/state/commands.ts'
import { DEFAULT_VOTER_TARGET, StateMachine } from '../../src/state/state-machine.ts'
import { LogDriver, textDecoder } from './helpers.ts'

const encoder = new TextEncoder()

/** The snapshot as JSON, without appliedIndex (which every entry moves, even a refused one). */
function snapshotState(machine: StateMachine): Record<string, unknown> {
  const { appliedIndex: _, ...rest } = JSON.parse(textDecoder.decode(machine.snapshot()))
  return rest
}

describe('setVoterTarget', () => {
  it('sets the cluster-wide voter target: 3 until set, any integer from 1 to 9', () => {
    const log = new LogDriver()
    expect(log.machine.voterTarget).toBe(DEFAULT_VOTER_TARGET)
    expect(DEFAULT_VOTER_TARGET).toBe(3)
    expect(log.result({ type: 'setVoterTarget', voters: 5 })).toEqual({ type: 'ok' })
    expect(log.machine.voterTarget).toBe(5)
    expect(log.result({ type: 'setVoterTarget', voters: 5 })).toEqual({ type: 'unchanged' })
    for (const voters of [1, 4, 9]) {
      expect(log.result({ type: 'setVoterTarget', voters })).toEqual({ type: 'ok' })
      expect(log.machine.voterTarget).toBe(voters)
    }
  })

  it('refuses a bad command with InvalidCommand and changes nothing', () => {
    const log = new LogDriver()
    log.result({ type: 'setVoterTarget', voters: 5 })
    const before = snapshotState(log.machine)
    const bad: unknown[] = [
      { type: 'setVoterTarget', voters: 0 },
      { type: 'setVoterTarget', voters: 10 },
      { type: 'setVoterTarget', voters: -3 },
      { type: 'setVoterTarget', voters: 2.5 },
      { type: 'setVoterTarget', voters: '5' },
      { type: 'setVoterTarget', voters: null },
      { type: 'setVoterTarget', voters: Number.NaN },
      { type: 'setVoterTarget' },
      { type: 'setVoterTarget', voters: 3, extra: true },
    ]
    for (const command of bad) {
      const { result, events } = log.apply(command as Command)
      expect(result).toMatchObject({ type: 'error', code: 'InvalidCommand' })
      expect(events).toEqual([])
      expect(log.machine.voterTarget).toBe(5)
      expect(snapshotState(log.machine)).toEqual(before)
    }
    // The codec says why, the same on every replica.
    const decoded = decodeEnvelope(encodeEnvelope({ ts: 1, command: { type: 'setVoterTarget', voters: 10 } }))
    expect(decoded).toEqual({ ok: false, error: 'command setVoterTarget has an invalid voters' })
  })

  it('is in the snapshot: a restored replica has the same target and the same bytes', () => {
    const log = new LogDriver()
    log.result({ type: 'setVoterTarget', voters: 7 })
    log.result({ type: 'put', key: 'k', value: 1 })
    const bytes = log.machine.snapshot()
    expect(JSON.parse(textDecoder.decode(bytes)).voterTarget).toBe(7)
    const restored = StateMachine.restore(bytes)
    expect(restored.voterTarget).toBe(7)
    expect(restored.snapshot()).toEqual(bytes)
    expect(restored.get('k')?.value).toBe(1)
  })

  it('restores a snapshot written before the field existed as the default target, with the same bytes', () => {
    const log = new LogDriver()
    log.result({ type: 'put', key: 'k', value: 1 })
    const bytes = log.machine.snapshot()
    // A state that never set it writes no field: its snapshot is the one older versions wrote.
    expect('voterTarget' in JSON.parse(textDecoder.decode(bytes))).toBe(false)
    const restored = StateMachine.restore(bytes)
    expect(restored.voterTarget).toBe(3)
    expect(restored.snapshot()).toEqual(bytes)
  })

  it('refuses a snapshot whose voterTarget is not a valid target', () => {
    const log = new LogDriver()
    log.result({ type: 'setVoterTarget', voters: 5 })
    const snapshot = JSON.parse(textDecoder.decode(log.machine.snapshot()))
    for (const voterTarget of [0, 10, 2.5, '5', null]) {
      const bytes = encoder.encode(JSON.stringify({ ...snapshot, voterTarget }))
      expect(() => StateMachine.restore(bytes)).toThrow(/Invalid state snapshot.*voterTarget/)
    }
  })
})
