import { afterEach, describe, expect, it } from 'vitest'
import type { TaskProcessor, TaskWorkerEventDetail } from '../../src/agent/api/tasks/worker.ts'
import type { Agent, ClaimedTask } from '../../src/index.ts'
import { createAgent, StaleAttemptError } from '../../src/index.ts'

// Contract v0.2 task features over real sockets: agents in this process on loopback TCP.
const agents: Agent[] = []
const workers: TaskProcessor[] = []

afterEach(async () => {
  await Promise.all(workers.splice(0).map(worker => worker.close()))
  await Promise.all(agents.splice(0).map(agent => agent.stop()))
})

async function start(names: string[]): Promise<Agent[]> {
  const started: Agent[] = []
  for (const name of names) {
    const agent = await createAgent({ name, concurrency: 8 })
    agents.push(agent)
    started.push(agent)
  }
  await started[0].join({})
  for (const agent of started.slice(1)) await agent.join({ bootstrap: started[0].multiaddrs() })
  return started
}

async function until(check: () => boolean | Promise<boolean>, ms = 30_000): Promise<void> {
  const end = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not met in time')
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}

describe('tasks v0.2 over TCP', () => {
  it('runs a flow of 200 tasks in diamonds once each, never before its parents completed', async () => {
    const group = await start(['f0', 'f1', 'f2'])
    const runs = new Map<string, number>()
    const violations: string[] = []
    const parentsOf = new Map<string, string[]>()
    const handler = (agent: Agent) => async (task: ClaimedTask) => {
      runs.set(task.id, (runs.get(task.id) ?? 0) + 1)
      // Every parent must be completed, as any agent reads it, when a child starts.
      for (const parent of parentsOf.get(task.id) ?? []) {
        const state = (await agent.tasks.status(parent)).state
        if (state !== 'completed') violations.push(`${task.id} started while ${parent} was ${state}`)
      }
      // Parents take a while, so that a child started too early would overlap its parent's run.
      const ms = task.id.endsWith('-top') ? 300 : task.id.endsWith('-left') ? 60 : 2
      await new Promise(resolve => setTimeout(resolve, ms))
      return task.id
    }
    for (const agent of group) {
      workers.push(agent.tasks.process(handler(agent), { concurrency: 4 }) as TaskProcessor)
    }
    // 50 diamonds: top -> left, right -> bottom, submitted in 5 lanes of 10 (parents must exist first), so
    // slots are free when a child arrives: a child not held back would start while its slow parent runs.
    const ids: string[] = []
    await Promise.all(
      Array.from({ length: 5 }, async (_, lane) => {
        for (let k = 0; k < 10; k++) {
          const d = lane * 10 + k
          const at = group[d % group.length]
          const top = `d${d}-top`
          const left = `d${d}-left`
          const right = `d${d}-right`
          const bottom = `d${d}-bottom`
          parentsOf.set(left, [top])
          parentsOf.set(right, [top])
          parentsOf.set(bottom, [left, right])
          ids.push(top, left, right, bottom)
          await at.tasks.submit({ id: top, type: 'flow' })
          await Promise.all([
            at.tasks.submit({ id: left, type: 'flow', dependsOn: [top] }),
            at.tasks.submit({ id: right, type: 'flow', dependsOn: [top] }),
          ])
          await at.tasks.submit({ id: bottom, type: 'flow', dependsOn: [left, right] })
        }
      }),
    )
    expect(ids).toHaveLength(200)
    await until(
      async () =>
        (await group[0].tasks.list({ type: 'flow', state: 'completed' }, { limit: 1000 })).tasks.length ===
        200,
    )
    expect(violations).toEqual([])
    for (const id of ids) expect(runs.get(id), id).toBe(1)
    const statuses = (await group[1].tasks.list({ type: 'flow' }, { limit: 1000 })).tasks
    expect(statuses.every(status => status.state === 'completed' && status.attempt === 1)).toBe(true)
    for (const status of statuses)
      expect(status.dependsOn ?? [], status.id).toEqual(parentsOf.get(status.id) ?? [])
  }, 60_000)

  it('cancelling a running task aborts its handler’s signal and refuses its completion', async () => {
    const [a, b] = await start(['c0', 'c1'])
    // An explicit attempt on b, cancelled from a.
    await a.tasks.submit({ id: 'held', type: 'cancel-me' })
    const claimed = await b.tasks.claim('held')
    await a.tasks.cancel('held', { reason: 'stop it' })
    await until(() => claimed.signal.aborted)
    await expect(b.tasks.complete('held', 'late')).rejects.toBeInstanceOf(StaleAttemptError)
    expect(await a.tasks.status('held')).toMatchObject({ state: 'cancelled', cancelReason: 'stop it' })

    // A worker's handler on b, cancelled from a: its signal aborts; the result it returns anyway is refused.
    const aborted: string[] = []
    const refused: unknown[] = []
    const worker = b.tasks.process(async task => {
      await new Promise<void>(resolve =>
        task.signal.addEventListener('abort', () => resolve(), { once: true }),
      )
      aborted.push(task.id)
      return 'done anyway'
    }) as TaskProcessor
    worker.addEventListener('error', event =>
      refused.push((event as CustomEvent<TaskWorkerEventDetail>).detail.error),
    )
    workers.push(worker)
    await a.tasks.submit({ id: 'worked', type: 'cancel-me' })
    await until(async () => (await a.tasks.status('worked')).state === 'running')
    await a.tasks.cancel('worked')
    await until(() => aborted.includes('worked') && refused.length > 0)
    expect(refused[0]).toBeInstanceOf(StaleAttemptError)
    expect(await a.tasks.status('worked')).toMatchObject({ state: 'cancelled' })
    expect((await a.tasks.status('worked')).result).toBeUndefined()
  }, 60_000)
})
