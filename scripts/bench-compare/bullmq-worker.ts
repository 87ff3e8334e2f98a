/**
 * One of the BullMQ processes of the task benchmark: a Worker with the requested concurrency, and (in the
 * first process) the Queue that submits the jobs, on the local Redis given as `{ port }`. The counterpart
 * of an agent process running `agent.tasks.process` and `agent.tasks.submit`.
 */
import { FlowProducer, Queue, Worker } from 'bullmq'
import { Redis } from 'ioredis'
import { serveBenchRequests } from './child.ts'
import type { BenchRequest } from './protocol.ts'
import { submitMany, type TaskPayload, TaskRecorder } from './tasks.ts'

const { port } = JSON.parse(process.argv[2] ?? '{}') as { port: number }
const recorder = new TaskRecorder()
let worker: Worker | undefined
const queues = new Map<string, Queue>()
let flows: FlowProducer | undefined
const connections: Redis[] = []
/** Ids of the jobs of the last `taskSubmit`, for `taskVerify`. */
let submitted: string[] = []

/** BullMQ requires `maxRetriesPerRequest: null` on the connections its workers block on. */
function connect(): Redis {
  const connection = new Redis({ host: '127.0.0.1', port, maxRetriesPerRequest: null })
  connections.push(connection)
  return connection
}

function queueOf(name: string): Queue {
  let queue = queues.get(name)
  if (queue === undefined) {
    queue = new Queue(name, { connection: connect() })
    queues.set(name, queue)
  }
  return queue
}

async function serve(request: BenchRequest): Promise<unknown> {
  switch (request.kind) {
    case 'taskWorker':
      await worker?.close()
      worker = new Worker(
        request.queue,
        async job => {
          recorder.record(String(job.id), job.data as Partial<TaskPayload>)
          return 1
        },
        { connection: connect(), concurrency: request.concurrency },
      )
      await worker.waitUntilReady()
      return null
    case 'taskSubmit': {
      const queue = queueOf(request.queue)
      const { ids, ...result } = await submitMany(request.count, request.concurrency, async payload =>
        String((await queue.add('bench', payload)).id),
      )
      submitted = ids
      return result
    }
    case 'flowSubmit': {
      flows ??= new FlowProducer({ connection: connect() })
      const producer = flows
      const { ids, ...result } = await submitMany(request.pairs, request.concurrency, async payload => {
        const flow = await producer.add({
          name: 'parent',
          queueName: request.queue,
          data: payload,
          children: [{ name: 'child', queueName: request.queue, data: payload }],
        })
        return String(flow.job.id)
      })
      submitted = ids
      return result
    }
    case 'taskStats':
      return recorder.take()
    case 'taskVerify': {
      const queue = queueOf(request.queue)
      let completed = 0
      let next = 0
      await Promise.all(
        Array.from({ length: 16 }, async () => {
          while (next < submitted.length) {
            if ((await queue.getJobState(submitted[next++])) === 'completed') completed++
          }
        }),
      )
      return { completed }
    }
    case 'taskStop':
      await worker?.close()
      worker = undefined
      return null
    case 'workload':
      throw new Error('the BullMQ process does not serve key-value workloads')
    case 'counters':
      throw new Error('the BullMQ process has no conclave counters')
  }
}

async function close(): Promise<void> {
  await worker?.close()
  for (const queue of queues.values()) await queue.close()
  await flows?.close()
  for (const connection of connections) connection.disconnect()
}

serveBenchRequests(serve, close)
