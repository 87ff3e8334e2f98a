/**
 * `npm run chaos -- --hostile`: a member with few rights that attacks the cluster for the whole run.
 *
 * The parent makes a trust domain (`chaosIdentities`): every chaos agent's SVID may do everything, the
 * hostile member's only `join`, `runTask` and `lock`. The hostile member is an agent process of its own that
 * joins like any other, then runs `runHostile` (chaos op `hostile`) until told to stop. Each round it sends
 * what the issue's attacks sent, through its own authenticated node:
 *
 * - forged Raft responses (append, heartbeat, ReadIndex) to every voter, with terms from the current + 1 up
 *   to 2^52;
 * - SWIM claims only others may make: `left` and a `dead` at the largest incarnation about every other
 *   member, by push-pull and gossip, and 1,000 ghost members per push-pull;
 * - completions and failures of tasks running on other agents, naming itself and naming the assignee;
 * - floods: lock acquisitions (its right; rate-limited per member at the leader) and forwarded writes (not
 *   its right; refused at the leader's gate).
 *
 * It counts what it sent and how each was answered (`HostileStats`); the run's checkers and the other
 * agents' write latency say whether any of it did harm.
 */
import type { Libp2p } from '@libp2p/interface'
import { defaultLogger } from '@libp2p/logger'
import { SWIM_PROTOCOL, swimTopic } from '../../src/agent/cluster/swim-wire.ts'
import { FORWARD_PROTOCOL } from '../../src/agent/node/proposer.ts'
import type { Agent } from '../../src/index.ts'
import { encodeRaftFrame } from '../../src/net/raft-codec.ts'
import { RAFT_PROTOCOL } from '../../src/net/raft-transport.ts'
import { Rpc, RpcRemoteError } from '../../src/net/rpc.ts'
import type { Message } from '../../src/raft/types.ts'
import type { SecurityOptions } from '../../src/security/options.ts'
import type { PolicyRule } from '../../src/security/policy.ts'
import { type Command, encodeEnvelope, type StateMachine } from '../../src/state/index.ts'
import { encodeSwimMessage } from '../../src/swim/codec.ts'
import type { PushPullEntry } from '../../src/swim/types.ts'
import { chainPem, intermediateCa, leafSvid, rootCa } from '../../test/security/pki.ts'

const TRUST_DOMAIN = 'chaos.conclave.test'

/** The rights of the hostile member: few, but enough to be a member that runs tasks and takes locks. */
export const HOSTILE_RIGHTS = ['join', 'runTask', 'lock'] as const

export interface ChaosIdentities {
  /** The `security` option of chaos agent `index`. */
  agent(index: number): SecurityOptions
  /** The `security` option of the hostile member. */
  hostile: SecurityOptions
}

/** A fresh trust domain for one run, its policy, and the SVIDs of the agents and the hostile member. */
export function chaosIdentities(): ChaosIdentities {
  const root = rootCa(TRUST_DOMAIN)
  const ca = intermediateCa(root, TRUST_DOMAIN)
  const policy: PolicyRule[] = [
    { ids: [`spiffe://${TRUST_DOMAIN}/agent/*`], allow: '*' },
    { ids: [`spiffe://${TRUST_DOMAIN}/hostile/*`], allow: [...HOSTILE_RIGHTS] },
  ]
  const security = (path: string): SecurityOptions => {
    const leaf = leafSvid(ca, `spiffe://${TRUST_DOMAIN}/${path}`)
    return { svid: { certificate: chainPem(leaf, ca), key: leaf.keyPem }, trustBundle: root.pem, policy }
  }
  return { agent: index => security(`agent/a${index}`), hostile: security('hostile/h') }
}

/** What the hostile member sent, and how the cluster answered. */
export interface HostileStats {
  rounds: number
  raftForged: number
  swimClaims: number
  ghostMembers: number
  foreignCompletions: number
  lockAcquires: number
  forwardedWrites: number
  /** Answers by error name (`UnauthorizedError`, `NotAssignee`, ...) or `ok`. */
  answers: Record<string, number>
}

const stats: HostileStats = {
  rounds: 0,
  raftForged: 0,
  swimClaims: 0,
  ghostMembers: 0,
  foreignCompletions: 0,
  lockAcquires: 0,
  forwardedWrites: 0,
  answers: {},
}
let running: Promise<void> | undefined
let stopping = false

/** The counts so far. */
export function hostileStats(): HostileStats {
  return structuredClone(stats)
}

/** Starts the attack loop in this (the hostile member's) process; `stopHostile` ends it. */
export function startHostile(agent: Agent, options: { roundMs: number; lockFlood: number }): void {
  if (running !== undefined) return
  stopping = false
  running = attack(agent, options).catch(err => {
    count(`loop failed: ${err}`)
  })
}

export async function stopHostile(): Promise<HostileStats> {
  stopping = true
  await running
  running = undefined
  return hostileStats()
}

function count(answer: string): void {
  stats.answers[answer] = (stats.answers[answer] ?? 0) + 1
}

function answerName(err: unknown): string {
  if (err instanceof RpcRemoteError) return err.remoteName
  return err instanceof Error ? err.name : String(err)
}

interface Internals {
  replica: { state: StateMachine }
  meta?: { clusterId(): string | undefined }
}

async function attack(agent: Agent, options: { roundMs: number; lockFlood: number }): Promise<void> {
  const node = agent.libp2p
  const internals = (node.services as Record<string, unknown>).conclave as Internals
  const rpc = senderOn(node)
  await rpc.start()
  const floods = lockFlood(agent, options.lockFlood)
  try {
    while (!stopping) {
      const began = performance.now()
      stats.rounds++
      const state = internals.replica.state
      const others = state.agents().filter(member => member.agentId !== agent.id)
      const leader = await agent.leader().catch(() => undefined)
      await Promise.allSettled([
        forgeRaft(
          agent,
          node,
          others.map(member => member.agentId),
        ),
        forgeSwim(
          agent,
          node,
          rpc,
          internals,
          others.map(member => member.agentId),
        ),
        leader === undefined ? Promise.resolve() : forgeCompletions(agent, rpc, state, leader.id),
        leader === undefined ? Promise.resolve() : forwardWrites(rpc, leader.id, 50),
      ])
      const rest = options.roundMs - (performance.now() - began)
      if (rest > 0) await new Promise(resolve => setTimeout(resolve, rest))
    }
  } finally {
    await floods
    await rpc.stop()
  }
}

/** An Rpc endpoint on `node` that only calls: requests signed by the hostile member's own peer key. */
function senderOn(node: Libp2p): Rpc {
  return new Rpc(
    {
      registrar: {
        handle: (protocol, handler, opts) => node.handle(protocol, handler, opts),
        unhandle: protocol => node.unhandle(protocol),
      },
      connectionManager: { openStream: (peer, protocol, opts) => node.dialProtocol(peer, protocol, opts) },
      logger: defaultLogger(),
    },
    { defaultTimeoutMs: 5_000 },
  )
}

async function forgeRaft(agent: Agent, node: Libp2p, targets: string[]): Promise<void> {
  const term = agent.election.term()
  const terms = [term + 1, term + 100, 2 ** 40, 2 ** 52]
  await Promise.allSettled(
    targets.map(async to => {
      const peer = node.getConnections().find(c => c.remotePeer.toString() === to)?.remotePeer
      if (peer === undefined) return
      const stream = await node.dialProtocol(peer, RAFT_PROTOCOL, { signal: AbortSignal.timeout(2_000) })
      const from = agent.id
      for (const t of terms) {
        const messages: Message[] = [
          { type: 'appendResponse', from, to, term: t, success: false, index: 0, hintIndex: 0, hintTerm: 0 },
          { type: 'heartbeatResponse', from, to, term: t, context: '' },
          { type: 'readIndex', from, to, term: t, context: '' },
        ]
        for (const message of messages) {
          stream.send(encodeRaftFrame(message))
          stats.raftForged++
        }
      }
      await stream.close({ signal: AbortSignal.timeout(2_000) }).catch(err => stream.abort(err))
    }),
  )
}

async function forgeSwim(
  agent: Agent,
  node: Libp2p,
  rpc: Rpc,
  internals: Internals,
  victims: string[],
): Promise<void> {
  const claims: PushPullEntry[] = victims.flatMap(id => [
    {
      id,
      name: 'forged',
      addrs: [],
      capabilities: [],
      labels: {},
      role: 'voter' as const,
      load: 0,
      incarnation: Number.MAX_SAFE_INTEGER,
      status: 'dead' as const,
    },
    {
      id,
      name: 'forged',
      addrs: [],
      capabilities: [],
      labels: {},
      role: 'voter' as const,
      load: 0,
      incarnation: Date.now(),
      status: 'left' as const,
    },
  ])
  const ghosts: PushPullEntry[] = Array.from({ length: 1_000 }, (_, i) => ({
    id: `12D3KooGhost${stats.rounds}x${i}`,
    name: `ghost-${i}`,
    addrs: [],
    capabilities: [],
    labels: {},
    role: 'nonvoter' as const,
    load: 0,
    incarnation: Date.now(),
    status: 'alive' as const,
  }))
  const pushPull = encodeSwimMessage({ type: 'pushPull', reply: false, members: [...claims, ...ghosts] })
  await Promise.allSettled(
    victims.map(async to => {
      stats.swimClaims += claims.length
      stats.ghostMembers += ghosts.length
      try {
        await rpc.callRpc(to, SWIM_PROTOCOL, pushPull, { timeoutMs: 2_000 })
        count('swim ok')
      } catch (err) {
        count(`swim ${answerName(err)}`)
      }
    }),
  )
  // And by gossip, to whoever relays it.
  const clusterId = internals.meta?.clusterId()
  const pubsub = (node.services as Record<string, unknown>).pubsub as
    | { publish(topic: string, data: Uint8Array): Promise<unknown> }
    | undefined
  if (clusterId === undefined || pubsub === undefined) return
  const gossip = encodeSwimMessage({
    type: 'gossip',
    updates: victims.flatMap(id => [
      { type: 'dead' as const, id, incarnation: Number.MAX_SAFE_INTEGER, from: agent.id },
      { type: 'left' as const, id, incarnation: Date.now() },
    ]),
  })
  stats.swimClaims += 2 * victims.length
  await pubsub.publish(swimTopic(clusterId), gossip).catch(() => {})
}

/** Completes and fails tasks that run on other agents: naming itself, and naming the real assignee. */
async function forgeCompletions(agent: Agent, rpc: Rpc, state: StateMachine, leader: string): Promise<void> {
  const running = state
    .agents()
    .filter(member => member.agentId !== agent.id)
    .flatMap(member => state.tasksAssignedTo(member.agentId))
    .filter(task => task.state === 'running')
    .slice(0, 10)
  const commands: Command[] = running.flatMap(task => {
    const attempt = { taskId: task.id, attempt: task.attempt, fencingToken: task.fencingToken }
    return [
      { type: 'completeTask', ...attempt, result: 'forged', agentId: agent.id },
      { type: 'completeTask', ...attempt, result: 'forged', agentId: task.assignee },
      { type: 'failTask', ...attempt, error: 'forged', agentId: task.assignee },
    ] as Command[]
  })
  await Promise.allSettled(
    commands.map(async command => {
      stats.foreignCompletions++
      await forward(rpc, leader, command, 'task')
    }),
  )
}

/** Writes it has no right to, forwarded to the leader. */
async function forwardWrites(rpc: Rpc, leader: string, n: number): Promise<void> {
  await Promise.allSettled(
    Array.from({ length: n }, async (_, i) => {
      stats.forwardedWrites++
      await forward(rpc, leader, { type: 'put', key: `hostile/${i}`, value: 'forged' } as Command, 'write')
    }),
  )
}

async function forward(rpc: Rpc, leader: string, command: Command, kind: string): Promise<void> {
  try {
    const body = await rpc.callRpc(leader, FORWARD_PROTOCOL, encodeEnvelope({ ts: 0, command }), {
      timeoutMs: 5_000,
    })
    const answer = JSON.parse(new TextDecoder().decode(body)) as { type?: string; code?: string }
    count(`${kind} ${answer.type === 'error' ? (answer.code ?? 'error') : 'ok'}`)
  } catch (err) {
    count(`${kind} ${answerName(err)}`)
  }
}

/** `width` lock acquisitions in flight at all times until stopped, each released at once. */
async function lockFlood(agent: Agent, width: number): Promise<void> {
  let next = 0
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (!stopping) {
        const key = `hostile/lock/${next++ % 10_000}`
        stats.lockAcquires++
        try {
          const lock = await agent.locks.acquire(key, 5_000, { signal: AbortSignal.timeout(5_000) })
          count('lock ok')
          await lock.release().catch(() => {})
        } catch (err) {
          count(`lock ${answerName(err)}`)
          await new Promise(resolve => setTimeout(resolve, 50))
        }
      }
    }),
  )
}
