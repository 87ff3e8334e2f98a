/**
 * Hostile bytes on live streams: a real 3-agent cluster, and a bare libp2p node (never a member) that opens
 * every conclave protocol the agents serve and sends garbage, truncated frames, a 1 GiB length prefix and
 * well-formed frames that claim another sender; then publishes garbage on the gossipsub topics. Each bad
 * stream must end, the agents must keep serving, the replicated state must hold only the test's own
 * writes, and the process must see no stray error.
 */

import type { GossipSub } from '@libp2p/gossipsub'
import type { Libp2p, Stream } from '@libp2p/interface'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Agent } from '../../src/index.ts'
import { createAgent } from '../../src/index.ts'
import { encodeFrame, FrameDecoder, writeVarint } from '../../src/net/frame.ts'
import { type ConclaveServices, createConclaveLibp2p } from '../../src/net/libp2p-node.ts'
import { encodeRaftFrame } from '../../src/net/raft-codec.ts'
import { RAFT_PROTOCOL } from '../../src/net/raft-transport.ts'
import { decodeRpcFrame, encodeRpcFrame, type RpcFrame } from '../../src/net/rpc-codec.ts'
import type { Message } from '../../src/raft/types.ts'
import { encodeEnvelope } from '../../src/state/codec.ts'
import { encodeSwimMessage } from '../../src/swim/codec.ts'

/** A term no real election in this test reaches: seeing it anywhere means a forged message got through. */
const FORGED_TERM = 1_000_000
/** Error names that would mean a handler failed on input it did not check, rather than refusing it. */
const UNTYPED = ['Error', 'TypeError', 'SyntaxError', 'RangeError', 'ReferenceError']
const RPC_PROTOCOLS = [
  '/conclave/forward/1.0.0',
  '/conclave/admin/1.0.0',
  '/conclave/client/1.0.0',
  '/conclave/swim/1.0.0',
]

let agents: Agent[] = []
let outsider: Libp2p<ConclaveServices>
const processErrors: unknown[] = []
const onProcessError = (err: unknown): void => {
  processErrors.push(err)
}
let revision = 0
let probe = 0

async function until(check: () => boolean | Promise<boolean>, what: string, ms = 15_000): Promise<void> {
  const end = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}

async function healthy(): Promise<boolean> {
  for (const agent of agents) {
    const members = await agent.members()
    if (members.length !== 3 || members.some(m => m.status !== 'alive' || m.role !== 'voter')) return false
  }
  return true
}

beforeAll(async () => {
  process.on('unhandledRejection', onProcessError)
  process.on('uncaughtException', onProcessError)
  for (let i = 0; i < 3; i++) agents.push(await createAgent({ name: `h${i}`, transport: 'memory' }))
  await agents[0].join({})
  for (const agent of agents.slice(1)) await agent.join({ bootstrap: agents[0].multiaddrs() })
  await until(healthy, 'three alive voters')
  revision = (await agents[0].consensus.propose('hostile/probe', probe)).revision
  outsider = await createConclaveLibp2p({ transport: 'memory' })
  for (const agent of agents) await outsider.dial(agent.libp2p.getMultiaddrs())
}, 60_000)

afterAll(async () => {
  await outsider?.stop()
  await Promise.all(agents.map(agent => agent.stop()))
  agents = []
  process.off('unhandledRejection', onProcessError)
  process.off('uncaughtException', onProcessError)
})

/**
 * The cluster still serves and holds nothing but the test's writes: one more write gets exactly the next
 * revision and reads back everywhere; names, roles and liveness are as they were; no forged term took hold.
 */
async function expectUnharmed(): Promise<void> {
  probe++
  const result = await agents[probe % 3].consensus.propose('hostile/probe', probe)
  expect(result.revision).toBe(revision + 1)
  revision = result.revision
  for (const agent of agents) expect(await agent.consensus.get('hostile/probe')).toBe(probe)
  expect(await healthy()).toBe(true)
  const names = (await agents[0].members()).map(member => member.name).sort()
  expect(names).toEqual(['h0', 'h1', 'h2'])
  for (const agent of agents) expect(agent.election.term()).toBeLessThan(FORGED_TERM)
  expect(processErrors).toEqual([])
}

/** An agent's gossipsub (`Agent.libp2p` is typed without its services). */
function pubsubOf(agent: Agent): GossipSub {
  return (agent.libp2p as Libp2p<ConclaveServices>).services.pubsub
}

/** Resolves with the stream's final status once it is no longer open; fails after 5 s. */
async function ended(stream: Stream): Promise<string> {
  if (stream.status !== 'open') return stream.status
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${stream.protocol} stream still open after 5 s`)), 5_000)
    stream.addEventListener('close', () => {
      clearTimeout(timer)
      resolve()
    })
  })
  return stream.status
}

/** Opens `protocol` on `agent` from the outsider, sends `bytes`, optionally ends its side; the final status. */
async function attack(
  agent: Agent,
  protocol: string,
  bytes: Uint8Array,
  closeWrite = false,
): Promise<string> {
  const stream = await outsider.dialProtocol(agent.libp2p.peerId, protocol)
  stream.send(bytes)
  if (closeWrite) await stream.close().catch(() => {})
  return ended(stream)
}

/** Sends one well-formed request on `protocol` from the outsider and returns the answer frame. */
async function request(agent: Agent, protocol: string, body: Uint8Array): Promise<RpcFrame> {
  const stream = await outsider.dialProtocol(agent.libp2p.peerId, protocol)
  const decoder = new FrameDecoder()
  const answer = new Promise<RpcFrame>((resolve, reject) => {
    stream.addEventListener('message', evt => {
      decoder.push(evt.data)
      const frame = decoder.next()
      if (frame !== undefined) resolve(decodeRpcFrame(frame))
    })
    stream.addEventListener('close', () => reject(new Error(`${protocol} stream closed without an answer`)))
  })
  stream.send(encodeRpcFrame({ kind: 'request', id: 1, body }))
  try {
    return await answer
  } finally {
    stream.abort(new Error('done'))
  }
}

const garbage = encodeFrame(new Uint8Array([0xff, 0xff, 0xff, 0x01, 0x02, 0x00, 0x7f]))
/** A prefix announcing 100 bytes, and only 10 of them. */
const truncated = (() => {
  const bytes = new Uint8Array(11).fill(0x41)
  bytes[0] = 100
  return bytes
})()
/** A varint prefix announcing 1 GiB, then a few bytes. */
const oversized = (() => {
  const bytes = new Uint8Array(16).fill(0x42)
  writeVarint(bytes, 0, 2 ** 30)
  return bytes
})()

function forgedAppend(from: string, to: string): Message {
  return {
    type: 'append',
    from,
    to,
    term: FORGED_TERM,
    prevLogIndex: 0,
    prevLogTerm: 0,
    leaderCommit: 1,
    entries: [
      { term: FORGED_TERM, index: 1, type: 'normal', data: new TextEncoder().encode('{"forged":1}') },
    ],
  }
}

describe('hostile bytes on live conclave streams', () => {
  it('serves the expected conclave protocols', () => {
    const served = agents[0].libp2p.getProtocols().filter(protocol => protocol.startsWith('/conclave/'))
    expect(served).toEqual(expect.arrayContaining([RAFT_PROTOCOL, ...RPC_PROTOCOLS]))
  })

  it('resets garbage, oversized and truncated frames on every protocol, and keeps serving', async () => {
    const served = agents[0].libp2p.getProtocols().filter(protocol => protocol.startsWith('/conclave/'))
    const known = new Set([RAFT_PROTOCOL, ...RPC_PROTOCOLS])
    // The leader and a follower: they read different protocols for real (forward, admin on the leader).
    for (const agent of [agents[0], agents[2]]) {
      for (const protocol of served) {
        const garbageEnd = await attack(agent, protocol, garbage)
        const oversizedEnd = await attack(agent, protocol, oversized)
        const truncatedEnd = await attack(agent, protocol, truncated, true)
        if (known.has(protocol)) {
          expect(garbageEnd, `${protocol} garbage`).toBe('reset')
          expect(oversizedEnd, `${protocol} 1 GiB prefix`).toBe('reset')
        }
        // A truncated frame is never delivered: the stream just ends when the sender does.
        expect(truncatedEnd, `${protocol} truncated`).not.toBe('open')
      }
    }
    await expectUnharmed()
  })

  it('resets a Raft stream whose frames speak for another member, whatever their term', async () => {
    const [leader, follower, other] = agents
    for (const target of [leader, follower]) {
      const victim = target === leader ? follower : leader
      // Claims to come from another member.
      const forged = encodeRaftFrame(forgedAppend(other.id, target.id))
      expect(await attack(target, RAFT_PROTOCOL, forged)).toBe('reset')
      // Addressed to someone else.
      const misaddressed = encodeRaftFrame(forgedAppend(outsider.peerId.toString(), victim.id))
      expect(await attack(target, RAFT_PROTOCOL, misaddressed)).toBe('reset')
    }
    await expectUnharmed()
  })

  it('obeys no Raft message and forwards no write from a peer that never joined', async () => {
    const self = outsider.peerId.toString()
    for (const target of [agents[0], agents[2]]) {
      const vote: Message = {
        type: 'vote',
        from: self,
        to: target.id,
        term: FORGED_TERM,
        lastLogIndex: FORGED_TERM,
        lastLogTerm: FORGED_TERM,
        transfer: true,
      }
      const stream = await outsider.dialProtocol(target.libp2p.peerId, RAFT_PROTOCOL)
      stream.send(encodeRaftFrame(forgedAppend(self, target.id)))
      stream.send(encodeRaftFrame(vote))
      await new Promise(resolve => setTimeout(resolve, 200))
      stream.abort(new Error('done'))
    }
    // A well-formed write forwarded to the leader, as a follower would.
    const envelope = encodeEnvelope({ ts: 0, command: { type: 'put', key: 'hostile/forged', value: 1 } })
    const answer = await request(agents[0], '/conclave/forward/1.0.0', envelope)
    expect(answer.kind).toBe('error')
    expect(await agents[0].consensus.get('hostile/forged')).toBeUndefined()
    await expectUnharmed()
  })

  it('resets request streams that carry answers, and answers bad requests with errors', async () => {
    const answer = encodeRpcFrame({ kind: 'response', id: 1, body: new Uint8Array([1]) })
    for (const protocol of RPC_PROTOCOLS) {
      expect(await attack(agents[0], protocol, answer), protocol).toBe('reset')
    }
    // Well-framed requests whose bodies are nonsense get error answers; the stream stays up.
    for (const protocol of RPC_PROTOCOLS) {
      const stream = await outsider.dialProtocol(agents[0].libp2p.peerId, protocol)
      const answers: Uint8Array[] = []
      stream.addEventListener('message', evt => answers.push(evt.data.subarray()))
      stream.send(encodeRpcFrame({ kind: 'request', id: 7, body: new Uint8Array([0xc3, 0x28, 0x7b]) }))
      await until(() => answers.length > 0 || stream.status !== 'open', `an answer on ${protocol}`, 5_000)
      expect(stream.status, protocol).toBe('open')
      stream.abort(new Error('done'))
    }
    await expectUnharmed()
  })

  it('answers any request body on admin, forward and swim with a typed error or an answer, on the same stream', async () => {
    const ids = agents.map(agent => agent.id)
    const text = fc.oneof(
      fc.constantFrom(...ids, '', 'x', '/ip4/127.0.0.1/tcp/1'),
      fc.string({ maxLength: 8 }),
    )
    const value = fc.oneof(text, fc.array(text, { maxLength: 3 }), fc.jsonValue({ maxDepth: 1 }))
    const shaped = fc
      .record(
        {
          op: fc.oneof(fc.constantFrom('join', 'remove', 'transfer', 'member', 'toString'), text),
          agentId: value,
          addrs: value,
          to: value,
          clusterId: value,
          ts: value,
          command: fc.record({ type: fc.constantFrom('put', 'delete', 'keepAlive'), key: text, value }),
        },
        { requiredKeys: [], noNullPrototype: true },
      )
      .map(request => new TextEncoder().encode(JSON.stringify(request)))
    const body = fc.oneof(fc.uint8Array({ maxLength: 64 }), shaped)
    for (const protocol of ['/conclave/admin/1.0.0', '/conclave/forward/1.0.0', '/conclave/swim/1.0.0']) {
      const stream = await outsider.dialProtocol(agents[0].libp2p.peerId, protocol)
      const decoder = new FrameDecoder()
      const waiting = new Map<number, (answer: RpcFrame) => void>()
      stream.addEventListener('message', evt => {
        decoder.push(evt.data)
        for (let frame = decoder.next(); frame !== undefined; frame = decoder.next()) {
          const answer = decodeRpcFrame(frame)
          waiting.get(answer.id)?.(answer)
        }
      })
      let id = 0
      await fc.assert(
        fc.asyncProperty(body, async bytes => {
          const sent = ++id
          let timer: NodeJS.Timeout | undefined
          const answered = new Promise<RpcFrame>((resolve, reject) => {
            waiting.set(sent, resolve)
            timer = setTimeout(() => reject(new Error(`no answer ${sent} on ${protocol} in 5 s`)), 5_000)
          })
          stream.send(encodeRpcFrame({ kind: 'request', id: sent, body: bytes }))
          const answer = await answered.finally(() => clearTimeout(timer))
          expect(stream.status).toBe('open')
          if (answer.kind === 'error') {
            expect(UNTYPED, `${protocol}: ${answer.errorMessage}`).not.toContain(answer.errorName)
          }
        }),
        { numRuns: 150 },
      )
      stream.abort(new Error('done'))
    }
    await expectUnharmed()
  })

  it('ignores a SWIM update that speaks for another member', async () => {
    const [, victim] = agents
    const record = (await agents[0].members()).find(member => member.id === victim.id)!
    const forged = encodeSwimMessage({
      type: 'gossip',
      updates: [
        {
          type: 'alive',
          member: {
            id: victim.id,
            name: 'mallory',
            addrs: [],
            capabilities: ['everything'],
            labels: {},
            role: 'voter',
            load: 0,
            incarnation: 1_000_000,
          },
        },
      ],
    })
    const frame = encodeRpcFrame({ kind: 'request', id: 1, body: forged })
    const stream = await outsider.dialProtocol(agents[0].libp2p.peerId, '/conclave/swim/1.0.0')
    const answered = new Promise<void>(resolve => stream.addEventListener('message', () => resolve()))
    stream.send(frame)
    await answered
    stream.abort(new Error('done'))
    const after = (await agents[0].members()).find(member => member.id === victim.id)!
    expect(after.name).toBe(record.name)
    expect(after.capabilities).toEqual(record.capabilities)
    await expectUnharmed()
  })

  it('shrugs off garbage published on the gossipsub topics', async () => {
    for (const agent of agents) await agent.workStealing.enable()
    const topics = pubsubOf(agents[0])
      .getTopics()
      .filter(topic => topic.startsWith('conclave/'))
    expect(topics.some(topic => topic.endsWith('/swim/1.0.0'))).toBe(true)
    expect(topics.some(topic => topic.endsWith('/work/1.0.0'))).toBe(true)
    const pubsub = outsider.services.pubsub
    for (const topic of topics) pubsub.subscribe(topic)
    await until(
      () => topics.every(topic => pubsub.getSubscribers(topic).length === 3),
      'the agents as subscribers',
    )
    const workTopic = topics.find(topic => topic.endsWith('/work/1.0.0'))!
    let delivered = 0
    const count = (evt: CustomEvent<{ topic: string }>): void => {
      if (evt.detail.topic === workTopic) delivered++
    }
    pubsubOf(agents[1]).addEventListener('message', count)
    const text = new TextEncoder()
    const messages = [
      new Uint8Array([0xff, 0x00, 0xfe]),
      text.encode('{"agentId":'),
      text.encode('[]'),
      text.encode(JSON.stringify({ agentId: agents[0].id, load: 1e308, surplus: ['t'] })), // speaks for another
      text.encode(JSON.stringify({ agentId: 'x', load: -1, surplus: [] })),
      text.encode(JSON.stringify({ agentId: 'x', load: 0, surplus: Array(300).fill('t') })),
      new Uint8Array(200 * 1024).fill(0x20), // over the advert limit
    ]
    for (const topic of topics) {
      for (const data of messages) await pubsub.publish(topic, data).catch(() => {})
    }
    // Every agent relays or drops them; wait until the work topic's messages reached one.
    await until(() => delivered >= messages.length, 'the work-topic messages to arrive', 10_000)
    pubsubOf(agents[1]).removeEventListener('message', count)
    await expectUnharmed()
  })
})
