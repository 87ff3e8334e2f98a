import { describe, expect, it } from 'vitest'
import { TaskBatcher } from '../../src/agent/api/tasks/batch.ts'
import type { Client } from '../../src/agent/node/client.ts'
import type { SessionKeeper } from '../../src/agent/node/session.ts'
import { AbortError, NoLeaderError } from '../../src/errors.ts'
import type { Command, RunTasksCommand, SubmitTasksCommand } from '../../src/state/commands.ts'
import type { CommandResult } from '../../src/state/results.ts'
import type { TaskSpec } from '../../src/state/task-spec.ts'
import { systemScheduler } from '../../src/time/system-scheduler.ts'

/** A client whose commits the test answers by hand (and that may ignore aborts), and a session that can lapse. */
/** `laterTimeoutMs`: the operation timeout of every call after the first (default: the same). */
function harness(operationTimeoutMs = 10_000, hearsAborts = true, laterTimeoutMs = operationTimeoutMs) {
  const sent: { command: Command; signal?: AbortSignal; answer(result: CommandResult): void }[] = []
  const session = { id: 's1', opened: 0 }
  let calls = 0
  const client = {
    deadline: () => performance.now() + (calls++ === 0 ? operationTimeoutMs : laterTimeoutMs),
    submit: (command: Command, signal?: AbortSignal) =>
      new Promise<CommandResult>((resolve, reject) => {
        if (hearsAborts) signal?.addEventListener('abort', () => reject(new AbortError()), { once: true })
        sent.push({ command, signal, answer: resolve })
      }),
  }
  const keeper = {
    get id() {
      return session.id
    },
    open: async () => {
      session.id = `s${++session.opened + 1}`
    },
    ended: () => {
      session.id = ''
    },
  }
  const batcher = new TaskBatcher({
    selfId: 'me',
    client: client as unknown as Client,
    session: keeper as unknown as SessionKeeper,
    scheduler: systemScheduler,
  })
  return { batcher, sent, session }
}

const spec = (id: string): TaskSpec => ({
  id,
  type: 't',
  priority: 0,
  payload: {},
  constraints: { requiredCapabilities: [], maxRetries: 3, timeout: 0 },
})

const turn = () => new Promise(resolve => setImmediate(resolve))

describe('task batcher', () => {
  it('sends the calls of one turn as one command, one batch at a time, and answers each for itself', async () => {
    const { batcher, sent } = harness()
    const first = [batcher.submit(spec('a'), 100), batcher.submit(spec('b'), 100)]
    const run = batcher.run({ op: 'next' }, 100)
    await turn()
    expect(sent.map(call => call.command.type)).toEqual(['submitTasks', 'runTasks'])
    expect((sent[0].command as SubmitTasksCommand).tasks.map(task => task.id)).toEqual(['a', 'b'])
    expect(sent[1].command).toEqual({
      type: 'runTasks',
      agentId: 'me',
      sessionId: 's1',
      ops: [{ op: 'next' }],
    })
    // While a batch is out, later calls wait and then leave together.
    const later = [batcher.submit(spec('c'), 100), batcher.submit(spec('d'), 100)]
    await turn()
    expect(sent).toHaveLength(2)
    sent[0].answer({
      type: 'taskResults',
      results: [
        { type: 'taskSubmitted', taskId: 'a', createdAt: 1 },
        { type: 'error', code: 'AlreadyExists', message: 'task b exists' },
      ],
    })
    expect(await first[0]).toMatchObject({ result: { type: 'taskSubmitted', taskId: 'a' }, retried: false })
    expect(await first[1]).toMatchObject({ result: { code: 'AlreadyExists' } })
    await turn()
    expect(sent).toHaveLength(3)
    expect((sent[2].command as SubmitTasksCommand).tasks.map(task => task.id)).toEqual(['c', 'd'])
    // An answer for the whole batch (not one per call) reaches every call.
    const whole: CommandResult = { type: 'error', code: 'InvalidCommand', message: 'unknown command type' }
    sent[2].answer(whole)
    for (const call of later) expect((await call).result).toEqual(whole)
    sent[1].answer({ type: 'taskResults', results: [{ type: 'noTask' }] })
    expect(await run).toEqual({ result: { type: 'noTask' }, sessionId: 's1', retried: false })
  })

  it('sends a batch refused for a lapsed session again, whole, under the new session', async () => {
    const { batcher, sent } = harness()
    const calls = [batcher.run({ op: 'claim', taskId: 'x' }, 100), batcher.run({ op: 'next' }, 100)]
    await turn()
    sent[0].answer({ type: 'error', code: 'SessionExpired', message: 'gone' })
    await until(() => sent.length === 2)
    const resent = sent[1].command as RunTasksCommand
    expect(resent.sessionId).toBe('s2')
    expect(resent.ops).toEqual((sent[0].command as RunTasksCommand).ops)
    sent[1].answer({
      type: 'taskResults',
      results: [{ type: 'taskClaimed', taskId: 'x', attempt: 1, fencingToken: 9 }, { type: 'noTask' }],
    })
    expect(await calls[0]).toMatchObject({ sessionId: 's2', retried: true, result: { fencingToken: 9 } })
    expect(await calls[1]).toMatchObject({ sessionId: 's2', retried: true, result: { type: 'noTask' } })
  })

  it('a call aborted while queued is never sent; one aborted after only stops waiting', async () => {
    const { batcher, sent } = harness()
    const controller = new AbortController()
    const queued = batcher.submit(spec('never'), 100, controller.signal)
    const kept = batcher.submit(spec('kept'), 100)
    controller.abort()
    await expect(queued).rejects.toBeInstanceOf(AbortError)
    await turn()
    expect((sent[0].command as SubmitTasksCommand).tasks.map(task => task.id)).toEqual(['kept'])
    const late = new AbortController()
    const waiting = batcher.submit(spec('late'), 100, late.signal)
    const check = expect(waiting).rejects.toBeInstanceOf(AbortError)
    sent[0].answer({
      type: 'taskResults',
      results: [{ type: 'taskSubmitted', taskId: 'kept', createdAt: 1 }],
    })
    await kept
    await turn()
    expect((sent[1].command as SubmitTasksCommand).tasks.map(task => task.id)).toEqual(['late'])
    late.abort()
    await check
  })

  it('bounds every call by the operation timeout from when it was made, queueing included', async () => {
    // The call behind has the later deadline: two equal ones would race (a timer late by a few ms under load
    // would find the second expired too, which is the case tested below with `deaf`).
    const { batcher, sent } = harness(80, true, 250)
    const stuck = batcher.run({ op: 'next' }, 100)
    await turn()
    const behindMade = performance.now()
    const behind = batcher.run({ op: 'next' }, 100)
    const behindCheck = expect(behind).rejects.toBeInstanceOf(NoLeaderError)
    // The batch out gets no answer: its call ends at its timeout, with the documented unknown outcome.
    await expect(stuck).rejects.toBeInstanceOf(NoLeaderError)
    expect(sent[0].signal?.aborted).toBe(true)
    // The call queued behind it goes next, with only what is left of its own timeout.
    await behindCheck
    expect(sent).toHaveLength(2)
    const behindLasted = performance.now() - behindMade
    expect(behindLasted).toBeGreaterThanOrEqual(250 - 5)
    expect(behindLasted).toBeLessThan(250 + 300)

    // A batch that outlives the timeouts of the calls queued behind it (its transport ignores the abort):
    // those are refused without being sent, so surely not applied.
    const deaf = harness(30, false)
    const slow = deaf.batcher.run({ op: 'next' }, 100)
    await turn()
    const late = deaf.batcher.run({ op: 'next' }, 100)
    const lateCheck = expect(late).rejects.toMatchObject({
      name: 'NoLeaderError',
      message: /did not take effect/,
    })
    await new Promise(resolve => setTimeout(resolve, 60))
    deaf.sent[0].answer({ type: 'taskResults', results: [{ type: 'noTask' }] })
    expect((await slow).result).toEqual({ type: 'noTask' })
    await lateCheck
    await turn()
    expect(deaf.sent).toHaveLength(1)
  })

  it('caps a batch by operations and bytes, always sending at least one', async () => {
    const { batcher, sent } = harness()
    const big = Array.from({ length: 3 }, (_, i) => batcher.submit(spec(`big${i}`), 600 * 1024))
    await turn()
    expect((sent[0].command as SubmitTasksCommand).tasks).toHaveLength(1)
    for (let i = 0; i < 3; i++) {
      sent[i].answer({
        type: 'taskResults',
        results: [{ type: 'taskSubmitted', taskId: `big${i}`, createdAt: 1 }],
      })
      await big[i]
      await turn()
    }
    expect(sent).toHaveLength(3)
    const many = Array.from({ length: 5000 }, () => batcher.run({ op: 'next' }, 10))
    await turn()
    expect((sent[3].command as RunTasksCommand).ops).toHaveLength(4096)
    sent[3].answer({ type: 'taskResults', results: Array.from({ length: 4096 }, () => ({ type: 'noTask' })) })
    await until(() => sent.length === 5)
    expect((sent[4].command as RunTasksCommand).ops).toHaveLength(904)
    sent[4].answer({ type: 'taskResults', results: Array.from({ length: 904 }, () => ({ type: 'noTask' })) })
    expect(await Promise.all(many)).toHaveLength(5000)
  })
})

async function until(check: () => boolean, ms = 2_000): Promise<void> {
  const end = Date.now() + ms
  while (!check()) {
    if (Date.now() > end) throw new Error('condition not met in time')
    await new Promise(resolve => setTimeout(resolve, 5))
  }
}
