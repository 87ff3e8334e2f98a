import type { Libp2p } from '@libp2p/interface'
import { describe, expect, it } from 'vitest'
import type { SessionKeeper } from '../../src/agent/node/session.ts'
import type { ConclaveService, TaskWorker } from '../../src/index.ts'
import { createAgent } from '../../src/index.ts'
import { stoppedAfterEach, until } from './in-process.ts'

// A handler stopped because its agent's session lease lapsed locally (a keep-alive answered late, as on a
// loaded machine) did nothing wrong: its failure must not spend one of the task's attempts, or a busy
// cluster ends tasks `dead` after N attempts "session lease ran out" (tasks-v02-processes at load 15+).
const { agents, workers } = stoppedAfterEach<TaskWorker>()

describe('a handler stopped by a lapse of the local session lease', () => {
  it('fails its attempt without spending a retry: a task with none left runs again and completes', async () => {
    const agent = await createAgent({ name: 'a', transport: 'memory', concurrency: 1 })
    agents.push(agent)
    await agent.join({})
    const service = (agent.libp2p as Libp2p<{ conclave: ConclaveService }>).services.conclave
    const session = (service as unknown as { session: SessionKeeper }).session
    const trusted = session.validUntil.bind(session)
    let lapsed = false
    session.validUntil = () => (lapsed ? Number.NEGATIVE_INFINITY : trusted())

    const runs: { attempt: number; reason?: string }[] = []
    workers.push(
      agent.tasks.process(async task => {
        const run: { attempt: number; reason?: string } = { attempt: task.attempt }
        runs.push(run)
        if (task.attempt > 1) return 'done'
        // The first run waits on its signal, which the lease watch aborts once the lease lapses.
        lapsed = true
        await new Promise<void>(resolve => task.signal.addEventListener('abort', () => resolve()))
        run.reason = (task.signal.reason as Error).message
        // Trusted again (the next keep-alive came back): the worker may claim again.
        lapsed = false
        throw task.signal.reason
      }),
    )
    await agent.tasks.submit({
      id: 't1',
      type: 'job',
      constraints: { maxRetries: 0 },
      backoff: { type: 'fixed', delay: 0 },
    })
    await until(async () => ['completed', 'dead'].includes((await agent.tasks.status('t1')).state))
    const status = await agent.tasks.status('t1')
    expect(runs).toEqual([{ attempt: 1, reason: 'the session lease of this agent ran out' }, { attempt: 2 }])
    expect(status).toMatchObject({ state: 'completed', attempt: 2, result: 'done' })
  })
})
