/**
 * The etcd and Consul workloads of one run, drawn from the seed: transactions over accounts
 * (`txn-clients.ts`), ephemeral keys bound to agents' sessions (`ephemeral-clients.ts`) and a semaphore
 * (`semaphore-clients.ts`), all through the agents' real APIs while the fault schedule runs. The runner
 * starts them with the other clients, waits for them to go idle, and calls `finish` for their checks.
 *
 * Sessions: at the default ttl (5 s) a session outlives the whole run, so on some seeds every agent's
 * session ttl is shorter (`drawSessionTtl`): then crashed agents' sessions expire within the run, and so
 * do live ones whose keep-alives a partition or a pause holds up for a ttl (rarely: the fault schedule's
 * partitions last 0.8 s at most; 1 of 56 ended sessions in 100 seeds of 5 agents). A ttl of 0.6 s would
 * end more, but then a session that lapsed in the faults expires just after them and a put in flight ends
 * with an unknown outcome, which the liveness check counts as never completed (seed 12).
 */

import type { TxnInput, TxnOutput } from '../../src/check/index.ts'
import type { NodeId } from '../../src/raft/types.ts'
import { ApiClient, type ApiClientEnv } from './api-client.ts'
import type { ClientTiming, OpDetail } from './clients.ts'
import type { Cluster } from './cluster.ts'
import { SESSION_TTL_MS } from './cluster.ts'
import {
  EphemeralChecker,
  EphemeralOwner,
  type EphemeralRead,
  EphemeralReaderWorkload,
} from './ephemeral-clients.ts'
import type { Prng } from './prng.ts'
import { MS_PER_TICK, type Scheduler } from './scheduler.ts'
import { SemaphoreChecker, SemaphoreUser } from './semaphore-clients.ts'
import { TxnChecker, txnClient } from './txn-clients.ts'

/** The session ttl of a seed's agents: on half the seeds shorter than the default, so sessions end in a run. */
export function drawSessionTtl(root: Prng): number | undefined {
  const prng = root.stream('session-ttl')
  return prng.chance(0.5) ? prng.pick([1000, 1500, 2500]) : undefined
}

export interface KvWorkloadSetup {
  scheduler: Scheduler
  cluster: Cluster
  root: Prng
  /** The runner's client timing (its time-out grows once the faults stop). */
  timing: ClientTiming
  sessionTtlMs: number | undefined
  faultEnd: number
  /** Operations called after the faults stopped, for the runner's liveness check. */
  afterFaults: {
    opId: string
    completed: boolean
    latency: number
    lastTarget: string
    outsideWindow?: boolean
  }[]
  issuing(): boolean
  fail(error: Error): void
  trace(line: string): void
}

export interface KvWorkloadStats {
  sessionTtlMs: number
  txn?: TxnChecker['stats'] & { accounts: number; clients: number; ops: number; linearizability: string }
  ephemeral?: EphemeralChecker['stats'] & { owners: number; readers: number }
  semaphore?: SemaphoreChecker['stats'] & { permits: number; users: number }
}

export class KvWorkloads {
  readonly txn: TxnChecker | undefined
  readonly ephemeral: EphemeralChecker | undefined
  readonly semaphore: SemaphoreChecker | undefined
  private readonly setup: KvWorkloadSetup
  private readonly prng: Prng
  private readonly txnClients: ApiClient<TxnInput, TxnOutput>[] = []
  private readonly readers: ApiClient<'list', EphemeralRead>[] = []
  private readonly owners: EphemeralOwner[] = []
  private readonly semaphoreUsers: SemaphoreUser[] = []
  private linearizability = 'skipped'
  private draining = false
  private processIds = 0
  private stampMs = -1
  private stampSub = 0

  constructor(setup: KvWorkloadSetup) {
    this.setup = setup
    const { scheduler, cluster } = setup
    const prng = setup.root.stream('kv-workloads')
    this.prng = prng
    if (prng.chance(0.7)) {
      this.txn = new TxnChecker(scheduler, prng.between(2, 3))
      const clients = prng.between(1, 3)
      for (let i = 0; i < clients; i++) {
        const name = `t${i + 1}`
        this.txnClients.push(
          txnClient(
            name,
            this.clientEnv(name, op => op && this.txn!.record(op)),
            this.txn,
          ),
        )
      }
    }
    if (prng.chance(0.7)) {
      const ephemeral = new EphemeralChecker(scheduler, cluster, setup.sessionTtlMs ?? SESSION_TTL_MS)
      this.ephemeral = ephemeral
      const owners = prng.sample(cluster.founders, prng.between(1, 2))
      for (const owner of owners) {
        this.owners.push(
          new EphemeralOwner(
            owner,
            {
              scheduler,
              prng: prng.stream(`owner ${owner}`),
              cluster,
              checker: ephemeral,
              issuing: setup.issuing,
              fail: setup.fail,
              trace: setup.trace,
            },
            prng.between(30, 80),
          ),
        )
      }
      const readers = prng.between(1, 2)
      for (let i = 0; i < readers; i++) {
        const name = `e${i + 1}`
        const env = this.clientEnv<'list', EphemeralRead>(name, (op, detail) => {
          if (op?.output !== undefined) ephemeral.read(op.output, detail)
        })
        // Readers read on while the run waits for dead agents' sessions to end.
        env.issuing = () => setup.issuing() || this.draining
        this.readers.push(new ApiClient(name, env, new EphemeralReaderWorkload()))
      }
    }
    if (prng.chance(0.6)) {
      const permits = prng.between(2, 3)
      const semaphore = new SemaphoreChecker(scheduler, permits)
      this.semaphore = semaphore
      const users = permits + prng.between(1, 3)
      for (let i = 0; i < users; i++) {
        this.semaphoreUsers.push(
          new SemaphoreUser(`s${i + 1}`, {
            scheduler,
            prng: prng.stream(`s${i + 1}`),
            checker: semaphore,
            node: id => cluster.node(id),
            nodeIds: cluster.ids,
            issuing: setup.issuing,
            fail: setup.fail,
            trace: setup.trace,
          }),
        )
      }
    }
  }

  private clientEnv<I, O>(
    name: string,
    record: (op: Parameters<ApiClientEnv<I, O>['record']>[0], detail: OpDetail) => void,
  ): ApiClientEnv<I, O> {
    const setup = this.setup
    const { scheduler, cluster } = setup
    return {
      scheduler,
      prng: this.prng.stream(name),
      timing: setup.timing,
      node: (id: NodeId) => cluster.node(id),
      nodeIds: cluster.ids,
      stamp: () => {
        // Distinct and increasing within a ms, as the runner's stamps (the checker relies on it).
        if (scheduler.now !== this.stampMs) {
          this.stampMs = scheduler.now
          this.stampSub = 0
        }
        return this.stampMs * 1000 + Math.min(this.stampSub++, 999)
      },
      issuing: setup.issuing,
      record: (op, detail) => {
        record(op, detail)
        if (detail.calledAt > setup.faultEnd) {
          setup.afterFaults.push({
            opId: detail.opId,
            completed: detail.completed,
            latency: detail.endedAt - detail.calledAt,
            lastTarget: detail.lastTarget,
            outsideWindow: detail.outsideWindow,
          })
        }
      },
      newProcessId: () => ++this.processIds,
      fail: setup.fail,
      trace: setup.trace,
    }
  }

  /** Starts every client within the warm-up (`warmupMs`). */
  start(warmupMs: number): void {
    const prng = this.prng
    const at = () => prng.between(2 * MS_PER_TICK, warmupMs)
    for (const client of [...this.txnClients, ...this.readers]) client.start(at())
    for (const owner of this.owners) owner.start(at())
    for (const user of this.semaphoreUsers) user.start(at())
    this.ephemeral?.start(MS_PER_TICK)
  }

  /** No client has an operation open (the liveness window may end). */
  get idle(): boolean {
    return [...this.txnClients, ...this.readers].every(client => !client.busy)
  }

  abandon(): void {
    for (const client of [...this.txnClients, ...this.readers]) client.abandon()
    for (const user of this.semaphoreUsers) user.abandon()
  }

  /**
   * The checks at the end of the run: the transaction history's linearizability, the ephemeral reads, and
   * (after driving the run on with `drive` until it is due) the end of every dead agent's session.
   */
  async finish(drive: (until: number) => Promise<void>, checkTimeoutMs: number): Promise<void> {
    this.semaphore?.check()
    if (this.txn) this.linearizability = this.txn.check(checkTimeoutMs)
    const ephemeral = this.ephemeral
    if (ephemeral) {
      // At the default ttl the wait would double the run: the ends are checked where already due.
      const until = this.setup.sessionTtlMs === undefined ? undefined : ephemeral.drainUntil()
      if (until !== undefined && until > this.setup.scheduler.now) {
        this.setup.trace(`waiting until t=${until} for dead agents' sessions to end`)
        this.draining = true
        for (const reader of this.readers) reader.start(0)
        await drive(until)
        this.draining = false
        for (const reader of this.readers) reader.abandon()
      }
      ephemeral.checkReads()
      ephemeral.checkEnds()
      ephemeral.stop()
    }
  }

  get stats(): KvWorkloadStats {
    const stats: KvWorkloadStats = { sessionTtlMs: this.setup.sessionTtlMs ?? SESSION_TTL_MS }
    if (this.txn) {
      stats.txn = {
        ...this.txn.stats,
        accounts: this.txn.accounts.length,
        clients: this.txnClients.length,
        ops: this.txn.history.length,
        linearizability: this.linearizability,
      }
    }
    if (this.ephemeral) {
      stats.ephemeral = { ...this.ephemeral.stats, owners: this.owners.length, readers: this.readers.length }
    }
    if (this.semaphore) {
      stats.semaphore = {
        ...this.semaphore.stats,
        permits: this.semaphore.permits,
        users: this.semaphoreUsers.length,
      }
    }
    return stats
  }
}
