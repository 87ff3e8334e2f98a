import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import type { HostStatus } from '../../scripts/agent-host.ts'
import { AgentHost } from '../../scripts/lib/hosts.ts'
import type { TaskStatus } from '../../src/index.ts'
import { RunningCli, until } from './helpers.ts'

// `conclave worker` across a kill -9 of the agent it works through: agents as real processes.
const dataRoot = mkdtempSync(join(tmpdir(), 'conclave-worker-'))
const hosts: AgentHost[] = []
const workers: RunningCli[] = []

afterEach(async () => {
  for (const worker of workers.splice(0)) {
    worker.kill('SIGKILL')
    await worker.exited
  }
  await Promise.all(hosts.splice(0).map(host => host.stop()))
})
afterAll(() => rmSync(dataRoot, { recursive: true, force: true }))

describe('conclave worker across a crash of its agent', () => {
  it('the attempt on the killed agent is retried through another and completes once', async () => {
    const group = await Promise.all(
      ['v0', 'v1', 'v2'].map(async name => {
        const host = await AgentHost.spawn({
          name,
          dataDir: join(dataRoot, name),
          sessionTtlMs: 2000,
          tickMs: 20,
        })
        hosts.push(host)
        return host
      }),
    )
    await group[0].request('join', {})
    for (const host of group.slice(1)) await host.request('join', { bootstrap: group[0].addrs, voters: 3 })
    await until(async () => ((await group[0].request('status', {})) as HostStatus).voters === 3, 30_000)
    const statuses = await Promise.all(group.map(host => host.request('status', {}) as Promise<HostStatus>))
    // The worker talks to a follower first (the leader's crash is the leader tests' business), then another.
    const victim = group[statuses.findIndex(status => !status.isLeader)]
    const other = group.find(host => host !== victim)!
    const marks = join(dataRoot, 'marks')
    writeFileSync(marks, '')
    const worker = new RunningCli([
      'worker',
      '--timeout',
      '5s',
      '--peer',
      `${victim.addrs[0]},${other.addrs[0]}`,
      '--',
      'sh',
      '-c',
      `echo "start $CONCLAVE_TASK_ATTEMPT" >> ${marks}; sleep 4; echo "done $CONCLAVE_TASK_ATTEMPT" >> ${marks}; echo '{"ok":true}'`,
    ])
    workers.push(worker)
    await other.request('submitTasks', { tasks: [{ id: 'crash-1', type: 'job' }] })
    const lines = () =>
      readFileSync(marks, 'utf8')
        .split('\n')
        .filter(line => line !== '')
    await until(() => lines().includes('start 1'), 30_000)
    victim.signal('SIGKILL')
    await victim.exit

    const statusOf = async () =>
      ((await other.request('taskStatus', { ids: ['crash-1'] })) as TaskStatus[])[0]
    await until(async () => (await statusOf()).state === 'completed', 40_000)
    expect(await statusOf()).toMatchObject({ state: 'completed', attempt: 2, result: { ok: true } })
    // Attempt 1's command was stopped with its agent's loss; only attempt 2 finished.
    expect(lines()).toEqual(['start 1', 'start 2', 'done 2'])
    await worker.line(/^completed crash-1 attempt 2$/)
    expect(worker.lines.filter(line => line.startsWith('completed'))).toEqual(['completed crash-1 attempt 2'])
    expect(worker.stderr).toMatch(/lost .* continuing with/)
  }, 90_000)
})
