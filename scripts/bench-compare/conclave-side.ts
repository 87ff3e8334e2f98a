/**
 * The bench requests as an agent process answers them (the agent host's `bench` op): the key-value
 * workloads on the agent in this process, and the task benchmark through `agent.tasks`. Loaded only when
 * the first such request arrives.
 */
import type { Agent, TaskWorker } from '../../src/index.ts'
import { readCounters } from './conclave-counters.ts'
import { agentDriver } from './conclave-driver.ts'
import type { BenchRequest } from './protocol.ts'
import { submitMany, type TaskPayload, TaskRecorder } from './tasks.ts'
import { runWorkload } from './workloads.ts'

const recorder = new TaskRecorder()
let worker: TaskWorker | undefined
let submitted: string[] = []

export async function serveConclaveBench(agent: Agent, request: BenchRequest): Promise<unknown> {
  switch (request.kind) {
    case 'workload':
      return runWorkload(agentDriver(agent), request.spec)
    case 'taskWorker':
      await worker?.close()
      worker = agent.tasks.process(
        async task => {
          recorder.record(task.id, task.payload as Partial<TaskPayload>)
          return 1
        },
        { concurrency: request.concurrency },
      )
      return null
    case 'taskSubmit': {
      const { ids, ...result } = await submitMany(
        request.count,
        request.concurrency,
        async payload => (await agent.tasks.submit({ type: request.queue, payload: { ...payload } })).id,
      )
      submitted = ids
      return result
    }
    case 'flowSubmit': {
      // The child first: a task's parents must exist when it is submitted.
      const { ids, ...result } = await submitMany(request.pairs, request.concurrency, async payload => {
        const child = await agent.tasks.submit({ type: request.queue, payload: { ...payload } })
        const parent = await agent.tasks.submit({
          type: request.queue,
          payload: { ...payload },
          dependsOn: [child.id],
        })
        return parent.id
      })
      submitted = ids
      return result
    }
    case 'taskStats':
      return recorder.take()
    case 'taskVerify': {
      let completed = 0
      let next = 0
      await Promise.all(
        Array.from({ length: 16 }, async () => {
          while (next < submitted.length) {
            if ((await agent.tasks.status(submitted[next++])).state === 'completed') completed++
          }
        }),
      )
      return { completed }
    }
    case 'taskStop':
      await worker?.close()
      worker = undefined
      return null
    case 'counters':
      return readCounters(agent)
  }
}
