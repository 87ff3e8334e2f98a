/**
 * The replicated service under test: a string key-value store with put, delete and compare-and-set, applied
 * from the log, and get, served from local state at a ReadIndex point. Its inputs and outputs are the
 * checker's (`src/check`), so the history the clients record is checked against the same semantics.
 */

import type { KvInput, KvOutput } from '../../src/check/index.ts'

/** The inputs that go through the log. */
export type KvWrite = Exclude<KvInput, { op: 'get' }>

/** A write as proposed: `opId` names the client operation, so an entry can be matched to its proposal. */
export interface KvCommand {
  opId: string
  input: KvWrite
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()

export function encodeCommand(command: KvCommand): Uint8Array {
  return encoder.encode(JSON.stringify(command))
}

export function decodeCommand(data: Uint8Array): KvCommand {
  return JSON.parse(decoder.decode(data)) as KvCommand
}

export class KvStore {
  private readonly values: Map<string, string>

  constructor(values: Iterable<[string, string]> = []) {
    this.values = new Map(values)
  }

  static restore(data: Uint8Array): KvStore {
    if (data.length === 0) return new KvStore()
    return new KvStore(JSON.parse(decoder.decode(data)) as [string, string][])
  }

  get size(): number {
    return this.values.size
  }

  get(key: string): KvOutput {
    const value = this.values.get(key)
    return value === undefined ? {} : { value }
  }

  apply(input: KvWrite): KvOutput {
    switch (input.op) {
      case 'put':
        this.values.set(input.key, input.value)
        return {}
      case 'delete':
        this.values.delete(input.key)
        return {}
      case 'cas': {
        const ok = this.values.get(input.key) === input.expected
        if (ok) this.values.set(input.key, input.value)
        return { ok }
      }
    }
  }

  /** The state as snapshot data: sorted, so equal states give equal bytes. */
  snapshot(): Uint8Array {
    const pairs = [...this.values].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    return encoder.encode(JSON.stringify(pairs))
  }
}
