/**
 * What one agent process did, counted for the task benchmark's `--counters`: the Raft log's growth, its
 * fsync'd storage writes and their time, the Raft messages and RPC calls, the commands this agent proposed
 * or forwarded (by type) and SWIM's gossip. Differences of two readings, divided by the tasks run, say where
 * a task's cost goes (entries, fsyncs, messages per task).
 */
import { readFileSync } from 'node:fs'
import type { Agent } from '../../src/index.ts'
import { metricsInternalsOf } from '../../src/metrics/index.ts'
import { nodeOf, type RaftTransportCounters } from '../../src/metrics/internals.ts'

export interface AgentCounters {
  lastIndex: number
  isLeader: boolean
  /** CPU time of this process (user + system), in ms: less swayed by a loaded machine than a rate. */
  cpuMs: number
  /** Storage writes with entries, a snapshot or a new term (each fsync'd), and their seconds. */
  appends: number
  appendSeconds: number
  /** Commit-index-only writes (not fsync'd at once). */
  commits: number
  raftSent: number
  raftReceived: number
  /** Raft transport stream writes (each a send of all frames queued for a peer) and their bytes. */
  raftWrites: number
  raftBytesSent: number
  /** Write system calls of this process (`/proc/self/io` syscw: sockets and files), 0 where unreadable. */
  writeCalls: number
  rpcCalls: number
  rpcServed: number
  swimSent: number
  swimPublished: number
  /** Gossipsub messages this agent received, by topic. */
  gossip: Record<string, number>
  /** Commands this agent proposed or forwarded, by command type, and their seconds to the answer. */
  proposals: Record<string, number>
  proposalSeconds: Record<string, number>
}

const subscribed = new WeakMap<Agent, AgentCounters>()

/** This agent's counters now; the storage and proposal counts run from the first call on. */
export function readCounters(agent: Agent): AgentCounters {
  const internals = metricsInternalsOf(agent)
  if (internals === undefined) throw new Error('this agent exposes no metrics internals')
  let counts = subscribed.get(agent)
  if (counts === undefined) {
    const fresh: AgentCounters = emptyCounters()
    internals.onStorage?.(observation => {
      if (observation.kind !== 'call') return
      if (observation.op === 'append') {
        fresh.appends++
        fresh.appendSeconds += observation.seconds
      } else if (observation.op === 'commit') fresh.commits++
    })
    internals.onProposal?.(record => {
      fresh.proposals[record.command] = (fresh.proposals[record.command] ?? 0) + 1
      fresh.proposalSeconds[record.command] = (fresh.proposalSeconds[record.command] ?? 0) + record.seconds
    })
    const pubsub = (nodeOf(agent)?.services as { pubsub?: EventTarget } | undefined)?.pubsub
    pubsub?.addEventListener('message', event => {
      const topic = (event as CustomEvent<{ topic: string }>).detail.topic.split('/').slice(-2, -1)[0]
      fresh.gossip[topic] = (fresh.gossip[topic] ?? 0) + 1
    })
    subscribed.set(agent, fresh)
    counts = fresh
  }
  const status = internals.raftStatus()
  const rpc = internals.rpcStats?.()
  // The transport's stats carry more than the metrics' type names (writes, bytes).
  const raft = internals.raftTransportStats?.() as
    | (RaftTransportCounters & { writes?: number; bytesSent?: number })
    | undefined
  const swim = internals.membershipStats?.()
  return {
    ...counts,
    proposals: { ...counts.proposals },
    gossip: { ...counts.gossip },
    proposalSeconds: { ...counts.proposalSeconds },
    lastIndex: status?.lastIndex ?? 0,
    cpuMs: cpuMs(),
    isLeader: status?.role === 'leader',
    raftSent: raft?.sent ?? 0,
    raftReceived: raft?.received ?? 0,
    raftWrites: raft?.writes ?? 0,
    raftBytesSent: raft?.bytesSent ?? 0,
    writeCalls: writeCalls(),
    rpcCalls: rpc?.callsStarted ?? 0,
    rpcServed: rpc?.requestsServed ?? 0,
    swimSent: swim?.sent ?? 0,
    swimPublished: swim?.published ?? 0,
  }
}

function writeCalls(): number {
  try {
    return Number(/syscw: (\d+)/.exec(readFileSync('/proc/self/io', 'utf8'))?.[1] ?? 0)
  } catch {
    return 0
  }
}

function cpuMs(): number {
  const { user, system } = process.cpuUsage()
  return (user + system) / 1000
}

function emptyCounters(): AgentCounters {
  return {
    lastIndex: 0,
    cpuMs: 0,
    isLeader: false,
    appends: 0,
    appendSeconds: 0,
    commits: 0,
    raftSent: 0,
    raftReceived: 0,
    raftWrites: 0,
    raftBytesSent: 0,
    writeCalls: 0,
    rpcCalls: 0,
    rpcServed: 0,
    swimSent: 0,
    swimPublished: 0,
    proposals: {},
    gossip: {},
    proposalSeconds: {},
  }
}

/** `after − before` per task, rounded to two decimals (booleans and the leader flag from `after`). */
export function perTask(before: AgentCounters, after: AgentCounters, tasks: number): Record<string, unknown> {
  const per = (a: number, b: number): number => Math.round(((a - b) / tasks) * 100) / 100
  const proposals: Record<string, number> = {}
  const proposalMs: Record<string, number> = {}
  for (const [type, count] of Object.entries(after.proposals)) {
    proposals[type] = per(count, before.proposals[type] ?? 0)
    const made = count - (before.proposals[type] ?? 0)
    const seconds = (after.proposalSeconds[type] ?? 0) - (before.proposalSeconds[type] ?? 0)
    if (made > 0) proposalMs[type] = Math.round((seconds / made) * 1000 * 10) / 10
  }
  return {
    leader: after.isLeader,
    cpuMsPerTask: Math.round(((after.cpuMs - before.cpuMs) / tasks) * 1000) / 1000,
    entries: per(after.lastIndex, before.lastIndex),
    appends: per(after.appends, before.appends),
    appendMsPerTask: Math.round(((after.appendSeconds - before.appendSeconds) * 1000 * 1000) / tasks) / 1000,
    commits: per(after.commits, before.commits),
    raftSent: per(after.raftSent, before.raftSent),
    raftReceived: per(after.raftReceived, before.raftReceived),
    raftWrites: per(after.raftWrites, before.raftWrites),
    raftBytesSent: Math.round((after.raftBytesSent - before.raftBytesSent) / tasks),
    writeCalls: per(after.writeCalls, before.writeCalls),
    rpcCalls: per(after.rpcCalls, before.rpcCalls),
    rpcServed: per(after.rpcServed, before.rpcServed),
    swimSent: per(after.swimSent, before.swimSent),
    swimPublished: per(after.swimPublished, before.swimPublished),
    proposals,
    // Three decimals: a work advert per 100 tasks is already a cost worth seeing.
    gossip: Object.fromEntries(
      Object.entries(after.gossip).map(([topic, n]) => [
        topic,
        Math.round(((n - (before.gossip[topic] ?? 0)) / tasks) * 1000) / 1000,
      ]),
    ),
    /** Mean ms from proposing a command to its answer, by type. */
    proposalMs,
  }
}
