/**
 * A small in-process network for Raft scenario tests: each node persists its Ready to memory, messages go
 * through one FIFO queue that tests can filter (drop, isolate), and time only moves when a test ticks.
 */

import { encodeConfig } from '../../src/raft/config.ts'
import type { RaftCoreOptions } from '../../src/raft/core-options.ts'
import { RaftNode } from '../../src/raft/raft.ts'
import type {
  Config,
  Entry,
  HardState,
  Message,
  NodeId,
  PersistedState,
  ReadState,
  Ready,
  Snapshot,
} from '../../src/raft/types.ts'

const encoder = new TextEncoder()
const decoder = new TextDecoder()

export function bytes(text: string): Uint8Array {
  return encoder.encode(text)
}

export function text(data: Uint8Array): string {
  return decoder.decode(data)
}

/** A seeded PRNG (mulberry32), so every scenario replays exactly. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** What a node has on "disk". */
export interface Storage {
  hardState: HardState
  snapshot?: Snapshot
  entries: Entry[]
}

export interface TestNode {
  id: NodeId
  raft: RaftNode
  storage: Storage
  /** The application: the data of every applied normal entry, in order (restored from snapshots). */
  appliedData: string[]
  appliedIndex: number
  readStates: ReadState[]
  readies: Ready[]
  options: Partial<RaftCoreOptions>
  seed: number
}

export function founderState(config: Config): PersistedState {
  return {
    hardState: { term: 0, vote: '', commit: 0 },
    snapshot: { meta: { index: 0, term: 0, config }, data: encoder.encode('[]') },
    entries: [],
  }
}

export function emptyState(): PersistedState {
  return { hardState: { term: 0, vote: '', commit: 0 }, entries: [] }
}

export type DropRule = (message: Message) => boolean

export class Cluster {
  readonly nodes = new Map<NodeId, TestNode>()
  /** Messages sent and not yet delivered, in order. */
  queue: Message[] = []
  /** Every message delivered (after the drop rules), for assertions. */
  delivered: Message[] = []
  private dropRules: DropRule[] = []
  private down = new Set<NodeId>()

  /** A cluster whose voters all found it from the same initial snapshot. */
  static create(voters: NodeId[], options: Partial<RaftCoreOptions> = {}, seed = 1): Cluster {
    const cluster = new Cluster()
    const config: Config = { voters: [...voters], nonVoters: [] }
    voters.forEach((id, i) => {
      cluster.add(id, founderState(config), options, seed * 1000 + i)
    })
    return cluster
  }

  add(id: NodeId, state: PersistedState, options: Partial<RaftCoreOptions> = {}, seed = 7): TestNode {
    const storage: Storage = {
      hardState: { ...state.hardState },
      snapshot: state.snapshot,
      entries: [...state.entries],
    }
    const node: TestNode = {
      id,
      raft: new RaftNode({ id, state, random: seededRandom(seed), options }),
      storage,
      appliedData: state.snapshot ? (JSON.parse(text(state.snapshot.data)) as string[]) : [],
      appliedIndex: state.snapshot?.meta.index ?? 0,
      readStates: [],
      readies: [],
      options,
      seed,
    }
    this.nodes.set(id, node)
    return node
  }

  node(id: NodeId): TestNode {
    const node = this.nodes.get(id)
    if (!node) throw new Error(`no node ${id}`)
    return node
  }

  raft(id: NodeId): RaftNode {
    return this.node(id).raft
  }

  /** Handles one Ready of `id` as the shell would: persist, send, apply, advance. Returns it, or undefined. */
  process(id: NodeId): Ready | undefined {
    const node = this.node(id)
    if (this.down.has(id) || !node.raft.hasReady()) return undefined
    const ready = node.raft.ready()
    node.readies.push(ready)
    const storage = node.storage
    if (ready.snapshot) {
      storage.snapshot = ready.snapshot
      storage.entries = []
    }
    if (ready.entries.length > 0) {
      const first = ready.entries[0].index
      storage.entries = storage.entries.filter(entry => entry.index < first)
      storage.entries.push(...ready.entries)
    }
    if (ready.hardState) storage.hardState = { ...ready.hardState }
    this.queue.push(...ready.messages)
    if (ready.snapshot) {
      node.appliedData = JSON.parse(text(ready.snapshot.data)) as string[]
      node.appliedIndex = ready.snapshot.meta.index
    }
    for (const entry of ready.committed) {
      if (entry.index !== node.appliedIndex + 1) {
        throw new Error(`${id} applies ${entry.index} after ${node.appliedIndex}`)
      }
      node.appliedIndex = entry.index
      if (entry.type === 'normal' && entry.data.length > 0) node.appliedData.push(text(entry.data))
    }
    node.readStates.push(...ready.readStates)
    node.raft.advance(ready)
    return ready
  }

  /** Whether `message` would be dropped by the current rules. */
  dropped(message: Message): boolean {
    if (this.down.has(message.to) || this.down.has(message.from)) return true
    return this.dropRules.some(rule => rule(message))
  }

  /** Processes Readys and delivers messages until nothing moves. Returns the number of messages delivered. */
  deliverAll(maxRounds = 10_000): number {
    let count = 0
    for (let round = 0; round < maxRounds; round++) {
      let progressed = false
      for (const id of this.nodes.keys()) if (this.process(id)) progressed = true
      const batch = this.queue
      this.queue = []
      for (const message of batch) {
        progressed = true
        if (this.dropped(message)) continue
        const target = this.nodes.get(message.to)
        if (!target) continue
        this.delivered.push(message)
        count++
        target.raft.step(message)
      }
      if (!progressed) return count
    }
    throw new Error('network did not settle')
  }

  /** Handles every node's Ready once and returns the messages they sent, without delivering them. */
  collect(): Message[] {
    for (const id of this.nodes.keys()) this.process(id)
    const batch = this.queue
    this.queue = []
    return batch
  }

  /** Delivers the given messages (subject to the drop rules), without processing any Ready. */
  deliver(messages: Message[]): void {
    for (const message of messages) {
      if (this.dropped(message)) continue
      this.delivered.push(message)
      this.nodes.get(message.to)?.raft.step(message)
    }
  }

  tick(id: NodeId, times = 1): void {
    for (let i = 0; i < times; i++) this.node(id).raft.tick()
  }

  /** Ticks every running node `times` times, letting the network settle after each tick. */
  tickAll(times = 1): void {
    for (let i = 0; i < times; i++) {
      for (const id of this.nodes.keys()) if (!this.down.has(id)) this.node(id).raft.tick()
      this.deliverAll()
    }
  }

  /** Makes `id` campaign and settles the network. */
  elect(id: NodeId): void {
    this.raft(id).campaign()
    this.deliverAll()
  }

  addDropRule(rule: DropRule): DropRule {
    this.dropRules.push(rule)
    return rule
  }

  removeDropRule(rule: DropRule): void {
    this.dropRules = this.dropRules.filter(r => r !== rule)
  }

  /** Cuts `ids` off from everyone else (both directions). */
  isolate(...ids: NodeId[]): DropRule {
    const set = new Set(ids)
    return this.addDropRule(m => set.has(m.from) !== set.has(m.to))
  }

  /** Splits the cluster in two groups that cannot talk to each other. */
  partition(groupA: NodeId[], groupB: NodeId[]): DropRule {
    const a = new Set(groupA)
    const b = new Set(groupB)
    return this.addDropRule(m => (a.has(m.from) && b.has(m.to)) || (b.has(m.from) && a.has(m.to)))
  }

  heal(): void {
    this.dropRules = []
  }

  /** Crashes `id`: it stops; what it had not persisted is lost. */
  crash(id: NodeId): void {
    this.down.add(id)
    this.queue = this.queue.filter(m => m.to !== id && m.from !== id)
  }

  /** Restarts `id` from its storage, with a fresh RaftNode. */
  restart(id: NodeId): TestNode {
    const old = this.node(id)
    this.down.delete(id)
    const state: PersistedState = {
      hardState: { ...old.storage.hardState },
      snapshot: old.storage.snapshot,
      entries: [...old.storage.entries],
    }
    return this.add(id, state, old.options, old.seed + 101)
  }

  /** Takes an application snapshot of `id` at its applied index and compacts its log there. */
  compact(id: NodeId, index = this.node(id).appliedIndex): void {
    const node = this.node(id)
    if (index !== node.appliedIndex) throw new Error('harness compacts at the applied index only')
    const data = bytes(JSON.stringify(node.appliedData))
    const snapshot = node.raft.compact(index, data)
    if (!snapshot) return
    node.storage.snapshot = snapshot
    node.storage.entries = node.storage.entries.filter(e => e.index > index)
  }

  leaders(): NodeId[] {
    return [...this.nodes.values()]
      .filter(n => !this.down.has(n.id) && n.raft.status().role === 'leader')
      .map(n => n.id)
  }

  /** The single leader, or a thrown error. */
  leader(): NodeId {
    const leaders = this.leaders()
    if (leaders.length !== 1) throw new Error(`expected one leader, found ${leaders.join(',') || 'none'}`)
    return leaders[0]
  }

  /** Proposes `data` on the leader and settles the network. */
  propose(data: string, id = this.leader()): { index: number; term: number } {
    const result = this.raft(id).propose(bytes(data))
    this.deliverAll()
    return result
  }
}

/** A `config` entry's data for tests that build logs by hand. */
export function configData(config: Config): Uint8Array {
  return encodeConfig(config)
}

/** A persisted state whose log has one entry per element of `terms` (data `e<index>`), after the founding snapshot. */
export function stateWithLog(config: Config, terms: number[], term: number, commit = 0): PersistedState {
  return {
    hardState: { term, vote: '', commit },
    snapshot: { meta: { index: 0, term: 0, config }, data: encoder.encode('[]') },
    entries: terms.map((t, i) => ({
      term: t,
      index: i + 1,
      type: 'normal',
      data: encoder.encode(`e${i + 1}`),
    })),
  }
}

/** The (index, term) pairs of a node's log as `status` and the stored log show it. */
export function logTerms(node: TestNode): number[] {
  return node.storage.entries.map(e => e.term)
}
