import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import type { HostStatus } from '../../scripts/agent-host.ts'
import { AgentHost } from '../../scripts/lib/hosts.ts'
import type { TaskStatus } from '../../src/index.ts'
import { RunningCli } from '../cli/helpers.ts'

// Contract v0.2 task features across a kill -9 of the leader: agents as real processes on loopback TCP.
const dataRoot = mkdtempSync(join(tmpdir(), 'conclave-tasks-v02-'))
const hosts: AgentHost[] = []
const clients: RunningCli[] = []

afterEach(async () => {
  for (const client of clients.splice(0)) {
    client.kill('SIGKILL')
    await client.exited
  }
  await Promise.all(hosts.splice(0).map(host => host.stop()))
})
afterAll(() => rmSync(dataRoot, { recursive: true, force: true }))

async function cluster(prefix: string): Promise<AgentHost[]> {
  const started = await Promise.all(
    [0, 1, 2].map(async i => {
      const host = await AgentHost.spawn({
        name: `${prefix}${i}`,
        dataDir: join(dataRoot, `${prefix}${i}`),
        concurrency: 8,
        sessionTtlMs: 2000,
        tickMs: 20,
      })
      hosts.push(host)
      return host
    }),
  )
  await started[0].request('join', {})
  for (const host of started.slice(1)) await host.request('join', { bootstrap: started[0].addrs, voters: 3 })
  await until(async () => ((await started[0].request('status', {})) as HostStatus).voters === 3)
  return started
}

async function leaderOf(group: AgentHost[]): Promise<AgentHost> {
  let leader: AgentHost | undefined
  await until(async () => {
    for (const host of group) {
      if (host.alive && ((await host.request('status', {})) as HostStatus).isLeader) leader = host
    }
    return leader !== undefined
  })
  return leader!
}

async function until(check: () => Promise<boolean> | boolean, ms = 30_000): Promise<void> {
  const end = Date.now() + ms
  for (;;) {
    try {
      if (await check()) return
    } catch {}
    if (Date.now() > end) throw new Error('condition not met in time')
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}

const peersOf = (group: AgentHost[]) => group.map(host => host.addrs[0]).join(',')

describe('tasks v0.2 across a leader kill -9', () => {
  it('a repeat every 1 s creates each slot’s occurrence once, before and after the leader dies', async () => {
    const group = await cluster('rp')
    for (const host of group) await host.request('startWorker', { durationMs: 5 })
    const leader = await leaderOf(group)
    const survivors = group.filter(host => host !== leader)
    await survivors[0].request('submitTasks', {
      tasks: [{ id: 'tick', type: 'tick', repeat: { every: 1000 } }],
    })
    const occurrences = async (): Promise<TaskStatus[]> =>
      (await survivors[0].request('taskList', { type: 'tick' })) as TaskStatus[]
    await until(async () => (await occurrences()).length >= 3)
    leader.signal('SIGKILL')
    await leader.exit
    const before = (await occurrences()).length
    await until(async () => (await occurrences()).length >= before + 3, 40_000).catch(async err => {
      const now = await occurrences()
      throw new Error(`${err}: ${before} occurrences before the kill, ${now.length} after`)
    })
    const seen = await occurrences()
    const slots = seen.map(task => Number(task.id.slice('tick:'.length)))
    expect(seen.every(task => /^tick:\d+$/.test(task.id))).toBe(true)
    // Distinct slots, in order, on the 1 s grid of the schedule.
    expect(new Set(slots).size).toBe(slots.length)
    expect([...slots].sort((x, y) => x - y)).toEqual(slots)
    for (const slot of slots) expect((slot - slots[0]) % 1000).toBe(0)
    // Each occurrence ran to completion once (one retried if it ran on the killed leader).
    // The occurrences seen so far (the newest may have just been created) all complete; later ones do not matter.
    const settledIds = new Set(seen.slice(0, -1).map(task => task.id))
    const settled = async () => (await occurrences()).filter(task => settledIds.has(task.id))
    await until(async () => (await settled()).every(task => task.state === 'completed'), 30_000).catch(
      async err => {
        const now = await settled()
        // Whether the killed leader holds it tells a lost session expiry from a lost orphan on a survivor.
        throw new Error(
          `${err}: ${JSON.stringify(now.filter(t => t.state !== 'completed'))}; killed leader ${leader.addrs[0]}`,
        )
      },
    )
    const finished = await settled()
    expect(finished).toHaveLength(settledIds.size)
    for (const task of finished) expect(task.attempt, task.id).toBeLessThanOrEqual(2)
    expect(finished.filter(task => task.attempt === 2).length).toBeLessThanOrEqual(1)
  }, 90_000)

  it('a watch opened before the leader dies sees every transition of 500 tasks once, in order', async () => {
    const group = await cluster('wt')
    const leader = await leaderOf(group)
    const survivors = group.filter(host => host !== leader)
    // The watch talks to the leader first, and must move on by itself.
    const watch = new RunningCli([
      'task',
      'watch',
      '--type',
      'bulk',
      '--json',
      '--from-revision',
      '1',
      '--timeout',
      '5s',
      '--peer',
      [leader, ...survivors].map(host => host.addrs[0]).join(','),
    ])
    clients.push(watch)
    for (const host of group) await host.request('startWorker', { durationMs: 20, concurrency: 4 })
    const ids = Array.from({ length: 500 }, (_, i) => `bulk-${i}`)
    const submitting = survivors[0].request('submitTasks', { tasks: ids.map(id => ({ id, type: 'bulk' })) })
    const completedLines = () => watch.lines.filter(line => line.includes('"type":"completed"')).length
    await until(() => completedLines() >= 100)
    leader.signal('SIGKILL')
    await leader.exit
    await submitting.catch(() => {})
    await until(async () => {
      const statuses = (await survivors[0].request('taskStatus', { ids })) as TaskStatus[]
      return statuses.every(status => status.state === 'completed')
    }, 60_000).catch(async err => {
      const statuses = (await survivors[0].request('taskStatus', { ids })) as TaskStatus[]
      const stuck = statuses.filter(status => status.state !== 'completed')
      const logs = await Promise.all(survivors.map(host => host.request('workerLog', {})))
      const about = logs.map(log =>
        (log as { taskId: string }[]).filter(entry => stuck.some(s => s.id === entry.taskId)),
      )
      throw new Error(
        `${stuck.length} not completed, e.g. ${JSON.stringify(stuck.slice(0, 3))}; leader was ${leader.id}; ` +
          `survivors ${survivors.map(host => host.id).join(' ')} logged ${JSON.stringify(about)}: ${err}`,
      )
    })
    await until(() => completedLines() >= 500, 30_000).catch(err => {
      throw new Error(`watch saw ${completedLines()} completions; stderr ${watch.stderr}: ${err}`)
    })
    expect(watch.stderr).toMatch(/lost .* continuing with/)

    const live = watch.lines.map(line => JSON.parse(line))
    const revisions = live.map(event => event.revision)
    expect(new Set(revisions).size).toBe(revisions.length)
    expect([...revisions].sort((x, y) => x - y)).toEqual(revisions)
    const byTask = new Map<string, string[]>()
    for (const event of live) byTask.set(event.taskId, [...(byTask.get(event.taskId) ?? []), event.type])
    expect(byTask.size).toBe(500)
    for (const [id, types] of byTask) {
      expect(types[0], id).toBe('submitted')
      expect(types.at(-1), id).toBe('completed')
      expect(
        types.filter(type => type === 'completed'),
        id,
      ).toHaveLength(1)
    }
    // The same changes, replayed afterwards from a survivor's history: nothing missed, nothing added.
    const replay = new RunningCli([
      'task',
      'watch',
      '--type',
      'bulk',
      '--json',
      '--from-revision',
      '1',
      '--peer',
      peersOf(survivors),
    ])
    clients.push(replay)
    await until(() => replay.lines.length >= live.length, 30_000)
    const replayed = replay.lines.slice(0, live.length).map(line => JSON.parse(line))
    expect(replayed.map(event => [event.revision, event.taskId, event.type])).toEqual(
      live.map(event => [event.revision, event.taskId, event.type]),
    )
  }, 120_000)
})
