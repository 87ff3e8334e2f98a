/**
 * A linearizability checker: Wing & Gong's search with Lowe's just-in-time pruning, in the shape of
 * anishathalye/porcupine's `checker.go`, extended for operations whose outcome is unknown.
 *
 * Depth-first search (porcupine's): the completed operations become a doubly linked list of call and
 * return events in time order. The search walks it from the front: a call may be linearized next if the
 * model accepts it in the current state; it is then lifted (its call and return leave the list) and the
 * walk restarts at the front. Reaching a return means the operation it ends must already have taken
 * effect, so the search backtracks to the last choice. Configurations (linearized set, state) found to
 * lead nowhere prune the search.
 *
 * Ordering at equal timestamps: calls sort before returns, as porcupine does. Two reasons: an operation
 * whose call and return share a timestamp (instantaneous under a virtual clock) must still have its call
 * first; and equal timestamps do not tell which came first in real time, so treating touching operations
 * as concurrent never reports a violation that did not happen. The cost is that a violation between two
 * operations that merely touch is not seen: give events distinct timestamps (a global event counter
 * works) when their order is known.
 *
 * Unknown outcomes (`return: Infinity`): such an operation may take effect at any point after its call,
 * or never. Porcupine sorts its return after everything and must still linearize it, at worst last; here
 * it is optional instead: it stays out of the event list, and a search succeeds once every completed
 * operation is placed. That needs no assumption about the model (an operation left out never happened),
 * and it allows pruning by subsets: if (completed set, unknown set U, state) leads nowhere, neither does
 * the same with any unknown set containing U, since whatever works from the larger set works from U with
 * the extra operations left out. Unknown operations with equal input and output ("twins") are
 * interchangeable once called, so they are used in call order only.
 *
 * Lost operations still make illegal histories hard for a depth-first search: it can reach the same
 * configuration with a larger unknown set before the smaller, and redo the work below it. Porcupine's
 * approach timed out (20 s) on 2,000-operation illegal histories with a few dozen lost writes per key.
 * So there is a second strategy, a forward sweep (see `frontierSweep`) that visits each configuration
 * once, and strategy `auto` gives depth-first a short try before it.
 */

/** One client operation as observed from outside: when it was called, when it returned, what it said. */
export interface Operation<Input, Output> {
  clientId: number
  input: Input
  /** Invocation time, in any monotonic unit. */
  call: number
  /** `undefined` = outcome unknown (timed out, crashed): it may or may not have taken effect. */
  output: Output | undefined
  /** Completion time; `Infinity` when the outcome is unknown. */
  return: number
}

/** A sequential specification of the object under test. */
export interface Model<State, Input, Output> {
  init(): State
  /** Apply `input` in `state`; `output` undefined means any output is acceptable. Returns the new state if the output is legal. */
  step(state: State, input: Input, output: Output | undefined): { ok: boolean; state: State }
  /** Split a history into independent sub-histories (e.g. per key). Default: one partition. */
  partition?(history: Operation<Input, Output>[]): Operation<Input, Output>[][]
  /** A canonical string of a state, used to memoize (state, linearized set) pairs. */
  key(state: State): string
  describeOperation?(op: Operation<Input, Output>): string
}

/** `unknown` = the check timed out before reaching a verdict. */
export type CheckResult = 'ok' | 'illegal' | 'unknown'

export interface CheckOptions {
  /** Give up with `unknown` after this long (default 10 s). */
  timeoutMs?: number
  /**
   * `depth-first`: porcupine's search; `sweep`: the forward sweep; `auto` (default): depth-first, and for
   * a partition with unknown outcomes, the sweep if depth-first has not decided within a tenth of the
   * remaining time. All give the same verdicts; they differ in which histories they decide quickly.
   */
  strategy?: SearchStrategy
}

export type SearchStrategy = 'auto' | 'depth-first' | 'sweep'

export interface CheckOutcome<Input, Output> {
  result: CheckResult
  /** For `illegal`: the sub-history (partition) that has no linearization. */
  failingPartition?: Operation<Input, Output>[]
  /** For `illegal`: the longest linearizable prefix found and the operations that could not be placed. */
  explanation?: string
}

const DEFAULT_TIMEOUT_MS = 10_000
/** The clock is read once every 4,096 search steps: often enough to stop on time, rarely enough to be free. */
const DEADLINE_CHECK_MASK = 0xfff
/** How many operations of the longest prefix an explanation lists (the last ones, nearest the failure). */
const EXPLANATION_PREFIX_LINES = 20
const EXPLANATION_UNPLACED_LINES = 20
/** Entries a search memo may hold before it is emptied, to bound memory on long searches. */
const MEMO_LIMIT = 200_000
/** Under strategy `auto`, the share of the remaining time the depth-first search gets before the sweep. */
const AUTO_DEPTH_FIRST_SHARE = 0.1

/**
 * Checks whether `history` is linearizable with respect to `model`. Each partition (see
 * {@link Model.partition}) is checked on its own; the first one found illegal is returned with an
 * explanation. Throws `RangeError` on an operation whose times are not numbers, whose call is not
 * finite, or whose return precedes its call.
 */
export function checkOperations<S, I, O>(
  model: Model<S, I, O>,
  history: Operation<I, O>[],
  options?: CheckOptions,
): CheckOutcome<I, O> {
  for (const op of history) validateOperation(op)
  const timeoutMs = options?.timeoutMs ?? DEFAULT_TIMEOUT_MS
  const deadline = performance.now() + timeoutMs
  const partitions = model.partition ? model.partition(history) : [history]
  let timedOut = false
  for (const partition of partitions) {
    if (partition.length === 0) continue
    // A timed-out partition does not end the check: a later one may still prove the history illegal,
    // and each later one stops at its first clock reading once the deadline has passed.
    const search = searchPartition(model, partition, deadline, options?.strategy ?? 'auto')
    if (search.result === 'illegal') {
      return {
        result: 'illegal',
        failingPartition: partition,
        explanation: explain(model, partition, search),
      }
    }
    if (search.result === 'unknown') timedOut = true
  }
  return { result: timedOut ? 'unknown' : 'ok' }
}

function searchPartition<S, I, O>(
  model: Model<S, I, O>,
  ops: Operation<I, O>[],
  deadline: number,
  strategy: SearchStrategy,
): SearchResult<S> {
  const search = new PartitionSearch(model, ops, deadline)
  if (search.knownIndices.length === 0) {
    return { result: 'ok', longestPrefix: [], stateAfterLongest: search.initial }
  }
  if (strategy === 'depth-first' || (strategy === 'auto' && search.unknownIndices.length === 0)) {
    return depthFirstSearch(search)
  }
  if (strategy === 'sweep') return frontierSweep(search)
  // With unknown outcomes, the depth-first search usually finds a linearization of a legal history at
  // once, where the sweep carries every alternative the lost operations allow; but on an illegal one it
  // can take exponential time, where the sweep does not. So: a short depth-first try, then the sweep.
  const now = performance.now()
  search.deadline = now + Math.max(0, deadline - now) * AUTO_DEPTH_FIRST_SHARE
  const quick = depthFirstSearch(search)
  if (quick.result !== 'unknown') return quick
  search.deadline = deadline
  return frontierSweep(search)
}

function validateOperation<I, O>(op: Operation<I, O>): void {
  if (!Number.isFinite(op.call)) throw new RangeError(`operation call time must be finite: ${op.call}`)
  if (Number.isNaN(op.return) || op.return < op.call) {
    throw new RangeError(`operation return time ${op.return} precedes its call time ${op.call}`)
  }
}

interface EntryNode {
  /** Index of the operation in the partition; -1 for the list head. */
  readonly opIndex: number
  /** The operation's bit in the set of linearized completed operations. */
  readonly knownBit: number
  /** For a call entry, its return entry; null for a return entry (and the head). */
  readonly match: EntryNode | null
  prev: EntryNode | null
  next: EntryNode | null
}

interface SearchResult<S> {
  result: CheckResult
  /** Operation indices of the longest linearizable prefix found, in linearization order. */
  longestPrefix: number[]
  /** The model state after `longestPrefix`. */
  stateAfterLongest: S
}

/**
 * A configuration of the search, less the set of completed operations linearized (kept globally): the
 * state, and which operations of unknown outcome have been linearized.
 */
interface Configuration<S> {
  readonly state: S
  readonly stateKey: string
  /** Bit i = the i-th operation of unknown outcome (in call order) is linearized. */
  readonly unknownSet: Uint32Array
}

/** A configuration reached from a level's own by a chain of unknown-outcome operations. */
interface ChainLink<S> extends Configuration<S> {
  /** The configuration this one was reached from; null for the level's own. */
  readonly parent: ChainLink<S> | null
  /** The unknown-outcome operation applied to `parent` to reach this one. */
  readonly opIndex: number
}

/** One level of the depth-first search: a configuration and where its exploration stands. */
interface Level<S> extends Configuration<S> {
  /** The completed operation whose linearization made this level; null at the root. */
  readonly arrivedBy: EntryNode | null
  /** The chain of unknown-outcome operations linearized just before `arrivedBy`. */
  readonly chain: ChainLink<S> | null
  /** Configurations reachable by chains of unknown-outcome operations; computed once the level's own is exhausted. */
  chains: ChainLink<S>[] | null
  /** Which of `chains` is being explored (0 = the level's own configuration). */
  chainIndex: number
  /** The next event in the list to try from the configuration being explored. */
  cursor: EntryNode
}

/** Builds the event list of the completed operations and returns its head, a sentinel before them. */
function buildEntryList<I, O>(ops: Operation<I, O>[], knownIndices: number[]): EntryNode {
  const events: { time: number; isCall: boolean; opIndex: number; knownBit: number }[] = []
  knownIndices.forEach((opIndex, knownBit) => {
    events.push({ time: ops[opIndex].call, isCall: true, opIndex, knownBit })
    events.push({ time: ops[opIndex].return, isCall: false, opIndex, knownBit })
  })
  events.sort((a, b) => {
    if (a.time !== b.time) return a.time < b.time ? -1 : 1
    if (a.isCall !== b.isCall) return a.isCall ? -1 : 1
    return a.opIndex - b.opIndex
  })
  // Built back to front so that each call can point at its return, already made.
  const returns = new Map<number, EntryNode>()
  let first: EntryNode | null = null
  for (let i = events.length - 1; i >= 0; i--) {
    const event = events[i]
    const match = event.isCall ? returns.get(event.opIndex)! : null
    const node: EntryNode = {
      opIndex: event.opIndex,
      knownBit: event.knownBit,
      match,
      prev: null,
      next: first,
    }
    if (first !== null) first.prev = node
    if (!event.isCall) returns.set(event.opIndex, node)
    first = node
  }
  const head: EntryNode = { opIndex: -1, knownBit: -1, match: null, prev: null, next: first }
  if (first !== null) first.prev = head
  return head
}

/** Removes a call entry and its return from the list; both keep their links so `unlift` can restore them. */
function lift(call: EntryNode): void {
  call.prev!.next = call.next
  call.next!.prev = call.prev
  const ret = call.match!
  ret.prev!.next = ret.next
  if (ret.next !== null) ret.next.prev = ret.prev
}

/** Undoes `lift`, in reverse order. */
function unlift(call: EntryNode): void {
  const ret = call.match!
  ret.prev!.next = ret
  if (ret.next !== null) ret.next.prev = ret
  call.prev!.next = call
  call.next!.prev = call
}

/** The set of linearized completed operations, with an incremental 64-bit hash (two XOR sums). */
class LinearizedSet {
  readonly words: Uint32Array
  size = 0
  hashLow = 0
  hashHigh = 0

  constructor(capacity: number) {
    this.words = new Uint32Array((capacity + 31) >>> 5)
  }

  add(bit: number): void {
    this.words[bit >>> 5] |= 1 << (bit & 31)
    this.size++
    this.rehash(bit)
  }

  remove(bit: number): void {
    this.words[bit >>> 5] &= ~(1 << (bit & 31))
    this.size--
    this.rehash(bit)
  }

  private rehash(bit: number): void {
    this.hashLow ^= mix32(bit * 2 + 1)
    this.hashHigh ^= mix32(bit * 2 + 2)
  }

  equalsWords(other: Uint32Array): boolean {
    for (let i = 0; i < other.length; i++) if (this.words[i] !== other[i]) return false
    return true
  }
}

/** murmur3's 32-bit finalizer: spreads consecutive indices over the whole word. */
function mix32(value: number): number {
  let h = value | 0
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

function hasBit(set: Uint32Array, bit: number): boolean {
  return (set[bit >>> 5] & (1 << (bit & 31))) !== 0
}

function withBit(set: Uint32Array, bit: number): Uint32Array {
  const copy = set.slice()
  copy[bit >>> 5] |= 1 << (bit & 31)
  return copy
}

/** Whether `small` is a subset of `large` with `bit` added, without building that set. */
function isSubsetPlusBit(small: Uint32Array, large: Uint32Array, bit: number): boolean {
  const word = bit >>> 5
  for (let i = 0; i < small.length; i++) {
    const extra = i === word ? 1 << (bit & 31) : 0
    if ((small[i] & ~(large[i] | extra)) !== 0) return false
  }
  return true
}

function isSubset(small: Uint32Array, large: Uint32Array): boolean {
  for (let i = 0; i < small.length; i++) if ((small[i] & ~large[i]) !== 0) return false
  return true
}

/**
 * Configurations fully explored without reaching a complete linearization. One with unknown set U rules
 * out every configuration with the same completed set and state whose unknown set contains U.
 */
class DeadEnds {
  private readonly byKey = new Map<string, { known: Uint32Array; unknownSet: Uint32Array }[]>()

  covers(known: LinearizedSet, stateKey: string, unknownSet: Uint32Array): boolean {
    const entries = this.byKey.get(DeadEnds.key(known, stateKey))
    if (entries === undefined) return false
    return entries.some(entry => isSubset(entry.unknownSet, unknownSet) && known.equalsWords(entry.known))
  }

  add(known: LinearizedSet, stateKey: string, unknownSet: Uint32Array): void {
    const key = DeadEnds.key(known, stateKey)
    const entries = this.byKey.get(key)
    const entry = { known: known.words.slice(), unknownSet }
    if (entries === undefined) {
      this.byKey.set(key, [entry])
      return
    }
    // Keep only the minimal sets: a superset of the new one says nothing more.
    const kept = entries.filter(
      old => !(isSubset(unknownSet, old.unknownSet) && known.equalsWords(old.known)),
    )
    kept.push(entry)
    this.byKey.set(key, kept)
  }

  private static key(known: LinearizedSet, stateKey: string): string {
    return `${known.hashLow}:${known.hashHigh}:${stateKey}`
  }
}

/** Signals that the deadline passed. */
class Timeout {}

type UnknownStep<S> = { ok: boolean; state: S; stateKey: string }

/** What both searches share about one partition: its operations split by outcome, and a step budget. */
class PartitionSearch<S, I, O> {
  readonly model: Model<S, I, O>
  readonly ops: Operation<I, O>[]
  readonly knownIndices: number[] = []
  /** Operations of unknown outcome, in call order: bit i of an unknown set stands for `unknownIndices[i]`. */
  readonly unknownIndices: number[] = []
  /** For each unknown bit, the bit of its previous twin (see `previousTwins`), or -1. */
  readonly previousTwin: Int32Array
  readonly initial: S
  /** When to give up (`performance.now()` time). */
  deadline: number
  private steps = 0
  // The same unknown-outcome operations are tried from the same states over and over: remember the
  // outcomes (model steps and keys are most of the cost).
  private readonly unknownSteps = new Map<string, (UnknownStep<S> | undefined)[]>()

  constructor(model: Model<S, I, O>, ops: Operation<I, O>[], deadline: number) {
    this.model = model
    this.ops = ops
    this.deadline = deadline
    ops.forEach((op, index) => {
      if (op.return === Number.POSITIVE_INFINITY) this.unknownIndices.push(index)
      else this.knownIndices.push(index)
    })
    this.unknownIndices.sort((a, b) => ops[a].call - ops[b].call || a - b)
    this.previousTwin = previousTwins(ops, this.unknownIndices)
    this.initial = model.init()
  }

  /** Counts a unit of work; throws `Timeout` once the deadline has passed (read every 4,096 units). */
  tick(): void {
    if ((++this.steps & DEADLINE_CHECK_MASK) === 0 && performance.now() > this.deadline) throw new Timeout()
  }

  step(state: S, opIndex: number): { ok: boolean; state: S } {
    this.tick()
    const op = this.ops[opIndex]
    return this.model.step(state, op.input, op.output)
  }

  /** The remembered outcomes of unknown-outcome operations (by bit) from one state. */
  unknownOutcomesFrom(stateKey: string): (UnknownStep<S> | undefined)[] {
    let outcomes = this.unknownSteps.get(stateKey)
    if (outcomes === undefined) {
      outcomes = []
      if (this.unknownSteps.size >= MEMO_LIMIT) this.unknownSteps.clear()
      this.unknownSteps.set(stateKey, outcomes)
    }
    return outcomes
  }

  /** Applies the unknown-outcome operation `bit` to `from`, whose remembered outcomes are `outcomes`. */
  stepUnknown(from: Configuration<S>, outcomes: (UnknownStep<S> | undefined)[], bit: number): UnknownStep<S> {
    let outcome = outcomes[bit]
    if (outcome === undefined) {
      const stepped = this.step(from.state, this.unknownIndices[bit])
      const stateKey = stepped.ok ? this.model.key(stepped.state) : ''
      outcome = { ok: stepped.ok, state: stepped.state, stateKey }
      outcomes[bit] = outcome
    } else {
      this.tick()
    }
    return outcome
  }

  /** Whether unknown `bit` may be linearized after `unknownSet`: not yet, and twins only in call order. */
  mayLinearizeUnknown(unknownSet: Uint32Array, bit: number): boolean {
    if (hasBit(unknownSet, bit)) return false
    const twin = this.previousTwin[bit]
    return twin < 0 || hasBit(unknownSet, twin)
  }

  emptyUnknownSet(): Uint32Array {
    return new Uint32Array((this.unknownIndices.length + 31) >>> 5)
  }
}

/**
 * Wing & Gong / Lowe depth-first search over the event list, as porcupine does it, with operations of
 * unknown outcome tried as chains once the completed candidates fail at a point.
 */
function depthFirstSearch<S, I, O>(search: PartitionSearch<S, I, O>): SearchResult<S> {
  const { model, ops, knownIndices, unknownIndices } = search
  const chainSets = new Map<string, ChainLink<S>[]>()

  /**
   * The configurations reachable from `level` by chains of unknown-outcome operations called no later
   * than `frontier`, breadth first, dropping any whose set contains another's with the same state: the
   * smaller set can do everything the larger can. The level's own configuration comes first. They
   * depend on the state, the unknown set and the frontier only, so they are remembered.
   */
  const chainsFrom = (level: Level<S>, frontier: number): ChainLink<S>[] => {
    let candidates = 0
    while (candidates < unknownIndices.length && ops[unknownIndices[candidates]].call <= frontier) {
      candidates++
    }
    const memoKey = `${candidates}|${level.unknownSet.join(',')}|${level.stateKey}`
    const remembered = chainSets.get(memoKey)
    if (remembered !== undefined) return remembered
    const own = { state: level.state, stateKey: level.stateKey, unknownSet: level.unknownSet }
    const links: ChainLink<S>[] = [{ ...own, parent: null, opIndex: -1 }]
    const setsByState = new Map<string, Uint32Array[]>([[level.stateKey, [level.unknownSet]]])
    for (let i = 0; i < links.length; i++) {
      const from = links[i]
      const outcomes = search.unknownOutcomesFrom(from.stateKey)
      for (let bit = 0; bit < candidates; bit++) {
        if (!search.mayLinearizeUnknown(from.unknownSet, bit)) continue
        const stepped = search.stepUnknown(from, outcomes, bit)
        if (!stepped.ok) continue
        const sameState = setsByState.get(stepped.stateKey)
        if (sameState?.some(set => isSubsetPlusBit(set, from.unknownSet, bit))) continue
        const unknownSet = withBit(from.unknownSet, bit)
        if (sameState === undefined) setsByState.set(stepped.stateKey, [unknownSet])
        else sameState.push(unknownSet)
        const opIndex = unknownIndices[bit]
        links.push({ state: stepped.state, stateKey: stepped.stateKey, unknownSet, parent: from, opIndex })
      }
    }
    if (chainSets.size >= MEMO_LIMIT) chainSets.clear()
    chainSets.set(memoKey, links)
    return links
  }

  const head = buildEntryList(ops, knownIndices)
  const known = new LinearizedSet(knownIndices.length)
  const deadEnds = new DeadEnds()
  const stack: Level<S>[] = [
    {
      state: search.initial,
      stateKey: model.key(search.initial),
      unknownSet: search.emptyUnknownSet(),
      arrivedBy: null,
      chain: null,
      chains: null,
      chainIndex: 0,
      cursor: head.next!,
    },
  ]
  let longestPrefix: number[] = []
  let longestKnownCount = -1
  let stateAfterLongest = search.initial

  try {
    for (;;) {
      const level = stack[stack.length - 1]
      const from: Configuration<S> = level.chains === null ? level : level.chains[level.chainIndex]
      const cursor = level.cursor
      if (cursor.match !== null) {
        // A call before any pending return: a candidate to linearize next. The list always ends with a
        // return, so a call's `next` is never null.
        level.cursor = cursor.next!
        const stepped = search.step(from.state, cursor.opIndex)
        if (!stepped.ok) continue
        known.add(cursor.knownBit)
        if (known.size === knownIndices.length) {
          return { result: 'ok', longestPrefix: [], stateAfterLongest: stepped.state }
        }
        const stateKey = model.key(stepped.state)
        if (deadEnds.covers(known, stateKey, from.unknownSet)) {
          known.remove(cursor.knownBit)
          continue
        }
        lift(cursor)
        stack.push({
          state: stepped.state,
          stateKey,
          unknownSet: from.unknownSet,
          arrivedBy: cursor,
          chain: from === level ? null : (from as ChainLink<S>),
          chains: null,
          chainIndex: 0,
          cursor: head.next!,
        })
        continue
      }
      // The first pending return: every candidate from `from` has been tried. Move on to the next
      // configuration reachable through operations of unknown outcome, if any.
      if (level.chains === null) level.chains = chainsFrom(level, ops[cursor.opIndex].return)
      do level.chainIndex++
      while (
        level.chainIndex < level.chains.length &&
        deadEnds.covers(
          known,
          level.chains[level.chainIndex].stateKey,
          level.chains[level.chainIndex].unknownSet,
        )
      )
      if (level.chainIndex < level.chains.length) {
        level.cursor = head.next!
        continue
      }
      // Exhausted: this configuration leads nowhere. Back out the choice that made it.
      deadEnds.add(known, level.stateKey, level.unknownSet)
      if (known.size > longestKnownCount) {
        longestKnownCount = known.size
        longestPrefix = prefixOf(stack)
        stateAfterLongest = level.state
      }
      stack.pop()
      if (level.arrivedBy === null) return { result: 'illegal', longestPrefix, stateAfterLongest }
      unlift(level.arrivedBy)
      known.remove(level.arrivedBy.knownBit)
    }
  } catch (error) {
    if (error instanceof Timeout) return { result: 'unknown', longestPrefix, stateAfterLongest }
    throw error
  }
}

/** The operations linearized so far, newest first, sharing their tails between configurations. */
interface Trail {
  readonly opIndex: number
  readonly previous: Trail | null
  readonly length: number
}

function extendTrail(trail: Trail | null, opIndex: number): Trail {
  return { opIndex, previous: trail, length: (trail?.length ?? 0) + 1 }
}

function trailToArray(trail: Trail | null): number[] {
  const ops: number[] = []
  for (let link = trail; link !== null; link = link.previous) ops.push(link.opIndex)
  return ops.reverse()
}

/** A configuration of the sweep: completed operations that returned are all linearized, implicitly. */
interface SweepConfiguration<S> extends Configuration<S> {
  /** Completed operations still running (not yet returned) that are already linearized, ascending. */
  readonly early: readonly number[]
  readonly trail: Trail | null
}

/**
 * Sweep configurations, keeping for each (state, early set) only the minimal unknown sets: a
 * configuration whose unknown set contains another's, with the same state and early set, can do nothing
 * the other cannot.
 */
class ConfigurationSet<S> {
  private readonly groups = new Map<string, SweepConfiguration<S>[]>()

  /** Adds `config` unless another makes it redundant; returns whether it was added. */
  add(config: SweepConfiguration<S>): boolean {
    const key = `${config.early.join(',')}|${config.stateKey}`
    const group = this.groups.get(key)
    if (group === undefined) {
      this.groups.set(key, [config])
      return true
    }
    if (group.some(other => isSubset(other.unknownSet, config.unknownSet))) return false
    const kept = group.filter(other => !isSubset(config.unknownSet, other.unknownSet))
    kept.push(config)
    this.groups.set(key, kept)
    return true
  }

  toArray(): SweepConfiguration<S>[] {
    return [...this.groups.values()].flat()
  }
}

/**
 * A forward sweep over the events, in the manner of Lowe's just-in-time linearization and Knossos's
 * "linear" checker: it keeps every configuration reachable at the current point in time, and at each
 * return extends them only by sequences of linearizations that end with the returning operation (any
 * other linearization can wait for its own return, or forever for an unknown outcome). Each
 * configuration is visited once, so unlike the depth-first search it cannot redo work after an unlucky
 * order; but it carries every alternative at once, which costs more on legal histories.
 */
function frontierSweep<S, I, O>(search: PartitionSearch<S, I, O>): SearchResult<S> {
  const { model, ops, knownIndices, unknownIndices } = search
  const events: { time: number; isCall: boolean; opIndex: number }[] = []
  for (const opIndex of knownIndices) {
    events.push({ time: ops[opIndex].call, isCall: true, opIndex })
    events.push({ time: ops[opIndex].return, isCall: false, opIndex })
  }
  for (const opIndex of unknownIndices) events.push({ time: ops[opIndex].call, isCall: true, opIndex })
  events.sort((a, b) => {
    if (a.time !== b.time) return a.time < b.time ? -1 : 1
    if (a.isCall !== b.isCall) return a.isCall ? -1 : 1
    return a.opIndex - b.opIndex
  })

  let configs: SweepConfiguration<S>[] = [
    {
      state: search.initial,
      stateKey: model.key(search.initial),
      unknownSet: search.emptyUnknownSet(),
      early: [],
      trail: null,
    },
  ]
  const running: number[] = []
  // Unknown-outcome operations called so far: a prefix of `unknownIndices`, which is in call order.
  let called = 0
  const longest = () =>
    configs.reduce((best, config) =>
      (config.trail?.length ?? 0) > (best.trail?.length ?? 0) ? config : best,
    )
  try {
    for (const event of events) {
      if (event.isCall) {
        if (ops[event.opIndex].return === Number.POSITIVE_INFINITY) called++
        else running.push(event.opIndex)
        continue
      }
      const returning = event.opIndex
      const next = new ConfigurationSet<S>()
      const seen = new ConfigurationSet<S>()
      const queue: SweepConfiguration<S>[] = []
      for (const config of configs) {
        if (config.early.includes(returning)) {
          next.add({ ...config, early: config.early.filter(opIndex => opIndex !== returning) })
        } else if (seen.add(config)) {
          queue.push(config)
        }
      }
      for (let i = 0; i < queue.length; i++) {
        const from = queue[i]
        for (const opIndex of running) {
          if (from.early.includes(opIndex)) continue
          const stepped = search.step(from.state, opIndex)
          if (!stepped.ok) continue
          const reached = {
            state: stepped.state,
            stateKey: model.key(stepped.state),
            unknownSet: from.unknownSet,
            early: opIndex === returning ? from.early : insertSorted(from.early, opIndex),
            trail: extendTrail(from.trail, opIndex),
          }
          if (opIndex === returning) next.add(reached)
          else if (seen.add(reached)) queue.push(reached)
        }
        const outcomes = search.unknownOutcomesFrom(from.stateKey)
        for (let bit = 0; bit < called; bit++) {
          if (!search.mayLinearizeUnknown(from.unknownSet, bit)) continue
          const stepped = search.stepUnknown(from, outcomes, bit)
          if (!stepped.ok) continue
          const reached = {
            state: stepped.state,
            stateKey: stepped.stateKey,
            unknownSet: withBit(from.unknownSet, bit),
            early: from.early,
            trail: extendTrail(from.trail, unknownIndices[bit]),
          }
          if (seen.add(reached)) queue.push(reached)
        }
      }
      const nextConfigs = next.toArray()
      if (nextConfigs.length === 0) {
        const best = longest()
        return { result: 'illegal', longestPrefix: trailToArray(best.trail), stateAfterLongest: best.state }
      }
      running.splice(running.indexOf(returning), 1)
      configs = nextConfigs
    }
  } catch (error) {
    if (!(error instanceof Timeout)) throw error
    const best = longest()
    return { result: 'unknown', longestPrefix: trailToArray(best.trail), stateAfterLongest: best.state }
  }
  return { result: 'ok', longestPrefix: [], stateAfterLongest: search.initial }
}

function insertSorted(values: readonly number[], value: number): number[] {
  const result = [...values, value]
  result.sort((a, b) => a - b)
  return result
}

/**
 * For each unknown-outcome operation (by its bit), the bit of the latest earlier-called one with the same
 * input and output, or -1. Two such twins can stand in for each other at any point after both calls, so
 * a search that uses them only in call order loses nothing, and does not try both ways round.
 */
function previousTwins<I, O>(ops: Operation<I, O>[], unknownIndices: number[]): Int32Array {
  const previous = new Int32Array(unknownIndices.length).fill(-1)
  const lastByKey = new Map<string, number>()
  unknownIndices.forEach((opIndex, bit) => {
    const key = twinKey(ops[opIndex])
    if (key === undefined) return
    const last = lastByKey.get(key)
    if (last !== undefined) previous[bit] = last
    lastByKey.set(key, bit)
  })
  return previous
}

/** JSON of input and output, or undefined if they are not JSON (then the operation has no twin). */
function twinKey<I, O>(op: Operation<I, O>): string | undefined {
  try {
    return JSON.stringify([op.input, op.output ?? null])
  } catch {
    return undefined
  }
}

/** The operations linearized along the stack, in order: each level's chain of unknowns, then its own. */
function prefixOf<S>(stack: Level<S>[]): number[] {
  const prefix: number[] = []
  for (const level of stack) {
    if (level.arrivedBy === null) continue
    const chain: number[] = []
    for (let link = level.chain; link !== null && link.parent !== null; link = link.parent)
      chain.push(link.opIndex)
    prefix.push(...chain.reverse(), level.arrivedBy.opIndex)
  }
  return prefix
}

function explain<S, I, O>(model: Model<S, I, O>, ops: Operation<I, O>[], search: SearchResult<S>): string {
  const describe = (op: Operation<I, O>): string =>
    model.describeOperation ? model.describeOperation(op) : describeOperationDefault(op)
  const isUnknown = (index: number) => ops[index].return === Number.POSITIVE_INFINITY
  const prefix = search.longestPrefix
  const unknownCount = ops.filter((_, index) => isUnknown(index)).length
  const lines = [
    `No linearization exists for this partition of ${ops.length} operations` +
      (unknownCount > 0
        ? ` (${unknownCount} of unknown outcome, each tried at every point after its call and left out).`
        : '.'),
    `Longest linearizable prefix found: ${prefix.length} of ${ops.length} operations.`,
  ]
  const shownFrom = Math.max(0, prefix.length - EXPLANATION_PREFIX_LINES)
  if (shownFrom > 0) lines.push(`  ... ${shownFrom} earlier operations`)
  for (let i = shownFrom; i < prefix.length; i++) lines.push(`  ${i + 1}. ${describe(ops[prefix[i]])}`)
  lines.push(`State after it: ${model.key(search.stateAfterLongest)}`)

  // The candidates for the next linearization point: completed operations not placed, called no later
  // than the earliest return among them (calls sort before returns at equal times).
  const placed = new Set(prefix)
  const unplaced = ops.map((_, index) => index).filter(index => !placed.has(index) && !isUnknown(index))
  let earliestReturn = Number.POSITIVE_INFINITY
  for (const index of unplaced) earliestReturn = Math.min(earliestReturn, ops[index].return)
  lines.push('None of the operations that could come next leads to a complete linearization:')
  for (const index of unplaced) {
    const op = ops[index]
    if (op.call > earliestReturn) continue
    const accepted = model.step(search.stateAfterLongest, op.input, op.output).ok
    const why = accepted ? 'accepted here, but no continuation works' : 'rejected by the model in this state'
    lines.push(`  - ${describe(op)}: ${why}`)
  }
  lines.push(`Completed operations not placed: ${unplaced.length}.`)
  const byCall = [...unplaced].sort((a, b) => ops[a].call - ops[b].call)
  for (const index of byCall.slice(0, EXPLANATION_UNPLACED_LINES)) lines.push(`  - ${describe(ops[index])}`)
  if (byCall.length > EXPLANATION_UNPLACED_LINES) {
    lines.push(`  ... ${byCall.length - EXPLANATION_UNPLACED_LINES} more`)
  }
  return lines.join('\n')
}

function describeOperationDefault<I, O>(op: Operation<I, O>): string {
  const output = op.output === undefined ? '?' : JSON.stringify(op.output)
  return `client ${op.clientId}: ${JSON.stringify(op.input)} -> ${output} [${op.call}, ${formatTime(op.return)}]`
}

/** Formats a return time, `∞` for an unknown outcome. */
export function formatTime(time: number): string {
  return time === Number.POSITIVE_INFINITY ? '∞' : String(time)
}
