/**
 * The libp2p node conclave runs on: TCP (or in-process memory, for tests), Noise, Yamux, identify, ping
 * and gossipsub. Gossipsub is `@libp2p/gossipsub`, the libp2p team's build for libp2p 3:
 * `@chainsafe/libp2p-gossipsub` 14 targets libp2p 2 and, on libp2p 3, delivers nothing.
 *
 * A few libp2p defaults assume one node per host and an idle CPU; conclave runs many agents on one host
 * (tests, the benchmark, small deployments), so `CONCLAVE_LIBP2P_DEFAULTS` changes them. Each stays
 * overridable through the options.
 */

import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { type GossipSub, type GossipsubOpts, gossipsub } from '@libp2p/gossipsub'
import { type Identify, identify } from '@libp2p/identify'
import type { ConnectionGater, Libp2p, PrivateKey, ServiceMap } from '@libp2p/interface'
import { type Ping, ping } from '@libp2p/ping'
import {
  type ConnectionManagerInit,
  type ConnectionMonitorInit,
  createLibp2p,
  type Libp2pOptions,
  type ServiceFactoryMap,
} from 'libp2p'
import { coalescingTcp } from './coalescing-tcp.ts'
import { GossipAdmission } from './gossip-admission.ts'
import { gossipMessageId } from './gossip-message-id.ts'
import { limitPendingPerIp, PendingByHost } from './pending-inbound.ts'
import { pskProtector } from './pnet.ts'

/** The services every conclave node has (a type alias, so it satisfies libp2p's `ServiceMap`). */
export type ConclaveServices = {
  /** Which peers gossipsub may hand messages to (`src/net/gossip-admission.ts`). */
  gossipAdmission: GossipAdmission
  identify: Identify
  ping: Ping
  pubsub: GossipSub
}

/** What conclave changes in libp2p's and gossipsub's defaults, and why. */
export const CONCLAVE_LIBP2P_DEFAULTS = Object.freeze({
  /**
   * libp2p refuses a host's inbound connections past 5 per second: 25 agents on one host restarting at once
   * dial each other from one IP far faster. 100/s still stops a connection flood from one address.
   */
  inboundConnectionThreshold: 100,
  /** libp2p allows 10 inbound connections in their handshake at once; a restarting host needs more. */
  maxIncomingPendingConnections: 64,
  /**
   * Of those, what one remote IP may hold (`src/net/pending-inbound.ts`): sockets that never finish their
   * handshake, from one address, cannot take every place and starve the peers elsewhere.
   */
  maxPendingPerIp: 32,
  /** libp2p's own: an inbound connection's handshake must finish within 10 s, or it is closed. */
  inboundUpgradeTimeout: 10_000,
  /**
   * libp2p gives each address of a dial 6 s, whatever the caller's own deadline. Conclave's dials all carry
   * their caller's deadline (a request's, a probe's); a joining agent dials its bootstrap members for as long
   * as its join may take, because a handshake on a few cores busy with many agents starting can take longer
   * than 6 s, and one cut short is begun again from nothing (`src/agent/cluster/bootstrap-dials.ts`).
   */
  addressDialTimeout: 60_000,
  /**
   * libp2p aborts a connection whose ping fails. Under CPU starvation (many agents on few cores) pings
   * time out on healthy connections, and aborting them resets every Raft and RPC stream on them; SWIM
   * judges liveness, so the connection is left up.
   */
  abortConnectionOnPingFailure: false,
  /**
   * So the connection monitor is off: it pings every connection every 10 s on a new stream (a protocol
   * negotiation each), only to measure round trips nobody reads once failures abort nothing. An agent holds
   * a connection to most others (SWIM probes them all), so that was a cost per agent growing with the
   * cluster: at 50 agents about 10 pings a second in and out of each. SWIM, Raft and the RPC deadlines
   * judge liveness.
   */
  connectionMonitorEnabled: false,
  /**
   * For the same reason, no yamux keep-alive: js-yamux pings every connection at its opening and every 30 s
   * after, to measure a round trip nothing reads, and aborts nothing when a ping goes unanswered. An agent
   * holds a connection to most others, so at 50 agents each sent and answered about 1.6 pings a second,
   * idle (SWIM, Raft and the RPC deadlines judge liveness). `yamuxKeepAliveMs` turns it on, to keep idle
   * connections' NAT mappings warm.
   */
  yamuxKeepAlive: false,
  /**
   * Gossipsub lowers the score of peers sharing an IP (a Sybil defence), which on one host mutes every
   * agent's gossip to the others. 0 disables the penalty.
   */
  IPColocationFactorWeight: 0,
  /**
   * Gossipsub's mesh: each node forwards a message to its mesh peers, so each one receives every message
   * about once per mesh peer (gossipsub's defaults keep 6, up to 12, built for open networks of untrusted
   * peers). Conclave's cluster is authenticated and SWIM repairs what gossip misses (own news sent directly,
   * push-pull), so a small mesh does: 20 agents joining at once received each membership update about 12
   * times, and handling those copies (decrypt, decode, digest, drop) was the largest share of their CPU.
   */
  gossipMesh: Object.freeze({ D: 3, Dlo: 2, Dhi: 4, Dout: 1, Dscore: 1, Dlazy: 3 }),
  /**
   * Gossipsub's heartbeat (mesh upkeep, IHAVE gossip) and peer-score decay each wake every node once a second
   * (gossipsub's default for both), and on an idle agent a wake-up costs more CPU than the work it runs (about
   * 0.2-1 ms on a 2-core machine). Conclave's topic carries little traffic, its publishes flood every
   * subscriber (`floodPublish`), and SWIM repairs what gossip misses (direct news, push-pull), so the mesh can
   * be kept up less often: every 3 s, with the score decay at the same interval (the behaviour penalty decays as
   * fast in wall time as with gossipsub's defaults). The score cache, and so a newly admitted peer's wait for
   * gossip, follows the heartbeat.
   */
  gossipHeartbeatMs: 3000,
})

/** Gossipsub's default behaviour-penalty decay, per 1 s decay interval. */
const BEHAVIOUR_PENALTY_DECAY_PER_SECOND = 0.2

export interface ConclaveLibp2pOptions<S extends ServiceMap = ServiceMap> {
  /** Addresses to listen on. Default: one ephemeral loopback TCP port, or a fresh `/memory/` address. */
  listen?: string[]
  /** The node's identity; a new Ed25519 key when absent. */
  privateKey?: PrivateKey
  /** `memory` connects only nodes in this process, with the same security and muxing: for fast tests. */
  transport?: 'tcp' | 'memory'
  /** More services, next to identify, ping and pubsub. */
  services?: ServiceFactoryMap<S>
  /**
   * Gossipsub tuning. Defaults keep gossipsub's own, except that a node's own messages are not echoed back,
   * duplicates are recognised by a digest before their signature is checked (`fastMsgIdFn`), the mesh is
   * small (`CONCLAVE_LIBP2P_DEFAULTS.gossipMesh`), the heartbeat and score decay run every 3 s
   * (`CONCLAVE_LIBP2P_DEFAULTS.gossipHeartbeatMs`), and
   * `scoreParams.IPColocationFactorWeight` is 0 (see `CONCLAVE_LIBP2P_DEFAULTS`).
   */
  gossipsub?: Partial<GossipsubOpts>
  /** libp2p connection manager settings, over conclave's defaults (`CONCLAVE_LIBP2P_DEFAULTS`). */
  connectionManager?: ConnectionManagerInit
  /** Inbound connections one remote IP may have in their handshake at once (`CONCLAVE_LIBP2P_DEFAULTS`). */
  maxPendingPerIp?: number
  /** libp2p connection monitor settings, over conclave's defaults (`CONCLAVE_LIBP2P_DEFAULTS`). */
  connectionMonitor?: ConnectionMonitorInit
  /** Pings every connection this often on the yamux muxer (off by default: `CONCLAVE_LIBP2P_DEFAULTS`). */
  yamuxKeepAliveMs?: number
  /** Denies connections by rule; a test partition also needs the existing connections closed. */
  connectionGater?: ConnectionGater
  /**
   * Private network: a pre-shared key (key-file bytes, or the file's path; see `src/net/pnet.ts`).
   * Nodes without the same key cannot connect to this one.
   */
  psk?: Uint8Array | string
  /**
   * libp2p's metrics (e.g. `prometheusMetrics()` of `@libp2p/prometheus-metrics`): the node's own metrics, and
   * conclave's once registered in the same `Metrics` (`enableMetrics`), land in one registry.
   */
  metrics?: Libp2pOptions['metrics']
}

/** Yamux's largest receive window per stream: libp2p's default unread-buffer limit per stream (4 MiB). */
export const YAMUX_MAX_STREAM_WINDOW = 4 * 1024 * 1024

/** Builds and starts a libp2p 3 node for conclave. */
export async function createConclaveLibp2p<S extends ServiceMap = ServiceMap>(
  options: ConclaveLibp2pOptions<S> = {},
): Promise<Libp2p<ConclaveServices & S>> {
  const transportKind = options.transport ?? 'tcp'
  let transports: NonNullable<Libp2pOptions['transports']>
  let listen = options.listen
  if (transportKind === 'memory') {
    // A dev dependency, so it is loaded only when asked for.
    const { memory } = await import('@libp2p/memory')
    transports = [memory()]
    listen ??= [`/memory/${crypto.randomUUID()}`]
  } else if (transportKind === 'tcp') {
    transports = [
      limitPendingPerIp(
        coalescingTcp(),
        new PendingByHost(options.maxPendingPerIp ?? CONCLAVE_LIBP2P_DEFAULTS.maxPendingPerIp),
      ),
    ]
    listen ??= ['/ip4/127.0.0.1/tcp/0']
  } else {
    throw new TypeError(`Unknown transport ${String(transportKind)}`)
  }
  const admission = new GossipAdmission()
  const heartbeatInterval = options.gossipsub?.heartbeatInterval ?? CONCLAVE_LIBP2P_DEFAULTS.gossipHeartbeatMs
  // The score decays with the heartbeat (gossipsub refuses a decay interval under 1 s).
  const decayInterval = Math.max(1000, heartbeatInterval)
  const services = {
    gossipAdmission: () => admission,
    identify: identify(),
    ping: ping(),
    pubsub: gossipsub({
      emitSelf: false,
      // Duplicates dropped before their signature is verified again (`src/net/gossip-message-id.ts`).
      fastMsgIdFn: gossipMessageId,
      ...CONCLAVE_LIBP2P_DEFAULTS.gossipMesh,
      ...options.gossipsub,
      heartbeatInterval,
      scoreParams: {
        decayInterval,
        behaviourPenaltyDecay: BEHAVIOUR_PENALTY_DECAY_PER_SECOND ** (decayInterval / 1000),
        IPColocationFactorWeight: CONCLAVE_LIBP2P_DEFAULTS.IPColocationFactorWeight,
        appSpecificScore: peer => admission.score(peer),
        appSpecificWeight: 1,
        ...options.gossipsub?.scoreParams,
      },
    }),
    ...options.services,
  } as ServiceFactoryMap<ConclaveServices & S>
  const connectionProtector = options.psk === undefined ? undefined : await pskProtector(options.psk)
  return createLibp2p<ConclaveServices & S>({
    privateKey: options.privateKey,
    addresses: { listen },
    transports,
    connectionEncrypters: [noise()],
    // js-yamux lets a stream's receive window grow to 16 MiB while a stream buffers at most 4 MiB unread: a
    // paused reader (conclave pauses streams for backpressure) could then be sent more than it may hold and
    // its stream is reset. A window no larger than the read buffer keeps a fast sender within bounds.
    streamMuxers: [
      yamux({
        streamOptions: { maxStreamWindowSize: YAMUX_MAX_STREAM_WINDOW },
        ...(options.yamuxKeepAliveMs === undefined
          ? { enableKeepAlive: CONCLAVE_LIBP2P_DEFAULTS.yamuxKeepAlive }
          : { enableKeepAlive: true, keepAliveInterval: options.yamuxKeepAliveMs }),
      }),
    ],
    connectionGater: options.connectionGater,
    connectionProtector,
    ...(options.metrics === undefined ? {} : { metrics: options.metrics }),
    connectionManager: {
      inboundConnectionThreshold: CONCLAVE_LIBP2P_DEFAULTS.inboundConnectionThreshold,
      maxIncomingPendingConnections: CONCLAVE_LIBP2P_DEFAULTS.maxIncomingPendingConnections,
      inboundUpgradeTimeout: CONCLAVE_LIBP2P_DEFAULTS.inboundUpgradeTimeout,
      addressDialTimeout: CONCLAVE_LIBP2P_DEFAULTS.addressDialTimeout,
      ...options.connectionManager,
    },
    connectionMonitor: {
      enabled: CONCLAVE_LIBP2P_DEFAULTS.connectionMonitorEnabled,
      abortConnectionOnPingFailure: CONCLAVE_LIBP2P_DEFAULTS.abortConnectionOnPingFailure,
      ...options.connectionMonitor,
    },
    services,
    start: true,
  })
}
