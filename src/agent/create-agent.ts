import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import type { Libp2p, PrivateKey } from '@libp2p/interface'
import type { Agent } from '../api.ts'
import { InvalidArgumentError } from '../errors.ts'
import { timedStorage } from '../metrics/storage-timing.ts'
import { createConclaveLibp2p } from '../net/libp2p-node.ts'
import { resolveSecurity } from '../security/options.ts'
import { openRaftStorage, type RaftStorage } from '../storage/index.ts'
import { schedulerOf, wrappedStorage } from './internal-options.ts'
import type { AgentOptions } from './options.ts'
import { checkRateLimits, resolveTiming } from './options.ts'
import { type ConclaveComponents, ConclaveService, type ServiceInit } from './service.ts'
import { checkOptions } from './validate.ts'

const META_PEER_KEY = 'peer-key'

/**
 * The libp2p service factory: `createLibp2p({ ..., services: { conclave: conclave({...}) } })` embeds
 * conclave in an existing node; the service exposes the same members as `Agent`. Throws
 * `InvalidArgumentError` at once for an unknown option, bad `security` options (unreadable files, an invalid
 * own SVID, a bad policy), and bad timing, membership, raft or rate-limit values: the checks `createAgent`
 * makes, less the options of the libp2p node (listen, transport, psk, connectionGater), which are the
 * embedding node's own.
 */
export function conclave(options: ServiceInit = {}): (components: ConclaveComponents) => ConclaveService {
  checkOptions(options, SERVICE_OPTIONS)
  resolveTiming(options)
  checkRateLimits(options.rateLimits)
  const resolvedSecurity =
    options.resolvedSecurity ?? resolveSecurity(options.security, schedulerOf(options).wallNow())
  return components => new ConclaveService(components, { ...options, resolvedSecurity })
}

const AGENT_OPTIONS = [
  'name',
  'dataDir',
  'listen',
  'capabilities',
  'concurrency',
  'labels',
  'transport',
  'psk',
  'raft',
  'tickMs',
  'electionTicks',
  'heartbeatTicks',
  'sessionTtlMs',
  'operationTimeoutMs',
  'leaseSafetyMarginMs',
  'snapshotEntries',
  'membership',
  'voterReplaceAfterMs',
  'joinTimeoutMs',
  'connectionGater',
  'security',
  'rateLimits',
  'forceNewCluster',
  'metrics',
]

/** What `conclave()` takes: the agent's options minus the node's own, plus what `createAgent` hands it. */
const SERVICE_OPTIONS = [
  ...AGENT_OPTIONS.filter(
    name => !['listen', 'transport', 'psk', 'connectionGater', 'metrics'].includes(name),
  ),
  'storage',
  'random',
  'resolvedSecurity',
]

/**
 * Builds and starts an agent on its own libp2p node. With `dataDir`, the peer key, the Raft log and the
 * state live there, and a restart on the same directory comes back as the same member.
 */
export async function createAgent(options: AgentOptions = {}): Promise<Agent> {
  checkOptions(options, AGENT_OPTIONS)
  if (options.dataDir !== undefined && (typeof options.dataDir !== 'string' || options.dataDir === '')) {
    throw new InvalidArgumentError('dataDir must be a non-empty path')
  }
  resolveTiming(options)
  checkRateLimits(options.rateLimits)
  const resolvedSecurity = resolveSecurity(options.security, schedulerOf(options).wallNow())
  if (options.forceNewCluster !== undefined && typeof options.forceNewCluster !== 'boolean') {
    throw new InvalidArgumentError('forceNewCluster must be a boolean')
  }
  if (options.forceNewCluster === true && options.dataDir === undefined) {
    throw new InvalidArgumentError("forceNewCluster needs dataDir: a surviving replica's data directory")
  }
  if (options.metrics !== undefined && typeof options.metrics !== 'function') {
    throw new InvalidArgumentError('metrics must be a libp2p metrics factory, e.g. prometheusMetrics()')
  }
  // The recovery and the metrics code are loaded only when asked for: most agents never run them. Loaded
  // before the node starts, so that its metrics are bound as soon as it runs.
  const metricsCode =
    options.metrics === undefined ? undefined : await import('../metrics/conclave-metrics.ts')
  const opened =
    options.forceNewCluster === true && options.dataDir !== undefined
      ? (await import('../backup/force-new-cluster.ts')).openForNewCluster(options.dataDir).storage
      : openRaftStorage(options.dataDir)
  // Timed always (two clock reads per write): the storage metrics and the dashboard read it. Test-only: disk
  // faults injected around the real storage (`withStorageWrapper`).
  const storage = timedStorage(wrappedStorage(options, opened))
  let node: Libp2p<{ conclave: ConclaveService }>
  try {
    const privateKey = await loadPeerKey(storage)
    const {
      listen,
      transport,
      psk,
      connectionGater,
      metrics,
      forceNewCluster: _forced,
      ...serviceOptions
    } = options
    node = await createConclaveLibp2p({
      listen,
      transport,
      connectionGater,
      psk,
      metrics,
      privateKey,
      services: { conclave: conclave({ ...serviceOptions, storage, resolvedSecurity }) },
    })
  } catch (err) {
    storage.close()
    throw err
  }
  const agent = agentOf(node)
  if (node.metrics !== undefined && metricsCode !== undefined) metricsCode.enableMetrics(agent, node.metrics)
  return agent
}

async function loadPeerKey(storage: RaftStorage): Promise<PrivateKey> {
  const stored = storage.getMeta(META_PEER_KEY)
  if (stored !== undefined) return privateKeyFromProtobuf(stored)
  const key = await generateKeyPair('Ed25519')
  storage.setMeta(META_PEER_KEY, privateKeyToProtobuf(key))
  return key
}

/** An Agent is the service plus the node it runs on; stopping it stops the node. */
function agentOf(node: Libp2p<{ conclave: ConclaveService }>): Agent {
  const service = node.services.conclave
  return {
    get id() {
      return service.id
    },
    get name() {
      return service.name
    },
    libp2p: node,
    multiaddrs: () => service.multiaddrs(),
    election: service.election,
    elections: name => service.elections(name),
    get tasks() {
      return service.tasks
    },
    locks: service.locks,
    consensus: service.consensus,
    get workStealing() {
      return service.workStealing
    },
    health: options => service.health(options),
    rotateSvid: rotation => service.rotateSvid(rotation),
    join: (config, options) => service.join(config, options),
    leave: options => service.leave(options),
    members: options => service.members(options),
    leader: options => service.leader(options),
    isLeader: () => service.isLeader(),
    stop: async () => {
      await node.stop()
    },
  }
}
