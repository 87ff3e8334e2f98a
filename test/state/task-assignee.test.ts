/**
 * Only the assignee ends its attempt (least-privilege issue, attack 2): attempt and fencing token are in the
 * replicated state every member reads, so they alone let any worker complete another's task with a forged
 * result, after which the real worker's completion failed as stale.
 */
import { describe, expect, it } from 'vitest'
import { refuseCommand } from '../../src/security/actions.ts'
import type { Command } from '../../src/state/commands.ts'
import { LogDriver, registerAgent, taskSpec } from './helpers.ts'

function running(): { log: LogDriver; token: number } {
  const log = new LogDriver()
  registerAgent(log, 'a')
  registerAgent(log, 'b')
  log.apply({ type: 'submitTask', task: taskSpec('t1', { constraints: { preferredAgents: ['a'] } }) })
  log.apply({ type: 'claimTask', taskId: 't1', agentId: 'a', sessionId: 'session-a' })
  return { log, token: log.index }
}

describe('ending an attempt', () => {
  it("refuses another agent's complete and fail, in a batch or alone, and takes the assignee's", () => {
    const { log, token } = running()
    const forged = log.apply({
      type: 'runTasks',
      agentId: 'b',
      sessionId: 'session-b',
      ops: [
        { op: 'complete', taskId: 't1', attempt: 1, fencingToken: token, result: 'forged' },
        { op: 'fail', taskId: 't1', attempt: 1, fencingToken: token, error: 'forged' },
      ],
    })
    expect(forged.result).toMatchObject({
      type: 'taskResults',
      results: [
        { type: 'error', code: 'NotAssignee' },
        { type: 'error', code: 'NotAssignee' },
      ],
    })
    for (const type of ['completeTask', 'failTask'] as const) {
      const alone = log.apply({
        type,
        taskId: 't1',
        attempt: 1,
        fencingToken: token,
        agentId: 'b',
        ...(type === 'completeTask' ? { result: 'forged' } : { error: 'forged' }),
      } as Command)
      expect(alone.result).toMatchObject({ type: 'error', code: 'NotAssignee' })
    }
    expect(log.machine.task('t1')).toMatchObject({ state: 'running', assignee: 'a', attempt: 1 })

    const real = log.apply({
      type: 'runTasks',
      agentId: 'a',
      sessionId: 'session-a',
      ops: [{ op: 'complete', taskId: 't1', attempt: 1, fencingToken: token, result: 'real' }],
    })
    expect(real.result).toMatchObject({
      type: 'taskResults',
      results: [{ type: 'taskState', state: 'completed' }],
    })
    expect(log.machine.task('t1')).toMatchObject({ state: 'completed', result: 'real' })
  })

  it('applies entries of older versions, which name no agent, as before', () => {
    const { log, token } = running()
    const old = log.apply({ type: 'completeTask', taskId: 't1', attempt: 1, fencingToken: token, result: 1 })
    expect(old.result).toMatchObject({ type: 'taskState', state: 'completed' })
  })
})

describe('the leader gate for complete and fail', () => {
  const sender = { peerId: 'b', spiffeId: 'spiffe://example.org/worker/b' }
  const workerOnly = (_id: string, action: string) => action === 'runTask'
  const command = (agentId?: string): Command => ({
    type: 'completeTask',
    taskId: 't1',
    attempt: 1,
    fencingToken: 5,
    result: null,
    ...(agentId === undefined ? {} : { agentId }),
  })

  it('makes a member without vote name itself', () => {
    expect(refuseCommand(command(), sender, workerOnly)).toMatch(/must name itself/)
    expect(refuseCommand(command('a'), sender, workerOnly)).toMatch(/for agent a/)
    expect(refuseCommand(command('b'), sender, workerOnly)).toBeUndefined()
  })

  it('lets a voter (the administrator) act for others', () => {
    expect(refuseCommand(command(), sender, () => true)).toBeUndefined()
    expect(refuseCommand(command('a'), sender, () => true)).toBeUndefined()
  })
})
