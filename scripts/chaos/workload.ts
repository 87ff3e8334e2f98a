/**
 * The client workload of the chaos suite and the simulation, run from the parent process against random
 * agents: KV writes and linearizable reads, a lock-protected counter, and task submissions. Each operation
 * is recorded with its invocation and completion on the parent's clock.
 *
 * Outcomes: a write that fails with `RevisionMismatchError` was refused (no effect); any other failure
 * (`NoLeaderError`, a deadline, a killed or paused agent) leaves it unknown: it may take effect later. A
 * failed read had no effect and is left out.
 */
import type { Prng } from '../sim/prng.ts'
import { type Cluster, sleep } from './cluster.ts'
import { outcomeOf } from './errors.ts'
import type { History, LockGrant, Outcome } from './history.ts'

/** The lock the lock clients contend for, and the register it protects. */
export const LOCK_KEY = 'chaos/lock'
/** The lock the lease clients hold for seconds at a time, watching `isHeld()`. */
export const LEASE_KEY = 'chaos/lease'
export const REGISTER_KEY = 'chaos/register'
const KV_PREFIX = 'chaos/kv/'

export interface WorkloadOptions {
  kvClients: number
  /** Distinct keys the KV clients write: few keys make many conflicts, the checker partitions by key. */
  kvKeys: number
  lockClients: number
  /**
   * Clients that take a second lock with a long lease and hold it for seconds, asking `isHeld()` every
   * 100 ms: a holder cut off by a partition must stop claiming the lock before anyone else gets it.
   */
  leaseClients: number
  /** Lease of each lock grant, ms. */
  lockTtlMs: number
  /** Tasks submitted per second (0 = none). */
  taskRate: number
  /** Constraints of a task, drawn per task (default none). */
  taskConstraints?: (rng: Prng) => { requiredCapabilities?: string[]; preferredAgents?: string[] }
  /** Attempt timeout of each task, ms. */
  taskTimeoutMs: number
  /** Deadline of a read inside the agent, ms. */
  readTimeoutMs: number
  /** Deadline of a write inside the agent, ms. */
  writeTimeoutMs: number
  /** Deadline of a lock holder's read of the counter: short, so that a cut-off holder soon probes its lease. */
  lockReadTimeoutMs: number
  /** Pause between two operations of one client, ms (uniform in [0, thinkMs]). */
  thinkMs: number
}

export const DEFAULT_WORKLOAD: WorkloadOptions = {
  kvClients: 6,
  kvKeys: 8,
  lockClients: 3,
  leaseClients: 2,
  lockTtlMs: 4000,
  taskRate: 8,
  taskTimeoutMs: 5000,
  readTimeoutMs: 3000,
  writeTimeoutMs: 5000,
  lockReadTimeoutMs: 1000,
  thinkMs: 20,
}

/** How much longer than the agent's own deadline the parent waits (a paused agent answers late). */
const PARENT_SLACK_MS = 3000

export class Workload {
  readonly options: WorkloadOptions
  private readonly cluster: Cluster
  private readonly history: History
  private readonly rng: Prng
  private stopping = false
  private readonly loops: Promise<void>[] = []
  private nextTask = 0
  /** Harness errors that are not outcomes (an operation the agents refused as invalid). */
  readonly errors: string[] = []

  constructor(cluster: Cluster, history: History, rng: Prng, options: Partial<WorkloadOptions> = {}) {
    this.cluster = cluster
    this.history = history
    this.rng = rng
    this.options = { ...DEFAULT_WORKLOAD, ...options }
  }

  start(): void {
    for (let client = 0; client < this.options.kvClients; client++) this.loops.push(this.kvClient(client))
    for (let client = 0; client < this.options.lockClients; client++) {
      this.loops.push(this.lockClient(this.options.kvClients + client))
    }
    for (let client = 0; client < this.options.leaseClients; client++) {
      this.loops.push(this.leaseClient(this.options.kvClients + this.options.lockClients + client))
    }
    if (this.options.taskRate > 0) this.loops.push(this.taskSubmitter())
  }

  /** Stops issuing operations and waits for those under way. */
  async stop(): Promise<void> {
    this.stopping = true
    await Promise.all(this.loops)
  }

  get kvKeys(): string[] {
    return Array.from({ length: this.options.kvKeys }, (_, i) => `${KV_PREFIX}${i}`)
  }

  /** A running agent (possibly paused: its requests then end unknown), or undefined if none runs. */
  private pickAgent(rng: Prng): number | undefined {
    const running = this.cluster.slots.filter(slot => slot.host?.alive === true)
    return running.length === 0 ? undefined : rng.pick(running).index
  }

  private async think(rng: Prng): Promise<void> {
    await sleep(rng.int(this.options.thinkMs + 1))
  }

  private async kvClient(client: number): Promise<void> {
    const rng = this.rng.stream(`kv${client}`)
    let seq = 0
    while (!this.stopping) {
      const agent = this.pickAgent(rng)
      if (agent === undefined) {
        await sleep(100)
        continue
      }
      const key = `${KV_PREFIX}${rng.int(this.options.kvKeys)}`
      const kind = rng.weighted({ get: 4, put: 3, cas: 2, delete: 1 })
      const value = `c${client}-${seq++}`
      if (kind === 'get') await this.read(client, agent, key)
      else if (kind === 'put') await this.write(client, agent, key, value)
      else if (kind === 'delete') await this.remove(client, agent, key)
      else {
        const read = await this.read(client, agent, key)
        if (read !== undefined) await this.write(client, agent, key, value, read)
      }
      await this.think(rng)
    }
  }

  /** A linearizable read, recorded as `get`; the value and the key's revision, or undefined if it failed. */
  async read(
    client: number,
    agent: number,
    key: string,
    timeoutMs = this.options.readTimeoutMs,
  ): Promise<{ value: string | undefined; revision: number } | undefined> {
    const { history } = this
    const call = history.clock.now()
    try {
      const answer = (await this.cluster.chaos(
        agent,
        { op: 'read', key, timeoutMs },
        timeoutMs + PARENT_SLACK_MS,
      )) as { value: unknown; revision: number }
      const ret = history.clock.now()
      const value = answer.value === undefined || answer.value === null ? undefined : String(answer.value)
      history.kv.push({
        clientId: client,
        input: { op: 'get', key },
        call,
        output: value === undefined ? {} : { value },
        return: ret,
      })
      history.count('read', 'ok')
      return { value, revision: answer.revision }
    } catch (err) {
      history.droppedReads++
      history.error('read', err)
      history.count('read', 'fail')
      return undefined
    }
  }

  /**
   * A put, or with `expected` a compare-and-set on the revision read: recorded as `cas` from the value read
   * (values are unique per key, so "unchanged revision" and "unchanged value" are the same condition).
   */
  async write(
    client: number,
    agent: number,
    key: string,
    value: string,
    expected?: { value: string | undefined; revision: number },
  ): Promise<Outcome> {
    const { history } = this
    const kind = expected === undefined ? 'put' : 'cas'
    const call = history.clock.now()
    let outcome: Outcome
    try {
      await this.cluster.chaos(
        agent,
        {
          op: 'write',
          key,
          value,
          expectedRevision: expected?.revision,
          timeoutMs: this.options.writeTimeoutMs,
        },
        this.options.writeTimeoutMs + PARENT_SLACK_MS,
      )
      outcome = 'ok'
    } catch (err) {
      outcome = outcomeOf(err)
      history.error(kind, err)
      if (outcome === 'fail' && (err as Error).name !== 'RevisionMismatchError') {
        // Refused as invalid: no effect, so not part of the history; but the harness asked for nothing invalid.
        this.errors.push(`${kind} ${key}: ${err}`)
        history.count(kind, outcome)
        return outcome
      }
    }
    const ret = outcome === 'unknown' ? Number.POSITIVE_INFINITY : history.clock.now()
    if (expected === undefined) {
      history.kv.push({
        clientId: client,
        input: { op: 'put', key, value },
        call,
        output: outcome === 'unknown' ? undefined : {},
        return: ret,
      })
    } else {
      history.kv.push({
        clientId: client,
        input: { op: 'cas', key, expected: expected.value, value },
        call,
        output: outcome === 'unknown' ? undefined : { ok: outcome === 'ok' },
        return: ret,
      })
    }
    history.count(kind, outcome)
    return outcome
  }

  private async remove(client: number, agent: number, key: string): Promise<void> {
    const { history } = this
    const call = history.clock.now()
    let outcome: Outcome
    try {
      await this.cluster.chaos(
        agent,
        { op: 'delete', key, timeoutMs: this.options.writeTimeoutMs },
        this.options.writeTimeoutMs + PARENT_SLACK_MS,
      )
      outcome = 'ok'
    } catch (err) {
      outcome = outcomeOf(err)
      history.error('delete', err)
      if (outcome === 'fail') {
        this.errors.push(`delete ${key}: ${err}`)
        history.count('delete', outcome)
        return
      }
    }
    history.kv.push({
      clientId: client,
      input: { op: 'delete', key },
      call,
      output: outcome === 'unknown' ? undefined : {},
      return: outcome === 'unknown' ? Number.POSITIVE_INFINITY : history.clock.now(),
    })
    history.count('delete', outcome)
  }

  /**
   * A lock client: acquire, check `isHeld()`, read the register, refuse to write over a newer holder's token
   * (the fence a resource keeps), check again, write count+1 tagged with the token as a compare-and-set on
   * the revision read, release.
   */
  private async lockClient(client: number): Promise<void> {
    const rng = this.rng.stream(`lock${client}`)
    const { history, cluster } = this
    const { lockTtlMs, writeTimeoutMs } = this.options
    const acquireTimeoutMs = 2 * lockTtlMs
    while (!this.stopping) {
      const agent = this.pickAgent(rng)
      if (agent === undefined) {
        await sleep(100)
        continue
      }
      const grant: LockGrant = {
        client,
        agent: cluster.slots[agent].name,
        key: LOCK_KEY,
        call: history.clock.now(),
        outcome: 'unknown',
        heldChecks: [],
      }
      history.grants.push(grant)
      let handle: number
      try {
        const answer = (await cluster.chaos(
          agent,
          { op: 'acquire', key: LOCK_KEY, ttl: lockTtlMs, timeoutMs: acquireTimeoutMs },
          acquireTimeoutMs + PARENT_SLACK_MS,
        )) as { handle: number; token: string }
        grant.granted = history.clock.now()
        grant.token = BigInt(answer.token)
        grant.outcome = 'ok'
        handle = answer.handle
      } catch (err) {
        grant.outcome = outcomeOf(err)
        history.error('acquire', err)
        history.count('acquire', grant.outcome)
        await this.think(rng)
        continue
      }
      history.count('acquire', 'ok')
      if (await this.held(agent, handle, grant)) {
        const read = await this.read(client, agent, REGISTER_KEY, this.options.lockReadTimeoutMs)
        if (read === undefined) {
          // Cut off from the leader, most likely: watch the lease run out. While the cluster may hand the lock
          // to another agent, `isHeld()` must already say false; each answer is checked against the grants.
          while (!this.stopping && (await this.held(agent, handle, grant))) await sleep(100)
        } else {
          const current = parseRegister(read.value)
          if (grant.token !== undefined && current.token > grant.token) {
            // A newer holder wrote already: this grant is stale, and the resource refuses it.
            history.count('fenced', 'fail')
          } else if (await this.held(agent, handle, grant)) {
            const next = `${current.count + 1}@${grant.token}`
            await this.write(client, agent, REGISTER_KEY, next, read)
          }
        }
      }
      grant.released = history.clock.now()
      try {
        await cluster.chaos(
          agent,
          { op: 'release', handle, timeoutMs: writeTimeoutMs },
          writeTimeoutMs + PARENT_SLACK_MS,
        )
        history.count('release', 'ok')
      } catch (err) {
        history.error('release', err)
        history.count('release', outcomeOf(err))
      }
      await this.think(rng)
    }
  }

  /** Holds `LEASE_KEY` (lease 20 s) for 2-6 s, asking `isHeld()` every 100 ms, then releases it. */
  private async leaseClient(client: number): Promise<void> {
    const rng = this.rng.stream(`lease${client}`)
    const { history, cluster } = this
    const ttl = 20_000
    while (!this.stopping) {
      const agent = this.pickAgent(rng)
      if (agent === undefined) {
        await sleep(100)
        continue
      }
      const grant: LockGrant = {
        client,
        agent: cluster.slots[agent].name,
        key: LEASE_KEY,
        call: history.clock.now(),
        outcome: 'unknown',
        heldChecks: [],
      }
      history.grants.push(grant)
      let handle: number
      try {
        const answer = (await cluster.chaos(
          agent,
          { op: 'acquire', key: LEASE_KEY, ttl, timeoutMs: 30_000 },
          30_000 + PARENT_SLACK_MS,
        )) as { handle: number; token: string }
        grant.granted = history.clock.now()
        grant.token = BigInt(answer.token)
        grant.outcome = 'ok'
        handle = answer.handle
      } catch (err) {
        grant.outcome = outcomeOf(err)
        history.error('acquire', err)
        history.count('acquire', grant.outcome)
        await this.think(rng)
        continue
      }
      history.count('acquire', 'ok')
      const until = performance.now() + rng.between(2000, 6000)
      while (!this.stopping && performance.now() < until && (await this.held(agent, handle, grant))) {
        await sleep(100)
      }
      grant.released = history.clock.now()
      try {
        await cluster.chaos(agent, { op: 'release', handle, timeoutMs: this.options.writeTimeoutMs }, 8000)
        history.count('release', 'ok')
      } catch (err) {
        history.error('release', err)
        history.count('release', outcomeOf(err))
      }
      await this.think(rng)
    }
  }

  private async held(agent: number, handle: number, grant: LockGrant): Promise<boolean> {
    const call = this.history.clock.now()
    try {
      const held = (await this.cluster.chaos(agent, { op: 'held', handle }, 2 * PARENT_SLACK_MS)) as boolean
      grant.heldChecks.push([call, this.history.clock.now(), held])
      this.history.count('isHeld', 'ok')
      return held
    } catch {
      this.history.count('isHeld', 'fail')
      return false
    }
  }

  private async taskSubmitter(): Promise<void> {
    const rng = this.rng.stream('tasks')
    const { history, options } = this
    const interval = 1000 / options.taskRate
    while (!this.stopping) {
      const started = performance.now()
      const agent = this.pickAgent(rng)
      if (agent !== undefined) {
        const id = `task-${this.nextTask++}`
        const drawn = options.taskConstraints?.(rng) ?? {}
        const requiredCapabilities = drawn.requiredCapabilities ?? []
        const call = history.clock.now()
        let outcome: Outcome
        try {
          await this.cluster.chaos(
            agent,
            {
              op: 'submit',
              task: {
                id,
                type: 'chaos',
                payload: { n: this.nextTask },
                constraints: {
                  ...drawn,
                  requiredCapabilities,
                  maxRetries: 1000,
                  timeout: options.taskTimeoutMs,
                },
              },
              timeoutMs: options.writeTimeoutMs,
            },
            options.writeTimeoutMs + PARENT_SLACK_MS,
          )
          outcome = 'ok'
        } catch (err) {
          outcome = outcomeOf(err)
          history.error('submit', err)
          if (outcome === 'fail') this.errors.push(`submit ${id}: ${err}`)
        }
        history.tasks.push({ id, call, return: history.clock.now(), outcome, requiredCapabilities })
        history.count('submit', outcome)
      }
      await sleep(Math.max(0, interval - (performance.now() - started)))
    }
  }
}

/** The register's value `count@token`; an absent register is count 0, token 0. */
export function parseRegister(value: string | undefined): { count: number; token: bigint } {
  if (value === undefined) return { count: 0, token: 0n }
  const [count, token] = value.split('@')
  return { count: Number(count), token: BigInt(token ?? '0') }
}
