import { describe, expect, it } from 'vitest'
import { StateMachine } from '../../src/state/state-machine.ts'
import { claim, LogDriver, placements, registerAgent, submit } from './helpers.ts'

/** Slots only where work can run: the registry's `runsTasks` (a worker of the agent runs) gates placement. */
describe('task placement and running workers', () => {
  it('places nothing on an agent without a worker, though it has free slots', () => {
    const log = new LogDriver()
    registerAgent(log, 'idle', { concurrency: 10, runsTasks: false })
    registerAgent(log, 'busy', { concurrency: 2, runsTasks: true })
    for (const id of ['t1', 't2', 't3']) submit(log, id)
    expect(placements(log.machine, ['t1', 't2', 't3'])).toEqual({ t1: 'busy', t2: 'busy', t3: undefined })
    expect(log.machine.task('t3')?.state).toBe('pending')
    expect(log.machine.agent('idle')?.runsTasks).toBe(false)
  })

  it('a worker starting takes pending tasks; its worker closing sends assigned tasks back, running ones go on', () => {
    const log = new LogDriver()
    registerAgent(log, 'a', { concurrency: 3, runsTasks: false })
    for (const id of ['t1', 't2', 't3']) submit(log, id)
    expect(placements(log.machine, ['t1', 't2', 't3'])).toEqual({
      t1: undefined,
      t2: undefined,
      t3: undefined,
    })

    const started = log.apply({ type: 'updateAgent', agentId: 'a', runsTasks: true })
    expect(started.result.type).toBe('ok')
    expect(placements(log.machine, ['t1', 't2', 't3'])).toEqual({ t1: 'a', t2: 'a', t3: 'a' })
    expect(claim(log, 't1', 'a').attempt).toBe(1)

    registerAgent(log, 'b', { concurrency: 3, runsTasks: false })
    log.apply({ type: 'updateAgent', agentId: 'a', runsTasks: false })
    expect(log.machine.task('t1')).toMatchObject({ state: 'running', assignee: 'a' })
    expect(log.machine.task('t2')?.state).toBe('pending')
    expect(log.machine.task('t3')?.state).toBe('pending')

    log.apply({ type: 'updateAgent', agentId: 'b', runsTasks: true })
    expect(placements(log.machine, ['t2', 't3'])).toEqual({ t2: 'b', t3: 'b' })
  })

  it('an agent without a worker still claims explicitly', () => {
    const log = new LogDriver()
    registerAgent(log, 'a', { concurrency: 1, runsTasks: false })
    submit(log, 't1')
    expect(claim(log, 't1', 'a').attempt).toBe(1)
  })

  it('keeps runsTasks across a snapshot, and reads a snapshot from before the field as true', () => {
    const log = new LogDriver()
    registerAgent(log, 'a', { runsTasks: false })
    registerAgent(log, 'b')
    const restored = StateMachine.restore(log.machine.snapshot())
    expect(restored.agent('a')?.runsTasks).toBe(false)
    expect(restored.agent('b')?.runsTasks).toBe(true)
    // A snapshot written before the field: every agent ran tasks then.
    const old = JSON.parse(new TextDecoder().decode(log.machine.snapshot()))
    for (const agent of old.agents) delete agent.runsTasks
    const fromOld = StateMachine.restore(new TextEncoder().encode(JSON.stringify(old)))
    expect(fromOld.agent('a')?.runsTasks).toBe(true)
  })
})
