/**
 * `createAgent({ maxFinishedTasks })`: the finished tasks the cluster keeps, oldest dropped first; a bad
 * value is an `InvalidArgumentError` before anything starts.
 */

import { afterAll, describe, expect, it } from 'vitest'
import { conclave, createAgent } from '../../src/agent/create-agent.ts'
import type { Agent } from '../../src/api.ts'
import { InvalidArgumentError, NotFoundError } from '../../src/errors.ts'

describe('maxFinishedTasks', () => {
  it('refuses a value that is not an integer >= 0, at once', async () => {
    for (const value of [-1, 1.5, Number.NaN, '5']) {
      await expect(createAgent({ transport: 'memory', maxFinishedTasks: value as number })).rejects.toThrow(
        InvalidArgumentError,
      )
      expect(() => conclave({ maxFinishedTasks: value as number })).toThrow(InvalidArgumentError)
    }
  })

  let agent: Agent | undefined
  afterAll(async () => {
    await agent?.stop()
  })

  it('keeps only the newest finished tasks', async () => {
    agent = await createAgent({ name: 'mft', transport: 'memory', maxFinishedTasks: 1 })
    await agent.join({})
    const worker = agent.tasks.process(async task => ({ id: task.id }))
    try {
      for (const id of ['first', 'second']) {
        await agent.tasks.submit({ id, type: 't' })
        for (let i = 0; i < 200 && (await agent.tasks.status(id)).state !== 'completed'; i++) {
          await new Promise(resolve => setTimeout(resolve, 20))
        }
        expect((await agent.tasks.status(id)).state).toBe('completed')
      }
      await expect(agent.tasks.status('first')).rejects.toThrow(NotFoundError)
    } finally {
      await worker.close()
    }
  }, 30_000)
})
