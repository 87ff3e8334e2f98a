import { describe, expect, it } from 'vitest'
import { UnsupportedVersionError } from '../../src/errors.ts'
import { decodeEnvelope, encodeEnvelope } from '../../src/state/codec.ts'
import type { Command } from '../../src/state/commands.ts'
import { StateMachine } from '../../src/state/state-machine.ts'
import { MAX_LAPSED_ATTEMPTS, type RunTaskOp } from '../../src/state/task-spec.ts'
import { commandVersion } from '../../src/state/versions.ts'
import { claim, LogDriver, registerAgent, submit } from './helpers.ts'

/** Fails the running attempt of `id` on agent `a` through `runTasks`, `lapsed` or not. */
function fail(log: LogDriver, id: string, lapsed: boolean): void {
  const task = log.machine.task(id)!
  const op: RunTaskOp = {
    op: 'fail',
    taskId: id,
    attempt: task.attempt,
    fencingToken: task.fencingToken,
    error: lapsed ? 'the session lease of this agent ran out' : 'the handler failed',
    ...(lapsed ? { lapsed: true as const } : {}),
  }
  const { result } = log.apply({ type: 'runTasks', agentId: 'a', sessionId: 'session-a', ops: [op] })
  expect(result).toMatchObject({ type: 'taskResults', results: [{ type: 'taskState' }] })
}

/** Retries `id` at once (its back-off is 0) and claims it on `a`. */
function claimAgain(log: LogDriver, id: string): void {
  expect(log.machine.task(id)?.state).not.toBe('dead')
  claim(log, id, 'a')
}

describe('an attempt ended by a lapse of its agent session lease', () => {
  it('does not count against maxRetries: a task with no retries fails over it and still runs again', () => {
    const log = new LogDriver().at(1_000)
    registerAgent(log, 'a', { concurrency: 1 })
    submit(log, 't', { constraints: { maxRetries: 0 }, backoff: { type: 'fixed', delay: 0 } })
    claim(log, 't', 'a')
    fail(log, 't', true)
    expect(log.machine.task('t')).toMatchObject({ state: 'assigned', attempt: 1, lapsedAttempts: 1 })
    // Retried at once (back-off 0) and placed on a again. The next attempt is a new one (a new number and token), and a failure of the handler counts.
    claimAgain(log, 't')
    expect(log.machine.task('t')).toMatchObject({ state: 'running', attempt: 2 })
    fail(log, 't', false)
    expect(log.machine.task('t')).toMatchObject({ state: 'dead', attempt: 2, error: 'the handler failed' })
  })

  it(`counts past ${MAX_LAPSED_ATTEMPTS} such attempts, so a worker cannot retry a task forever`, () => {
    const log = new LogDriver().at(1_000)
    registerAgent(log, 'a', { concurrency: 1 })
    submit(log, 't', { constraints: { maxRetries: 1 }, backoff: { type: 'fixed', delay: 0 } })
    for (let i = 0; i < MAX_LAPSED_ATTEMPTS; i++) {
      claimAgain(log, 't')
      fail(log, 't', true)
    }
    expect(log.machine.task('t')).toMatchObject({ state: 'assigned', lapsedAttempts: MAX_LAPSED_ATTEMPTS })
    // Past the cap, a lapsed failure counts as any other: one retry left, then dead.
    claimAgain(log, 't')
    fail(log, 't', true)
    claimAgain(log, 't')
    fail(log, 't', true)
    expect(log.machine.task('t')).toMatchObject({ state: 'dead', attempt: MAX_LAPSED_ATTEMPTS + 2 })
  })

  it('survives a snapshot, is a version-3 command, and an older replica stops at it', () => {
    const log = new LogDriver().at(1_000)
    registerAgent(log, 'a', { concurrency: 1 })
    submit(log, 't', { constraints: { maxRetries: 0 }, backoff: { type: 'fixed', delay: 60_000 } })
    claim(log, 't', 'a')
    fail(log, 't', true)
    expect(log.machine.task('t')).toMatchObject({ state: 'failed', lapsedAttempts: 1 })
    const restored = StateMachine.restore(log.machine.snapshot())
    expect(restored.task('t')).toEqual(log.machine.task('t'))

    const op: RunTaskOp = { op: 'fail', taskId: 't', attempt: 1, fencingToken: 5, error: 'e', lapsed: true }
    const command: Command = { type: 'runTasks', agentId: 'a', sessionId: 's', ops: [{ op: 'next' }, op] }
    expect(commandVersion(command)).toBe(3)
    const { lapsed: _, ...plain } = op
    expect(commandVersion({ ...command, ops: [plain] })).toBe(1)
    const data = encodeEnvelope({ ts: 1, command })
    expect(decodeEnvelope(data)).toEqual({ ok: true, envelope: { ts: 1, command } })
    // Only `true`, never another value.
    const text = new TextDecoder().decode(data).replace('"lapsed":true', '"lapsed":false')
    expect(decodeEnvelope(new TextEncoder().encode(text)).ok).toBe(false)
    const old = new StateMachine({ commandSetVersion: 2 })
    expect(() => old.apply({ index: 1, term: 1, data })).toThrow(UnsupportedVersionError)
  })
})
