/**
 * conclave's metrics of real in-process agents, scraped over HTTP from `/metrics` as Prometheus would:
 * plausible values that move with what the cluster does; and, embedded in a libp2p node built with
 * `metrics`, libp2p's metrics and conclave's (storage timings included) in one registry.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Libp2p } from '@libp2p/interface'
import { defaultLogger } from '@libp2p/logger'
import { prometheusMetrics } from '@libp2p/prometheus-metrics'
import { Registry } from 'prom-client'
import { afterAll, describe, expect, it } from 'vitest'
import { conclave, createAgent } from '../../src/agent/create-agent.ts'
import type { ConclaveService } from '../../src/agent/service.ts'
import type { Agent } from '../../src/api.ts'
import { InvalidArgumentError } from '../../src/errors.ts'
import { enableMetrics } from '../../src/metrics/conclave-metrics.ts'
import { listenMetrics, type MetricsServer } from '../../src/metrics/server.ts'
import { timedStorage } from '../../src/metrics/storage-timing.ts'
import { createConclaveLibp2p } from '../../src/net/libp2p-node.ts'
import { SqliteRaftStorage } from '../../src/storage/sqlite-storage.ts'
import { sample } from './prometheus-text.ts'

const agents: Agent[] = []
const nodes: Libp2p[] = []
const servers: MetricsServer[] = []
const dataRoot = mkdtempSync(join(tmpdir(), 'conclave-metrics-'))

afterAll(async () => {
  await Promise.all(servers.map(server => server.close()))
  await Promise.all(agents.map(agent => agent.stop()))
  await Promise.all(nodes.map(node => node.stop()))
  rmSync(dataRoot, { recursive: true, force: true })
})

async function until(check: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not met in time')
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}

/** A scrape of `server`, and one sample out of it (which must be there). */
async function scrape(server: MetricsServer): Promise<string> {
  const response = await fetch(server.url)
  expect(response.status).toBe(200)
  expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/)
  return response.text()
}

function value(text: string, name: string, labels: Record<string, string> = {}): number {
  const found = sample(text, name, labels)
  if (found === undefined) throw new Error(`no sample ${name} ${JSON.stringify(labels)} in the scrape`)
  return found
}

describe('metrics of real agents', () => {
  it('a scraped agent reports its term, a commit index that rises with writes, held locks and proposals', async () => {
    for (let i = 0; i < 3; i++) agents.push(await createAgent({ name: `metrics${i}`, transport: 'memory' }))
    await agents[0].join({ voters: 3 })
    for (const agent of agents.slice(1)) await agent.join({ bootstrap: agents[0].multiaddrs() })
    const registry = new Registry()
    const metrics = prometheusMetrics({ registry, collectDefaultMetrics: false })({ logger: defaultLogger() })
    // A member that may or may not lead: what it reports must hold either way.
    const watched = agents[1]
    enableMetrics(watched, metrics)
    expect(() => enableMetrics(watched, metrics)).toThrow(InvalidArgumentError)
    const server = await listenMetrics({ registry })
    servers.push(server)
    await until(async () => value(await scrape(server), 'conclave_raft_voters') === 3)

    const before = await scrape(server)
    expect(value(before, 'conclave_raft_term')).toBeGreaterThanOrEqual(1)
    expect(value(before, 'conclave_raft_is_leader')).toBe(watched.isLeader() ? 1 : 0)
    expect(value(before, 'conclave_sessions')).toBeGreaterThanOrEqual(3)
    const commitBefore = value(before, 'conclave_raft_commit_index')
    expect(commitBefore).toBeGreaterThan(0)
    expect(value(before, 'conclave_raft_applied_index')).toBeLessThanOrEqual(commitBefore)

    for (let i = 0; i < 5; i++) await watched.consensus.propose(`metrics/${i}`, { i })
    await until(async () => value(await scrape(server), 'conclave_kv_keys') === 5, 2000)
    const afterWrites = await scrape(server)
    expect(value(afterWrites, 'conclave_raft_commit_index')).toBeGreaterThanOrEqual(commitBefore + 5)
    expect(value(afterWrites, 'conclave_kv_keys')).toBe(5)
    expect(value(afterWrites, 'conclave_proposals_total', { outcome: 'ok' })).toBeGreaterThanOrEqual(5)
    expect(value(afterWrites, 'conclave_proposal_duration_seconds_count', { command: 'put' })).toBe(5)
    const putSeconds = value(afterWrites, 'conclave_proposal_duration_seconds_sum', { command: 'put' })
    expect(putSeconds).toBeGreaterThan(0)
    expect(putSeconds).toBeLessThan(5)

    const lock = await watched.locks.acquire('metrics-lock', 10_000)
    // Levels of the state are re-read at most every 20 times a read's cost: fresh within milliseconds here.
    await until(async () => value(await scrape(server), 'conclave_locks_held') === 1, 2000)
    const held = await scrape(server)
    expect(value(held, 'conclave_locks_held')).toBe(1)
    expect(value(held, 'conclave_lock_waiters')).toBe(0)
    expect(value(held, 'conclave_lock_events_total', { event: 'granted' })).toBeGreaterThanOrEqual(1)
    // Someone else waits for it: one waiter, until the holder releases.
    const waiting = agents[2].locks.acquire('metrics-lock', 10_000)
    await until(async () => value(await scrape(server), 'conclave_lock_waiters') === 1)
    await lock.release()
    const second = await waiting
    await until(async () => {
      const text = await scrape(server)
      return value(text, 'conclave_lock_waiters') === 0 && value(text, 'conclave_locks_held') === 1
    })
    await second.release()
    await until(async () => value(await scrape(server), 'conclave_locks_held') === 0)

    const last = await scrape(server)
    expect(value(last, 'conclave_raft_leader_changes_total')).toBeGreaterThanOrEqual(1)
    expect(value(last, 'conclave_rpc_errors_total', { kind: 'call_failed' })).toBeGreaterThanOrEqual(0)
    expect(value(last, 'conclave_swim_messages_total', { kind: 'received' })).toBeGreaterThan(0)
    expect(value(last, 'conclave_tasks', { state: 'pending' })).toBe(0)
  })

  it('embedded in a node built with libp2p metrics: libp2p and conclave in one registry, with storage timings', async () => {
    const registry = new Registry()
    const storage = timedStorage(SqliteRaftStorage.open(join(dataRoot, 'embedded')))
    const node = await createConclaveLibp2p({
      transport: 'memory',
      metrics: prometheusMetrics({ registry, collectDefaultMetrics: false }),
      services: { conclave: conclave({ name: 'embedded', storage, snapshotEntries: 20 }) },
    })
    nodes.push(node)
    const service = (node as unknown as Libp2p<{ conclave: ConclaveService }>).services.conclave
    enableMetrics(node, node.metrics!)
    const server = await listenMetrics({ registry })
    servers.push(server)
    await service.join({})
    for (let i = 0; i < 30; i++) await service.consensus.propose(`embedded/${i}`, i)
    const text = await scrape(server)
    // libp2p's own, from the same registry.
    expect(text).toMatch(/^# TYPE libp2p_\w+ /m)
    expect(value(text, 'conclave_raft_term')).toBeGreaterThanOrEqual(1)
    expect(value(text, 'conclave_raft_is_leader')).toBe(1)
    // Every write fsync'd by SQLite, each timed.
    const appends = value(text, 'conclave_storage_write_duration_seconds_count', { op: 'append' })
    expect(appends).toBeGreaterThanOrEqual(30)
    const appendSeconds = value(text, 'conclave_storage_write_duration_seconds_sum', { op: 'append' })
    expect(appendSeconds).toBeGreaterThan(0)
    expect(appendSeconds / appends).toBeLessThan(0.5)
    // 30 writes and more past 20 entries per snapshot: at least one compaction.
    expect(value(text, 'conclave_snapshots_total', { source: 'taken' })).toBeGreaterThanOrEqual(1)
    expect(value(text, 'conclave_snapshot_size_bytes')).toBeGreaterThan(100)
  })

  it("createAgent({ metrics }): the agent registers its own, storage timings included, beside libp2p's", async () => {
    await expect(createAgent({ transport: 'memory', metrics: 'prometheus' as never })).rejects.toThrow(
      InvalidArgumentError,
    )
    const registry = new Registry()
    const agent = await createAgent({
      name: 'with-metrics',
      transport: 'memory',
      dataDir: join(dataRoot, 'with-metrics'),
      metrics: prometheusMetrics({ registry, collectDefaultMetrics: false }),
    })
    agents.push(agent)
    const server = await listenMetrics({ registry })
    servers.push(server)
    await agent.join({})
    for (let i = 0; i < 3; i++) await agent.consensus.propose(`with-metrics/${i}`, i)
    const text = await scrape(server)
    expect(text).toMatch(/^# TYPE libp2p_\w+ /m)
    expect(value(text, 'conclave_raft_is_leader')).toBe(1)
    expect(value(text, 'conclave_proposal_duration_seconds_count', { command: 'put' })).toBe(3)
    expect(
      value(text, 'conclave_storage_write_duration_seconds_count', { op: 'append' }),
    ).toBeGreaterThanOrEqual(3)
  })
})
