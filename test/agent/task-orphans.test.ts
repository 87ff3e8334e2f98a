import { describe, expect, it } from 'vitest'
import type { TaskBatcher } from '../../src/agent/api/tasks/batch.ts'
import type { Tasks } from '../../src/agent/api/tasks/tasks.ts'
import type { TaskProcessor } from '../../src/agent/api/tasks/worker.ts'
import { createAgent, NoLeaderError } from '../../src/index.ts'
import { stoppedAfterEach, until } from './in-process.ts'

const { agents, workers } = stoppedAfterEach<TaskProcessor>()

describe('an attempt whose claim answer was lost', () => {
  it('is adopted by a later next() and run once, among running attempts the worker holds', async () => {
    const agent = await createAgent({ name: 'a0', transport: 'memory', concurrency: 4 })
    agents.push(agent)
    await agent.join({})
    const tasks = agent.tasks as Tasks
    const batcher = (tasks as unknown as { batcher: TaskBatcher }).batcher
    const run = batcher.run.bind(batcher)
    // Held handlers keep three attempts running and held while the fourth claim's answer is lost.
    const release: (() => void)[] = []
    const runs: string[] = []
    let lose = false
    batcher.run = async (op, bytes, signal) => {
      const answer = await run(op, bytes, signal)
      if (lose && op.op === 'next' && answer.result.type === 'taskClaimed') {
        lose = false
        throw new NoLeaderError('answer lost after the claim committed')
      }
      return answer
    }
    const processor = agent.tasks.process(
      async task => {
        runs.push(task.id)
        if (task.id !== 'lost') await new Promise<void>(resolve => release.push(resolve))
        return 'ok'
      },
      { concurrency: 4 },
    )
    workers.push(processor as TaskProcessor)
    for (const id of ['h1', 'h2', 'h3']) await agent.tasks.submit({ id, type: 'job' })
    await until(() => runs.length === 3)
    lose = true
    await agent.tasks.submit({ id: 'lost', type: 'job' })
    await until(() => !lose)
    // The task started under the lost answer: running, held by nobody, until a next() adopts it.
    await until(async () => (await agent.tasks.status('lost')).state === 'completed')
    expect(runs.filter(id => id === 'lost')).toEqual(['lost'])
    expect(await agent.tasks.status('lost')).toMatchObject({ attempt: 1, result: 'ok' })
    for (const done of release) done()
    await until(async () => (await agent.tasks.status('h3')).state === 'completed')
  })
})
