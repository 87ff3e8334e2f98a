import { InvalidArgumentError } from '../../errors.ts'
import type { RaftStorage } from '../../storage/index.ts'

const META_PEER_ID = 'peer-id'
const META_CLUSTER_ID = 'cluster-id'
const META_LEFT = 'left'
const META_INCARNATION = 'swim-incarnation'
/**
 * The founder's `voters`, until its `setVoterTarget` is committed (then empty): a founder that stops before
 * committing it commits it when it leads again, rather than leave the cluster at the default target.
 */
const META_VOTER_TARGET = 'voter-target'

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** What an agent keeps about itself beside its Raft log, in the storage's meta keys. */
export class NodeMeta {
  private readonly storage: RaftStorage

  constructor(storage: RaftStorage) {
    this.storage = storage
  }

  /** Claims the data directory for `peerId`: `InvalidArgumentError` if it belongs to another peer. */
  claim(peerId: string): void {
    const stored = this.storage.getMeta(META_PEER_ID)
    if (stored !== undefined && decoder.decode(stored) !== peerId) {
      throw new InvalidArgumentError(`dataDir belongs to peer ${decoder.decode(stored)}, not ${peerId}`)
    }
    if (stored === undefined) this.storage.setMeta(META_PEER_ID, encoder.encode(peerId))
  }

  clusterId(): string | undefined {
    const stored = this.storage.getMeta(META_CLUSTER_ID)
    return stored === undefined ? undefined : decoder.decode(stored)
  }

  setClusterId(clusterId: string): void {
    this.storage.setMeta(META_CLUSTER_ID, encoder.encode(clusterId))
  }

  /** Whether this agent left its cluster (and so must not resume as a member at restart). */
  left(): boolean {
    return this.storage.getMeta(META_LEFT)?.[0] === 1
  }

  setLeft(left: boolean): void {
    this.storage.setMeta(META_LEFT, new Uint8Array([left ? 1 : 0]))
  }

  incarnation(): number | undefined {
    const stored = this.storage.getMeta(META_INCARNATION)
    return stored === undefined ? undefined : Number(decoder.decode(stored))
  }

  setIncarnation(incarnation: number): void {
    this.storage.setMeta(META_INCARNATION, encoder.encode(String(incarnation)))
  }

  /** The founder's voter target while it is not known committed (see META_VOTER_TARGET). */
  pendingVoterTarget(): number | undefined {
    const stored = this.storage.getMeta(META_VOTER_TARGET)
    if (stored === undefined || stored.length === 0) return undefined
    const voters = Number(decoder.decode(stored))
    return Number.isInteger(voters) ? voters : undefined
  }

  setPendingVoterTarget(voters: number | undefined): void {
    const value = voters === undefined ? new Uint8Array() : encoder.encode(String(voters))
    this.storage.setMeta(META_VOTER_TARGET, value)
  }
}
