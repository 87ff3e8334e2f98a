/**
 * Runs one agent in its own process and serves requests from the parent over Node's IPC channel: the
 * building block of the multi-process tests, the benchmark and the simulation. Start it with
 * `fork('scripts/agent-host.ts', [JSON.stringify(options)])`; it answers `{ type: 'ready', id, addrs }`
 * once started, then one `{ id, ok, value | error }` per `{ id, op, args }` request.
 */
import type { Agent, AgentOptions, Lock } from '../src/index.ts'
import { createAgent } from '../src/index.ts'

export type HostRequest =
  | { id: number; op: 'join'; args: { bootstrap?: string[]; voters?: number } }
  | { id: number; op: 'propose'; args: { key: string; value: unknown } }
  | {
      id: number
      op: 'proposeMany'
      args: { prefix: string; count: number; concurrency: number; size: number }
    }
  | { id: number; op: 'get'; args: { key: string; consistency?: 'linearizable' | 'local' } }
  | { id: number; op: 'acquire'; args: { key: string; ttl: number } }
  | { id: number; op: 'release'; args: { handle: number } }
  | { id: number; op: 'isHeld'; args: { handle: number } }
  | { id: number; op: 'status'; args: Record<string, never> }
  | { id: number; op: 'leave'; args: Record<string, never> }
  | { id: number; op: 'stop'; args: Record<string, never> }

export interface HostStatus {
  id: string
  isLeader: boolean
  leader: string
  term: number
  members: number
  voters: number
}

let agent: Agent
const locks = new Map<number, Lock>()
let nextHandle = 1

async function serve(request: HostRequest): Promise<unknown> {
  switch (request.op) {
    case 'join':
      await agent.join(request.args)
      return null
    case 'propose':
      return agent.consensus.propose(request.args.key, request.args.value)
    case 'proposeMany':
      return proposeMany(request.args)
    case 'get':
      return agent.consensus.get(request.args.key, { consistency: request.args.consistency })
    case 'acquire': {
      const lock = await agent.locks.acquire(request.args.key, request.args.ttl)
      const handle = nextHandle++
      locks.set(handle, lock)
      return { handle, token: lock.fencingToken.toString() }
    }
    case 'release': {
      const lock = locks.get(request.args.handle)
      locks.delete(request.args.handle)
      await lock?.release()
      return null
    }
    case 'isHeld':
      return locks.get(request.args.handle)?.isHeld() ?? false
    case 'status': {
      const members = await agent.members()
      const leader = await agent.leader()
      const status: HostStatus = {
        id: agent.id,
        isLeader: agent.isLeader(),
        leader: leader?.id ?? '',
        term: agent.election.term(),
        members: members.length,
        voters: members.filter(member => member.role === 'voter').length,
      }
      return status
    }
    case 'leave':
      await agent.leave()
      return null
    case 'stop':
      await agent.stop()
      setImmediate(() => process.exit(0))
      return null
  }
}

/** A closed-loop load: `concurrency` proposers writing `count` values of `size` bytes; latencies in ms. */
async function proposeMany(args: { prefix: string; count: number; concurrency: number; size: number }) {
  const value = 'x'.repeat(args.size)
  const latencies: number[] = []
  let issued = 0
  const started = performance.now()
  await Promise.all(
    Array.from({ length: args.concurrency }, async () => {
      while (issued < args.count) {
        const n = issued++
        const begin = performance.now()
        await agent.consensus.propose(`${args.prefix}${n % 1000}`, value)
        latencies.push(performance.now() - begin)
      }
    }),
  )
  return { elapsedMs: performance.now() - started, latencies }
}

async function main(): Promise<void> {
  const options = JSON.parse(process.argv[2] ?? '{}') as AgentOptions
  agent = await createAgent(options)
  process.on('message', message => {
    const request = message as HostRequest
    serve(request).then(
      value => process.send?.({ id: request.id, ok: true, value }),
      (err: Error) =>
        process.send?.({ id: request.id, ok: false, error: { name: err.name, message: err.message } }),
    )
  })
  process.on('disconnect', () => {
    agent.stop().finally(() => process.exit(0))
  })
  process.send?.({ type: 'ready', id: agent.id, addrs: agent.multiaddrs() })
}

main().catch(err => {
  console.error(err)
  process.exit(1)
})
