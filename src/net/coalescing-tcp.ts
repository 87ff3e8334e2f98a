/**
 * `@libp2p/tcp`, with each send of a connection written to its socket in one `write()`.
 *
 * `@libp2p/tcp` 11 writes every chunk of what the layers above hand it with its own `socket.write()`, and
 * Noise hands it two chunks per message (the 2-byte length, then the ciphertext). With `noDelay` (the
 * transport's default, which Raft needs) each chunk is a syscall and a TCP segment of its own: twice the
 * kernel work per message on the sender, and often two wake-ups of the receiver, the first for two bytes.
 * Joining the chunks (small sends only: a copy of a few hundred bytes costs far less than a syscall) halves
 * the writes. Nothing else changes: same bytes, same order, same backpressure.
 */

import type {
  Connection,
  CreateListenerOptions,
  DialTransportOptions,
  MultiaddrConnection,
  Transport,
  Upgrader,
} from '@libp2p/interface'
import { type TCPComponents, type TCPOptions, tcp } from '@libp2p/tcp'
import type { Multiaddr } from '@multiformats/multiaddr'
import { Uint8ArrayList } from 'uint8arraylist'

/** Sends up to this size are joined into one buffer; larger ones go out chunk by chunk, as before. */
export const MAX_JOINED_SEND_BYTES = 64 * 1024

/** The method of @libp2p/utils' AbstractMultiaddrConnection that writes to the socket. */
interface SendsData {
  sendData(data: Uint8ArrayList): { sentBytes: number; canSendMore: boolean }
}

/** Drop-in for `tcp(init)`. */
export function coalescingTcp(init?: TCPOptions): (components: TCPComponents) => Transport {
  const createTcp = tcp(init)
  return components => {
    const transport = createTcp(components)
    const dial = transport.dial.bind(transport)
    const createListener = transport.createListener.bind(transport)
    transport.dial = (ma: Multiaddr, options: DialTransportOptions): Promise<Connection> =>
      dial(ma, { ...options, upgrader: joiningUpgrader(options.upgrader) })
    transport.createListener = (options: CreateListenerOptions) =>
      createListener({ ...options, upgrader: joiningUpgrader(options.upgrader) })
    return transport
  }
}

function joiningUpgrader(upgrader: Upgrader): Upgrader {
  return {
    upgradeOutbound: ((maConn: MultiaddrConnection, options: Parameters<Upgrader['upgradeOutbound']>[1]) =>
      upgrader.upgradeOutbound(joinSends(maConn), options)) as Upgrader['upgradeOutbound'],
    upgradeInbound: ((maConn: MultiaddrConnection, options: Parameters<Upgrader['upgradeInbound']>[1]) =>
      upgrader.upgradeInbound(joinSends(maConn), options)) as Upgrader['upgradeInbound'],
    createInboundAbortSignal: signal => upgrader.createInboundAbortSignal(signal),
    getStreamMuxers: () => upgrader.getStreamMuxers(),
    getConnectionEncrypters: () => upgrader.getConnectionEncrypters(),
  }
}

/** Makes `maConn` write each small send in one piece (see the file comment). */
export function joinSends(maConn: MultiaddrConnection): MultiaddrConnection {
  const connection = maConn as MultiaddrConnection & Partial<SendsData>
  const sendData = connection.sendData
  // Not the connection class this was written for: leave it alone.
  if (typeof sendData !== 'function') return maConn
  const original = sendData.bind(connection)
  connection.sendData = (data: Uint8ArrayList) => {
    if (data.byteLength <= MAX_JOINED_SEND_BYTES && severalChunks(data)) {
      return original(new Uint8ArrayList(data.subarray()))
    }
    return original(data)
  }
  return maConn
}

function severalChunks(data: Uint8ArrayList): boolean {
  let chunks = 0
  for (const _chunk of data) if (++chunks > 1) return true
  return false
}
