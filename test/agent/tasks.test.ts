import type { Libp2p } from '@libp2p/interface'
import { afterEach, describe, expect, it } from 'vitest'
import type { Tasks } from '../../src/agent/api/tasks/tasks.ts'
import type { TaskProcessor, TaskWorkerEventDetail } from '../../src/agent/api/tasks/worker.ts'
import type { Replica } from '../../src/agent/node/replica.ts'
import type { ConclaveService } from '../../src/agent/service.ts'
import type { Agent, AgentOptions, ClaimedTask, TaskInput } from '../../src/index.ts'
import { createAgent, NoLeaderError } from '../../src/index.ts'

const agents: Agent[] = []
const workers: TaskProcessor[] = []

afterEach(async () => {
  await Promise.all(workers.splice(0).map(worker => worker.close()))
  await Promise.all(agents.splice(0).map(agent => agent.stop()))
})

/** Agents named a0, a1, ... in one cluster: a0 founds it (and leads), the others join. */
async function start(options: AgentOptions[]): Promise<Agent[]> {
  const started: Agent[] = []
  for (const [i, agentOptions] of options.entries()) {
    const agent = await createAgent({ name: `a${i}`, transport: 'memory', ...agentOptions })
    agents.push(agent)
    started.push(agent)
  }
  await started[0].join({})
  for (const agent of started.slice(1)) await agent.join({ bootstrap: started[0].multiaddrs() })
  return started
}

async function until(check: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not met in time')
    await new Promise(resolve => setTimeout(resolve, 10))
  }
}

function worker(agent: Agent, handler: (task: ClaimedTask) => Promise<unknown>, concurrency?: number) {
  const processor = agent.tasks.process(handler, concurrency === undefined ? {} : { concurrency })
  workers.push(processor as TaskProcessor)
  return processor as TaskProcessor
}

function on(
  processor: TaskProcessor,
  type: 'completed' | 'failed' | 'error',
  listener: (detail: TaskWorkerEventDetail) => void,
) {
  processor.addEventListener(type, event => listener((event as CustomEvent<TaskWorkerEventDetail>).detail))
}

/** The replicated state of an in-process agent, to check that rejected calls wrote nothing. */
function stateOf(agent: Agent) {
  const service = (agent.libp2p as Libp2p<{ conclave: ConclaveService }>).services.conclave
  return (service as unknown as { replica: Replica }).replica.state
}

function taskCount(agent: Agent): number {
  const snapshot = JSON.parse(new TextDecoder().decode(stateOf(agent).snapshot()))
  return snapshot.tasks.tasks.length
}

/** An object that contains itself: JSON.stringify cannot convert it. */
function cyclic(): Record<string, unknown> {
  const value: Record<string, unknown> = {}
  value.self = value
  return value
}

/** A deterministic PRNG (mulberry32), so a failing mix can be replayed. */
function prng(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve = (): void => {}
  const promise = new Promise<void>(settle => {
    resolve = settle
  })
  return { promise, resolve }
}

describe('task distribution', () => {
  it('submits with defaults, claims, completes, fails and reports status', async () => {
    const [a, b] = await start([{}, {}])
    const submitted = await a.tasks.submit({ type: 'resize', payload: { file: 'x.png' } })
    expect(submitted.id).not.toBe('')
    expect(submitted.priority).toBe(0)
    expect(submitted.constraints).toEqual({ requiredCapabilities: [], maxRetries: 3, timeout: 0 })
    expect(submitted.createdAt).toBeInstanceOf(Date)
    // No agent runs a worker: nothing is placed, and the task waits for one or for an explicit claim.
    expect(await b.tasks.status(submitted.id)).toMatchObject({ state: 'pending' })
    expect((await b.tasks.status(submitted.id)).assignee).toBeUndefined()

    const claimed = await b.tasks.claim(submitted.id)
    expect(claimed).toMatchObject({
      id: submitted.id,
      type: 'resize',
      payload: { file: 'x.png' },
      attempt: 1,
    })
    expect(typeof claimed.fencingToken).toBe('bigint')
    expect(claimed.signal.aborted).toBe(false)
    expect(await a.tasks.status(submitted.id)).toMatchObject({ state: 'running', assignee: b.id, attempt: 1 })
    await expect(a.tasks.claim(submitted.id)).rejects.toMatchObject({ name: 'NotClaimableError' })
    // Only the agent holding the attempt can end it.
    await expect(a.tasks.complete(submitted.id, 1)).rejects.toMatchObject({ name: 'StaleAttemptError' })
    await b.tasks.complete(submitted.id, undefined)
    expect(claimed.signal.aborted).toBe(false)
    const done = await a.tasks.status(submitted.id)
    expect(done).toMatchObject({ state: 'completed', assignee: b.id, attempt: 1, result: null })
    expect(done.updatedAt).toBeInstanceOf(Date)
    await expect(b.tasks.complete(submitted.id, 2)).rejects.toMatchObject({ name: 'StaleAttemptError' })
    await expect(b.tasks.claim(submitted.id)).rejects.toMatchObject({ name: 'NotClaimableError' })

    const failing = await a.tasks.submit({
      id: 'f1',
      type: 'flaky',
      priority: 5,
      constraints: { maxRetries: 0 },
    })
    await a.tasks.claim(failing.id)
    await a.tasks.fail(failing.id, new Error('boom'))
    expect(await b.tasks.status('f1')).toMatchObject({ state: 'dead', attempt: 1, error: 'boom' })
    // An existing id with other contents (contract v0.2).
    await expect(a.tasks.submit({ id: 'f1', type: 'again' })).rejects.toMatchObject({
      name: 'ConflictError',
    })

    // next() waits for work and honours its signal.
    const controller = new AbortController()
    const waiting = b.tasks.next({ signal: controller.signal })
    setTimeout(() => controller.abort(), 50)
    await expect(waiting).rejects.toMatchObject({ name: 'AbortError' })
  })

  it('rejects bad input with the documented error and writes nothing', async () => {
    const [a] = await start([{}])
    await a.tasks.submit({ id: 'ok', type: 'fine' })
    const before = { tasks: taskCount(a), revision: stateOf(a).revision }
    const bad: [unknown, string][] = [
      [{ id: 'b1' }, 'InvalidArgumentError'], // missing type
      [{ id: 'b2', type: '' }, 'InvalidArgumentError'],
      [{ id: 'b3', type: 't', constraints: { maxRetries: -1 } }, 'InvalidArgumentError'],
      [{ id: 'b4', type: 't', constraints: { maxRetries: 1.5 } }, 'InvalidArgumentError'],
      // Values convert as JSON.stringify converts them (contract v0.2): what it cannot convert is refused.
      [{ id: 'b5', type: 't', payload: { n: 1n } }, 'InvalidArgumentError'],
      [{ id: 'b6', type: 't', payload: cyclic() }, 'InvalidArgumentError'],
      [{ id: 'b7', type: 't', payload: new Map() }, 'InvalidArgumentError'],
      [{ id: 'b8', type: 't', payload: [1, 2] }, 'InvalidArgumentError'],
      [{ id: 'b9', type: 't', priority: 1.5 }, 'InvalidArgumentError'],
      [{ id: 'b10', type: 't', priority: Number.POSITIVE_INFINITY }, 'InvalidArgumentError'],
      [{ id: 'b11', type: 't', constraints: { timeout: -1 } }, 'InvalidArgumentError'],
      [{ id: 'b12', type: 't', constraints: { requiredCapabilities: 'gpu' } }, 'InvalidArgumentError'],
      [{ id: 'b13', type: 't', constraints: { bogus: 1 } }, 'InvalidArgumentError'],
      [{ id: 'b14', type: 't', deadline: new Date(Number.NaN) }, 'InvalidArgumentError'],
      [{ id: 'b15', type: 't', deadline: 12345 }, 'InvalidArgumentError'],
      [{ id: 'b16', type: 't', colour: 'red' }, 'InvalidArgumentError'],
      [{ id: '', type: 't' }, 'InvalidArgumentError'],
      [{ id: 'ok', type: 'duplicate' }, 'ConflictError'],
      [null, 'InvalidArgumentError'],
    ]
    for (const [input, name] of bad) {
      const label = String((input as { id?: string } | null)?.id)
      await expect(a.tasks.submit(input as TaskInput), label).rejects.toMatchObject({ name })
    }
    await expect(a.tasks.submit({ type: 't' }, { bogus: true } as never)).rejects.toMatchObject({
      name: 'InvalidArgumentError',
    })
    await expect(a.tasks.status('nope')).rejects.toMatchObject({ name: 'NotFoundError' })
    await expect(a.tasks.claim('nope')).rejects.toMatchObject({ name: 'NotFoundError' })
    await expect(a.tasks.complete('nope', 1)).rejects.toMatchObject({ name: 'NotFoundError' })
    await expect(a.tasks.fail('nope', 'x')).rejects.toMatchObject({ name: 'NotFoundError' })
    await expect(a.tasks.claim('')).rejects.toMatchObject({ name: 'InvalidArgumentError' })
    const held = await a.tasks.claim('ok')
    await expect(a.tasks.complete('ok', { n: 1n })).rejects.toMatchObject({
      name: 'InvalidArgumentError',
    })
    await expect(a.tasks.fail('ok', 42 as never)).rejects.toMatchObject({ name: 'InvalidArgumentError' })
    expect(() => a.tasks.process(async () => 1, { concurrency: 0 })).toThrow(
      expect.objectContaining({ name: 'InvalidArgumentError' }),
    )
    expect(() => a.tasks.process(async () => 1, { bogus: 1 } as never)).toThrow(
      expect.objectContaining({ name: 'InvalidArgumentError' }),
    )
    // Nothing of the above reached the log: same tasks, same revision, the held attempt still runs.
    expect({ tasks: taskCount(a), revision: stateOf(a).revision }).toEqual(before)
    // `ok` (pending: no worker runs) was claimed above; nothing else waits.
    expect(stateOf(a).pendingCount).toBe(0)
    for (let i = 1; i <= 16; i++) expect(stateOf(a).task(`b${i}`)).toBeUndefined()
    expect(await a.tasks.status('ok')).toMatchObject({ state: 'running', attempt: 1 })
    expect(held.signal.aborted).toBe(false)
  })

  it('coalesces concurrent calls into shared entries, each answered for itself', async () => {
    const [a, b] = await start([{ concurrency: 1 }, { concurrency: 20 }])
    await a.tasks.submit({ id: 'dup', type: 'x' })
    // Queued and aborted before its batch left: never sent.
    const controller = new AbortController()
    const aborted = a.tasks.submit({ id: 'never', type: 'x' }, { signal: controller.signal })
    controller.abort()
    const abortedCheck = expect(aborted).rejects.toMatchObject({ name: 'AbortError' })
    let applied = stateOf(a).appliedIndex
    const submits = await Promise.allSettled(
      Array.from({ length: 100 }, (_, i) =>
        a.tasks.submit(i === 50 ? { id: 'dup', type: 'other' } : { id: `c${i}`, type: 'x' }),
      ),
    )
    await abortedCheck
    expect(submits.filter(outcome => outcome.status === 'fulfilled')).toHaveLength(99)
    expect(submits[50]).toMatchObject({ status: 'rejected', reason: { name: 'ConflictError' } })
    expect((submits[7] as PromiseFulfilledResult<{ id: string }>).value.id).toBe('c7')
    // A hundred submissions in a few entries, not a hundred.
    expect(stateOf(a).appliedIndex - applied).toBeLessThan(10)
    await b.tasks.status('c0')
    expect(stateOf(b).task('never')).toBeUndefined()

    // A follower's worker: completions and the claims that follow them share entries too.
    applied = stateOf(b).appliedIndex
    const done = new Set<string>()
    const processor = worker(b, async task => task.id, 20)
    on(processor, 'completed', ({ task }) => done.add(task!.id))
    await until(() => done.size >= 98)
    // Singly, the 98 tasks b may take (a holds one) cost 98 claims and 98 completions.
    expect(stateOf(b).appliedIndex - applied).toBeLessThan(30)
  })

  it('runs 2,000 tasks of mixed priorities and capabilities over TCP exactly once, highest priority first', async () => {
    const cluster = await start([
      { capabilities: ['cpu'], transport: 'tcp' },
      { capabilities: ['cpu', 'gpu'], transport: 'tcp' },
      { capabilities: ['cpu', 'io'], transport: 'tcp' },
    ])
    const [, b, c] = cluster
    const slots = 30
    const classes: { requiredCapabilities: string[]; excludeAgents?: string[] }[] = [
      { requiredCapabilities: [] },
      { requiredCapabilities: ['cpu'] },
      { requiredCapabilities: ['gpu'] },
      { requiredCapabilities: ['io'] },
      { requiredCapabilities: ['cpu', 'gpu'] },
      { requiredCapabilities: ['cpu'], excludeAgents: ['a0'] }, // by name
      { requiredCapabilities: [], excludeAgents: [b.id] }, // by id
    ]
    const random = prng(2000)
    const inputs: TaskInput[] = []
    for (let i = 0; i < 2000; i++) {
      const constraints: TaskInput['constraints'] = { ...classes[Math.floor(random() * classes.length)] }
      const cRuns = (constraints.requiredCapabilities ?? []).every(cap => cap === 'cpu' || cap === 'io')
      if (cRuns && random() < 0.2) constraints.preferredAgents = [c.id]
      inputs.push({ id: `t${i}`, type: 'work', priority: Math.floor(random() * 5), constraints })
    }

    const gate = deferred()
    let blockersRunning = 0
    const invocations = new Map<string, number>()
    const ranOn = new Map<string, Agent>()
    const started: string[] = []
    const accepted = new Map<string, number>()
    const problems: unknown[] = []
    for (const agent of cluster) {
      const processor = worker(agent, async task => {
        if (task.type === 'blocker') {
          blockersRunning++
          await gate.promise
          return null
        }
        invocations.set(task.id, (invocations.get(task.id) ?? 0) + 1)
        ranOn.set(task.id, agent)
        started.push(task.id)
        return agent.id
      })
      on(processor, 'completed', ({ task }) => {
        if (task!.type !== 'blocker') accepted.set(task!.id, (accepted.get(task!.id) ?? 0) + 1)
      })
      on(processor, 'error', ({ error }) => problems.push(error))
      on(processor, 'failed', ({ error }) => problems.push(error))
    }
    // Fill every slot, so that the 2,000 wait in the pending queue: capacity is short.
    await Promise.all(
      Array.from({ length: slots }, (_, i) =>
        cluster[i % 3].tasks.submit({ type: 'blocker', priority: 1000 }),
      ),
    )
    await until(() => blockersRunning === slots)
    const submitStart = performance.now()
    let nextInput = 0
    await Promise.all(
      Array.from({ length: 64 }, async (_, lane) => {
        while (nextInput < inputs.length) {
          await cluster[lane % 3].tasks.submit(inputs[nextInput++])
        }
      }),
    )
    const submitMs = performance.now() - submitStart
    expect(started.length).toBe(0)
    const runStart = performance.now()
    gate.resolve()
    await until(() => accepted.size === inputs.length, 60_000)
    const runMs = performance.now() - runStart
    expect(problems).toEqual([])

    // Exactly once: one handler invocation and one accepted completion per task.
    for (const input of inputs) {
      expect(invocations.get(input.id!), input.id).toBe(1)
      expect(accepted.get(input.id!), input.id).toBe(1)
    }
    // On an agent that had the capabilities and was not excluded.
    for (const input of inputs) {
      const agent = ranOn.get(input.id!)!
      const capabilities = new Set(
        agent === cluster[0] ? ['cpu'] : agent === b ? ['cpu', 'gpu'] : ['cpu', 'io'],
      )
      for (const capability of input.constraints?.requiredCapabilities ?? []) {
        expect(capabilities.has(capability), `${input.id} needs ${capability}`).toBe(true)
      }
      const excluded = input.constraints?.excludeAgents ?? []
      expect(excluded.includes(agent.id) || excluded.includes(agent.name), `${input.id} excluded`).toBe(false)
    }
    // The replicated state agrees, on every agent (read after a barrier; status() itself on a sample).
    const checkStart = performance.now()
    for (const agent of cluster) {
      await agent.tasks.status(inputs[0].id!)
      for (const input of inputs) {
        const task = stateOf(agent).task(input.id!)
        expect(task, input.id).toMatchObject({
          state: 'completed',
          attempt: 1,
          lastAgentId: ranOn.get(input.id!)!.id,
        })
        expect(task!.result).toBe(ranOn.get(input.id!)!.id)
      }
    }
    const sample = await Promise.all(
      inputs.filter((_, i) => i % 20 === 0).map(input => c.tasks.status(input.id!)),
    )
    for (const status of sample) {
      expect(status).toMatchObject({ state: 'completed', attempt: 1, assignee: ranOn.get(status.id)!.id })
    }
    const checkMs = performance.now() - checkStart
    // Highest priority first: within a class (same filters), no task starts more than the slots in flight
    // after a task of lower priority.
    const priorityOf = new Map(inputs.map(input => [input.id!, input.priority!]))
    const classOf = (id: string) =>
      JSON.stringify(inputs[Number(id.slice(1))].constraints?.excludeAgents ?? []) +
      JSON.stringify(inputs[Number(id.slice(1))].constraints?.requiredCapabilities)
    const byClass = new Map<string, number[]>()
    for (const id of started) {
      const key = classOf(id)
      if (!byClass.has(key)) byClass.set(key, [])
      byClass.get(key)!.push(priorityOf.get(id)!)
    }
    let inversions = 0
    for (const priorities of byClass.values()) {
      let lowest = Number.POSITIVE_INFINITY
      for (let j = slots + 1; j < priorities.length; j++) {
        lowest = Math.min(lowest, priorities[j - slots - 1])
        if (priorities[j] > lowest) inversions++
      }
    }
    expect(inversions).toBe(0)
    const preferring = inputs.filter(input => input.constraints?.preferredAgents !== undefined)
    const onPreferred = preferring.filter(input => ranOn.get(input.id!) === c).length

    // Preferred agents get their tasks when they can: with free slots everywhere, all go to the preferred one.
    const preferredIds: string[] = []
    for (let i = 0; i < 8; i++) {
      preferredIds.push((await b.tasks.submit({ type: 'work', constraints: { preferredAgents: [c.id] } })).id)
      preferredIds.push((await c.tasks.submit({ type: 'work', constraints: { preferredAgents: ['a1'] } })).id)
    }
    await until(() => preferredIds.every(id => accepted.has(id)))
    for (const [i, id] of preferredIds.entries()) expect(ranOn.get(id)).toBe(i % 2 === 0 ? c : b)

    console.log(
      `2,000 tasks over 3 TCP agents: submitted in ${submitMs.toFixed(0)} ms ` +
        `(${((inputs.length / submitMs) * 1000).toFixed(0)}/s), ran in ${runMs.toFixed(0)} ms ` +
        `(${((inputs.length / runMs) * 1000).toFixed(0)} tasks/s); ` +
        `${onPreferred}/${preferring.length} preferring a2 ran there under contention (checks ${checkMs.toFixed(0)} ms)`,
    )
  })

  it('aborts a hanging attempt at its timeout, retries it on another agent, and refuses the late complete', async () => {
    const [a, b, c] = await start([{}, {}, {}])
    // Assigned to b (preferred), which runs no worker yet; c takes it over with an explicit claim.
    const task = await a.tasks.submit({
      type: 'hang',
      constraints: { timeout: 300, preferredAgents: ['a1'] },
    })
    // The attempt ends on c's own clock: the timeout less the drift margin (50 ms) after the claim was sent,
    // which is before the leader times it out; the task fails (and is retried) at the leader's timeout.
    const claimedAt = performance.now()
    const claimed = await c.tasks.claim(task.id)
    expect(claimed.attempt).toBe(1)
    // A handler that hangs until its signal aborts (or the test gives up on it).
    const hang = async (work: ClaimedTask): Promise<unknown> =>
      new Promise((_, reject) => {
        work.signal.addEventListener('abort', () => reject(work.signal.reason))
        setTimeout(() => reject(new Error('never aborted')), 5000)
      })
    await expect(hang(claimed)).rejects.toMatchObject({ name: 'StaleAttemptError' })
    const abortedAfter = performance.now() - claimedAt
    expect(abortedAfter).toBeGreaterThanOrEqual(250)
    await expect(c.tasks.complete(task.id, 'late')).rejects.toMatchObject({ name: 'StaleAttemptError' })
    await until(async () => (await a.tasks.status(task.id)).state !== 'running')
    expect(await a.tasks.status(task.id)).toMatchObject({
      state: 'failed',
      attempt: 1,
      error: 'attempt 1 timed out after 300 ms',
    })

    const ran: string[] = []
    worker(b, async work => {
      ran.push(work.id)
      return 'done'
    })
    await until(async () => (await a.tasks.status(task.id)).state === 'completed')
    expect(await c.tasks.status(task.id)).toMatchObject({ attempt: 2, assignee: b.id, result: 'done' })
    expect(ran).toEqual([task.id])
    await expect(c.tasks.complete(task.id, 'late')).rejects.toMatchObject({ name: 'StaleAttemptError' })
    expect((await a.tasks.status(task.id)).result).toBe('done')
    console.log(`timed-out attempt aborted ${abortedAfter.toFixed(0)} ms after its claim (timeout 300 ms)`)
  })

  it('expires a task at its deadline, aborting the attempt that runs it', async () => {
    const [a, b] = await start([{}, {}])
    const waiting = await a.tasks.submit({ type: 'late', deadline: new Date(Date.now() + 200) })
    const running = await a.tasks.submit({ type: 'late', deadline: new Date(Date.now() + 300) })
    expect(running.deadline).toBeInstanceOf(Date)
    const claimed = await b.tasks.claim(running.id)
    await until(() => claimed.signal.aborted, 5000)
    expect(claimed.signal.reason).toMatchObject({ name: 'StaleAttemptError' })
    expect(await a.tasks.status(running.id)).toMatchObject({ state: 'expired', attempt: 1 })
    expect(await a.tasks.status(waiting.id)).toMatchObject({ state: 'expired', attempt: 0 })
    await expect(b.tasks.complete(running.id, 'too late')).rejects.toMatchObject({
      name: 'StaleAttemptError',
    })
    await expect(b.tasks.claim(waiting.id)).rejects.toMatchObject({ name: 'NotClaimableError' })
  })

  it('passes the signal to a worker handler, which every timeout aborts until the task is dead', async () => {
    const [a] = await start([{}])
    const processor = worker(a, async work => {
      await new Promise((_, reject) =>
        work.signal.addEventListener('abort', () => reject(work.signal.reason)),
      )
    })
    const errors: unknown[] = []
    on(processor, 'error', ({ error }) => errors.push(error))
    const task = await a.tasks.submit({ type: 'hang', constraints: { timeout: 200, maxRetries: 1 } })
    await until(async () => (await a.tasks.status(task.id)).state === 'dead')
    expect(await a.tasks.status(task.id)).toMatchObject({
      attempt: 2,
      error: 'attempt 2 timed out after 200 ms',
    })
    // Each aborted handler's fail() came from an attempt that was no longer current.
    await until(() => errors.length === 2)
    expect(errors).toEqual([
      expect.objectContaining({ name: 'StaleAttemptError' }),
      expect.objectContaining({ name: 'StaleAttemptError' }),
    ])
  })

  it('settles a worker attempt through lost answers: a complete is sent again until the cluster answers', async () => {
    const [a] = await start([{}])
    const tasks = a.tasks as Tasks
    const complete = tasks.completeAttempt.bind(tasks)
    let calls = 0
    // First answer lost after the complete committed, second lost before it was sent (a broken stream):
    // as in a failover.
    tasks.completeAttempt = async (task, result, signal) => {
      calls++
      if (calls === 1) await complete(task, result, signal)
      if (calls === 1) throw new NoLeaderError('answer lost')
      if (calls === 2) throw new Error('stream reset')
      return complete(task, result, signal)
    }
    const processor = worker(a, async () => 'ok')
    const events: string[] = []
    for (const type of ['completed', 'failed', 'error'] as const) on(processor, type, () => events.push(type))
    const first = await a.tasks.submit({ type: 'job' })
    await until(() => events.length === 1)
    expect(events).toEqual(['completed'])
    expect(await a.tasks.status(first.id)).toMatchObject({ state: 'completed', attempt: 1, result: 'ok' })
    calls = 1 // the next one: lost before it was sent, then delivered
    const second = await a.tasks.submit({ type: 'job' })
    await until(() => events.length === 2)
    expect(events).toEqual(['completed', 'completed'])
    expect(await a.tasks.status(second.id)).toMatchObject({ state: 'completed', attempt: 1, result: 'ok' })
  })

  it('keeps to its concurrency, retries failed handlers, and close() waits for running handlers', async () => {
    const [a] = await start([{ concurrency: 10 }])
    let running = 0
    let most = 0
    let calls = 0
    const finished: string[] = []
    const processor = worker(
      a,
      async work => {
        calls++
        running++
        most = Math.max(most, running)
        await new Promise(resolve => setTimeout(resolve, 40))
        running--
        if (work.payload.fail === true && work.attempt === 1) throw new Error('first attempt fails')
        finished.push(work.id)
        return { attempt: work.attempt }
      },
      2,
    )
    const ids: string[] = []
    for (let i = 0; i < 6; i++)
      ids.push((await a.tasks.submit({ type: 'job', payload: { fail: i === 0 } })).id)
    await until(async () => (await a.tasks.status(ids[0])).state === 'completed', 5000)
    await until(() => finished.length === 6)
    expect(most).toBe(2)
    expect(calls).toBe(7)
    const retried = await a.tasks.status(ids[0])
    expect(retried).toMatchObject({ state: 'completed', attempt: 2, result: { attempt: 2 } })
    expect(retried.error).toBeUndefined()

    const slow = await a.tasks.submit({ type: 'job', payload: {} })
    await until(() => running === 1)
    const closing = processor.close()
    await closing
    expect(running).toBe(0)
    expect((await a.tasks.status(slow.id)).state).toBe('completed')
    // A closed worker claims nothing more.
    const after = await a.tasks.submit({ type: 'job' })
    await new Promise(resolve => setTimeout(resolve, 200))
    expect((await a.tasks.status(after.id)).state).toBe('assigned')
  })
})
