/**
 * Gossipsub's cheap duplicate check. Without a `fastMsgIdFn`, gossipsub verifies a received message's
 * signature (an Ed25519 key import and verify) before it looks the message up in its seen cache, so every
 * duplicate copy costs a full verification; flood publishing and a mesh of 6 bring each message to an agent
 * several times. With it, a copy whose bytes match one already verified is dropped as a duplicate for the
 * price of a hash. Measured: 20 agents started at once on 2 cores spent 12 % of their CPU after start-up in
 * that verification, most of it on duplicates.
 */
import { createHash } from 'node:crypto'
import type { GossipsubOpts } from '@libp2p/gossipsub'

/** A received, not yet validated gossipsub message (`RPC.Message`). */
export type RawGossipMessage = Parameters<GossipsubOpts['fastMsgIdFn']>[0]

/**
 * A digest of every field of the message as received (length-prefixed, so no two messages share one).
 * Gossipsub caches it only once the message passed validation: a forged copy is never the first one seen
 * under its digest, and a copy that differs in any byte (a forged signature, altered data) has another
 * digest and is verified on its own.
 */
export function gossipMessageId(message: RawGossipMessage): string {
  const hash = createHash('sha256')
  for (const field of [message.from, message.seqno, message.data, message.signature, message.key]) {
    const length = Buffer.alloc(4)
    length.writeUInt32BE(field === undefined ? 0xffffffff : field.byteLength)
    hash.update(length)
    if (field !== undefined) hash.update(field)
  }
  hash.update(message.topic)
  return hash.digest('base64')
}
