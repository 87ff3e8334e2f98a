import type { Libp2p } from '@libp2p/interface'
import { describe, expect, it } from 'vitest'
import type { Replica } from '../../src/agent/node/replica.ts'
import type { SessionKeeper } from '../../src/agent/node/session.ts'
import type { Agent, ConclaveService, TaskWorker } from '../../src/index.ts'
import { createAgent } from '../../src/index.ts'
import { stoppedAfterEach, until } from './in-process.ts'

// An attempt claimed while this agent's session lease is not trusted locally (a keep-alive answered late, as
// on a loaded machine) while the cluster still holds the session: the claim commits, the lease watch aborts
// the attempt's signal before `next()` hands it out. The flake of tasks-v02-processes (a task `running` on a
// survivor whose handler never ran) was such an attempt, dropped by the worker and never run nor ended.
const { agents, workers } = stoppedAfterEach<TaskWorker>()

/** The agent's session keeper (whose local lease the test lets lapse) and replica. */
function partsOf(agent: Agent): { session: SessionKeeper; replica: Replica } {
  const service = (agent.libp2p as Libp2p<{ conclave: ConclaveService }>).services.conclave
  return service as unknown as { session: SessionKeeper; replica: Replica }
}

describe('an attempt claimed while the local session lease has lapsed', () => {
  it('is run once the lease is trusted again, as the same attempt, never left running unattended', async () => {
    const agent = await createAgent({ name: 'a', transport: 'memory', concurrency: 2 })
    agents.push(agent)
    await agent.join({})
    const { session, replica } = partsOf(agent)
    const trusted = session.validUntil.bind(session)
    // The lease lapses the moment the claim applies, before its answer reaches the worker: a worker claims
    // nothing while its lease is lapsed, but one may lapse while a claim travels.
    let lapsed = false
    replica.onEvent(event => {
      if (event.type === 'taskStarted' && event.taskId === 't1' && event.attempt === 1) lapsed = true
    })
    // Lease checks made while the attempt runs: the first is the one the claim's arrival triggers.
    let checksWhileRunning = 0
    session.validUntil = () => {
      if (!lapsed) return trusted()
      if (replica.state.task('t1')?.state === 'running') checksWhileRunning++
      return Number.NEGATIVE_INFINITY
    }

    const ran: { id: string; aborted: boolean }[] = []
    workers.push(
      agent.tasks.process(async task => {
        ran.push({ id: task.id, aborted: task.signal.aborted })
        return 'done'
      }),
    )
    await agent.tasks.submit({ id: 't1', type: 'job' })
    // The worker's claim commits: the attempt runs in the cluster, but no handler may start it untrusted.
    // Two checks: the claim's arrival saw the lease lapsed (and aborted the attempt), and one more after it.
    await until(() => checksWhileRunning >= 2)
    expect((await agent.tasks.status('t1')).state).toBe('running')
    expect(ran).toEqual([])

    lapsed = false
    await until(async () => (await agent.tasks.status('t1')).state === 'completed').catch(async err => {
      throw new Error(`${err}: ${JSON.stringify(await agent.tasks.status('t1'))}, handler ran ${ran.length}`)
    })
    const status = await agent.tasks.status('t1')
    expect(status.attempt).toBe(1)
    expect(status.result).toBe('done')
    expect(ran).toEqual([{ id: 't1', aborted: false }])
  })
})
