/**
 * `--force-new-cluster` (etcd's): the way back from a lost quorum. On a surviving replica's data directory,
 * the stored Raft configuration is rewritten to this agent alone, so that it elects itself and serves what
 * its log holds; other agents then join it. Run it on ONE survivor, with the lost voters gone for good: were
 * they to come back as a majority of the old configuration, the two sides would diverge.
 *
 * The rewrite keeps Raft's invariants: one `config` entry is appended after the last log entry, in a term
 * above every term the log and the hard state hold (terms never decrease), and committed on this node alone
 * (it is the whole configuration). Every entry before it is committed with it: an entry past the stored
 * commit index was written by a leader and may have been committed by the lost quorum (the commit index on
 * disk lags the true one), so dropping it could lose an acknowledged write; one never committed was never
 * acknowledged, its client saw a timeout.
 */

import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { privateKeyFromProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { InvalidArgumentError } from '../errors.ts'
import { decodeConfig, encodeConfig } from '../raft/config.ts'
import type { Config } from '../raft/types.ts'
import type { RaftStorage } from '../storage/raft-storage.ts'
import { SqliteRaftStorage, STORAGE_FILE_NAME } from '../storage/sqlite-storage.ts'
import { META_LEFT, META_PEER_ID, META_PEER_KEY } from './agent-meta.ts'

/** What `forceNewCluster` did. */
export interface ForcedCluster {
  /** This agent's id, now the only voter. */
  agentId: string
  /** The configuration the log held before. */
  previous: Config
  /** The index of the appended configuration entry; undefined if this agent was already alone. */
  index?: number
  /** The term of that entry. */
  term?: number
}

/**
 * Opens the storage in `dataDir` and rewrites its configuration to this agent alone (see the file's
 * comment); returns it open for the agent. Refused with `InvalidArgumentError`, nothing written: a directory
 * without conclave storage, without a peer key, or with no Raft log; an agent that left its cluster or is
 * not a voter of the last configuration its log holds.
 */
export function openForNewCluster(dataDir: string): { storage: SqliteRaftStorage; forced: ForcedCluster } {
  if (typeof dataDir !== 'string' || dataDir === '') {
    throw new InvalidArgumentError("forceNewCluster needs the surviving replica's dataDir")
  }
  // Opening creates storage where there is none: refuse first.
  if (!existsSync(join(dataDir, STORAGE_FILE_NAME))) {
    throw new InvalidArgumentError(
      `${dataDir} is not a replica's data directory: it holds no conclave storage (${STORAGE_FILE_NAME})`,
    )
  }
  const storage = SqliteRaftStorage.open(dataDir)
  try {
    return { storage, forced: forceNewCluster(storage) }
  } catch (err) {
    storage.close()
    throw err
  }
}

/** The rewrite itself, on an open storage (see `openForNewCluster`). */
export function forceNewCluster(storage: RaftStorage): ForcedCluster {
  const key = storage.getMeta(META_PEER_KEY)
  if (key === undefined) {
    throw new InvalidArgumentError("not a replica's data directory: it holds no peer key")
  }
  const agentId = peerIdFromPrivateKey(privateKeyFromProtobuf(key)).toString()
  const storedId = storage.getMeta(META_PEER_ID)
  if (storedId !== undefined && new TextDecoder().decode(storedId) !== agentId) {
    throw new InvalidArgumentError("not a replica's data directory: its peer key and peer id disagree")
  }
  if (storage.getMeta(META_LEFT)?.[0] === 1) {
    throw new InvalidArgumentError('this agent left its cluster: its data is not a replica of it any more')
  }
  const { hardState, snapshot, entries } = storage.load()
  if (snapshot === undefined && entries.length === 0) {
    throw new InvalidArgumentError("not a replica's data directory: it holds no Raft log")
  }
  const previous = lastConfig(snapshot?.meta.config, entries)
  if (!previous.voters.includes(agentId)) {
    throw new InvalidArgumentError(
      `agent ${agentId} is not a voter of its last configuration (voters ${previous.voters.join(', ') || 'none'}): ` +
        "only a voter's data can start a new cluster",
    )
  }
  if (previous.voters.length === 1 && previous.nonVoters.length === 0) return { agentId, previous }
  const last = entries.at(-1)
  const lastIndex = last?.index ?? snapshot?.meta.index ?? 0
  const lastTerm = last?.term ?? snapshot?.meta.term ?? 0
  const term = Math.max(hardState.term, lastTerm) + 1
  const index = lastIndex + 1
  storage.write({
    hardState: { term, vote: '', commit: index },
    entries: [{ term, index, type: 'config', data: encodeConfig({ voters: [agentId], nonVoters: [] }) }],
  })
  return { agentId, previous, index, term }
}

/** The configuration in force at the end of the log: its last config entry's, else the snapshot's. */
function lastConfig(
  snapshotConfig: Config | undefined,
  entries: { type: string; data: Uint8Array }[],
): Config {
  for (let i = entries.length - 1; i >= 0; i--) {
    if (entries[i].type === 'config') return decodeConfig(entries[i].data)
  }
  return snapshotConfig ?? { voters: [], nonVoters: [] }
}
