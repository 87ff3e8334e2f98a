import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { Agent } from '../../src/index.ts'
import { createAgent } from '../../src/index.ts'
import { cli, RunningCli, until } from './helpers.ts'

// `conclave worker` and the task commands as child processes, against agents in this process on loopback TCP.
let agents: Agent[]
let peers: string
const running: RunningCli[] = []

beforeAll(async () => {
  agents = [await createAgent({ name: 'w0' }), await createAgent({ name: 'w1' })]
  await agents[0].join({})
  await agents[1].join({ bootstrap: agents[0].multiaddrs() })
  await until(
    async () => (await agents[0].members()).filter(member => member.status === 'alive').length === 2,
  )
  peers = `${agents[0].multiaddrs()[0]},${agents[1].multiaddrs()[0]}`
}, 60_000)

afterEach(async () => {
  for (const process of running.splice(0)) {
    process.kill('SIGKILL')
    await process.exited
  }
})

afterAll(async () => {
  await Promise.all((agents ?? []).map(agent => agent.stop()))
})

function start(args: string[]): RunningCli {
  const process = new RunningCli(args)
  running.push(process)
  return process
}

const status = async (id: string) => agents[0].tasks.status(id)

describe('conclave worker and the task commands', () => {
  it('prints usage for --help of the worker and the task commands', async () => {
    const commands = [['worker'], ['task', 'list'], ['task', 'cancel'], ['task', 'watch'], ['task', 'submit']]
    const results = await Promise.all(commands.map(command => cli([...command, '--help'])))
    results.forEach((result, index) => {
      const name = ['conclave', ...commands[index]].join(' ')
      expect(result.code, name).toBe(0)
      expect(result.stdout.startsWith(`Usage: ${name}`), name).toBe(true)
    })
    expect(results[0].stdout).toContain('CONCLAVE_TASK_PAYLOAD')
    expect(results[4].stdout).toContain('--depends-on')
    expect(results[4].stdout).toContain('--cron')
    // A worker needs a command; --concurrency is bounded.
    expect((await cli(['worker', '--peer', peers])).code).toBe(2)
    expect((await cli(['worker', '--concurrency', '0', '--peer', peers, '--', 'true'])).code).toBe(2)
  }, 60_000)

  it('runs each task as a command: payload on stdin and in the environment, result from stdout, stderr as the error', async () => {
    // Nothing runs tasks yet: `status --wait` says what the task waits for.
    const submitted = await cli([
      'task',
      'submit',
      'echo',
      '--id',
      'e1',
      '--payload',
      '{"n":7}',
      '--peer',
      peers,
    ])
    expect(submitted.code).toBe(0)
    const waiting = start(['task', 'status', 'e1', '--wait', '--peer', peers])
    await until(() => waiting.stderr.includes('waiting: e1 is pending: no agent running a worker'))
    const listed = await cli([
      'task',
      'list',
      '--state',
      'pending',
      '--type',
      'echo',
      '--json',
      '--peer',
      peers,
    ])
    expect(JSON.parse(listed.stdout).tasks.map((task: { id: string }) => task.id)).toEqual(['e1'])
    const badState = await cli(['task', 'list', '--state', 'sleeping', '--peer', peers])
    expect(badState.code).toBe(2)

    const watch = start([
      'task',
      'watch',
      '--type',
      'echo',
      '--json',
      '--from-revision',
      '1',
      '--peer',
      peers,
    ])
    const echo = start([
      'worker',
      '--type',
      'echo',
      '--concurrency',
      '2',
      '--peer',
      peers,
      '--',
      'sh',
      '-c',
      'printf \'{"id":"%s","attempt":%s,"stdin":%s,"env":%s}\' "$CONCLAVE_TASK_ID" "$CONCLAVE_TASK_ATTEMPT" "$(cat)" "$CONCLAVE_TASK_PAYLOAD"',
    ])
    expect((await waiting.exited).code).toBe(0)
    expect(waiting.lines.join('\n')).toMatch(/^e1: completed, attempt 1, assignee w[01] \(/)
    expect(await status('e1')).toMatchObject({
      state: 'completed',
      result: { id: 'e1', attempt: 1, stdin: { n: 7 }, env: { n: 7 } },
    })
    await echo.line(/^completed e1 attempt 1$/)

    const failing = start([
      'worker',
      '--type',
      'broken',
      '--peer',
      peers,
      '--',
      'sh',
      '-c',
      'echo "some noise" >&2; echo "disk full" >&2; exit 3',
    ])
    await cli(['task', 'submit', 'broken', '--id', 'b1', '--max-retries', '0', '--peer', peers])
    const ended = await cli(['task', 'status', 'b1', '--wait', '--peer', peers])
    expect(ended.code).toBe(1)
    expect(await status('b1')).toMatchObject({ state: 'dead', error: 'disk full' })
    await failing.line(/^failed b1 attempt 1: disk full$/)

    // The watch saw e1's transitions, once each, in order.
    await watch.line(/"taskId":"e1".*"type":"completed"|"type":"completed".*"taskId":"e1"/)
    const e1 = watch.lines
      .map(line => JSON.parse(line))
      .filter(event => event.taskId === 'e1')
      .map(event => event.type)
    expect(e1).toEqual(['submitted', 'started', 'completed'])
  }, 60_000)

  it('waits for parents and start times, and cancels a running task by stopping its command', async () => {
    await cli(['task', 'submit', 'slow', '--id', 'parent', '--peer', peers])
    const child = await cli([
      'task',
      'submit',
      'echo',
      '--id',
      'child',
      '--depends-on',
      'parent',
      '--peer',
      peers,
    ])
    expect(child.code).toBe(0)
    const later = new Date(Date.now() + 60 * 60_000).toISOString()
    await cli(['task', 'submit', 'echo', '--id', 'later', '--run-at', later, '--peer', peers])
    expect(await status('later')).toMatchObject({ state: 'waiting' })
    const childWait = start(['task', 'status', 'child', '--wait', '--peer', peers])
    await until(() =>
      childWait.stderr.includes('waiting: child is waiting for task parent (pending) to complete'),
    )
    const laterStatus = await cli(['task', 'status', 'later', '--peer', peers])
    expect(laterStatus.stdout).toMatch(/^later: waiting/)

    const slow = start(['worker', '--type', 'slow', '--peer', peers, '--', 'sh', '-c', 'sleep 30; echo 1'])
    await until(async () => (await status('parent')).state === 'running')
    const cancelled = await cli(['task', 'cancel', 'parent', '--reason', 'no longer needed', '--peer', peers])
    expect(cancelled.code).toBe(0)
    expect(cancelled.stdout).toMatch(/^parent: cancelled/)
    await slow.line(/^stopped parent attempt 1/)
    expect(await status('parent')).toMatchObject({ state: 'cancelled', cancelReason: 'no longer needed' })
    // Its child is cancelled with it, naming it.
    expect((await childWait.exited).code).toBe(1)
    expect((await status('child')).cancelReason).toMatch(/parent/)
    await cli(['task', 'cancel', 'later', '--peer', peers])
    const usage = await cli(['task', 'submit', 'x', '--every', '1s', '--cron', '* * * * *', '--peer', peers])
    expect(usage.code).toBe(2)
  }, 60_000)
})
