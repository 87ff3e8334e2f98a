/**
 * The transaction workload: a few accounts under `acct/`, opened together by one transaction, then moved
 * by transfers (a transaction comparing both accounts' versions, and now and then the memo's value, that
 * writes both balances at once), racing plain puts and deletes of the memo key `acct/memo` (which makes
 * transfers that compare it fail), linearizable `list` and `getEntry` reads, and local `list` reads, all
 * through the agents' real consensus API (`Consensus.transaction`, `list`, `getEntry`, `propose`).
 *
 * Checked: the sum of the balances is the opening total in every read that sees them (linearizable or
 * local: a transaction applies at one revision on every replica, so no replica's state shows half of one),
 * and the history of linearizable reads, plain writes and transactions is linearizable against `txnModel`.
 */

import type { KvEntry } from '../../src/api.ts'
import {
  checkOperations,
  type TxnCompare,
  type TxnEntry,
  type TxnInput,
  type TxnOperation,
  type TxnOutput,
  type TxnValue,
  type TxnWrite,
  txnModel,
} from '../../src/check/index.ts'
import { type ApiCall, ApiClient, type ApiClientEnv, type ApiWorkload, memberKvApi } from './api-client.ts'
import { Violation } from './invariants.ts'
import type { Prng } from './prng.ts'
import type { Scheduler } from './scheduler.ts'

export const TXN_PREFIX = 'acct/'
export const MEMO_KEY = `${TXN_PREFIX}memo`
/** Each account's opening balance. */
export const OPENING_BALANCE = 100

/** The history, the sum invariant and the counts of the transaction workload of one run. */
export class TxnChecker {
  readonly accounts: readonly string[]
  readonly total: number
  readonly history: TxnOperation[] = []
  readonly stats = {
    transfers: 0,
    transfersSucceeded: 0,
    opens: 0,
    memoWrites: 0,
    reads: 0,
    localReads: 0,
    unknown: 0,
  }
  private readonly scheduler: Scheduler

  constructor(scheduler: Scheduler, accounts: number) {
    this.scheduler = scheduler
    this.accounts = Array.from({ length: accounts }, (_, i) => `${TXN_PREFIX}${i}`)
    this.total = accounts * OPENING_BALANCE
  }

  /** Every key the workload touches: one partition of the history. */
  get keys(): string[] {
    return [...this.accounts, MEMO_KEY]
  }

  /**
   * A read saw `entries` (all keys under the prefix, at one revision): either no account (not opened yet)
   * or all of them, summing to the total.
   */
  observeSnapshot(entries: Readonly<Record<string, TxnEntry>>, where: string): void {
    const present = this.accounts.filter(key => Object.hasOwn(entries, key))
    if (present.length === 0) return
    const balances = present.map(key => entries[key].value)
    const sum = balances.reduce<number>(
      (total, value) => total + (typeof value === 'number' ? value : NaN),
      0,
    )
    if (present.length !== this.accounts.length || sum !== this.total) {
      throw new Violation(
        'txn-sum',
        this.scheduler.now,
        `${where} read accounts ${JSON.stringify(entries)}: ${present.length} of ${this.accounts.length} accounts summing to ${sum}, not ${this.total}`,
      )
    }
  }

  record(op: TxnOperation): void {
    this.history.push(op)
    if (op.output === undefined) this.stats.unknown++
  }

  /** The linearizability check of the whole history (at the end of the run). */
  check(timeoutMs: number): 'ok' | 'unknown' {
    const outcome = checkOperations(txnModel, this.history, { timeoutMs })
    if (outcome.result === 'illegal') {
      throw new Violation(
        'txn-linearizability',
        this.scheduler.now,
        `the transaction history is not linearizable\n${outcome.explanation ?? ''}`,
      )
    }
    return outcome.result
  }
}

/** What one transaction client knows and decides. */
export class TxnWorkload implements ApiWorkload<TxnInput, TxnOutput> {
  private readonly prng: Prng
  private readonly checker: TxnChecker
  /** The last snapshot this client read (what its next transfer compares against). */
  private seen: Record<string, TxnEntry> | undefined

  constructor(prng: Prng, checker: TxnChecker) {
    this.prng = prng
    this.checker = checker
  }

  next(opId: string): ApiCall<TxnInput, TxnOutput> | undefined {
    const prng = this.prng
    const checker = this.checker
    const seen = this.seen
    const opened = seen !== undefined && checker.accounts.every(key => Object.hasOwn(seen, key))
    const kind = prng.weighted(
      opened
        ? { list: 25, get: 10, local: 8, transfer: 40, memoPut: 10, memoDelete: 4, open: 3 }
        : { list: 50, get: 5, local: 5, transfer: 0, memoPut: 5, memoDelete: 0, open: 35 },
    )
    switch (kind) {
      case 'list':
        return this.list(false)
      case 'local':
        return this.list(true)
      case 'get': {
        const key = prng.pick(checker.accounts)
        return {
          input: { op: 'read', keys: [key] },
          read: true,
          run: async agent => {
            const entry = await memberKvApi(agent).consensus.getEntry(key)
            return { entries: entry === undefined ? {} : { [key]: toTxnEntry(entry) } }
          },
        }
      }
      case 'open': {
        checker.stats.opens++
        // Every account absent: open them all (clients race this; one wins).
        const compare: TxnCompare[] = checker.accounts.map(key => ({
          key,
          target: 'exists',
          op: '==',
          value: false,
        }))
        const success: TxnWrite[] = checker.accounts.map(key => ({
          type: 'put',
          key,
          value: OPENING_BALANCE,
        }))
        return this.txn({ op: 'txn', compare, success, failure: [] })
      }
      case 'transfer': {
        checker.stats.transfers++
        const [from, to] = prng.sample(checker.accounts, 2)
        const amount = prng.between(1, 30)
        const a = seen![from]
        const b = seen![to]
        const compare: TxnCompare[] = [
          { key: from, target: 'version', op: '==', value: a.version },
          { key: to, target: 'version', op: '==', value: b.version },
        ]
        const success: TxnWrite[] = [
          { type: 'put', key: from, value: (a.value as number) - amount },
          { type: 'put', key: to, value: (b.value as number) + amount },
        ]
        const memo = seen![MEMO_KEY]
        if (prng.chance(0.3)) {
          // Guarded by the memo as last seen too (absent: it must not exist), and stamping it.
          compare.push(
            memo === undefined
              ? { key: MEMO_KEY, target: 'exists', op: '==', value: false }
              : { key: MEMO_KEY, target: 'value', op: '==', value: memo.value },
          )
          success.push({ type: 'put', key: MEMO_KEY, value: opId })
        }
        const failure: TxnWrite[] = prng.chance(0.3)
          ? [{ type: 'put', key: MEMO_KEY, value: `${opId}!` }]
          : []
        return this.txn({ op: 'txn', compare, success, failure })
      }
      case 'memoPut': {
        checker.stats.memoWrites++
        return {
          input: { op: 'put', key: MEMO_KEY, value: opId },
          read: false,
          run: async agent => {
            await memberKvApi(agent).consensus.propose(MEMO_KEY, opId)
            return {}
          },
        }
      }
      case 'memoDelete': {
        checker.stats.memoWrites++
        return {
          input: { op: 'delete', key: MEMO_KEY },
          read: false,
          run: async agent => {
            await memberKvApi(agent).consensus.delete(MEMO_KEY)
            return {}
          },
        }
      }
    }
  }

  answered(call: ApiCall<TxnInput, TxnOutput>, output: TxnOutput): void {
    if (call.input.op === 'read' && output.entries !== undefined) {
      this.checker.stats.reads++
      this.seen = { ...this.seen, ...output.entries }
      for (const key of call.input.keys) if (!Object.hasOwn(output.entries, key)) delete this.seen[key]
    }
    if (call.input.op === 'txn' && output.succeeded) this.checker.stats.transfersSucceeded++
  }

  /** A `list` of the prefix: linearizable (into the history) or local (the sum invariant only). */
  private list(local: boolean): ApiCall<TxnInput, TxnOutput> | undefined {
    const checker = this.checker
    const keys = checker.keys
    const run = async (agent: Parameters<ApiCall<TxnInput, TxnOutput>['run']>[0]): Promise<TxnOutput> => {
      const page = await memberKvApi(agent).consensus.list(TXN_PREFIX, {
        consistency: local ? 'local' : 'linearizable',
      })
      const entries: Record<string, TxnEntry> = {}
      for (const entry of page.entries) entries[entry.key] = toTxnEntry(entry)
      checker.observeSnapshot(entries, `${local ? 'a local' : 'a linearizable'} list at ${agent.id}`)
      return { entries }
    }
    if (!local) return { input: { op: 'read', keys }, read: true, run }
    // A local read is checked for the sum where it runs and left out of the history (it may be stale).
    return {
      input: { op: 'read', keys },
      read: true,
      unrecorded: true,
      run: agent => {
        checker.stats.localReads++
        return run(agent).then(() => ({}))
      },
    }
  }

  private txn(input: Extract<TxnInput, { op: 'txn' }>): ApiCall<TxnInput, TxnOutput> {
    return {
      input,
      read: false,
      run: async agent => {
        const result = await memberKvApi(agent).consensus.transaction({
          compare: input.compare.map(c => ({ ...c })),
          success: input.success.map(op => ({ ...op })),
          failure: input.failure.map(op => ({ ...op })),
        })
        return { succeeded: result.succeeded }
      },
    }
  }
}

function toTxnEntry(entry: KvEntry): TxnEntry {
  return { value: entry.value as TxnValue, version: entry.version }
}

/** A transaction client: the workload above behind the retry rules of `ApiClient`. */
export function txnClient(
  name: string,
  env: ApiClientEnv<TxnInput, TxnOutput>,
  checker: TxnChecker,
): ApiClient<TxnInput, TxnOutput> {
  return new ApiClient(name, env, new TxnWorkload(env.prng, checker))
}
