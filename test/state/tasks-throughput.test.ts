import { expect, it } from 'vitest'
import { encodeEnvelope } from '../../src/state/codec.ts'
import type { Command, RunTaskOp } from '../../src/state/commands.ts'
import { StateMachine } from '../../src/state/state-machine.ts'
import { taskSpec } from './helpers.ts'

const AGENTS = 10
const SLOTS = 10
const TASKS = 2_000

interface Measured {
  entries: number
  /** Time spent inside `apply` only (encoding and queries excluded). */
  elapsedNs: number
}

/** Opens a session for each of the `AGENTS` agents and registers it with `SLOTS` slots, untimed. */
function registerAgents(apply: (command: Command, timed: boolean) => unknown): void {
  for (let i = 0; i < AGENTS; i++) {
    const agentId = `agent-${i}`
    apply({ type: 'openSession', sessionId: `s-${i}`, agentId, ttlMs: 3_600_000 }, false)
    apply(
      {
        type: 'registerAgent',
        agentId,
        name: agentId,
        sessionId: `s-${i}`,
        addrs: [],
        capabilities: ['cpu'],
        labels: {},
        concurrency: SLOTS,
      },
      false,
    )
  }
}

/**
 * 10 agents of 10 slots; 2,000 tasks submitted at once (so 1,900 wait in the pending index), then every
 * agent claims and completes its best task until all are done: 6,000 task entries. With `blocked`, 2,000
 * more tasks that fit no agent wait the whole time.
 */
function run(blocked: boolean): Measured {
  const machine = new StateMachine()
  let index = 0
  let ts = 1_700_000_000_000
  const measured: Measured = { entries: 0, elapsedNs: 0 }
  const apply = (command: Command, timed = true) => {
    const data = encodeEnvelope({ ts: ts++, command })
    const started = process.hrtime.bigint()
    const output = machine.apply({ index: ++index, term: 1, data })
    if (timed) {
      measured.elapsedNs += Number(process.hrtime.bigint() - started)
      measured.entries++
    }
    return output
  }
  registerAgents(apply)
  if (blocked) {
    for (let i = 0; i < TASKS; i++) {
      apply(
        {
          type: 'submitTask',
          task: taskSpec(`gpu-${i}`, { constraints: { requiredCapabilities: ['gpu'] } }),
        },
        false,
      )
    }
  }
  for (let i = 0; i < TASKS; i++) {
    apply({
      type: 'submitTask',
      task: taskSpec(`task-${i}`, { priority: i % 3, constraints: { requiredCapabilities: ['cpu'] } }),
    })
  }
  let remaining = TASKS
  while (remaining > 0) {
    for (let i = 0; i < AGENTS; i++) {
      const agentId = `agent-${i}`
      const next = machine.bestTaskFor(agentId)
      if (next === undefined) continue
      const claimed = apply({ type: 'claimTask', taskId: next.id, agentId, sessionId: `s-${i}` }).result
      if (claimed.type !== 'taskClaimed') throw new Error(JSON.stringify(claimed))
      const { attempt, fencingToken } = claimed
      const done = apply({
        type: 'completeTask',
        taskId: next.id,
        attempt,
        fencingToken,
        result: { ok: true },
      })
      if (done.result.type !== 'taskState') throw new Error(JSON.stringify(done.result))
      remaining--
    }
  }
  expect(machine.pendingCount).toBe(blocked ? TASKS : 0)
  return measured
}

it('applies submit + claim + complete cycles for 2,000 tasks on 10 agents far faster than Raft commits', () => {
  run(false) // warm-up
  const plain = run(false)
  const blocked = run(true)
  const perSecond = (measured: Measured) => Math.round((measured.entries * 1e9) / measured.elapsedNs)
  const cycles = (measured: Measured) => Math.round((TASKS * 1e9) / measured.elapsedNs)
  console.log(
    `task entries: ${perSecond(plain)} entries/s (${cycles(plain)} submit+claim+complete cycles/s) with ` +
      `${TASKS} tasks on ${AGENTS} agents x ${SLOTS} slots; with ${TASKS} more tasks no agent can run waiting: ` +
      `${perSecond(blocked)} entries/s`,
  )
  expect(plain.entries).toBe(3 * TASKS)
  // Loose on purpose (shared 2-core machine); the log line carries the real figures.
  expect(perSecond(plain)).toBeGreaterThan(10_000)
  expect(perSecond(blocked)).toBeGreaterThan(10_000)
})

/**
 * Worker batches as agents send them (`runTasks`: each finished task's complete, then a `next`), with
 * `backlog` tasks waiting in the pending index throughout (submitted in `submitTasks` batches of 100).
 * Measures apply time per operation, and the leader's housekeeping query over that state.
 */
function runBatches(backlog: number): { nsPerOp: number; dueNs: number } {
  const machine = new StateMachine()
  let index = 0
  let ts = 1_700_000_000_000
  let elapsedNs = 0
  let ops = 0
  const apply = (command: Command, timed: boolean) => {
    const data = encodeEnvelope({ ts: ts++, command })
    const started = process.hrtime.bigint()
    const output = machine.apply({ index: ++index, term: 1, data })
    if (timed) elapsedNs += Number(process.hrtime.bigint() - started)
    return output.result
  }
  registerAgents(apply)
  for (let first = 0; first < backlog + TASKS; first += 100) {
    const tasks = Array.from({ length: Math.min(100, backlog + TASKS - first) }, (_, i) =>
      taskSpec(`task-${first + i}`, { priority: (first + i) % 3 }),
    )
    apply({ type: 'submitTasks', tasks }, false)
  }
  const running = new Map<string, { taskId: string; attempt: number; fencingToken: number }[]>()
  for (let done = 0; done < TASKS; ) {
    for (let i = 0; i < AGENTS && done < TASKS; i++) {
      const agentId = `agent-${i}`
      const finished = running.get(agentId) ?? []
      const batch: RunTaskOp[] = finished.map(attempt => ({ op: 'complete', ...attempt, result: null }))
      const nexts = Math.max(1, finished.length)
      for (let n = 0; n < nexts; n++) batch.push({ op: 'next' })
      const result = apply({ type: 'runTasks', agentId, sessionId: `s-${i}`, ops: batch }, true)
      if (result.type !== 'taskResults') throw new Error(JSON.stringify(result))
      ops += batch.length
      done += finished.length
      const claimed: { taskId: string; attempt: number; fencingToken: number }[] = []
      for (const answer of result.results) {
        if (answer.type === 'taskClaimed') {
          const { taskId, attempt, fencingToken } = answer
          claimed.push({ taskId, attempt, fencingToken })
        }
      }
      running.set(agentId, claimed)
    }
  }
  expect(machine.pendingCount).toBeGreaterThanOrEqual(backlog - AGENTS * SLOTS)
  const dueStarted = process.hrtime.bigint()
  for (let i = 0; i < 1000; i++) machine.dueExpiries(ts)
  const dueNs = Number(process.hrtime.bigint() - dueStarted) / 1000
  return { nsPerOp: elapsedNs / ops, dueNs }
}

it('costs the same per batched operation, and per housekeeping look, with 30,000 tasks waiting', () => {
  runBatches(200) // warm-up
  const small = runBatches(200)
  const large = runBatches(30_000)
  console.log(
    `batched task ops: ${Math.round(1e9 / small.nsPerOp)} ops/s with 200 tasks waiting, ` +
      `${Math.round(1e9 / large.nsPerOp)} ops/s with 30,000; housekeeping look ` +
      `${(small.dueNs / 1000).toFixed(1)} µs and ${(large.dueNs / 1000).toFixed(1)} µs`,
  )
  // A scan of the backlog per operation or per look makes the large case 10 to 100 times slower (the look
  // about 150 µs); loose bounds for a shared machine.
  expect(large.nsPerOp).toBeLessThan(small.nsPerOp * 4)
  expect(large.dueNs).toBeLessThan(25_000)
})
