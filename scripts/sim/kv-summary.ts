/** Totals of the transaction, ephemeral-key and semaphore workloads (`kv-workloads.ts`) over many seeds. */

import { SESSION_TTL_MS } from './cluster.ts'
import type { RunResult } from './runner.ts'

export interface KvTotals {
  /** Seeds that ran each workload, and seeds with a session ttl below the default. */
  seeds: { txn: number; ephemeral: number; semaphore: number; shortTtl: number }
  txn: {
    ops: number
    transfers: number
    succeeded: number
    reads: number
    localReads: number
    unknown: number
    timeouts: number
  }
  ephemeral: {
    puts: number
    answered: number
    reads: number
    sessionsEnded: number
    endedWhileAlive: number
    absentSeen: number
  }
  semaphore: { grants: number; heldChecks: number; maxHeld: number }
}

export function kvTotals(results: readonly RunResult[]): KvTotals {
  const totals: KvTotals = {
    seeds: { txn: 0, ephemeral: 0, semaphore: 0, shortTtl: 0 },
    txn: { ops: 0, transfers: 0, succeeded: 0, reads: 0, localReads: 0, unknown: 0, timeouts: 0 },
    ephemeral: { puts: 0, answered: 0, reads: 0, sessionsEnded: 0, endedWhileAlive: 0, absentSeen: 0 },
    semaphore: { grants: 0, heldChecks: 0, maxHeld: 0 },
  }
  for (const { kv } of results) {
    if (kv === undefined) continue
    if (kv.sessionTtlMs < SESSION_TTL_MS) totals.seeds.shortTtl++
    if (kv.txn) {
      totals.seeds.txn++
      totals.txn.ops += kv.txn.ops
      totals.txn.transfers += kv.txn.transfers
      totals.txn.succeeded += kv.txn.transfersSucceeded
      totals.txn.reads += kv.txn.reads
      totals.txn.localReads += kv.txn.localReads
      totals.txn.unknown += kv.txn.unknown
      if (kv.txn.linearizability === 'unknown') totals.txn.timeouts++
    }
    if (kv.ephemeral) {
      totals.seeds.ephemeral++
      totals.ephemeral.puts += kv.ephemeral.puts
      totals.ephemeral.answered += kv.ephemeral.putsAnswered
      totals.ephemeral.reads += kv.ephemeral.reads
      totals.ephemeral.sessionsEnded += kv.ephemeral.sessionsEnded
      totals.ephemeral.endedWhileAlive += kv.ephemeral.endedWhileAlive
      totals.ephemeral.absentSeen += kv.ephemeral.absentSeen
    }
    if (kv.semaphore) {
      totals.seeds.semaphore++
      totals.semaphore.grants += kv.semaphore.grants
      totals.semaphore.heldChecks += kv.semaphore.heldChecks
      totals.semaphore.maxHeld = Math.max(totals.semaphore.maxHeld, kv.semaphore.maxHeld)
    }
  }
  return totals
}

/** The report lines: what each workload did in all. */
export function kvLines(results: readonly RunResult[]): string[] {
  const { seeds, txn, ephemeral, semaphore } = kvTotals(results)
  return [
    `transactions (${seeds.txn} seeds): ${txn.ops} ops checked, ${txn.transfers} transfers (${txn.succeeded} succeeded), ${txn.reads} linearizable and ${txn.localReads} local reads, ${txn.unknown} unknown outcomes, ${txn.timeouts} checks without verdict`,
    `ephemeral keys (${seeds.ephemeral} seeds, ${seeds.shortTtl} of all seeds with a short session ttl): ${ephemeral.puts} puts (${ephemeral.answered} answered), ${ephemeral.reads} reads, ${ephemeral.sessionsEnded} owner sessions ended (${ephemeral.endedWhileAlive} while their agent ran), ${ephemeral.absentSeen} key reads after their deletion`,
    `semaphore (${seeds.semaphore} seeds): ${semaphore.grants} permits granted, ${semaphore.heldChecks} isHeld() true checked, most held at once ${semaphore.maxHeld}`,
  ]
}
