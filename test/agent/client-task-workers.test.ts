import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ClientProtocolServer } from '../../src/agent/api/client-protocol.ts'
import type { Agent } from '../../src/index.ts'
import { createAgent } from '../../src/index.ts'
import { systemScheduler } from '../../src/time/system-scheduler.ts'

// Workers that are not members (`conclave worker`): the serving agent holds their attempts while they poll.
const encoder = new TextEncoder()
const decoder = new TextDecoder()
let agent: Agent
let closed: AbortController
let server: ClientProtocolServer

beforeAll(async () => {
  agent = await createAgent({ name: 'cw0', transport: 'memory', concurrency: 4 })
  await agent.join({})
  closed = new AbortController()
  server = new ClientProtocolServer({
    api: agent,
    currentRevision: () => 0,
    closed: closed.signal,
    scheduler: systemScheduler,
    graceMs: 300,
  })
})

afterAll(async () => {
  closed?.abort()
  await agent?.stop()
})

/** A request as client peer `from`; rejects with the error the agent answered. */
async function call(
  from: string,
  op: string,
  args: Record<string, unknown>,
): Promise<Record<string, unknown>> {
  return JSON.parse(decoder.decode(await server.handle(encoder.encode(JSON.stringify({ op, args })), from)))
}

async function until(check: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not met in time')
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}

describe('client task workers', () => {
  it('fails an attempt whose client stops polling, for a retry', async () => {
    await agent.tasks.submit({ id: 'gone', type: 'cw', backoff: { type: 'fixed', delay: 60_000 } })
    const { task } = (await call('peer-a', 'task.next', { type: 'cw', waitMs: 2000 })) as {
      task: { id: string; handle: string; attempt: number; payload: unknown }
    }
    expect(task).toMatchObject({ id: 'gone', attempt: 1, payload: {} })
    // No poll: after the grace period the agent fails it, saying why.
    await until(async () => (await agent.tasks.status('gone')).state === 'failed')
    expect((await agent.tasks.status('gone')).error).toMatch(/the worker went away/)
    await expect(call('peer-a', 'task.attempt', { handle: task.handle, waitMs: 0 })).rejects.toMatchObject({
      name: 'NotFoundError',
    })
  })

  it('keeps a polled attempt; its end (a cancel) answers the poll at once; a result after it is refused', async () => {
    await agent.tasks.submit({ id: 'kept', type: 'cw2' })
    const { task } = (await call('peer-b', 'task.next', { type: 'cw2', waitMs: 2000 })) as {
      task: { handle: string }
    }
    // Polls past the grace period keep it.
    for (let i = 0; i < 3; i++) {
      expect(await call('peer-b', 'task.attempt', { handle: task.handle, waitMs: 200 })).toEqual({
        live: true,
      })
    }
    expect((await agent.tasks.status('kept')).state).toBe('running')
    // Another client cannot use the handle.
    await expect(call('peer-c', 'task.settle', { handle: task.handle, result: 1 })).rejects.toMatchObject({
      name: 'NotFoundError',
    })
    const polling = call('peer-b', 'task.attempt', { handle: task.handle, waitMs: 10_000 })
    const begun = Date.now()
    await agent.tasks.cancel('kept', { reason: 'enough' })
    expect(await polling).toMatchObject({ live: false })
    expect(Date.now() - begun).toBeLessThan(5_000)
    await expect(call('peer-b', 'task.settle', { handle: task.handle, result: 1 })).rejects.toMatchObject({
      name: 'StaleAttemptError',
    })
    expect(await agent.tasks.status('kept')).toMatchObject({ state: 'cancelled', cancelReason: 'enough' })
  })

  it('completes the exact attempt with the client’s result; settle takes exactly one of result and error', async () => {
    await agent.tasks.submit({ id: 'done', type: 'cw3', payload: { n: 2 } })
    const { task } = (await call('peer-d', 'task.next', { type: 'cw3', waitMs: 2000 })) as {
      task: { handle: string; payload: unknown }
    }
    expect(task.payload).toEqual({ n: 2 })
    await expect(call('peer-d', 'task.settle', { handle: task.handle })).rejects.toMatchObject({
      name: 'InvalidArgumentError',
    })
    await call('peer-d', 'task.progress', { handle: task.handle, progress: { half: true } })
    await call('peer-d', 'task.settle', { handle: task.handle, result: { n: 4 } })
    expect(await agent.tasks.status('done')).toMatchObject({
      state: 'completed',
      result: { n: 4 },
      progress: { half: true },
    })
    // Nothing of that type left: the poll answers empty after its wait.
    expect(await call('peer-d', 'task.next', { type: 'cw3', waitMs: 300 })).toEqual({})
  })
})
