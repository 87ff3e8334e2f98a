/**
 * Private networks: a pre-shared key (PSK) that every agent of a cluster holds. libp2p's `@libp2p/pnet`
 * encrypts each connection with XSalsa20 under the key before anything else is said, so a node without
 * the key cannot even complete the Noise handshake: outsiders cannot connect, probe protocols, or learn
 * peer ids. The key file has the libp2p (and go-ipfs "swarm.key") format:
 *
 * ```
 * /key/swarm/psk/1.0.0/
 * /base16/
 * <64 hex digits>
 * ```
 *
 * The PSK only keeps outsiders out; it identifies no one. Every holder of the key is equal: use SPIFFE
 * identities to tell agents apart.
 */

import { readFileSync } from 'node:fs'
import type { ConnectionProtector } from '@libp2p/interface'
import { preSharedKey } from '@libp2p/pnet'
import { InvalidArgumentError } from '../errors.ts'

/** Bytes of key material in a PSK. */
export const PSK_KEY_BYTES = 32

const HEADER = '/key/swarm/psk/1.0.0/'
const CODEC = '/base16/'
const HEX_KEY = /^[0-9a-fA-F]{64}$/
const utf8 = new TextDecoder('utf-8', { fatal: true })
const encoder = new TextEncoder()

/** A new random PSK, as the bytes of a key file. */
export function generatePsk(): Uint8Array {
  const key = Buffer.from(crypto.getRandomValues(new Uint8Array(PSK_KEY_BYTES))).toString('hex')
  return encoder.encode(`${HEADER}\n${CODEC}\n${key}\n`)
}

/**
 * Checks PSK key-file bytes and returns them in canonical form (what `@libp2p/pnet` takes). Throws
 * `InvalidArgumentError` saying what is wrong; the key itself is never part of the message.
 */
export function parsePsk(bytes: Uint8Array): Uint8Array {
  if (!(bytes instanceof Uint8Array)) throw new InvalidArgumentError('psk must be a Uint8Array or a path')
  let text: string
  try {
    text = utf8.decode(bytes)
  } catch {
    throw new InvalidArgumentError('psk is not a key file: not UTF-8 text')
  }
  const lines = text.split(/\r\n|\n|\r/)
  while (lines.length > 3 && lines[lines.length - 1] === '') lines.pop()
  if (lines.length !== 3 || lines[0] !== HEADER || lines[1] !== CODEC) {
    throw new InvalidArgumentError(`psk is not a key file: expected the lines "${HEADER}", "${CODEC}", <key>`)
  }
  if (!HEX_KEY.test(lines[2])) {
    throw new InvalidArgumentError(`psk key must be ${PSK_KEY_BYTES * 2} hexadecimal digits`)
  }
  return encoder.encode(`${HEADER}\n${CODEC}\n${lines[2].toLowerCase()}\n`)
}

/** The PSK from key-file bytes, or from the file at `source` when it is a string (a path). */
export function loadPsk(source: Uint8Array | string): Uint8Array {
  if (typeof source === 'string') {
    let bytes: Uint8Array
    try {
      bytes = readFileSync(source)
    } catch (cause) {
      throw new InvalidArgumentError(`could not read the psk file ${source}`, { cause })
    }
    return parsePsk(new Uint8Array(bytes))
  }
  return parsePsk(source)
}

/** A libp2p `connectionProtector` factory, as `createLibp2p({ connectionProtector })` takes it. */
export type ConnectionProtectorFactory = (components: unknown) => ConnectionProtector

/** The pnet package, loaded on first use so that agents without a PSK do not need it. */
/**
 * The connection protector for `psk` (a key file's bytes, or its path), from `@libp2p/pnet`. Throws
 * `InvalidArgumentError` for a bad key.
 */
export async function pskProtector(
  psk: Uint8Array | string,
  options: { handshakeTimeoutMs?: number } = {},
): Promise<ConnectionProtectorFactory> {
  const keyFile = loadPsk(psk)
  return preSharedKey({ psk: keyFile, timeout: options.handshakeTimeoutMs })
}
