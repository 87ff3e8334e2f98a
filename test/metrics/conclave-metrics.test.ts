/**
 * conclave's metrics over a scripted internals source, registered in libp2p's Prometheus `Metrics` on a
 * registry of the test's own, and read back in Prometheus' text format as a scrape would.
 */
import { readFileSync } from 'node:fs'
import type { Metrics } from '@libp2p/interface'
import { defaultLogger } from '@libp2p/logger'
import { prometheusMetrics } from '@libp2p/prometheus-metrics'
import { Registry } from 'prom-client'
import { beforeEach, expect, describe as group, it } from 'vitest'
import type { Agent } from '../../src/api.ts'
import { InvalidArgumentError } from '../../src/errors.ts'
import { enableMetrics, registerConclaveMetrics } from '../../src/metrics/conclave-metrics.ts'
import { describe, sample } from './prometheus-text.ts'
import { ScriptedInternals } from './scripted-internals.ts'

let registry: Registry
let metrics: Metrics
let internals: ScriptedInternals

beforeEach(() => {
  registry = new Registry()
  metrics = prometheusMetrics({ registry, collectDefaultMetrics: false })({ logger: defaultLogger() })
  internals = new ScriptedInternals()
})

const scrape = (): Promise<string> => registry.metrics()

group('conclave metrics', () => {
  it('reports Raft levels as the status says at each scrape', async () => {
    registerConclaveMetrics(metrics, internals)
    let text = await scrape()
    expect(sample(text, 'conclave_raft_term')).toBe(3)
    expect(sample(text, 'conclave_raft_commit_index')).toBe(10)
    expect(sample(text, 'conclave_raft_applied_index')).toBe(8)
    expect(sample(text, 'conclave_raft_apply_lag')).toBe(2)
    expect(sample(text, 'conclave_raft_last_index')).toBe(11)
    expect(sample(text, 'conclave_raft_is_leader')).toBe(1)
    expect(sample(text, 'conclave_raft_voters')).toBe(3)
    expect(describe(text, 'conclave_raft_term').type).toBe('gauge')
    internals.status = {
      ...internals.status!,
      role: 'follower',
      term: 4,
      commit: 20,
      applied: 20,
      leader: 'b',
    }
    text = await scrape()
    expect(sample(text, 'conclave_raft_term')).toBe(4)
    expect(sample(text, 'conclave_raft_commit_index')).toBe(20)
    expect(sample(text, 'conclave_raft_apply_lag')).toBe(0)
    expect(sample(text, 'conclave_raft_is_leader')).toBe(0)
    // Not a member yet: no status, zeros rather than a failed scrape.
    internals.status = undefined
    expect(sample(await scrape(), 'conclave_raft_term')).toBe(0)
  })

  it('counts sessions, keys, held locks, waiters and tasks by state, reading the state once per applied index', async () => {
    internals.stateJson = {
      sessions: [{}, {}, {}],
      kv: { entries: [['a'], ['b']] },
      locks: [
        { key: 'l1', holder: { sessionId: 's1' }, waiters: [{}, {}] },
        { key: 'l2', holder: { sessionId: 's2' }, waiters: [] },
      ],
      tasks: { tasks: [{ state: 'pending' }, { state: 'pending' }, { state: 'running' }, { state: 'dead' }] },
    }
    registerConclaveMetrics(metrics, internals)
    const text = await scrape()
    expect(internals.snapshotReads).toBe(1)
    expect(sample(text, 'conclave_sessions')).toBe(3)
    expect(sample(text, 'conclave_kv_keys')).toBe(2)
    expect(sample(text, 'conclave_locks_held')).toBe(2)
    expect(sample(text, 'conclave_lock_waiters')).toBe(2)
    expect(sample(text, 'conclave_tasks', { state: 'pending' })).toBe(2)
    expect(sample(text, 'conclave_tasks', { state: 'running' })).toBe(1)
    expect(sample(text, 'conclave_tasks', { state: 'dead' })).toBe(1)
    expect(sample(text, 'conclave_tasks', { state: 'completed' })).toBe(0)
    // The state changes only by applying entries: not read again while the applied index stays...
    await new Promise(resolve => setTimeout(resolve, 100))
    await scrape()
    expect(internals.snapshotReads).toBe(1)
    // ...and read again once it moves (after a pause of 20 times the last read's cost at most).
    internals.stateJson = { ...internals.stateJson, sessions: [{}] }
    internals.status = { ...internals.status!, applied: 9 }
    const end = Date.now() + 2000
    while (sample(await scrape(), 'conclave_sessions') !== 1 && Date.now() < end) {
      await new Promise(resolve => setTimeout(resolve, 5))
    }
    expect(sample(await scrape(), 'conclave_sessions')).toBe(1)
    expect(internals.snapshotReads).toBe(2)
  })

  it('takes the state sizes from stateCounts when the agent offers it, without reading the snapshot', async () => {
    const tasks = { pending: 7, assigned: 0, running: 2, completed: 0, failed: 0, dead: 0, expired: 0 }
    const counted = Object.assign(internals, {
      stateCounts: () => ({ sessions: 4, keys: 1000, locksHeld: 3, lockWaiters: 5, tasks }),
    })
    registerConclaveMetrics(metrics, counted)
    const text = await scrape()
    expect(sample(text, 'conclave_kv_keys')).toBe(1000)
    expect(sample(text, 'conclave_lock_waiters')).toBe(5)
    expect(sample(text, 'conclave_tasks', { state: 'pending' })).toBe(7)
    expect(internals.snapshotReads).toBe(0)
  })

  it('counts leader changes, member events and state transitions as they happen', async () => {
    registerConclaveMetrics(metrics, internals)
    internals.leaderChange('a', 1)
    internals.leaderChange('a', 1)
    internals.leaderChange('', 1)
    internals.leaderChange('b', 2)
    internals.memberEvent('suspect')
    internals.memberEvent('alive')
    internals.memberEvent('suspect', 'c')
    internals.memberEvent('dead', 'c')
    internals.memberEvent('joined', 'd')
    internals.memberEvent('updated', 'd')
    internals.stateEvent({ type: 'taskAssigned' } as never)
    internals.stateEvent({ type: 'taskStarted' } as never)
    internals.stateEvent({ type: 'taskCompleted' } as never)
    internals.stateEvent({ type: 'taskAssigned' } as never)
    internals.stateEvent({ type: 'lockGranted' } as never)
    internals.stateEvent({ type: 'sessionExpired' } as never)
    const text = await scrape()
    expect(sample(text, 'conclave_raft_leader_changes_total')).toBe(3)
    expect(sample(text, 'conclave_swim_suspicions_total')).toBe(2)
    expect(sample(text, 'conclave_swim_refutations_total')).toBe(1)
    expect(sample(text, 'conclave_swim_deaths_total')).toBe(1)
    expect(sample(text, 'conclave_swim_member_changes_total', { change: 'joined' })).toBe(1)
    expect(sample(text, 'conclave_task_transitions_total', { transition: 'assigned' })).toBe(2)
    expect(sample(text, 'conclave_task_transitions_total', { transition: 'started' })).toBe(1)
    expect(sample(text, 'conclave_task_transitions_total', { transition: 'completed' })).toBe(1)
    expect(sample(text, 'conclave_lock_events_total', { event: 'granted' })).toBe(1)
    expect(sample(text, 'conclave_session_ends_total', { reason: 'expired' })).toBe(1)
    expect(describe(text, 'conclave_swim_deaths_total').type).toBe('counter')
  })

  it('counts proposals by outcome and times them by command', async () => {
    registerConclaveMetrics(metrics, internals)
    let text = await scrape()
    // Every outcome is there from the start, at 0, so rates work from the first scrape.
    expect(sample(text, 'conclave_proposals_total', { outcome: 'ok' })).toBe(0)
    internals.proposal({ command: 'put', seconds: 0.004, outcome: 'ok' })
    internals.proposal({ command: 'put', seconds: 0.02, outcome: 'ok' })
    internals.proposal({ command: 'lockAcquire', seconds: 0.003, outcome: 'refused' })
    internals.proposal({ command: 'put', seconds: 10, outcome: 'failed' })
    text = await scrape()
    expect(sample(text, 'conclave_proposals_total', { outcome: 'ok' })).toBe(2)
    expect(sample(text, 'conclave_proposals_total', { outcome: 'refused' })).toBe(1)
    expect(sample(text, 'conclave_proposals_total', { outcome: 'failed' })).toBe(1)
    expect(sample(text, 'conclave_proposal_duration_seconds_count', { command: 'put' })).toBe(3)
    expect(sample(text, 'conclave_proposal_duration_seconds_sum', { command: 'put' })).toBeCloseTo(10.024)
    expect(sample(text, 'conclave_proposal_duration_seconds_bucket', { command: 'put', le: '0.005' })).toBe(1)
    expect(sample(text, 'conclave_proposal_duration_seconds_bucket', { command: 'put', le: '0.025' })).toBe(2)
    expect(sample(text, 'conclave_proposal_duration_seconds_count', { command: 'lockAcquire' })).toBe(1)
    expect(describe(text, 'conclave_proposal_duration_seconds').type).toBe('histogram')
  })

  it('times storage writes by operation and reports snapshots', async () => {
    registerConclaveMetrics(metrics, internals)
    internals.storage({ kind: 'call', op: 'append', seconds: 0.0004, failed: false })
    internals.storage({ kind: 'call', op: 'append', seconds: 0.002, failed: false })
    internals.storage({ kind: 'call', op: 'commit', seconds: 0.00005, failed: false })
    internals.storage({ kind: 'snapshot', source: 'taken', bytes: 4096, index: 100 })
    internals.storage({ kind: 'snapshot', source: 'installed', bytes: 512, index: 200 })
    const text = await scrape()
    expect(sample(text, 'conclave_storage_write_duration_seconds_count', { op: 'append' })).toBe(2)
    expect(
      sample(text, 'conclave_storage_write_duration_seconds_bucket', { op: 'append', le: '0.0005' }),
    ).toBe(1)
    expect(sample(text, 'conclave_storage_write_duration_seconds_count', { op: 'commit' })).toBe(1)
    expect(sample(text, 'conclave_snapshots_total', { source: 'taken' })).toBe(1)
    expect(sample(text, 'conclave_snapshots_total', { source: 'installed' })).toBe(1)
    expect(sample(text, 'conclave_snapshot_size_bytes')).toBe(512)
  })

  it('network counters read at each scrape report the totals, not the sum of every reading', async () => {
    registerConclaveMetrics(metrics, internals)
    internals.rpc = { ...internals.rpc, callsSucceeded: 5, callsFailed: 2, resets: 1, rateLimited: 3 }
    internals.raft = { ...internals.raft, dropped: 4, throttled: 1, dialFailures: 2 }
    internals.membership = { ...internals.membership, sent: 10, sendFailures: 1 }
    internals.health = 2
    let text = await scrape()
    expect(sample(text, 'conclave_rpc_calls_total', { outcome: 'succeeded' })).toBe(5)
    expect(sample(text, 'conclave_rpc_errors_total', { kind: 'call_failed' })).toBe(2)
    expect(sample(text, 'conclave_rpc_errors_total', { kind: 'rpc_stream_reset' })).toBe(1)
    expect(sample(text, 'conclave_rpc_errors_total', { kind: 'raft_message_dropped' })).toBe(4)
    expect(sample(text, 'conclave_rpc_errors_total', { kind: 'raft_dial_failed' })).toBe(2)
    expect(sample(text, 'conclave_rate_limited_total', { path: 'rpc' })).toBe(3)
    expect(sample(text, 'conclave_rate_limited_total', { path: 'raft' })).toBe(1)
    expect(sample(text, 'conclave_swim_messages_total', { kind: 'sent' })).toBe(10)
    expect(sample(text, 'conclave_swim_local_health')).toBe(2)
    internals.rpc = { ...internals.rpc, callsSucceeded: 8, requestsServed: 4 }
    text = await scrape()
    expect(sample(text, 'conclave_rpc_calls_total', { outcome: 'succeeded' })).toBe(8)
    expect(sample(text, 'conclave_rpc_errors_total', { kind: 'call_failed' })).toBe(2)
    expect(sample(text, 'conclave_rpc_requests_served_total')).toBe(4)
    text = await scrape()
    expect(sample(text, 'conclave_rpc_requests_served_total')).toBe(4)
    expect(sample(text, 'conclave_rpc_calls_total', { outcome: 'succeeded' })).toBe(8)
  })

  it('stop unsubscribes from every event source', async () => {
    const registered = registerConclaveMetrics(metrics, internals)
    expect(internals.subscribed()).toBe(5)
    registered.stop()
    expect(internals.subscribed()).toBe(0)
    internals.memberEvent('dead')
    expect(sample(await scrape(), 'conclave_swim_deaths_total')).toBe(0)
    // One registration per owner at a time: a second would count every event twice.
    const owner = {}
    const first = registerConclaveMetrics(metrics, internals, { owner })
    expect(() => registerConclaveMetrics(metrics, internals, { owner })).toThrow(InvalidArgumentError)
    first.stop()
    registerConclaveMetrics(metrics, internals, { owner }).stop()
  })

  it('docs/metrics.md lists every metric registered, with its type, and no other', async () => {
    registerConclaveMetrics(metrics, internals)
    const text = await scrape()
    const registered = [...text.matchAll(/^# TYPE (conclave_\w+) (\w+)$/gm)].map(
      match => `${match[1]} ${match[2]}`,
    )
    const docs = readFileSync(new URL('../../docs/metrics.md', import.meta.url), 'utf8')
    const documented = [...docs.matchAll(/^\| `(conclave_\w+)` \| (\w+) \|/gm)].map(
      match => `${match[1]} ${match[2]}`,
    )
    expect(registered.length).toBeGreaterThan(25)
    expect(documented.sort()).toEqual(registered.sort())
  })

  it('refuses what is not a Metrics, and an object that is not an agent of this package', () => {
    expect(() => registerConclaveMetrics({} as Metrics, internals)).toThrow(InvalidArgumentError)
    expect(() => enableMetrics({ libp2p: {} } as unknown as Agent, metrics)).toThrow(InvalidArgumentError)
  })
})
