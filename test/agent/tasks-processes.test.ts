import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import type { HostStatus, HostWorkerEntry } from '../../scripts/agent-host.ts'
import { AgentHost } from '../../scripts/lib/hosts.ts'
import type { TaskStatus } from '../../src/index.ts'

// Agents as real processes on loopback TCP with durable storage, killed with real signals.
const dataRoot = mkdtempSync(join(tmpdir(), 'conclave-tasks-'))
const hosts: AgentHost[] = []
const timing = { sessionTtlMs: 2000, tickMs: 20 }

afterEach(async () => {
  await Promise.all(hosts.splice(0).map(host => host.stop()))
})
afterAll(() => rmSync(dataRoot, { recursive: true, force: true }))

async function cluster(size: number, prefix: string): Promise<AgentHost[]> {
  const started = await Promise.all(
    Array.from({ length: size }, async (_, i) => {
      const host = await AgentHost.spawn({
        name: `${prefix}${i}`,
        dataDir: join(dataRoot, `${prefix}${i}`),
        concurrency: 4,
        ...timing,
      })
      hosts.push(host)
      return host
    }),
  )
  await started[0].request('join', {})
  for (const host of started.slice(1)) await host.request('join', { bootstrap: started[0].addrs, voters: 3 })
  await until(async () => ((await started[0].request('status', {})) as HostStatus).voters === size)
  return started
}

async function until(check: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms
  for (;;) {
    try {
      if (await check()) return
    } catch {}
    if (Date.now() > end) throw new Error('condition not met in time')
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}

async function workerLog(host: AgentHost): Promise<HostWorkerEntry[]> {
  return (await host.request('workerLog', {})) as HostWorkerEntry[]
}

/** Attempts started in `log` that have no outcome there yet. */
function inFlight(log: HostWorkerEntry[]): HostWorkerEntry[] {
  const ended = new Set(log.filter(entry => entry.event !== 'started').map(e => `${e.taskId}/${e.attempt}`))
  return log.filter(entry => entry.event === 'started' && !ended.has(`${entry.taskId}/${entry.attempt}`))
}

describe('tasks across agent processes', () => {
  it('finishes the tasks of the leader killed with SIGKILL mid-task elsewhere, none twice to completion', async () => {
    const group = await cluster(3, 'tk')
    let leader: AgentHost | undefined
    await until(async () => {
      for (const host of group) {
        if (((await host.request('status', {})) as HostStatus).isLeader) leader = host
      }
      return leader !== undefined
    })
    // The leader dies: its attempts, its housekeeping and every in-flight proposal must survive that.
    const victim = leader!
    const survivors = group.filter(host => host !== victim)
    const observer = survivors[0]
    for (const host of group) await host.request('startWorker', { durationMs: 300 })
    // Half the tasks prefer the victim, so that it surely runs some and queues others when it dies.
    const ids = Array.from({ length: 40 }, (_, i) => `k${i}`)
    const tasks = ids.map((id, i) => ({
      id,
      type: 'work',
      constraints: i % 2 === 0 ? { preferredAgents: [victim.id] } : {},
    }))
    await observer.request('submitTasks', { tasks })

    let victimLog: HostWorkerEntry[] = []
    await until(async () => {
      victimLog = await workerLog(victim)
      return inFlight(victimLog).length >= 2
    })
    const running = inFlight(victimLog)
    const killedAt = Date.now()
    victim.signal('SIGKILL')
    await victim.exit

    let statuses: TaskStatus[] = []
    await until(async () => {
      statuses = (await observer.request('taskStatus', { ids })) as TaskStatus[]
      return statuses.every(status => status.state === 'completed')
    }, 30_000).catch(async err => {
      // Say what is stuck, and what the workers did with it: a failure here is a liveness bug to chase.
      const stuck = statuses.filter(status => status.state !== 'completed')
      const logs = await Promise.all(survivors.map(host => workerLog(host)))
      const seen = logs.flat().filter(entry => stuck.some(status => status.id === entry.taskId))
      throw new Error(
        `not all completed: ${JSON.stringify(stuck)} (victim ${victim.id}); logs: ${JSON.stringify(seen)}`,
        { cause: err },
      )
    })
    const recovered = Date.now() - killedAt
    const byId = new Map(statuses.map(status => [status.id, status]))

    // The attempts cut short by the kill finished on a survivor, in a later attempt.
    for (const entry of running) {
      const status = byId.get(entry.taskId)!
      expect(status.assignee).not.toBe(victim.id)
      expect(status.attempt).toBeGreaterThan(entry.attempt)
    }
    // No task completed twice: every accepted completion in every log is the one the state holds.
    const survivorLogs = await Promise.all(survivors.map(host => workerLog(host)))
    const completions = new Map<string, HostWorkerEntry[]>()
    for (const entry of [...victimLog, ...survivorLogs.flat()]) {
      if (entry.event !== 'completed') continue
      completions.set(entry.taskId, [...(completions.get(entry.taskId) ?? []), entry])
    }
    for (const id of ids) {
      const accepted = completions.get(id) ?? []
      expect(accepted.length, id).toBeLessThanOrEqual(1)
      const status = byId.get(id)!
      if (status.assignee !== victim.id) {
        expect(accepted, id).toEqual([expect.objectContaining({ attempt: status.attempt })])
      }
    }
    // Every completion in the survivors' logs belongs to a survivor.
    for (const [i, log] of survivorLogs.entries()) {
      const survivorId = survivors[i].id
      for (const entry of log) {
        if (entry.event === 'completed') expect(byId.get(entry.taskId)!.assignee).toBe(survivorId)
      }
    }
    console.log(
      `kill -9 of the leader running ${running.length} attempts: all 40 tasks completed ${recovered} ms later, ` +
        `${running.length} of them retried elsewhere`,
    )
  })
})
