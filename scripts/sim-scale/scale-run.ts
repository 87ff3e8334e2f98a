/**
 * One scale run: N agents on one virtual scheduler, with the real code of both kinds of agent.
 *
 * - 5 voters and 2 standbys are the simulator's real replica agents (`scripts/sim/agent.ts`: Raft host and
 *   runner, the replica state machine, the lessor and keep-alive server, the leader's housekeeping, which
 *   here reads its SWIM view for dead agents, and the `ReplicaFeed` that serves members). The voters found
 *   the cluster; the leader adds the standbys as non-voters, as it does at join.
 * - The other N − 7 are members (`member.ts`): no log, a state copy fed by a replica, a session kept alive
 *   at the leader's lessor.
 * - Every agent runs the real SWIM core (`swim-layer.ts`), dissemination on a modelled gossipsub mesh.
 *
 * Timeline: members start at random over the first 2 s; warm-up lasts until every member has a session and
 * every view holds every agent alive (at most 60 s); then the measured window of `seconds` (default 60):
 *
 *   0 – 20 %   idle: nothing happens (the per-member and leader costs at rest come from here)
 *   20 %       a few members crash (0.5 % of them, 1 to 3, one a second); each restarts after the detection
 *              bound + 3 s
 *   30 %       a follower voter crashes; restarts after the bound + 3 s
 *   50 %       the leader crashes; restarts after the bound + 3 s
 *   70 %       a partition cuts a few members (0.5 %, 1 to 3) and a standby off from everyone for 4 s
 *
 * With `memberWrites` (`--member-writes`), a few members also write all along through their real client
 * (`member-writes.ts`: every answered put durable at the end, and in the writer's own copy soon after).
 *
 * A crash kills the process: members' calls in flight to a killed replica reset (as its connections do),
 * unless `silentCrashes` (the machine is lost: they wait for their timeouts).
 *
 * Traffic is booked per agent and kind (`traffic.ts`) in three windows: idle (0-20 %), crashes (20-70 %)
 * and all; "the leader" is whoever leads at the moment. Raft messages are booked at sending, both ends.
 * Not counted: the replicas' own sessions' keep-alives and forwards among the 7 replicas.
 *
 * Checks (each a violation that fails the run):
 * - keep-alive: no session of a live member expires, unless that member was cut off by the partition
 *   (its keep-alives could not reach the leader: the lessor is right to expire it);
 * - false positive: no live agent is declared dead by anyone, except declarations between the two sides of
 *   the partition (from its start to a detection bound after it heals, where one side of the pair is in the
 *   cut-off group) and declarations about an incarnation that had crashed. The rule tolerates none at all
 *   while the configured loss is at most 5 %: the SWIM simulator (`npm run swim-sim`) shows no false
 *   positive with this preset at 10 % loss. Above 5 % loss they are reported, not failed;
 * - detection: every agent that stayed up through it marks each crashed agent (member or replica) dead within
 *   the documented SWIM bound, `detectionBound` of `swim-wire.ts` (suspicion timeout + 6 probe periods).
 */

import { detectionBound } from '../../src/agent/cluster/swim-wire.ts'
import { resolveMembership, resolveTiming } from '../../src/agent/options.ts'
import { encodeRaftMessage } from '../../src/net/raft-codec.ts'
import type { RaftCoreOptions } from '../../src/raft/core-options.ts'
import { shellBugs } from '../../src/shell-bugs.ts'
import type { MemberEvent } from '../../src/swim/types.ts'
import { Cluster, OPERATION_TIMEOUT_MS, SESSION_TTL_MS } from '../sim/cluster.ts'
import { CALM_LINKS } from '../sim/network.ts'
import { Prng } from '../sim/prng.ts'
import { MS_PER_TICK, Scheduler } from '../sim/scheduler.ts'
import { ScaleMember } from './member.ts'
import { MemberWrites, type MemberWritesReport } from './member-writes.ts'
import { SwimLayer } from './swim-layer.ts'
import { type AgentTraffic, TRAFFIC_KINDS, Traffic, type TrafficKind, total } from './traffic.ts'

export const VOTERS = 5
export const STANDBYS = 2
const REPLICAS = VOTERS + STANDBYS
/** Production timing on the simulator's 10 ms tick: heartbeat 90 ms, election 360 ms (`resolveTiming`). */
const RAFT_OPTIONS: Partial<RaftCoreOptions> = {
  electionTicks: 36,
  heartbeatTicks: 9,
  preVote: true,
  checkQuorum: true,
}
const JOIN_SPREAD_MS = 2_000
const MAX_WARMUP_MS = 60_000
const PARTITION_MS = 4_000
/** Loss at or below which no false positive is tolerated (see the file comment). */
export const STRICT_LOSS = 0.05

export interface ScaleOptions {
  agents: number
  seed: number
  /** Measured window, virtual seconds. */
  seconds: number
  /** Chance a message (or one gossip hop) is lost. */
  loss: number
  /** Gossipsub mesh degree. */
  meshDegree: number
  /**
   * Replica crashes are silent (a machine lost, not a killed process): members' calls in flight to it are
   * not reset and wait for their timeouts.
   */
  silentCrashes?: boolean
  /** Broken variant: members never send keep-alives (their keepers believe them renewed). */
  skipKeepAlives?: boolean
  /** The member write workload and its checks (`member-writes.ts`). */
  memberWrites?: boolean
  /** Broken variant of the member write checker: one answered put is recorded with a value it did not write. */
  misrecordMemberWrite?: boolean
  log?: (line: string) => void
}

export interface ScaleViolation {
  check: 'keep-alive' | 'false-positive' | 'detection' | 'warm-up' | 'member-write'
  message: string
  at: number
}

export interface Detection {
  agent: string
  kind: 'member' | 'follower' | 'leader' | string
  crashAt: number
  /** ms until every agent that stayed up marked it dead; null if some never did before its restart. */
  allDeadMs: number | null
  firstDeadMs: number | null
  undetectedBy: number
}

export interface ScaleReport {
  agents: number
  members: number
  seed: number
  seconds: number
  loss: number
  meshDegree: number
  warmupMs: number
  /** The documented SWIM bound for N agents (ms). */
  boundMs: number
  /** Per virtual second at the leader (whoever leads at the moment), in and out: idle window and whole window. */
  leader: { idle: KindRates; crashes: KindRates; all: KindRates }
  /** Per member per virtual second, in and out: average over members, and the busiest member. */
  perMember: { idle: KindRates; crashes: KindRates; all: KindRates; idleMax: number; allMax: number }
  detections: Detection[]
  falsePositives: { counted: number; excused: number; falseSuspicions: number }
  keepAlive: {
    liveSessionsExpired: number
    excusedExpiries: number
    membersWithSession: number
    membersUp: number
  }
  /** SWIM over the whole window, per virtual second, cluster-wide: gossip batches published, direct messages. */
  swim: { publishesPerSecond: number; directPerSecond: number }
  /** The member write workload's figures, when it ran. */
  memberWrites?: MemberWritesReport
  violations: ScaleViolation[]
  events: number
  wallMs: number
  /** CPU time of the process over the run (user + system): the wall time on a loaded machine says little. */
  cpuMs: number
}

/** Messages and bytes per virtual second, by kind and in total. */
export type KindRates = Record<TrafficKind | 'total', { messages: number; bytes: number }>

export async function runScale(options: ScaleOptions): Promise<ScaleReport> {
  const started = performance.now()
  const cpuStarted = process.cpuUsage()
  const { agents: n, seed } = options
  if (!Number.isSafeInteger(n) || n < REPLICAS + 1)
    throw new RangeError(`agents must be at least ${REPLICAS + 1}`)
  if (!(options.seconds >= 30))
    throw new RangeError('seconds must be at least 30 (the fault schedule needs it)')
  const log = options.log
  const root = new Prng(seed)
  const scheduler = new Scheduler()
  const trace = log
    ? (line: string) => log(`[${(scheduler.now / 1000).toFixed(3).padStart(8)} s] ${line}`)
    : () => {}
  const swimConfig = resolveMembership(undefined)
  const boundMs = detectionBound(swimConfig, n)
  const replicaIds = Array.from({ length: REPLICAS }, (_, i) => `n${i + 1}`)
  const memberIds = Array.from({ length: n - REPLICAS }, (_, i) => `m${i + 1}`)
  const allIds = [...replicaIds, ...memberIds]
  const violations: ScaleViolation[] = []
  const violate = (check: ScaleViolation['check'], message: string) => {
    violations.push({ check, message, at: scheduler.now })
    trace(`VIOLATION ${check}: ${message}`)
  }

  // ---------- traffic (booked once the windows are known) ----------
  let traffic: Traffic | undefined
  let leaderId = ''
  const book = (agent: string, kind: TrafficKind, direction: 'in' | 'out', bytes: number, count = 1) => {
    if (traffic === undefined) return
    traffic.book(agent, kind, direction, bytes, count)
    if (agent === leaderId) traffic.book('@leader', kind, direction, bytes, count)
  }

  // ---------- the agents ----------
  let swim: SwimLayer | undefined
  const cluster = new Cluster({
    scheduler,
    prng: root,
    voters: VOTERS,
    spares: STANDBYS,
    raftOptions: RAFT_OPTIONS,
    forgetVote: false,
    snapshotEntries: 10_000,
    swallowUncaught: false,
    shellBugs: shellBugs([]),
    trace,
    down: id => swim?.down(id) ?? [],
  })
  cluster.network.faults = { ...CALM_LINKS, dropRate: options.loss }
  cluster.hooks.onSend = (node, message) => {
    if (traffic === undefined) return
    const bytes = encodeRaftMessage(message).byteLength
    book(node.id, 'raft', 'out', bytes)
    book(message.to, 'raft', 'in', bytes)
  }
  cluster.hooks.onLeader = (node, term) => trace(`${node.id} leads in term ${term}`)

  // Detection and false positives, from every view's events.
  const crashes = new Map<
    string,
    { at: number; kind: string; seen: Map<string, number>; detection?: Detection }
  >()
  const detections: Detection[] = []
  /** When each agent's current run started (SWIM up), and the incarnation that run began at. */
  const runStart = new Map<string, number>()
  let partition: { group: Set<string>; from: number; to: number } | undefined
  const falsePositives = { counted: 0, excused: 0, falseSuspicions: 0 }
  const strict = options.loss <= STRICT_LOSS
  const onEvents = (observer: string, events: MemberEvent[]) => {
    for (const event of events) {
      const subject = event.member.id
      if (subject === observer) continue
      if (event.type === 'dead') {
        const crash = crashes.get(subject)
        if (crash !== undefined && !swim!.up(subject)) {
          if (!crash.seen.has(observer)) crash.seen.set(observer, event.at)
          continue
        }
        if (!swim!.up(subject)) continue
        // About an incarnation of an earlier run (it crashed): true of that run.
        if (event.member.incarnation < (swim!.incarnationOf(subject) ?? 0)) {
          falsePositives.excused++
          continue
        }
        const p = partition
        if (
          p !== undefined &&
          event.at >= p.from &&
          event.at <= p.to + boundMs &&
          (p.group.has(subject) || p.group.has(observer))
        ) {
          falsePositives.excused++
          continue
        }
        falsePositives.counted++
        if (strict)
          violate('false-positive', `${observer} declared ${subject} dead while it was alive and reachable`)
      } else if (event.type === 'suspect' && swim!.up(subject)) {
        falsePositives.falseSuspicions++
      }
    }
  }
  swim = new SwimLayer({
    ids: allIds,
    scheduler,
    prng: root.stream('swim'),
    config: swimConfig,
    meshDegree: options.meshDegree,
    loss: options.loss,
    network: cluster.network,
    book,
    onEvents,
    // Members read their state copy; replicas their log's state (as the shell's refresh reads the registry),
    // which repairs an announcement a replica missed (not every replica is a joiner's seed).
    known: (id: string): readonly string[] =>
      memberById.get(id)?.knownAgents() ??
      cluster
        .node(id)
        .stateMachine()
        ?.sessions()
        .map(session => session.agentId) ??
      [],
  })
  const swimLayer = swim
  const seeds = replicaIds.slice(0, 3)

  const timing = resolveTiming({
    tickMs: MS_PER_TICK,
    electionTicks: RAFT_OPTIONS.electionTicks,
    heartbeatTicks: RAFT_OPTIONS.heartbeatTicks,
    sessionTtlMs: SESSION_TTL_MS,
    operationTimeoutMs: OPERATION_TIMEOUT_MS,
  })
  const sessionExpiries = { live: 0, excused: 0 }
  /** Members' calls in flight to each replica: reset when its process dies. */
  const inFlight = new Map<string, Set<() => void>>()
  const resetPrng = root.stream('resets')
  const memberPrng = root.stream('members')
  const members = memberIds.map(
    id =>
      new ScaleMember(
        id,
        {
          scheduler,
          network: cluster.network,
          timing,
          raftOptions: RAFT_OPTIONS,
          replicas: replicaIds,
          replica: rid => (rid.startsWith('n') ? cluster.node(rid) : undefined),
          status: (observer, subject) => swimLayer.status(observer, subject),
          book,
          onOwnSessionExpired: (member, sessionId) => {
            if (partition?.group.has(member.id) && scheduler.now >= partition.from) {
              sessionExpiries.excused++
              return
            }
            sessionExpiries.live++
            violate('keep-alive', `the session ${sessionId} of live member ${member.id} expired`)
          },
          skipKeepAlives: options.skipKeepAlives === true,
          trace,
          inFlight: (peer, broken) => {
            let calls = inFlight.get(peer)
            if (calls === undefined) {
              calls = new Set()
              inFlight.set(peer, calls)
            }
            calls.add(broken)
            return () => calls.delete(broken)
          },
        },
        memberPrng.stream(id),
      ),
  )
  const memberById: Map<string, ScaleMember> = new Map(members.map(member => [member.id, member]))

  const startAgent = (id: string) => {
    runStart.set(id, scheduler.now)
    swimLayer.start(id, seeds)
    const member = memberById.get(id)
    if (member !== undefined) member.start()
    else cluster.restart(cluster.node(id))
  }
  const crashAgent = (id: string, kind: string) => {
    trace(`${id} (${kind}) crashes`)
    swimLayer.stop(id)
    const member = memberById.get(id)
    if (member !== undefined) member.crash()
    else {
      cluster.crash(cluster.node(id))
      // The killed process's connections reset: each caller hears of it after a trip.
      const calls = [...(inFlight.get(id) ?? [])]
      inFlight.delete(id)
      if (options.silentCrashes !== true)
        for (const broken of calls) scheduler.after(resetPrng.between(1, 6), broken)
    }
    crashes.set(id, { at: scheduler.now, kind, seen: new Map() })
    scheduler.after(boundMs + 3_000, () => {
      settleDetection(id)
      trace(`${id} restarts`)
      startAgent(id)
    })
  }
  /** Before `id` restarts (or at the end): who of those up through it saw it dead, and when. */
  const settleDetection = (id: string) => {
    const crash = crashes.get(id)
    if (crash === undefined || crash.detection !== undefined) return
    crashes.delete(id)
    const survivors = allIds.filter(
      other => other !== id && swimLayer.up(other) && (runStart.get(other) ?? 0) <= crash.at,
    )
    const times: number[] = []
    let undetectedBy = 0
    for (const observer of survivors) {
      const at = crash.seen.get(observer)
      if (at === undefined) undetectedBy++
      else times.push(at - crash.at)
    }
    const detection: Detection = {
      agent: id,
      kind: crash.kind,
      crashAt: crash.at,
      allDeadMs: undetectedBy === 0 && times.length > 0 ? Math.max(...times) : null,
      firstDeadMs: times.length > 0 ? Math.min(...times) : null,
      undetectedBy,
    }
    crash.detection = detection
    detections.push(detection)
    if (detection.allDeadMs === null || detection.allDeadMs > boundMs) {
      violate(
        'detection',
        `${id} (${crash.kind}) crashed at ${crash.at} ms: ${detection.allDeadMs === null ? `${undetectedBy} of ${survivors.length} agents never marked it dead` : `the last agent marked it dead after ${detection.allDeadMs} ms`} (bound ${boundMs} ms)`,
      )
    }
  }

  // ---------- warm-up ----------
  // The replicas boot at once (the cluster's boot pause); their SWIM starts with them.
  cluster.startAll()
  for (const id of replicaIds) {
    runStart.set(id, 0)
    swimLayer.start(id, seeds)
  }
  const joinPrng = root.stream('join')
  for (const id of memberIds) scheduler.at(joinPrng.between(0, JOIN_SPREAD_MS), () => startAgent(id))
  const addStandbys = () => {
    const leader = cluster.leader()
    const config = leader?.config()
    if (leader === undefined || config === undefined) return
    for (const id of replicaIds.slice(VOTERS)) {
      if (config.nonVoters.includes(id) || config.voters.includes(id)) continue
      leader.changeConfig({ type: 'addNonVoter', node: id })
      return
    }
  }
  const ready = () =>
    cluster.leader() !== undefined &&
    members.every(member => member.sessionId !== '') &&
    allIds.every(id => swimLayer.aliveIn(id) === n - 1) &&
    (cluster.leader()?.config()?.nonVoters.length ?? 0) === STANDBYS
  let warmupMs = 0
  for (let until = 500; ; until += 500) {
    await drive(scheduler, cluster, swimLayer, until, () => (leaderId = cluster.leader()?.id ?? ''))
    addStandbys()
    if (until % 5000 === 0) {
      const noSession = members.filter(member => member.sessionId === '').length
      const partial = allIds.filter(id => swimLayer.aliveIn(id) !== n - 1).length
      trace(
        `warming up: ${noSession} members without a session, ${partial} views incomplete, standbys ${cluster.leader()?.config()?.nonVoters.join(',')}`,
      )
      for (const id of allIds.filter(id => swimLayer.aliveIn(id) !== n - 1).slice(0, 3))
        trace(
          `  ${id} lacks ${allIds
            .filter(o => o !== id && swimLayer.status(id, o) !== 'alive')
            .map(o => `${o}:${swimLayer.status(id, o)}`)
            .join(' ')}`,
        )
    }
    if (until >= JOIN_SPREAD_MS && ready()) {
      warmupMs = Math.ceil(until / 1000) * 1000
      break
    }
    if (until >= MAX_WARMUP_MS) {
      const noSession = members.filter(member => member.sessionId === '').length
      const partial = allIds.filter(id => swimLayer.aliveIn(id) !== n - 1).length
      violate(
        'warm-up',
        `not ready after ${MAX_WARMUP_MS} ms: ${noSession} members without a session, ${partial} views incomplete`,
      )
      warmupMs = until
      break
    }
  }
  await drive(scheduler, cluster, swimLayer, warmupMs, () => (leaderId = cluster.leader()?.id ?? ''))
  trace(`warm-up done at ${warmupMs} ms`)

  // ---------- the measured window and its faults ----------
  const windowMs = options.seconds * 1000
  const start = warmupMs
  const end = start + windowMs
  traffic = new Traffic(
    [
      { name: 'idle', from: start, to: start + 0.2 * windowMs },
      { name: 'crashes', from: start + 0.2 * windowMs, to: start + 0.7 * windowMs },
      { name: 'all', from: start, to: end },
    ],
    () => scheduler.now,
  )
  const swimAtStart = { ...swimLayer.stats }
  const faultPrng = root.stream('faults')
  const crashCount = Math.max(1, Math.min(3, Math.round(memberIds.length * 0.005)))
  const crashed = faultPrng.sample(memberIds, crashCount)
  for (const [i, id] of crashed.entries()) {
    scheduler.at(start + 0.2 * windowMs + i * 1000, () => crashAgent(id, 'member'))
  }
  scheduler.at(start + 0.3 * windowMs, () => {
    const leader = cluster.leader()
    const follower = replicaIds.slice(0, VOTERS).find(id => id !== leader?.id && cluster.node(id).up)
    if (follower !== undefined) crashAgent(follower, 'follower')
  })
  scheduler.at(start + 0.5 * windowMs, () => {
    const leader = cluster.leader()
    if (leader !== undefined) crashAgent(leader.id, 'leader')
  })
  const partitionAt = start + 0.7 * windowMs
  scheduler.at(partitionAt, () => {
    const cutMembers = faultPrng.sample(
      memberIds.filter(id => memberById.get(id)!.up),
      crashCount,
    )
    const group = [...cutMembers, replicaIds[REPLICAS - 1]]
    const rest = allIds.filter(id => !group.includes(id))
    partition = { group: new Set(group), from: scheduler.now, to: scheduler.now + PARTITION_MS }
    trace(`partition: ${group.join(', ')} cut off for ${PARTITION_MS} ms`)
    cluster.network.partition(group, rest)
    scheduler.after(PARTITION_MS, () => {
      cluster.network.heal()
      trace('partition healed')
    })
  })
  let memberWrites: MemberWrites | undefined
  if (options.memberWrites === true) {
    memberWrites = new MemberWrites({
      scheduler,
      prng: root.stream('member-writes'),
      members,
      cutOff: (member, since) => partition?.group.has(member) === true && partition.to >= since,
      violate: message => violate('member-write', message),
      trace,
      misrecord: options.misrecordMemberWrite,
    })
    // The last puts start 3 s before the end: their answers and own-copy checks fall inside the run.
    memberWrites.start(start, end - 3_000)
  }
  await drive(scheduler, cluster, swimLayer, end, () => (leaderId = cluster.leader()?.id ?? ''))
  for (const id of [...crashes.keys()]) settleDetection(id)
  const memberWritesReport = memberWrites?.check(finalState())

  /** The state of the replica leading at the end (or the most advanced one up): what a durable write is in. */
  function finalState() {
    const states = cluster.nodes.flatMap(node => {
      const state = node.up ? node.stateMachine() : undefined
      return state === undefined ? [] : [state]
    })
    const leading = cluster.leader()?.stateMachine()
    return leading ?? states.sort((a, b) => b.appliedIndex - a.appliedIndex)[0]
  }

  // ---------- the figures ----------
  const seconds = (name: string) => (traffic!.window(name).to - traffic!.window(name).from) / 1000
  const rates = (t: AgentTraffic, secs: number): KindRates => {
    const out = {} as KindRates
    for (const kind of TRAFFIC_KINDS)
      out[kind] = { messages: round(total(t, kind) / secs), bytes: round(total(t, kind, 'bytes') / secs) }
    out.total = { messages: round(total(t) / secs), bytes: round(total(t, undefined, 'bytes') / secs) }
    return out
  }
  const perMember = (name: string) => {
    const secs = seconds(name)
    const sum = {} as AgentTraffic
    let max = 0
    for (const kind of TRAFFIC_KINDS)
      sum[kind] = { in: { messages: 0, bytes: 0 }, out: { messages: 0, bytes: 0 } }
    for (const id of memberIds) {
      const t = traffic!.of(name, id)
      max = Math.max(max, total(t) / secs)
      for (const kind of TRAFFIC_KINDS)
        for (const dir of ['in', 'out'] as const) {
          sum[kind][dir].messages += t[kind][dir].messages / memberIds.length
          sum[kind][dir].bytes += t[kind][dir].bytes / memberIds.length
        }
    }
    return { rates: rates(sum, secs), max: round(max) }
  }
  const idleMembers = perMember('idle')
  const allMembers = perMember('all')
  const crashMembers = perMember('crashes')
  const up = members.filter(member => member.up)
  return {
    agents: n,
    members: memberIds.length,
    seed,
    seconds: options.seconds,
    loss: options.loss,
    meshDegree: options.meshDegree,
    warmupMs,
    boundMs,
    leader: {
      idle: rates(traffic.of('idle', '@leader'), seconds('idle')),
      crashes: rates(traffic.of('crashes', '@leader'), seconds('crashes')),
      all: rates(traffic.of('all', '@leader'), seconds('all')),
    },
    perMember: {
      idle: idleMembers.rates,
      crashes: crashMembers.rates,
      all: allMembers.rates,
      idleMax: idleMembers.max,
      allMax: allMembers.max,
    },
    detections,
    falsePositives,
    keepAlive: {
      liveSessionsExpired: sessionExpiries.live,
      excusedExpiries: sessionExpiries.excused,
      membersWithSession: up.filter(member => member.sessionId !== '').length,
      membersUp: up.length,
    },
    swim: {
      publishesPerSecond: round((swimLayer.stats.publishes - swimAtStart.publishes) / seconds('all')),
      directPerSecond: round((swimLayer.stats.directSent - swimAtStart.directSent) / seconds('all')),
    },
    ...(memberWritesReport === undefined ? {} : { memberWrites: memberWritesReport }),
    violations,
    events: scheduler.steps,
    wallMs: Math.round(performance.now() - started),
    cpuMs: Math.round(cpuMs(process.cpuUsage(cpuStarted))),
  }
}

function cpuMs(usage: NodeJS.CpuUsage): number {
  return (usage.user + usage.system) / 1000
}

function round(value: number): number {
  return Math.round(value * 10) / 10
}

/**
 * Runs every event due by `until`, letting promise continuations run after each (as Node runs microtasks
 * between two timers) but the SWIM layer's, which run none; `after` runs after each (it keeps the leader's
 * id current for the booking).
 */
async function drive(
  scheduler: Scheduler,
  cluster: Cluster,
  swim: SwimLayer,
  until: number,
  after: () => void,
): Promise<void> {
  for (;;) {
    swim.ranSync = false
    if (!scheduler.step(until)) break
    if (swim.ranSync) continue
    await settle()
    cluster.observe()
    after()
  }
  scheduler.runUntil(until)
}

function settle(): Promise<void> {
  return new Promise(resolve => setImmediate(resolve))
}
