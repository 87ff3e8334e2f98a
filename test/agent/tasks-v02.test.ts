import { afterEach, describe, expect, it } from 'vitest'
import type { TaskProcessor } from '../../src/agent/api/tasks/worker.ts'
import type { Agent, ClaimedTask, TaskEvent } from '../../src/index.ts'
import {
  ConflictError,
  createAgent,
  InvalidArgumentError,
  NotClaimableError,
  NotFoundError,
  StaleAttemptError,
} from '../../src/index.ts'

const agents: Agent[] = []
const workers: TaskProcessor[] = []

afterEach(async () => {
  await Promise.all(workers.splice(0).map(worker => worker.close()))
  await Promise.all(agents.splice(0).map(agent => agent.stop()))
})

/** One agent founding its own cluster, in memory. */
async function startOne(): Promise<Agent> {
  const agent = await createAgent({ name: 'a0', transport: 'memory', concurrency: 4 })
  agents.push(agent)
  await agent.join({})
  return agent
}

async function until(check: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not met in time')
    await new Promise(resolve => setTimeout(resolve, 10))
  }
}

describe('tasks, contract v0.2 (one agent)', () => {
  it('cancel: a waiting task at once, a running one aborts its signal and refuses its completion', async () => {
    const agent = await startOne()
    await agent.tasks.submit({ id: 'parent', type: 'job' })
    await agent.tasks.submit({ id: 'child', type: 'job', dependsOn: ['parent'] })
    expect((await agent.tasks.status('child')).state).toBe('waiting')
    await agent.tasks.cancel('child', { reason: 'not needed' })
    expect(await agent.tasks.status('child')).toMatchObject({
      state: 'cancelled',
      cancelReason: 'not needed',
    })
    const claimed = await agent.tasks.claim('parent')
    await agent.tasks.cancel('parent')
    await until(() => claimed.signal.aborted)
    await expect(agent.tasks.complete('parent', 1)).rejects.toBeInstanceOf(StaleAttemptError)
    await expect(claimed.progress(5)).rejects.toBeInstanceOf(StaleAttemptError)
    // Finished: a no-op; unknown: NotFound.
    await agent.tasks.cancel('parent')
    await expect(agent.tasks.cancel('ghost')).rejects.toBeInstanceOf(NotFoundError)
  })

  it('list pages in submission order; watch resumes from a revision with no gap or duplicate', async () => {
    const agent = await startOne()
    const events: TaskEvent[] = []
    const controller = new AbortController()
    const watching = (async () => {
      for await (const event of agent.tasks.watch(
        { type: 'mail' },
        { signal: controller.signal, fromRevision: 1 },
      )) {
        events.push(event)
      }
    })()
    for (let i = 0; i < 5; i++) await agent.tasks.submit({ id: `m${i}`, type: 'mail' })
    await agent.tasks.submit({ id: 'other', type: 'pdf' })
    const first = await agent.tasks.list({ type: 'mail' }, { limit: 3 })
    expect(first.tasks.map(task => task.id)).toEqual(['m0', 'm1', 'm2'])
    expect(first.more).toBe(true)
    const rest = await agent.tasks.list({ type: 'mail' }, { limit: 3, after: 'm2' })
    expect(rest).toMatchObject({ more: false })
    expect(rest.tasks.map(task => task.id)).toEqual(['m3', 'm4'])
    expect(rest.tasks[0]).toMatchObject({ type: 'mail', priority: 0 })
    expect(rest.tasks[0].createdAt).toBeInstanceOf(Date)
    const task = await agent.tasks.claim('m0')
    await task.progress({ done: 0.5, note: undefined })
    await agent.tasks.complete('m0', { by: 'a0', n: undefined })
    expect(await agent.tasks.status('m0')).toMatchObject({
      state: 'completed',
      result: { by: 'a0' },
      progress: { done: 0.5 },
    })
    await until(() => events.some(event => event.type === 'completed'))
    controller.abort()
    await watching
    const revisions = events.map(event => event.revision)
    expect(new Set(revisions).size).toBe(revisions.length)
    expect([...revisions].sort((a, b) => a - b)).toEqual(revisions)
    expect(events.every(event => event.taskType === 'mail')).toBe(true)
    const m0 = events.filter(event => event.taskId === 'm0').map(event => event.type)
    // No worker runs on the agent, so nothing is placed: the explicit claim starts the pending task.
    expect(m0).toEqual(['submitted', 'started', 'progress', 'completed'])
    // Resuming after any revision gives exactly the rest.
    const cut = events[3].revision
    const resumed: TaskEvent[] = []
    const again = new AbortController()
    const resuming = (async () => {
      for await (const event of agent.tasks.watch(
        { type: 'mail' },
        { signal: again.signal, fromRevision: cut + 1 },
      )) {
        resumed.push(event)
        if (resumed.length === events.length - 4) again.abort()
      }
    })()
    await resuming
    expect(resumed).toEqual(events.slice(4))
  })

  it('pause holds new attempts of a type; resume lets them run; a worker result with undefined properties completes', async () => {
    const agent = await startOne()
    await agent.tasks.pause('mail')
    await agent.tasks.submit({ id: 'm', type: 'mail' })
    await expect(agent.tasks.claim('m')).rejects.toBeInstanceOf(NotClaimableError)
    const ran: string[] = []
    const processor = agent.tasks.process(async (task: ClaimedTask) => {
      ran.push(task.id)
      return { by: 'w0', n: undefined, at: new Date(0) }
    }) as TaskProcessor
    workers.push(processor)
    await agent.tasks.submit({ id: 'p', type: 'pdf' })
    await until(async () => (await agent.tasks.status('p')).state === 'completed')
    expect((await agent.tasks.status('p')).result).toEqual({ by: 'w0', at: '1970-01-01T00:00:00.000Z' })
    expect((await agent.tasks.status('m')).state).toBe('pending')
    await agent.tasks.resume('mail')
    await until(async () => (await agent.tasks.status('m')).state === 'completed')
    expect(ran).toEqual(['p', 'm'])
  })

  it('a result JSON cannot carry fails the attempt, saying why', async () => {
    const agent = await startOne()
    const processor = agent.tasks.process(async () => ({ big: 1n })) as TaskProcessor
    workers.push(processor)
    await agent.tasks.submit({ id: 't', type: 'x', constraints: { maxRetries: 0 } })
    await until(async () => (await agent.tasks.status('t')).state === 'dead')
    expect((await agent.tasks.status('t')).error).toMatch(
      /^the handler's result cannot be converted to JSON: .*BigInt/,
    )
  })

  it('bad input is a typed error and writes nothing; a resubmission is idempotent or a Conflict', async () => {
    const agent = await startOne()
    await agent.tasks.submit({ id: 'p', type: 'x', payload: { a: 1, skip: undefined } })
    expect(await agent.tasks.submit({ id: 'p', type: 'x', payload: { a: 1 } })).toMatchObject({ id: 'p' })
    await expect(agent.tasks.submit({ id: 'p', type: 'x', payload: { a: 2 } })).rejects.toBeInstanceOf(
      ConflictError,
    )
    const bad: [string, Record<string, unknown>, RegExp][] = [
      ['runAt', { runAt: new Date(Number.NaN) }, /runAt must be a valid Date/],
      ['unknown parent', { dependsOn: ['ghost'] }, /depends on task ghost, which does not exist/],
      ['itself', { id: 'self', dependsOn: ['self'] }, /depends on itself/],
      ['cron', { repeat: { cron: 'often' } }, /cron expression "often" does not parse/],
      ['every', { repeat: { every: 5 } }, /at least 10 ms/],
      ['neither', { repeat: {} }, /exactly one of every and cron/],
      ['both', { repeat: { every: 100, cron: '* * * * *' } }, /exactly one of every and cron/],
      ['backoff', { backoff: { type: 'fixed', delay: -1 } }, /backoff.delay/],
      ['retention', { retention: { completed: -1 } }, /retention.completed/],
    ]
    for (const [what, fields, message] of bad) {
      const error = await agent.tasks.submit({ type: 'x', ...fields }).catch((err: unknown) => err)
      expect(error, what).toBeInstanceOf(InvalidArgumentError)
      expect((error as Error).message, what).toMatch(message)
    }
    await expect(agent.tasks.list({ state: 'sleeping' as never })).rejects.toThrow(
      /unknown task state "sleeping"/,
    )
    expect((await agent.tasks.list()).tasks.map(task => task.id)).toEqual(['p'])
  })
})
