import type { Libp2p } from '@libp2p/interface'
import { afterEach, describe, expect, it } from 'vitest'
import { planLeaderDuties } from '../../src/agent/cluster/leader-duties.ts'
import { StalledAssignmentClock } from '../../src/agent/cluster/stalled-assignments.ts'
import type { SessionKeeper } from '../../src/agent/node/session.ts'
import type { Agent, ClaimedTask, ConclaveService, TaskWorker } from '../../src/index.ts'
import { createAgent } from '../../src/index.ts'
import { LogDriver, registerAgent, submit } from '../state/helpers.ts'

const agents: Agent[] = []
const workers: TaskWorker[] = []

afterEach(async () => {
  await Promise.all(workers.splice(0).map(worker => worker.close()))
  await Promise.all(agents.splice(0).map(agent => agent.stop()))
})

async function until(check: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not met in time')
    await new Promise(resolve => setTimeout(resolve, 10))
  }
}

describe("StalledAssignmentClock: assignments nobody starts, on the leader's monotonic clock", () => {
  it('names an agent once a task stayed assigned to it a full stall time; the planner takes its slots', () => {
    const log = new LogDriver().at(1_000)
    registerAgent(log, 'a', { concurrency: 2 })
    submit(log, 't')
    expect(log.machine.task('t')?.state).toBe('assigned')
    const clock = new StalledAssignmentClock()
    const leadership = {}
    // Entry timestamps play no part: a day later in state time is nothing on the leader's clock.
    log.at(86_400_000).apply({ type: 'put', key: 'k', value: 1 })
    expect(clock.due(log.machine, leadership, 100, 1_000)).toEqual([])
    expect(clock.due(log.machine, leadership, 1_099, 1_000)).toEqual([])
    expect(clock.due(log.machine, leadership, 1_100, 1_000)).toEqual(['a'])
    // A new leadership starts over.
    expect(clock.due(log.machine, {}, 1_200, 1_000)).toEqual([])
    const duties = planLeaderDuties({
      state: log.machine,
      selfId: 'leader',
      now: 0,
      elapsed: 0,
      takeoverStateTime: 0,
      sessionExpiries: [],
      stalledAgents: ['a'],
    })
    expect(duties).toContainEqual({
      id: 'w:a',
      command: { type: 'updateAgent', agentId: 'a', runsTasks: false },
    })
    // Applied, the task goes back to pending (no other agent takes it here), and the agent's slots are off.
    log.apply({ type: 'updateAgent', agentId: 'a', runsTasks: false })
    expect(log.machine.task('t')?.state).toBe('pending')
    expect(clock.due(log.machine, {}, 5_000, 1_000)).toEqual([])
  })
})

describe('tasks assigned to an agent that does not start them', () => {
  it('go back to pending and run elsewhere; the agent offers its slots again once it runs tasks', async () => {
    const started: Agent[] = []
    for (const name of ['a', 'b']) {
      const agent = await createAgent({ name, transport: 'memory', concurrency: 2, sessionTtlMs: 1_000 })
      agents.push(agent)
      started.push(agent)
    }
    const [a, b] = started
    await a.join({})
    await b.join({ bootstrap: a.multiaddrs() })
    // b's session lease is not trusted locally (its keep-alives, say, answered late): its worker claims
    // nothing, and what the scheduler places on it (every task prefers it) waits there.
    const session = (b.libp2p as Libp2p<{ conclave: ConclaveService }>).services.conclave as unknown as {
      session: SessionKeeper
    }
    const trusted = session.session.validUntil.bind(session.session)
    let lapsed = true
    session.session.validUntil = () => (lapsed ? Number.NEGATIVE_INFINITY : trusted())
    const ranOn = new Map<string, string>()
    const run = (agent: Agent) => async (task: ClaimedTask) => {
      ranOn.set(task.id, agent.name)
      return agent.name
    }
    workers.push(a.tasks.process(run(a)), b.tasks.process(run(b)))
    const ids = ['s1', 's2', 's3', 's4']
    for (const id of ids) await a.tasks.submit({ id, type: 'job', constraints: { preferredAgents: ['b'] } })
    await until(async () => (await a.tasks.list({ state: 'completed' })).tasks.length === ids.length)
    for (const id of ids) expect(ranOn.get(id), id).toBe('a')

    // Trusted again, b offers its slots and runs what prefers it.
    lapsed = false
    await a.tasks.submit({ id: 's5', type: 'job', constraints: { preferredAgents: ['b'] } })
    await until(async () => (await a.tasks.status('s5')).state === 'completed')
    expect(ranOn.get('s5')).toBe('b')
  }, 30_000)
})
