import type { Libp2p } from '@libp2p/interface'
import { afterEach, describe, expect, it } from 'vitest'
import type { TaskProcessor } from '../../src/agent/api/tasks/worker.ts'
import type { Replica } from '../../src/agent/node/replica.ts'
import type { Agent, ClaimedTask, ConclaveService, TaskEvent } from '../../src/index.ts'
import { createAgent } from '../../src/index.ts'

// Slots only where work can run: an agent offers its task slots while a worker of it runs.
const agents: Agent[] = []
const workers: TaskProcessor[] = []

/** Handlers held until told (see phase 2); released after each test whatever its outcome. */
const holds: (() => void)[] = []
let holding = true

afterEach(async () => {
  holding = false
  for (const release of holds.splice(0)) release()
  await Promise.all(workers.splice(0).map(worker => worker.close()))
  await Promise.all(agents.splice(0).map(agent => agent.stop()))
})

async function start(names: string[]): Promise<Agent[]> {
  const started: Agent[] = []
  for (const name of names) {
    const agent = await createAgent({ name, transport: 'memory', concurrency: 4 })
    agents.push(agent)
    started.push(agent)
  }
  await started[0].join({})
  for (const agent of started.slice(1)) await agent.join({ bootstrap: started[0].multiaddrs() })
  return started
}

/** Whether `agent`'s replica holds `of` as running a worker (offering its slots). */
function runsTasks(agent: Agent, of: Agent): boolean | undefined {
  const service = (agent.libp2p as Libp2p<{ conclave: ConclaveService }>).services.conclave
  return (service as unknown as { replica: Replica }).replica.state.agent(of.id)?.runsTasks
}

async function until(check: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const end = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not met in time')
    await new Promise(resolve => setTimeout(resolve, 10))
  }
}

describe('task slots and running workers', () => {
  it('places no task on an agent without a worker; its worker gets tasks; closed, its assigned tasks run elsewhere', async () => {
    const [a, b, idle] = await start(['a', 'b', 'idle'])
    const events: TaskEvent[] = []
    const watching = new AbortController()
    const watched = (async () => {
      for await (const event of a.tasks.watch({}, { signal: watching.signal, fromRevision: 1 })) {
        events.push(event)
      }
    })()
    const ranOn = new Map<string, string[]>()
    const run = (agent: Agent) => async (task: ClaimedTask) => {
      ranOn.set(task.id, [...(ranOn.get(task.id) ?? []), agent.name])
      await new Promise(resolve => setTimeout(resolve, 20))
      return agent.name
    }
    expect(runsTasks(a, idle)).toBe(false)
    for (const agent of [a, b])
      workers.push(agent.tasks.process(run(agent), { concurrency: 2 }) as TaskProcessor)
    await until(() => runsTasks(a, a) === true && runsTasks(a, b) === true)

    // Phase 1: every task prefers `idle`, which has 4 free slots and no worker: none may be placed there.
    const first = Array.from({ length: 20 }, (_, i) => `p${i}`)
    await Promise.all(
      first.map(id => a.tasks.submit({ id, type: 'job', constraints: { preferredAgents: ['idle'] } })),
    )
    await until(async () => (await a.tasks.list({ state: 'completed' })).tasks.length === first.length)
    const assignedTo = (agentId: string) =>
      events.filter(event => event.type === 'assigned' && event.assignee === agentId)
    expect(assignedTo(idle.id)).toEqual([])
    for (const id of first) expect(ranOn.get(id)).toHaveLength(1)

    // Phase 2: idle's worker starts and takes what prefers it. It holds every task it starts until told,
    // running 1 at a time, so the others it gets stay assigned to it.
    holding = true
    const idleWorker = idle.tasks.process(
      async task => {
        ranOn.set(task.id, [...(ranOn.get(task.id) ?? []), idle.name])
        if (holding) await new Promise<void>(resolve => holds.push(resolve))
        return idle.name
      },
      { concurrency: 1 },
    ) as TaskProcessor
    workers.push(idleWorker)
    await until(() => runsTasks(a, idle) === true)
    const second = Array.from({ length: 6 }, (_, i) => `q${i}`)
    await Promise.all(
      second.map(id =>
        a.tasks.submit({
          id,
          type: 'job',
          constraints: { preferredAgents: ['idle'] },
        }),
      ),
    )
    await until(() => holds.length === 1)
    await until(async () => {
      const onIdle = await a.tasks.list({ assignee: idle.id, state: 'assigned' })
      return onIdle.tasks.length >= 1
    })
    const started = second.filter(id => ranOn.get(id)?.includes('idle'))
    expect(started).toHaveLength(1)
    const assignedBefore = (await a.tasks.list({ assignee: idle.id, state: 'assigned' })).tasks.map(t => t.id)
    expect(assignedBefore.length).toBeGreaterThan(0)

    // Phase 3: idle's worker closes. Its assigned tasks go back to pending and run on a or b, while its
    // running handler finishes; close() waits for it.
    const closing = idleWorker.close()
    await until(() => runsTasks(a, idle) === false)
    await until(async () => {
      const statuses = await Promise.all(assignedBefore.map(id => a.tasks.status(id)))
      return statuses.every(status => status.state === 'completed')
    })
    for (const id of assignedBefore) {
      expect(await a.tasks.status(id)).toMatchObject({
        state: 'completed',
        result: expect.stringMatching(/^[ab]$/),
      })
      expect(ranOn.get(id)).toHaveLength(1)
    }
    expect(events.some(event => event.type === 'pending' && assignedBefore.includes(event.taskId))).toBe(true)
    holding = false
    for (const release of holds.splice(0)) release()
    await closing
    await until(async () => (await a.tasks.list({ state: 'completed' })).tasks.length === 26)
    expect(await a.tasks.status(started[0])).toMatchObject({ state: 'completed', result: 'idle' })
    for (const id of [...first, ...second]) expect(ranOn.get(id), id).toHaveLength(1)

    // And nothing new goes to idle once its worker is gone.
    const mark = events.length
    await Promise.all(
      ['r0', 'r1', 'r2'].map(id =>
        a.tasks.submit({ id, type: 'job', constraints: { preferredAgents: ['idle'] } }),
      ),
    )
    await until(async () => (await a.tasks.list({ state: 'completed' })).tasks.length === 29)
    expect(
      events.slice(mark).filter(event => event.type === 'assigned' && event.assignee === idle.id),
    ).toEqual([])
    watching.abort()
    await watched
  })
})
