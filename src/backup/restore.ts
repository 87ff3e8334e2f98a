/**
 * `conclave snapshot restore`: a new cluster seeded from a snapshot file. The data directory it writes is
 * what an agent that founded a cluster and applied the snapshot's state would have: a new peer key, a new
 * cluster id, and Raft storage holding the snapshot at its index with this agent as the only voter. An
 * agent started on it (`conclave agent --data-dir`) leads alone at once and serves the same keys, lock
 * fencing counters and task states; others join it as they would any cluster.
 */

import { mkdtempSync, readdirSync, renameSync, rmdirSync, rmSync, statSync } from 'node:fs'
import { basename, dirname, join, resolve } from 'node:path'
import { generateKeyPair, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { InvalidArgumentError } from '../errors.ts'
import { StateMachine } from '../state/state-machine.ts'
import { SqliteRaftStorage } from '../storage/sqlite-storage.ts'
import { META_CLUSTER_ID, META_LEFT, META_PEER_ID, META_PEER_KEY } from './agent-meta.ts'
import { SnapshotFileError } from './errors.ts'
import { decodeSnapshotFile, type SnapshotHeader } from './snapshot-file.ts'

/** Options of `restoreSnapshot`. */
export interface RestoreSnapshotOptions {
  /** The new cluster's id; default a random UUID. Must differ from the snapshot's cluster. */
  clusterId?: string
}

/** What `restoreSnapshot` made. */
export interface RestoredCluster {
  /** The data directory written (absolute). */
  dataDir: string
  /** The new cluster's id. */
  clusterId: string
  /** The peer id of the agent that will run on `dataDir`, the new cluster's only voter. */
  agentId: string
  /** The snapshot's header (its cluster id is the old one). */
  snapshot: SnapshotHeader
}

const encoder = new TextEncoder()

/**
 * Writes a new cluster's data directory from the snapshot file `bytes`. Refused, with nothing written:
 * a file that is not a snapshot, truncated or altered (`SnapshotFileError`); a `dataDir` that exists and is
 * not an empty directory (`InvalidArgumentError`). The directory appears whole or not at all: it is built
 * beside `dataDir` and renamed into place.
 */
export async function restoreSnapshot(
  bytes: Uint8Array,
  dataDir: string,
  options: RestoreSnapshotOptions = {},
): Promise<RestoredCluster> {
  if (typeof dataDir !== 'string' || dataDir === '') {
    throw new InvalidArgumentError('dataDir must be a non-empty path')
  }
  const clusterId = options.clusterId ?? crypto.randomUUID()
  if (typeof clusterId !== 'string' || clusterId === '') {
    throw new InvalidArgumentError('clusterId must be a non-empty string')
  }
  const snapshot = decodeSnapshotFile(bytes)
  if (clusterId === snapshot.clusterId) {
    throw new InvalidArgumentError(
      `clusterId ${clusterId} is the snapshot's own cluster: a restore seeds a new cluster`,
    )
  }
  if (snapshot.index < 1 || snapshot.term < 1) {
    throw new SnapshotFileError(`snapshot at index ${snapshot.index}, term ${snapshot.term} holds no state`)
  }
  try {
    // Applying it is what an agent will do on start: a state that would not restore is refused now.
    StateMachine.restore(snapshot.data)
  } catch (cause) {
    throw new SnapshotFileError(`snapshot state does not restore: ${(cause as Error).message}`, { cause })
  }
  const target = resolve(dataDir)
  const existed = checkEmptyTarget(target)
  const key = await generateKeyPair('Ed25519')
  const agentId = peerIdFromPrivateKey(key).toString()
  const building = mkdtempSync(join(dirname(target), `.${basename(target)}.restore-`))
  try {
    const storage = SqliteRaftStorage.open(building)
    try {
      storage.setMeta(META_PEER_KEY, privateKeyToProtobuf(key))
      storage.setMeta(META_PEER_ID, encoder.encode(agentId))
      storage.setMeta(META_CLUSTER_ID, encoder.encode(clusterId))
      storage.setMeta(META_LEFT, new Uint8Array([0]))
      // The snapshot's term and index carry over: the new cluster's log continues after them, so index-based
      // values in the state (and the applied index a restart resumes from) stay consistent.
      storage.write({
        hardState: { term: snapshot.term, vote: '', commit: snapshot.index },
        entries: [],
        snapshot: {
          meta: {
            index: snapshot.index,
            term: snapshot.term,
            config: { voters: [agentId], nonVoters: [] },
          },
          data: snapshot.data,
        },
      })
    } finally {
      storage.close()
    }
    // Checked again just before the rename: the directory must still be empty (rmdir refuses otherwise).
    if (existed) rmdirSync(target)
    renameSync(building, target)
  } catch (err) {
    rmSync(building, { recursive: true, force: true })
    throw err
  }
  return { dataDir: target, clusterId, agentId, snapshot: withoutData(snapshot) }
}

/** True if `target` is an empty directory, false if it does not exist; refuses anything else. */
function checkEmptyTarget(target: string): boolean {
  let stats: ReturnType<typeof statSync>
  try {
    stats = statSync(target)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false
    throw err
  }
  if (!stats.isDirectory()) {
    throw new InvalidArgumentError(`data directory ${target} is not a directory; nothing was written`)
  }
  if (readdirSync(target).length > 0) {
    throw new InvalidArgumentError(
      `data directory ${target} is not empty: a restore writes a new cluster into an empty or new directory; nothing was written`,
    )
  }
  return true
}

function withoutData(snapshot: SnapshotHeader & { data?: Uint8Array }): SnapshotHeader {
  const { data: _data, ...header } = snapshot
  return header
}
