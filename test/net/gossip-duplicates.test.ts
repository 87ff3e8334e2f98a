/**
 * Gossipsub duplicates are dropped before their signature is verified again (`src/net/gossip-message-id.ts`):
 * with many agents, each message reaches an agent several times, and verifying every copy was the largest
 * single CPU cost of a join storm.
 */
import crypto from 'node:crypto'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { RPC } from '@libp2p/gossipsub/message'
import type { Libp2p, PeerId, PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { gossipMessageId } from '../../src/net/gossip-message-id.ts'
import {
  type ConclaveLibp2pOptions,
  type ConclaveServices,
  createConclaveLibp2p,
} from '../../src/net/libp2p-node.ts'

const TOPIC = 'conclave/test/duplicates'
const nodes: Libp2p<ConclaveServices>[] = []

afterEach(async () => {
  vi.restoreAllMocks()
  await Promise.all(nodes.splice(0).map(node => node.stop()))
})

/** A message signed by `key` as gossipsub signs it (StrictSign): over "libp2p-pubsub:" and the encoding. */
async function signed(key: PrivateKey, data: string, seqno: number): Promise<RPC.Message> {
  const seq = new Uint8Array(8)
  new DataView(seq.buffer).setBigUint64(0, BigInt(seqno))
  const message: RPC.Message = {
    from: peerIdFromPrivateKey(key).toMultihash().bytes,
    data: new TextEncoder().encode(data),
    seqno: seq,
    topic: TOPIC,
  }
  const bytes = new Uint8Array([
    ...new TextEncoder().encode('libp2p-pubsub:'),
    ...RPC.Message.encode(message),
  ])
  return { ...message, signature: await key.sign(bytes) }
}

/** A subscribed node, the messages it delivers, and its gossipsub's receive path (as a relay would feed it). */
async function receiver(options: ConclaveLibp2pOptions = {}) {
  const node = await createConclaveLibp2p({ transport: 'memory', ...options })
  nodes.push(node)
  const delivered: string[] = []
  node.services.pubsub.addEventListener('message', event => {
    delivered.push(new TextDecoder().decode(event.detail.data))
  })
  node.services.pubsub.subscribe(TOPIC)
  const pubsub = node.services.pubsub as unknown as {
    handleReceivedMessage(from: PeerId, message: RPC.Message): Promise<void>
  }
  return {
    delivered,
    receive: (from: PeerId, message: RPC.Message) => pubsub.handleReceivedMessage(from, message),
  }
}

async function relays(count: number): Promise<PeerId[]> {
  return Promise.all(
    Array.from({ length: count }, async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519'))),
  )
}

describe('gossipsub duplicates', () => {
  it('verifies a message once however many relays bring it, and delivers it once', async () => {
    const author = await generateKeyPair('Ed25519')
    const message = await signed(author, 'alive', 1)
    const node = await receiver()
    const verify = vi.spyOn(crypto, 'verify')
    for (const relay of await relays(4)) await node.receive(relay, structuredClone(message))
    expect(node.delivered).toEqual(['alive'])
    expect(verify).toHaveBeenCalledTimes(1)
  })

  it('still verifies (and drops) a copy that differs from the verified one in any byte', async () => {
    const author = await generateKeyPair('Ed25519')
    const message = await signed(author, 'alive', 1)
    const node = await receiver()
    const [first, second] = await relays(2)
    await node.receive(first, message)
    const verify = vi.spyOn(crypto, 'verify')
    // Same author, sequence number and signature, other data: a forgery that must not pass as a duplicate.
    await node.receive(second, { ...message, data: new TextEncoder().encode('dead') })
    expect(verify).toHaveBeenCalledTimes(1)
    expect(node.delivered).toEqual(['alive'])
    // A forgery seen first is rejected, and does not stop the genuine message that follows.
    const next = await signed(author, 'suspect', 2)
    await node.receive(first, { ...next, data: new TextEncoder().encode('forged') })
    await node.receive(second, next)
    expect(node.delivered).toEqual(['alive', 'suspect'])
  })

  it('gives every field its own place in the digest', async () => {
    const author = await generateKeyPair('Ed25519')
    const message = await signed(author, 'alive', 1)
    const from = message.from ?? new Uint8Array()
    const seqno = message.seqno ?? new Uint8Array()
    const ids = new Set([
      gossipMessageId(message),
      gossipMessageId({ ...message, data: new TextEncoder().encode('alivf') }),
      gossipMessageId({ ...message, seqno: new Uint8Array(8) }),
      gossipMessageId({ ...message, signature: new Uint8Array(64) }),
      gossipMessageId({ ...message, key: new Uint8Array(0) }),
      gossipMessageId({ ...message, topic: `${TOPIC}/other` }),
      // Bytes moved from one field to the next: the length prefixes keep them apart.
      gossipMessageId({
        ...message,
        from: from.subarray(1),
        seqno: new Uint8Array([...from.subarray(0, 1), ...seqno]),
      }),
    ])
    expect(ids.size).toBe(7)
    expect(gossipMessageId(structuredClone(message))).toBe(gossipMessageId(message))
  })
})
