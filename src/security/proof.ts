/**
 * The proof of possession in the identity exchange: a signature with the SVID's private key over a
 * domain-separation string, the signer's own libp2p peer id and the verifier's fresh nonce.
 *
 * - The peer id binds the SVID to the libp2p identity that Noise authenticated on the connection, so a
 *   peer that relays another's proof (a man in the middle, or a member replaying what it saw) is caught:
 *   the verifier checks the proof against the connection's remote peer id, not a claimed one.
 * - The nonce, chosen by the verifier for this exchange, makes every proof single-use.
 * - The domain string keeps the signature from meaning anything outside this protocol.
 */

import { type KeyObject, sign, verify } from 'node:crypto'

export const PROOF_DOMAIN = 'conclave/identity/1.0.0 proof of SVID possession'

/** Bytes of a nonce; the verifier draws them at random for each exchange. */
export const NONCE_BYTES = 32

const encoder = new TextEncoder()

/** The bytes that are signed: domain, 0, length-prefixed peer id, nonce. */
export function proofPayload(peerId: string, nonce: Uint8Array): Uint8Array {
  const domain = encoder.encode(PROOF_DOMAIN)
  const peer = encoder.encode(peerId)
  if (peer.byteLength > 0xffff) throw new RangeError('peer id too long')
  const out = new Uint8Array(domain.byteLength + 1 + 2 + peer.byteLength + nonce.byteLength)
  out.set(domain, 0)
  let offset = domain.byteLength + 1
  out[offset++] = peer.byteLength >> 8
  out[offset++] = peer.byteLength & 0xff
  out.set(peer, offset)
  out.set(nonce, offset + peer.byteLength)
  return out
}

/** Signs the proof for `peerId` (the signer's own) and the verifier's `nonce`. */
export function signProof(privateKey: KeyObject, peerId: string, nonce: Uint8Array): Uint8Array {
  return new Uint8Array(sign(digestFor(privateKey), proofPayload(peerId, nonce), privateKey))
}

/** Whether `signature` is `publicKey`'s proof for `peerId` and `nonce`. Never throws. */
export function verifyProof(
  publicKey: KeyObject,
  peerId: string,
  nonce: Uint8Array,
  signature: Uint8Array,
): boolean {
  try {
    return verify(digestFor(publicKey), proofPayload(peerId, nonce), publicKey, signature)
  } catch {
    return false
  }
}

/** EdDSA signs the message itself; ECDSA and RSA (PKCS #1 v1.5) sign its SHA-256. */
function digestFor(key: KeyObject): string | null {
  const type = key.asymmetricKeyType
  return type === 'ed25519' || type === 'ed448' ? null : 'sha256'
}
