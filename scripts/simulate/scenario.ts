/**
 * The simulation: agents as processes with different capabilities and capacities, work flowing through them
 * (tasks, a contended lock guarding a counter, proposals, a watch on every agent), a scenario of faults
 * (kill -9 the leader, cut a minority off, heal, restart the dead), and a verdict it checks on what the
 * clients and the agents reported.
 */

import type { AgentOptions } from '../../src/index.ts'
import {
  type CheckReport,
  checkKvLinearizable,
  checkLockSafety,
  checkRegister,
  checkTasks,
} from '../chaos/checkers.ts'
import { Cluster, sleep } from '../chaos/cluster.ts'
import { EventCollector } from '../chaos/events.ts'
import { History } from '../chaos/history.ts'
import type { AgentView, TaskRecord, WatchedChange } from '../chaos/host-ops.ts'
import { twoWay } from '../chaos/nemesis.ts'
import { REGISTER_KEY, Workload } from '../chaos/workload.ts'
import { Prng } from '../sim/prng.ts'
import type { SimulateOptions } from './options.ts'
import type { AgentRow, Reporter } from './view.ts'

const PROPOSAL_PREFIX = 'sim/p/'
const PROPOSERS = 2
/** A failover slower than this fails the verdict: the defaults elect a leader within about a second. */
const FAILOVER_LIMIT_MS = 15_000

/** What one fault cost: time to a new leader and until writes were acknowledged again. */
export interface Failover {
  fault: string
  /** ms from the fault to a leader on the surviving side; undefined if none came. */
  leaderMs?: number
  /** ms from the fault to the first acknowledged proposal sent after it. */
  writesMs?: number
}

export interface SimulationResult {
  ok: boolean
  seed: number
  scenario: string
  agents: number
  /** From the start to the first leader, ms. */
  firstLeaderMs: number
  elapsedMs: number
  checks: CheckReport[]
  failovers: Failover[]
  proposals: { acknowledged: number; unknown: number }
  tasks: { submitted: number; completed: number }
  locks: { grants: number }
  steals: number
  leaderChanges: number
  suspicions: number
  deaths: number
  notes: string[]
}

/**
 * The agent whose dashboard `--web` serves: the last one, which the scenario does not found the cluster
 * with, so is the least likely to be the leader it kills. Killed anyway, it comes back on the same port.
 */
export function webAgentOf(options: Pick<SimulateOptions, 'agents'>): number {
  return options.agents - 1
}

/** Capabilities and task slots differ per agent: GPUs on the odd ones, I/O on every third. */
function capabilitiesOf(index: number): string[] {
  return ['cpu', ...(index % 2 === 1 ? ['gpu'] : []), ...(index % 3 === 2 ? ['io'] : [])]
}

function slotsOf(index: number): number {
  return 2 + (index % 3)
}

/**
 * How each agent's worker runs: agent0 registers its slots but works through one task of about a second at a
 * time, so the tasks assigned to it wait (a busy agent) and idle agents steal them.
 */
function workerOf(index: number): { durationMs: number; concurrency: number } {
  return index === 0 ? { durationMs: 1000, concurrency: 1 } : { durationMs: 300, concurrency: slotsOf(index) }
}

export async function simulate(options: SimulateOptions, reporter: Reporter): Promise<SimulationResult> {
  const started = performance.now()
  const elapsed = (): number => performance.now() - started
  const note = (text: string): void => reporter.note(text, elapsed())
  const rng = new Prng(options.seed, 'simulate')
  const notes: string[] = []
  const voters = Math.min(5, options.agents % 2 === 0 ? options.agents - 1 : options.agents)
  note(`starting ${options.agents} agents as processes (seed ${options.seed}, scenario ${options.scenario})`)
  let firstLeaderMs = 0
  const cluster = await Cluster.start(
    {
      agents: options.agents,
      voters,
      prefix: 'agent',
      capabilities: capabilitiesOf,
      perAgent: index => ({
        concurrency: slotsOf(index),
        // The agent host takes `http` off before createAgent and serves the dashboard there (agent-host.ts).
        ...(options.webPort !== undefined && index === webAgentOf(options)
          ? ({ http: `127.0.0.1:${options.webPort}` } as Partial<AgentOptions>)
          : {}),
      }),
      agentOptions: { sessionTtlMs: 3000 },
      stderr: options.verbose ? 'inherit' : 'ignore',
    },
    () => {
      firstLeaderMs = elapsed()
      note(`agent0 founded the cluster and leads (${(firstLeaderMs / 1000).toFixed(1)} s)`)
    },
  )
  const phase = { text: 'forming the cluster' }
  const history = new History()
  const collector = new EventCollector(cluster, history)
  collector.onEvent(event => reporter.event(event, elapsed()))
  const proposals = new ProposalLog()
  const watches = cluster.slots.map(() => new WatchLog())
  let viewTimer: NodeJS.Timeout | undefined
  try {
    await cluster.waitForVoters(60_000)
    note(`${options.agents} agents joined, ${voters} of them voters`)
    const startAgent = async (index: number): Promise<void> => {
      await cluster.chaos(index, { op: 'worker', ...workerOf(index), steal: true }, 10_000)
      const watch = watches[index]
      watch.restart(cluster.slots[index].generation)
      await cluster.chaos(
        index,
        { op: 'watch', prefix: PROPOSAL_PREFIX, fromRevision: watch.resumeFrom() },
        10_000,
      )
    }
    await Promise.all(cluster.slots.map(slot => startAgent(slot.index)))
    cluster.afterRestart = async index => {
      await startAgent(index).catch(err => {
        notes.push(`restarting the worker or watch of agent${index}: ${err}`)
      })
    }
    collector.start()
    const views = new Map<number, AgentView>()
    const refresh = async (): Promise<void> => {
      await Promise.all(
        cluster.slots.map(async slot => {
          if (!slot.responsive) {
            views.delete(slot.index)
            return
          }
          const watch = watches[slot.index]
          const { generation } = slot
          const from = watch.cursor
          const [view, changes] = await Promise.all([
            cluster.view(slot.index, 1000).catch(() => undefined),
            cluster.chaos(slot.index, { op: 'watched', from }, 1000).catch(() => undefined) as Promise<
              WatchedChange[] | undefined
            >,
          ])
          if (view === undefined) views.delete(slot.index)
          else views.set(slot.index, view)
          if (changes !== undefined) watch.take(generation, from, changes)
        }),
      )
      reporter.frame({
        elapsedMs: elapsed(),
        phase: phase.text,
        rows: rows(cluster, views),
        totals: `proposals ${proposals.acked.size} acked · tasks ${collector.tasksCompleted}/${history.tasks.length} done · lock grants ${history.grants.filter(grant => grant.token !== undefined).length} · steals ${collector.steals} · leader changes ${collector.leaderChanges}`,
      })
    }
    let refreshing: Promise<void> | undefined
    viewTimer = setInterval(() => {
      refreshing ??= refresh().finally(() => {
        refreshing = undefined
      })
    }, 500)

    const workload = new Workload(cluster, history, rng.stream('workload'), {
      kvClients: 0,
      lockClients: 3,
      taskRate: 6,
      taskConstraints: taskRng => {
        const roll = taskRng.next()
        // Half the tasks prefer agent0, which cannot keep up (see workerOf): the others steal them.
        const preferredAgents = taskRng.chance(0.5) ? ['agent0'] : undefined
        const requiredCapabilities = roll < 0.25 ? ['gpu'] : roll < 0.35 ? ['io'] : ['cpu']
        return preferredAgents === undefined
          ? { requiredCapabilities }
          : { requiredCapabilities, preferredAgents }
      },
    })
    const proposing = { stop: false }
    const proposers = Array.from({ length: PROPOSERS }, (_, p) =>
      propose(cluster, proposals, rng.stream(`proposer${p}`), proposing),
    )
    workload.start()
    phase.text = 'tasks, locks, proposals, watches'
    note(
      'workload: tasks through the workers, 3 clients contending for one lock, proposals, a watch on every agent',
    )

    const failovers: Failover[] = []
    const at = async (fraction: number): Promise<void> => {
      const target = workStart + options.durationMs * fraction
      const wait = target - performance.now()
      if (wait > 0) await sleep(wait)
    }
    const workStart = performance.now()
    const killed: number[] = []
    const plan = options.scenario
    if (plan === 'full' || plan === 'failover') {
      await at(0.25)
      const leader = await cluster.waitForLeader(10_000)
      phase.text = `killed the leader ${cluster.slots[leader].name}`
      note(`kill -9 the leader ${cluster.slots[leader].name}`)
      const since = performance.now()
      await cluster.kill(leader)
      killed.push(leader)
      failovers.push(
        await measureFailover(
          cluster,
          since,
          `kill -9 leader ${cluster.slots[leader].name}`,
          index => index !== leader,
          note,
        ),
      )
    }
    if (plan === 'full' || plan === 'partition') {
      await at(0.45)
      let leader = await cluster.waitForLeader(10_000)
      let minority = await minorityWith(cluster, leader, rng)
      if (minority === undefined && killed.length > 0) {
        // A small cluster with a dead voter: cutting the leader off would leave no quorum anywhere.
        for (const index of killed.splice(0)) {
          note(
            `restart ${cluster.slots[index].name} first: with it dead, no side of a partition would hold a quorum`,
          )
          await cluster.restart(index)
        }
        await cluster.waitForVoters(30_000)
        leader = await cluster.waitForLeader(10_000)
        minority = await minorityWith(cluster, leader, rng)
      }
      if (minority === undefined) throw new Error('no minority can be cut off while the others keep a quorum')
      const majority = cluster.slots.map(slot => slot.index).filter(index => !minority.includes(index))
      const names = (indices: number[]): string => indices.map(index => cluster.slots[index].name).join(',')
      phase.text = `partition: ${names(minority)} cut off`
      note(`partition a minority with the leader: ${names(minority)} | ${names(majority)}`)
      const since = performance.now()
      await cluster.setPartition(twoWay(minority, majority))
      failovers.push(
        await measureFailover(
          cluster,
          since,
          `partition of the leader ${cluster.slots[leader].name}`,
          index => majority.includes(index),
          note,
        ),
      )
      await at(0.65)
      phase.text = 'healed'
      note('heal the partition')
      await cluster.heal()
    }
    if (killed.length > 0) {
      await at(0.75)
      for (const index of killed) {
        note(`restart ${cluster.slots[index].name} on its data directory`)
        await cluster.restart(index)
      }
      phase.text = 'restarted the dead'
    }
    await at(1)

    phase.text = 'draining: no new work, checking'
    note('workload stops; tasks drain; checking')
    proposing.stop = true
    await cluster.recoverAll()
    await Promise.all([workload.stop(), ...proposers])
    await cluster.waitForLeader(30_000)
    const records = await drainTasks(cluster, history, 60_000, notes)
    // A last read of the counter, recorded with the rest of its history.
    for (let attempt = 0; attempt < 10; attempt++) {
      if ((await workload.read(-1, attempt % cluster.size, REGISTER_KEY)) !== undefined) break
    }
    await collector.stop()
    clearInterval(viewTimer)
    await refreshing
    // Every watch has delivered what it will: read them to the end.
    await sleep(500)
    await refresh()
    notes.push(...workload.errors)

    const registerOps = history.kv.filter(op => op.input.key === REGISTER_KEY)
    const lastRegisterRead = [...registerOps]
      .reverse()
      .find(op => op.input.op === 'get' && op.output !== undefined)
    const checks: CheckReport[] = [
      checkTasks(history.tasks, records, history.completions),
      checkLockSafety(history.grants),
      checkRegister(registerOps, lastRegisterRead?.output?.value),
      { ...checkKvLinearizable(registerOps, 30_000), name: 'lock-protected counter linearizable' },
      await checkProposalsEverywhere(cluster, proposals),
      checkWatches(cluster, proposals, watches),
      checkFailovers(failovers),
    ]
    reporter.frame({
      elapsedMs: elapsed(),
      phase: 'done',
      rows: rows(cluster, views),
      totals: `proposals ${proposals.acked.size} acked · tasks ${collector.tasksCompleted}/${history.tasks.length} done · steals ${collector.steals} · leader changes ${collector.leaderChanges}`,
    })
    return {
      ok: checks.every(check => check.ok),
      seed: options.seed,
      scenario: options.scenario,
      agents: options.agents,
      firstLeaderMs: Math.round(firstLeaderMs),
      elapsedMs: Math.round(elapsed()),
      checks,
      failovers,
      proposals: { acknowledged: proposals.acked.size, unknown: proposals.unknown.size },
      tasks: {
        submitted: history.tasks.filter(task => task.outcome !== 'fail').length,
        completed: [...records.values()].filter(record => record?.state === 'completed').length,
      },
      locks: { grants: history.grants.filter(grant => grant.token !== undefined).length },
      steals: collector.steals,
      leaderChanges: collector.leaderChanges,
      suspicions: collector.suspicions,
      deaths: collector.deaths,
      notes,
    }
  } finally {
    clearInterval(viewTimer)
    await cluster.destroy()
  }
}

/**
 * A minority that holds the leader, as large as it can be while the agents outside it still hold a quorum of
 * the voters (an agent killed earlier counts against the quorum): the leader must step down, and the
 * others elect a new one. Non-voters are split between the two sides. Undefined if there is no such
 * minority (too few live voters besides the leader).
 */
async function minorityWith(cluster: Cluster, leader: number, rng: Prng): Promise<number[] | undefined> {
  const voterCount = (await cluster.status(leader)).voters
  const quorum = Math.floor(voterCount / 2) + 1
  const live = cluster.slots.filter(slot => slot.responsive && slot.index !== leader)
  const roles = await Promise.all(
    live.map(slot =>
      cluster.view(slot.index).then(
        view => view.role,
        () => 'joining',
      ),
    ),
  )
  const voters = rng.shuffled(live.filter((_, i) => roles[i] === 'follower').map(slot => slot.index))
  const nonVoters = live.filter((_, i) => roles[i] !== 'follower').map(slot => slot.index)
  // The voters left outside must be a quorum on their own; the leader is the one voter always inside.
  if (voters.length < quorum) return undefined
  const extraVoters = voters.length - quorum
  return [leader, ...voters.slice(0, extraVoters), ...nonVoters.slice(0, Math.floor(nonVoters.length / 2))]
}

function rows(cluster: Cluster, views: Map<number, AgentView>): AgentRow[] {
  // Member status as the leader sees it (else any agent that answers).
  const viewsList = [...views.values()]
  const observer = viewsList.find(view => view.role === 'leader') ?? viewsList[0]
  return cluster.slots.map(slot => {
    const view = views.get(slot.index)
    const harness =
      slot.state === 'killed'
        ? 'killed'
        : slot.state === 'paused'
          ? 'paused'
          : cluster.partition.some(([from, to]) => from === slot.index || to === slot.index)
            ? 'cut off'
            : undefined
    return {
      name: slot.name,
      role: view?.role ?? '-',
      term: view?.term,
      status: harness ?? observer?.members[slot.id] ?? (view === undefined ? 'no answer' : 'alive'),
      load: view?.load,
      tasksDone: view?.tasksDone,
      locksHeld: view?.locksHeld,
      capabilities: slot.options.capabilities ?? [],
    }
  })
}

/** Acknowledged and unknown proposals: key -> value. */
class ProposalLog {
  readonly acked = new Map<string, number>()
  readonly unknown = new Map<string, number>()
  next = 0
}

async function propose(
  cluster: Cluster,
  log: ProposalLog,
  rng: Prng,
  control: { stop: boolean },
): Promise<void> {
  while (!control.stop) {
    const running = cluster.slots.filter(slot => slot.host?.alive === true)
    if (running.length === 0) {
      await sleep(100)
      continue
    }
    const agent = rng.pick(running).index
    const n = log.next++
    const key = `${PROPOSAL_PREFIX}${n}`
    try {
      await cluster.chaos(agent, { op: 'write', key, value: n, timeoutMs: 4000 }, 7000)
      log.acked.set(key, n)
    } catch {
      log.unknown.set(key, n)
    }
    await sleep(rng.int(30))
  }
}

/**
 * Measures one failover: polls for a leader that `accept`s (one on the surviving side), and meanwhile
 * writes probes through the surviving agents (each with a 1 s deadline) until one is acknowledged. The
 * probes go under their own prefix: the proposal checks cover the clients' proposals only.
 */
async function measureFailover(
  cluster: Cluster,
  since: number,
  fault: string,
  accept: (index: number) => boolean,
  note: (text: string) => void,
): Promise<Failover> {
  const result: Failover = { fault }
  const end = since + FAILOVER_LIMIT_MS
  const leaderPoll = (async () => {
    while (performance.now() < end) {
      const leader = await cluster.leader(1000)
      if (leader !== undefined && accept(leader)) {
        result.leaderMs = Math.round(performance.now() - since)
        note(`${cluster.slots[leader].name} leads ${result.leaderMs} ms after the fault`)
        return
      }
      await sleep(50)
    }
  })()
  const writeProbe = (async () => {
    for (let n = 0; performance.now() < end; n++) {
      const survivors = cluster.slots.filter(slot => slot.responsive && accept(slot.index))
      const agent = survivors[n % Math.max(1, survivors.length)]
      if (agent === undefined) {
        await sleep(100)
        continue
      }
      try {
        await cluster.chaos(
          agent.index,
          { op: 'write', key: `sim/probe/${n}`, value: n, timeoutMs: 1000 },
          3000,
        )
        result.writesMs = Math.round(performance.now() - since)
        note(`writes acknowledged again ${result.writesMs} ms after the fault`)
        return
      } catch {}
    }
  })()
  await Promise.all([leaderPoll, writeProbe])
  return result
}

/** What the watch of one agent delivered, across restarts of the agent (each resumes where it stopped). */
class WatchLog {
  readonly changes: WatchedChange[] = []
  /** Index in the current process's list of changes. */
  cursor = 0
  /** The process (slot generation) whose watch this is. */
  private generation = -1

  /** A new process watches now: its list starts empty. */
  restart(generation: number): void {
    this.generation = generation
    this.cursor = 0
  }

  /** Where a restarted watch resumes: after the last change collected, else from the first revision. */
  resumeFrom(): number {
    const last = this.changes.at(-1)
    return last === undefined ? 1 : last[2] + 1
  }

  /** Changes read from index `from` of process `generation`'s list; stale answers are ignored. */
  take(generation: number, from: number, changes: WatchedChange[]): void {
    if (generation !== this.generation || from !== this.cursor) return
    this.changes.push(...changes)
    this.cursor += changes.length
  }
}

const TERMINAL = new Set(['completed', 'dead', 'expired'])

async function drainTasks(
  cluster: Cluster,
  history: History,
  timeoutMs: number,
  notes: string[],
): Promise<Map<string, TaskRecord | undefined>> {
  const ids = history.tasks.map(task => task.id)
  const records = new Map<string, TaskRecord | undefined>()
  const end = performance.now() + timeoutMs
  for (;;) {
    const leader = await cluster.leader()
    if (leader !== undefined) {
      const answer = (await cluster
        .chaos(leader, { op: 'tasks', ids, timeoutMs: 5000 }, 10_000)
        .catch(() => undefined)) as (TaskRecord | null)[] | undefined
      if (answer !== undefined) {
        for (const [i, id] of ids.entries()) records.set(id, answer[i] ?? undefined)
        const open = [...records.values()].filter(
          record => record !== undefined && !TERMINAL.has(record.state),
        )
        if (open.length === 0) return records
        if (performance.now() > end) {
          notes.push(`${open.length} tasks still open ${timeoutMs / 1000} s after the work stopped`)
          return records
        }
      }
    }
    if (performance.now() > end && records.size > 0) return records
    await sleep(500)
  }
}

/** Every acknowledged proposal is on every agent (after a linearizable read brings each up to date). */
async function checkProposalsEverywhere(cluster: Cluster, proposals: ProposalLog): Promise<CheckReport> {
  const entries = [...proposals.acked.entries()]
  const violations: string[] = []
  for (const slot of cluster.slots) {
    let missing: string[] | undefined
    for (let attempt = 0; attempt < 5 && missing === undefined; attempt++) {
      missing = (await cluster
        .chaos(slot.index, { op: 'verify', entries, timeoutMs: 5000 }, 15_000)
        .catch(() => undefined)) as string[] | undefined
    }
    if (missing === undefined) violations.push(`${slot.name} could not be read`)
    else if (missing.length > 0) {
      violations.push(
        `${slot.name} lacks ${missing.length} acknowledged proposals, e.g. ${missing.slice(0, 3).join(', ')}`,
      )
    }
  }
  return {
    name: 'acknowledged proposals on every agent',
    ok: violations.length === 0,
    summary: `${entries.length} acknowledged proposals (${proposals.unknown.size} of unknown outcome) checked on ${cluster.size} agents`,
    violations,
  }
}

/**
 * Each agent's watch (resumed after restarts from the last revision it delivered) saw every acknowledged
 * proposal, each change once, in increasing revision order, and nothing that was never proposed.
 */
function checkWatches(cluster: Cluster, proposals: ProposalLog, watches: WatchLog[]): CheckReport {
  const violations: string[] = []
  let delivered = 0
  for (const slot of cluster.slots) {
    const changes = watches[slot.index].changes
    delivered += changes.length
    const seen = new Map<string, unknown>()
    for (let i = 0; i < changes.length; i++) {
      const [key, value, revision] = changes[i]
      if (i > 0 && revision <= changes[i - 1][2]) {
        violations.push(`${slot.name}: revision ${revision} after ${changes[i - 1][2]}`)
        break
      }
      if (!proposals.acked.has(key) && !proposals.unknown.has(key))
        violations.push(`${slot.name}: ${key} was never proposed`)
      seen.set(key, value)
    }
    const missed = [...proposals.acked].filter(([key, value]) => seen.get(key) !== value)
    if (missed.length > 0) {
      violations.push(
        `${slot.name}'s watch missed ${missed.length} acknowledged proposals, e.g. ${missed
          .slice(0, 3)
          .map(([key]) => key)
          .join(', ')}`,
      )
    }
  }
  return {
    name: 'watches saw every proposal once, in order',
    ok: violations.length === 0,
    summary: `${delivered} changes delivered to ${cluster.size} watches (restarted watches resume after their last revision)`,
    violations: violations.slice(0, 5),
  }
}

function checkFailovers(failovers: Failover[]): CheckReport {
  const violations = failovers
    .filter(failover => failover.leaderMs === undefined || failover.writesMs === undefined)
    .map(
      failover =>
        `${failover.fault}: no ${failover.leaderMs === undefined ? 'leader' : 'acknowledged write'} within ${FAILOVER_LIMIT_MS / 1000} s`,
    )
  const summary =
    failovers.length === 0
      ? 'no fault in this scenario'
      : failovers
          .map(
            failover =>
              `${failover.fault}: leader after ${failover.leaderMs ?? '-'} ms, writes after ${failover.writesMs ?? '-'} ms`,
          )
          .join('; ')
  return { name: 'failover', ok: violations.length === 0, summary, violations }
}
