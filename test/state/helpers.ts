import { encodeEnvelope } from '../../src/state/codec.ts'
import type { Command, Envelope } from '../../src/state/commands.ts'
import type { CommandResult } from '../../src/state/results.ts'
import { type ApplyOutput, StateMachine, type StateMachineOptions } from '../../src/state/state-machine.ts'

export type EnvelopeExtras = Partial<Omit<Envelope, 'command'>>

/**
 * Drives a state machine as a committed log would: consecutive indexes, a leader clock that the test sets
 * (`at`), one envelope per entry.
 */
export class LogDriver {
  readonly machine: StateMachine
  index = 0
  now = 1_000

  constructor(options?: StateMachineOptions) {
    this.machine = new StateMachine(options)
  }

  /** Applies `command` as the next entry at the current leader time; returns the output. */
  apply(command: Command, extras: EnvelopeExtras = {}): ApplyOutput {
    return this.applyEnvelope({ ts: this.now, ...extras, command })
  }

  applyEnvelope(envelope: Envelope): ApplyOutput {
    this.index++
    return this.machine.apply({ index: this.index, term: 1, data: encodeEnvelope(envelope) })
  }

  /** Applies the leader's no-op (empty entry). */
  noop(): ApplyOutput {
    this.index++
    return this.machine.apply({ index: this.index, term: 1, data: new Uint8Array() })
  }

  result(command: Command, extras?: EnvelopeExtras): CommandResult {
    return this.apply(command, extras).result
  }

  at(now: number): this {
    this.now = now
    return this
  }

  open(sessionId: string, ttlMs = 10_000, agentId = `agent-${sessionId}`): void {
    const { result } = this.apply({ type: 'openSession', sessionId, agentId, ttlMs })
    if (result.type !== 'session') throw new Error(`openSession failed: ${JSON.stringify(result)}`)
  }
}

export const textDecoder = new TextDecoder()
