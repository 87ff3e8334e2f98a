/**
 * One simulation run, a pure function of its seed: build the cluster, start the clients and the fault
 * schedule, run the fault window, stop the faults, run the liveness window, then check the history.
 *
 * Timeline (ticks of 10 virtual ms):
 *   0 .. WARMUP                 the cluster elects its first leader; clients start
 *   WARMUP .. faultEnd          faults (faultEnd = WARMUP + 150..250 ticks, drawn from the seed)
 *   faultEnd                    every link healed and calm, every node restarted
 *   faultEnd .. +LIVENESS_ISSUE clients keep issuing operations
 *   then                        no new operations; the run ends when every client is idle
 *
 * Liveness, checked after faultEnd: some node is leader with a quorum of its voters following it within
 * `leaderTicks`, and every operation called after faultEnd gets a definite answer within `opTicks` of
 * its call (`livenessBounds`: 60 and 80 ticks with pre-vote, 200 and 220 without). The bounds are generous
 * against what a healthy cluster needs (an election takes one or two election timeouts of 10..20 ticks, an
 * operation a few ms, a snapshot to a lagging member a few round trips: the leader keeps a window of chunks
 * in flight, at least `SNAPSHOT_WINDOW_BYTES`, so even the smallest chunks drawn carry a busy run's state in a
 * few ticks) but far below what a stuck one would show; after faultEnd a client only gives up after
 * `clientTimeoutTicks`, later than the bound.
 */

import { checkOperations, describeKvOperation, type KvOperation, kvModel } from '../../src/check/index.ts'
import type { RaftBugs, RaftCoreOptions } from '../../src/raft/core-options.ts'
import { shellBugs } from '../../src/shell-bugs.ts'
import { BurstChecker } from './burst.ts'
import { SimClient } from './clients.ts'
import { drawSkews, scheduleLeaderSteps } from './clock-skews.ts'
import { Cluster } from './cluster.ts'
import { electionUsers } from './election-clients.ts'
import { type FaultCounts, Nemesis } from './faults.ts'
import { checkLogsMatch, type SafetyMonitor, Violation } from './invariants.ts'
import { drawSessionTtl, type KvWorkloadStats, KvWorkloads } from './kv-workloads.ts'
import { leaseUsers } from './lease-clients.ts'
import { LockChecker, LockUser } from './lock-clients.ts'
import { Prng } from './prng.ts'
import { type ReaderStats, Readers } from './read-clients.ts'
import { ReadIndexCheck } from './read-index-check.ts'
import { MS_PER_TICK, Scheduler } from './scheduler.ts'
import { type ShrinkStats, ShrinkToOne } from './shrink-to-one.ts'
import { StrandFollower } from './strand-follower.ts'
import { TaskChecker } from './task-checker.ts'
import { TaskWorkload } from './task-clients.ts'
import { planWindow, WindowChecker, WindowUser } from './window-clients.ts'

export const BUG_NAMES = [
  'vote-ignores-log',
  'commit-previous-term',
  'stale-read',
  'forget-vote',
  'read-ack-any-quorum',
  'peer-commit-any-term',
  // The agent shell's holes (issue 15): see `bugOptions`.
  'single-voter-read',
  'no-fail-stop',
  'session-window',
  'lease-inline-expiry',
  'resign-any-candidacy',
  // The KV workloads' (issue 17): see `kv-workloads.ts`.
  'ephemeral-outlives-session',
  'txn-first-compare-only',
  'semaphore-extra-permit',
  // The task table's (issue 18): caught by the task checker (`task-checker.ts`).
  'cancel-keeps-attempt',
] as const
export type BugName = (typeof BUG_NAMES)[number]

export const WARMUP_TICKS = 20
export const LIVENESS_ISSUE_TICKS = 60
/** A client gives up on an operation after this long while faults run (its outcome is then unknown). */
export const CLIENT_TIMEOUT_TICKS = 30

/** How fast the cluster must recover once the faults stop (see the file comment). */
export interface LivenessBounds {
  /** Ticks until a leader that a quorum of its voters follows. */
  leaderTicks: number
  /** Ticks from an operation's call to its answer. */
  opTicks: number
  /** Client time-out after the faults, above `opTicks` so that a slow operation is seen, not given up. */
  clientTimeoutTicks: number
}

/**
 * With pre-vote, a node that fell behind cannot disrupt: an election takes one or two randomized timeouts
 * (10..20 ticks each). Without pre-vote, such a node keeps raising the term and resetting everyone's timer
 * until someone else times out first, which each round has odds of about 2 in 3: no hard bound exists,
 * and 200 ticks leave well under one chance in a million of a false alarm.
 */
export function livenessBounds(preVote: boolean): LivenessBounds {
  return preVote
    ? { leaderTicks: 60, opTicks: 80, clientTimeoutTicks: 100 }
    : { leaderTicks: 200, opTicks: 220, clientTimeoutTicks: 240 }
}

export interface RunOptions {
  seed: number
  /**
   * Chance that a seed sends a burst of puts on one session (`burst.ts`, the session-window check). Off by
   * default: 1,100 commands make a seed ~10x slower, and 30 seeds at 0.15 found no refusal yet.
   */
  burstRate?: number
  /** Founding voters (default 3). */
  nodes?: number
  bug?: BugName
  /** Where trace lines go; none = no trace. */
  log?: (line: string) => void
  /** Budget of the linearizability check (default 10 s). */
  checkTimeoutMs?: number
  /**
   * The task workload (`task-clients.ts`) on the seeds that draw it. `npm run sim` turns it on unless
   * `--no-tasks`; off here unless asked, so that the seeds pinned in tests keep their runs.
   */
  tasks?: boolean
}

export interface RunResult {
  seed: number
  nodes: number
  bug: BugName | undefined
  /** Whether the task workload was asked for (`npm run sim` asks by default; `runSeed` only when told). */
  withTasks: boolean
  /** The per-seed Raft options that shape liveness. */
  preVote: boolean
  checkQuorum: boolean
  violation?: { property: string; message: string; tick: number }
  /** Operations in the checked history (definite and unknown). */
  ops: number
  unknownOps: number
  readsGivenUp: number
  faults: FaultCounts
  /** Virtual length of the run. */
  ticks: number
  events: number
  linearizability: 'ok' | 'illegal' | 'unknown' | 'skipped'
  liveness: { leaderAfterTicks: number | undefined; opsAfterFaults: number; slowestOpTicks: number }
  messages: { sent: number; dropped: number; duplicated: number; cut: number }
  /** Writes forwarded by followers, and how they ended on the follower (see `NodeCounters`). */
  forwarding: {
    forwarded: number
    refused: number
    appliedByFollower: number
    answeredByLeader: number
    failed: number
    peerCommits: number
  }
  commitIndex: number
  terms: number
  /** How many times each invariant was checked. */
  checks: SafetyMonitor['checks']
  /** The lock users' grants, isHeld() observations checked, refusals, releases, failed calls. */
  locks: LockChecker['stats']
  /** The transaction, ephemeral-key and semaphore workloads (`kv-workloads.ts`): what each did. */
  kv: KvWorkloadStats
  /** The election users' campaigns, wins, aborted campaigns, resigns, looks, failed calls. */
  elections: ReturnType<typeof electionUsers>['checker']['stats']
  /** The lease users' grants, isHeld() observations checked, refusals, releases, failed calls. */
  leases: LockChecker['stats']
  /** The window user's puts and how they ended (`window-clients.ts`); all 0 on seeds without it. */
  window: WindowChecker['stats']
  /** The task workload's operations (`task-clients.ts`); all zero on a seed without it. */
  tasks: TaskChecker['stats']
  /** The readers' reads (`read-clients.ts`): answered, aimed at a new sole voter or a stranded follower. */
  readers: ReaderStats
  /** The shrink-to-one scenario (`shrink-to-one.ts`): all 0 on a seed without it. */
  shrink: ShrinkStats
  /** Whether the strand-follower partition (`strand-follower.ts`, five voters or more) was made. */
  stranded: number
  elapsedMs: number
}

const ticks = (n: number) => n * MS_PER_TICK

/**
 * Everything one `--bug NAME` switches on, in one object: the Raft core's switches (`RaftCoreOptions.bugs`),
 * the simulated world's (a disk that forgets the vote; an application that swallows uncaught exceptions),
 * and the agent shell's (`shell`: the names of `src/shell-bugs.ts`, which every simulated agent's state
 * machine, Raft runner and proposer get as `shellBugs(shell)`). `no-fail-stop` is both: the runner lets the
 * storage error escape and the application swallows it (an `uncaughtException` handler), so the node runs on.
 */
export interface BugOptions {
  raft: RaftBugs
  forgetVote: boolean
  swallowUncaught: boolean
  shell: BugName[]
}

const SHELL_BUGS: readonly BugName[] = [
  'no-fail-stop',
  'session-window',
  'lease-inline-expiry',
  'resign-any-candidacy',
  'ephemeral-outlives-session',
  'txn-first-compare-only',
  'semaphore-extra-permit',
  'cancel-keeps-attempt',
]

export function bugOptions(bug: BugName | undefined): BugOptions {
  return {
    raft: bugsFor(bug),
    forgetVote: bug === 'forget-vote',
    swallowUncaught: bug === 'no-fail-stop',
    shell: bug !== undefined && SHELL_BUGS.includes(bug) ? [bug] : [],
  }
}

function bugsFor(bug: BugName | undefined): RaftBugs {
  switch (bug) {
    case 'vote-ignores-log':
      return { voteIgnoresLog: true }
    case 'commit-previous-term':
      return { commitPreviousTerm: true }
    case 'stale-read':
      return { staleRead: true }
    case 'read-ack-any-quorum':
      return { readAckAnyQuorum: true }
    case 'peer-commit-any-term':
      return { peerCommitAnyTerm: true }
    case 'single-voter-read':
      return { singleVoterRead: true }
    default:
      return {}
  }
}

/**
 * Least snapshot data in flight to one follower, whatever chunk size a seed draws. The core's window counts
 * chunks (16 by default: 4 MiB of its 256 KiB chunks); at the 64-byte chunks drawn to exercise reassembly it
 * would be 1 KiB a round trip, and a busy run's state (60 KiB by the end of a 3-agent seed with tasks) a
 * 60-round-trip transfer that alone outlasts the liveness bound (3 agents, seed 802: a member removed while
 * its leader crashed was elected by the two voters of the new configuration, which it is not in, as Raft
 * allows until the removal commits (dissertation §4.2.2); both were needed to commit it, and one, cut off
 * through the faults, got the state in 64-byte chunks for 58 ticks after the faults stopped).
 */
const SNAPSHOT_WINDOW_BYTES = 16 * 1024

/** Raft options drawn per seed, so that batching, flow control and chunking limits are all exercised. */
function drawOptions(prng: Prng, bug: BugName | undefined): Partial<RaftCoreOptions> {
  const options: Partial<RaftCoreOptions> = {
    electionTicks: 10,
    heartbeatTicks: prng.pick([1, 1, 2, 3]),
    preVote: prng.chance(0.8),
    checkQuorum: prng.chance(0.8),
    maxMessageBytes: prng.pick([1, 150, 1024, 1024 * 1024]),
    maxInflightMessages: prng.pick([1, 2, 8, 256]),
    maxInflightBytes: prng.pick([300, 16 * 1024 * 1024]),
    snapshotChunkBytes: prng.pick([64, 256, 4096, 256 * 1024]),
    maxUncommittedBytes: prng.pick([400, 64 * 1024 * 1024, 64 * 1024 * 1024]),
    bugs: bugOptions(bug).raft,
  }
  // Derived, not drawn: the draws of every seed stay as they were.
  const chunk = options.snapshotChunkBytes as number
  options.maxInflightSnapshotChunks = Math.max(16, Math.ceil(SNAPSHOT_WINDOW_BYTES / chunk))
  return options
}

/**
 * Runs every event due by `until`, letting the agents' promise continuations run after each (as Node runs
 * microtasks between two timers), and observes the agents after each.
 */
async function drive(
  scheduler: Scheduler,
  cluster: Cluster,
  until: number,
  failed: () => void,
): Promise<void> {
  while (scheduler.step(until)) {
    await settle()
    failed()
    cluster.observe()
  }
  scheduler.runUntil(until)
}

/** Resolves once every pending promise continuation ran (the microtask queue drains before any macrotask). */
function settle(): Promise<void> {
  return new Promise(resolve => setImmediate(resolve))
}

export async function runSeed(options: RunOptions): Promise<RunResult> {
  const started = performance.now()
  const { seed, bug } = options
  const voters = options.nodes ?? 3
  const log = options.log
  const root = new Prng(seed)
  const setupPrng = root.stream('setup')
  const raftOptions = drawOptions(setupPrng, bug)
  const bugs = bugOptions(bug)
  const sessionTtlMs = drawSessionTtl(root)
  const scheduler = new Scheduler()
  const trace = log
    ? (line: string) => log(`[tick ${(scheduler.now / MS_PER_TICK).toFixed(1).padStart(6)}] ${line}`)
    : () => {}
  // On some seeds a small session result window and a user that outruns it (`window-clients.ts`).
  const windowPrng = root.stream('window')
  const windowPlan = planWindow(windowPrng)
  const skewPrng = root.stream('skews')
  const skews = drawSkews(skewPrng, voters + 1)
  const cluster = new Cluster({
    scheduler,
    prng: root,
    voters,
    spares: 1,
    raftOptions,
    forgetVote: bugs.forgetVote,
    snapshotEntries: setupPrng.between(3, 40),
    swallowUncaught: bugs.swallowUncaught,
    shellBugs: shellBugs(bugs.shell),
    // Clocks set off from the start on some seeds (`clock-skews.ts`; one agent per founder and spare).
    skews,
    maxResultsPerSession: windowPlan?.maxResultsPerSession,
    trace,
    sessionTtlMs,
  })
  const faultEnd = ticks(WARMUP_TICKS + setupPrng.between(150, 250))
  const issueEnd = faultEnd + ticks(LIVENESS_ISSUE_TICKS)
  const bounds = livenessBounds(raftOptions.preVote !== false)
  const hardEnd = issueEnd + ticks(bounds.clientTimeoutTicks) + ticks(10)
  trace(
    `seed ${seed}: ${voters} voters + 1 spare, faults until tick ${faultEnd / MS_PER_TICK}, options ${JSON.stringify(raftOptions)}`,
  )

  let clientFailure: Violation | undefined
  const failed = () => {
    if (clientFailure) throw clientFailure
    if (burst.violation) throw burst.violation
    if (elections.checker.violation) throw elections.checker.violation
    if (windowChecker.violation) throw windowChecker.violation
    if (taskWorkload?.violation) throw taskWorkload.violation
    if (readIndexCheck.violation) throw readIndexCheck.violation
  }
  const history: KvOperation[] = []
  const afterFaults: {
    opId: string
    completed: boolean
    latency: number
    lastTarget: string
    outsideWindow?: boolean
  }[] = []
  let stampMs = -1
  let stampSub = 0
  const clientPrng = root.stream('clients')
  const keys = ['a', 'b', 'c'].slice(0, setupPrng.between(1, 3))
  let processIds = 0
  const clients: SimClient[] = []
  const timing = {
    opTimeoutMs: ticks(CLIENT_TIMEOUT_TICKS),
    readAttemptMs: ticks(15),
    thinkMaxMs: 10,
    wanderRate: 0.25,
    linkMinMs: 1,
    linkMaxMs: 5,
  }
  const clientCount = setupPrng.between(voters - 1, voters + 2)
  for (let i = 0; i < clientCount; i++) {
    clients.push(
      new SimClient(`c${i + 1}`, {
        scheduler,
        prng: clientPrng.stream(`c${i + 1}`),
        timing,
        keys,
        node: id => cluster.node(id),
        route: input => nemesis.route(input),
        nodeIds: cluster.ids,
        stamp: () => {
          // Virtual µs, made distinct: events in one ms keep their order (the checker relies on it). Past
          // 1000 events in one ms they tie, which the checker reads as concurrent: never a false alarm.
          if (scheduler.now !== stampMs) {
            stampMs = scheduler.now
            stampSub = 0
          }
          return stampMs * 1000 + Math.min(stampSub++, 999)
        },
        issuing: () => scheduler.now < issueEnd,
        record: (op, detail) => {
          if (op) history.push(op)
          // Called once the faults had stopped (operations called in the same ms ran before the stop).
          if (detail.calledAt > faultEnd) {
            afterFaults.push({
              opId: detail.opId,
              completed: detail.completed,
              latency: detail.endedAt - detail.calledAt,
              lastTarget: detail.lastTarget,
              outsideWindow: detail.outsideWindow,
            })
          }
          if (op && log) trace(`op ${describeKvOperation(op)}`)
        },
        newProcessId: () => ++processIds,
        fail: error => {
          clientFailure ??= new Violation('api', scheduler.now, error.message)
        },
        trace,
      }),
    )
  }

  // Every read point a leader confirms, against what was committed when the read asked (`read-index-check.ts`).
  const readIndexCheck = new ReadIndexCheck(cluster)

  // On half the seeds, readers and the shrink-to-one scenario; the other half run as they did without them.
  const readScenarios = root.stream('read-scenarios').chance(0.5)
  // Readers aimed where a read shortcut goes wrong (`read-clients.ts`), in the KV history, during the faults.
  const readers = new Readers({
    scheduler,
    cluster,
    prng: root.stream('readers'),
    keys,
    stamp: () => {
      // As the clients' stamps (above), from the same counters: one order for the whole history.
      if (scheduler.now !== stampMs) {
        stampMs = scheduler.now
        stampSub = 0
      }
      return stampMs * 1000 + Math.min(stampSub++, 999)
    },
    newProcessId: () => ++processIds,
    record: op => {
      history.push(op)
      if (log) trace(`reader op ${describeKvOperation(op)}`)
    },
    issuing: () => scheduler.now < faultEnd,
    trace,
  })

  // Lock users on most seeds: the lock API through the same agents, checked from real time.
  const lockChecker = new LockChecker(scheduler)
  const lockPrng = root.stream('locks')
  const lockUsers: LockUser[] = []
  const lockUserCount = lockPrng.chance(0.7) ? lockPrng.between(1, 3) : 0
  for (let i = 0; i < lockUserCount; i++) {
    lockUsers.push(
      new LockUser(`l${i + 1}`, {
        scheduler,
        prng: lockPrng.stream(`l${i + 1}`),
        checker: lockChecker,
        node: id => cluster.node(id),
        nodeIds: cluster.ids,
        issuing: () => scheduler.now < issueEnd,
        trace,
      }),
    )
  }

  // Transactions, ephemeral keys and a semaphore through the same agents (each on most seeds).
  const kv = new KvWorkloads({
    scheduler,
    cluster,
    root,
    timing,
    sessionTtlMs,
    faultEnd,
    afterFaults,
    issuing: () => scheduler.now < issueEnd,
    fail: error => {
      clientFailure ??=
        error instanceof Violation ? error : new Violation('api', scheduler.now, error.message)
    },
    trace,
  })

  const windowChecker = new WindowChecker(scheduler)
  const windowUser =
    windowPlan &&
    new WindowUser(windowPrng.pick(cluster.founders), windowPlan.depth, {
      scheduler,
      checker: windowChecker,
      node: id => cluster.node(id),
      // Through the first half of the fault window only: its last puts are done (or given up) well before
      // the faults stop, when the cluster's liveness is measured.
      issuing: () => scheduler.now < (ticks(WARMUP_TICKS) + faultEnd) / 2,
      trace,
    })

  // Lease users on most seeds: short leases on their own key, looked at every few ms (`lease-clients.ts`).
  const leases = leaseUsers({
    scheduler,
    prng: root.stream('leases'),
    node: id => cluster.node(id),
    nodeIds: cluster.ids,
    issuing: () => scheduler.now < issueEnd,
    trace,
  })

  // Election users on some seeds: named elections through the agents' real API (`election-clients.ts`).
  const elections = electionUsers({
    scheduler,
    prng: root.stream('elections'),
    agents: cluster.founders,
    node: id => cluster.node(id),
    issuing: () => scheduler.now < issueEnd,
    trace,
  })

  // Task submitters and workers on most seeds: the task API through the same agents (`task-clients.ts`).
  const taskChecker = new TaskChecker()
  const taskPrng = root.stream('tasks')
  const taskWorkload =
    taskPrng.chance(0.8) && options.tasks === true
      ? new TaskWorkload({
          scheduler,
          prng: taskPrng.stream('workload'),
          checker: taskChecker,
          node: id => cluster.node(id),
          nodeIds: cluster.ids,
          issuing: () => scheduler.now < issueEnd,
          trace,
        })
      : undefined

  // Now and then a burst of puts on one agent's session: a retry outside the session window.
  const burst = new BurstChecker(scheduler)
  cluster.onApplied = entry => burst.onApplied(entry)
  const burstApplied = cluster.onApplied
  cluster.onApplied = entry => {
    burstApplied(entry)
    windowChecker.onApplied(entry)
  }
  const burstPrng = root.stream('burst')
  if (burstPrng.chance(options.burstRate ?? 0)) {
    const at = burstPrng.between(ticks(WARMUP_TICKS), faultEnd - ticks(50))
    const target = burstPrng.pick(cluster.founders)
    scheduler.at(at, () => {
      const agent = cluster.node(target)
      if (!agent.up) return
      trace(`burst of puts through ${target}`)
      burst.fire(agent, `b${seed}`)
    })
  }

  // On the skewed seeds, wall-clock steps forward on the leader of the moment (`clock-skews.ts`).
  scheduleLeaderSteps({
    scheduler,
    prng: skewPrng,
    skewed: skews !== undefined,
    leader: () => cluster.leader(),
    startMs: ticks(WARMUP_TICKS),
    endMs: faultEnd,
    trace,
  })

  const nemesis = new Nemesis({
    cluster,
    prng: root.stream('nemesis'),
    startMs: ticks(WARMUP_TICKS),
    endMs: faultEnd,
    // Now and then down to a single voter, which commits and serves reads alone.
    minVoters: setupPrng.chance(0.3) ? 1 : Math.max(2, voters - 1),
    trace,
  })

  // On some seeds the cluster shrinks to a single voter and grows back (`shrink-to-one.ts`).
  const shrink = new ShrinkToOne({
    cluster,
    prng: root.stream('shrink'),
    startMs: ticks(WARMUP_TICKS),
    endMs: faultEnd,
    trace,
  })

  // With five voters or more, the leader cut off with one follower once (`strand-follower.ts`).
  const strand = new StrandFollower({
    cluster,
    prng: root.stream('strand'),
    startMs: ticks(WARMUP_TICKS),
    endMs: faultEnd,
    trace,
  })

  let violation: Violation | undefined
  let linearizability: RunResult['linearizability'] = 'skipped'
  let leaderAt: number | undefined
  try {
    cluster.startAll()
    for (const client of clients) client.start(clientPrng.between(ticks(2), ticks(WARMUP_TICKS)))
    for (const user of lockUsers) user.start(lockPrng.between(ticks(2), ticks(WARMUP_TICKS)))
    kv.start(ticks(WARMUP_TICKS))
    for (const user of elections.users) user.start(ticks(WARMUP_TICKS))
    for (const user of leases.users) user.start(ticks(WARMUP_TICKS))
    windowUser?.start(ticks(WARMUP_TICKS))
    taskWorkload?.start(taskPrng.between(ticks(2), ticks(WARMUP_TICKS)))
    if (readScenarios) readers.start(ticks(WARMUP_TICKS))
    nemesis.start()
    if (readScenarios) shrink.start()
    if (readScenarios && voters >= 5) strand.start()
    await drive(scheduler, cluster, faultEnd, failed)
    nemesis.stop()
    // Raft expects removed servers to be shut down, so they are here: without check-quorum a removed leader
    // never steps down and takes writes that never commit, and a removed agent that never learned of its
    // removal waits for a leader that will never talk to it (the real proposer holds a call until its
    // deadline: not the cluster's liveness).
    cluster.decommissionRemoved()
    // From now on an operation must complete within the liveness bound: give it longer than that.
    timing.opTimeoutMs = ticks(bounds.clientTimeoutTicks)
    // Liveness window: watch for a leader followed by a quorum of its voters, tick by tick.
    for (let time = faultEnd + ticks(1); time <= hardEnd; time += ticks(1)) {
      await drive(scheduler, cluster, time, failed)
      // A removal that commits only now (the cluster was busy electing) shuts its server down now.
      cluster.decommissionRemoved()
      if (leaderAt === undefined && hasStableLeader(cluster)) {
        leaderAt = scheduler.now
        taskWorkload?.leaderStable(cluster.leader()!)
        trace(
          `leader established ${((leaderAt - faultEnd) / MS_PER_TICK).toFixed(1)} ticks after the faults stopped`,
        )
      }
      if (leaderAt === undefined && time - faultEnd > ticks(bounds.leaderTicks)) {
        throw new Violation(
          'liveness',
          time,
          `no leader with a following quorum ${bounds.leaderTicks} ticks after the faults stopped`,
        )
      }
      if (
        time >= issueEnd &&
        clients.every(client => !client.busy) &&
        kv.idle &&
        (taskWorkload?.idle(cluster.leader()) ?? true)
      )
        break
    }
    // A task backlog still being worked off at the hard end runs on while it moves (`TaskWorkload.draining`).
    for (
      let time = scheduler.now + ticks(1);
      taskWorkload?.draining(cluster.leader(), time);
      time += ticks(1)
    )
      await drive(scheduler, cluster, time, failed)
    for (const client of clients) client.abandon()
    for (const user of lockUsers) user.abandon()
    kv.abandon()
    for (const user of elections.users) user.abandon()
    for (const user of leases.users) user.abandon()
    windowUser?.abandon()
    taskWorkload?.abandon()
    readers.abandon()
    for (const op of afterFaults) {
      // Left waiting at a server that was then removed and shut down: its client times out, as Raft has it.
      if (!op.completed && cluster.node(op.lastTarget).decommissioned) continue
      // Retried past its session's result window (pushed out by the window user's puts on the same agent
      // session): the API's documented unknown outcome, not a stall (3-agent seeds 1178 and 1230).
      if (!op.completed && op.outsideWindow === true) continue
      if (!op.completed || op.latency > ticks(bounds.opTicks)) {
        throw new Violation(
          'liveness',
          scheduler.now,
          `operation ${op.opId}, called after the faults stopped, ${op.completed ? `took ${op.latency / MS_PER_TICK} ticks` : 'never completed'} (bound ${bounds.opTicks} ticks)`,
        )
      }
    }
    taskWorkload?.finish(cluster.leader(), scheduler.now)
    checkLogsMatch(new Map(cluster.nodes.map(node => [node.id, node.log])), scheduler.now)
    const outcome = checkOperations(kvModel, history, { timeoutMs: options.checkTimeoutMs ?? 10_000 })
    linearizability = outcome.result
    if (outcome.result === 'illegal') {
      throw new Violation(
        'linearizability',
        scheduler.now,
        `the client history is not linearizable\n${outcome.explanation ?? ''}`,
      )
    }
    await kv.finish(until => drive(scheduler, cluster, until, failed), options.checkTimeoutMs ?? 10_000)
  } catch (error) {
    if (error instanceof Violation) violation = error
    else {
      // The core or the shell threw: as much a failure as a broken invariant.
      const message = error instanceof Error ? (error.stack ?? error.message) : String(error)
      violation = new Violation('exception', scheduler.now, message)
    }
    trace(`VIOLATION ${violation.message}`)
  }

  const faults = { ...nemesis.counts }
  faults.compaction = cluster.counters.compactions
  faults.snapshotInstall = cluster.counters.snapshotsInstalled
  const net = cluster.network.stats
  const counters = cluster.counters
  return {
    seed,
    nodes: voters,
    bug,
    withTasks: options.tasks === true,
    preVote: raftOptions.preVote !== false,
    checkQuorum: raftOptions.checkQuorum !== false,
    violation: violation && {
      property: violation.property,
      message: violation.message,
      tick: violation.time / MS_PER_TICK,
    },
    ops: history.length,
    unknownOps: history.filter(op => op.output === undefined).length,
    readsGivenUp: clients.reduce((sum, client) => sum + client.gaveUp.reads, 0),
    faults,
    ticks: scheduler.now / MS_PER_TICK,
    events: scheduler.steps,
    linearizability,
    liveness: {
      leaderAfterTicks: leaderAt === undefined ? undefined : (leaderAt - faultEnd) / MS_PER_TICK,
      opsAfterFaults: afterFaults.length,
      slowestOpTicks: afterFaults.reduce((max, op) => Math.max(max, op.latency), 0) / MS_PER_TICK,
    },
    messages: { sent: net.sent, dropped: net.dropped, duplicated: net.duplicated, cut: net.cut },
    forwarding: {
      forwarded: counters.writesForwarded,
      refused: counters.forwardsRefused,
      appliedByFollower: counters.writesAppliedByFollower,
      answeredByLeader: counters.writesAnsweredByLeader,
      failed: counters.forwardsFailed,
      peerCommits: counters.peerCommits,
    },
    commitIndex: cluster.monitor.commitIndex,
    terms: cluster.monitor.terms,
    checks: { ...cluster.monitor.checks },
    locks: { ...lockChecker.stats },
    kv: kv.stats,
    elections: { ...elections.checker.stats },
    window: { ...windowChecker.stats },
    leases: { ...leases.checker.stats },
    tasks: { ...taskChecker.stats },
    readers: { ...readers.stats },
    shrink: { ...shrink.stats },
    stranded: strand.stranded,
    elapsedMs: performance.now() - started,
  }
}

/** A live leader that a quorum of its configuration's voters (itself included) follow in its term. */
function hasStableLeader(cluster: Cluster): boolean {
  const leader = cluster.leader()
  if (!leader) return false
  const config = leader.config()
  if (!config?.voters.includes(leader.id)) return false
  let following = 0
  for (const id of config.voters) {
    const node = cluster.node(id)
    if (node.up && node.term === leader.term && (node === leader || node.leader === leader.id)) following++
  }
  return following > config.voters.length / 2
}
