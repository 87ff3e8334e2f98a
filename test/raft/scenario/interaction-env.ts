/**
 * The interaction environment a scenario drives: a `Cluster` of pure Raft cores (test/raft/harness.ts) whose
 * every step is a command of the script and whose every effect (Ready, message, state) is printed.
 * Nothing moves unless a command moves it: ticks, Ready handling and message delivery are all explicit,
 * so a scenario can stop a message in flight, reorder deliveries or cut the network between two steps.
 *
 * Commands (node ids are 1, 2, ... in the order nodes are added):
 *
 *     add-nodes N [voters=(1,2,3)] [nonVoters=(4)] [prevote=false] [checkquorum=false] [election=10]
 *               [heartbeat=1] [max-msg-bytes=B] [max-inflight=N] [snapshot-chunk=B]
 *     campaign ID...                 start an election now (pre-vote first when on)
 *     propose ID data                append data on the leader ID; prints its term/index or the core's error
 *     change-config ID add-voter|remove-voter|add-nonvoter|remove-nonvoter|promote NODE
 *     transfer-leader FROM TO        hand leadership from the leader FROM to TO
 *     read-index ID context          ask ID for a linearizable read point
 *     tick ID[,ID...] [N]            N ticks of logical time on each node (default 1)
 *     process-ready ID...            handle each node's Ready (persist, send, apply) and print it
 *     deliver-msgs ID... [type=T]    deliver the queued messages to those nodes (of type T only)
 *     drop-msgs ID... [type=T]       lose them instead
 *     stabilize (or deliver)         handle Readys and deliver messages until nothing moves
 *     partition A... | B...          cut the network between two groups; isolate ID... cuts nodes off
 *     heal                           undo every partition
 *     crash ID... / restart ID...    stop a node (losing what it did not persist) / start it from storage
 *     status ID...                   role, term, vote, leader, commit, configuration, leader's progress
 *     log ID...                      stable storage: hard state, snapshot, entries; and what was applied
 *     compact ID... (or snapshot)    snapshot the application at its applied index and drop the log before
 *     log-level none|all             print only 'ok' for the commands that follow (setup nobody reads)
 *
 * Whatever the commands, the environment checks State Machine Safety (§5.4.3) as nodes apply entries: two
 * nodes that apply different entries at one index print a `SAFETY VIOLATION` line, even under log-level none.
 */

import type { RaftBugs, RaftCoreOptions } from '../../../src/raft/core-options.ts'
import { RaftError } from '../../../src/raft/errors.ts'
import type {
  Config,
  ConfigChange,
  Entry,
  Message,
  NodeId,
  RaftOptions,
  Ready,
} from '../../../src/raft/types.ts'
import { bytes, Cluster, emptyState, founderState, text } from '../harness.ts'
import type { Argument, Directive } from './parser.ts'
import {
  formatConfig,
  formatEntry,
  formatHardState,
  formatMessage,
  formatReady,
  formatSnapshot,
  formatStatus,
} from './printer.ts'

/** A command the scenario got wrong (unknown name, missing argument): the test fails with the file's line. */
export class ScenarioCommandError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'ScenarioCommandError'
  }
}

type Handler = (args: Argument[]) => string[]

const CONFIG_CHANGES: Record<string, ConfigChange['type']> = {
  'add-voter': 'addVoter',
  'remove-voter': 'removeVoter',
  'add-nonvoter': 'addNonVoter',
  'remove-nonvoter': 'removeNonVoter',
  promote: 'promote',
}

// add-nodes options and the RaftOptions they set.
const NUMBER_OPTIONS: Record<string, keyof RaftOptions> = {
  election: 'electionTicks',
  heartbeat: 'heartbeatTicks',
  'max-msg-bytes': 'maxMessageBytes',
  'max-inflight': 'maxInflightMessages',
  'snapshot-chunk': 'snapshotChunkBytes',
}
const BOOLEAN_OPTIONS: Record<string, keyof RaftOptions> = { prevote: 'preVote', checkquorum: 'checkQuorum' }

// The key=value options each command takes; a misspelt one must fail, not be ignored.
const COMMAND_OPTIONS: Record<string, readonly string[]> = {
  'add-nodes': ['voters', 'nonVoters', ...Object.keys(NUMBER_OPTIONS), ...Object.keys(BOOLEAN_OPTIONS)],
  'deliver-msgs': ['type'],
  'drop-msgs': ['type'],
}

const MAX_STABILIZE_ROUNDS = 1000

function indent(lines: string[]): string[] {
  return lines.map(line => `  ${line}`)
}

export class InteractionEnv {
  readonly cluster = new Cluster()
  private readonly bugs: RaftBugs
  private quiet = false
  /** The first entry any node applied at each index: every node must apply the same one there. */
  private readonly appliedAt = new Map<number, { id: NodeId; entry: Entry }>()
  /** Safety violations found while handling the current command; printed whatever the log level. */
  private violations: string[] = []
  private readonly handlers: Record<string, Handler> = {
    'add-nodes': args => this.addNodes(args),
    campaign: args => this.eachNode(args, id => this.cluster.raft(id).campaign()),
    propose: args => this.propose(args),
    'change-config': args => this.changeConfig(args),
    'transfer-leader': args => this.transferLeader(args),
    'read-index': args => this.readIndex(args),
    tick: args => this.tick(args),
    'process-ready': args => this.processReady(args),
    'deliver-msgs': args => this.deliverMsgs(args, false),
    'drop-msgs': args => this.deliverMsgs(args, true),
    stabilize: () => this.stabilize(),
    deliver: () => this.stabilize(),
    partition: args => this.partition(args),
    isolate: args => this.isolate(args),
    heal: () => this.heal(),
    crash: args => this.eachNode(args, id => this.cluster.crash(id)),
    restart: args => this.restart(args),
    status: args => this.status(args),
    log: args => this.log(args),
    compact: args => this.compact(args),
    snapshot: args => this.compact(args),
    'log-level': args => this.logLevel(args),
  }

  /** `bugs` are switched on in every node, to show that the scenarios catch a broken core. */
  constructor(bugs: RaftBugs = {}) {
    this.bugs = bugs
  }

  /** Runs one directive; returns its output ('ok' when it printed nothing). */
  handle(directive: Directive): string {
    const handler = this.handlers[directive.command]
    if (!handler) throw new ScenarioCommandError(`unknown command '${directive.command}'`)
    const allowed = COMMAND_OPTIONS[directive.command] ?? []
    for (const arg of directive.args) {
      if (arg.values.length > 0 && !allowed.includes(arg.key)) {
        throw new ScenarioCommandError(`${directive.command} takes no option '${arg.key}'`)
      }
    }
    let lines: string[]
    try {
      lines = handler(directive.args)
    } catch (error) {
      // The core refusing a call is part of the scenario's story; anything else is a broken test.
      if (!(error instanceof RaftError)) throw error
      lines = [`error: ${error.name}: ${error.message}`]
    }
    const violations = this.violations
    this.violations = []
    if (this.quiet) lines = []
    lines.push(...violations)
    if (lines.length === 0) return 'ok'
    if (lines.some(line => line.trim() === '')) {
      throw new ScenarioCommandError('output contains a blank line, which would end the block')
    }
    return lines.join('\n')
  }

  // ---------------------------------------------------------------- arguments

  private ids(args: Argument[]): NodeId[] {
    const ids = args.filter(arg => arg.values.length === 0).map(arg => arg.key)
    for (const id of ids) this.cluster.node(id)
    if (ids.length === 0) throw new ScenarioCommandError('expected node ids')
    return ids
  }

  private positional(args: Argument[], index: number, what: string): string {
    const words = args.filter(arg => arg.values.length === 0)
    if (index >= words.length) throw new ScenarioCommandError(`missing ${what}`)
    return words[index].key
  }

  private option(args: Argument[], key: string): string[] | undefined {
    return args.find(arg => arg.values.length > 0 && arg.key === key)?.values
  }

  private count(value: string, what: string): number {
    const n = Number(value)
    if (!Number.isSafeInteger(n) || n < 0) throw new ScenarioCommandError(`${what} must be a count: ${value}`)
    return n
  }

  private eachNode(args: Argument[], action: (id: NodeId) => void): string[] {
    for (const id of this.ids(args)) action(id)
    return []
  }

  // ---------------------------------------------------------------- commands

  /**
   * `add-nodes N [voters=(1,2,3)] [nonVoters=(4)] [prevote=false] [checkquorum=false] [election=10] ...`:
   * N nodes with the next free numeric ids. With `voters` they found a cluster of that configuration from a
   * snapshot at index 0; without, they start empty and wait to be contacted (a node about to be added).
   */
  private addNodes(args: Argument[]): string[] {
    const n = this.count(this.positional(args, 0, 'node count'), 'node count')
    const options: Partial<RaftCoreOptions> = { bugs: { ...this.bugs } }
    const settable = options as Record<string, unknown>
    for (const [key, field] of Object.entries(NUMBER_OPTIONS)) {
      const value = this.option(args, key)
      if (value) settable[field] = this.count(value[0], key)
    }
    for (const [key, field] of Object.entries(BOOLEAN_OPTIONS)) {
      const value = this.option(args, key)
      if (!value) continue
      if (value[0] !== 'true' && value[0] !== 'false')
        throw new ScenarioCommandError(`${key} is true or false`)
      settable[field] = value[0] === 'true'
    }
    const voters = this.option(args, 'voters')
    const config: Config | undefined = voters
      ? { voters, nonVoters: this.option(args, 'nonVoters') ?? [] }
      : undefined
    const lines: string[] = []
    const first = this.cluster.nodes.size + 1
    for (let i = 0; i < n; i++) {
      const id = String(first + i)
      this.cluster.add(id, config ? founderState(config) : emptyState(), options, 1000 + first + i)
      lines.push(config ? `${id}: founding ${formatConfig(config)}` : `${id}: empty, waiting to be contacted`)
    }
    return lines
  }

  /** `propose ID data`: prints the position the entry got, or the error the core threw. */
  private propose(args: Argument[]): string[] {
    const id = this.positional(args, 0, 'node id')
    const data = this.positional(args, 1, 'data')
    const { term, index } = this.cluster.raft(id).propose(bytes(data))
    return [`proposed ${term}/${index}`]
  }

  /** `change-config ID add-voter|remove-voter|add-nonvoter|remove-nonvoter|promote NODE` on the leader ID. */
  private changeConfig(args: Argument[]): string[] {
    const id = this.positional(args, 0, 'node id')
    const kind = this.positional(args, 1, 'change')
    const node = this.positional(args, 2, 'node to change')
    const type = CONFIG_CHANGES[kind]
    if (!type) throw new ScenarioCommandError(`unknown change '${kind}'`)
    const { term, index } = this.cluster.raft(id).proposeConfigChange({ type, node })
    return [`proposed ${term}/${index}`]
  }

  private transferLeader(args: Argument[]): string[] {
    const from = this.positional(args, 0, 'leader id')
    this.cluster.raft(from).transferLeadership(this.positional(args, 1, 'target id'))
    return []
  }

  private readIndex(args: Argument[]): string[] {
    this.cluster.raft(this.positional(args, 0, 'node id')).readIndex(this.positional(args, 1, 'context'))
    return []
  }

  /** `tick ID[,ID...] [N]`: N ticks of logical time on each node (default 1); nothing is processed. */
  private tick(args: Argument[]): string[] {
    const [nodes, times = '1'] = args.filter(arg => arg.values.length === 0).map(arg => arg.key)
    if (nodes === undefined) throw new ScenarioCommandError('expected node ids')
    for (const id of nodes.split(',')) this.cluster.tick(id, this.count(times, 'tick count'))
    return []
  }

  /** Handles the Ready of each node as the shell would (persist, send, apply) and prints it. */
  private processReady(args: Argument[]): string[] {
    const ids = this.ids(args)
    const lines: string[] = []
    for (const id of ids) {
      const ready = this.handleReady(id)
      if (!ready) continue
      lines.push(
        ...(ids.length > 1 ? [`> ${id} handling Ready`, ...indent(formatReady(ready))] : formatReady(ready)),
      )
    }
    return lines
  }

  /** `Cluster.process` (persist, send, apply, advance), checking what the node applied against the others. */
  private handleReady(id: NodeId): Ready | undefined {
    const ready = this.cluster.process(id)
    for (const entry of ready?.committed ?? []) {
      const first = this.appliedAt.get(entry.index)
      if (first === undefined) {
        this.appliedAt.set(entry.index, { id, entry })
      } else if (formatEntry(first.entry) !== formatEntry(entry)) {
        this.violations.push(
          `SAFETY VIOLATION: ${id} applied ${formatEntry(entry)} at index ${entry.index}, ` +
            `${first.id} applied ${formatEntry(first.entry)}`,
        )
      }
    }
    return ready
  }

  /** Takes the queued messages addressed to `to` out of the network, in the order they were sent. */
  private takeMessagesTo(to: NodeId, type?: string): Message[] {
    const taken = this.cluster.queue.filter(m => m.to === to && (type === undefined || m.type === type))
    this.cluster.queue = this.cluster.queue.filter(m => !taken.includes(m))
    return taken
  }

  /** Delivers (or, when `drop`, loses) messages; a message the network cuts is printed as dropped. */
  private receive(messages: Message[], drop: boolean): string[] {
    return messages.map(message => {
      const line = formatMessage(message)
      const target = this.cluster.nodes.get(message.to)
      if (drop || !target || this.cluster.dropped(message)) return `${line} (dropped)`
      this.cluster.delivered.push(message)
      target.raft.step(message)
      return line
    })
  }

  /** `deliver-msgs ID... [type=append]` / `drop-msgs ...`: the queued messages to those nodes. */
  private deliverMsgs(args: Argument[], drop: boolean): string[] {
    const ids = args.filter(arg => arg.values.length === 0).map(arg => arg.key)
    if (ids.length === 0) throw new ScenarioCommandError('expected node ids')
    const type = this.option(args, 'type')?.[0]
    const lines: string[] = []
    for (const id of ids) {
      const received = this.receive(this.takeMessagesTo(id, type), drop)
      if (received.length === 0) continue
      lines.push(...(ids.length > 1 ? [`> ${id} receiving messages`, ...indent(received)] : received))
    }
    return lines
  }

  /**
   * Until nothing moves: every node with a Ready handles it, then every node receives what was sent to it.
   * This is etcd's `stabilize`; messages across a partition or to a crashed node are shown as dropped.
   */
  private stabilize(): string[] {
    const lines: string[] = []
    for (let round = 0; round < MAX_STABILIZE_ROUNDS; round++) {
      let moved = false
      for (const id of this.cluster.nodes.keys()) {
        const ready = this.handleReady(id)
        if (!ready) continue
        moved = true
        lines.push(`> ${id} handling Ready`, ...indent(formatReady(ready)))
      }
      const recipients = [...new Set(this.cluster.queue.map(m => m.to))].sort(compareIds)
      for (const id of recipients) {
        moved = true
        lines.push(`> ${id} receiving messages`, ...indent(this.receive(this.takeMessagesTo(id), false)))
      }
      if (!moved) return lines
    }
    throw new ScenarioCommandError(`the network did not settle in ${MAX_STABILIZE_ROUNDS} rounds`)
  }

  /** `partition 1 | 2 3`: the two groups cannot talk to each other until `heal`. */
  private partition(args: Argument[]): string[] {
    const words = args.filter(arg => arg.values.length === 0).map(arg => arg.key)
    const bar = words.indexOf('|')
    if (bar <= 0 || bar === words.length - 1)
      throw new ScenarioCommandError("expected 'partition A... | B...'")
    this.cluster.partition(words.slice(0, bar), words.slice(bar + 1))
    return []
  }

  /** `isolate ID...`: those nodes are cut off from every other node. */
  private isolate(args: Argument[]): string[] {
    this.cluster.isolate(...this.ids(args))
    return []
  }

  private heal(): string[] {
    this.cluster.heal()
    return []
  }

  private restart(args: Argument[]): string[] {
    return this.ids(args).flatMap(id => {
      this.cluster.restart(id)
      return formatStatus(this.cluster.raft(id).status()).slice(0, 1)
    })
  }

  private status(args: Argument[]): string[] {
    return this.ids(args).flatMap(id => formatStatus(this.cluster.raft(id).status()))
  }

  /** `log ID`: what the node has on stable storage, and what its application has applied. */
  private log(args: Argument[]): string[] {
    return this.ids(args).flatMap(id => {
      const node = this.cluster.node(id)
      const { storage } = node
      const lines = [formatHardState(storage.hardState)]
      if (storage.snapshot) lines.push(formatSnapshot(storage.snapshot))
      lines.push(...storage.entries.map(formatEntry))
      lines.push(`applied ${node.appliedIndex}: ${JSON.stringify(node.appliedData)}`)
      return this.ids(args).length > 1 ? [`> ${id}`, ...indent(lines)] : lines
    })
  }

  /** `compact ID` (or `snapshot ID`): the application's snapshot at its applied index; the log before it goes. */
  private compact(args: Argument[]): string[] {
    return this.ids(args).map(id => {
      this.cluster.compact(id)
      const snapshot = this.cluster.node(id).storage.snapshot
      return `${id}: ${snapshot ? formatSnapshot(snapshot) : 'no snapshot'} ${text(snapshot?.data ?? new Uint8Array())}`
    })
  }

  /** `log-level none` prints 'ok' for every command until `log-level all`: for setup steps nobody reads. */
  private logLevel(args: Argument[]): string[] {
    const level = this.positional(args, 0, 'level')
    if (level !== 'none' && level !== 'all') throw new ScenarioCommandError("log-level is 'none' or 'all'")
    this.quiet = level === 'none'
    return []
  }
}

/** Numeric ids in numeric order, others after them. */
function compareIds(a: string, b: string): number {
  const x = Number(a)
  const y = Number(b)
  if (Number.isNaN(x) || Number.isNaN(y)) return a.localeCompare(b)
  return x - y
}
