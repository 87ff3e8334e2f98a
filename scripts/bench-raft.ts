/**
 * Throughput of the pure Raft core: three RaftNodes in one process, an in-memory loop that handles each Ready
 * (persist to arrays, deliver messages, apply), and a leader receiving 100-byte proposals in batches.
 * Prints entries committed (applied on all three nodes) per second. No I/O: this is the core's ceiling.
 *
 *   node_modules/.bin/node scripts/bench-raft.ts [seconds] [batch]
 */

import { availableParallelism, cpus } from 'node:os'
import { RaftNode } from '../src/raft/raft.ts'
import type { Entry, HardState, Message, Ready, Snapshot } from '../src/raft/types.ts'

const seconds = Number(process.argv[2] ?? 5)
const batch = Number(process.argv[3] ?? 256)
const payloadBytes = 100
const compactEvery = 50_000

interface Store {
  hardState: HardState
  snapshot?: Snapshot
  entries: Entry[]
}

const ids = ['a', 'b', 'c']
const config = { voters: ids, nonVoters: [] }
const nodes = new Map<string, RaftNode>()
const stores = new Map<string, Store>()
const applied = new Map<string, number>()
let seed = 1
for (const id of ids) {
  const state = {
    hardState: { term: 0, vote: '', commit: 0 },
    snapshot: { meta: { index: 0, term: 0, config }, data: new Uint8Array() },
    entries: [],
  }
  let s = seed++
  const random = () => {
    s = (s * 16807) % 2147483647
    return s / 2147483647
  }
  nodes.set(id, new RaftNode({ id, state, random }))
  stores.set(id, { hardState: state.hardState, snapshot: state.snapshot, entries: [] })
  applied.set(id, 0)
}

let queue: Message[] = []
let appendMessages = 0
let appendEntries = 0

function persist(store: Store, ready: Ready): void {
  if (ready.snapshot) {
    store.snapshot = ready.snapshot
    store.entries = []
  }
  const entries = ready.entries
  if (entries.length > 0) {
    const first = entries[0].index
    const base = store.snapshot?.meta.index ?? 0
    const keep = first - base - 1
    if (keep < store.entries.length) store.entries.length = Math.max(0, keep)
    for (const entry of entries) store.entries.push(entry)
  }
  if (ready.hardState) store.hardState = ready.hardState
}

function handleReadies(): void {
  for (const id of ids) {
    const node = nodes.get(id) as RaftNode
    if (!node.hasReady()) continue
    const ready = node.ready()
    persist(stores.get(id) as Store, ready)
    for (const message of ready.messages) {
      if (message.type === 'append') {
        appendMessages++
        appendEntries += message.entries.length
      }
      queue.push(message)
    }
    if (ready.committed.length > 0) applied.set(id, ready.committed[ready.committed.length - 1].index)
    node.advance(ready)
  }
}

function deliver(): void {
  const batchOfMessages = queue
  queue = []
  for (const message of batchOfMessages) nodes.get(message.to)?.step(message)
}

function compact(): void {
  for (const id of ids) {
    const node = nodes.get(id) as RaftNode
    const index = node.status().applied
    const snapshot = node.compact(index, new Uint8Array(8))
    if (!snapshot) continue
    const store = stores.get(id) as Store
    store.snapshot = snapshot
    store.entries = store.entries.filter(e => e.index > index)
  }
}

// Elect a.
const leader = nodes.get('a') as RaftNode
leader.campaign()
for (let i = 0; i < 20; i++) {
  handleReadies()
  deliver()
}
if (leader.status().role !== 'leader') throw new Error('no leader')

const payload = new Uint8Array(payloadBytes).fill(7)
const minApplied = () => Math.min(...ids.map(id => applied.get(id) as number))
// Keep a few batches in flight so the pipeline stays full without unbounded uncommitted growth.
const window = batch * 8

const start = performance.now()
const startApplied = minApplied()
let lastCompact = startApplied
let iterations = 0
const deadline = start + seconds * 1000
while (performance.now() < deadline) {
  for (let round = 0; round < 16; round++) {
    const status = leader.status()
    if (status.lastIndex - status.commit < window) {
      for (let i = 0; i < batch; i++) leader.propose(payload)
    }
    handleReadies()
    deliver()
    iterations++
  }
  const done = minApplied()
  if (done - lastCompact >= compactEvery) {
    compact()
    lastCompact = done
  }
}
const elapsed = (performance.now() - start) / 1000
const committed = minApplied() - startApplied

const perSecond = Math.round(committed / elapsed)
console.log(
  `machine: ${cpus().length} cores (availableParallelism ${availableParallelism()}), ${cpus()[0]?.model ?? '?'}`,
)
console.log(`node ${process.version}`)
console.log(`proposal batch: ${batch} x ${payloadBytes} B, in flight at most ${window} entries`)
console.log(
  `append messages: ${appendMessages}, entries per append: ${(appendEntries / appendMessages).toFixed(1)}`,
)
console.log(`loop iterations: ${iterations}`)
console.log(
  `committed on all 3 nodes: ${committed} entries in ${elapsed.toFixed(2)} s = ${perSecond.toLocaleString('en-US')} entries/s`,
)
